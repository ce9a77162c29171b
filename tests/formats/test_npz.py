from __future__ import annotations

import zipfile

import numpy as np
import pytest

from netinit.errors import CorruptFileError, UnsafeCheckpointError
from netinit.formats import load_checkpoint, save_checkpoint


@pytest.fixture
def npz(tmp_path, rng):
    arrays = {"fc1": rng.normal(size=(8, 4)).astype(np.float32), "fc1_bias": rng.normal(size=8),
              "conv": rng.normal(size=(4, 2, 3, 3)).astype(np.float16), "steps": np.arange(3)}
    p = tmp_path / "w.npz"
    np.savez_compressed(p, **arrays)
    return p, arrays


def test_reads_members_lazily(npz):
    p, arrays = npz
    ckpt = load_checkpoint(p)
    assert ckpt.format == "npz" and set(ckpt.names()) == set(arrays)
    for k, v in arrays.items():
        assert ckpt.info(k).shape == v.shape and ckpt.info(k).dtype == v.dtype.name
        np.testing.assert_array_equal(ckpt.load(k), v)


def test_round_trip_keeps_other_members_and_compression(npz, tmp_path):
    p, arrays = npz
    new = arrays["conv"][::-1].astype(np.float64)
    out = save_checkpoint(load_checkpoint(p), tmp_path / "o.npz", {"conv": new})
    with np.load(out, allow_pickle=False) as z:
        assert z["conv"].dtype == np.float16
        np.testing.assert_array_equal(z["conv"], new.astype(np.float16))
        for k in ("fc1", "fc1_bias", "steps"):
            np.testing.assert_array_equal(z[k], arrays[k])
    with zipfile.ZipFile(p) as a, zipfile.ZipFile(out) as b:
        assert a.read("fc1.npy") == b.read("fc1.npy")
        assert b.getinfo("fc1.npy").compress_type == zipfile.ZIP_DEFLATED


def test_object_arrays_refused(tmp_path):
    p = tmp_path / "o.npz"
    np.savez(p, w=np.ones((2, 2)), bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UnsafeCheckpointError, match="'bad' is a pickled object array"):
        load_checkpoint(p)


def test_truncated(npz, tmp_path):
    p, _ = npz
    bad = tmp_path / "t.npz"
    bad.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(CorruptFileError, match=r"t\.npz: "):
        load_checkpoint(bad)
