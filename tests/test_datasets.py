"""netinit.datasets: digits, mnist1d, synthetic and user-provided MNIST files."""

from __future__ import annotations

import gzip
import random
import struct

import numpy as np
import pytest
import torch

from netinit.datasets import load_dataset, read_idx
from netinit.errors import DataError


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


def test_bad_files_and_names(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of digits, mnist1d, synthetic"):
        load_dataset("cifar10")
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
