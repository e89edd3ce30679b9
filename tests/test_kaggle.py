"""src.kaggle: metadata files, the src bundle, dry runs checked against the installed
kaggle CLI's own parser, credentials, submission checks and publishing on Kaggle.

Nothing here touches the network or needs real Kaggle credentials."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from src import kaggle as kg
from src.paths import DEFAULT_COMPETITION, REPO_ROOT

COMPETITION = DEFAULT_COMPETITION
N_IDS = 50  # the tiny_competition fixture's unlabelled ids are 0..49


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """An environment where the kaggle CLI would find no credentials at all."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "XDG_CONFIG_HOME",
                 "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def fake_credentials(no_credentials, monkeypatch):
    """Fake, non-working credentials: enough for the pre-flight check, never used."""
    monkeypatch.setenv("KAGGLE_USERNAME", "fake-user")
    monkeypatch.setenv("KAGGLE_KEY", "fake-key-not-a-secret")


@pytest.fixture
def calls(monkeypatch):
    """Record every subprocess.run instead of running it."""
    recorded = []

    def fake_run(argv, *args, **kwargs):
        recorded.append((list(argv), kwargs))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(kg.subprocess, "run", fake_run)
    return recorded


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    """runs/ and submissions/ under tmp_path, and not on Kaggle."""
    monkeypatch.setenv("CIFAR_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("KAGGLE_ROOT", str(tmp_path / "no-kaggle-here"))
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    return tmp_path / "out"


def write_csv(path: Path, rows, header="ID,Labels") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{i},{y}\n" for i, y in rows))
    return path


def valid_rows(n=N_IDS):
    return [(i, i % 10) for i in range(n)]


def make_run(runs: Path, name="resnet-a", accs=(0.5, 0.91, 0.9)) -> Path:
    run = runs / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"epochs": len(accs)}))
    lines = ["epoch,train_loss,val_acc"] + [f"{e},1.0,{a}" for e, a in enumerate(accs, 1)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    return run


def make_kernel_folder(tmp_path: Path) -> Path:
    """A folder to push: the repo's kernel-metadata.json and a tiny notebook at its
    code_file (the real notebooks are written by others)."""
    folder = tmp_path / "kernel"
    folder.mkdir()
    meta = json.loads((REPO_ROOT / "kernel-metadata.json").read_text())
    (folder / "kernel-metadata.json").write_text(json.dumps(meta))
    nb = folder / meta["code_file"]
    nb.parent.mkdir(parents=True, exist_ok=True)
    nb.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return folder


def dry_run_commands(text: str) -> list[list[str]]:
    """The commands a dry run printed (the line after each '# dry run' line), split."""
    lines = text.splitlines()
    return [shlex.split(lines[i + 1]) for i, line in enumerate(lines)
            if line.startswith("# dry run") and i + 1 < len(lines)]


def kaggle_subcommand(argv: list[str]) -> list[str]:
    """Drop the launcher (`kaggle` or `python -m kaggle`) from a printed command."""
    i = argv.index("kaggle") if "kaggle" in argv else argv.index("-m") + 1
    return argv[i + 1:]


# ------------------------------------------------------------------- metadata files

def test_slugify_matches_python_slugify():
    slugify = pytest.importorskip("slugify").slugify
    for title in ["CIFAR10 Train Pipeline", "CIFAR-10: ResNet (5M params)", "  A  b--C  ",
                  kg.DEFAULT_KERNEL_TITLE, kg.DEFAULT_DATASET_TITLE]:
        assert kg.slugify(title) == slugify(title)


def test_repo_kernel_metadata_is_valid():
    path = REPO_ROOT / "kernel-metadata.json"
    meta = json.loads(path.read_text())
    for field in ("id", "title", "code_file", "language", "kernel_type", "is_private",
                  "enable_gpu", "enable_internet", "dataset_sources", "competition_sources",
                  "kernel_sources"):
        assert field in meta, field
    owner, slug = meta["id"].split("/")
    assert owner and slug == kg.slugify(meta["title"]), "Kaggle needs id slug == slugified title"
    assert len(meta["title"]) >= 5
    assert meta["language"] == "python" and meta["kernel_type"] == "notebook"
    assert meta["is_private"] is True and meta["enable_gpu"] is True
    assert meta["enable_internet"] is False
    assert meta["competition_sources"] == [COMPETITION]
    assert meta["kernel_sources"] == []
    assert meta["dataset_sources"] == [f"{owner}/{kg.DEFAULT_DATASET_SLUG}"]
    assert meta["code_file"].endswith(".ipynb")
    assert kg.kernel_metadata_problems(meta, path.parent, check_code_file=False) == []


def test_repo_kernel_metadata_code_file_exists():
    meta = json.loads((REPO_ROOT / "kernel-metadata.json").read_text())
    notebook = REPO_ROOT / meta["code_file"]
    if not notebook.exists() and not notebook.with_suffix(".py").exists():
        pytest.skip(f"{meta['code_file']} and its .py pair have not landed yet")
    assert notebook.is_file(), f"{notebook} missing: run `jupytext --sync {notebook.with_suffix('.py')}`"
    assert kg.kernel_metadata_problems(meta, REPO_ROOT) == []


def test_kernel_metadata_problems_are_reported(tmp_path):
    meta = kg.default_kernel_metadata(username="alice")
    meta.update(title="Another Title", enable_internet=True, competition_sources=[])
    problems = "\n".join(kg.kernel_metadata_problems(meta, tmp_path))
    assert "must equal the title slugified" in problems
    assert "enable_internet must be false" in problems
    assert COMPETITION in problems
    assert "not found" in problems  # code_file
    placeholder = kg.default_kernel_metadata()
    assert any("placeholder" in p for p in kg.kernel_metadata_problems(
        placeholder, check_code_file=False, allow_placeholder=False))


# -------------------------------------------------------------------------- bundle

def test_built_dataset_metadata_and_contents(tmp_path):
    out = kg.build_dataset(tmp_path / "bundle", "cifar10-pipeline-src", "alice",
                           "CIFAR10 pipeline src")
    meta = json.loads((out / "dataset-metadata.json").read_text())
    assert meta["id"] == "alice/cifar10-pipeline-src"
    assert meta["title"] == "CIFAR10 pipeline src"
    assert meta["licenses"] == [{"name": "MIT"}]
    assert 6 <= len(meta["id"].split("/")[1]) <= 50 and 6 <= len(meta["title"]) <= 50
    assert kg.dataset_metadata_problems(meta, out) == []

    shipped = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = sorted(f"src/{p.relative_to(kg.SRC_DIR).as_posix()}"
                      for p in kg.SRC_DIR.rglob("*.py") if "__pycache__" not in p.parts)
    assert shipped == ["dataset-metadata.json"] + expected
    assert "src/__init__.py" in shipped and "src/kaggle.py" in shipped
    for p in out.rglob("*"):
        assert "__pycache__" not in p.parts
        if p.is_file():
            assert p.stat().st_size <= 1_000_000, p
            assert p.suffix not in {".pt", ".pth", ".pkl", ".csv", ".npy", ".pyc"}, p


def test_bundle_skips_caches_data_and_outputs(tmp_path):
    src = tmp_path / "repo" / "src"
    (src / "sub").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "mod.py").write_text("X = 1\n")
    (src / "sub" / "__init__.py").write_text("")
    (src / "sub" / "deep.py").write_text("Y = 2\n")
    clutter = {"__pycache__/mod.cpython-311.pyc": b"\0" * 10, "data/batch.pkl": b"\0" * 10,
               "runs/r/metrics.csv": b"epoch,val_acc\n", "checkpoints/best.pt": b"\0" * 10,
               "preds.csv": b"ID,Labels\n", "weights.pt": b"\0" * 2_000_000,
               ".hidden/x.py": b"", "sub/__pycache__/deep.cpython-311.pyc": b"\0"}
    for rel, data in clutter.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    out = kg.build_dataset(tmp_path / "bundle", "test-src-slug", "alice", "Test src title",
                           src_dir=src)
    shipped = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert shipped == ["dataset-metadata.json", "src/__init__.py", "src/mod.py",
                       "src/sub/__init__.py", "src/sub/deep.py"]

    # Rebuilding replaces the old bundle (stale files go) ...
    (out / "src" / "stale.py").write_text("")
    kg.build_dataset(out, "test-src-slug", "alice", "Test src title", src_dir=src)
    assert not (out / "src" / "stale.py").exists()
    # ... but a folder that is not a bundle is never emptied.
    other = tmp_path / "precious"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(kg.KaggleError, match="refusing"):
        kg.build_dataset(other, "test-src-slug", "alice", "Test src title", src_dir=src)
    assert (other / "keep.txt").read_text() == "mine"
    with pytest.raises(kg.MetadataError):
        kg.build_dataset(tmp_path / "b2", "short", "alice", "Test src title", src_dir=src)


def test_set_username_rewrites_both_metadata_files(tmp_path, capsys):
    kernel_meta = make_kernel_folder(tmp_path) / "kernel-metadata.json"
    meta = json.loads(kernel_meta.read_text())
    meta["dataset_sources"].append("someone-else/public-data")
    kernel_meta.write_text(json.dumps(meta))
    bundle = kg.build_dataset(tmp_path / "bundle", kg.DEFAULT_DATASET_SLUG,
                              kg.PLACEHOLDER_USERNAME, kg.DEFAULT_DATASET_TITLE)

    assert kg.main(["metadata", "--username", "alice", "--kernel-metadata", str(kernel_meta),
                    "--bundle", str(bundle)]) == 0
    assert "problem" not in capsys.readouterr().err
    new = json.loads(kernel_meta.read_text())
    assert new["id"] == f"alice/{kg.slugify(meta['title'])}"
    assert new["dataset_sources"] == [f"alice/{kg.DEFAULT_DATASET_SLUG}",
                                      "someone-else/public-data"]
    ds = json.loads((bundle / "dataset-metadata.json").read_text())
    assert ds["id"] == f"alice/{kg.DEFAULT_DATASET_SLUG}"
    assert kg.kernel_metadata_problems(new, check_code_file=False, allow_placeholder=False) == []

    kg.update_kernel_metadata(kernel_meta, title="My CIFAR Kernel")
    assert json.loads(kernel_meta.read_text())["id"] == "alice/my-cifar-kernel"
    with pytest.raises(kg.MetadataError):
        kg.set_username("bad name!", kernel_meta, bundle)


# ------------------------------------------------------------------------ dry runs

def test_dry_runs_print_the_commands(tmp_path, no_credentials, calls, outputs, tiny_competition,
                                     capsys):
    make_run(outputs / "runs", "resnet-a", accs=(0.5, 0.91, 0.9))
    csv_path = write_csv(outputs / "submissions" / "resnet-a.csv", valid_rows())
    kernel = make_kernel_folder(tmp_path)
    bundle_dir = tmp_path / "bundle dir"  # a space: the printed command must quote it

    assert kg.main(["submit", str(csv_path), "--data-dir", str(tiny_competition),
                    "--dry-run"]) == 0
    assert kg.main(["push", "--path", str(kernel), "--dry-run"]) == 0
    assert kg.main(["bundle", "--out", str(bundle_dir), "--create", "--dry-run"]) == 0
    assert kg.main(["bundle", "--out", str(bundle_dir), "-m", "new model", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert calls == [], "a dry run must not run anything"

    commands = [kaggle_subcommand(c) for c in dry_run_commands(out)]
    assert commands == [
        ["competitions", "submit", COMPETITION, "-f", str(csv_path), "-m",
         "resnet-a val_acc=0.9100"],
        ["kernels", "push", "-p", str(kernel)],
        ["datasets", "create", "-p", str(bundle_dir.resolve()), "--dir-mode", "zip"],
        ["datasets", "version", "-p", str(bundle_dir.resolve()), "-m", "new model",
         "--dir-mode", "zip"],
    ]
    assert f"kaggle competitions submit {COMPETITION} -f" in out
    assert shlex.quote(str(bundle_dir.resolve())) in out
    assert (bundle_dir / "src" / "__init__.py").is_file()  # built locally even in a dry run


def test_default_message_comes_from_the_run(tmp_path, outputs):
    run = make_run(outputs / "runs", "se-resnet", accs=(0.8, "", 0.8765, 0.87))
    assert kg.summarize_run("se-resnet").best_epoch == 3
    assert kg.default_message("whatever.csv", run="se-resnet") == "se-resnet val_acc=0.8765"
    assert kg.default_message("x.csv", run=str(run)) == "se-resnet val_acc=0.8765"
    assert kg.default_message(outputs / "submissions" / "se-resnet.csv") == "se-resnet val_acc=0.8765"
    assert kg.default_message("other.csv") == "other.csv"
    with pytest.raises(kg.KaggleError, match="not found"):
        kg.default_message("x.csv", run="no-such-run")


_PARSE_WITH_KAGGLE_CLI = textwrap.dedent("""
    import json, sys
    import kaggle.cli as cli
    from kaggle import api
    got = []
    def recorder(name):
        return lambda **kw: got.append([name, kw])
    for name in ("competition_submit_cli", "kernels_push_cli", "dataset_create_new_cli",
                 "dataset_create_version_cli"):
        setattr(api, name, recorder(name))
    api._authenticated = True
    for argv in json.loads(sys.argv[1]):
        sys.argv = ["kaggle"] + argv
        cli.main()
    print("PARSED=" + json.dumps(got))
""")


def test_installed_kaggle_cli_accepts_our_arguments(tmp_path, no_credentials):
    """Feed the commands our dry run prints to the installed kaggle CLI's own main() and
    argparse parser, with the API calls replaced by recorders: no network, fake creds."""
    if importlib.util.find_spec("kaggle") is None:
        pytest.skip("the kaggle package is not installed")
    csv_path = tmp_path / "my sub.csv"
    message = "resnet-a val_acc=0.9100 'quoted'"
    printed = [
        kg.competitions_submit_argv(COMPETITION, csv_path, message),
        kg.kernels_push_argv(tmp_path / "kernel", accelerator="NvidiaTeslaT4", timeout=3600),
        kg.datasets_create_argv(tmp_path / "bundle"),
        kg.datasets_version_argv(tmp_path / "bundle", "new model"),
    ]
    # What the user sees, split again as a shell would.
    argvs = [kaggle_subcommand(shlex.split(kg.format_command(a))) for a in printed]

    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(no_credentials), KAGGLE_CONFIG_DIR=str(tmp_path / "kcfg"),
               KAGGLE_USERNAME="fake-user", KAGGLE_KEY="fake-key-not-a-secret",
               PYTHONPATH="")
    proc = subprocess.run([sys.executable, "-c", _PARSE_WITH_KAGGLE_CLI, json.dumps(argvs)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parsed = json.loads(proc.stdout.split("PARSED=", 1)[1])
    assert [name for name, _ in parsed] == ["competition_submit_cli", "kernels_push_cli",
                                            "dataset_create_new_cli",
                                            "dataset_create_version_cli"]
    submit, push, create, version = (kw for _, kw in parsed)
    assert submit["competition"] == COMPETITION
    assert submit["file_name"] == str(csv_path) and submit["message"] == message
    assert push["folder"] == str(tmp_path / "kernel")
    assert push["acc"] == "NvidiaTeslaT4" and push["timeout"] == 3600
    assert create["folder"] == str(tmp_path / "bundle") and create["dir_mode"] == "zip"
    assert version["folder"] == str(tmp_path / "bundle") and version["dir_mode"] == "zip"
    assert version["version_notes"] == "new model"


# --------------------------------------------------------------------- credentials

def test_missing_credentials_fail_before_any_work(tmp_path, no_credentials, calls, outputs,
                                                  monkeypatch, capsys):
    assert kg.find_credentials() is None
    with pytest.raises(kg.KaggleCredentialsError) as err:
        kg.require_credentials()
    for hint in ("kaggle.json", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN",
                 "--dry-run"):
        assert hint in str(err.value)

    def no_work(*args, **kwargs):
        raise AssertionError("work was done before the credentials were checked")

    monkeypatch.setattr(kg, "validate_csv", no_work)
    monkeypatch.setattr(kg, "build_dataset", no_work)
    monkeypatch.setattr(kg, "read_json", no_work)
    csv_path = write_csv(tmp_path / "sub.csv", valid_rows())
    with pytest.raises(kg.KaggleCredentialsError):
        kg.submit(csv_path, expected_ids=np.arange(N_IDS))
    with pytest.raises(kg.KaggleCredentialsError):
        kg.bundle(tmp_path / "bundle")
    with pytest.raises(kg.KaggleCredentialsError):
        kg.push_kernel(tmp_path)
    for argv in (["submit", str(csv_path)], ["bundle", "--out", str(tmp_path / "b")],
                 ["push", "--path", str(tmp_path)]):
        assert kg.main(argv) == 1
        assert "No Kaggle API credentials found" in capsys.readouterr().err
    assert calls == []
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "b").exists()


def test_credentials_are_found_but_never_shown(tmp_path, no_credentials, monkeypatch):
    secret = "0123456789abcdef-secret"
    config = tmp_path / "kaggle-config"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": "alice", "key": secret}))
    where = kg.find_credentials()
    assert where == str(config / "kaggle.json") and secret not in where
    (config / "kaggle.json").unlink()

    monkeypatch.delenv("KAGGLE_CONFIG_DIR")  # then ~/.kaggle/kaggle.json
    (no_credentials / ".kaggle").mkdir()
    (no_credentials / ".kaggle" / "kaggle.json").write_text(
        json.dumps({"username": "alice", "key": secret}))
    assert kg.find_credentials() == str(no_credentials / ".kaggle" / "kaggle.json")
    (no_credentials / ".kaggle" / "kaggle.json").unlink()
    assert kg.find_credentials() is None

    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    assert kg.find_credentials() is None  # a username alone is not enough
    monkeypatch.setenv("KAGGLE_KEY", secret)
    assert "KAGGLE_KEY" in kg.find_credentials() and secret not in kg.find_credentials()
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", secret)
    assert kg.require_credentials() == "the KAGGLE_API_TOKEN environment variable"


# ---------------------------------------------------------------- submission checks

BAD_CSVS = {
    "wrong header": ("id,label", valid_rows()),
    "missing id": ("ID,Labels", valid_rows()[:-1]),
    "duplicate id": ("ID,Labels", valid_rows()[:-1] + [(0, 3)]),
    "label 10": ("ID,Labels", valid_rows()[:-1] + [(N_IDS - 1, 10)]),
    "label -1": ("ID,Labels", valid_rows()[:-1] + [(N_IDS - 1, -1)]),
    "unknown id": ("ID,Labels", valid_rows()[:-1] + [(N_IDS + 7, 1)]),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_is_refused_before_upload(case, tmp_path, fake_credentials, calls, outputs):
    from src.predict import SubmissionError

    header, rows = BAD_CSVS[case]
    csv_path = write_csv(tmp_path / "sub.csv", rows, header)
    with pytest.raises(SubmissionError):
        kg.submit(csv_path, expected_ids=np.arange(N_IDS), message="m")
    with pytest.raises(SubmissionError):
        kg.submit(csv_path, expected_ids=np.arange(N_IDS), message="m", dry_run=True)
    assert calls == []


def test_submit_checks_against_the_competition_ids(tmp_path, fake_credentials, calls, outputs,
                                                   tiny_competition, capsys):
    bad = write_csv(tmp_path / "bad.csv", valid_rows()[:-1] + [(0, 1)])
    assert kg.main(["submit", str(bad), "--data-dir", str(tiny_competition), "-m", "x"]) == 1
    assert "error:" in capsys.readouterr().err
    assert calls == []

    good = write_csv(tmp_path / "good.csv", valid_rows())
    assert kg.main(["submit", str(good), "--data-dir", str(tiny_competition),
                    "-m", "first try"]) == 0
    assert len(calls) == 1
    argv, kwargs = calls[0]
    assert kwargs.get("check") is True
    assert kaggle_subcommand(argv) == ["competitions", "submit", COMPETITION, "-f", str(good),
                                       "-m", "first try"]


def test_kaggle_cli_failure_is_reported(tmp_path, fake_credentials, outputs, monkeypatch,
                                       tiny_competition, capsys):
    def failing(argv, *args, **kwargs):
        raise subprocess.CalledProcessError(2, argv)

    monkeypatch.setattr(kg.subprocess, "run", failing)
    good = write_csv(tmp_path / "good.csv", valid_rows())
    with pytest.raises(kg.KaggleError, match="exit status 2"):
        kg.submit(good, expected_ids=np.arange(N_IDS), message="m")
    assert kg.main(["submit", str(good), "--data-dir", str(tiny_competition), "-m", "m"]) == 1
    err = capsys.readouterr().err
    assert "competitions submit" in err and "exit status 2" in err


# ---------------------------------------------------------------- publishing on Kaggle

def test_publish_submission_lands_in_kaggle_working(tmp_path, monkeypatch):
    from src.predict import SubmissionError

    root = tmp_path / "kaggle"
    (root / "input" / COMPETITION).mkdir(parents=True)
    (root / "working").mkdir()
    monkeypatch.setenv("KAGGLE_ROOT", str(root))
    monkeypatch.delenv("CIFAR_OUTPUT_DIR", raising=False)

    assert kg.kaggle_submission_path() == root / "working" / "submission.csv"
    csv_path = write_csv(root / "working" / "submissions" / "run.csv", valid_rows())
    dest = kg.publish_submission(csv_path, expected_ids=np.arange(N_IDS))
    assert dest == root / "working" / "submission.csv"
    assert dest.read_bytes() == csv_path.read_bytes()
    assert sorted(p.name for p in (root / "working").iterdir()) == ["submission.csv",
                                                                    "submissions"]

    bad = write_csv(tmp_path / "bad.csv", valid_rows()[:-1])
    with pytest.raises(SubmissionError):
        kg.publish_submission(bad, expected_ids=np.arange(N_IDS))
    assert dest.read_bytes() == csv_path.read_bytes()  # the good one stays


def test_publish_cli_under_simulated_kaggle(tmp_path, monkeypatch, tiny_competition, capsys):
    root = tmp_path / "kaggle"
    (root / "input").mkdir(parents=True)
    (root / "working").mkdir()
    monkeypatch.setenv("KAGGLE_ROOT", str(root))
    csv_path = write_csv(tmp_path / "preds.csv", [(i, 9 - i % 10) for i in range(N_IDS)])
    assert kg.main(["publish", str(csv_path), "--data-dir", str(tiny_competition)]) == 0
    assert (root / "working" / "submission.csv").read_bytes() == csv_path.read_bytes()
    assert str(root / "working" / "submission.csv") in capsys.readouterr().out
    bad = write_csv(tmp_path / "bad.csv", [(i, 11) for i in range(N_IDS)])
    assert kg.main(["publish", str(bad), "--data-dir", str(tiny_competition)]) == 1
    assert (root / "working" / "submission.csv").read_bytes() == csv_path.read_bytes()


def test_publish_submission_does_nothing_off_kaggle(tmp_path, outputs):
    csv_path = write_csv(tmp_path / "run.csv", valid_rows())
    assert kg.publish_submission(csv_path, expected_ids=np.arange(N_IDS)) is None
    assert not (tmp_path / "no-kaggle-here").exists()


# ----------------------------------------------------------------- notebook bootstrap

def _run_bootstrap(cwd: Path, kaggle_root: Path) -> str:
    code = kg.BOOTSTRAP_SNIPPET + "\nimport src\nprint('SRC=' + src.__file__)\n"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KAGGLE_ROOT")}
    env["KAGGLE_ROOT"] = str(kaggle_root)
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("SRC=", 1)[1].strip()


def test_bootstrap_snippet_finds_src_on_kaggle_and_locally(tmp_path):
    root = tmp_path / "kaggle"
    (root / "working").mkdir(parents=True)
    (root / "input" / COMPETITION).mkdir(parents=True)
    bundle = kg.build_dataset(root / "input" / kg.DEFAULT_DATASET_SLUG, kg.DEFAULT_DATASET_SLUG,
                              "alice", kg.DEFAULT_DATASET_TITLE)
    found = _run_bootstrap(root / "working", root)
    assert Path(found) == bundle / "src" / "__init__.py"

    local_cwd = REPO_ROOT / "notebooks" if (REPO_ROOT / "notebooks").is_dir() else REPO_ROOT
    assert Path(_run_bootstrap(local_cwd, tmp_path / "nowhere")) == REPO_ROOT / "src" / "__init__.py"
