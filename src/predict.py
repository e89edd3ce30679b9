"""Inference: logits with test-time augmentation, evaluation, checkpoints → the Kaggle CSV.

The submission is validated before it is written (and again before upload, by the same
`validate_submission`), written atomically, and never silently overwrites an earlier one.

    python -m src.predict --run fast-20261126-101500 [--tta flip] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import augment, models, paths
from .config import Config
from .device import autocast, images_to_tensor, pick_device, pick_precision

TTA_MODES = ("none", "flip", "flip-translate")


class SubmissionError(ValueError):
    """A submission that Kaggle would reject or mis-score."""


# --- logits with test-time augmentation ------------------------------------------------------

def _tta_forward(model, x: torch.Tensor, tta: str) -> torch.Tensor:
    if tta == "none":
        return model(x)
    logits = (model(x) + model(x.flip(-1))) / 2
    if tta == "flip":
        return logits
    # Add views shifted one pixel up-left and down-right, each with its mirror image.
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., :-2, :-2], padded[..., 2:, 2:]]
    shifted_logits = sum(model(v) + model(v.flip(-1)) for v in shifted) / 4
    return (logits + shifted_logits) / 2


@torch.no_grad()
def predict_logits(model, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                   tta: str = "none", batch_size: int = 1000, precision: str = "fp32",
                   channels_last: bool = False) -> torch.Tensor:
    """(N,3,H,W) uint8 images on the model's device → (N,10) float32 logits on that device."""
    if tta not in TTA_MODES:
        raise ValueError(f"unknown tta {tta!r}; choose one of {', '.join(TTA_MODES)}")
    was_training = model.training
    model.eval()
    device = images.device
    mean, std = mean.to(device), std.to(device)
    out = []
    for i in range(0, len(images), batch_size):
        x = augment.normalize(images[i:i + batch_size].float() / 255, mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            out.append(_tta_forward(model, x, tta).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10, device=device)


def evaluate(model, images: torch.Tensor, labels: torch.Tensor, mean, std, **kw) -> dict:
    """Cross-entropy and accuracy of `model` on uint8 `images` with integer `labels`."""
    logits = predict_logits(model, images, mean, std, **kw)
    labels = labels.to(logits.device)
    return {"loss": F.cross_entropy(logits, labels).item(),
            "acc": (logits.argmax(1) == labels).float().mean().item()}


# --- checkpoints --------------------------------------------------------------------------------

def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu",
                    use_ema: bool = True):
    """A trained model from a checkpoint (the EMA weights when it has them), in eval mode,
    with its run's config and normalisation. Loaded with weights_only=True: no pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = Config.from_dict(ckpt["config"])
    model = models.build(cfg.model)
    weights = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(weights)
    model.to(device).eval()
    return model, cfg, ckpt


def find_run(run: str | os.PathLike) -> Path:
    """A run folder given as a path or as a name under runs/."""
    p = Path(run)
    for candidate in (p, paths.runs_dir() / str(run)):
        if (candidate / "best.pt").is_file() or (candidate / "last.pt").is_file():
            return candidate
    raise FileNotFoundError(f"no run {str(run)!r}: looked for best.pt / last.pt in {p} and "
                            f"{paths.runs_dir() / str(run)}")


def latest_run(runs_dir=None) -> Path:
    """The most recently written run folder (one with best.pt or last.pt)."""
    root = Path(runs_dir) if runs_dir else paths.runs_dir()
    found = [p for p in root.glob("*/") if (p / "best.pt").is_file() or (p / "last.pt").is_file()]
    if not found:
        raise FileNotFoundError(f"no trained run under {root}: train one first")
    return max(found, key=lambda p: max(f.stat().st_mtime for f in p.glob("*.pt")))


def run_checkpoint(run_dir: Path) -> Path:
    best = run_dir / "best.pt"
    return best if best.is_file() else run_dir / "last.pt"


# --- the submission -----------------------------------------------------------------------------

def validate_submission(df: pd.DataFrame, expected_ids, source: str = "submission") -> pd.DataFrame:
    """Kaggle's checks, before anything is written or uploaded: header `ID,Labels`, one row per
    expected id (no missing, duplicate or unknown ids), integer labels 0–9."""
    if list(df.columns) != ["ID", "Labels"]:
        raise SubmissionError(f"{source}: header must be 'ID,Labels', got {','.join(map(str, df.columns))!r}")
    expected = pd.Index(np.asarray(expected_ids, dtype=np.int64))
    ids = pd.to_numeric(df["ID"], errors="coerce")
    if ids.isna().any() or (ids != ids.round()).any():
        raise SubmissionError(f"{source}: IDs must be integers")
    ids = pd.Index(ids.astype(np.int64))
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise SubmissionError(f"{source}: duplicate IDs, e.g. {list(dup[:5])}")
    missing, unknown = expected.difference(ids), ids.difference(expected)
    problems = [f"{len(missing)} IDs missing, e.g. {list(missing[:5])}" if len(missing) else "",
                f"{len(unknown)} IDs not in the competition set, e.g. {list(unknown[:5])}" if len(unknown) else ""]
    if any(problems):
        raise SubmissionError(f"{source}: " + "; ".join(p for p in problems if p))
    labels = pd.to_numeric(df["Labels"], errors="coerce")
    bad = labels.isna() | (labels != labels.round()) | (labels < 0) | (labels > 9)
    if bad.any():
        raise SubmissionError(f"{source}: labels must be integers 0–9; {int(bad.sum())} are not, "
                              f"e.g. {df['Labels'][bad].head(3).tolist()}")
    return df


def validate_submission_csv(path: str | os.PathLike, expected_ids) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"no submission file at {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise SubmissionError(f"{path}: not a readable CSV ({e})") from e
    return validate_submission(df, expected_ids, source=str(path))


def write_submission(ids, labels, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Validate, then write atomically (temporary file + rename). An existing file is kept
    unless `overwrite` is set."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True or choose another name")
    df = pd.DataFrame({"ID": np.asarray(ids, dtype=np.int64), "Labels": np.asarray(labels, dtype=np.int64)})
    validate_submission(df, ids, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            df.to_csv(f, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def predict_run(run: str | os.PathLike, data=None, data_dir=None, tta: str | None = None,
                out: str | os.PathLike | None = None, overwrite: bool = False,
                device: str = "auto", use_ema: bool = True) -> dict:
    """Predict the competition's unlabelled set with a run's best checkpoint and write
    `submissions/<run>.csv`. Returns the path, predicted labels, probabilities and, when
    the data has a labelled test_batch, its accuracy."""
    from .data import load_competition

    run_dir = find_run(run)
    dev = pick_device(device)
    model, cfg, ckpt = load_checkpoint(run_checkpoint(run_dir), dev, use_ema)
    data = data if data is not None else load_competition(data_dir or cfg.data_dir, cfg.competition)
    if data.unlabelled_x is None:
        raise FileNotFoundError(f"{data.root} has no cifar_test_nolabel.pkl to predict")
    tta = tta or cfg.tta
    precision = pick_precision(dev, cfg.precision)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    kw = dict(tta=tta, batch_size=cfg.eval_batch_size, precision=precision, channels_last=cfg.channels_last)
    logits = predict_logits(model, images_to_tensor(data.unlabelled_x, dev), ckpt["mean"], ckpt["std"], **kw)
    probs = logits.softmax(1).cpu().numpy()
    labels = probs.argmax(1)
    out = Path(out) if out else paths.submissions_dir() / f"{run_dir.name}.csv"
    csv = write_submission(data.unlabelled_ids, labels, out, overwrite=overwrite)
    result = {"csv": csv, "labels": labels, "probs": probs, "run_dir": run_dir, "tta": tta,
              "classes": data.classes, "ids": data.unlabelled_ids}
    if data.test_x is not None:
        result["test"] = evaluate(model, images_to_tensor(data.test_x, dev), torch.as_tensor(data.test_y),
                                  ckpt["mean"], ckpt["std"], **kw)
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Write the Kaggle submission CSV of a trained run.")
    p.add_argument("--run", required=True, help="run name under runs/, or a run folder")
    p.add_argument("--data-dir", default=None, help="competition folder (default: auto-detect)")
    p.add_argument("--tta", choices=TTA_MODES, default=None, help="default: the run's own")
    p.add_argument("--out", default=None, help="CSV path (default: submissions/<run>.csv)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    r = predict_run(a.run, data_dir=a.data_dir, tta=a.tta, out=a.out, overwrite=a.overwrite, device=a.device)
    print(f"wrote {r['csv']} ({len(r['labels'])} rows, tta={r['tta']})")
    if "test" in r:
        print(f"labelled test_batch accuracy: {r['test']['acc']:.4f}")


if __name__ == "__main__":
    main()
