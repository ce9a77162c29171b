"""netinit.experiments.datasets: digits, mnist1d, synthetic and user-provided MNIST and CIFAR-10 files."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import random
import struct

import numpy as np
import pytest
import torch

from netinit.errors import DataError
from netinit.experiments.datasets import IMAGE_SHAPES, load_dataset, read_cifar_batch, read_idx


def test_digits_split_is_stratified_standardised_and_seeded():
    a = load_dataset("digits", seed=0)
    b = load_dataset("digits", seed=0)
    c = load_dataset("digits", seed=1)
    assert a.X_train.shape == (1347, 64) and a.X_test.shape == (450, 64)
    assert a.X_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a.y_train, c.y_train)
    assert a.X_train.mean(0).abs().max() < 1e-5
    counts_tr = torch.bincount(a.y_train).double() / len(a.y_train)
    counts_te = torch.bincount(a.y_test).double() / len(a.y_test)
    assert (counts_tr - counts_te).abs().max() < 0.01


def test_synthetic_is_seeded():
    a = load_dataset("synthetic", seed=3, n_samples=400)
    b = load_dataset("synthetic", seed=3, n_samples=400)
    c = load_dataset("synthetic", seed=4, n_samples=400)
    assert a.X_train.shape == (300, 20) and int(a.y_train.max()) == 9
    assert torch.equal(a.X_train, b.X_train) and not torch.equal(a.X_train, c.X_train)


def test_mnist1d_generated_locally_without_touching_global_rng():
    pytest.importorskip("mnist1d")
    np_state, py_state = np.random.get_state(), random.getstate()
    d = load_dataset("mnist1d")
    assert d.X_train.shape == (4000, 40) and d.X_test.shape == (1000, 40)
    assert sorted(torch.unique(d.y_train).tolist()) == list(range(10))
    after = np.random.get_state()
    assert np.array_equal(np_state[1], after[1]) and np_state[2] == after[2]
    assert random.getstate() == py_state


def _idx(path, arr: np.ndarray, code: int = 0x08, compress: bool = False):
    raw = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(raw)


def _mnist_files(folder, compress: bool, rng):
    x_tr = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    y_tr = rng.integers(0, 10, size=20, dtype=np.uint8)
    x_te = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    y_te = rng.integers(0, 10, size=7, dtype=np.uint8)
    sfx = ".gz" if compress else ""
    _idx(folder / f"train-images-idx3-ubyte{sfx}", x_tr, compress=compress)
    _idx(folder / f"train-labels-idx1-ubyte{sfx}", y_tr, compress=compress)
    _idx(folder / f"t10k-images-idx3-ubyte{sfx}", x_te, compress=compress)
    _idx(folder / f"t10k-labels-idx1-ubyte{sfx}", y_te, compress=compress)
    return x_tr, y_tr, x_te, y_te


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_from_idx_files(tmp_path, compress):
    x_tr, y_tr, x_te, y_te = _mnist_files(tmp_path, compress, np.random.default_rng(0))
    d = load_dataset("fashion-mnist", path=tmp_path)
    assert d.X_train.shape == (20, 784) and d.X_test.shape == (7, 784)
    assert d.y_test.tolist() == y_te.tolist()
    flat = x_tr.reshape(20, -1) / 255.0
    expected = (flat - flat.mean()) / flat.std()
    np.testing.assert_allclose(d.X_train.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_mnist_from_npz(tmp_path):
    rng = np.random.default_rng(1)
    arrays = dict(x_train=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), y_train=np.arange(5),
                  x_test=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), y_test=np.arange(3))
    np.savez(tmp_path / "mnist.npz", **arrays)
    d = load_dataset("mnist", path=tmp_path / "mnist.npz")
    assert d.X_train.shape == (5, 784) and d.y_test.tolist() == [0, 1, 2]
    np.savez(tmp_path / "bad.npz", x_train=arrays["x_train"])
    with pytest.raises(DataError, match="lacks y_train, x_test, y_test"):
        load_dataset("mnist", path=tmp_path / "bad.npz")
    data = bytearray((tmp_path / "mnist.npz").read_bytes())
    data[data.index(b"\x93NUMPY") + 200] ^= 0xFF  # a pixel of x_train: the member fails its CRC
    (tmp_path / "crc.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"crc\.npz: not a readable \.npz file \(BadZipFile: Bad CRC-32"):
        load_dataset("mnist", path=tmp_path / "crc.npz")


def test_bad_files_and_names(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of digits, mnist1d, synthetic, mnist, "
                                         "fashion_mnist, cifar10; got 'cifar100'"):
        load_dataset("cifar100")
    with pytest.raises(ValueError, match="needs path="):
        load_dataset("mnist")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_dataset("mnist", path=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no train-images-idx3-ubyte or train-images-idx3-ubyte.gz"):
        load_dataset("mnist", path=tmp_path)
    (tmp_path / "junk.idx").write_bytes(b"\x89PNG....")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "junk.idx")
    _idx(tmp_path / "short.idx", np.zeros((4, 2, 2), np.uint8))
    raw = (tmp_path / "short.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-3])
    with pytest.raises(DataError, match=r"header says shape \(4, 2, 2\) \(16 bytes of data\) but the file holds 13"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot be read as gzip"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_dataset("mnist", path=tmp_path / "x.npz")


# ----------------------------------------------------------------------------- CIFAR-10
class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the CIFAR-10 batches (protocol 2): byte strings
    as py2 ``str`` (SHORT_BINSTRING / BINSTRING) and numpy's ``numpy.core.multiarray._reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _dump(path, obj, protocol):
    if protocol == "py2":
        buf = io.BytesIO()
        _Py2Pickler(buf, 2).dump(obj)
        path.write_bytes(buf.getvalue())
    else:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=protocol)


def _cifar_batch(rng, n, label):
    return {b"batch_label": label.encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i:05d}.png".encode() for i in range(n)]}


def _cifar_folder(root, rng, protocol="py2", n_train=6, n_test=4):
    """A fake ``cifar-10-batches-py`` under ``root``: 5 training batches of ``n_train`` images and a test batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = _cifar_batch(rng, n_train, f"training batch {i} of 5")
    batches["test_batch"] = _cifar_batch(rng, n_test, "testing batch 1 of 1")
    for name, b in batches.items():
        _dump(folder / name, b, protocol)
    return folder, batches


@pytest.mark.parametrize("protocol", ["py2", 4, 5])
def test_cifar_batch_read_safely_in_every_pickle_protocol(tmp_path, protocol):
    """Python 2's protocol 2 (the real files: numpy.core _reconstruct), and Python 3's 4 and 5 (_frombuffer)."""
    rng = np.random.default_rng(0)
    batch = _cifar_batch(rng, 7, "training batch 1 of 5")
    _dump(tmp_path / "data_batch_1", batch, protocol)
    x, y = read_cifar_batch(tmp_path / "data_batch_1")
    assert x.dtype == np.uint8 and x.shape == (7, 3, 32, 32) and y.dtype == np.int64
    np.testing.assert_array_equal(x.reshape(7, -1), batch[b"data"])
    assert y.tolist() == batch[b"labels"]
    assert x[2, 1, 3, 4] == batch[b"data"][2, 1024 + 3 * 32 + 4]  # channel-first: R, G, B planes, rows in order


@pytest.mark.parametrize("where", ["folder", "parent", "file"])
def test_cifar_loads_standardised_per_channel(tmp_path, where):
    rng = np.random.default_rng(1)
    folder, batches = _cifar_folder(tmp_path, rng)
    path = {"folder": folder, "parent": tmp_path, "file": folder / "data_batch_3"}[where]
    d = load_dataset("cifar10", path=path)
    assert d.X_train.shape == (30, 3072) and d.X_test.shape == (4, 3072)
    assert d.X_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.y_train.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert d.y_test.tolist() == batches["test_batch"][b"labels"]
    raw = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)]).reshape(30, 3, 1024) / 255.0
    mu, sd = raw.mean(axis=(0, 2), keepdims=True), raw.std(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(d.X_train.numpy(), ((raw - mu) / sd).reshape(30, -1), rtol=1e-6, atol=1e-6)
    test = batches["test_batch"][b"data"].reshape(4, 3, 1024) / 255.0
    np.testing.assert_allclose(d.X_test.numpy(), ((test - mu) / sd).reshape(4, -1), rtol=1e-6, atol=1e-6)
    per_channel = d.X_train.numpy().reshape(30, 3, 1024)
    np.testing.assert_allclose(per_channel.mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(per_channel.std(axis=(0, 2)), 1.0, atol=1e-5)
    assert IMAGE_SHAPES["cifar10"] == (3, 32, 32)


@pytest.mark.parametrize("layout", ["flat", "chw", "hwc"])
def test_cifar_from_npz(tmp_path, layout):
    rng = np.random.default_rng(2)
    chw = rng.integers(0, 256, size=(8, 3, 32, 32), dtype=np.uint8)
    x = {"flat": chw.reshape(8, -1), "chw": chw, "hwc": chw.transpose(0, 2, 3, 1)}[layout]
    y = rng.integers(0, 10, size=(8, 1))  # Keras stores labels as (n, 1)
    np.savez(tmp_path / "cifar.npz", x_train=x[:5], y_train=y[:5], x_test=x[5:], y_test=y[5:])
    d = load_dataset("cifar10", path=tmp_path / "cifar.npz")
    ref = load_dataset("cifar10", path=_npz(tmp_path, chw.reshape(8, -1), y))
    assert d.X_train.shape == (5, 3072) and d.y_test.tolist() == y[5:, 0].tolist()
    assert torch.equal(d.X_train, ref.X_train) and torch.equal(d.X_test, ref.X_test)


def _npz(tmp_path, x, y):
    p = tmp_path / "ref.npz"
    np.savez(p, x_train=x[:5], y_train=y[:5], x_test=x[5:], y_test=y[5:])
    return p


class _Evil:
    """Unpickles to ``os.system(...)``: the pickle holds a GLOBAL of os.system and a REDUCE."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_cifar_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    folder, batches = _cifar_folder(tmp_path, np.random.default_rng(3))
    evil = {**batches["data_batch_2"], b"filenames": _Evil(f"touch {marker}")}
    _dump(folder / "data_batch_2", evil, "py2")
    with pytest.raises(DataError, match=r"data_batch_2: refusing to unpickle the global (posix|nt|os)\.system: "
                                        r"a CIFAR-10 batch holds only numpy arrays.*nothing from the file was run"):
        load_dataset("cifar10", path=folder)
    # hand-written opcodes: builtins.eval through GLOBAL, and through STACK_GLOBAL (protocol 4)
    (tmp_path / "eval_batch").write_bytes(b"cbuiltins\neval\n(V__import__('os').system('touch " +
                                          str(marker).encode() + b"')\ntR.")
    with pytest.raises(DataError, match=r"eval_batch: refusing to unpickle the global builtins\.eval"):
        read_cifar_batch(tmp_path / "eval_batch")
    (tmp_path / "stack_batch").write_bytes(b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x05touch\x85R.")
    with pytest.raises(DataError, match=r"refusing to unpickle the global os\.system"):
        read_cifar_batch(tmp_path / "stack_batch")
    assert not marker.exists()


def test_cifar_truncated_and_wrong_files(tmp_path):
    rng = np.random.default_rng(4)
    folder, batches = _cifar_folder(tmp_path, rng)
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"test_batch: not a CIFAR-10 python batch: the pickle is truncated or corrupt"):
        load_dataset("cifar10", path=folder)
    (folder / "test_batch").write_bytes(b"\x00 not a pickle")
    with pytest.raises(DataError, match=r"test_batch: not a CIFAR-10 python batch: the pickle is truncated or corrupt"):
        read_cifar_batch(folder / "test_batch")
    wrong = {**batches["test_batch"], b"data": np.zeros((4, 1024), np.uint8)}
    _dump(folder / "test_batch", wrong, "py2")
    with pytest.raises(DataError, match=r"data must be a uint8 array of shape \(n, 3072\).*got uint8 \(4, 1024\)"):
        read_cifar_batch(folder / "test_batch")
    _dump(folder / "test_batch", {**batches["test_batch"], b"data": np.zeros((4, 3072), np.float32)}, 4)
    with pytest.raises(DataError, match=r"got float32 \(4, 3072\)"):
        read_cifar_batch(folder / "test_batch")
    _dump(folder / "test_batch", {**batches["test_batch"], b"labels": [1, 2, 3]}, 4)
    with pytest.raises(DataError, match=r"test_batch: labels must be 4 integers \(one per image\), got int64 \(3,\)"):
        read_cifar_batch(folder / "test_batch")
    _dump(folder / "test_batch", {**batches["test_batch"], b"labels": [0, 1, 2, 10]}, 4)
    with pytest.raises(DataError, match=r"labels must lie in 0..9, got values 0..10"):
        read_cifar_batch(folder / "test_batch")
    _dump(folder / "test_batch", {b"labels": [0]}, 4)
    with pytest.raises(DataError, match=r"test_batch: the batch lacks data \(it has b'labels'\)"):
        read_cifar_batch(folder / "test_batch")
    _dump(folder / "test_batch", [1, 2], 4)
    with pytest.raises(DataError, match=r"a CIFAR-10 python batch is a pickled dict, got list"):
        read_cifar_batch(folder / "test_batch")
    (folder / "data_batch_5").unlink()
    with pytest.raises(FileNotFoundError, match=r"no data_batch_5 \(the CIFAR-10 python batches"):
        load_dataset("cifar10", path=folder)
    with pytest.raises(ValueError, match=r"dataset 'cifar10' needs path= \(the cifar-10-batches-py folder"):
        load_dataset("cifar10")
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, int),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, int))
    with pytest.raises(DataError, match=r"bad.npz: x_train must have shape \(n, 3072\), \(n, 3, 32, 32\) or "
                                        r"\(n, 32, 32, 3\), got \(2, 28, 28\)"):
        load_dataset("cifar10", path=tmp_path / "bad.npz")


def test_check_dataset_finds_missing_files_without_reading(tmp_path, monkeypatch):
    import netinit.experiments.datasets as ds
    from netinit.experiments.datasets import check_dataset

    check_dataset("digits")
    check_dataset("mnist1d")
    with pytest.raises(ValueError, match="dataset must be one of"):
        check_dataset("imagenet")
    with pytest.raises(ValueError, match="needs path="):
        check_dataset("mnist")
    monkeypatch.setattr(ds, "FASHION_MNIST_DIR", tmp_path / "not-installed")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        check_dataset("fashion-mnist")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        check_dataset("mnist", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no train-images-idx3-ubyte or train-images-idx3-ubyte\.gz"):
        check_dataset("mnist", tmp_path)
    for stem in ds._IDX_FILES.values():
        (tmp_path / (stem + ".gz")).write_bytes(b"not read")  # names only: the check never opens them
    check_dataset("fashion_mnist", tmp_path)
    (tmp_path / "d.npz").write_bytes(b"")
    check_dataset("mnist", tmp_path / "d.npz")
    with pytest.raises(FileNotFoundError, match="the CIFAR-10 python batches"):
        check_dataset("cifar10", tmp_path)
