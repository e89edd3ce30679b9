"""The training engine, top to bottom: data onto the device, model, optimiser and schedule,
the loop (batched on-device augmentation, autocast, EMA), evaluation, checkpoints.

The training set lives on the device as uint8 (150 MB); each step draws a batch by index
from a seeded permutation and augments it there. No loader workers, no per-image Python.
A run folder `runs/<name>/` holds config.json, metrics.csv, last.pt (everything needed to
resume: weights, EMA, optimiser, schedule, RNG states) and best.pt.

Under torchrun the same function runs in every process with DistributedDataParallel (see
src/distributed.py): each rank takes its slice of every global batch, and rank 0 alone
evaluates and writes the run folder, in the same format as a single-process run.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import lr_scheduler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import augment, distributed, models, paths
from .config import Config
from .data import Cifar, load_competition, stratified_split
from .device import (autocast, describe, grad_scaler, images_to_tensor, pick_compile, pick_device,
                     pick_precision)
from .predict import evaluate


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss diverged); the last good checkpoint is kept."""


@dataclass
class Result:
    run_dir: Path
    config: Config
    history: list[dict]
    model: nn.Module          # the weights that predict: EMA when enabled, else raw
    mean: torch.Tensor
    std: torch.Tensor
    params: int
    device: str
    precision: str
    train_seconds: float      # optimisation steps only: no evaluation, no checkpoint writing
    images_per_second: float
    peak_memory_mb: float
    final: dict = field(default_factory=dict)  # last evaluation, with the run's TTA
    rank: int = 0             # this process's rank under torchrun (0 in a single process)
    world_size: int = 1


# --- pieces -----------------------------------------------------------------------------------

def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 (N,3,H,W) images, on the [0,1] scale."""
    x = images.float() / 255
    return x.mean((0, 2, 3)).cpu(), x.std((0, 2, 3)).cpu()


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """SGD; weight decay on conv/linear weights only, BatchNorm parameters and biases in a
    group of their own (no decay, lr × bias_lr_scale)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim > 1]
    no_decay = [p for p in trainable if p.ndim <= 1]
    groups = [dict(params=decay, weight_decay=cfg.weight_decay, lr=cfg.lr),
              dict(params=no_decay, weight_decay=0.0, lr=cfg.lr * cfg.bias_lr_scale)]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def make_scheduler(opt, cfg: Config, steps_per_epoch: int):
    """Stepped once per optimisation step."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "multistep":
        return lr_scheduler.MultiStepLR(opt, [m * steps_per_epoch for m in cfg.milestones], cfg.gamma)
    if cfg.schedule == "constant":
        return lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    if cfg.schedule not in ("onecycle", "cosine"):
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose onecycle, cosine, multistep or constant")
    warm = min(total - 1, round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "onecycle":  # linear up, linear down to final_lr_frac
        decay = lr_scheduler.LinearLR(opt, 1.0, cfg.final_lr_frac, total_iters=max(1, total - warm))
    else:
        decay = lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total - warm), eta_min=0.0)
    if warm <= 0:
        return decay
    warmup = lr_scheduler.LinearLR(opt, 1.0 / (warm + 1), 1.0, total_iters=warm)
    return lr_scheduler.SequentialLR(opt, [warmup, decay], milestones=[warm])


def set_bn_weight_frozen(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
            m.weight.requires_grad_(False)


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill leaves the old file intact."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_metrics(history: list[dict], path: Path) -> None:
    if not history:
        return
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[-1]))
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, path)


def run_name(cfg: Config) -> str:
    return cfg.name or f"{cfg.profile}-{time.strftime('%Y%m%d-%H%M%S')}"


# --- the run ------------------------------------------------------------------------------------

def train(cfg: Config, data: Cifar | None = None, on_epoch=None, run_dir: Path | None = None) -> Result:
    """Train as `cfg` says; `on_epoch(row, history)` is called after each epoch (live plots).

    Under torchrun (WORLD_SIZE > 1) this joins the process group, trains with DDP and
    leaves the group at the end; `on_epoch` is called in rank 0 only. An exception in any
    rank propagates (non-zero exit; torchrun then ends the other ranks)."""
    ctx = distributed.setup(cfg.device, cfg.dist_timeout)
    result = _train(cfg, data, on_epoch, run_dir, ctx)
    ctx.close()
    return result


def _train(cfg: Config, data: Cifar | None, on_epoch, run_dir: Path | None,
           ctx: distributed.Context) -> Result:
    if ctx.enabled and cfg.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} (the global batch) is not divisible by the "
                         f"{ctx.world_size} processes")
    dev = ctx.device if ctx.enabled else pick_device(cfg.device)
    precision = pick_precision(dev, cfg.precision)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(cfg.seed)  # the model's initialisation: the same in every rank

    # Data: a stratified hold-out, both parts resident on the device as uint8.
    data = data if data is not None else load_competition(cfg.data_dir, cfg.competition)
    train_idx, val_idx = stratified_split(data.train_y, cfg.val_size, cfg.seed)
    if cfg.train_limit:
        train_idx = train_idx[:cfg.train_limit]
    X = images_to_tensor(data.train_x[train_idx], dev)
    Y = torch.as_tensor(data.train_y[train_idx]).to(dev)
    Xv = images_to_tensor(data.train_x[val_idx], dev)
    Yv = torch.as_tensor(data.train_y[val_idx]).to(dev)
    mean, std = channel_stats(X)
    mean_d, std_d = mean.to(dev), std.to(dev)

    # Model.
    model = models.build(cfg.model)
    n_params = models.check_param_limit(model, cfg.model, cfg.allow_over_limit)
    if cfg.freeze_bn_weight:
        set_bn_weight_frozen(model)
    if cfg.whiten_init and hasattr(model, "init_whitening"):
        model.init_whitening(augment.normalize(X[:10000].float() / 255, mean_d, std_d).cpu())
    model.to(dev)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    if ctx.enabled and cfg.sync_bn:
        model = distributed.convert_sync_batchnorm(model, dev)
    ema = None
    if cfg.ema_decay and ctx.is_main:  # rank 0 alone evaluates and saves the EMA weights
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    forward = model
    if ctx.enabled:  # gradients averaged over ranks; rank 0's weights and buffers broadcast at the start
        forward = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        torch.manual_seed(cfg.seed + ctx.rank)  # each rank draws its own augmentations
    forward = torch.compile(forward) if pick_compile(dev, cfg.compile) else forward

    # Optimisation. batch_size is the global batch; each rank takes its slice of it.
    batch_size = min(cfg.batch_size, len(X))
    batch_size -= batch_size % ctx.world_size
    local_batch = batch_size // ctx.world_size
    steps_per_epoch = max(1, len(X) // batch_size)  # drop the ragged last batch: fixed shapes
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, steps_per_epoch)
    scaler = grad_scaler(dev, precision)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    order = torch.Generator().manual_seed(cfg.seed)  # the sample order: the same on any device, in any rank

    # Run folder, or resume. Rank 0 writes; every rank reads last.pt to resume.
    run_dir = Path(run_dir) if run_dir else paths.runs_dir() / ctx.broadcast(run_name(cfg))
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    history: list[dict] = []
    start_epoch, best_acc = 0, -1.0
    if cfg.resume:
        if not last.is_file():
            raise FileNotFoundError(f"resume asked for, but {last} does not exist")
        ckpt = torch.load(last, map_location=dev, weights_only=True)
        model.load_state_dict(ckpt["model"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema_state"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        rng_cpu, rng_cuda = ckpt["rng_cpu"], ckpt.get("rng_cuda")
        per_rank = ckpt.get("rng_ranks")  # written by multi-process runs: each rank's own streams
        if ctx.enabled and per_rank is not None and len(per_rank) == ctx.world_size:
            rng_cpu, rng_cuda = per_rank[ctx.rank]["cpu"], per_rank[ctx.rank]["cuda"]
        elif ctx.rank > 0:  # resumed with another number of processes: a fresh stream per rank
            rng_cpu = rng_cuda = None
            torch.manual_seed(cfg.seed + ctx.rank + 7919 * ckpt["epoch"])
        # RNG states must be CPU byte tensors, whatever map_location moved them to
        if rng_cpu is not None:
            torch.set_rng_state(rng_cpu.cpu())
        if dev.type == "cuda" and rng_cuda is not None:
            torch.cuda.set_rng_state(rng_cuda.cpu(), dev)
        order.set_state(ckpt["rng_order"].cpu())
        history, start_epoch, best_acc = ckpt["history"], ckpt["epoch"], ckpt["best_acc"]
        del ckpt
    elif last.exists():
        raise FileExistsError(f"{run_dir} already holds a run; resume it (resume=True) or pick a new name")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(run_dir / "config.json")

    def weights_for_prediction():
        return ema.module if ema is not None else model

    eval_kw = dict(batch_size=cfg.eval_batch_size, precision=precision, channels_last=cfg.channels_last)
    train_seconds = sum(r["epoch_seconds"] for r in history)
    bar = None
    if cfg.progress and ctx.is_main:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
                   desc=run_dir.name, unit="step", dynamic_ncols=True)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        perm = torch.randperm(len(X), generator=order).to(dev)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        for step in range(steps_per_epoch):
            start = step * batch_size + ctx.rank * local_batch  # this rank's slice of the global batch
            idx = perm[start:start + local_batch]
            x = augment.augment(X[idx], cfg.augment, mean_d, std_d, cfg.translate_pad, cfg.cutout)
            x = x.contiguous(memory_format=memory_format)
            y = Y[idx]
            with autocast(dev, precision):
                logits = forward(x)
                loss = criterion(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            # accumulate on the device: no host sync inside the loop
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            if bar is not None:
                bar.update()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds

        seen = steps_per_epoch * batch_size
        loss_total, correct_total = ctx.sum(loss_sum, correct)  # over all ranks: the same in each
        train_loss = loss_total / seen
        if not math.isfinite(train_loss):  # every rank sees the same sum, so all stop together
            if bar is not None:
                bar.close()
            raise TrainingError(f"loss became {train_loss} in epoch {epoch + 1}; stopped. The last good "
                                f"checkpoint is kept at {last if last.exists() else '(none yet)'}. "
                                "Lower lr, or use precision='fp32'.")
        row = {"epoch": epoch + 1, "lr": sched.get_last_lr()[0], "train_loss": train_loss,
               "train_acc": correct_total / seen}
        final_epoch = epoch + 1 == cfg.epochs
        if ctx.enabled:  # every rank's augmentation RNG, for rank 0 to save (an exact resume)
            rng_ranks = ctx.gather({"cpu": torch.get_rng_state(),
                                    "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None})
        if not ctx.is_main:  # rank 0 evaluates and writes; the others take its row
            row = ctx.broadcast(None)
            history.append(row)
            continue
        if len(Xv):
            # per epoch without TTA (cheap); the last epoch also with the run's TTA
            raw = evaluate(model, Xv, Yv, mean, std, **eval_kw)
            row.update(val_loss=raw["loss"], val_acc=raw["acc"])
            if ema is not None:
                e = evaluate(ema.module, Xv, Yv, mean, std, **eval_kw)
                row.update(ema_val_loss=e["loss"], ema_val_acc=e["acc"])
            if final_epoch and cfg.tta != "none":
                row["val_acc_tta"] = evaluate(weights_for_prediction(), Xv, Yv, mean, std,
                                              tta=cfg.tta, **eval_kw)["acc"]
        row.update(epoch_seconds=epoch_seconds, train_seconds=train_seconds)
        history.append(row)

        score = row.get("ema_val_acc" if ema is not None else "val_acc", float(epoch))
        meta = {"config": cfg.to_dict(), "mean": mean, "std": std, "epoch": epoch + 1,
                "metrics": row, "params": n_params}
        state = {"model": model.state_dict(), "ema": ema.module.state_dict() if ema is not None else None}
        if score >= best_acc:
            best_acc = score
            atomic_save({**meta, **state}, best)
        atomic_save({**meta, **state, "ema_state": ema.state_dict() if ema is not None else None,
                     "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "scaler": scaler.state_dict(), "rng_cpu": torch.get_rng_state(),
                     "rng_cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
                     "rng_order": order.get_state(), "history": history, "best_acc": best_acc,
                     **({"rng_ranks": rng_ranks} if ctx.enabled else {})}, last)
        write_metrics(history, run_dir / "metrics.csv")
        ctx.broadcast(row)
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("train_loss", "val_acc", "ema_val_acc")})
        if on_epoch is not None:
            on_epoch(row, history)
    if bar is not None:
        bar.close()

    seen_total = len(history) * steps_per_epoch * batch_size
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else float("nan")
    return Result(run_dir=run_dir, config=cfg, history=history, model=weights_for_prediction(),
                  mean=mean, std=std, params=n_params, device=describe(dev), precision=precision,
                  train_seconds=train_seconds, images_per_second=seen_total / max(train_seconds, 1e-9),
                  peak_memory_mb=peak, final=history[-1] if history else {}, rank=ctx.rank,
                  world_size=ctx.world_size)
