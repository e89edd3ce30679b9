"""Shared fixtures: a tiny synthetic competition folder, and the real one when present."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `import src` from any working directory
    sys.path.insert(0, str(REPO_ROOT))

SHARED_COMPETITION = Path(__file__).resolve().parents[2] / "shared" / "competition"


@pytest.fixture(scope="session")
def tiny_competition(tmp_path_factory) -> Path:
    """A synthetic competition folder in the real formats: 200 training images over
    data_batch_1..5, batches.meta, and 50 unlabelled images in cifar_test_nolabel.pkl.
    Shared by the whole session: copy it before changing anything in it."""
    from src.data import write_synthetic_competition

    return write_synthetic_competition(tmp_path_factory.mktemp("competition"),
                                       n_train=200, n_unlabelled=50)


@pytest.fixture(scope="session")
def shared_competition() -> Path:
    """The real competition folder beside the repo; skips the test when it is absent."""
    if not (SHARED_COMPETITION / "cifar-10-python" / "cifar-10-batches-py").is_dir():
        pytest.skip(f"real competition data not found at {SHARED_COMPETITION}")
    return SHARED_COMPETITION


@pytest.fixture(autouse=True)
def isolated_outputs(tmp_path, monkeypatch) -> Path:
    """Every test writes runs/ and submissions/ under its own temporary folder, never into
    the repo, and sees no real Kaggle or data-folder settings of the machine."""
    out = tmp_path / "outputs"
    monkeypatch.setenv("CIFAR_OUTPUT_DIR", str(out))
    monkeypatch.setenv("KAGGLE_ROOT", str(tmp_path / "no-kaggle"))
    monkeypatch.delenv("CIFAR_DATA_DIR", raising=False)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return out
