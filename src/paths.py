"""Where things live: the competition input and every output, on Kaggle or elsewhere.

Kaggle mounts the competition read-only at /kaggle/input/<competition>/ and keeps what a
kernel writes under /kaggle/working. Elsewhere the repo's own folders are used. Tests point
KAGGLE_ROOT at a temporary folder to simulate a kernel's filesystem.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_COMPETITION = "deep-learning-spring-2025-project-1"
REPO_ROOT = Path(__file__).resolve().parents[1]

DATA_ENV = "CIFAR_DATA_DIR"  # competition folder override
OUTPUT_ENV = "CIFAR_OUTPUT_DIR"  # root for runs/ and submissions/
KAGGLE_ROOT_ENV = "KAGGLE_ROOT"  # stands in for /kaggle in tests


def kaggle_root() -> Path:
    return Path(os.environ.get(KAGGLE_ROOT_ENV, "/kaggle"))


def on_kaggle() -> bool:
    """True inside a Kaggle kernel (its environment variable, or /kaggle/input present)."""
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ or (kaggle_root() / "input").is_dir()


def data_candidates(data_dir: str | os.PathLike | None = None,
                    competition: str = DEFAULT_COMPETITION) -> list[Path]:
    """Folders that may hold the competition, in the order they are tried."""
    if data_dir:
        return [Path(data_dir).expanduser()]
    found = []
    if os.environ.get(DATA_ENV):
        found.append(Path(os.environ[DATA_ENV]).expanduser())
    found.append(kaggle_root() / "input" / competition)
    found.append(REPO_ROOT / "data")
    return found


def output_root() -> Path:
    """Where runs/ and submissions/ go: $CIFAR_OUTPUT_DIR, /kaggle/working, or the repo."""
    if os.environ.get(OUTPUT_ENV):
        return Path(os.environ[OUTPUT_ENV]).expanduser()
    if on_kaggle():
        return kaggle_root() / "working"
    return REPO_ROOT


def runs_dir() -> Path:
    return output_root() / "runs"


def submissions_dir() -> Path:
    return output_root() / "submissions"
