"""Every input the fuzz harness (bench/fuzz) stopped on, read again: a one-line NetinitError naming
the file, within the reader's bounds. Files: tests/formats/data/fuzz/<target>-<what>-<hash>.<suffix>;
<what> says what it did before it was fixed or contained (an HDF5 loop, an HDF5 allocation of
gigabytes, a segmentation fault inside HDF5, now confined to the reader's child process)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from netinit.errors import CorruptFileError, NetinitError
from netinit.formats import load_checkpoint
from netinit.formats._bounded import bounded_call

DATA = Path(__file__).parent / "data" / "fuzz"
REPRODUCERS = sorted(DATA.iterdir())
EXPECTED = {  # what the reader now says about each, by the part of its name before the hash
    "keras-hdf5-loop": r"corrupt HDF5 global heap at byte \d+ \(object 0 of 0 bytes at byte \d+ never ends\)",
    "h5-hdf5-loop": r"corrupt HDF5 global heap at byte \d+ \(object 0 of 0 bytes at byte \d+ never ends\)",
    "h5-hdf5-alloc": r"corrupt HDF5 structure \(OSError: .*memory allocation failed",
    # HDF5 dereferences a damaged attribute and dies of SIGSEGV: in the reader's child process
    "h5-hdf5-segfault": r"reading the HDF5 structure failed: the parser crashed \(signal 11\)",
}


@pytest.mark.parametrize("src", REPRODUCERS, ids=[p.name for p in REPRODUCERS])
def test_reproducer_is_refused_in_one_line(src, tmp_path):
    pytest.importorskip("h5py")
    p = tmp_path / src.name
    shutil.copyfile(src, p)
    kind = src.name.rsplit("-", 1)[0]
    with pytest.raises(NetinitError, match=rf"^{p}: {EXPECTED[kind]}") as exc:
        with load_checkpoint(p) as ckpt:
            for name in ckpt.names():
                ckpt.load(name)
    assert "\n" not in str(exc.value)


def test_every_reproducer_has_an_expected_message():
    assert {p.name.rsplit("-", 1)[0] for p in REPRODUCERS} <= set(EXPECTED)


@pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc/self/statm").exists(), reason="Linux only")
def test_bounded_call_caps_the_childs_memory(tmp_path):
    """What keeps h5-hdf5-alloc at megabytes: an allocation past the cap fails in the child."""
    def allocate():
        return len(np.ones(256 << 20, dtype=np.uint8))  # 256 MiB

    with pytest.raises(CorruptFileError, match=r"parsing \(MemoryError"):
        bounded_call(allocate, tmp_path, timeout=60, what="parsing", variable="X", memory=64 << 20)
    assert bounded_call(allocate, tmp_path, timeout=60, what="parsing", variable="X", memory=1 << 30) == 256 << 20
