"""The main job, headless: explore → train → predict → CSV → evaluate, each notebook run by
papermill.

    python -m src.pipeline --data-dir ../shared/competition --profile fast --epochs 3

The executed notebooks are kept beside the run (runs/<name>/notebooks/) so every figure
and number of the run can be looked at afterwards.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import paths

NOTEBOOKS = paths.REPO_ROOT / "notebooks"


def run_notebook(name: str, out_dir: Path, parameters: dict) -> Path:
    import papermill  # only the notebook runner needs it; the engine runs without

    out = out_dir / f"{name}.ipynb"
    print(f"── {name} → {out}", flush=True)
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), cwd=str(NOTEBOOKS),
                               parameters={k: v for k, v in parameters.items() if v is not None},
                               progress_bar=False, log_output=True)
    return out


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="competition folder (default: auto-detect)")
    p.add_argument("--profile", default="fast", help="fast | seed")
    p.add_argument("--name", default=None, help="run name (default: <profile>-<timestamp>)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--val-size", type=int, default=None, help="validation hold-out (default 5,000; 0 for final runs)")
    p.add_argument("--train-limit", type=int, default=None, help="train on the first N images only")
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-explore", action="store_true")
    p.add_argument("--skip-evaluate", action="store_true")
    p.add_argument("--corruption-images", type=int, default=None,
                   help="held-out images for evaluate's corruption report (0: skip it)")
    a = p.parse_args(argv)
    if a.data_dir:  # the notebooks run in notebooks/: a relative path must not change meaning
        a.data_dir = str(Path(a.data_dir).expanduser().resolve())

    name = a.name or f"{a.profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = paths.runs_dir() / name / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    if not a.skip_explore:
        run_notebook("explore", out_dir, {"data_dir": a.data_dir, "val_size": a.val_size})
    run_notebook("train", out_dir, {"profile": a.profile, "data_dir": a.data_dir, "run_name": name,
                                    "epochs": a.epochs, "batch_size": a.batch_size, "val_size": a.val_size,
                                    "train_limit": a.train_limit, "device": a.device})
    run_notebook("predict", out_dir, {"run_name": name, "data_dir": a.data_dir, "device": a.device})
    if not a.skip_evaluate:
        run_notebook("evaluate", out_dir, {"run": name, "data_dir": a.data_dir, "device": a.device,
                                           "corruption_images": a.corruption_images})
    csv = paths.submissions_dir() / f"{name}.csv"
    print(f"submission: {csv}\nrun folder: {paths.runs_dir() / name}")
    return csv


if __name__ == "__main__":
    main()
