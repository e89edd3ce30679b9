"""Device and precision choice, in one place.

bf16 autocast where the hardware computes it natively (CUDA sm_80+, CPUs with avx512_bf16 or
AMX), fp16 with a gradient scaler on sm_7x (Kaggle's T4), fp32 elsewhere (Kaggle's P100).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return dev


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def pick_precision(device: torch.device, precision: str = "auto") -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16" if major == 7 else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def pick_compile(device: torch.device, compile: bool | None = None) -> bool:
    """torch.compile pays for its start-up on GPUs Triton supports (sm_70+: T4 yes, P100 no);
    on CPUs it is off unless asked for."""
    if compile is not None:
        return compile
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 7


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 gradients underflow without scaling; the scaler is a no-op otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def to_nchw(images) -> torch.Tensor:
    """A uint8 batch, (N,H,W,3) as the pickles hold it or already (N,3,H,W), as a (N,3,H,W)
    tensor on the device it was on."""
    t = torch.as_tensor(images)
    if t.dtype != torch.uint8 or t.ndim != 4:
        raise ValueError(f"expected a batch of uint8 images, got {tuple(t.shape)} {t.dtype}")
    if t.shape[1] == 3 and t.shape[-1] != 3:
        return t
    if t.shape[-1] == 3:
        return t.permute(0, 3, 1, 2).contiguous()
    raise ValueError(f"cannot tell the channel axis of images shaped {tuple(t.shape)}")


def images_to_tensor(images, device: torch.device) -> torch.Tensor:
    """uint8 images → (N,3,H,W) uint8 on `device`; kept as uint8 so the whole training set
    stays resident (150 MB) and is converted per batch."""
    return to_nchw(images).to(device)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
