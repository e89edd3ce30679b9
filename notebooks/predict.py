# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
run_name = ""         # a run under runs/ (or a run folder); "" → the most recent run
data_dir = None       # None → the run's own, else auto-detected
tta = None            # none | flip | flip-translate; None → the run's own
device = "auto"
overwrite = False     # replace an existing submissions/<run>.csv

# %% [markdown]
# # Predict
# The run's best checkpoint predicts the competition's 10,000 unlabelled images; the CSV
# (`ID,Labels`) is validated against the pickle's ids, then written atomically to
# `submissions/<run>.csv` (on Kaggle also to `/kaggle/working/submission.csv`).

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
from src import plots
from src.kaggle import publish_submission
from src.predict import latest_run, predict_run

# %%
result = predict_run(run_name or latest_run(), data_dir=data_dir, tta=tta, device=device,
                     overwrite=overwrite)
print(f"wrote {result['csv']}: {len(result['labels']):,} rows, TTA {result['tta']}")
if "test" in result:
    print(f"labelled test_batch accuracy: {result['test']['acc']:.4f}")

# %% [markdown]
# The predicted classes should be roughly uniform: the competition set is balanced, so a
# strong skew hints at a distribution shift or a broken model.

# %%
plots.prediction_histogram(result["labels"], result["classes"], result["run_dir"] / "predicted_classes.png")

# %% [markdown]
# Inside a Kaggle kernel the CSV is also copied to `/kaggle/working/submission.csv`, the file
# a competition takes from a notebook (nothing happens elsewhere).

# %%
publish_submission(result["csv"], result["ids"])
