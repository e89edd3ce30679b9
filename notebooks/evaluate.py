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
run = None         # run name under runs/, or a run folder; None: the most recent run
data_dir = None    # competition folder; None: the run's own, else auto-detect
tta = None         # none | flip | flip-translate; None: the run's own
device = "auto"    # auto | cpu | cuda
out_dir = None     # where figures and tables go; None: the run folder
use_ema = True     # the EMA weights when the checkpoint has them
corruption_images = 2000  # held-out images for the corruption report (None: all; 0: skip)
corruption_tta = "none"   # TTA for the corruption report (none: one view per image, cheap)
n_bins = 15        # confidence bins of the reliability diagram

# %% [markdown]
# # Evaluating a trained run
#
# Loads a run's best checkpoint, rebuilds its validation split exactly as training made it
# (`data.stratified_split(train_y, cfg.val_size, cfg.seed)`), and looks at what it gets
# wrong, how well its confidence is calibrated, what it predicts on the unlabelled
# competition set, and how its accuracy falls under common corruptions (a proxy for a
# distribution shift). Figures and tables are also written to `out_dir`.

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

from src import plots, report

ev = report.load_run_predictions(run, data_dir=data_dir, tta=tta, device=device, use_ema=use_ema)
out = Path(out_dir) if out_dir else ev.run_dir
out.mkdir(parents=True, exist_ok=True)
print(f"run {ev.run_dir.name}: model {ev.config.model}, tta {ev.tta}, device {ev.device}")
print(f"{ev.eval_name}: {len(ev.labels):,} images, accuracy {ev.accuracy:.4f}")
print(f"outputs: {out}")

# %% [markdown]
# ## Learning curves of the run

# %%
plots.learning_curves(ev.run_dir, out / "learning_curves.png")

# %% [markdown]
# ## Confusion matrix
# Rows are the true class, columns the prediction; the right panel divides each row by its
# total, so its diagonal is each class's accuracy.

# %%
cm = report.confusion_matrix(ev.labels, ev.preds, ev.classes, out / "confusion_matrix.csv")
plots.confusion_matrix(cm, out / "confusion_matrix.png", title=f"{ev.run_dir.name} ({ev.eval_name}, tta {ev.tta})")

# %% [markdown]
# ## Per-class accuracy

# %%
per_class = report.per_class_accuracy(ev.labels, ev.preds, ev.classes, out / "per_class_accuracy.csv")
per_class

# %%
plots.per_class_accuracy(per_class, out / "per_class_accuracy.png")

# %% [markdown]
# ## The most confused pairs

# %%
report.most_confused(cm, k=10, path=out / "most_confused.csv")

# %% [markdown]
# ## The most confident mistakes
# Wrong predictions the model was surest of: label noise, ambiguous images, or real
# blind spots.

# %%
plots.confident_mistakes(ev.images, ev.labels, ev.probs, ev.classes, out / "confident_mistakes.png", k=20)

# %% [markdown]
# ## Calibration
# Accuracy against confidence in equal-width bins; the expected calibration error (ECE) is
# the prediction-weighted mean gap between the two. Bars below the diagonal: overconfident.

# %%
calibration, ece = report.calibration(ev.probs, ev.labels, n_bins, out / "calibration.csv")
print(f"ECE = {ece:.4f}")
plots.reliability_diagram(ev.probs, ev.labels, out / "reliability_diagram.png", n_bins)

# %% [markdown]
# ## Predictions on the unlabelled competition set
# The share of each predicted class against the uniform prior: the competition set is
# presumably balanced like CIFAR-10's test set, so large departures point to a bias (or
# to a shift between the sets).

# %%
if ev.unlabelled_probs is not None:
    dist = report.predicted_distribution(ev.unlabelled_probs.argmax(1), ev.classes,
                                         out / "unlabelled_predicted_classes.csv")
    display(dist)
    display(plots.predicted_distribution(dist, out / "unlabelled_predicted_classes.png"))
else:
    print("the data has no unlabelled set")

# %% [markdown]
# ## Corruptions as a shift proxy
# Gaussian noise, blur, contrast, brightness, JPEG compression and pixelation at severities
# 1–3 (0 = clean) on held-out images: how fast accuracy falls tells how brittle the model
# is to changes it never saw in training. Severity 0 is the clean accuracy of the same
# images (with `corruption_tta`, so it can differ from the accuracy above).

# %%
plots.corruption_examples(ev.images[0], out / "corruption_examples.png")

# %%
if corruption_images != 0:
    corruptions = report.corruption_report(ev.model, ev.images, ev.labels, ev.mean, ev.std, tta=corruption_tta,
                                           device=ev.device, limit=corruption_images,
                                           path=out / "corruptions.csv")
    display(corruptions.pivot(index="kind", columns="severity", values="accuracy"))
    display(plots.corruption_plot(corruptions, out / "corruptions.png"))

# %% [markdown]
# ## All registered models
# Parameters (total and per component), multiply-accumulates per 32×32 image, and the best
# validation accuracy and training time of the runs found under runs/ for each model.

# %%
report.model_table(path=out / "model_table.md")
