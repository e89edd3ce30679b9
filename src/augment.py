"""Batched augmentation on whichever device holds the data.

Each function takes a float batch (N,C,H,W) and draws its random parameters per image, in
one vectorised call: no per-image Python, PIL or loader workers. (torchvision's v2
transforms draw one set of parameters per call, i.e. per batch, which is why the report's
per-image policy is re-expressed here with the same semantics as torchvision's kernels.)

Policies (`POLICIES`): `none`, `flip`, `flip-translate` (the speed records' choice),
`flip-translate-cutout`, and `report` (the seed report's torchvision pipeline).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def flip(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    mask = torch.rand(len(x), device=x.device) < p
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def translate(x: torch.Tensor, pad: int, mode: str = "reflect") -> torch.Tensor:
    """Random crop of the original size from the image padded by `pad` on each side."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pad,) * 4, mode=mode)
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    # two gathers (rows, then columns) read each output pixel once
    x = padded.gather(2, rows.expand(n, c, h, w + 2 * pad))
    return x.gather(3, cols.expand(n, c, h, w))


def erase(x: torch.Tensor, p: float, scale=(0.02, 0.1), ratio=(0.3, 3.3), value: float = 0.0,
          square: int | None = None) -> torch.Tensor:
    """Random erasing (torchvision semantics: area fraction in `scale`, log-uniform aspect in
    `ratio`), or with `square` a fixed-size cutout; applied to each image with probability p."""
    n, _, h, w = x.shape
    dev = x.device
    if square:
        eh = ew = torch.full((n,), square, device=dev)
    else:
        area = h * w * torch.empty(n, device=dev).uniform_(*scale)
        logr = torch.empty(n, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]))
        aspect = torch.exp(logr)
        eh = torch.sqrt(area * aspect).round().clamp(1, h)
        ew = torch.sqrt(area / aspect).round().clamp(1, w)
    top = (torch.rand(n, device=dev) * (h - eh + 1)).floor()
    left = (torch.rand(n, device=dev) * (w - ew + 1)).floor()
    ys = torch.arange(h, device=dev)[None, :, None]
    xs = torch.arange(w, device=dev)[None, None, :]
    box = ((ys >= top[:, None, None]) & (ys < (top + eh)[:, None, None]) &
           (xs >= left[:, None, None]) & (xs < (left + ew)[:, None, None]))
    box &= (torch.rand(n, device=dev) < p)[:, None, None]
    return x.masked_fill(box[:, None], value)


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotation by a uniform angle in ±degrees about the centre, nearest pixel, zero fill."""
    n = len(x)
    angle = torch.empty(n, device=x.device).uniform_(-degrees, degrees) * math.pi / 180
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor[:, None, None, None] * a + (1 - factor[:, None, None, None]) * b).clamp(0, 1)


def _factors(n: int, amount: float, device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(max(0.0, 1 - amount), 1 + amount)


def color_jitter(x: torch.Tensor, brightness: float = 0.1, contrast: float = 0.1,
                 saturation: float = 0.1) -> torch.Tensor:
    """Brightness, contrast, saturation with per-image factors, on [0,1] images (the order is
    fixed where torchvision permutes it; the distribution of each factor is the same)."""
    n = len(x)
    x = _blend(x, torch.zeros_like(x), _factors(n, brightness, x.device))
    mean = _gray(x).mean((1, 2, 3), keepdim=True)
    x = _blend(x, mean.expand_as(x), _factors(n, contrast, x.device))
    return _blend(x, _gray(x).expand_as(x), _factors(n, saturation, x.device))


def sharpen(x: torch.Tensor, factor: float = 2.0, p: float = 0.2) -> torch.Tensor:
    """torchvision's adjust_sharpness (blend with a 3×3 smoothed image, borders kept)."""
    kernel = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device) / 13
    c = x.shape[1]
    blurred = F.conv2d(x, kernel.expand(c, 1, 3, 3), groups=c)
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = blurred
    sharp = _blend(x, smooth, torch.full((len(x),), factor, device=x.device, dtype=x.dtype))
    mask = torch.rand(len(x), device=x.device) < p
    return torch.where(mask[:, None, None, None], sharp, x)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


POLICIES = ("none", "flip", "flip-translate", "flip-translate-cutout", "report")


def augment(x: torch.Tensor, policy: str, mean: torch.Tensor, std: torch.Tensor,
            translate_pad: int = 2, cutout: int = 12) -> torch.Tensor:
    """uint8 or [0,1] float batch (N,3,H,W) → augmented, normalised float batch."""
    if policy not in POLICIES:
        raise ValueError(f"unknown augmentation policy {policy!r}; choose one of {', '.join(POLICIES)}")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if policy == "report":
        # RandomCrop(32, padding=4) → HorizontalFlip → Rotation(10) → ColorJitter(.1,.1,.1)
        # → AdjustSharpness(2, p=.2) → Normalize → RandomErasing(p=.2, scale=(.02,.1))
        x = translate(x, 4, mode="constant")
        x = flip(x)
        x = rotate(x, 10)
        x = color_jitter(x, 0.1, 0.1, 0.1)
        x = sharpen(x, 2.0, 0.2)
        return erase(normalize(x, mean, std), p=0.2, scale=(0.02, 0.1))
    if policy != "none":
        x = flip(x)
    if policy.startswith("flip-translate"):
        x = translate(x, translate_pad)
    x = normalize(x, mean, std)
    if policy == "flip-translate-cutout":
        x = erase(x, p=1.0, square=cutout)
    return x
