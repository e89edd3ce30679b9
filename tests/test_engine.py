import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from src import config, engine, paths
from src.data import load_competition

REPO = paths.REPO_ROOT


def tiny(competition, **kw):
    """A few seconds of CPU training on the synthetic competition."""
    base = dict(data_dir=str(competition), epochs=3, batch_size=32, val_size=50, lr=0.05,
                device="cpu", precision="fp32", progress=False, eval_batch_size=64)
    base.update(kw)
    return config.make_config("fast", **base)


def test_tiny_run_learns_and_writes_its_run_folder(tiny_competition):
    cfg = tiny(tiny_competition, name="learn", epochs=4, ema_decay=0.0, tta="flip")
    r = engine.train(cfg)
    assert r.run_dir == paths.runs_dir() / "learn"
    for f in ("config.json", "metrics.csv", "last.pt", "best.pt"):
        assert (r.run_dir / f).is_file(), f
    metrics = pd.read_csv(r.run_dir / "metrics.csv")
    assert list(metrics.epoch) == [1, 2, 3, 4]
    assert metrics.val_acc.iloc[-1] > 0.5  # ten classes: chance is 0.1
    assert "val_acc_tta" in metrics and metrics.train_loss.iloc[-1] < metrics.train_loss.iloc[0]
    saved = torch.load(r.run_dir / "best.pt", weights_only=True)
    assert saved["config"]["name"] == "learn" and saved["params"] == r.params


def test_ema_weights_are_evaluated_and_saved(tiny_competition):
    r = engine.train(tiny(tiny_competition, name="ema", epochs=2, ema_decay=0.9))
    metrics = pd.read_csv(r.run_dir / "metrics.csv")
    assert metrics.ema_val_acc.notna().all()
    saved = torch.load(r.run_dir / "best.pt", weights_only=True)
    assert saved["ema"] is not None
    assert any(not torch.equal(saved["ema"][k], saved["model"][k]) for k in saved["model"])


def test_existing_run_is_never_overwritten(tiny_competition):
    engine.train(tiny(tiny_competition, name="once", epochs=1))
    with pytest.raises(FileExistsError, match="already holds a run"):
        engine.train(tiny(tiny_competition, name="once", epochs=1))


def test_diverging_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tiny_competition):
    # epoch 1 is sane; epoch 2's lr is multiplied by 1e30
    cfg = tiny(tiny_competition, name="nan", epochs=3, schedule="multistep", milestones=[1], gamma=1e30)
    with pytest.raises(engine.TrainingError, match="loss became .* in epoch 2"):
        engine.train(cfg)
    last = torch.load(paths.runs_dir() / "nan" / "last.pt", weights_only=True)
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


def test_over_limit_model_needs_an_explicit_override(tiny_competition):
    with pytest.raises(ValueError, match="over the competition's limit"):
        engine.train(tiny(tiny_competition, model="resnet18", epochs=1))


def test_schedules_follow_their_shape():
    model = torch.nn.Linear(2, 2)
    for name in ("onecycle", "cosine", "multistep", "constant"):
        cfg = config.make_config(schedule=name, epochs=10, lr=1.0, warmup_epochs=2, milestones=[5],
                                 final_lr_frac=0.1)
        opt = engine.make_optimizer(model, cfg)
        sched = engine.make_scheduler(opt, cfg, steps_per_epoch=10)
        lrs = []
        for _ in range(100):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        if name in ("onecycle", "cosine"):
            assert lrs[0] < 0.1 and max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 20
            assert lrs[-1] < 0.15
        elif name == "multistep":
            assert lrs[49] == 1.0 and lrs[50] == pytest.approx(0.1)
        else:
            assert set(lrs) == {1.0}


def test_no_weight_decay_on_batchnorm_and_biases():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = engine.make_optimizer(model, config.make_config(weight_decay=0.1, bias_lr_scale=2.0, lr=0.5))
    decay, no_decay = opt.param_groups
    assert [p.shape for p in decay["params"]] == [(4, 3, 3, 3)] and decay["weight_decay"] == 0.1
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0 and no_decay["lr"] == 1.0


def _train_command(competition, name, epochs, resume=False):
    cmd = [sys.executable, "-m", "src.train", "--profile", "fast", "--data-dir", str(competition),
           "--name", name, "--epochs", str(epochs), "--batch-size", "16", "--val-size", "50",
           "--lr", "0.05", "--device", "cpu", "--precision", "fp32", "--no-progress", "--seed", "3"]
    return cmd + (["--resume"] if resume else [])


def test_killed_run_resumes_to_the_same_result(tiny_competition):
    """kill -9 after the first checkpoint, resume, and end exactly where an uninterrupted
    run with the same seed ends."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    epochs = 5
    subprocess.run(_train_command(tiny_competition, "whole", epochs), check=True, cwd=REPO, env=env,
                   capture_output=True)
    proc = subprocess.Popen(_train_command(tiny_competition, "killed", epochs), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = paths.runs_dir() / "killed" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert 1 <= killed_at < epochs
    subprocess.run(_train_command(tiny_competition, "killed", epochs, resume=True), check=True, cwd=REPO,
                   env=env, capture_output=True)

    def final(name):
        ckpt = torch.load(paths.runs_dir() / name / "last.pt", weights_only=True)
        metrics = pd.read_csv(paths.runs_dir() / name / "metrics.csv").drop(columns=["epoch_seconds", "train_seconds"])
        return ckpt, metrics

    (a, ma), (b, mb) = final("whole"), final("killed")
    assert a["epoch"] == b["epoch"] == epochs
    pd.testing.assert_frame_equal(ma, mb)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_competition):
    with pytest.raises(FileNotFoundError, match="resume asked for"):
        engine.train(tiny(tiny_competition, name="ghost", resume=True))


def test_channel_stats_are_per_channel():
    x = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    x[:, 1] = 255
    mean, std = engine.channel_stats(x)
    assert mean.tolist() == [0.0, 1.0, 0.0] and std.tolist() == [0.0, 0.0, 0.0]


def test_real_data_one_short_epoch(shared_competition):
    data = load_competition(shared_competition)
    cfg = config.make_config("fast", epochs=1, train_limit=2048, batch_size=256, val_size=1000,
                             progress=False, device="cpu", name="real")
    r = engine.train(cfg, data)
    assert math.isfinite(r.final["train_loss"]) and r.final["val_acc"] > 0.1
