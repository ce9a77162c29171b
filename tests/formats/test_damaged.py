"""Damaged files of every format read with torch alone: a clear NetinitError or a clean load.

Keras, Flax and ONNX files are damaged in their own test modules (their frameworks make them).
"""

from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from netinit.errors import CorruptFileError, FormatError
from netinit.formats import load_checkpoint
from netinit.layers import find_layers


def _net() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("damaged")
    net = _net()
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    torch.save(sd, d / "m.pt")
    torch.save(sd, d / "legacy.pt", _use_new_zipfile_serialization=False)
    save_file(sd, str(d / "m.safetensors"))
    np.savez(d / "m.npz", **{k: v.numpy() for k, v in sd.items()})
    torch.jit.save(torch.jit.script(net), str(d / "m.jit"))
    return d


@pytest.mark.parametrize("name", ["m.pt", "legacy.pt", "m.safetensors", "m.npz", "m.jit"])
def test_damaged_files_raise_netinit_errors(files, name, damaged):
    counts = damaged(files / name, n=60, seed=1)
    rejected, tried = counts["truncate"]
    assert rejected == tried  # a truncated file never loads as if whole


def _patched(src, out, at: bytes, offset: int, value: bytes, which: int = 0):
    """Copy ``src`` to ``out`` with ``value`` written ``offset`` bytes after the ``which``-th ``at``."""
    data = bytearray(src.read_bytes())
    pos = -1
    for _ in range(which + 1):
        pos = data.index(at, pos + 1)
    data[pos + offset : pos + offset + len(value)] = value
    out.write_bytes(bytes(data))
    return out


def test_zip_damage_that_zipfile_reports_oddly(files, tmp_path):
    """Damaged zip records make zipfile raise BadZipFile from is_zipfile, UnicodeDecodeError or
    NotImplementedError: each is a CorruptFileError naming the file."""
    cases = {  # name: (source, record signature, offset in the record, bytes written there)
        # zip64 end-of-directory locator: "disk number" 1 (is_zipfile itself raises BadZipFile)
        "disk.pt": ("m.pt", b"PK\x06\x07", 4, struct.pack("<I", 1)),
        # central directory entry: UTF-8 flag set on a name whose first byte is 0xff
        "utf8.pt": ("m.pt", b"PK\x01\x02", 8, struct.pack("<H", 0x800)),
        # central directory entry: the strong-encryption flag (zipfile: NotImplementedError)
        "crypt.jit": ("m.jit", b"PK\x01\x02", 8, struct.pack("<H", 0x40)),
    }
    for name, (src, at, off, value) in cases.items():
        p = _patched(files / src, tmp_path / name, at, off, value)
        if name == "utf8.pt":
            p = _patched(p, p, b"PK\x01\x02", 46, b"\xff")
        with pytest.raises(CorruptFileError, match=rf"{name}: (truncated or corrupt|cannot read storage)"):
            with load_checkpoint(p) as ckpt:
                for layer in find_layers(ckpt)[0]:
                    layer.matrix()
    p = _patched(files / "m.npz", tmp_path / "method.npz", b"PK\x01\x02", 10, struct.pack("<H", 99))
    with pytest.raises(CorruptFileError, match=r"method\.npz: .*(corrupt|not supported)"):
        with load_checkpoint(p) as ckpt:
            for layer in find_layers(ckpt)[0]:
                layer.matrix()


def test_npz_header_that_does_not_parse(files, tmp_path):
    with zipfile.ZipFile(files / "m.npz") as z:
        member = z.namelist()[0]
    p = _patched(files / "m.npz", tmp_path / "hdr.npz", b"{'descr'", 0, b"(")  # unbalanced: tokenize fails
    with pytest.raises(CorruptFileError, match=rf"hdr\.npz: member '{member}' is corrupt"):
        load_checkpoint(p)


def test_truncated_legacy_pickle_with_an_empty_error_message(files, tmp_path):
    data = (files / "legacy.pt").read_bytes()
    for cut in range(1, len(data), max(1, len(data) // 97)):
        p = tmp_path / "cut.pt"
        p.write_bytes(data[:cut])
        with pytest.raises(FormatError, match=r"cut\.pt: "):  # corrupt, or a cut-off global name
            with load_checkpoint(p) as ckpt:
                for layer in find_layers(ckpt)[0]:
                    layer.matrix()
