"""Figures for the notebooks. Each function draws one figure, saves it as a PNG when given
`path` (folders are created), and returns the matplotlib Figure, so a notebook cell that
ends with the call shows it inline (once: the figure is closed in pyplot after saving, so
the inline backend does not show it a second time, and scripts do not pile figures up).

The numbers behind the figures come from `src.report`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from . import report

DPI = 110


def _finish(fig, path) -> "matplotlib.figure.Figure":
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return fig


def _show_image(ax, img) -> None:
    ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def _as_uint8(img) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:  # [0,1] floats
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    return img


def _mosaic_figure(rows: Sequence[Sequence], row_labels: Sequence[str] | None = None,
                   col_labels: Sequence[str] | None = None, title: str | None = None,
                   inches: float = 0.9, gap: int = 2):
    """Images (H,W,3; None leaves a blank) laid out in rows and drawn as ONE image on one
    axis: much faster than an axis per image. Row labels on the left, column labels on top."""
    first = next(_as_uint8(im) for r in rows for im in r if im is not None)
    h, w = first.shape[:2]
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    canvas = np.full((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            if im is not None:
                canvas[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = _as_uint8(im)
    fig, ax = plt.subplots(figsize=(n_cols * inches, n_rows * inches))
    ax.imshow(canvas, interpolation="nearest")
    for sp in ax.spines.values():
        sp.set_visible(False)
    ax.tick_params(length=0)
    ax.set_yticks([i * (h + gap) + h / 2 - 0.5 for i in range(n_rows)] if row_labels else [],
                  list(row_labels) if row_labels else [], fontsize=11)
    ax.xaxis.tick_top()
    ax.set_xticks([j * (w + gap) + w / 2 - 0.5 for j in range(n_cols)] if col_labels else [],
                  list(col_labels) if col_labels else [], fontsize=9)
    if title:
        ax.set_title(title, pad=8 + (14 if col_labels else 0), fontsize=12)
    fig.tight_layout(pad=0.2)
    return fig


# ------------------------------------------------------------------------- exploring data

def class_counts(counts: pd.DataFrame, path=None, title: str = "Images per class"):
    """Grouped bars of report.class_counts(...) (its 'total' row is left out)."""
    df = counts.drop(index="total", errors="ignore")
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, len(df.columns))
    x = np.arange(len(df))
    for i, col in enumerate(df.columns):
        bars = ax.bar(x + (i - (len(df.columns) - 1) / 2) * width, df[col], width, label=f"{col} ({df[col].sum():,})")
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_xticks(x, df.index, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend()
    ax.margins(y=0.12)
    return _finish(fig, path)


def class_grid(images, labels, classes: Sequence[str], path=None, per_class: int = 10,
               seed: int = 0, title: str = "Random training images, one row per class"):
    """A grid with one row per class (its name on the left) of `per_class` random images."""
    images = report.to_nhwc(images)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(len(classes)):
        members = np.flatnonzero(labels == c)
        pick = rng.choice(members, min(per_class, len(members)), replace=False) if len(members) else []
        rows.append([images[i] for i in pick] + [None] * (per_class - len(pick)))
    if not any(im is not None for r in rows for im in r):
        rows[0][0] = np.full(images.shape[1:] or (32, 32, 3), 255, np.uint8)
    return _finish(_mosaic_figure(rows, list(classes), title=title), path)


def image_grid(images, path=None, n: int = 100, ncols: int = 10, titles: Sequence[str] | None = None,
               title: str | None = None, seed: int | None = 0):
    """Up to `n` images in a grid (a random sample when there are more; seed=None keeps the
    first n in order), with an optional caption above each."""
    images = report.to_nhwc(images) if images is not None else np.zeros((0, 32, 32, 3), np.uint8)
    idx = np.arange(len(images))
    if len(images) > n:
        idx = np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False)) if seed is not None else idx[:n]
    if titles is None and len(idx):
        grid = [[images[i] for i in idx[r:r + ncols]] for r in range(0, len(idx), ncols)]
        return _finish(_mosaic_figure(grid, title=title), path)
    rows = max(1, int(np.ceil(len(idx) / ncols)))
    cap = 0.35 if titles is not None else 0.0
    height = rows * (0.9 + cap) + (0.5 if title else 0.1)
    fig, axes = plt.subplots(rows, ncols, figsize=(ncols * 0.9, height), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(idx):
            _show_image(ax, images[idx[k]])
            if titles is not None:
                ax.set_title(titles[idx[k]], fontsize=7)
        else:
            ax.axis("off")
    if not len(idx):
        fig.text(0.5, 0.5, "no images", ha="center", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.45 / height) if title else None)
    return _finish(fig, path)


def pixel_histograms(sets: Mapping[str, object], path=None,
                     title: str = "Pixel values per channel"):
    """One panel per channel: the distribution of pixel values of each image set (sets that
    are None are skipped), its mean and std in the legend."""
    colours = ["tab:red", "tab:green", "tab:blue"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
    styles = ["-", "--", ":", "-."]
    for s, (name, images) in enumerate((k, v) for k, v in sets.items() if v is not None):
        hist = report.pixel_histograms(images)
        mean, std = report.stats_from_histograms(hist)
        dens = hist / hist.sum(1, keepdims=True)
        for c, ax in enumerate(axes):
            ax.plot(np.arange(256), dens[c], styles[s % 4], color=colours[c] if s == 0 else "0.3",
                    lw=1.3, label=f"{name}: mean {mean[c]:.3f}, std {std[c]:.3f}")
    for c, ax in enumerate(axes):
        ax.set_title(report.CHANNELS[c])
        ax.set_xlabel("pixel value (0-255)")
        ax.set_xlim(0, 255)
        ax.legend(fontsize=8, loc="upper center")
    axes[0].set_ylabel("fraction of pixels")
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def augmentation_preview(image, path=None, mean=None, std=None, policies: Sequence[str] | None = None,
                         n_samples: int = 6, seed: int = 0):
    """One (H,W,3) uint8 image under each augmentation policy: a row per policy, the
    original first, then `n_samples` random draws. mean/std ([0,1] scale, as training
    normalises; default: the image's own) only matter where a policy fills with 0."""
    from . import augment
    policies = list(policies or augment.POLICIES)
    img = report.to_nchw(np.asarray(image)[None])
    mean = torch.as_tensor(mean if mean is not None else img.float().mean((0, 2, 3)) / 255, dtype=torch.float32)
    std = torch.as_tensor(std if std is not None else img.float().std((0, 2, 3)).clamp_min(1) / 255, dtype=torch.float32)
    torch.manual_seed(seed)
    rows = []
    for policy in policies:
        x = augment.augment(img.expand(n_samples, -1, -1, -1), policy, mean, std)
        x = (x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)).clamp(0, 1)
        rows.append([np.asarray(image)] + list(x.permute(0, 2, 3, 1).numpy()))
    cols = ["original"] + [f"draw {j}" for j in range(1, n_samples + 1)]
    fig = _mosaic_figure(rows, policies, cols, "Augmentation policies (src.augment.POLICIES)", inches=1.1)
    return _finish(fig, path)


def duplicate_pairs(reference, other, pairs: pd.DataFrame, path=None, max_pairs: int = 8,
                    reference_labels=None, classes: Sequence[str] | None = None,
                    names: tuple[str, str] = ("training", "competition")):
    """Side by side, up to `max_pairs` exact-duplicate pairs from report.find_duplicates;
    a figure that says so when there are none."""
    shown = pairs.head(max_pairs)
    if not len(shown):
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"No exact duplicates between the {names[0]} and {names[1]} sets",
                ha="center", va="center", fontsize=11)
        return _finish(fig, path)
    reference, other = report.to_nhwc(reference), report.to_nhwc(other)
    fig, axes = plt.subplots(2, len(shown), figsize=(max(3.5, 1.5 * len(shown)), 4.4), squeeze=False)
    for k, (_, row) in enumerate(shown.iterrows()):
        i, j = int(row["reference_index"]), int(row["other_index"])
        _show_image(axes[0, k], reference[i])
        label = f"\n{classes[reference_labels[i]]}" if reference_labels is not None and classes else ""
        axes[0, k].set_title(f"{names[0]} #{i}{label}", fontsize=8)
        _show_image(axes[1, k], other[j])
        axes[1, k].set_title(f"{names[1]} #{j}", fontsize=8)
    fig.suptitle(f"Exact duplicates: {len(pairs)} pair(s)" + (f", first {len(shown)} shown" if len(pairs) > len(shown) else ""))
    fig.tight_layout()
    return _finish(fig, path)


# ------------------------------------------------------------------------- learning curves

def _history_frame(history) -> pd.DataFrame:
    """A DataFrame from a list of row dicts, a DataFrame, a metrics.csv path or a run folder."""
    if isinstance(history, pd.DataFrame):
        return history
    if isinstance(history, (str, os.PathLike)):
        p = Path(history)
        return pd.read_csv(p / "metrics.csv" if p.is_dir() else p)
    return pd.DataFrame(list(history))


def _draw_learning_curves(fig, df: pd.DataFrame, title: str | None = None) -> None:
    fig.clear()
    axes = fig.subplots(1, 3)
    x = df["epoch"] if "epoch" in df else pd.Series(np.arange(1, len(df) + 1))
    marker = "o" if len(df) <= 40 else None
    style = {"train": dict(color="tab:blue"), "val": dict(color="tab:orange"),
             "ema_val": dict(color="tab:green", ls="--")}

    def curves(ax, metric: str, label: str) -> None:
        for prefix, kw in style.items():
            col = f"{prefix}_{metric}"
            if col in df and df[col].notna().any():
                ax.plot(x, df[col], marker=marker, ms=3, label=prefix.replace("_", " "), **kw)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)

    curves(axes[0], "loss", "cross-entropy loss")
    losses = df[[c for c in df if c.endswith("loss")]].to_numpy(float)
    losses = losses[np.isfinite(losses) & (losses > 0)]
    if len(losses) and losses.max() > 30 * losses.min():  # a spike would flatten the rest
        axes[0].set_yscale("log")
    axes[0].set_title("Loss")
    curves(axes[1], "acc", "accuracy")
    if "val_acc_tta" in df and df["val_acc_tta"].notna().any():
        last = df["val_acc_tta"].last_valid_index()
        axes[1].plot(x[last], df["val_acc_tta"][last], "*", color="tab:red", ms=12,
                     label=f"val + TTA ({df['val_acc_tta'][last]:.4f})")
    best = [c for c in ("val_acc", "ema_val_acc") if c in df and df[c].notna().any()]
    axes[1].set_title("Accuracy" + (f" (best val {df[best].max().max():.4f})" if best else ""))
    if "lr" in df:
        axes[2].plot(x, df["lr"], marker=marker, ms=3, color="tab:purple")
    axes[2].set_title("Learning rate (end of epoch)")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate")
    axes[2].grid(alpha=0.3)
    for ax in axes[:2]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()


def learning_curves(history, path=None, title: str | None = None):
    """Training/validation loss and accuracy per epoch (ema_val_* and the final TTA accuracy
    when present) and the learning rate. `history`: Result.history (a list of row dicts),
    a DataFrame, a metrics.csv path or a run folder."""
    df = _history_frame(history)
    if title is None and isinstance(history, (str, os.PathLike)):
        p = Path(history)
        title = (p if p.is_dir() else p.parent).name
    fig = plt.figure(figsize=(15, 4))
    _draw_learning_curves(fig, df, title)
    return _finish(fig, path)


def _in_notebook_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveCurves:
    """An `on_epoch(row, history)` callback for src.engine.train that redraws the learning
    curves in place in a notebook (one output, updated through an IPython display handle,
    so a progress bar in the same cell is left alone). Outside a notebook kernel it only
    keeps the history. `path`: also save the PNG at each redraw. `every`: redraw every n
    epochs."""

    def __init__(self, path=None, every: int = 1, title: str | None = None):
        self.path, self.every, self.title = path, max(1, int(every)), title
        self.interactive = _in_notebook_kernel()
        self.history: list[dict] = []
        self.figure = None
        self._handle = None

    def __call__(self, row: dict, history: list[dict]) -> None:
        self.history = list(history)
        if len(history) % self.every or not (self.interactive or self.path is not None):
            return
        self._draw()
        if self.path is not None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.figure.savefig(self.path, dpi=DPI, bbox_inches="tight", facecolor="white")
        if self.interactive:
            from IPython.display import display
            if self._handle is None:
                self._handle = display(self.figure, display_id=True)
            else:
                self._handle.update(self.figure)

    def _draw(self) -> None:
        if self.figure is None:
            self.figure = plt.figure(figsize=(15, 4))
            plt.close(self.figure)  # drawn and shown by hand, never by pyplot
        _draw_learning_curves(self.figure, pd.DataFrame(self.history), self.title)


def live_curves(path=None, every: int = 1, title: str | None = None) -> LiveCurves:
    """`engine.train(cfg, on_epoch=plots.live_curves())`: see LiveCurves."""
    return LiveCurves(path, every, title)


# ---------------------------------------------------------------------------- evaluation

def confusion_matrix(cm: pd.DataFrame, path=None, title: str | None = None):
    """Two heatmaps of report.confusion_matrix(...): counts, and rows normalised to 1."""
    norm = report.normalise_rows(cm)
    k = len(cm)
    fig, axes = plt.subplots(1, 2, figsize=(17, 7.4))
    for ax, data, fmt, label in ((axes[0], cm.to_numpy(), "d", "counts"),
                                 (axes[1], norm.to_numpy(), ".2f", "fraction of the true class")):
        im = ax.imshow(data, cmap="Blues", vmin=0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label=label)
        hi = data.max() if data.size else 1
        for i in range(k):
            for j in range(k):
                v = data[i, j]
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8,
                        color="white" if v > 0.6 * hi else "black")
        ax.set_xticks(range(k), cm.columns, rotation=40, ha="right")
        ax.set_yticks(range(k), cm.index)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
    n = int(cm.to_numpy().sum())
    acc = np.trace(cm.to_numpy()) / max(n, 1)
    axes[0].set_title(f"Confusion matrix (N={n:,}, accuracy {acc:.4f})")
    axes[1].set_title("Row-normalised (diagonal = per-class accuracy)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def per_class_accuracy(table: pd.DataFrame, path=None, overall: float | None = None):
    """Horizontal bars of report.per_class_accuracy(...)'s accuracy column."""
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(table) + 1.2))
    bars = ax.barh(table.index[::-1], table["accuracy"][::-1], color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    if overall is None:
        overall = table["correct"].sum() / max(table["support"].sum(), 1)
    ax.axvline(overall, color="tab:red", ls="--", label=f"overall {overall:.4f}")
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("accuracy")
    ax.set_title("Per-class accuracy")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _finish(fig, path)


def confident_mistakes(images, y_true, probs, classes: Sequence[str], path=None, k: int = 20,
                       ncols: int = 5):
    """The `k` most confident wrong predictions: each image with its true and predicted
    class and the predicted probability."""
    images = report.to_nhwc(images)
    probs = np.asarray(probs)
    idx = report.confident_mistakes(y_true, probs, k)
    pred = probs.argmax(1)
    rows = max(1, int(np.ceil(len(idx) / ncols)))
    fig, axes = plt.subplots(rows, ncols, figsize=(ncols * 2.0, rows * 2.35), squeeze=False)
    for a, ax in enumerate(axes.flat):
        if a >= len(idx):
            ax.axis("off")
            continue
        i = idx[a]
        _show_image(ax, images[i])
        ax.set_title(f"true: {classes[int(y_true[i])]}\npred: {classes[pred[i]]} ({probs[i, pred[i]]:.2f})",
                     fontsize=9)
    if not len(idx):
        fig.text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(f"Most confident mistakes ({len(idx)} shown)")
    fig.tight_layout()
    return _finish(fig, path)


def reliability_diagram(probs, y_true, path=None, n_bins: int = 15):
    """Accuracy (filled bars) and mean confidence (red outlines) per confidence bin, with
    the diagonal of perfect calibration and the expected calibration error in the title;
    below, how many predictions fall in each bin. Filled bars below the outlines:
    overconfident; above: underconfident."""
    table, ece = report.calibration(probs, y_true, n_bins)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 7), sharex=True, gridspec_kw=dict(height_ratios=[3, 1]))
    width = table["upper"] - table["lower"]
    centres = (table["upper"] + table["lower"]) / 2
    used = table[table["count"] > 0]  # empty bins have no accuracy or confidence
    ax.bar(used["lower"], used["accuracy"], width[used.index], align="edge", color="tab:blue",
           edgecolor="white", lw=0.5, label="accuracy")
    ax.bar(used["lower"], used["confidence"], width[used.index], align="edge", fill=False,
           edgecolor="tab:red", lw=1.5, label="mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE = {ece:.4f}, {n_bins} bins)")
    ax.legend(loc="upper left", fontsize=8)
    ax2.bar(centres, table["count"], width * 0.9, color="0.5")
    ax2.set_yscale("log" if table["count"].max() > 50 * max(1, table["count"][table["count"] > 0].min()) else "linear")
    ax2.set_xlabel("confidence (probability of the predicted class)")
    ax2.set_ylabel("predictions")
    fig.tight_layout()
    return _finish(fig, path)


def predicted_distribution(dist: pd.DataFrame, path=None, title: str = "Predicted classes on the unlabelled set"):
    """Bars of report.predicted_distribution(...) fractions against the uniform prior."""
    fig, ax = plt.subplots(figsize=(10, 4))
    bars = ax.bar(dist.index, dist["fraction"], color="tab:blue", label="predicted fraction")
    ax.bar_label(bars, labels=[f"{c:,}" for c in dist["count"]], fontsize=8, padding=1)
    ax.axhline(float(dist["uniform"].iloc[0]), color="tab:red", ls="--", label="uniform prior")
    ax.set_ylabel("fraction of images")
    ax.set_title(f"{title} (N={int(dist['count'].sum()):,})")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8)
    ax.margins(y=0.15)
    fig.tight_layout()
    return _finish(fig, path)


def prediction_histogram(labels, classes: Sequence[str], path=None,
                         title: str = "Predicted classes on the unlabelled set"):
    """predicted_distribution from raw predicted labels (report.predicted_distribution)."""
    return predicted_distribution(report.predicted_distribution(labels, list(classes)), path, title)


def corruption_plot(table: pd.DataFrame, path=None, title: str = "Accuracy under corruptions (shift proxy)"):
    """Accuracy against severity, one line per corruption kind, from report.corruption_report."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for kind, g in table.groupby("kind", sort=False):
        g = g.sort_values("severity")
        ax.plot(g["severity"], g["accuracy"], "o-", label=kind)
    clean = table.loc[table["severity"] == 0, "accuracy"]
    if len(clean):
        ax.axhline(float(clean.iloc[0]), color="k", ls=":", lw=1, label=f"clean ({float(clean.iloc[0]):.4f})")
    ax.set_xticks(sorted(table["severity"].unique()))
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return _finish(fig, path)


def corruption_examples(image, path=None, kinds: Sequence[str] = report.CORRUPTIONS,
                        severities: Sequence[int] = report.SEVERITIES):
    """One (H,W,3) uint8 image under every corruption kind (rows) and severity (columns)."""
    img = np.asarray(image)[None]
    rows = [[report.corrupt(img, kind, s)[0] for s in severities] for kind in kinds]
    fig = _mosaic_figure(rows, list(kinds), [f"severity {s}" for s in severities],
                         "Corruptions (shift proxy)", inches=1.2)
    return _finish(fig, path)
