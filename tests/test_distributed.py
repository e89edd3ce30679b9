"""Data-parallel training under torchrun, on CPU processes with gloo.

The multi-process parts start real `torchrun` jobs (python -m torch.distributed.run). Some
run this very file as the worker script (see `_rank_main` at the bottom), so what each
rank does is plain code here rather than a string."""

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from src import augment, config, distributed, engine, paths, train

REPO = paths.REPO_ROOT
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _env():
    """The test's output folder (CIFAR_OUTPUT_DIR, set by conftest) and one thread a rank."""
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath}


def _run(cmd, timeout=600):
    """Run a job to its end; a hang is killed whole (its own process group) and fails the test.
    The limit is generous: on a loaded machine just starting the ranks can take minutes."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{' '.join(cmd[:6])} ... did not end within {timeout} s")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), time.time()


def _float_state(state: dict) -> dict:
    return {k: v for k, v in state.items() if v.is_floating_point()}


def _max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in _float_state(a))


# --- torchrun, end to end ------------------------------------------------------------------------

def test_two_processes_train_and_rank_0_alone_writes_the_run_folder(tiny_competition, isolated_outputs):
    proc, _ = _run([*TORCHRUN, "-m", "src.train", "--profile", "fast", "--data-dir", str(tiny_competition),
                    "--epochs", "2", "--batch-size", "32", "--val-size", "50", "--device", "cpu",
                    "--precision", "fp32", "--no-progress", "--name", "ddp"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count('"run_dir"') == 1  # one summary, from rank 0
    runs = isolated_outputs / "runs"
    assert [p.name for p in runs.iterdir()] == ["ddp"]
    run = runs / "ddp"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.csv"]
    assert list(pd.read_csv(run / "metrics.csv").epoch) == [1, 2]
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and len(last["history"]) == 2 and last["ema"] is not None
    # each rank drew its own augmentations; the sample order is the single-process one
    ranks = last["rng_ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["cpu"], ranks[1]["cpu"])
    order = torch.Generator().manual_seed(0)
    for _ in range(2):
        torch.randperm(200 - 50, generator=order)
    assert torch.equal(last["rng_order"], order.get_state())

    # resume from rank 0's last.pt, started the notebook's way; output comes back as it runs
    out = io.StringIO()
    cfg = config.make_config("fast", data_dir=str(tiny_competition), epochs=3, batch_size=32, val_size=50,
                             device="cpu", precision="fp32", progress=False, name="ddp", resume=True)
    run_dir = distributed.launch(cfg, 2, env={"OMP_NUM_THREADS": "1"}, out=out)
    assert run_dir == run and "torch.distributed.run" in out.getvalue() and '"epoch": 3' in out.getvalue()
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics.epoch) == [1, 2, 3]
    assert metrics.train_loss.iloc[:2].tolist() == pytest.approx([r["train_loss"] for r in last["history"]])
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.csv"]


def test_a_failing_rank_ends_the_whole_job_with_an_error(tiny_competition, isolated_outputs, tmp_path):
    """Rank 1's copy of the data is missing: it raises right after joining the group while
    rank 0 goes on into the first collective. The job must fail, soon, not hang."""
    failed_at = tmp_path / "failed_at"
    proc, ended = _run([*TORCHRUN, str(Path(__file__)), "one-rank-fails", str(tiny_competition),
                        str(tmp_path / "missing"), str(failed_at)])
    assert proc.returncode != 0
    assert "no CIFAR-10 competition data found" in proc.stderr  # rank 1's own error, shown
    assert ended - float(failed_at.read_text()) < 60  # from rank 1's exception to the job's end
    assert not (isolated_outputs / "runs" / "broken" / "last.pt").exists()


def _equivalence_configs(data_dir) -> dict:
    common = dict(data_dir=str(data_dir), batch_size=32, val_size=50, lr=0.05, device="cpu", precision="fp32",
                  progress=False, eval_batch_size=64, augment="none", sync_bn=True, dist_timeout=60)
    return {"fp32": config.make_config("fast", name="fp32", epochs=1, train_limit=32, **common),  # 1 step
            "fp64": config.make_config("fast", name="fp64", epochs=2, **common)}                 # 8 steps


@contextlib.contextmanager
def _float64():
    """The engine in float64: parameters by default dtype, batches from `normalize`."""
    normalize, dtype = augment.normalize, torch.get_default_dtype()
    augment.normalize = lambda *a, **k: normalize(*a, **k).double()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        augment.normalize = normalize
        torch.set_default_dtype(dtype)


def test_two_processes_with_sync_bn_match_one_process_with_the_whole_batch(tiny_competition, isolated_outputs):
    """Global batch 32: 2 ranks × 16 with SyncBatchNorm against 1 process × 32, the engine's
    own `train`, compared through the saved last.pt. In fp32 after one step; in float64 over
    8 steps (in fp32 this tiny net's rounding noise grows ~1000× a step, as much as between
    channels_last and contiguous single-process runs, so only float64 can show equality
    over several steps)."""
    proc, _ = _run([*TORCHRUN, str(Path(__file__)), "equivalence", str(tiny_competition)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cfgs = _equivalence_configs(tiny_competition)
    runs = isolated_outputs / "runs"
    engine.train(cfgs["fp32"], run_dir=runs / "one-fp32")
    with _float64():
        engine.train(cfgs["fp64"], run_dir=runs / "one-fp64")
    for name, tol in (("fp32", 1e-5), ("fp64", 1e-10)):
        one = torch.load(runs / f"one-{name}" / "last.pt", weights_only=True)
        two = torch.load(runs / name / "last.pt", weights_only=True)
        assert set(two) == set(one) | {"rng_ranks"}  # the single-process format
        assert two["epoch"] == one["epoch"] and len(two["history"]) == len(one["history"])
        diff = {k: _max_abs_diff(one[k], two[k]) for k in ("model", "ema")}
        print(f"{name}: max |Δparam| model {diff['model']:.3g}, ema {diff['ema']:.3g}")
        assert diff["model"] < tol and diff["ema"] < tol, (name, diff)
        for a, b in zip(one["history"], two["history"]):
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
        best_one = torch.load(runs / f"one-{name}" / "best.pt", weights_only=True)
        assert set(torch.load(runs / name / "best.pt", weights_only=True)) == set(best_one)


# --- pieces, in this process -----------------------------------------------------------------------

def test_cli_flags_rebuild_the_config_exactly():
    cfg = config.make_config("fast", name="x", epochs=3, milestones=[1, 2], sync_bn=True, compile=False,
                             data_dir="/d", dist_timeout=12.5, train_limit=None)
    args = vars(train._parser().parse_args(distributed.config_to_argv(cfg)))
    assert config.make_config(args.pop("profile"), **args) == cfg
    custom = config.Config(lr=0.3, progress=False)  # no profile: every field still explicit
    args = vars(train._parser().parse_args(distributed.config_to_argv(custom)))
    assert args.pop("profile") is None and config.make_config(None, **args) == custom


def test_nproc_auto_means_one_per_visible_gpu(monkeypatch):
    monkeypatch.setattr(distributed, "visible_gpus", lambda: 2)
    assert distributed.resolve_nproc("auto") == 2 and distributed.resolve_nproc("auto", "cpu") == 1
    monkeypatch.setattr(distributed, "visible_gpus", lambda: 1)
    assert distributed.resolve_nproc("auto") == 1 and distributed.resolve_nproc(3) == 3
    monkeypatch.setattr(distributed, "visible_gpus", lambda: 0)
    assert distributed.resolve_nproc(None) == 1
    with pytest.raises(ValueError):
        distributed.resolve_nproc(0)


def test_single_process_context_and_sync_bn_fallback_are_plain():
    ctx = distributed.setup("cpu")  # WORLD_SIZE unset: no process group
    assert not ctx.enabled and ctx.is_main and ctx.broadcast("a") == "a"
    assert ctx.sum(torch.tensor(2.0), torch.tensor(3)) == [2.0, 3]
    bn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4, momentum=0.4))
    bn[1].weight.requires_grad_(False)
    synced = distributed.convert_sync_batchnorm(bn, torch.device("cpu"))
    assert isinstance(synced[1], distributed.CpuSyncBatchNorm) and synced[1].momentum == 0.4
    assert synced[1].weight is bn[1].weight and not synced[1].weight.requires_grad
    assert synced.state_dict().keys() == bn.state_dict().keys()


def test_engine_refuses_a_global_batch_the_ranks_cannot_share():
    ctx = distributed.Context(rank=0, world_size=3, device=torch.device("cpu"))  # checked before any collective
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        engine._train(config.make_config("fast", batch_size=32), None, None, None, ctx)


# --- what each rank runs (this file as torchrun's worker script) ---------------------------------

def _rank_main(argv):
    import torch.distributed as dist

    mode, data_dir, *rest = argv
    rank = int(os.environ["RANK"])
    if mode == "one-rank-fails":
        missing, failed_at = rest
        cfg = config.make_config("fast", data_dir=data_dir if rank == 0 else missing, epochs=50, batch_size=32,
                                 val_size=50, device="cpu", precision="fp32", progress=False, name="broken",
                                 dist_timeout=30)
        try:
            engine.train(cfg)
        except Exception:
            if rank == 1:
                Path(failed_at).write_text(str(time.time()))
            raise
    elif mode == "equivalence":
        from datetime import timedelta
        dist.init_process_group("gloo", timeout=timedelta(seconds=60))  # the engine joins it as it is
        cfgs = _equivalence_configs(data_dir)
        engine.train(cfgs["fp32"])
        with _float64():
            engine.train(cfgs["fp64"])
        dist.destroy_process_group()
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    _rank_main(sys.argv[1:])
