"""CIFAR-10 under 5M parameters: data, augmentation, models, training engine, prediction."""
