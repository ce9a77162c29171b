"""Temporary files of atomic writes: a killed write's file is removed by the next write of the same
output, a live writer's file is kept, and errors name the user's output path."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from netinit._io import atomic_path, output_of, prepare_output_dir, remove_stale_temps, temp_beside
from netinit.errors import OutputError
from netinit.formats import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def dead_pid():
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_name_carries_the_output_and_pid(tmp_path):
    tmp = temp_beside(tmp_path / "out.safetensors")
    assert tmp.parent == tmp_path and tmp.name.startswith(f".out.safetensors.{os.getpid()}.")
    assert tmp.name.endswith(".tmp") and output_of(tmp) == tmp_path / "out.safetensors"
    assert output_of(tmp_path / "plain.pt") == tmp_path / "plain.pt"


def test_next_write_removes_a_killed_writes_temp(tmp_path, dead_pid):
    out = tmp_path / "m.safetensors"
    stale = [tmp_path / f".m.safetensors.{dead_pid}.abcd1234.tmp",
             tmp_path / ".m.safetensors.k2j4h5g6.tmp"]  # an earlier version's name, without PID
    live = tmp_path / f".m.safetensors.{os.getpid()}.zzzz9999.tmp"  # a write still running
    other = [tmp_path / f".n.safetensors.{dead_pid}.abcd1234.tmp", tmp_path / ".m.safetensors.notes.tmp"]
    for f in stale + [live] + other:
        f.write_bytes(b"partial")
    save_file({"w": np.ones((2, 3), np.float32)}, str(tmp_path / "in.safetensors"))
    with load_checkpoint(tmp_path / "in.safetensors") as ckpt:
        save_checkpoint(ckpt, out, {"w": np.zeros((2, 3), np.float32)})
    assert not any(f.exists() for f in stale)
    assert live.exists() and all(f.exists() for f in other)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".m.")) == sorted(
        [live.name, ".m.safetensors.notes.tmp"])


def test_remove_stale_temps_reports_what_it_removed(tmp_path, dead_pid):
    f = tmp_path / f".x.pt.{dead_pid}.abcdefgh.tmp"
    f.write_bytes(b"")
    assert remove_stale_temps(tmp_path / "x.pt") == [f]
    assert remove_stale_temps(tmp_path / "x.pt") == []


def test_output_folder_check_ignores_and_removes_stale_temps(tmp_path, dead_pid):
    stale = tmp_path / f".summary.csv.{dead_pid}.abcdefgh.tmp"
    stale.write_bytes(b"partial")
    prepare_output_dir(tmp_path, owned=("summary.csv",))
    assert not stale.exists()
    (tmp_path / "foreign.txt").write_text("x")
    with pytest.raises(OutputError, match=r"already holds other files \(foreign\.txt\)"):
        prepare_output_dir(tmp_path, owned=("summary.csv",))


def test_error_names_the_output_not_the_temp(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(kwargs.get("dir", "."), ".x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "out.pt"
    with pytest.raises(OutputError, match=rf"^{out}: cannot write the output \(Permission denied\)$"):
        with atomic_path(out):
            pass


def test_error_inside_the_write_names_the_output(tmp_path):
    out = tmp_path / "out.pt"
    with pytest.raises(OutputError, match=rf"^{out}: cannot write the output \(Is a directory\)$"):
        with atomic_path(out) as tmp:
            tmp.unlink()
            tmp.mkdir()
            try:
                open(tmp, "wb")
            finally:
                tmp.rmdir()
    assert list(tmp_path.iterdir()) == []
