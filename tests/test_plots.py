"""src.plots: every figure function, on tiny data, returns a Figure and saves a valid PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from src import data, plots, report

CLASSES = data.CLASSES
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(fig, path) -> None:
    assert isinstance(fig, Figure)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 0 and img.shape[1] > 0
    assert img.std() > 0  # not blank
    assert not plt.get_fignums(), "figures must be closed in pyplot after saving"


@pytest.fixture(scope="module")
def cifar(tiny_competition):
    return data.load_competition(tiny_competition)


@pytest.fixture
def history():
    rows = []
    for e in range(1, 6):
        rows.append(dict(epoch=e, lr=0.1 * min(e, 6 - e), train_loss=2.0 / e, train_acc=0.2 * e - 0.1,
                         val_loss=2.1 / e, val_acc=0.18 * e, ema_val_loss=2.05 / e, ema_val_acc=0.185 * e,
                         epoch_seconds=1.0, train_seconds=float(e)))
    rows[-1]["val_acc_tta"] = 0.93
    return rows


# ----------------------------------------------------------------------------- exploring

def test_class_counts(cifar, tmp_path):
    counts = report.class_counts({"train": cifar.train_y[:150], "validation": cifar.train_y[150:]}, cifar.classes)
    fig = plots.class_counts(counts, tmp_path / "counts.png")
    assert_png(fig, tmp_path / "counts.png")


def test_class_grid_one_row_per_class(cifar, tmp_path):
    fig = plots.class_grid(cifar.train_x, cifar.train_y, cifar.classes, tmp_path / "sub" / "grid.png")
    assert_png(fig, tmp_path / "sub" / "grid.png")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == list(cifar.classes)
    # a class with fewer images than per_class still works
    y = cifar.train_y.copy()
    y[y == 3] = 4
    plots.class_grid(cifar.train_x, y, cifar.classes, tmp_path / "grid2.png", per_class=12)
    assert_png(fig, tmp_path / "grid2.png")


def test_image_grid(cifar, tmp_path):
    assert_png(plots.image_grid(cifar.unlabelled_x, tmp_path / "g.png", n=30, title="unlabelled"),
               tmp_path / "g.png")
    titles = [str(i) for i in range(len(cifar.unlabelled_x))]
    assert_png(plots.image_grid(report.to_nchw(cifar.unlabelled_x), tmp_path / "t.png", n=8, ncols=4,
                                titles=titles, seed=None), tmp_path / "t.png")
    assert_png(plots.image_grid(None, tmp_path / "none.png"), tmp_path / "none.png")


def test_pixel_histograms(cifar, tmp_path):
    fig = plots.pixel_histograms({"train": cifar.train_x, "unlabelled": cifar.unlabelled_x, "absent": None},
                                 tmp_path / "h.png")
    assert_png(fig, tmp_path / "h.png")
    assert len(fig.axes) == 3 and len(fig.axes[0].get_lines()) == 2


def test_augmentation_preview_has_every_policy(cifar, tmp_path):
    from src import augment
    mean, std = report.normalisation(cifar.train_x)
    fig = plots.augmentation_preview(cifar.train_x[0], tmp_path / "aug.png", mean, std, n_samples=3)
    assert_png(fig, tmp_path / "aug.png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(augment.POLICIES)
    assert_png(plots.augmentation_preview(cifar.train_x[1], tmp_path / "aug2.png"), tmp_path / "aug2.png")


def test_duplicate_pairs(cifar, tmp_path):
    other = cifar.unlabelled_x.copy()
    other[[4, 9]] = cifar.train_x[[10, 20]]
    dups = report.find_duplicates(cifar.train_x, other)
    assert len(dups) == 2
    fig = plots.duplicate_pairs(cifar.train_x, other, dups, tmp_path / "d.png",
                                reference_labels=cifar.train_y, classes=cifar.classes)
    assert_png(fig, tmp_path / "d.png")
    assert "2 pair(s)" in fig._suptitle.get_text()
    none = plots.duplicate_pairs(cifar.train_x, cifar.unlabelled_x,
                                 report.find_duplicates(cifar.train_x, cifar.unlabelled_x), tmp_path / "n.png")
    assert_png(none, tmp_path / "n.png")


# ------------------------------------------------------------------------ learning curves

def test_learning_curves_from_every_source(history, tmp_path):
    fig = plots.learning_curves(history, tmp_path / "lc.png")
    assert_png(fig, tmp_path / "lc.png")
    loss, acc, lr = fig.axes
    assert {l.get_label() for l in loss.get_lines()} == {"train", "val", "ema val"}
    assert any("TTA" in l.get_label() for l in acc.get_lines())
    assert len(lr.get_lines()) == 1

    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame(history).to_csv(run / "metrics.csv", index=False)
    for source in (pd.DataFrame(history), run / "metrics.csv", str(run)):
        assert_png(plots.learning_curves(source, tmp_path / "lc2.png"), tmp_path / "lc2.png")
    # no EMA, no validation columns, one epoch
    bare = [{k: v for k, v in history[0].items() if not k.startswith(("ema", "val"))}]
    fig = plots.learning_curves(bare, tmp_path / "bare.png")
    assert_png(fig, tmp_path / "bare.png")
    assert {l.get_label() for l in fig.axes[0].get_lines()} == {"train"}


def test_live_curves_headless_is_harmless(history, tmp_path):
    live = plots.live_curves()
    assert not live.interactive
    for i in range(len(history)):
        live(history[i], history[:i + 1])
    assert live.figure is None and len(live.history) == len(history)  # nothing drawn
    saving = plots.live_curves(tmp_path / "live.png")
    saving(history[0], history[:1])
    saving(history[1], history[:2])
    assert_png(saving.figure, tmp_path / "live.png")


def test_live_curves_update_one_display_in_a_notebook(history, monkeypatch):
    import IPython.display

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=False):
        shown.append(("display", obj))
        return Handle()

    monkeypatch.setattr(plots, "_in_notebook_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    live = plots.live_curves(every=2)
    for i in range(len(history)):
        live(history[i], history[:i + 1])
    assert [kind for kind, _ in shown] == ["display", "update"]  # epochs 2 and 4
    assert all(obj is live.figure for _, obj in shown)
    assert not plt.get_fignums()


# ------------------------------------------------------------------------------ evaluation

@pytest.fixture
def evaluation():
    rng = np.random.default_rng(0)
    n = 120
    labels = rng.integers(0, 10, n)
    logits = rng.normal(size=(n, 10))
    logits[np.arange(n), labels] += 2.5
    probs = torch.as_tensor(logits).softmax(1).numpy()
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return images, labels, probs


def test_confusion_matrix(evaluation, tmp_path):
    _, labels, probs = evaluation
    cm = report.confusion_matrix(labels, probs.argmax(1), CLASSES)
    fig = plots.confusion_matrix(cm, tmp_path / "cm.png", title="run")
    assert_png(fig, tmp_path / "cm.png")
    assert f"N={len(labels)}" in fig.axes[0].get_title()


def test_per_class_accuracy_plot(evaluation, tmp_path):
    _, labels, probs = evaluation
    table = report.per_class_accuracy(labels, probs.argmax(1), CLASSES)
    assert_png(plots.per_class_accuracy(table, tmp_path / "pc.png"), tmp_path / "pc.png")


def test_confident_mistakes(evaluation, tmp_path):
    images, labels, probs = evaluation
    fig = plots.confident_mistakes(images, labels, probs, CLASSES, tmp_path / "m.png", k=7)
    assert_png(fig, tmp_path / "m.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 7 and all("true:" in t and "pred:" in t for t in titles)
    right = np.eye(10)[labels]  # no mistakes at all
    assert_png(plots.confident_mistakes(images, labels, right, CLASSES, tmp_path / "none.png"),
               tmp_path / "none.png")


def test_reliability_diagram(evaluation, tmp_path):
    _, labels, probs = evaluation
    fig = plots.reliability_diagram(probs, labels, tmp_path / "r.png", n_bins=10)
    assert_png(fig, tmp_path / "r.png")
    _, ece = report.calibration(probs, labels, 10)
    assert f"ECE = {ece:.4f}" in fig.axes[0].get_title()


def test_predicted_distribution(evaluation, tmp_path):
    _, _, probs = evaluation
    dist = report.predicted_distribution(probs.argmax(1), CLASSES)
    assert_png(plots.predicted_distribution(dist, tmp_path / "p.png"), tmp_path / "p.png")
    assert_png(plots.prediction_histogram(probs.argmax(1), CLASSES, tmp_path / "p2.png"), tmp_path / "p2.png")


def test_corruption_plot_and_examples(evaluation, tmp_path):
    images, _, _ = evaluation
    table = pd.DataFrame([dict(kind=k, severity=s, accuracy=0.9 - 0.1 * s - 0.01 * i, drop=0.1 * s)
                          for i, k in enumerate(report.CORRUPTIONS) for s in report.SEVERITIES])
    fig = plots.corruption_plot(table, tmp_path / "c.png")
    assert_png(fig, tmp_path / "c.png")
    assert len(fig.axes[0].get_lines()) == len(report.CORRUPTIONS) + 1  # + the clean line
    fig = plots.corruption_examples(images[0], tmp_path / "ce.png")
    assert_png(fig, tmp_path / "ce.png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(report.CORRUPTIONS)


def test_no_path_saves_nothing(evaluation, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, labels, probs = evaluation
    fig = plots.reliability_diagram(probs, labels)
    assert isinstance(fig, Figure) and not list(tmp_path.iterdir())
