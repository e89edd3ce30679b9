"""Every hyperparameter in one place: a `Config` of defaults, named profiles that override
some of them, and user overrides on top (`make_config("fast", epochs=2)`), nanoGPT-style."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .paths import DEFAULT_COMPETITION


@dataclass
class Config:
    # run
    name: str = ""                 # run folder runs/<name>/; empty → "<profile>-<timestamp>"
    profile: str = "custom"
    seed: int = 0
    device: str = "auto"           # auto | cpu | cuda | cuda:1
    # data
    data_dir: str | None = None    # None → $CIFAR_DATA_DIR → /kaggle/input/<competition> → ./data
    competition: str = DEFAULT_COMPETITION
    val_size: int = 5000           # stratified hold-out from the training batches; 0 for final runs
    train_limit: int | None = None  # use only the first N training images (smoke tests)
    # model
    model: str = "fast"
    allow_over_limit: bool = False  # train a model over 5M parameters (not submittable)
    # optimisation
    epochs: int = 10
    batch_size: int = 512
    lr: float = 0.4                # peak learning rate (mean-reduced loss)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4     # not applied to BatchNorm parameters and biases
    bias_lr_scale: float = 1.0     # lr multiplier for BatchNorm parameters and biases
    schedule: str = "onecycle"     # onecycle | cosine | multistep | constant
    warmup_epochs: float = 2.0     # onecycle / cosine: linear warm-up length
    final_lr_frac: float = 0.0     # onecycle: lr at the end, as a fraction of peak (cosine → 0)
    milestones: list[int] = field(default_factory=lambda: [30, 60, 80, 90])  # multistep (epochs)
    gamma: float = 0.1             # multistep factor
    label_smoothing: float = 0.0
    ema_decay: float = 0.0         # per-step EMA of the weights; 0 → off
    # augmentation (src/augment.py)
    augment: str = "flip-translate"
    translate_pad: int = 2
    cutout: int = 12
    # engine
    precision: str = "auto"        # auto | fp32 | bf16 | fp16
    channels_last: bool = True
    compile: bool | None = None    # torch.compile the model; None → on CUDA sm_70+ only (slow start, then fast)
    whiten_init: bool = True       # initialise a model's patch-whitening stem from the data
    freeze_bn_weight: bool = False  # BatchNorm scales fixed at 1 (fast net: biases do the work)
    tta: str = "flip"              # none | flip | flip-translate (evaluation and prediction)
    eval_batch_size: int = 1000
    resume: bool = False           # continue runs/<name>/last.pt
    progress: bool = True
    # several processes under torchrun (src/distributed.py); ignored in a single process
    sync_bn: bool = False          # BatchNorm statistics over the global batch (SyncBatchNorm)
    dist_timeout: float = 300.0    # seconds any collective may wait before the run fails

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


PROFILES: dict[str, dict] = {
    # The course report's recipe: SE-ResNet, 70 epochs of SGD at batch 256, lr 0.1 cut by 10×
    # at epochs 30 and 60 (its code's milestones), the report's per-image augmentation.
    "seed": dict(model="seed", epochs=70, batch_size=256, lr=0.1, momentum=0.9, nesterov=False,
                 weight_decay=5e-4, schedule="multistep", milestones=[30, 60, 80, 90],
                 label_smoothing=0.0, augment="report", tta="none", ema_decay=0.0,
                 whiten_init=False),
    # A compact net trained in ~10 epochs in the manner of the speed records: whitened stem,
    # fixed BN scales with fast-learning biases, heavy label smoothing, weight EMA, TTA.
    "fast": dict(model="fast", epochs=18, batch_size=1024, lr=1.5, momentum=0.85, nesterov=True,
                 weight_decay=1.5e-3, bias_lr_scale=16.0, schedule="onecycle", warmup_epochs=2.3,
                 final_lr_frac=0.07, label_smoothing=0.2, augment="flip-translate", translate_pad=2,
                 ema_decay=0.95, tta="flip-translate", whiten_init=True, freeze_bn_weight=True),
}


def make_config(profile: str | None = None, **overrides) -> Config:
    """Defaults ← the named profile ← `overrides`. Unknown keys are an error; an override of
    None keeps the default (so notebook parameters can leave things unset)."""
    values: dict = {}
    if profile:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        values.update(PROFILES[profile], profile=profile)
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known keys: {', '.join(sorted(known))}")
    values.update({k: v for k, v in overrides.items() if v is not None})  # None: keep the default
    return Config(**values)
