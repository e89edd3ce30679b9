"""src.report: statistics, duplicates, evaluation tables, calibration, corruptions, the
model table; and the explore / evaluate notebooks run end to end through papermill."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from src import data, models, paths, report
from src.kaggle import BOOTSTRAP_SNIPPET
from src.paths import REPO_ROOT
from src.predict import latest_run, predict_logits

CLASSES = data.CLASSES


def random_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, 10)).eval()


MEAN = torch.tensor([0.49, 0.48, 0.45])
STD = torch.tensor([0.25, 0.24, 0.26])


# ------------------------------------------------------------------------------- tables

def test_to_markdown_and_save_table(tmp_path):
    df = pd.DataFrame({"n": [1234, 5], "acc": [0.5, np.nan], "name": ["a|b", "c"]},
                      index=pd.Index(["x", "y"], name="row"))
    md = report.to_markdown(df)
    lines = md.strip().splitlines()
    assert lines[0] == "| row | n | acc | name |"
    assert lines[1] == "|:---|---:|---:|:---|"
    assert lines[2] == "| x | 1,234 | 0.5 | a\\|b |"
    assert lines[3] == "| y | 5 |  | c |"
    report.save_table(df, tmp_path / "t.md")
    report.save_table(df, tmp_path / "t.csv")
    assert (tmp_path / "t.md").read_text() == md
    assert pd.read_csv(tmp_path / "t.csv", index_col=0)["n"].tolist() == [1234, 5]


def test_layout_conversions():
    x = random_images(4)
    t = report.to_nchw(x)
    assert t.shape == (4, 3, 32, 32) and t.dtype == torch.uint8
    assert torch.equal(report.to_nchw(t), t)
    np.testing.assert_array_equal(report.to_nhwc(t), x)
    with pytest.raises(ValueError):
        report.to_nchw(x.astype(np.float32))


# ----------------------------------------------------------------------- data statistics

def test_class_counts(tmp_path):
    y = np.array([0, 0, 1, 9, 9, 9])
    df = report.class_counts({"train": y, "val": y[:2]}, CLASSES, tmp_path / "counts.csv")
    assert df.loc["cat", "train"] == 0 and df.loc["truck", "train"] == 3
    assert df.loc["total"].tolist() == [6, 2]
    assert (tmp_path / "counts.csv").is_file()


def test_channel_stats_match_numpy(tmp_path):
    x = random_images(20)
    df = report.channel_stats({"a": x, "none": None}, tmp_path / "stats.csv")
    assert list(df.index) == ["a"]
    f = x.astype(np.float64) / 255
    np.testing.assert_allclose(df.loc["a", ["red mean", "green mean", "blue mean"]].to_numpy(float),
                               f.mean((0, 1, 2)), atol=1e-12)
    np.testing.assert_allclose(df.loc["a", ["red std", "green std", "blue std"]].to_numpy(float),
                               f.std((0, 1, 2)), atol=1e-9)
    mean, std = report.normalisation(x)
    np.testing.assert_allclose(mean.numpy(), f.mean((0, 1, 2)), atol=1e-6)
    assert std.dtype == torch.float32
    assert report.pixel_histograms(x).sum() == x.size


def test_shift_check_zero_for_same_set_and_flags_a_brightened_one(tmp_path):
    x = random_images(200)
    same = report.shift_check(x, x.copy(), tmp_path / "shift.csv")
    assert list(same.index) == ["red", "green", "blue", "brightness", "contrast"]
    assert np.allclose(same["distance"], 0) and np.allclose(same["mean_gap_in_std"], 0)
    brighter = np.clip(x.astype(int) + 40, 0, 255).astype(np.uint8)
    shifted = report.shift_check(x, brighter)
    assert (shifted["distance"] > 0.1).all()
    assert (shifted.loc[["red", "green", "blue"], "mean_gap_in_std"] > 0.1).all()
    assert report.shift_check(x, None).empty
    assert (tmp_path / "shift.csv").is_file()


def test_duplicates_found_when_planted(tmp_path):
    train = random_images(100, seed=1)
    other = random_images(30, seed=2)
    other[[3, 17, 25]] = train[[40, 5, 40]]  # train image 40 appears twice in `other`
    train[77] = train[5]                     # and train 5 twice in train
    dups = report.find_duplicates(train, other, tmp_path / "dups.csv")
    got = sorted(zip(dups["reference_index"], dups["other_index"]))
    assert got == [(5, 17), (40, 3), (40, 25), (77, 17)]
    assert len(pd.read_csv(tmp_path / "dups.csv")) == 4
    assert report.find_duplicates(train, random_images(30, seed=3)).empty
    assert report.find_duplicates(train, None).empty
    # NCHW tensors hash the same as the HWC arrays they came from
    assert report.image_hashes(report.to_nchw(other[:2])) == report.image_hashes(other[:2])


# -------------------------------------------------------------------- evaluation tables

@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, 500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 10, 500))
    return y_true, y_pred


def test_confusion_matrix_sums_to_n(predictions, tmp_path):
    y_true, y_pred = predictions
    cm = report.confusion_matrix(y_true, y_pred, CLASSES, tmp_path / "cm.csv")
    assert cm.shape == (10, 10) and cm.to_numpy().sum() == len(y_true)
    assert cm.loc["cat", "dog"] == np.sum((y_true == 3) & (y_pred == 5))
    np.testing.assert_array_equal(cm.sum(axis=1).to_numpy(), np.bincount(y_true, minlength=10))
    norm = report.normalise_rows(cm)
    np.testing.assert_allclose(norm.sum(axis=1), 1.0)
    assert (tmp_path / "cm.csv").is_file()


def test_per_class_accuracy_weighted_mean_is_overall(predictions, tmp_path):
    y_true, y_pred = predictions
    table = report.per_class_accuracy(y_true, y_pred, CLASSES, tmp_path / "per_class.csv")
    overall = (y_true == y_pred).mean()
    assert table["support"].sum() == len(y_true)
    assert np.average(table["accuracy"], weights=table["support"]) == pytest.approx(overall, abs=1e-12)
    assert table["correct"].sum() == (y_true == y_pred).sum()


def test_per_class_accuracy_empty_class():
    table = report.per_class_accuracy([0, 0, 1], [0, 1, 1], CLASSES)
    assert np.isnan(table.loc["truck", "accuracy"])
    assert table.loc["airplane", "most_confused_with"] == "automobile"


def test_most_confused():
    y_true = [3] * 6 + [5] * 3 + [0] * 2
    y_pred = [5] * 4 + [3] * 2 + [3] * 3 + [0] * 2
    top = report.most_confused(report.confusion_matrix(y_true, y_pred, CLASSES), k=5)
    assert top.iloc[0][["true", "predicted", "count"]].tolist() == ["cat", "dog", 4]
    assert top.iloc[1][["true", "predicted", "count"]].tolist() == ["dog", "cat", 3]
    assert len(top) == 2  # no other mistakes
    assert top.iloc[0]["fraction_of_true"] == pytest.approx(4 / 6)


def test_confident_mistakes_order():
    probs = np.full((4, 10), 0.01)
    probs[0, 1], probs[1, 2], probs[2, 3], probs[3, 3] = 0.9, 0.6, 0.8, 0.95
    probs /= probs.sum(1, keepdims=True)
    y = np.array([0, 0, 0, 3])  # 0, 1, 2 wrong; 3 right
    assert report.confident_mistakes(y, probs, k=10).tolist() == [0, 2, 1]


def test_ece_zero_when_calibrated():
    # always confident and always right
    assert report.expected_calibration_error(np.ones(50), np.ones(50, bool)) == 0.0
    # bins where accuracy equals confidence: 0.7 → 7/10 right, 0.45 → 9/20 right
    conf = np.r_[np.full(10, 0.7), np.full(20, 0.45)]
    correct = np.r_[np.arange(10) < 7, np.arange(20) < 9]
    assert report.expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.0, abs=1e-12)


def test_ece_positive_when_overconfident(tmp_path):
    conf = np.full(100, 0.99)
    correct = np.arange(100) < 50
    assert report.expected_calibration_error(conf, correct) == pytest.approx(0.49)
    probs = np.full((100, 10), 0.01 / 9)
    probs[:, 0] = 0.99
    labels = np.where(correct, 0, 1)
    table, ece = report.calibration(probs, labels, n_bins=15, path=tmp_path / "cal.csv")
    assert ece == pytest.approx(0.49)
    assert table["count"].sum() == 100 and table["count"].iloc[-1] == 100
    assert (tmp_path / "cal.csv").is_file()


def test_predicted_distribution():
    df = report.predicted_distribution([0, 0, 1, 9], CLASSES)
    assert df["count"].tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert df["fraction"].sum() == pytest.approx(1.0)
    assert df.loc["airplane", "ratio_to_uniform"] == pytest.approx(5.0)


# ------------------------------------------------------------------------------ corruptions

@pytest.mark.parametrize("kind", report.CORRUPTIONS)
def test_corrupt_kinds(kind):
    x = random_images(6)
    assert report.corrupt(x, kind, 0) is x
    previous = 0.0
    for s in (1, 2, 3):
        out = report.corrupt(x, kind, s)
        assert isinstance(out, np.ndarray) and out.shape == x.shape and out.dtype == np.uint8
        change = np.abs(out.astype(int) - x).mean()
        assert change > 0
        if kind != "jpeg":  # JPEG error on random noise need not grow monotonically
            assert change >= previous - 1e-9
        previous = change
    t = report.to_nchw(x)
    out_t = report.corrupt(t, kind, 2)
    assert isinstance(out_t, torch.Tensor) and out_t.shape == t.shape
    np.testing.assert_array_equal(report.to_nhwc(out_t), report.corrupt(x, kind, 2))


def test_corrupt_rejects_bad_arguments():
    x = random_images(2)
    with pytest.raises(ValueError):
        report.corrupt(x, "fog", 1)
    with pytest.raises(ValueError):
        report.corrupt(x, "blur", 4)


def test_corruption_severity_zero_is_clean_accuracy(tmp_path):
    x = random_images(64)
    y = np.random.default_rng(1).integers(0, 10, 64)
    model = tiny_model()
    # make the clean accuracy non-trivial: label half the images with the model's own guess
    logits = predict_logits(model, report.to_nchw(x), MEAN, STD)
    y[:32] = logits.argmax(1).numpy()[:32]
    clean = (predict_logits(model, report.to_nchw(x), MEAN, STD).argmax(1).numpy() == y).mean()
    table = report.corruption_report(model, x, y, MEAN, STD, kinds=("blur", "jpeg"),
                                     path=tmp_path / "corr.csv")
    assert len(table) == 2 * 4
    assert set(table.columns) >= {"kind", "severity", "accuracy", "drop", "images"}
    zero = table[table["severity"] == 0]["accuracy"]
    assert (zero == clean).all()  # exactly
    assert (table[table["severity"] == 0]["drop"] == 0).all()
    assert (tmp_path / "corr.csv").is_file()
    sub = report.corruption_report(model, x, y, MEAN, STD, kinds=("contrast",), limit=16)
    assert (sub["images"] == 16).all()


# ------------------------------------------------------------------------------ model table

def test_count_macs():
    assert report.count_macs(nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))) == 30720
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    assert report.count_macs(conv) == 32 * 32 * 4 * 3 * 9


def write_fake_run(root, name, model, accs, seconds):
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model": model}))
    pd.DataFrame({"epoch": range(1, len(accs) + 1), "val_acc": accs,
                  "train_seconds": np.cumsum([seconds / len(accs)] * len(accs))}).to_csv(d / "metrics.csv", index=False)


def test_model_table(tmp_path):
    runs = tmp_path / "runs"
    write_fake_run(runs, "fast-a", "fast", [0.5, 0.8], 20.0)
    write_fake_run(runs, "fast-b", "fast", [0.6, 0.9], 30.0)
    (runs / "broken").mkdir()
    (runs / "broken" / "config.json").write_text("{not json")
    (runs / "broken" / "metrics.csv").write_text("epoch\n1\n")
    table = report.model_table(runs, tmp_path / "models.md")
    assert list(table.index) == list(models.REGISTRY)
    assert table.loc["seed", "params"] == 4_905_430
    assert bool(table.loc["seed", "within_limit"]) and not bool(table.loc["resnet18", "within_limit"])
    assert table.loc["fast", "best_val_acc"] == pytest.approx(0.9)
    assert table.loc["fast", "best_run"] == "fast-b"
    assert table.loc["fast", "train_seconds"] == pytest.approx(30.0)
    assert table.loc["fast", "runs"] == 2 and np.isnan(table.loc["seed", "best_val_acc"])
    assert (table["MMACs"] > 0).all()
    components = [c for c in table.columns if c in ("stem", "conv groups", "residual blocks", "shortcuts",
                                                     "squeeze-excitation", "head")]
    assert (table[components].sum(axis=1) == table["params"]).all()
    md = (tmp_path / "models.md").read_text()
    assert "| seed | 4,905,430 |" in md


def test_model_table_without_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUT_ENV, str(tmp_path))
    table = report.model_table()
    assert table["runs"].eq(0).all()


# ---------------------------------------------------------- a trained run and the notebooks

@pytest.fixture(scope="module")
def trained_run(tiny_competition, tmp_path_factory):
    """One epoch of the fast profile on the tiny competition, in a temporary output root."""
    from src.config import make_config
    from src.engine import train

    out = tmp_path_factory.mktemp("output")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.OUTPUT_ENV, str(out))
        cfg = make_config("fast", data_dir=str(tiny_competition), epochs=1, batch_size=32, val_size=50,
                          name="t", progress=False, train_limit=None, device="cpu",
                          precision="fp32")
        result = train(cfg)
    return out, result


def test_load_run_predictions_uses_the_training_split(trained_run, tiny_competition, monkeypatch):
    out, result = trained_run
    monkeypatch.setenv(paths.OUTPUT_ENV, str(out))
    ev = report.load_run_predictions("t", data_dir=tiny_competition, device="cpu", tta="none")
    cifar = data.load_competition(tiny_competition)
    _, val_idx = data.stratified_split(cifar.train_y, 50, result.config.seed)
    np.testing.assert_array_equal(ev.eval_idx, val_idx)
    np.testing.assert_array_equal(ev.labels, cifar.train_y[val_idx])
    assert ev.probs.shape == (50, 10) and np.allclose(ev.probs.sum(1), 1)
    assert ev.unlabelled_probs.shape == (50, 10)
    # the accuracy the engine measured on its hold-out without TTA (EMA weights), to within
    # one image (the engine evaluates channels-last)
    assert ev.accuracy == pytest.approx(result.history[-1]["ema_val_acc"], abs=1 / 50 + 1e-9)
    assert latest_run() == ev.run_dir


def run_notebook(name: str, tmp_path, params: dict) -> dict:
    """papermill notebooks/<name>.ipynb in a kernel subprocess with this process's env."""
    out_nb = tmp_path / f"{name}.out.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(REPO_ROOT / "notebooks" / f"{name}.ipynb"), str(out_nb),
           "--cwd", str(REPO_ROOT / "notebooks"), "-k", "python3", "--no-progress-bar"]
    for k, v in params.items():
        cmd += ["-p", k, str(v)]
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # let the kernel use its inline backend
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out_nb.read_text())


def test_notebooks_have_parameters_and_bootstrap_cells():
    for name in ("explore", "evaluate"):
        nb = json.loads((REPO_ROOT / "notebooks" / f"{name}.ipynb").read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert "parameters" in code[0]["metadata"].get("tags", [])
        assert "".join(code[1]["source"]).strip() == BOOTSTRAP_SNIPPET.strip()
        assert all(not c.get("outputs") for c in code), f"{name}.ipynb is committed with outputs"


def test_explore_and_evaluate_notebooks(trained_run, tiny_competition, tmp_path, monkeypatch):
    out, _ = trained_run
    monkeypatch.setenv(paths.OUTPUT_ENV, str(out))

    explore_dir = tmp_path / "explore"
    nb = run_notebook("explore", tmp_path, dict(data_dir=tiny_competition, out_dir=explore_dir, val_size=50))
    for f in ("class_counts.png", "class_grid.png", "pixel_histograms.png", "augmentation_preview.png",
              "unlabelled_grid.png", "pixel_histograms_unlabelled.png", "duplicates.png", "class_counts.csv",
              "channel_stats.csv", "shift_check.csv", "duplicates.csv"):
        assert (explore_dir / f).stat().st_size > 0, f
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert images == 7  # every figure shown inline, once

    # evaluate writes into the run folder by default
    run_dir = out / "runs" / "t"
    nb = run_notebook("evaluate", tmp_path, dict(run="t", data_dir=tiny_competition, device="cpu", tta="none"))
    for f in ("learning_curves.png", "confusion_matrix.png", "confusion_matrix.csv", "per_class_accuracy.csv",
              "per_class_accuracy.png", "most_confused.csv", "confident_mistakes.png", "calibration.csv",
              "reliability_diagram.png", "unlabelled_predicted_classes.csv", "unlabelled_predicted_classes.png",
              "corruption_examples.png", "corruptions.csv", "corruptions.png", "model_table.md"):
        assert (run_dir / f).stat().st_size > 0, f
    cm = pd.read_csv(run_dir / "confusion_matrix.csv", index_col=0)
    assert cm.to_numpy().sum() == 50
    corr = pd.read_csv(run_dir / "corruptions.csv")
    assert set(corr["kind"]) == set(report.CORRUPTIONS) and (corr["images"] == 50).all()
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "accuracy" in text and "ECE" in text
    rows = (run_dir / "model_table.md").read_text().splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == list(models.REGISTRY)
    assert "| t |" in next(r for r in rows if r.startswith("| fast |"))  # its best run
