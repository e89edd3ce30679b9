import numpy as np
import pandas as pd
import pytest
import torch

from src import config, engine, paths
from src import predict as P
from src.data import load_competition

IDS = np.array([7, 3, 11, 5])


def write(tmp_path, text):
    path = tmp_path / "sub.csv"
    path.write_text(text)
    return path


def test_a_good_submission_passes(tmp_path):
    df = P.validate_submission_csv(write(tmp_path, "ID,Labels\n7,0\n3,9\n11,4\n5,1\n"), IDS)
    assert len(df) == 4


@pytest.mark.parametrize("text, message", [
    ("Id,Label\n7,0\n3,9\n11,4\n5,1\n", "header must be 'ID,Labels'"),
    ("ID,Labels\n7,0\n3,9\n11,4\n", "1 IDs missing"),
    ("ID,Labels\n7,0\n3,9\n11,4\n5,1\n5,1\n", "duplicate IDs"),
    ("ID,Labels\n7,0\n3,9\n11,4\n6,1\n", "not in the competition set"),
    ("ID,Labels\n7,0\n3,10\n11,4\n5,1\n", "labels must be integers 0–9"),
    ("ID,Labels\n7,0\n3,-1\n11,4\n5,1\n", "labels must be integers 0–9"),
    ("ID,Labels\n7,0\n3,cat\n11,4\n5,1\n", "labels must be integers 0–9"),
    ("ID,Labels\n7,0\n3,2.5\n11,4\n5,1\n", "labels must be integers 0–9"),
    ("ID,Labels\nx,0\n3,2\n11,4\n5,1\n", "IDs must be integers"),
])
def test_bad_submissions_are_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(P.SubmissionError, match=message):
        P.validate_submission_csv(write(tmp_path, text), IDS)


def test_missing_or_empty_file_is_refused(tmp_path):
    with pytest.raises(P.SubmissionError, match="no submission file"):
        P.validate_submission_csv(tmp_path / "nope.csv", IDS)
    with pytest.raises(P.SubmissionError, match="not a readable CSV"):
        P.validate_submission_csv(write(tmp_path, ""), IDS)


def test_write_submission_keeps_order_and_never_overwrites_silently(tmp_path):
    path = P.write_submission(IDS, [1, 2, 3, 4], tmp_path / "s.csv")
    assert path.read_text() == "ID,Labels\n7,1\n3,2\n11,3\n5,4\n"
    with pytest.raises(FileExistsError):
        P.write_submission(IDS, [0, 0, 0, 0], path)
    assert path.read_text().endswith("5,4\n")
    P.write_submission(IDS, [0, 0, 0, 0], path, overwrite=True)
    assert path.read_text().endswith("5,0\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]  # no temporary left behind


def test_invalid_predictions_write_nothing(tmp_path):
    with pytest.raises(P.SubmissionError):
        P.write_submission(IDS, [1, 2, 3, 12], tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


class FlipAware(torch.nn.Module):
    """Logits from the left half minus the right half: flipping negates them."""

    def forward(self, x):
        left, right = x[..., :16].mean((1, 2, 3)), x[..., 16:].mean((1, 2, 3))
        return torch.stack([left - right] * 10, 1) * torch.arange(10.0)


@pytest.mark.parametrize("tta", P.TTA_MODES)
def test_tta_views_are_averaged(tta):
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    logits = P.predict_logits(FlipAware(), images, torch.zeros(3), torch.ones(3), tta=tta, batch_size=2)
    assert logits.shape == (5, 10)
    if tta == "none":
        assert logits.abs().sum() > 0
    else:  # the flip cancels the left/right difference
        assert torch.allclose(logits, torch.zeros_like(logits), atol=1e-5)


def test_predict_run_writes_a_valid_csv_in_pickle_order(tiny_competition):
    cfg = config.make_config("fast", data_dir=str(tiny_competition), epochs=1, batch_size=32, val_size=50,
                             name="p", progress=False, device="cpu", lr=0.05)
    engine.train(cfg)
    assert P.latest_run() == paths.runs_dir() / "p"
    r = P.predict_run("p", tta="flip")
    data = load_competition(tiny_competition)
    df = pd.read_csv(r["csv"])
    assert r["csv"] == paths.submissions_dir() / "p.csv"
    assert list(df.ID) == list(data.unlabelled_ids) and df.Labels.between(0, 9).all()
    with pytest.raises(FileExistsError):
        P.predict_run("p")


def test_predict_scores_a_labelled_test_batch(tmp_path):
    from src.data import write_synthetic_competition
    root = write_synthetic_competition(tmp_path / "c", n_train=200, n_unlabelled=20, n_test=30)
    engine.train(config.make_config("fast", data_dir=str(root), epochs=2, batch_size=32, val_size=50,
                                    name="t", progress=False, device="cpu", lr=0.05))
    r = P.predict_run("t")
    assert 0.0 <= r["test"]["acc"] <= 1.0


def test_unknown_run_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no run 'nope'"):
        P.predict_run("nope")
