"""Builders of hostile files: checkpoints whose headers, pickles and records lie about their data.

Each builder writes one file from explicit parts, so a test states exactly which field is wrong.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np


def safetensors_file(path: Path, header: dict, data: bytes) -> Path:
    """A safetensors file with ``header`` (written as given, not checked) and ``data``."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _unicode(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)  # BININT: a signed 4-byte integer


def _ints_tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def tensor_pickle(tensors: dict[str, tuple[str, int, int, tuple[int, ...], tuple[int, ...]]],
                  *, memo_index: int | None = None) -> bytes:
    """``data.pkl`` of a TorchScript archive: a dict of tensors, each
    ``name: (storage key, storage numel, offset, size, stride)`` over a ``FloatStorage``.

    Written opcode by opcode, as ``torch.jit.save`` writes them (protocol 2, ``BINPERSID`` storages,
    ``torch._utils._rebuild_tensor_v2``), so offsets and strides can be anything, negative included.
    ``memo_index`` adds a ``LONG_BINPUT`` of that index after the dict.
    """
    out = [b"\x80\x02", b"}"]
    if memo_index is not None:
        out.append(b"r" + struct.pack("<I", memo_index))
    for name, (key, numel, offset, size, stride) in tensors.items():
        out.append(_unicode(name))
        out.append(b"ctorch._utils\n_rebuild_tensor_v2\n(")
        out.append(b"(" + _unicode("storage") + b"ctorch\nFloatStorage\n" + _unicode(key) + _unicode("cpu")
                   + _int(numel) + b"tQ")
        out.append(_int(offset) + _ints_tuple(size) + _ints_tuple(stride) + b"\x89")
        out.append(b"ccollections\nOrderedDict\n)R")
        out.append(b"tR")
        out.append(b"s")
    out.append(b".")
    return b"".join(out)


def torchscript_file(path: Path, pkl: bytes, storages: dict[str, np.ndarray]) -> Path:
    """A TorchScript archive (stored members) holding ``pkl`` as ``data.pkl`` and float32 ``storages``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/constants.pkl", b"\x80\x02).")
        z.writestr("archive/code/__torch__.py", "")
        z.writestr("archive/byteorder", "little")
        for key, values in storages.items():
            z.writestr(f"archive/data/{key}", np.ascontiguousarray(values, dtype="<f4").tobytes())
    return path


def recompressed(src: Path, out: Path, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A copy of the zip archive ``src`` with every member recompressed."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(out, "w") as b:
        for info in a.infolist():
            b.writestr(info.filename, a.read(info), compress_type=compression)
    return out


def patch_central(path: Path, member: str, *, flag: int | None = None, method: int | None = None) -> Path:
    """Set the general-purpose flag or compression method of ``member`` in the central directory."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        start = z.start_dir
    pos = start
    while data[pos:pos + 4] == b"PK\x01\x02":
        nlen, xlen, clen = struct.unpack_from("<3H", data, pos + 28)
        name = bytes(data[pos + 46:pos + 46 + nlen]).decode()
        if name == member:
            if flag is not None:
                struct.pack_into("<H", data, pos + 8, flag)
            if method is not None:
                struct.pack_into("<H", data, pos + 10, method)
        pos += 46 + nlen + xlen + clen
    path.write_bytes(bytes(data))
    return path
