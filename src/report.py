"""Numbers and tables for the notebooks: data statistics, duplicates, evaluation of a run
(confusion matrix, per-class accuracy, calibration), corruptions as a shift proxy, and the
model table. Figures of the same things are in `src.plots`.

Every function that makes a table returns it (a pandas DataFrame shows inline in a notebook)
and, given `path`, also writes it: `.csv` as CSV, `.md` as a markdown table.

Images are uint8 throughout: (N,32,32,3) height×width×channel numpy arrays as `src.data`
loads them, or (N,3,H,W) tensors as the model takes them (see `to_nchw`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import models, paths
from .device import to_nchw

CHANNELS = ("red", "green", "blue")


# --------------------------------------------------------------------------- helpers

def to_nhwc(images) -> np.ndarray:
    """Any uint8 batch `to_nchw` accepts → (N,H,W,3) numpy array (for plotting, hashing)."""
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[-1] == 3:
        return images
    return to_nchw(images).permute(0, 2, 3, 1).cpu().numpy()


def to_markdown(df: pd.DataFrame, index: bool = True, floatfmt: str = "{:.4g}") -> str:
    """A GitHub-flavoured markdown table (pandas' own to_markdown needs `tabulate`)."""
    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if math.isnan(v) else floatfmt.format(v)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return f"{int(v):,}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    header = ([str(df.index.name or "")] if index else []) + [str(c) for c in df.columns]
    numeric = ([False] if index else []) + [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    rows = [([cell(i)] if index else []) + [cell(v) for v in row]
            for i, row in zip(df.index, df.itertuples(index=False))]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def save_table(df: pd.DataFrame, path: str | os.PathLike | None, index: bool = True) -> pd.DataFrame:
    """Write `df` to `path` (.md → markdown, anything else → CSV); returns df."""
    if path is None:
        return df
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".md":
        path.write_text(to_markdown(df, index=index))
    else:
        df.to_csv(path, index=index)
    return df


# ---------------------------------------------------------------------- data statistics

def class_counts(labels_by_split: Mapping[str, Iterable[int]], classes: list[str],
                 path=None) -> pd.DataFrame:
    """Images per class (rows) in each split (columns), with a total row."""
    df = pd.DataFrame({name: np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
                       for name, y in labels_by_split.items()}, index=pd.Index(classes, name="class"))
    df.loc["total"] = df.sum()
    return save_table(df, path)


def pixel_histograms(images) -> np.ndarray:
    """(3, 256) counts of each uint8 value per channel (exact; no float copy of the data)."""
    x = to_nhwc(images)
    return np.stack([np.bincount(x[..., c].ravel(), minlength=256) for c in range(3)]).astype(np.int64)


def stats_from_histograms(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std on the [0,1] scale from (3,256) counts."""
    v = np.arange(256) / 255.0
    n = hist.sum(1)
    mean = (hist * v).sum(1) / n
    var = (hist * v ** 2).sum(1) / n - mean ** 2
    return mean, np.sqrt(np.maximum(var, 0))


def channel_stats(sets: Mapping[str, object], path=None) -> pd.DataFrame:
    """Per-channel mean and std ([0,1] scale, as training normalises) of each image set.
    Sets that are None are skipped. Rows: set; columns: <channel> mean / <channel> std."""
    rows = {}
    for name, images in sets.items():
        if images is None:
            continue
        mean, std = stats_from_histograms(pixel_histograms(images))
        row = {"images": len(images)}
        row.update({f"{c} mean": m for c, m in zip(CHANNELS, mean)})
        row.update({f"{c} std": s for c, s in zip(CHANNELS, std)})
        rows[name] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "set"
    return save_table(df, path)


def normalisation(images) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ([0,1] scale), as training computes them, for augment/predict."""
    from .engine import channel_stats
    return channel_stats(to_nchw(images))


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the two ECDFs."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def image_brightness(images) -> np.ndarray:
    """Per-image mean pixel value on the [0,1] scale."""
    x = to_nhwc(images)
    return x.reshape(len(x), -1).mean(1, dtype=np.float64) / 255


def image_contrast(images, chunk: int = 5000) -> np.ndarray:
    """Per-image standard deviation of the pixel values on the [0,1] scale."""
    x = to_nhwc(images)
    out = [x[i:i + chunk].reshape(min(chunk, len(x) - i), -1).astype(np.float32).std(1) / 255
           for i in range(0, len(x), chunk)]
    return np.concatenate(out) if out else np.empty(0)


def shift_check(reference, other, path=None) -> pd.DataFrame:
    """A cheap check for a distribution shift between two image sets (e.g. the training set
    and the competition's unlabelled set). One row per statistic:

    * `<channel>`: mean and std of each set, the mean difference in units of the
      reference's std, and the total-variation distance between the value histograms
      (0 = identical, 1 = disjoint);
    * `brightness` / `contrast`: per-image mean and std; `distance` is the two-sample
      Kolmogorov–Smirnov statistic of their distributions.

    Two random draws from one 10 000-image distribution give TV/KS distances of about
    0.01–0.02; much larger values, or standardised mean gaps over ~0.1, suggest a shift.
    Empty when `other` is None."""
    if other is None:
        return save_table(pd.DataFrame(), path)
    ha, hb = pixel_histograms(reference), pixel_histograms(other)
    ma, sa = stats_from_histograms(ha)
    mb, sb = stats_from_histograms(hb)
    pa, pb = ha / ha.sum(1, keepdims=True), hb / hb.sum(1, keepdims=True)
    rows = []
    for c, name in enumerate(CHANNELS):
        rows.append(dict(statistic=name, reference_mean=ma[c], other_mean=mb[c],
                         reference_std=sa[c], other_std=sb[c],
                         mean_gap_in_std=(mb[c] - ma[c]) / sa[c],
                         distance=0.5 * np.abs(pa[c] - pb[c]).sum(), distance_kind="TV"))
    for name, fn in (("brightness", image_brightness), ("contrast", image_contrast)):
        a, b = fn(reference), fn(other)
        rows.append(dict(statistic=name, reference_mean=a.mean(), other_mean=b.mean(),
                         reference_std=a.std(), other_std=b.std(),
                         mean_gap_in_std=(b.mean() - a.mean()) / a.std(),
                         distance=_ks_statistic(a, b), distance_kind="KS"))
    return save_table(pd.DataFrame(rows).set_index("statistic"), path)


def image_hashes(images) -> list[str]:
    """SHA-1 of each image's raw bytes (HWC uint8), as hex strings."""
    x = np.ascontiguousarray(to_nhwc(images))
    return [hashlib.sha1(img.tobytes()).hexdigest() for img in x]


def find_duplicates(reference, other, path=None) -> pd.DataFrame:
    """Exact duplicates between two image sets, by hash of the image bytes: one row per
    (reference_index, other_index) pair of byte-identical images, sorted. Empty (with the
    same columns) when there are none, or when either set is None."""
    cols = ["reference_index", "other_index", "sha1"]
    if reference is None or other is None:
        return save_table(pd.DataFrame(columns=cols), path, index=False)
    where: dict[str, list[int]] = {}
    for i, h in enumerate(image_hashes(reference)):
        where.setdefault(h, []).append(i)
    pairs = [(i, j, h) for j, h in enumerate(image_hashes(other)) for i in where.get(h, ())]
    df = pd.DataFrame(pairs, columns=cols).sort_values(["reference_index", "other_index"])
    return save_table(df.reset_index(drop=True), path, index=False)


# ------------------------------------------------------------------ evaluating a run

@dataclass
class RunPredictions:
    """What evaluating a run needs: the model, its config, the held-out images exactly as
    training split them, and predicted probabilities on them and on the unlabelled set."""

    run_dir: Path
    model: torch.nn.Module
    config: object            # src.config.Config
    mean: torch.Tensor
    std: torch.Tensor
    device: torch.device
    tta: str
    classes: list[str]
    eval_name: str            # "validation" (the run's hold-out) or "test_batch"
    eval_idx: np.ndarray | None  # indices into train_x of the hold-out (None for test_batch)
    images: np.ndarray        # (N,32,32,3) uint8 held-out images
    labels: np.ndarray        # (N,)
    probs: np.ndarray         # (N,10) softmax probabilities
    unlabelled_x: np.ndarray | None = None
    unlabelled_probs: np.ndarray | None = None

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def accuracy(self) -> float:
        return float((self.preds == self.labels).mean())


def predict_probs(model, images, mean, std, device, tta: str = "none", batch_size: int = 1000,
                  precision: str = "fp32") -> np.ndarray:
    """Softmax probabilities (N,10) float64 numpy for uint8 images (HWC numpy or NCHW)."""
    from .predict import predict_logits
    x = to_nchw(images).to(device)
    logits = predict_logits(model, x, mean, std, tta=tta, batch_size=batch_size, precision=precision)
    return logits.double().softmax(1).cpu().numpy()


def load_run_predictions(run=None, data=None, data_dir=None, tta: str | None = None,
                         device: str = "auto", use_ema: bool = True,
                         unlabelled: bool = True) -> RunPredictions:
    """Load a run (a name under runs/, a folder; None → the latest), recompute its
    validation split exactly as training did (stratified_split(train_y, cfg.val_size,
    cfg.seed)), and predict it and (if `unlabelled`) the competition's unlabelled set.
    A run trained without a hold-out (val_size=0) is evaluated on the labelled test_batch
    when the data has one. Prediction is fp32 so numbers do not depend on the hardware's
    autocast support."""
    from .data import load_competition, stratified_split
    from .device import pick_device
    from .predict import find_run, latest_run, load_checkpoint, run_checkpoint

    run_dir = find_run(run) if run else latest_run()
    dev = pick_device(device)
    model, cfg, ckpt = load_checkpoint(run_checkpoint(run_dir), dev, use_ema)
    if data is None:
        data = load_competition(data_dir or cfg.data_dir, cfg.competition)
    tta = tta or cfg.tta
    if cfg.val_size:
        _, idx = stratified_split(data.train_y, cfg.val_size, cfg.seed)
        name, images, labels = "validation", data.train_x[idx], data.train_y[idx]
    elif data.test_x is not None:
        idx, name, images, labels = None, "test_batch", data.test_x, data.test_y
    else:
        raise ValueError(f"run {run_dir.name} was trained with val_size=0 (no hold-out) and the "
                         "data has no labelled test_batch: there is nothing labelled to evaluate on")
    kw = dict(tta=tta, batch_size=cfg.eval_batch_size)
    probs = predict_probs(model, images, ckpt["mean"], ckpt["std"], dev, **kw)
    unl_x = data.unlabelled_x if unlabelled else None
    unl_probs = (predict_probs(model, unl_x, ckpt["mean"], ckpt["std"], dev, **kw)
                 if unl_x is not None else None)
    return RunPredictions(run_dir=run_dir, model=model, config=cfg, mean=ckpt["mean"],
                          std=ckpt["std"], device=dev, tta=tta, classes=list(data.classes),
                          eval_name=name, eval_idx=idx, images=images, labels=np.asarray(labels),
                          probs=probs, unlabelled_x=unl_x, unlabelled_probs=unl_probs)


def confusion_matrix(y_true, y_pred, classes: list[str], path=None) -> pd.DataFrame:
    """Counts: rows the true class, columns the predicted class; sums to N."""
    k = len(classes)
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    df = pd.DataFrame(cm, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))
    return save_table(df, path)


def normalise_rows(cm: pd.DataFrame) -> pd.DataFrame:
    """Each row divided by its sum (the fraction of each true class predicted as each class)."""
    return cm.div(cm.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)


def per_class_accuracy(y_true, y_pred, classes: list[str], path=None) -> pd.DataFrame:
    """Per class: support, correct, accuracy (= recall), precision, and the most frequent
    wrong prediction. The support-weighted mean of `accuracy` is the overall accuracy."""
    cm = confusion_matrix(y_true, y_pred, classes).to_numpy()
    support, correct, predicted = cm.sum(1), np.diag(cm), cm.sum(0)
    off = cm.copy()
    np.fill_diagonal(off, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = pd.DataFrame({
            "support": support, "correct": correct,
            "accuracy": np.where(support > 0, correct / np.maximum(support, 1), np.nan),
            "precision": np.where(predicted > 0, correct / np.maximum(predicted, 1), np.nan),
            "most_confused_with": [classes[j] if off[i, j] > 0 else "" for i, j in enumerate(off.argmax(1))],
        }, index=pd.Index(classes, name="class"))
    return save_table(df, path)


def most_confused(cm: pd.DataFrame, k: int = 10, path=None) -> pd.DataFrame:
    """The k largest off-diagonal cells of a confusion matrix: true, predicted, count, and
    the count as a fraction of the true class."""
    m = cm.to_numpy()
    rows = [(cm.index[i], cm.columns[j], int(m[i, j]), m[i, j] / max(m[i].sum(), 1))
            for i in range(m.shape[0]) for j in range(m.shape[1]) if i != j and m[i, j] > 0]
    df = pd.DataFrame(rows, columns=["true", "predicted", "count", "fraction_of_true"])
    df = df.sort_values(["count", "true", "predicted"], ascending=[False, True, True]).head(k)
    return save_table(df.reset_index(drop=True), path, index=False)


def confident_mistakes(y_true, probs, k: int = 20) -> np.ndarray:
    """Indices of the k wrong predictions with the highest confidence, most confident first."""
    probs = np.asarray(probs)
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != np.asarray(y_true))
    conf = probs[wrong, pred[wrong]]
    return wrong[np.argsort(-conf, kind="stable")][:k]


def reliability_table(confidence, correct, n_bins: int = 15, path=None) -> pd.DataFrame:
    """Equal-width confidence bins over [0,1] (the last one closed): count, mean confidence,
    accuracy and |accuracy - confidence| per bin. `confidence` is the predicted class's
    probability and `correct` whether that prediction was right (see `calibration` for a
    probability matrix and labels)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    sum_conf = np.bincount(b, weights=conf, minlength=n_bins)
    sum_ok = np.bincount(b, weights=ok, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, sum_conf / count, np.nan)
        acc = np.where(count > 0, sum_ok / count, np.nan)
    df = pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": count,
                       "confidence": mean_conf, "accuracy": acc, "gap": np.abs(acc - mean_conf)})
    df.index.name = "bin"
    return save_table(df, path)


def expected_calibration_error(confidence, correct, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean over bins of |accuracy - mean confidence|."""
    t = reliability_table(confidence, correct, n_bins)
    n = t["count"].sum()
    return float((t["count"] * t["gap"].fillna(0)).sum() / n) if n else float("nan")


def calibration(probs, y_true, n_bins: int = 15, path=None) -> tuple[pd.DataFrame, float]:
    """Reliability table and ECE of (N,C) probabilities against integer labels."""
    probs = np.asarray(probs)
    conf, correct = probs.max(1), probs.argmax(1) == np.asarray(y_true)
    return reliability_table(conf, correct, n_bins, path), expected_calibration_error(conf, correct, n_bins)


def predicted_distribution(preds, classes: list[str], path=None) -> pd.DataFrame:
    """How often each class is predicted (e.g. on the unlabelled set), against the uniform
    prior 1/C (the competition set, like CIFAR-10's test set, is presumably balanced)."""
    counts = np.bincount(np.asarray(preds, np.int64), minlength=len(classes))
    n = counts.sum()
    frac = counts / max(n, 1)
    df = pd.DataFrame({"count": counts, "fraction": frac, "uniform": 1 / len(classes),
                       "ratio_to_uniform": frac * len(classes)}, index=pd.Index(classes, name="class"))
    return save_table(df, path)


# ------------------------------------------------------------- corruptions (shift proxy)

CORRUPTIONS = ("gaussian_noise", "blur", "contrast", "brightness", "jpeg", "pixelate")
SEVERITIES = (0, 1, 2, 3)
# Parameters for severities 1, 2, 3 (roughly CIFAR-10-C's levels 1, 3, 5).
_LEVELS = {
    "gaussian_noise": (0.04, 0.08, 0.12),   # noise std on the [0,1] scale
    "blur": (0.6, 1.0, 1.5),                 # Gaussian sigma in pixels
    "contrast": (0.6, 0.4, 0.25),            # factor on the deviation from the image mean
    "brightness": (0.1, 0.2, 0.3),           # added to every pixel on the [0,1] scale
    "jpeg": (50, 25, 10),                    # JPEG quality
    "pixelate": (0.75, 0.5, 0.35),           # side of the downsampled image, as a fraction
}


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.device)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    import warnings
    with warnings.catch_warnings():  # torchvision >= 0.29 deprecates its image codecs
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import decode_jpeg, encode_jpeg
        encoded = encode_jpeg(list(x.cpu()), quality=quality)
        return torch.stack(decode_jpeg(encoded)).to(x.device)


def corrupt(images, kind: str, severity: int, seed: int = 0):
    """`images` (uint8, (N,H,W,3) numpy or (N,3,H,W) tensor) under corruption `kind`
    (one of CORRUPTIONS) at `severity` 1–3; severity 0 returns the images unchanged.
    A numpy input gives a (N,H,W,3) numpy result, a tensor input a (N,3,H,W) tensor on
    its device. Noise is seeded: the same call, the same images."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if severity == 0:
        return images
    level = _LEVELS[kind][severity - 1]
    hwc_numpy = isinstance(images, np.ndarray)
    if hwc_numpy and images.shape[-1] != 3:
        raise ValueError(f"numpy images must be (N,H,W,3), got {images.shape}")
    x8 = to_nchw(images)
    if kind == "jpeg":
        out = _jpeg(x8, int(level))
    else:
        x = x8.float() / 255
        if kind == "gaussian_noise":
            g = torch.Generator().manual_seed(seed)
            x = x + level * torch.randn(x.shape, generator=g).to(x.device)
        elif kind == "blur":
            x = _gaussian_blur(x, level)
        elif kind == "contrast":
            m = x.mean((1, 2, 3), keepdim=True)
            x = (x - m) * level + m
        elif kind == "brightness":
            x = x + level
        elif kind == "pixelate":
            h, w = x.shape[-2:]
            small = F.interpolate(x, size=(max(1, round(h * level)), max(1, round(w * level))), mode="area")
            x = F.interpolate(small, size=(h, w), mode="nearest")
        out = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return out.permute(0, 2, 3, 1).cpu().numpy() if hwc_numpy else out


def corruption_report(model, images, labels, mean, std, kinds=CORRUPTIONS,
                      severities=SEVERITIES, tta: str = "none", device=None,
                      batch_size: int = 1000, seed: int = 0, limit: int | None = None,
                      path=None) -> pd.DataFrame:
    """Accuracy of `model` on `images` under each corruption kind × severity: a long table
    (kind, severity, images, accuracy, drop from clean). Severity 0 is the clean images,
    computed once and shared by every kind, so it equals the clean accuracy exactly.
    `limit`: use a seeded random subset of that many images (faster on a CPU)."""
    device = device if device is not None else next(model.parameters()).device
    x = to_nchw(images)
    y = np.asarray(labels)
    if limit is not None and limit < len(y):
        keep = np.sort(np.random.default_rng(seed).choice(len(y), limit, replace=False))
        x, y = x[torch.as_tensor(keep)], y[keep]
    x = x.to(device)

    def acc(batch) -> float:
        p = predict_probs(model, batch, mean, std, device, tta=tta, batch_size=batch_size)
        return float((p.argmax(1) == y).mean())

    clean = acc(x)
    rows = []
    for kind in kinds:
        for s in severities:
            a = clean if s == 0 else acc(corrupt(x, kind, s, seed))
            rows.append(dict(kind=kind, severity=s, images=len(y), accuracy=a, drop=clean - a))
    return save_table(pd.DataFrame(rows), path, index=False)


# ---------------------------------------------------------------------------- model table

def count_macs(model: torch.nn.Module, input_size=(1, 3, 32, 32)) -> int:
    """Multiply-accumulates of one forward pass (FLOPs / 2, counted by torch's
    FlopCounterMode: convolutions and matrix products; elementwise ops are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode
    was_training = model.training
    model.eval()
    p = next(model.parameters())
    x = torch.zeros(input_size, dtype=p.dtype, device=p.device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops()) // 2


def run_summaries(runs_dir=None) -> pd.DataFrame:
    """One row per run folder with config.json and metrics.csv: run, model, epochs,
    best validation accuracy (the best of val_acc, ema_val_acc, val_acc_tta) and the
    training time in seconds (optimisation steps only, as the engine records it)."""
    root = Path(runs_dir) if runs_dir else paths.runs_dir()
    rows = []
    for cfg_path in sorted(root.glob("*/config.json")):
        metrics = cfg_path.parent / "metrics.csv"
        if not metrics.is_file():
            continue
        try:
            model = json.loads(cfg_path.read_text()).get("model")
            m = pd.read_csv(metrics)
        except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        accs = [c for c in ("val_acc", "ema_val_acc", "val_acc_tta") if c in m and m[c].notna().any()]
        rows.append(dict(run=cfg_path.parent.name, model=model, epochs=len(m),
                         best_val_acc=float(m[accs].max().max()) if accs else np.nan,
                         train_seconds=float(m["train_seconds"].iloc[-1]) if "train_seconds" in m else np.nan))
    return pd.DataFrame(rows, columns=["run", "model", "epochs", "best_val_acc", "train_seconds"])


def model_table(runs_dir=None, path=None, names: Iterable[str] | None = None) -> pd.DataFrame:
    """For each registered model (models.REGISTRY): parameters, whether that is within the
    5M limit, the per-component breakdown (models.param_table), multiply-accumulates per
    32×32 image, and — where runs under `runs_dir` (default paths.runs_dir()) trained it —
    the best validation accuracy over those runs, that run's name and training seconds.
    `path` ending in .md writes markdown, otherwise CSV."""
    runs = run_summaries(runs_dir)
    rows, components = [], []
    for name in (names or models.REGISTRY):
        with torch.device("meta"):  # shapes only: no memory, no initialisation, no compute
            model = models.build(name)
        table = models.param_table(model)
        row = {"model": name, "params": int(table.pop("total")),
               "within_limit": models.count_params(model) <= models.PARAM_LIMIT}
        for comp, n in table.items():
            if comp not in components:
                components.append(comp)
            row[comp] = int(n)
        row["MMACs"] = count_macs(model) / 1e6
        mine = runs[(runs["model"] == name) & runs["best_val_acc"].notna()]
        if len(mine):
            best = mine.loc[mine["best_val_acc"].idxmax()]
            row.update(best_val_acc=best["best_val_acc"], best_run=best["run"],
                       train_seconds=best["train_seconds"], runs=len(mine))
        else:
            row.update(best_val_acc=np.nan, best_run="", train_seconds=np.nan, runs=0)
        rows.append(row)
    df = pd.DataFrame(rows).set_index("model")
    canonical = ["stem", "conv groups", "residual blocks", "shortcuts", "squeeze-excitation", "head"]
    components = sorted(components, key=lambda c: canonical.index(c) if c in canonical else len(canonical))
    for comp in components:
        df[comp] = df[comp].fillna(0).astype(np.int64)
    order = ["params", "within_limit", *components, "MMACs", "best_val_acc", "best_run",
             "train_seconds", "runs"]
    return save_table(df[order], path)
