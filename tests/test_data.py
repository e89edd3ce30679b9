"""Tests for src/data.py: loading, validation, safety, splitting, synthetic data."""

from __future__ import annotations

import os
import pickle
import pickletools
import shutil
from pathlib import Path

import numpy as np
import pytest

from src import data, paths
from src.data import DataError

BATCHES = Path("cifar-10-python") / "cifar-10-batches-py"


@pytest.fixture
def comp(tiny_competition, tmp_path) -> Path:
    """A private copy of the tiny competition that a test may damage."""
    return Path(shutil.copytree(tiny_competition, tmp_path / "comp"))


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No real machine state: no $CIFAR_DATA_DIR, an empty /kaggle, an empty repo."""
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.setenv(paths.KAGGLE_ROOT_ENV, str(tmp_path / "kaggle"))
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")


def rewrite(path: Path, **changes) -> None:
    """Load a pickle (plainly: it is our own test file), change keys, write it back."""
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    for key, value in changes.items():
        if value is None:
            d.pop(key.encode(), None)
        else:
            d[key.encode()] = value
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=4)


def expect_error(root: Path, filename: str, *words: str) -> str:
    with pytest.raises(DataError) as err:
        data.load_competition(root)
    msg = str(err.value)
    assert filename in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


# ------------------------------------------------------------------ synthetic round trip

def test_synthetic_round_trip(tiny_competition):
    c = data.load_competition(tiny_competition)
    assert c.root == tiny_competition
    assert c.train_x.shape == (200, 32, 32, 3) and c.train_x.dtype == np.uint8
    assert c.train_y.shape == (200,) and c.train_y.dtype == np.int64
    assert c.train_y.tolist() == [i % 10 for i in range(200)]
    assert c.classes == data.CLASSES and c.num_classes == 10
    assert c.unlabelled_x.shape == (50, 32, 32, 3) and c.unlabelled_x.dtype == np.uint8
    assert c.unlabelled_ids.dtype == np.int64
    assert c.unlabelled_ids.tolist() == list(range(50))
    assert c.test_x is None and c.test_y is None


def test_synthetic_files_have_the_real_layout(tiny_competition):
    bdir = tiny_competition / BATCHES
    assert sorted(p.name for p in bdir.iterdir()) == ["batches.meta"] + [
        f"data_batch_{i}" for i in range(1, 6)]
    sizes = []
    for i in range(1, 6):
        raw = (bdir / f"data_batch_{i}").read_bytes()
        assert raw[:2] == b"\x80\x02"  # protocol 2
        globals_ = {a for op, a, _ in pickletools.genops(raw) if "GLOBAL" in op.name}
        assert globals_ <= {"numpy.core.multiarray _reconstruct", "numpy ndarray",
                            "numpy dtype"}
        d = pickle.loads(raw, encoding="bytes")
        assert set(d) == {b"data", b"labels", b"filenames", b"batch_label"}
        assert d[b"data"].dtype == np.uint8 and d[b"data"].shape[1] == 3072
        assert isinstance(d[b"labels"], list) and all(type(v) is int for v in d[b"labels"])
        assert len(d[b"filenames"]) == len(d[b"labels"]) == len(d[b"data"])
        sizes.append(len(d[b"labels"]))
    assert sizes == [40] * 5
    meta = pickle.loads((bdir / "batches.meta").read_bytes(), encoding="bytes")
    assert meta[b"label_names"] == [c.encode() for c in data.CLASSES]
    assert meta[b"num_vis"] == 3072 and b"num_cases_per_batch" in meta
    unl = pickle.loads((tiny_competition / "cifar_test_nolabel.pkl").read_bytes(),
                       encoding="bytes")
    assert set(unl) == {b"data", b"ids"}
    assert unl[b"data"].shape == (50, 32, 32, 3) and unl[b"data"].dtype == np.uint8
    assert unl[b"ids"].dtype == np.int64


def test_rows_are_channel_major(tiny_competition):
    """A row is 1024 red, 1024 green, 1024 blue values: check the HWC reshape."""
    raw = pickle.loads((tiny_competition / BATCHES / "data_batch_1").read_bytes(),
                       encoding="bytes")[b"data"]
    c = data.load_competition(tiny_competition)
    img = c.train_x[0]
    assert np.array_equal(raw[0, :1024].reshape(32, 32), img[:, :, 0])
    assert np.array_equal(raw[0, 1024:2048].reshape(32, 32), img[:, :, 1])
    assert np.array_equal(raw[0, 2048:].reshape(32, 32), img[:, :, 2])


def test_synthetic_test_batch_and_determinism(tmp_path):
    a = data.write_synthetic_competition(tmp_path / "a", n_train=30, n_unlabelled=7,
                                         n_test=20, seed=3)
    b = data.write_synthetic_competition(tmp_path / "b", n_train=30, n_unlabelled=7,
                                         n_test=20, seed=3)
    ca, cb = data.load_competition(a), data.load_competition(b)
    assert ca.test_x.shape == (20, 32, 32, 3) and ca.test_y.tolist() == [
        i % 10 for i in range(20)]
    assert np.array_equal(ca.train_x, cb.train_x)
    assert np.array_equal(ca.unlabelled_x, cb.unlabelled_x)
    assert np.bincount(ca.train_y).tolist() == [3] * 10


def test_synthetic_images_are_learnable(tiny_competition):
    """Nearest class mean, fitted on the training images, labels the unlabelled ones
    (whose hidden label is id % 10) almost perfectly."""
    c = data.load_competition(tiny_competition)
    x = c.train_x.reshape(len(c.train_x), -1).astype(np.float32)
    means = np.stack([x[c.train_y == k].mean(0) for k in range(10)])
    u = c.unlabelled_x.reshape(len(c.unlabelled_x), -1).astype(np.float32)
    pred = ((u[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == c.unlabelled_ids % 10).mean() >= 0.95
    # every pair of classes differs clearly in mean colour (survives flips and crops)
    colours = np.stack([c.train_x[c.train_y == k].mean((0, 1, 2)) for k in range(10)])
    dist = np.linalg.norm(colours[:, None] - colours[None], axis=-1)
    assert dist[~np.eye(10, dtype=bool)].min() > 30


# ------------------------------------------------------------------------- real data

def test_real_competition(shared_competition):
    c = data.load_competition(shared_competition)
    assert c.train_x.shape == (50000, 32, 32, 3) and c.train_x.dtype == np.uint8
    assert c.train_y.shape == (50000,) and set(np.unique(c.train_y)) == set(range(10))
    assert np.bincount(c.train_y).tolist() == [5000] * 10
    assert c.classes == data.CLASSES
    assert c.unlabelled_x.shape == (10000, 32, 32, 3) and c.unlabelled_x.dtype == np.uint8
    assert len(np.unique(c.unlabelled_ids)) == 10000
    assert c.root == shared_competition


# --------------------------------------------------------------------- finding folders

def test_find_data_dir_layouts(comp, tmp_path, no_env):
    assert data.find_data_dir(comp) == comp
    assert data.batches_dir(comp) == comp / BATCHES
    # data_dir pointing straight at the batches still finds the unlabelled pickle
    c = data.load_competition(comp / BATCHES)
    assert c.unlabelled_x is not None and len(c.train_y) == 200
    # torchvision's layout: <root>/cifar-10-batches-py/, no unlabelled pickle
    tv = tmp_path / "tv"
    shutil.copytree(comp / BATCHES, tv / "cifar-10-batches-py")
    assert data.batches_dir(tv) == tv / "cifar-10-batches-py"
    c = data.load_competition(tv)
    assert c.unlabelled_x is None and c.unlabelled_ids is None


def test_find_data_dir_from_env_and_kaggle(comp, tmp_path, no_env, monkeypatch):
    kaggle_comp = tmp_path / "kaggle" / "input" / paths.DEFAULT_COMPETITION
    kaggle_comp.parent.mkdir(parents=True)
    shutil.copytree(comp, kaggle_comp)
    assert data.find_data_dir() == kaggle_comp
    monkeypatch.setenv(paths.DATA_ENV, str(comp))
    assert data.find_data_dir() == comp


def test_no_data_anywhere_lists_places_tried(no_env, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as err:
        data.load_competition()
    msg = str(err.value)
    for place in paths.data_candidates():
        assert str(place) in msg, msg
    assert "data_batch_1" in msg and "download=True" in msg and paths.DATA_ENV in msg
    with pytest.raises(DataError) as err:
        data.find_data_dir(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(err.value)
    with pytest.raises(DataError):
        data.batches_dir(tmp_path)


# ------------------------------------------------------------------------ bad inputs

def test_missing_batch_file(comp):
    (comp / BATCHES / "data_batch_3").unlink()
    expect_error(comp, "data_batch_3", "missing")


def test_missing_meta_file(comp):
    (comp / BATCHES / "batches.meta").unlink()
    expect_error(comp, "batches.meta", "missing")


def test_truncated_file(comp):
    path = comp / BATCHES / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    expect_error(comp, "data_batch_2", "truncated or corrupt")


def test_truncated_unlabelled_file(comp):
    path = comp / "cifar_test_nolabel.pkl"
    path.write_bytes(path.read_bytes()[:-100])
    expect_error(comp, "cifar_test_nolabel.pkl", "truncated or corrupt")


def test_garbage_file(comp):
    (comp / BATCHES / "data_batch_4").write_bytes(b"this is not a pickle at all")
    expect_error(comp, "data_batch_4", "truncated or corrupt")


def test_wrong_shape(comp):
    rewrite(comp / BATCHES / "data_batch_1", data=np.zeros((40, 3000), np.uint8))
    expect_error(comp, "data_batch_1", "wrong shape", "3000")


def test_wrong_shape_unlabelled(comp):
    rewrite(comp / "cifar_test_nolabel.pkl", data=np.zeros((50, 3, 32, 32), np.uint8))
    expect_error(comp, "cifar_test_nolabel.pkl", "wrong shape")


def test_wrong_dtype(comp):
    rewrite(comp / BATCHES / "data_batch_5", data=np.zeros((40, 3072), np.float32))
    expect_error(comp, "data_batch_5", "wrong dtype", "float32")


def test_wrong_keys(comp):
    rewrite(comp / BATCHES / "data_batch_2", labels=None)
    expect_error(comp, "data_batch_2", "wrong keys", "labels")


@pytest.mark.parametrize("bad", [10, -1])
def test_labels_out_of_range(comp, bad):
    labels = [i % 10 for i in range(40)]
    labels[7] = bad
    rewrite(comp / BATCHES / "data_batch_1", labels=labels)
    expect_error(comp, "data_batch_1", "labels outside 0-9", str(bad))


def test_label_image_count_mismatch(comp):
    rewrite(comp / BATCHES / "data_batch_3", labels=[0] * 39)
    expect_error(comp, "data_batch_3", "label count 39 != image count 40")


def test_duplicate_ids(comp):
    ids = np.arange(50, dtype=np.int64)
    ids[10] = 3
    rewrite(comp / "cifar_test_nolabel.pkl", ids=ids)
    expect_error(comp, "cifar_test_nolabel.pkl", "duplicate ids", "3")


def test_ids_image_count_mismatch(comp):
    rewrite(comp / "cifar_test_nolabel.pkl", ids=np.arange(49, dtype=np.int64))
    expect_error(comp, "cifar_test_nolabel.pkl", "ids count 49 != image count 50")


def test_bad_label_names(comp):
    rewrite(comp / BATCHES / "batches.meta", label_names=[b"cat", b"dog"])
    expect_error(comp, "batches.meta", "label_names must be 10 strings")


def test_unlabelled_file_is_optional(comp):
    (comp / "cifar_test_nolabel.pkl").unlink()
    c = data.load_competition(comp)
    assert c.unlabelled_x is None and c.unlabelled_ids is None and len(c.train_x) == 200


def test_str_keys_and_protocol_5_arrays_are_accepted(comp):
    path = comp / "cifar_test_nolabel.pkl"
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    with open(path, "wb") as f:
        pickle.dump({"data": d[b"data"], "ids": d[b"ids"]}, f, protocol=5)
    c = data.load_competition(comp)
    assert np.array_equal(c.unlabelled_x, d[b"data"])


# ---------------------------------------------------------------------------- safety

class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_does_not_run(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pkl"
    for protocol in (0, 2, 5):
        path.write_bytes(pickle.dumps({"data": _Evil(marker)}, protocol=protocol))
        with pytest.raises(DataError) as err:
            data.safe_load_pickle(path)
        msg = str(err.value)
        assert f"refusing to load {os.system.__module__}.system from {path}" in msg, msg
        assert "pickles can run code" in msg
        assert not marker.exists()


def test_malicious_batch_in_competition_folder(comp, tmp_path):
    marker = tmp_path / "MARKER"
    (comp / BATCHES / "data_batch_2").write_bytes(pickle.dumps(_Evil(marker)))
    expect_error(comp, "data_batch_2", "refusing to load")
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(S'1+1'\ntR.",  # protocol 0 GLOBAL + REDUCE
    pickle.dumps(print, protocol=4),  # STACK_GLOBAL
])
def test_other_globals_refused(tmp_path, payload):
    path = tmp_path / "p.pkl"
    path.write_bytes(payload)
    with pytest.raises(DataError, match="refusing to load"):
        data.safe_load_pickle(path)


def test_safe_load_plain_data(tmp_path):
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps({b"a": [1, 2], "b": np.arange(3)}, protocol=4))
    obj = data.safe_load_pickle(path)
    assert obj == {"a": [1, 2], "b": obj["b"]} and obj["b"].tolist() == [0, 1, 2]
    # Python 3 writes bytes as _codecs.encode(...) calls under protocols 0-2: refused,
    # as the allow-list holds only numpy's array machinery (the real files use none).
    path.write_bytes(pickle.dumps({b"a": 1}, protocol=2))
    with pytest.raises(DataError, match="refusing to load _codecs.encode"):
        data.safe_load_pickle(path)
    with pytest.raises(DataError, match="missing"):
        data.safe_load_pickle(tmp_path / "absent.pkl")


# ------------------------------------------------------------------------- splitting

def test_stratified_split_sizes_and_balance():
    labels = np.repeat(np.arange(10), 600)
    tr, va = data.stratified_split(labels, n_val=1000, seed=1)
    assert tr.dtype == np.int64 and va.dtype == np.int64
    assert len(va) == 1000 and len(tr) == 5000
    assert len(np.intersect1d(tr, va)) == 0
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(6000))
    assert np.bincount(labels[va]).tolist() == [100] * 10


def test_stratified_split_remainders_exact():
    labels = np.array([0] * 7 + [1] * 5 + [2] * 3 + [3] * 1)
    for n_val in range(0, len(labels)):
        tr, va = data.stratified_split(labels, n_val=n_val, seed=0)
        assert len(va) == n_val and len(tr) + len(va) == len(labels)
        counts = np.bincount(labels[va], minlength=4)
        expected = n_val * np.bincount(labels) / len(labels)
        assert np.all(np.abs(counts - expected) < 1), (n_val, counts, expected)
    tr, va = data.stratified_split(np.arange(95) % 10, n_val=13, seed=0)
    assert len(va) == 13


def test_stratified_split_seeded():
    labels = np.arange(1000) % 10
    a = data.stratified_split(labels, n_val=100, seed=5)
    b = data.stratified_split(labels, n_val=100, seed=5)
    c = data.stratified_split(labels, n_val=100, seed=6)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])


def test_stratified_split_no_val_and_errors():
    labels = np.arange(50) % 10
    tr, va = data.stratified_split(labels, n_val=0)
    assert np.array_equal(tr, np.arange(50)) and len(va) == 0 and va.dtype == np.int64
    with pytest.raises(ValueError):
        data.stratified_split(labels, n_val=-1)
    with pytest.raises(ValueError):
        data.stratified_split(labels, n_val=50)
