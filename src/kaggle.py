"""Shipping the pipeline to Kaggle and submitting from the command line.

Four jobs, each usable from Python or from ``python -m src.kaggle``:

* ``bundle``   build a Kaggle *dataset* folder holding a copy of ``src/`` (``.py`` files
  only) plus its ``dataset-metadata.json``, and upload it with
  ``kaggle datasets create`` (first time, ``--create``) or ``kaggle datasets version``.
* ``push``     ``kaggle kernels push -p <folder>`` with the repo's ``kernel-metadata.json``
  (the training notebook, GPU on, internet off, the src dataset and the competition
  attached).
* ``submit``   validate a submission CSV against the competition's unlabelled ids, then
  ``kaggle competitions submit <competition> -f <csv> -m <message>``.
* ``metadata`` rewrite the Kaggle username (and optionally titles/slugs) in
  ``kernel-metadata.json`` and the bundle's ``dataset-metadata.json``, then check them.

Inside a Kaggle kernel there is no internet: ``publish_submission`` copies a validated CSV
to ``/kaggle/working/submission.csv``, the file a competition scores from a notebook.

Every command takes ``--dry-run``: it prints the exact shell-quoted kaggle commands, runs
nothing, touches no network and needs no credentials (local work such as building the
bundle folder or validating the CSV still happens). Without ``--dry-run`` the Kaggle
credentials are looked for first, before any work, and their absence is a clear error.
Credentials are never printed or logged; only *where* they were found is reported.

The kaggle CLI itself is run with ``subprocess.run([...], check=True)``; it is imported by
nobody here (importing the ``kaggle`` package authenticates at import time).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from .paths import DEFAULT_COMPETITION, REPO_ROOT, kaggle_root, on_kaggle, runs_dir

# ------------------------------------------------------------------------------ names

PLACEHOLDER_USERNAME = "your-kaggle-username"
DEFAULT_DATASET_SLUG = "cifar10-pipeline-src"  # Kaggle: 6-50 characters
DEFAULT_DATASET_TITLE = "CIFAR10 pipeline src"  # Kaggle: 6-50 characters
DEFAULT_KERNEL_TITLE = "CIFAR10 Train Pipeline"  # its slug: cifar10-train-pipeline
DEFAULT_CODE_FILE = "notebooks/train.ipynb"

SRC_DIR = REPO_ROOT / "src"
KERNEL_METADATA_FILE = "kernel-metadata.json"
DATASET_METADATA_FILE = "dataset-metadata.json"
KERNEL_METADATA_PATH = REPO_ROOT / KERNEL_METADATA_FILE
DEFAULT_BUNDLE_DIR = REPO_ROOT / "build" / "kaggle-src"  # keep build/ out of git

SUBMISSION_NAME = "submission.csv"
MAX_BUNDLE_FILE_BYTES = 1_000_000
# Folders never copied into the bundle (besides hidden ones): caches, data and outputs.
BUNDLE_EXCLUDED_DIRS = frozenset({"__pycache__", "data", "runs", "checkpoints",
                                  "submissions", "build", "wandb", "lightning_logs"})

KERNEL_REQUIRED_FIELDS = ("id", "title", "code_file", "language", "kernel_type",
                          "is_private", "enable_gpu", "enable_internet", "dataset_sources",
                          "competition_sources", "kernel_sources")
DATASET_REQUIRED_FIELDS = ("title", "id", "licenses")

_USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

CREDENTIALS_HELP = """\
No Kaggle API credentials found. On https://www.kaggle.com/settings/api ("API" section)
create a token, then give it to the kaggle CLI in one of these ways:
  1. API token ("Generate New Token"): export KAGGLE_API_TOKEN=<token>, or save the token
     alone in ~/.kaggle/access_token (chmod 600).
  2. Legacy API key (kaggle.json, {"username": ..., "key": ...}): save it as
     ~/.kaggle/kaggle.json, or in the folder named by $KAGGLE_CONFIG_DIR (chmod 600), or
     export KAGGLE_USERNAME=<username> KAGGLE_KEY=<key>.
  3. OAuth in a browser: run `kaggle auth login` once.
Never commit kaggle.json or a token. `--dry-run` needs no credentials."""


# The first cell of every notebook: a notebook cannot import src to find src, so this
# stand-alone code finds it: the repo (the working folder or one above it: local runs,
# papermill) or the src dataset that `bundle` uploads, mounted under /kaggle/input
# ($KAGGLE_ROOT/input in tests). Kept here so tests run exactly the text the README shows.
BOOTSTRAP_SNIPPET = '''\
# Make `import src` work in the repo (local runs, papermill) and in a Kaggle kernel,
# where src/ is an attached dataset under /kaggle/input ($KAGGLE_ROOT in tests).
import os, sys
from pathlib import Path

_inputs = Path(os.environ.get("KAGGLE_ROOT", "/kaggle")) / "input"
_roots = [Path.cwd(), *Path.cwd().parents,
          *sorted(p.parent.parent for d in ("*/", "*/*/", "*/*/*/") for p in _inputs.glob(d + "src/__init__.py"))]
_root = next((r for r in _roots if (r / "src" / "__init__.py").is_file()), None)
if _root is None:
    raise ModuleNotFoundError("src/ not found: run inside the repo, or attach the src dataset "
                              "(python -m src.kaggle bundle) to the notebook")
sys.path.insert(0, str(_root))
'''


class KaggleError(RuntimeError):
    """A problem this module reports to the user as one clear message (no traceback)."""


class KaggleCredentialsError(KaggleError):
    """No Kaggle API credentials could be found."""


class MetadataError(KaggleError):
    """kernel-metadata.json or dataset-metadata.json is missing something Kaggle needs."""


# ------------------------------------------------------------------- Kaggle paths

def kaggle_working_dir() -> Path:
    """``/kaggle/working`` (under $KAGGLE_ROOT in tests): what a kernel keeps as output."""
    return kaggle_root() / "working"


def kaggle_submission_path() -> Path:
    """``/kaggle/working/submission.csv``: the file a competition scores from a notebook."""
    return kaggle_working_dir() / SUBMISSION_NAME


# ------------------------------------------------------------------------ validation

def load_expected_ids(competition: str = DEFAULT_COMPETITION, data_dir=None):
    """The ids of the competition's unlabelled images (cifar_test_nolabel.pkl)."""
    from .data import load_competition  # lazy: heavy, and written by others

    ids = load_competition(data_dir=data_dir, competition=competition).unlabelled_ids
    if ids is None:
        raise KaggleError("the competition folder has no cifar_test_nolabel.pkl, so a "
                          "submission cannot be checked; pass --data-dir to the real one")
    return ids


def validate_csv(csv_path, expected_ids=None, *, competition: str = DEFAULT_COMPETITION,
                 data_dir=None):
    """Check a submission CSV with src.predict.validate_submission_csv.

    Raises src.predict.SubmissionError (a ValueError) naming what is wrong; returns the
    DataFrame. expected_ids default to the competition's unlabelled ids."""
    from .predict import validate_submission_csv  # lazy: written by others

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise KaggleError(f"{csv_path}: submission file not found")
    if expected_ids is None:
        expected_ids = load_expected_ids(competition, data_dir)
    return validate_submission_csv(csv_path, expected_ids)


# --------------------------------------------------------------------- publishing

def _atomic_copy(src: Path, dest: Path) -> None:
    """Copy src to dest through a temporary file in dest's folder and os.replace, so a
    reader never sees a half-written dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def publish_submission(csv_path, expected_ids=None, *, competition: str = DEFAULT_COMPETITION,
                       data_dir=None, force: bool = False) -> Path | None:
    """On Kaggle, validate ``csv_path`` and copy it atomically to
    ``<kaggle_root>/working/submission.csv``; return that path.

    Elsewhere do nothing and return None (unless force=True, which publishes under
    kaggle_root() anyway). The CSV is validated first, with expected_ids or the
    competition's unlabelled ids; an invalid CSV raises src.predict.SubmissionError and
    leaves any existing submission.csv untouched."""
    if not (force or on_kaggle()):
        return None
    csv_path = Path(csv_path)
    validate_csv(csv_path, expected_ids, competition=competition, data_dir=data_dir)
    dest = kaggle_submission_path()
    if dest.exists() and dest.resolve() == csv_path.resolve():
        return dest
    _atomic_copy(csv_path, dest)
    return dest


# --------------------------------------------------------------------- credentials

def _config_dir() -> Path:
    """The folder of kaggle.json, resolved as the kaggle CLI (2.x) resolves it."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser()
    legacy = Path("~/.kaggle").expanduser()
    if sys.platform.startswith("linux") and not legacy.exists():
        xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
        return Path(xdg) / "kaggle"
    return legacy


def _nonempty_file(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def find_credentials() -> str | None:
    """Where the kaggle CLI will find credentials, as a description (never the secret
    itself), or None when there are none. Looks where the kaggle CLI looks:
    $KAGGLE_API_TOKEN, ~/.kaggle/access_token, $KAGGLE_USERNAME + $KAGGLE_KEY,
    kaggle.json in $KAGGLE_CONFIG_DIR or ~/.kaggle (each of username/key may come from the
    file or the environment), and `kaggle auth login`'s ~/.kaggle/credentials.json."""
    if os.environ.get("KAGGLE_API_TOKEN", "").strip():
        return "the KAGGLE_API_TOKEN environment variable"
    for name in ("access_token", "access_token.txt"):
        if _nonempty_file(Path("~/.kaggle").expanduser() / name):
            return f"~/.kaggle/{name}"
    have = {k: bool(os.environ.get(f"KAGGLE_{k.upper()}", "").strip())
            for k in ("username", "key")}
    if all(have.values()):
        return "the KAGGLE_USERNAME and KAGGLE_KEY environment variables"
    config = _config_dir() / "kaggle.json"
    if config.is_file():
        try:
            values = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            values = None
        if not isinstance(values, dict):
            raise KaggleCredentialsError(f"{config} is not a JSON object with 'username' and "
                                         f"'key': download a fresh one.\n\n{CREDENTIALS_HELP}")
        for k in have:
            have[k] = have[k] or bool(str(values.get(k) or "").strip())
        if all(have.values()):
            return str(config)
    if _nonempty_file(Path("~/.kaggle/credentials.json").expanduser()):
        return "~/.kaggle/credentials.json (kaggle auth login)"
    return None


def require_credentials() -> str:
    """Return where the credentials are, or raise KaggleCredentialsError saying how to
    set them up. Called before any work in a non-dry run."""
    where = find_credentials()
    if where is None:
        raise KaggleCredentialsError(CREDENTIALS_HELP)
    return where


# ------------------------------------------------------------------ running kaggle

def kaggle_launcher() -> list[str]:
    """How to start the kaggle CLI: ``kaggle`` on PATH, else ``python -m kaggle``."""
    return ["kaggle"] if shutil.which("kaggle") else [sys.executable, "-m", "kaggle"]


def datasets_create_argv(folder) -> list[str]:
    return ["kaggle", "datasets", "create", "-p", str(folder), "--dir-mode", "zip"]


def datasets_version_argv(folder, message: str) -> list[str]:
    return ["kaggle", "datasets", "version", "-p", str(folder), "-m", message,
            "--dir-mode", "zip"]


def kernels_push_argv(folder, accelerator: str | None = None,
                      timeout: int | None = None) -> list[str]:
    argv = ["kaggle", "kernels", "push", "-p", str(folder)]
    if accelerator:
        argv += ["--accelerator", accelerator]
    if timeout:
        argv += ["-t", str(int(timeout))]
    return argv


def competitions_submit_argv(competition: str, csv_path, message: str) -> list[str]:
    return ["kaggle", "competitions", "submit", competition, "-f", str(csv_path),
            "-m", message]


def format_command(argv: Sequence[str]) -> str:
    return shlex.join([str(a) for a in argv])


def run_kaggle(argv: Sequence[str], dry_run: bool = False, out=None) -> list[str]:
    """Run one kaggle command (argv starts with "kaggle"); with dry_run only print it.

    The command is printed shell-quoted either way. Returns the argv that was (or would
    be) run. A failure of the kaggle CLI raises KaggleError with its exit status."""
    out = out or sys.stdout
    argv = [str(a) for a in argv]
    if argv and argv[0] == "kaggle":
        argv = kaggle_launcher() + argv[1:]
    prefix = "# dry run, not executed:\n" if dry_run else "+ "
    print(prefix + format_command(argv), file=out, flush=True)
    if dry_run:
        return argv
    try:
        subprocess.run(argv, check=True)
    except FileNotFoundError as e:
        raise KaggleError(f"cannot start the kaggle CLI ({e}): pip install kaggle") from e
    except subprocess.CalledProcessError as e:
        raise KaggleError(f"`{format_command(argv[:4])} ...` failed with exit status "
                          f"{e.returncode}; the kaggle CLI's message is above") from e
    return argv


# ------------------------------------------------------------------- metadata

def slugify(text: str) -> str:
    """A title as Kaggle turns it into a URL slug (python-slugify's rule for ASCII text):
    lower case, every run of other characters becomes one '-', no '-' at either end."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("'", "")).strip("-")


def _check_username(username: str) -> str:
    if not username or not _USERNAME_RE.match(username):
        raise MetadataError(f"{username!r} is not a Kaggle username (letters, digits, '-' "
                            "or '_')")
    return username


def _check_dataset_names(slug: str, title: str) -> None:
    if not (6 <= len(slug) <= 50 and _SLUG_RE.match(slug)):
        raise MetadataError(f"dataset slug {slug!r}: Kaggle needs 6-50 characters of a-z, "
                            "0-9 and single '-'")
    if not 6 <= len(title) <= 50:
        raise MetadataError(f"dataset title {title!r}: Kaggle needs 6-50 characters")


def default_kernel_metadata(username: str = PLACEHOLDER_USERNAME,
                            title: str = DEFAULT_KERNEL_TITLE,
                            dataset_slug: str = DEFAULT_DATASET_SLUG,
                            code_file: str = DEFAULT_CODE_FILE,
                            competition: str = DEFAULT_COMPETITION) -> dict:
    return {
        "id": f"{username}/{slugify(title)}",
        "title": title,
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": [f"{username}/{dataset_slug}"],
        "competition_sources": [competition],
        "kernel_sources": [],
        "model_sources": [],
    }


def dataset_metadata(username: str, dataset_slug: str = DEFAULT_DATASET_SLUG,
                     title: str = DEFAULT_DATASET_TITLE) -> dict:
    return {"title": title, "id": f"{username}/{dataset_slug}",
            "licenses": [{"name": "MIT"}]}


def read_json(path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MetadataError(f"{path}: not found") from None
    except ValueError as e:
        raise MetadataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise MetadataError(f"{path}: expected a JSON object")
    return data


def write_json(path, data: dict) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _split_ref(ref, what: str, problems: list[str]) -> tuple[str, str] | None:
    parts = ref.split("/") if isinstance(ref, str) else []
    if len(parts) != 2 or not all(parts):
        problems.append(f"{what} {ref!r} must look like '<username>/<slug>'")
        return None
    return parts[0], parts[1]


def kernel_metadata_problems(meta: dict, folder=None, *, check_code_file: bool = True,
                             competition: str = DEFAULT_COMPETITION,
                             allow_placeholder: bool = True) -> list[str]:
    """What is wrong with a kernel-metadata.json (as a dict); empty when it is fine.

    folder is where the file lives (code_file is relative to it: it is the folder given
    to `kaggle kernels push -p`)."""
    problems = [f"missing field {k!r}" for k in KERNEL_REQUIRED_FIELDS if k not in meta]
    title = meta.get("title")
    ref = _split_ref(meta.get("id"), "id", problems) if "id" in meta else None
    if isinstance(title, str):
        if len(title) < 5:
            problems.append(f"title {title!r}: Kaggle needs at least 5 characters")
        if ref and ref[1] != slugify(title):
            problems.append(f"id slug {ref[1]!r} must equal the title slugified "
                            f"({slugify(title)!r}): Kaggle derives the kernel URL from it")
    if ref and not allow_placeholder and ref[0] == PLACEHOLDER_USERNAME:
        problems.append(f"the username is still the placeholder {PLACEHOLDER_USERNAME!r}: "
                        "run `python -m src.kaggle metadata --username <you>`")
    if meta.get("language", "python") != "python":
        problems.append("language must be 'python'")
    if meta.get("kernel_type", "notebook") != "notebook":
        problems.append("kernel_type must be 'notebook'")
    code_file = meta.get("code_file")
    if "code_file" in meta and not (isinstance(code_file, str) and code_file.endswith(".ipynb")):
        problems.append(f"code_file {code_file!r} must be a notebook (.ipynb)")
    elif check_code_file and isinstance(code_file, str):
        path = Path(folder if folder is not None else REPO_ROOT) / code_file
        if not path.is_file():
            hint = ""
            if path.with_suffix(".py").is_file():
                hint = f" (its pair exists: run `jupytext --sync {path.with_suffix('.py')}`)"
            problems.append(f"code_file {code_file!r} not found at {path}{hint}")
    if meta.get("enable_internet") is not False:
        problems.append("enable_internet must be false (the competition runs offline)")
    if meta.get("enable_gpu") is not True:
        problems.append("enable_gpu must be true")
    if meta.get("is_private") is not True:
        problems.append("is_private must be true")
    sources = meta.get("competition_sources")
    if "competition_sources" in meta and (not isinstance(sources, list) or competition not in sources):
        problems.append(f"competition_sources must include {competition!r}")
    datasets = meta.get("dataset_sources")
    if "dataset_sources" in meta:
        if not isinstance(datasets, list) or not datasets:
            problems.append("dataset_sources must list the src dataset '<username>/<slug>'")
        else:
            for d in datasets:
                _split_ref(d, "dataset source", problems)
    if "kernel_sources" in meta and not isinstance(meta.get("kernel_sources"), list):
        problems.append("kernel_sources must be a list")
    return problems


def dataset_metadata_problems(meta: dict, folder=None) -> list[str]:
    """What is wrong with a dataset-metadata.json (as a dict); empty when it is fine."""
    problems = [f"missing field {k!r}" for k in DATASET_REQUIRED_FIELDS if k not in meta]
    ref = _split_ref(meta.get("id"), "id", problems) if "id" in meta else None
    if ref:
        try:
            _check_dataset_names(ref[1], str(meta.get("title", "x" * 6)))
        except MetadataError as e:
            problems.append(str(e))
    licenses = meta.get("licenses")
    if "licenses" in meta and not (isinstance(licenses, list) and len(licenses) == 1
                                   and isinstance(licenses[0], dict) and licenses[0].get("name")):
        problems.append("licenses must be exactly one {'name': ...}")
    if folder is not None and not (Path(folder) / "src" / "__init__.py").is_file():
        problems.append(f"{folder} holds no src/__init__.py")
    return problems


def check_kernel_metadata(path=KERNEL_METADATA_PATH, **kwargs) -> dict:
    """Read and check a kernel-metadata.json; raise MetadataError listing every problem."""
    path = Path(path)
    meta = read_json(path)
    problems = kernel_metadata_problems(meta, path.parent, **kwargs)
    if problems:
        raise MetadataError(f"{path}:\n  - " + "\n  - ".join(problems))
    return meta


def update_kernel_metadata(path=KERNEL_METADATA_PATH, *, username: str | None = None,
                           title: str | None = None, dataset_slug: str | None = None,
                           code_file: str | None = None) -> dict:
    """Rewrite fields of a kernel-metadata.json (created with defaults when missing).

    username replaces the owner of `id` and of every dataset source owned by the old
    owner (or the placeholder); title also sets the id's slug; dataset_slug renames the
    src dataset (the first dataset source)."""
    path = Path(path)
    meta = read_json(path) if path.exists() else default_kernel_metadata()
    old_owner, _, old_slug = str(meta.get("id", f"{PLACEHOLDER_USERNAME}/")).partition("/")
    owner = _check_username(username) if username else old_owner
    if title:
        meta["title"] = title
    slug = slugify(meta.get("title") or "") or old_slug
    meta["id"] = f"{owner}/{slug}"
    sources = []
    for i, ref in enumerate(meta.get("dataset_sources") or []):
        ds_owner, _, ds_slug = str(ref).partition("/")
        if ds_owner in (old_owner, PLACEHOLDER_USERNAME):
            ds_owner = owner
        if i == 0 and dataset_slug:
            ds_slug = dataset_slug
        sources.append(f"{ds_owner}/{ds_slug}")
    if not sources:
        sources = [f"{owner}/{dataset_slug or DEFAULT_DATASET_SLUG}"]
    meta["dataset_sources"] = sources
    if code_file:
        meta["code_file"] = code_file
    write_json(path, meta)
    return meta


def set_username(username: str, kernel_metadata=KERNEL_METADATA_PATH,
                 bundle_dir=DEFAULT_BUNDLE_DIR) -> list[Path]:
    """Put ``username`` into kernel-metadata.json and, when the bundle has been built, its
    dataset-metadata.json. Returns the files rewritten."""
    _check_username(username)
    changed = []
    kernel_metadata = Path(kernel_metadata)
    if kernel_metadata.exists():
        update_kernel_metadata(kernel_metadata, username=username)
        changed.append(kernel_metadata)
    dataset_meta = Path(bundle_dir) / DATASET_METADATA_FILE
    if dataset_meta.exists():
        meta = read_json(dataset_meta)
        meta["id"] = f"{username}/{str(meta.get('id', '')).partition('/')[2] or DEFAULT_DATASET_SLUG}"
        write_json(dataset_meta, meta)
        changed.append(dataset_meta)
    return changed


def src_dataset_ref(kernel_metadata=KERNEL_METADATA_PATH) -> tuple[str, str]:
    """(username, slug) of the src dataset: the first dataset source of kernel-metadata.json
    (the defaults when the file is missing)."""
    path = Path(kernel_metadata)
    meta = read_json(path) if path.exists() else default_kernel_metadata()
    sources = meta.get("dataset_sources") or []
    owner, _, slug = (sources[0] if sources else "").partition("/")
    return owner or PLACEHOLDER_USERNAME, slug or DEFAULT_DATASET_SLUG


# ----------------------------------------------------------------------- bundle

def iter_bundle_sources(src_dir=SRC_DIR) -> Iterable[Path]:
    """The .py files of src_dir to ship, relative to it, skipping hidden folders, caches,
    data and outputs (BUNDLE_EXCLUDED_DIRS)."""
    src_dir = Path(src_dir)
    for root, dirs, files in os.walk(src_dir):
        dirs[:] = sorted(d for d in dirs
                         if not d.startswith(".") and d not in BUNDLE_EXCLUDED_DIRS)
        for name in sorted(files):
            if name.endswith(".py") and not name.startswith("."):
                yield (Path(root) / name).relative_to(src_dir)


def build_dataset(out_dir=DEFAULT_BUNDLE_DIR, dataset_slug: str = DEFAULT_DATASET_SLUG,
                  username: str = PLACEHOLDER_USERNAME, title: str = DEFAULT_DATASET_TITLE,
                  src_dir=SRC_DIR) -> Path:
    """Build a Kaggle dataset folder: ``out_dir/src/**.py`` (a fresh copy of src_dir's .py
    files only) and ``out_dir/dataset-metadata.json``. Returns out_dir.

    out_dir is emptied first, but only when it is a bundle already (it holds a
    dataset-metadata.json) or empty; anything else is refused, never deleted."""
    _check_username(username)
    _check_dataset_names(dataset_slug, title)
    src_dir = Path(src_dir).resolve()
    out_dir = Path(out_dir).resolve()
    if not (src_dir / "__init__.py").is_file():
        raise KaggleError(f"{src_dir} has no __init__.py: nothing importable to ship")
    if out_dir == src_dir or src_dir in out_dir.parents or out_dir in src_dir.parents:
        raise KaggleError(f"bundle folder {out_dir} must lie outside {src_dir}")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise KaggleError(f"{out_dir} is not a folder")
        entries = list(out_dir.iterdir())
        if entries and not (out_dir / DATASET_METADATA_FILE).is_file():
            raise KaggleError(f"{out_dir} is not empty and not a bundle (no "
                              f"{DATASET_METADATA_FILE}): refusing to overwrite it")
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)

    for rel in iter_bundle_sources(src_dir):
        source = src_dir / rel
        size = source.stat().st_size
        if size > MAX_BUNDLE_FILE_BYTES:
            raise KaggleError(f"{source} is {size} bytes: source files over "
                              f"{MAX_BUNDLE_FILE_BYTES} bytes do not belong in the bundle")
        target = out_dir / "src" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    write_json(out_dir / DATASET_METADATA_FILE, dataset_metadata(username, dataset_slug, title))
    return out_dir


def upload_dataset(folder=DEFAULT_BUNDLE_DIR, *, create: bool = False,
                   message: str | None = None, dry_run: bool = False, out=None) -> list[str]:
    """``kaggle datasets create`` (create=True, the first time) or ``kaggle datasets
    version`` for a built bundle folder."""
    if not dry_run:
        require_credentials()
    folder = Path(folder)
    problems = dataset_metadata_problems(read_json(folder / DATASET_METADATA_FILE), folder)
    if problems:
        raise MetadataError(f"{folder / DATASET_METADATA_FILE}:\n  - " + "\n  - ".join(problems))
    if create:
        argv = datasets_create_argv(folder)
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        argv = datasets_version_argv(folder, message or f"Update src ({stamp})")
    return run_kaggle(argv, dry_run, out)


def bundle(out_dir=DEFAULT_BUNDLE_DIR, *, username: str | None = None,
           dataset_slug: str | None = None, title: str = DEFAULT_DATASET_TITLE,
           create: bool = False, message: str | None = None, upload: bool = True,
           dry_run: bool = False, kernel_metadata=KERNEL_METADATA_PATH, out=None) -> Path:
    """Build the src dataset and upload it. username and dataset_slug default to the first
    dataset source of kernel-metadata.json, so both metadata files name the same dataset.
    Credentials are checked before anything is built (unless dry_run or not upload)."""
    if upload and not dry_run:
        require_credentials()
    meta_owner, meta_slug = src_dataset_ref(kernel_metadata)
    username = username or meta_owner
    if upload and not dry_run and username == PLACEHOLDER_USERNAME:
        raise MetadataError(f"the username is still the placeholder {PLACEHOLDER_USERNAME!r}: "
                            "run `python -m src.kaggle metadata --username <you>` or pass "
                            "--username")
    folder = build_dataset(out_dir, dataset_slug or meta_slug, username, title)
    if upload:
        upload_dataset(folder, create=create, message=message, dry_run=dry_run, out=out)
    return folder


# ------------------------------------------------------------------------- push

def push_kernel(folder=REPO_ROOT, *, accelerator: str | None = None,
                timeout: int | None = None, dry_run: bool = False, out=None) -> list[str]:
    """``kaggle kernels push -p folder`` after checking folder/kernel-metadata.json (the
    code_file must exist; a placeholder username is refused unless dry_run)."""
    if not dry_run:
        require_credentials()
    folder = Path(folder)
    meta = read_json(folder / KERNEL_METADATA_FILE)
    problems = kernel_metadata_problems(meta, folder, allow_placeholder=dry_run)
    if problems:
        raise MetadataError(f"{folder / KERNEL_METADATA_FILE}:\n  - " + "\n  - ".join(problems))
    return run_kaggle(kernels_push_argv(folder, accelerator, timeout), dry_run, out)


# ----------------------------------------------------------------------- submit

@dataclass
class RunSummary:
    name: str
    best_val_acc: float | None = None
    best_epoch: int | None = None

    def message(self) -> str:
        if self.best_val_acc is None:
            return self.name
        return f"{self.name} val_acc={self.best_val_acc:.4f}"


def resolve_run_dir(run) -> Path:
    """A run given by name (runs/<name>/) or as a path to its folder."""
    path = Path(run).expanduser()
    if path.is_dir() and ((path / "metrics.csv").exists() or (path / "config.json").exists()):
        return path
    candidate = runs_dir() / str(run)
    if candidate.is_dir():
        return candidate
    raise KaggleError(f"run {run!r} not found (looked for {path} and {candidate})")


def summarize_run(run) -> RunSummary:
    """The run's name and its best val_acc (over the rows of metrics.csv), for the
    submission message "<run name> val_acc=<x>"."""
    run_dir = resolve_run_dir(run)
    summary = RunSummary(name=run_dir.name)
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        return summary
    with open(metrics, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                acc = float(row.get("val_acc") or "nan")
            except ValueError:
                continue
            if math.isnan(acc):
                continue
            if summary.best_val_acc is None or acc > summary.best_val_acc:
                summary.best_val_acc = acc
                try:
                    summary.best_epoch = int(float(row.get("epoch") or "nan"))
                except ValueError:
                    summary.best_epoch = None
    return summary


def default_message(csv_path, run=None) -> str:
    """"<run name> val_acc=<x>" from the run (given, or the one named like the CSV);
    otherwise the CSV's file name."""
    if run is None:
        stem = Path(csv_path).stem
        if (runs_dir() / stem).is_dir():
            run = stem
    if run is not None:
        return summarize_run(run).message()
    return Path(csv_path).name


def submit(csv_path, *, message: str | None = None, run=None,
           competition: str = DEFAULT_COMPETITION, data_dir=None, expected_ids=None,
           dry_run: bool = False, out=None) -> list[str]:
    """Validate csv_path against the competition's unlabelled ids, then
    ``kaggle competitions submit``. An invalid CSV raises src.predict.SubmissionError and
    nothing is uploaded; missing credentials raise before anything is read."""
    if not dry_run:
        require_credentials()
    csv_path = Path(csv_path)
    validate_csv(csv_path, expected_ids, competition=competition, data_dir=data_dir)
    message = message or default_message(csv_path, run)
    return run_kaggle(competitions_submit_argv(competition, csv_path, message), dry_run, out)


# -------------------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="python -m src.kaggle", formatter_class=fmt,
        description="Ship src/ to Kaggle as a dataset, push the training notebook, and "
                    "submit predictions.",
        epilog="first time, from a fresh account:\n"
               "  python -m src.kaggle metadata --username <you>\n"
               "  python -m src.kaggle bundle --create\n"
               "  python -m src.kaggle push\n"
               "  python -m src.kaggle submit submissions/<run>.csv --run <run>\n"
               "add --dry-run to any of them to see the kaggle commands without running them.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help_, description):
        sp = sub.add_parser(name, help=help_, description=description, formatter_class=fmt)
        return sp

    def dry(sp):
        sp.add_argument("--dry-run", action="store_true",
                        help="print the exact kaggle commands; run nothing, need no "
                             "credentials, touch no network")

    b = add("bundle", "build the src dataset folder and upload it",
            "Copy src/*.py (no caches, data or outputs) into OUT/src, write "
            "OUT/dataset-metadata.json, then run `kaggle datasets create` (--create, the "
            "first time) or `kaggle datasets version` with --dir-mode zip.")
    b.add_argument("--out", type=Path, default=DEFAULT_BUNDLE_DIR,
                   help="bundle folder (default: %(default)s)")
    b.add_argument("--username", help="Kaggle username (default: the owner of the first "
                   "dataset source in kernel-metadata.json)")
    b.add_argument("--slug", help="dataset slug (default: from kernel-metadata.json, "
                   f"else {DEFAULT_DATASET_SLUG})")
    b.add_argument("--title", default=DEFAULT_DATASET_TITLE,
                   help="dataset title, 6-50 characters (default: %(default)s)")
    b.add_argument("--create", action="store_true",
                   help="first upload: `kaggle datasets create` instead of `version`")
    b.add_argument("-m", "--message", help="version notes (default: 'Update src (<time>)')")
    b.add_argument("--no-upload", action="store_true", help="only build the folder")
    dry(b)

    k = add("push", "push the training notebook as a Kaggle kernel",
            "Check kernel-metadata.json in PATH, then `kaggle kernels push -p PATH`. Kaggle "
            "runs the notebook on its GPU with internet off; its outputs land in "
            "/kaggle/working (see `kaggle kernels output`).")
    k.add_argument("--path", type=Path, default=REPO_ROOT,
                   help="folder holding kernel-metadata.json (default: the repo root)")
    k.add_argument("--accelerator", help="e.g. NvidiaTeslaT4 (overrides enable_gpu)")
    k.add_argument("--timeout", type=int, help="maximum run time in seconds")
    dry(k)

    s = add("submit", "validate a submission CSV and submit it",
            "Validate CSV against the competition's unlabelled ids (cifar_test_nolabel.pkl), "
            "then `kaggle competitions submit COMPETITION -f CSV -m MESSAGE`. The message "
            "defaults to '<run> val_acc=<best val_acc>' from runs/<run>/metrics.csv.")
    s.add_argument("csv", type=Path, help="submission CSV (header ID,Labels)")
    s.add_argument("--run", help="run name (runs/<name>/) or run folder, for the message "
                   "(default: the run named like the CSV, if any)")
    s.add_argument("-m", "--message", help="submission message (overrides --run)")
    s.add_argument("--competition", default=DEFAULT_COMPETITION, help="(default: %(default)s)")
    s.add_argument("--data-dir", help="competition folder holding cifar_test_nolabel.pkl "
                   "(default: found as src.data finds it)")
    dry(s)

    m = add("metadata", "set the Kaggle username (and names) in the metadata files, check them",
            "Rewrite kernel-metadata.json (and BUNDLE/dataset-metadata.json when built), then "
            "check kernel-metadata.json; exit status 1 when it has problems.")
    m.add_argument("--username", help="your Kaggle username")
    m.add_argument("--title", help="kernel title (the kernel id's slug follows it)")
    m.add_argument("--dataset-slug", help="slug of the src dataset")
    m.add_argument("--code-file", help=f"notebook to run (default: {DEFAULT_CODE_FILE})")
    m.add_argument("--kernel-metadata", type=Path, default=KERNEL_METADATA_PATH,
                   help="(default: %(default)s)")
    m.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE_DIR,
                   help="bundle folder whose dataset-metadata.json to update too "
                        "(default: %(default)s)")

    pub = add("publish", "inside a Kaggle kernel: copy a validated CSV to "
              "/kaggle/working/submission.csv",
              "Validate CSV, then copy it atomically to <kaggle root>/working/submission.csv. "
              "Does nothing outside Kaggle unless --force.")
    pub.add_argument("csv", type=Path)
    pub.add_argument("--competition", default=DEFAULT_COMPETITION)
    pub.add_argument("--data-dir")
    pub.add_argument("--force", action="store_true", help="publish even when not on Kaggle")
    return p


def _cmd_metadata(args) -> int:
    path = Path(args.kernel_metadata)
    if args.username or args.title or args.dataset_slug or args.code_file or not path.exists():
        update_kernel_metadata(path, username=args.username, title=args.title,
                               dataset_slug=args.dataset_slug, code_file=args.code_file)
        print(f"wrote {path}")
    if args.username:
        for changed in set_username(args.username, path, args.bundle):
            if changed != path:
                print(f"wrote {changed}")
    meta = read_json(path)
    problems = kernel_metadata_problems(meta, path.parent)
    owner = str(meta.get("id", "")).partition("/")[0]
    if owner == PLACEHOLDER_USERNAME:
        print(f"note: username is still {PLACEHOLDER_USERNAME!r}; set it with --username")
    print(f"kernel  {meta.get('id')}  ({meta.get('code_file')})")
    print(f"dataset {', '.join(meta.get('dataset_sources') or [])}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "bundle":
            folder = bundle(args.out, username=args.username, dataset_slug=args.slug,
                            title=args.title, create=args.create, message=args.message,
                            upload=not args.no_upload, dry_run=args.dry_run)
            if args.no_upload:
                print(f"built {folder}")
        elif args.command == "push":
            push_kernel(args.path, accelerator=args.accelerator, timeout=args.timeout,
                        dry_run=args.dry_run)
        elif args.command == "submit":
            submit(args.csv, message=args.message, run=args.run, competition=args.competition,
                   data_dir=args.data_dir, dry_run=args.dry_run)
        elif args.command == "metadata":
            return _cmd_metadata(args)
        elif args.command == "publish":
            dest = publish_submission(args.csv, competition=args.competition,
                                      data_dir=args.data_dir, force=args.force)
            print(f"published {dest}" if dest else
                  "not on Kaggle: nothing published (use --force to publish anyway)")
    except (KaggleError, ValueError, OSError) as e:  # SubmissionError, DataError are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
