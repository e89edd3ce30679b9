import pytest
import torch
import torchvision.transforms.v2.functional as TF

from src import augment as A


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.rand(64, 3, 32, 32)


def test_flip_draws_per_image(batch):
    out = A.flip(batch)
    flipped = (out == batch.flip(-1)).flatten(1).all(1)
    kept = (out == batch).flatten(1).all(1)
    assert (flipped | kept).all() and flipped.any() and kept.any()


def test_translate_is_a_shift_of_the_padded_image(batch):
    out = A.translate(batch, 2)
    padded = torch.nn.functional.pad(batch, (2,) * 4, mode="reflect")
    for i in range(8):
        windows = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert not torch.equal(out, batch)


def test_colour_ops_match_torchvision_kernels(batch):
    f = torch.full((len(batch),), 1.07)
    gray = A._gray(batch)
    assert torch.allclose(A._blend(batch, gray.mean((1, 2, 3), keepdim=True).expand_as(batch), f),
                          TF.adjust_contrast(batch, 1.07), atol=1e-6)
    assert torch.allclose(A._blend(batch, gray.expand_as(batch), f), TF.adjust_saturation(batch, 1.07), atol=1e-6)
    assert torch.allclose(A._blend(batch, torch.zeros_like(batch), f), TF.adjust_brightness(batch, 1.07), atol=1e-6)
    assert torch.allclose(A.sharpen(batch, 2.0, p=1.0), TF.adjust_sharpness(batch, 2.0), atol=1e-6)


def test_erase_areas_follow_the_scale(batch):
    out = A.erase(torch.ones_like(batch), p=1.0, scale=(0.02, 0.1), value=0.0)
    frac = (out[:, 0] == 0).float().mean((1, 2))
    assert (frac > 0.01).all() and (frac < 0.13).all()
    cut = A.erase(torch.ones_like(batch), p=1.0, square=8)
    assert ((cut[:, 0] == 0).sum((1, 2)) <= 64).all()


def test_rotate_keeps_the_centre(batch):
    out = A.rotate(batch, 10)
    assert out.shape == batch.shape
    assert torch.equal(out[:, :, 16, 16], batch[:, :, 16, 16])


@pytest.mark.parametrize("policy", A.POLICIES)
def test_policies_give_normalised_float_batches_from_uint8(policy):
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = A.augment(x, policy, torch.full((3,), 0.5), torch.full((3,), 0.25))
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert out.min() >= -2.0 - 1e-6 and out.max() <= 2.0 + 1e-6


def test_none_policy_only_normalises():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    out = A.augment(x, "none", torch.zeros(3), torch.ones(3))
    assert torch.allclose(out, x.float() / 255)


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown augmentation policy"):
        A.augment(torch.zeros(1, 3, 32, 32), "mixup", torch.zeros(3), torch.ones(3))
