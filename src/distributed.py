"""Data-parallel training over several processes, with PyTorch's own stack: `torchrun`
starts one process per GPU (or CPU worker) and sets WORLD_SIZE / RANK / LOCAL_RANK; the
engine sees them, joins the process group (NCCL on GPUs, gloo on CPUs) and wraps the model
in DistributedDataParallel. Nothing here starts processes by hand.

    torchrun --standalone --nproc_per_node=2 -m src.train --profile fast   # Kaggle's T4 ×2

From a notebook, `launch(cfg, nproc)` runs that same command as a subprocess, streams its
output into the cell and raises when it fails.

The split of work: every rank holds the whole training set on its device and draws the same
global permutation each epoch; rank r takes the r-th contiguous slice of batch_size / N
samples of each global batch, so a seed gives one global sample order whatever N is.
Gradients are averaged by DDP; loss and accuracy sums are all-reduced; rank 0 evaluates,
writes every file and broadcasts the epoch's row, so all ranks stop together.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import subprocess
import sys
import typing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from . import paths
from .config import PROFILES, Config, make_config


# --- inside a rank ------------------------------------------------------------------------------

def env_world_size() -> int:
    """How many processes torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class Context:
    """This process's place in the job. The default is the single-process run, for which
    every method below is a no-op, so the engine has one code path."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None
    backend: str | None = None
    owns_group: bool = False  # this process called init_process_group (and will destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, *values: torch.Tensor) -> list[float]:
        """Each tensor's value summed over all ranks (one all_reduce for all of them)."""
        if not self.enabled:
            return [v.item() for v in values]
        t = torch.stack([v.detach().to(torch.float64) for v in values])
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (a picklable object)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list | None:
        """Every rank's `obj`, in rank order, on rank 0 (None elsewhere)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def close(self) -> None:
        """Leave the process group at the end of a successful run. (After an exception the
        group is left as it is: the process exits, and torchrun ends the other ranks.)"""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False


def setup(device: str = "auto", timeout: float = 300.0) -> Context:
    """Join the job torchrun started, or return the single-process Context.

    Device: `auto` or `cuda` → cuda:LOCAL_RANK with NCCL; `cpu` (or no GPU) → CPU with gloo.
    `timeout` (seconds) bounds every collective, so a rank that stops answering ends the run
    with an error instead of a hang."""
    world = env_world_size()
    if world <= 1:
        return Context()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"local rank {local_rank} has no GPU: torch sees {torch.cuda.device_count()}; "
                               "start at most that many processes per node")
        dev, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(dev)
    elif device in ("auto", "cpu"):
        dev, backend = torch.device("cpu"), "gloo"
    elif device == "cuda":
        raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA GPU")
    else:
        raise ValueError(f"under torchrun each rank uses cuda:LOCAL_RANK; pass device 'auto', 'cuda' "
                         f"or 'cpu', not {device!r}")
    owns = False
    if not dist.is_initialized():
        kw = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout), **kw)
        owns = True
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise RuntimeError("the initialised process group disagrees with WORLD_SIZE / RANK")
    return Context(rank=rank, world_size=world, local_rank=local_rank, device=dev, backend=backend,
                   owns_group=owns)


class _AllReduceSum(torch.autograd.Function):
    """all_reduce(SUM) with a gradient: the backward pass sums the incoming gradients too."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """SyncBatchNorm for CPU processes (gloo). PyTorch's nn.SyncBatchNorm is GPU-only (its
    kernels, and DDP refuses it in a CPU module); on CPU this computes the same thing (batch
    mean and biased variance over the global batch; running stats with the unbiased variance)
    from two differentiable all_reduces. Used by CPU runs and the tests; GPUs get
    nn.SyncBatchNorm. In evaluation, or without a process group, it is plain BatchNorm."""

    def __init__(self, *args, process_group=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        self._check_input_dim(x)
        group = self.process_group or dist.group.WORLD
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        xf = x if x.dtype in (torch.float32, torch.float64) else x.float()  # statistics in fp32+
        count = xf.new_tensor([x.numel() // x.size(1)])
        sums = _AllReduceSum.apply(torch.cat([xf.sum(dims), count]), group)
        n = sums[-1]
        mean = sums[:-1] / n
        centred = xf - mean.view(shape)
        var = _AllReduceSum.apply(centred.square().sum(dims), group) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                self.running_mean.mul_(1 - f).add_(mean.detach(), alpha=f)
                self.running_var.mul_(1 - f).add_(var.detach() * (n / (n - 1)), alpha=f)
        return y.to(x.dtype)


def _cpu_sync_batchnorm(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        out = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:  # the same Parameter objects: requires_grad and optimiser groups kept
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _cpu_sync_batchnorm(child))
    return out


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm layer → a synchronised one sharing its parameters and buffers
    (nn.SyncBatchNorm on GPUs, CpuSyncBatchNorm on CPUs). State-dict keys do not change."""
    if device.type == "cpu":
        return _cpu_sync_batchnorm(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


# --- from a notebook: start torchrun ------------------------------------------------------------

class LaunchError(RuntimeError):
    """The torchrun job exited non-zero; the failing rank's traceback is in the output above."""


def visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_nproc(nproc: int | str | None, device: str = "auto") -> int:
    """`auto` → one process per visible GPU (1 with one GPU, none, or device='cpu');
    an integer is taken as it is."""
    if nproc in (None, "", "auto"):
        return max(1, visible_gpus()) if not str(device).startswith("cpu") else 1
    n = int(nproc)
    if n < 1:
        raise ValueError(f"nproc must be ≥ 1 or 'auto', not {nproc!r}")
    return n


def config_to_argv(cfg: Config) -> list[str]:
    """Flags for `python -m src.train` that rebuild `cfg` exactly: every field is passed
    explicitly (None fields are left at their None default)."""
    argv = ["--profile", cfg.profile] if cfg.profile in PROFILES else []
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        value = getattr(cfg, f.name)
        if f.name == "profile" or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            if value:  # (an empty list cannot be a flag: it keeps the default)
                argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def torchrun_command(cfg: Config, nproc: int, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "src.train", *config_to_argv(cfg)]


def launch(cfg: Config | dict, nproc: int | str = "auto", *, env: dict | None = None,
           cwd: str | os.PathLike | None = None, out=None) -> Path:
    """Train `cfg` (a Config, or overrides for make_config incl. `profile`) with `nproc`
    processes under torchrun; stream the job's output to `out` (default sys.stdout, i.e.
    the notebook cell) as it comes; raise LaunchError on a non-zero exit. Returns the run
    folder runs/<name>/ (a name is chosen here when the config has none, so it is known).
    The job runs in `cwd` (default: this process's folder, so a relative data_dir means the
    same) with the package's root on PYTHONPATH."""
    if isinstance(cfg, dict):
        overrides = dict(cfg)
        cfg = make_config(overrides.pop("profile", None), **overrides)
    n = resolve_nproc(nproc, cfg.device)
    if not cfg.name:
        from .engine import run_name
        cfg = dataclasses.replace(cfg, name=run_name(cfg))
    cmd = torchrun_command(cfg, n)
    run_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    repo = str(paths.REPO_ROOT)  # `-m src.train` finds the package from the notebook's folder too
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, run_env.get("PYTHONPATH")) if p)
    out = out or sys.stdout
    out.write(f"$ {' '.join(cmd)}\n")
    out.flush()
    proc = subprocess.Popen(cmd, cwd=cwd, env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while chunk := proc.stdout.read1(65536):  # whatever has arrived: progress bars stay live
            out.write(decoder.decode(chunk))
            out.flush()
        out.write(decoder.decode(b"", final=True))
        rc = proc.wait()
    except BaseException:  # e.g. the notebook's interrupt: do not leave the job running
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if rc != 0:
        raise LaunchError(f"torchrun with {n} processes exited with code {rc}; the failing rank's "
                          f"traceback is in the output above. Command: {' '.join(cmd)}")
    return paths.runs_dir() / cfg.name
