"""The main job end to end: explore → train → predict through papermill, on the tiny
synthetic competition; and the same notebooks inside a simulated Kaggle kernel."""

import json
import shutil

import pandas as pd
import pytest

from src import paths, pipeline
from src.data import load_competition
from src.paths import DEFAULT_COMPETITION

NOTEBOOKS = ("explore", "train", "predict", "evaluate")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_paired_start_with_parameters_and_have_no_outputs(name):
    py = (paths.REPO_ROOT / "notebooks" / f"{name}.py").read_text()
    assert "formats: ipynb,py:percent" in py
    nb = json.loads((paths.REPO_ROOT / "notebooks" / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert nb["cells"][0]["cell_type"] == "code" and "parameters" in nb["cells"][0]["metadata"].get("tags", [])
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


def test_main_job_writes_a_valid_submission(tiny_competition, isolated_outputs):
    csv = pipeline.main(["--data-dir", str(tiny_competition), "--name", "e2e", "--epochs", "2",
                         "--batch-size", "32", "--val-size", "50", "--device", "cpu",
                         "--corruption-images", "50"])
    data = load_competition(tiny_competition)
    df = pd.read_csv(csv)
    assert csv == isolated_outputs / "submissions" / "e2e.csv"
    assert list(df.columns) == ["ID", "Labels"] and list(df.ID) == list(data.unlabelled_ids)
    assert df.Labels.between(0, 9).all()
    run = isolated_outputs / "runs" / "e2e"
    for f in ("metrics.csv", "best.pt", "learning_curves.png", "predicted_classes.png",
              "confusion_matrix.png", "reliability_diagram.png", "corruptions.png",
              "notebooks/explore.ipynb", "notebooks/train.ipynb", "notebooks/predict.ipynb",
              "notebooks/evaluate.ipynb"):
        assert (run / f).is_file(), f
    assert (isolated_outputs / "runs" / "explore" / "class_grid.png").is_file()


def test_notebooks_run_unchanged_in_a_simulated_kaggle_kernel(tiny_competition, tmp_path, monkeypatch):
    """/kaggle/input/<competition> holds the data, /kaggle/working receives every output,
    and no data_dir is passed: the notebooks find both on their own."""
    kaggle = tmp_path / "kaggle"
    shutil.copytree(tiny_competition, kaggle / "input" / DEFAULT_COMPETITION)
    (kaggle / "working").mkdir()
    monkeypatch.setenv("KAGGLE_ROOT", str(kaggle))
    monkeypatch.delenv("CIFAR_OUTPUT_DIR")
    out = tmp_path / "executed"
    out.mkdir()
    # a kernel runs the train notebook alone: it goes on to predict and publish
    pipeline.run_notebook("train", out, {"run_name": "k", "epochs": 1, "batch_size": 32, "val_size": 50,
                                         "device": "cpu"})
    working = kaggle / "working"
    assert (working / "runs" / "k" / "best.pt").is_file()
    assert (working / "submissions" / "k.csv").is_file()
    submission = pd.read_csv(working / "submission.csv")
    assert len(submission) == 50 and list(submission.columns) == ["ID", "Labels"]
    # the predict notebook finds the same run and data there too
    pipeline.run_notebook("predict", out, {"run_name": "k", "device": "cpu", "tta": "none", "overwrite": True})
    assert pd.read_csv(working / "submissions" / "k.csv").ID.tolist() == submission.ID.tolist()
