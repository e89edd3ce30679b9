# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
data_dir = None  # competition folder; None: $CIFAR_DATA_DIR, /kaggle/input/<competition>, ./data
out_dir = None   # where figures and tables go; None: runs/explore/ (src.paths.runs_dir())
val_size = None  # validation hold-out; None: the training default (Config.val_size)
seed = None      # split and sampling seed; None: the training default (Config.seed)

# %% [markdown]
# # Exploring the competition data
#
# What the training batches and the competition's unlabelled set look like, before any
# training: class balance, sample images, pixel statistics, what each augmentation policy
# does, whether the unlabelled set looks like the training set, and whether any image
# appears in both. Every figure and table is also written to `out_dir`.

# %%
# Make `import src` work in the repo (local runs, papermill) and in a Kaggle kernel,
# where src/ is an attached dataset under /kaggle/input ($KAGGLE_ROOT in tests).
import os, sys
from pathlib import Path

_inputs = Path(os.environ.get("KAGGLE_ROOT", "/kaggle")) / "input"
_roots = [Path.cwd(), *Path.cwd().parents,
          *sorted(p.parent.parent for d in ("*/", "*/*/", "*/*/*/") for p in _inputs.glob(d + "src/__init__.py"))]
_root = next((r for r in _roots if (r / "src" / "__init__.py").is_file()), None)
if _root is None:
    raise ModuleNotFoundError("src/ not found: run inside the repo, or attach the src dataset "
                              "(python -m src.kaggle bundle) to the notebook")
sys.path.insert(0, str(_root))

# %%
from pathlib import Path

from src import config, data, paths, plots, report

cfg = config.make_config(val_size=val_size, seed=seed)
out = Path(out_dir) if out_dir else paths.runs_dir() / "explore"
out.mkdir(parents=True, exist_ok=True)
cifar = data.load_competition(data_dir)
train_idx, val_idx = data.stratified_split(cifar.train_y, cfg.val_size, cfg.seed)
print(f"data: {cifar.root}\noutputs: {out}")
print(f"{len(cifar.train_x):,} labelled images ({len(train_idx):,} train / {len(val_idx):,} validation, "
      f"seed {cfg.seed}), {0 if cifar.unlabelled_x is None else len(cifar.unlabelled_x):,} unlabelled")

# %% [markdown]
# ## Class balance
# The validation split is stratified (`data.stratified_split`, as training makes it), so
# both parts keep the training set's class proportions.

# %%
counts = report.class_counts({"train": cifar.train_y[train_idx], "validation": cifar.train_y[val_idx]},
                             cifar.classes, out / "class_counts.csv")
counts

# %%
plots.class_counts(counts, out / "class_counts.png")

# %% [markdown]
# ## Ten random images of each class

# %%
plots.class_grid(cifar.train_x, cifar.train_y, cifar.classes, out / "class_grid.png", seed=cfg.seed)

# %% [markdown]
# ## Pixel statistics
# Per-channel mean and std on the [0,1] scale: what training normalises with (it computes
# them on its training split).

# %%
report.channel_stats({"train split": cifar.train_x[train_idx], "validation split": cifar.train_x[val_idx]},
                     out / "channel_stats.csv")

# %%
plots.pixel_histograms({"train split": cifar.train_x[train_idx]}, out / "pixel_histograms.png",
                       title="Pixel values per channel (training split)")

# %% [markdown]
# ## Augmentation policies
# One training image under each policy of `src.augment.POLICIES`: the original, then
# random draws (as the training loop makes them, de-normalised for display).

# %%
mean, std = report.normalisation(cifar.train_x[train_idx])
plots.augmentation_preview(cifar.train_x[train_idx[0]], out / "augmentation_preview.png", mean, std, seed=cfg.seed)

# %% [markdown]
# ## The unlabelled competition set
# A random sample, and its pixel statistics beside the training set's: a cheap check for a
# distribution shift. In `shift_check`, `mean_gap_in_std` is the difference of the means in
# units of the training std; `distance` is the total-variation distance between the channel
# histograms (TV) or the Kolmogorov–Smirnov statistic of per-image brightness and contrast
# (KS), both 0 for identical distributions and about 0.01–0.02 for two random draws of
# 10 000 images from one distribution.

# %%
plots.image_grid(cifar.unlabelled_x, out / "unlabelled_grid.png", seed=cfg.seed,
                 title="Random images from the unlabelled competition set")

# %%
report.channel_stats({"training set": cifar.train_x, "unlabelled set": cifar.unlabelled_x},
                     out / "channel_stats_unlabelled.csv")

# %%
plots.pixel_histograms({"training set": cifar.train_x, "unlabelled set": cifar.unlabelled_x},
                       out / "pixel_histograms_unlabelled.png",
                       title="Pixel values per channel: training set vs unlabelled set")

# %%
report.shift_check(cifar.train_x, cifar.unlabelled_x, out / "shift_check.csv")

# %% [markdown]
# ## Exact duplicates between the training set and the competition set
# Images whose bytes are identical (SHA-1 of each 32×32×3 image).

# %%
dups = report.find_duplicates(cifar.train_x, cifar.unlabelled_x, out / "duplicates.csv")
print(f"{len(dups)} exact duplicate pair(s) between the training set and the unlabelled set")
dups.head(20)

# %%
plots.duplicate_pairs(cifar.train_x, cifar.unlabelled_x, dups, out / "duplicates.png",
                      reference_labels=cifar.train_y, classes=cifar.classes, names=("training", "unlabelled"))
