"""The networks: the report's SE-ResNet (`seed`), a fast net under 5M (`fast`), and a
ResNet-18 baseline. `build(name)` makes one by name; `param_table` splits its parameters
into the components the report tabulates.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

PARAM_LIMIT = 5_000_000  # the competition's hard limit


# --- seed: the report's SE-ResNet, exactly (4,905,430 parameters) -----------------------

class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x):
        w = self.fc(x.mean((2, 3)))
        return x * w[:, :, None, None]


def conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]


class SEBlock(nn.Module):
    """Bottlenecked 3×conv3×3 residual block with squeeze-excitation and spatial dropout."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float = 0.2):
        super().__init__()
        mid = cout // 2
        self.body = nn.Sequential(
            *conv_bn(cin, mid), nn.LeakyReLU(0.1, inplace=True),
            *conv_bn(mid, mid, stride), nn.LeakyReLU(0.1, inplace=True),
            *conv_bn(mid, cout))
        self.se = SqueezeExcite(cout)
        self.drop = nn.Dropout2d(dropout)
        reshape = stride != 1 or cin != cout
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, stride, kernel=1)) if reshape else nn.Identity()

    def forward(self, x):
        return F.leaky_relu(self.drop(self.se(self.body(x))) + self.shortcut(x), 0.1)


class SEResNet(nn.Module):
    def __init__(self, stem: int = 96, stages=((124, 4, 1), (189, 4, 2), (280, 3, 2)),
                 num_classes: int = 10, dropout: float = 0.2):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, stem), nn.LeakyReLU(0.1, inplace=True))
        blocks, cin = [], stem
        for cout, n, stride in stages:
            for i in range(n):
                blocks.append(SEBlock(cin, cout, stride if i == 0 else 1, dropout))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


# --- fast: a compact VGG-style net in the manner of the speed records ---------------------

class ConvGroup(nn.Module):
    """conv → max-pool → BN → GELU, then `depth - 1` more conv → BN → GELU at the lower size."""

    def __init__(self, cin: int, cout: int, depth: int = 2):
        super().__init__()
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2),
                  nn.BatchNorm2d(cout), nn.GELU()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class FastNet(nn.Module):
    """A 2×2 patch-whitening stem (initialised from data by `init_whitening`), three conv
    groups that halve the resolution (31→15→7→3), global max-pool and a scaled linear head.
    Pooling early keeps most convolutions at 15×15 or smaller, which is what makes it fast."""

    def __init__(self, widths=(64, 256, 256), depth: int = 2, num_classes: int = 10,
                 whiten_width: int = 24, head_scale: float = 1 / 9):
        super().__init__()
        self.whiten = nn.Conv2d(3, whiten_width, 2, padding=0, bias=True)
        groups, cin = [], whiten_width
        for w in widths:
            groups.append(ConvGroup(cin, w, depth))
            cin = w
        self.groups = nn.Sequential(*groups)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.head_scale = head_scale  # keeps initial logits small, like a temperature
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.4  # short runs: running stats must follow the weights quickly

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to whiten 2×2 patches of `images` (N,3,H,W float, normalised):
        eigenvectors of the patch covariance scaled by 1/sqrt(eigenvalue), and their negatives,
        so the first GELU sees decorrelated unit-variance inputs from step one. The filters are
        then frozen; only the bias trains."""
        k = self.whiten.kernel_size[0]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # N,C,H',W',k,k
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * k * k)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        eigval, eigvec = torch.linalg.eigh(cov)
        filters = (eigvec.T / torch.sqrt(eigval + eps)[:, None]).flip(0)  # largest first
        filters = filters.reshape(-1, 3, k, k)
        n = self.whiten.out_channels // 2
        self.whiten.weight.copy_(torch.cat([filters[:n], -filters[:n]]).to(self.whiten.weight))
        self.whiten.weight.requires_grad_(False)  # a fixed transform: large lrs would wreck it
        self.whiten.bias.zero_()

    def forward(self, x):
        x = F.gelu(self.whiten(x))
        x = self.groups(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) * self.head_scale


# --- resnet18: the usual CIFAR ResNet-18 baseline (11.2M, over the limit) -----------------

class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, stride), nn.ReLU(inplace=True), *conv_bn(cout, cout))
        reshape = stride != 1 or cin != cout
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, stride, kernel=1)) if reshape else nn.Identity()

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 64), nn.ReLU(inplace=True))  # 3×3 stride 1, no max-pool
        blocks, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


# --- registry ------------------------------------------------------------------------------

REGISTRY = {
    "seed": SEResNet,
    "fast": FastNet,
    "fast-wide": lambda **kw: FastNet(widths=(128, 384, 384), **kw),
    "resnet18": ResNet18,
}


def build(name: str, **kwargs) -> nn.Module:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name](**kwargs)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_param_limit(model: nn.Module, name: str, allow_over_limit: bool = False) -> int:
    """The competition allows at most 5M parameters; refuse a bigger model unless told."""
    n = count_params(model)
    if n > PARAM_LIMIT and not allow_over_limit:
        raise ValueError(f"model {name!r} has {n:,} parameters, over the competition's limit of "
                         f"{PARAM_LIMIT:,}; pass allow_over_limit=True to train it anyway "
                         "(e.g. as a baseline), but it cannot be submitted")
    return n


def _component(param_name: str) -> str:
    if param_name.startswith(("stem", "whiten")):
        return "stem"
    if ".se." in param_name:
        return "squeeze-excitation"
    if ".shortcut." in param_name:
        return "shortcuts"
    if param_name.startswith("head"):
        return "head"
    return "residual blocks" if param_name.startswith("blocks") else "conv groups"


def param_table(model: nn.Module) -> "OrderedDict[str, int]":
    """Parameters per component (stem, residual blocks, shortcuts, squeeze-excitation, head),
    as the report's table gives them; the values add up to `count_params(model)`."""
    table: OrderedDict[str, int] = OrderedDict()
    for name, p in model.named_parameters():
        key = _component(name)
        table[key] = table.get(key, 0) + p.numel()
    table["total"] = count_params(model)
    return table
