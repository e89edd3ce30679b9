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
profile = "fast"      # "fast" (18 epochs, 2.0M params) or "seed" (the report's SE-ResNet recipe)
data_dir = None       # competition folder; None → $CIFAR_DATA_DIR → /kaggle/input/<competition> → ./data
run_name = ""         # runs/<run_name>/; "" → "<profile>-<timestamp>"
epochs = None         # None → the profile's
batch_size = None
lr = None
model = None          # None → the profile's; see src/models.py REGISTRY
seed = 0
device = "auto"       # auto | cpu | cuda
precision = "auto"    # auto | fp32 | bf16 | fp16
val_size = None       # None → 5,000 held out; 0 → train on all 50,000 (final runs)
train_limit = None    # use only the first N training images (smoke tests)
compile = None        # torch.compile the model (pays off on GPUs)
resume = False        # continue runs/<run_name>/ from its last checkpoint
nproc = 1             # processes (one per GPU) under torchrun; "auto" → every visible GPU (Kaggle T4 ×2: 2)
predict_after = None  # then write the submission; None → only inside a Kaggle kernel (it runs this notebook alone)

# %% [markdown]
# # Train
# One call into `src.engine.train`: the training set goes onto the device as uint8, each batch
# is augmented there, and the run folder `runs/<name>/` collects the config, per-epoch
# metrics, the last checkpoint (to resume) and the best one (to predict).

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
import pandas as pd

from src import models, plots
from src.config import make_config
from src.data import load_competition
from src.distributed import launch, resolve_nproc
from src.engine import train
from src.kaggle import publish_submission
from src.paths import on_kaggle
from src.predict import predict_run

# %%
cfg = make_config(profile, name=run_name, data_dir=data_dir, epochs=epochs, batch_size=batch_size,
                  lr=lr, model=model, seed=seed, device=device, precision=precision,
                  val_size=val_size, train_limit=train_limit, compile=compile, resume=resume)
data = load_competition(cfg.data_dir, cfg.competition)
net = models.build(cfg.model)
print(f"{cfg.model}: {models.count_params(net):,} parameters")
dict(models.param_table(net))

# %% [markdown]
# ## The run
# In this kernel (one process), learning curves are redrawn after every epoch in an
# interactive session. With `nproc` > 1 the run goes to `torchrun`, one process per GPU
# (DistributedDataParallel; `batch_size` stays the global batch): its output streams in
# below, and the curves are drawn from the run's metrics.csv when it ends.

# %%
nproc = resolve_nproc(nproc, cfg.device)
if nproc > 1:
    run_dir = launch(cfg, nproc)
    history = pd.read_csv(run_dir / "metrics.csv").to_dict("records")
    final = history[-1]
else:
    result = train(cfg, data, on_epoch=plots.live_curves())
    run_dir, history, final = result.run_dir, result.history, result.final
    print(f"{result.device}, {result.precision}: {result.train_seconds:.1f} s of training, "
          f"{result.images_per_second:,.0f} images/s")
print(f"run folder: {run_dir}")
final

# %%
plots.learning_curves(history, run_dir / "learning_curves.png")

# %% [markdown]
# ## Submission (in a Kaggle kernel)
# A Kaggle kernel runs this notebook alone, so there it goes on to predict the competition
# set and publishes the CSV as `/kaggle/working/submission.csv`. Elsewhere the predict
# notebook does this step.

# %%
if predict_after is None:
    predict_after = on_kaggle()
if predict_after:
    submission = predict_run(run_dir, data=data, device=device)
    print(f"wrote {submission['csv']}; published as {publish_submission(submission['csv'], submission['ids'])}")
