"""Benchmarks: a profile trained over several seeds, or raw training throughput.

    python -m src.bench --profile fast --seeds 3 --data-dir DIR            # accuracy and time
    python -m src.bench --throughput --models fast seed --precisions fp32 bf16

Prints a table and writes JSON (default runs/bench/<profile>-<timestamp>.json). Training
seconds count optimisation steps only: no evaluation, checkpoint writing, or the warm-up
run that goes first (torch.compile, cuDNN autotuning). Runs without papermill.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from . import models, paths
from .config import make_config
from .data import load_competition
from .device import autocast, describe, images_to_tensor, pick_device, pick_precision
from .engine import train
from .predict import evaluate


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def bench_profile(profile: str, seeds: int, data_dir=None, first_seed: int = 0, **overrides) -> dict:
    data = load_competition(data_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cfg0 = make_config(profile, data_dir=data_dir, **overrides)
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: compile, autotune; not recorded
        warm = make_config(profile, data_dir=data_dir, **{**overrides, "epochs": 1, "progress": False,
                                                         "train_limit": 4 * cfg0.batch_size})
        train(warm, data, run_dir=Path(tmp) / "warmup")
    rows = []
    for seed in range(first_seed, first_seed + seeds):
        cfg = make_config(profile, data_dir=data_dir, seed=seed, name=f"bench-{profile}-{stamp}-s{seed}", **overrides)
        r = train(cfg, data)
        row = {"seed": seed, "run_dir": str(r.run_dir), "val_acc": r.final.get("val_acc"),
               "ema_val_acc": r.final.get("ema_val_acc"), "val_acc_tta": r.final.get("val_acc_tta"),
               "train_seconds": r.train_seconds, "images_per_second": r.images_per_second,
               "peak_memory_mb": r.peak_memory_mb, "device": r.device, "precision": r.precision,
               "params": r.params}
        if data.test_x is not None:
            dev = pick_device(cfg.device)
            row["test_acc_tta"] = evaluate(r.model, images_to_tensor(data.test_x, dev),
                                           torch.as_tensor(data.test_y), r.mean, r.std, tta=cfg.tta,
                                           precision=r.precision)["acc"]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "run_dir"}), flush=True)
    summary = {"profile": profile, "seeds": seeds, "overrides": overrides, "config": cfg0.to_dict(),
               "runs": rows, "date": time.strftime("%Y-%m-%d")}
    for key in ("val_acc", "ema_val_acc", "val_acc_tta", "test_acc_tta", "train_seconds", "images_per_second"):
        mean, std = _mean_std([r.get(key) for r in rows])
        if mean is not None:
            summary[key] = {"mean": mean, "std": std}
    return summary


def throughput(model_names, precisions, batch_size=256, steps=5, device="auto", channels_last=True) -> list[dict]:
    """Training images/s on fixed random batches: the model's own cost, without data or eval."""
    dev = pick_device(device)
    out = []
    for name in model_names:
        for precision in precisions:
            precision = pick_precision(dev, precision)
            torch.manual_seed(0)
            model = models.build(name).to(dev)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            model.to(memory_format=fmt)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            x = torch.randn(batch_size, 3, 32, 32, device=dev).contiguous(memory_format=fmt)
            y = torch.randint(0, 10, (batch_size,), device=dev)

            def step():
                with autocast(dev, precision):
                    loss = torch.nn.functional.cross_entropy(model(x).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            step()  # warm-up
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds = time.perf_counter() - t0
            row = {"model": name, "precision": precision, "batch_size": batch_size,
                   "channels_last": channels_last, "images_per_second": steps * batch_size / seconds,
                   "epoch_seconds_50k": 50_000 / (steps * batch_size / seconds), "device": describe(dev)}
            print(json.dumps(row), flush=True)
            out.append(row)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="fast")
    p.add_argument("--seeds", type=int, default=3, help="how many seeds")
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed … first-seed + seeds - 1")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--precision", default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--throughput", action="store_true", help="measure training images/s only")
    p.add_argument("--models", nargs="+", default=["fast", "seed"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", default=None, help="JSON path")
    a = p.parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if a.throughput:
        result = {"throughput": throughput(a.models, a.precisions, a.batch_size or 256, a.steps, a.device or "auto"),
                  "date": time.strftime("%Y-%m-%d")}
        default_out = paths.runs_dir() / "bench" / f"throughput-{stamp}.json"
    else:
        overrides = {k: v for k, v in dict(epochs=a.epochs, device=a.device, precision=a.precision,
                                           compile=a.compile, batch_size=a.batch_size).items() if v is not None}
        result = bench_profile(a.profile, a.seeds, a.data_dir, a.first_seed, progress=False, **overrides)
        default_out = paths.runs_dir() / "bench" / f"{a.profile}-{stamp}.json"
        print("\n| metric | mean | std |\n|---|---|---|")
        for key in ("val_acc", "ema_val_acc", "val_acc_tta", "test_acc_tta", "train_seconds", "images_per_second"):
            if key in result:
                print(f"| {key} | {result[key]['mean']:.4f} | {result[key]['std']:.4f} |")
    out = Path(a.out) if a.out else default_out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
