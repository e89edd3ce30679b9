"""Reading the competition's CIFAR-10 files safely, and writing tiny look-alikes for tests.

The competition folder (see shared/README.md) holds Python pickles:

    <root>/cifar-10-python/cifar-10-batches-py/data_batch_1 .. data_batch_5, batches.meta
    <root>/cifar_test_nolabel.pkl

Pickles can run arbitrary code when loaded, so every file goes through
`safe_load_pickle`, which only lets numpy rebuild arrays. Every problem with an input
file raises `DataError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import os
import pickle
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import paths
from .paths import DEFAULT_COMPETITION

CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]
NUM_CLASSES = len(CLASSES)
IMAGE_SHAPE = (32, 32, 3)  # height, width, channel
ROW_SIZE = 32 * 32 * 3  # one image as a flat CIFAR row: 1024 R, 1024 G, 1024 B

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
META_FILE = "batches.meta"
TEST_BATCH = "test_batch"
UNLABELLED_FILE = "cifar_test_nolabel.pkl"
# Where the batches may sit inside a competition folder, in the order they are tried.
BATCH_SUBDIRS = ("cifar-10-python/cifar-10-batches-py", "cifar-10-batches-py", ".")


class DataError(ValueError):
    """A competition input file is missing, unreadable, unsafe or malformed."""


# --------------------------------------------------------------------------- pickles

# module, name pairs numpy needs to rebuild arrays (protocol 2 and protocol 5 pickles,
# written by numpy 1.x (numpy.core) or 2.x (numpy._core)). Nothing else may be loaded.
_ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
})


def _numpy_global(module: str, name: str) -> Any:
    """The numpy object an allowed (module, name) stands for, without importing the
    deprecated numpy.core shims under numpy 2."""
    if module == "numpy":
        return getattr(np, name)
    submodule = module.rsplit(".", 1)[1]  # multiarray or numeric
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import numpy._core as core  # numpy >= 2 (and a shim in 1.26)
            return getattr(getattr(core, submodule), name)
        except (ImportError, AttributeError):
            import numpy.core as core  # numpy 1.x
            return getattr(getattr(core, submodule), name)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, *, source: Path):
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module, name):  # noqa: D401 - pickle API
        if (module, name) in _ALLOWED_GLOBALS:
            return _numpy_global(module, name)
        raise DataError(f"refusing to load {module}.{name} from {self._source}: "
                        "pickles can run code, and only numpy arrays are allowed")

    def persistent_load(self, pid):
        raise DataError(f"refusing to load persistent id {pid!r} from {self._source}")


def _str_key(key: Any) -> Any:
    return key.decode("latin1") if isinstance(key, bytes) else key


def safe_load_pickle(path: str | os.PathLike) -> object:
    """Load a pickle that may only contain plain data and numpy arrays.

    Loads with encoding="bytes" (so Python 2 strings stay bytes); a top-level dict gets
    its bytes keys turned into str, so callers can write d["data"] whichever way it was
    written. Raises DataError when the file is missing, unreadable, truncated or corrupt,
    or refers to anything but numpy's array machinery.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror or e})") from e
    with f:
        try:
            obj = _NumpyOnlyUnpickler(f, source=path).load()
        except DataError:
            raise
        except (EOFError, pickle.UnpicklingError) as e:
            raise DataError(f"{path}: file is truncated or corrupt ({e})") from e
        except Exception as e:  # any other decode failure of an untrusted file
            raise DataError(f"{path}: file is truncated or corrupt "
                            f"({type(e).__name__}: {e})") from e
    if isinstance(obj, dict):
        obj = {_str_key(k): v for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------------- finding data

def batches_dir(root: str | os.PathLike) -> Path:
    """The folder under `root` that holds the training batches (see BATCH_SUBDIRS)."""
    found = _find_batches(Path(root))
    if found is None:
        tried = ", ".join(str(Path(root) / s) for s in BATCH_SUBDIRS)
        raise DataError(f"{root}: no CIFAR-10 training batches ({TRAIN_BATCHES[0]} ...) "
                        f"in any of: {tried}")
    return found


def _find_batches(root: Path) -> Path | None:
    for sub in BATCH_SUBDIRS:
        d = root / sub if sub != "." else root
        if any((d / name).is_file() for name in TRAIN_BATCHES):
            return d
    return None


def find_data_dir(data_dir: str | os.PathLike | None = None,
                  competition: str = DEFAULT_COMPETITION) -> Path:
    """The first folder of paths.data_candidates(...) that holds the training batches."""
    candidates = paths.data_candidates(data_dir, competition)
    for root in candidates:
        if _find_batches(root) is not None:
            return root
    raise DataError(_not_found_message(candidates))


def _not_found_message(candidates: list[Path]) -> str:
    lines = [f"no CIFAR-10 competition data found: looked for {TRAIN_BATCHES[0]} "
             f"in {', '.join(s + '/' for s in BATCH_SUBDIRS[:2])} or directly in each of:"]
    lines += [f"  - {c}" + ("" if c.is_dir() else " (does not exist)") for c in candidates]
    lines.append("Fix: pass data_dir=<competition folder>, set $" + paths.DATA_ENV
                 + " to it, or use load_competition(download=True) to fetch CIFAR-10 "
                 f"with torchvision into {paths.REPO_ROOT / 'data'}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- loading

@dataclass
class Cifar:
    """The competition's images. Images are (N, 32, 32, 3) uint8, height×width×channel."""

    train_x: np.ndarray  # (N, 32, 32, 3) uint8
    train_y: np.ndarray  # (N,) int64, 0-9
    classes: list[str]
    unlabelled_x: np.ndarray | None = None  # (M, 32, 32, 3) uint8: what to predict
    unlabelled_ids: np.ndarray | None = None  # (M,) int64
    test_x: np.ndarray | None = None  # labelled test_batch, when the folder has one
    test_y: np.ndarray | None = None
    root: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _load_dict(path: Path, required: tuple[str, ...]) -> dict:
    obj = safe_load_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise DataError(f"{path}: wrong keys: missing {missing}, found {sorted(map(str, obj))}")
    return obj


def _images(data: Any, path: Path) -> np.ndarray:
    """Rows of 3072 (CIFAR layout, channel-major) or N×32×32×3 → (N, 32, 32, 3) uint8."""
    if not isinstance(data, np.ndarray):
        raise DataError(f"{path}: 'data' must be a numpy array, found {type(data).__name__}")
    if data.dtype != np.uint8:
        raise DataError(f"{path}: wrong dtype: 'data' must be uint8, found {data.dtype}")
    if data.ndim == 2 and data.shape[1] == ROW_SIZE:
        return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    if data.ndim == 4 and data.shape[1:] == IMAGE_SHAPE:
        return np.ascontiguousarray(data)
    raise DataError(f"{path}: wrong shape: 'data' must be N×{ROW_SIZE} or N×32×32×3, "
                    f"found {'×'.join(map(str, data.shape))}")


def _int_vector(values: Any, path: Path, key: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except Exception as e:
        raise DataError(f"{path}: '{key}' is not a list of integers ({e})") from e
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise DataError(f"{path}: '{key}' must be a flat list of integers, "
                        f"found dtype {arr.dtype} with shape {arr.shape}")
    return arr.astype(np.int64)


def _labels(values: Any, n_images: int, path: Path) -> np.ndarray:
    y = _int_vector(values, path, "labels")
    if len(y) != n_images:
        raise DataError(f"{path}: label count {len(y)} != image count {n_images}")
    bad = (y < 0) | (y >= NUM_CLASSES)
    if bad.any():
        raise DataError(f"{path}: labels outside 0-{NUM_CLASSES - 1}: "
                        f"{sorted(set(y[bad].tolist()))[:10]}")
    return y


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _load_dict(path, ("data", "labels"))
    x = _images(d["data"], path)
    return x, _labels(d["labels"], len(x), path)


def _load_meta(path: Path) -> list[str]:
    names = _load_dict(path, ("label_names",))["label_names"]
    if not isinstance(names, (list, tuple)) or len(names) != NUM_CLASSES:
        raise DataError(f"{path}: label_names must be {NUM_CLASSES} strings, found {names!r}")
    out = []
    for n in names:
        if isinstance(n, bytes):
            try:
                n = n.decode("utf-8")
            except UnicodeDecodeError:
                n = n.decode("latin1")
        if not isinstance(n, str):
            raise DataError(f"{path}: label_names must be {NUM_CLASSES} strings, found {names!r}")
        out.append(n)
    return out


def _load_unlabelled(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _load_dict(path, ("data", "ids"))
    x = _images(d["data"], path)
    ids = _int_vector(d["ids"], path, "ids")
    if len(ids) != len(x):
        raise DataError(f"{path}: ids count {len(ids)} != image count {len(x)}")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{path}: duplicate ids: {uniq[counts > 1][:10].tolist()}")
    return x, ids


def _unlabelled_path(root: Path, bdir: Path) -> Path | None:
    places = [root]
    # data_dir pointed straight at .../cifar-10-python/cifar-10-batches-py: look upwards.
    if bdir == root and root.name == "cifar-10-batches-py":
        places.append(root.parent)
        if root.parent.name == "cifar-10-python":
            places.append(root.parent.parent)
    for p in places:
        if (p / UNLABELLED_FILE).is_file():
            return p / UNLABELLED_FILE
    return None


def load_dir(root: str | os.PathLike) -> Cifar:
    """Read and validate the competition files in one folder (no searching)."""
    root = Path(root)
    bdir = batches_dir(root)
    xs, ys = [], []
    for name in TRAIN_BATCHES:
        x, y = _load_batch(bdir / name)
        xs.append(x)
        ys.append(y)
    classes = _load_meta(bdir / META_FILE)
    test_x = test_y = None
    if (bdir / TEST_BATCH).exists():
        test_x, test_y = _load_batch(bdir / TEST_BATCH)
    unl_x = unl_ids = None
    unl = _unlabelled_path(root, bdir)
    if unl is not None:
        unl_x, unl_ids = _load_unlabelled(unl)
    return Cifar(train_x=np.concatenate(xs), train_y=np.concatenate(ys), classes=classes,
                 unlabelled_x=unl_x, unlabelled_ids=unl_ids, test_x=test_x, test_y=test_y,
                 root=root)


def download_cifar10(dest: str | os.PathLike | None = None) -> Path:
    """Fetch CIFAR-10 with torchvision into dest (default <repo>/data); returns dest.

    torchvision writes dest/cifar-10-batches-py/ (training batches, batches.meta,
    test_batch) but no cifar_test_nolabel.pkl.
    """
    dest = Path(dest) if dest is not None else paths.REPO_ROOT / "data"
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as e:
        raise DataError(f"download=True needs torchvision ({e}); install it or pass "
                        "data_dir") from e
    dest.mkdir(parents=True, exist_ok=True)
    CIFAR10(root=str(dest), train=True, download=True)
    return dest


def load_competition(data_dir: str | os.PathLike | None = None,
                     competition: str = DEFAULT_COMPETITION,
                     download: bool = False) -> Cifar:
    """Find the competition folder (see find_data_dir) and load it.

    With download=True and nothing found, CIFAR-10 is fetched with torchvision (into
    data_dir when given, else <repo>/data) and read with this same loader; the result
    then has unlabelled_x None (torchvision has no cifar_test_nolabel.pkl).
    """
    try:
        root = find_data_dir(data_dir, competition)
    except DataError:
        if not download:
            raise
        root = download_cifar10(data_dir if data_dir else None)
    return load_dir(root)


# --------------------------------------------------------------------------- splitting

def stratified_split(labels, n_val: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split into (train_idx, val_idx), both sorted int64 arrays.

    Each class gives n_val * class_count / N validation images; remainders go to the
    classes with the largest fractional share, so len(val_idx) == n_val exactly.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, found shape {labels.shape}")
    n = len(labels)
    n_val = int(n_val)
    if n_val < 0 or n_val >= n:
        raise ValueError(f"n_val must be in [0, {n}) for {n} labels, got {n_val}")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    share = counts * n_val / n
    quota = np.floor(share).astype(np.int64)
    extra = n_val - int(quota.sum())
    order = np.argsort(-(share - quota), kind="stable")
    quota[order[:extra]] += 1
    rng = np.random.default_rng(seed)
    val = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        val.append(rng.permutation(members)[:quota[c]])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64) if val else np.empty(0, np.int64)
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask).astype(np.int64), val_idx


# ------------------------------------------------------------------ synthetic data

class _Py2StylePickler(pickle._Pickler):
    """Writes protocol-2 pickles the way the competition files are written: bytes as
    Python 2 strings (SHORT_BINSTRING/BINSTRING, not _codecs.encode calls) and numpy's
    globals under numpy.core, so safe_load_pickle reads them with numpy 1 or 2."""

    def save_bytes(self, obj):
        if self.proto >= 3:
            return super().save_bytes(obj)
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None) or ""
        qualname = name or getattr(obj, "__qualname__", None)
        if self.proto < 3 and module.startswith("numpy._core.") and qualname:
            module = "numpy.core." + module[len("numpy._core."):]
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
            self.memoize(obj)
            return
        return super().save_global(obj, name)

    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[bytes] = save_bytes


def _dump(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2StylePickler(f, protocol=2).dump(obj)


# One well-separated colour per class, plus a per-class stripe pattern: learnable fast.
_PALETTE = np.array([
    [230, 40, 40], [40, 200, 40], [40, 40, 230], [230, 230, 40], [230, 40, 230],
    [40, 230, 230], [140, 70, 20], [250, 250, 250], [20, 20, 20], [128, 128, 128],
], dtype=np.float32)


def _synthetic_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    img = np.repeat(_PALETTE[labels][:, None, None, :], 32, axis=1).repeat(32, axis=2)
    rows = np.arange(32)[None, :, None, None]
    period = (labels + 2)[:, None, None, None]  # stripes 2..11 pixels apart
    img += np.where(rows % period == 0, 40.0, -10.0).astype(np.float32)
    img += rng.normal(0.0, 18.0, size=(n, 32, 32, 3)).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _to_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) → (N, 3072): 1024 R, then 1024 G, then 1024 B per row."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), ROW_SIZE))


def write_synthetic_competition(root: str | os.PathLike, n_train: int = 200,
                                n_unlabelled: int = 50, n_test: int = 0,
                                seed: int = 0) -> Path:
    """Write a tiny competition folder in the real files' formats; returns root.

    Training labels run round-robin over the 10 classes (balanced), split over five
    data_batch files; each class has its own colour and stripe pattern plus noise, so a
    small model can learn it. cifar_test_nolabel.pkl gets n_unlabelled images (ids
    0..M-1, classes also round-robin); test_batch is written only when n_test > 0.
    """
    if n_train < 0 or n_unlabelled < 0 or n_test < 0:
        raise ValueError("image counts must be >= 0")
    root = Path(root)
    bdir = root / BATCH_SUBDIRS[0]
    bdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    labels = np.arange(n_train) % NUM_CLASSES
    images = _synthetic_images(labels, rng)
    chunks = np.array_split(np.arange(n_train), len(TRAIN_BATCHES))
    for i, (name, idx) in enumerate(zip(TRAIN_BATCHES, chunks), start=1):
        _dump({
            b"batch_label": f"training batch {i} of {len(TRAIN_BATCHES)}".encode(),
            b"labels": [int(v) for v in labels[idx]],
            b"data": _to_rows(images[idx]),
            b"filenames": [f"synthetic_{int(j):05d}.png".encode() for j in idx],
        }, bdir / name)
    _dump({
        b"num_cases_per_batch": max((len(c) for c in chunks), default=0),
        b"label_names": [c.encode() for c in CLASSES],
        b"num_vis": ROW_SIZE,
    }, bdir / META_FILE)

    if n_test > 0:
        test_labels = np.arange(n_test) % NUM_CLASSES
        _dump({
            b"batch_label": b"testing batch 1 of 1",
            b"labels": [int(v) for v in test_labels],
            b"data": _to_rows(_synthetic_images(test_labels, rng)),
            b"filenames": [f"synthetic_test_{j:05d}.png".encode() for j in range(n_test)],
        }, bdir / TEST_BATCH)

    unl_labels = np.arange(n_unlabelled) % NUM_CLASSES
    _dump({
        b"data": _synthetic_images(unl_labels, rng),
        b"ids": np.arange(n_unlabelled, dtype=np.int64),
    }, root / UNLABELLED_FILE)
    return root
