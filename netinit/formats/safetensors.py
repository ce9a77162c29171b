"""safetensors files, read lazily tensor by tensor and rewritten in place of their bytes.

The format is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON (tensor name ->
``dtype``, ``shape``, ``data_offsets``; optional ``__metadata__``), then the raw little-endian data.
Reading maps the file and copies one tensor at a time. Writing copies the file and overwrites
the byte ranges of the replaced tensors: the header, the metadata and every other tensor stay
byte-identical, and memory stays near the largest replaced tensor.

HF GPT-2 ``Conv1D`` weights, stored ``(in, out)``, are shown transposed to ``(out, in)`` and
written back as stored; :mod:`netinit.formats._layouts` decides which (``layout=`` forces it).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Mapping

import numpy as np

from netinit.errors import CorruptFileError, DtypeError, ShapeError
from netinit.formats import _layouts
from netinit.formats.base import Checkpoint, Format, TensorInfo, checked_shape, numel
from netinit.formats.limits import Limits, current_limits

__all__ = ["SafetensorsFormat", "SafetensorsCheckpoint", "bf16_bits_to_float32", "float32_to_bf16_bits",
           "write_copy"]

_DTYPES = {
    "F64": ("float64", "<f8"), "F32": ("float32", "<f4"), "F16": ("float16", "<f2"),
    "BF16": ("bfloat16", "<u2"), "I64": ("int64", "<i8"), "I32": ("int32", "<i4"),
    "I16": ("int16", "<i2"), "I8": ("int8", "i1"), "U64": ("uint64", "<u8"),
    "U32": ("uint32", "<u4"), "U16": ("uint16", "<u2"), "U8": ("uint8", "u1"), "BOOL": ("bool", "?"),
    "F8_E4M3": ("float8_e4m3fn", "u1"), "F8_E5M2": ("float8_e5m2", "u1"),
}
_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit; what a reader accepts: netinit.formats.limits


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) to float32 values (exact)."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 values to bfloat16 bit patterns, rounding to nearest even (exact for bf16 values)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = np.isnan(x)
    out = rounded.astype(np.uint16)
    out[nan] = 0x7FC0
    return out


class _TooMany(Exception):
    """The header holds more entries than ``max_tensors`` (raised from inside the JSON parser)."""


def _parse_header(path: Path) -> tuple[dict, int]:
    """The header of the file at ``path``, checked in full, and where its data section starts.

    Every entry is checked before any tensor is read: its dtype is known, its shape holds
    non-negative integers, its ``data_offsets`` are two integers ``0 <= start <= stop`` within the
    data section whose difference is the shape's size in bytes, and no two tensors' byte ranges
    overlap (the format forbids it, and a rewrite of one would change the other). The header is
    at most ``max_header_bytes`` and ``max_tensors`` entries (:mod:`netinit.formats.limits`); the
    JSON parser stops as soon as it has seen more entries, so memory stays bounded by the limit.
    """
    lim = current_limits()
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CorruptFileError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (n,) = struct.unpack("<Q", raw)
        if n == 0 or 8 + n > size:
            raise CorruptFileError(
                f"{path}: corrupt or truncated safetensors file (header of {n} bytes, file of {size})"
            )
        if n > lim.max_header_bytes:
            raise CorruptFileError(
                f"{path}: safetensors header of {n} bytes is over max_header_bytes={lim.max_header_bytes} "
                f"(raise it with {Limits.variable('max_header_bytes')}=N)")
        text = f.read(n)
    objects = 0

    def count(pairs: list) -> dict:
        nonlocal objects
        objects += 1
        if objects > lim.max_tensors + 2:  # each entry is one object; __metadata__ and the header two more
            raise _TooMany
        return dict(pairs)

    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=count)
    except _TooMany:
        raise CorruptFileError(
            f"{path}: safetensors header holds more than max_tensors={lim.max_tensors} entries "
            f"(raise it with {Limits.variable('max_tensors')}=N)") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptFileError(f"{path}: corrupt safetensors header ({type(exc).__name__}: "
                               f"{str(exc)[:120]})") from None
    if not isinstance(header, dict):
        raise CorruptFileError(f"{path}: corrupt safetensors header (not a JSON object)")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise CorruptFileError(f"{path}: corrupt safetensors header (__metadata__ is not a map of strings)")
    data_len = size - 8 - n
    ranges = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise CorruptFileError(f"{path}: corrupt safetensors entry for tensor {name!r}")
        dtype, offsets = entry["dtype"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise CorruptFileError(f"{where} has unknown dtype {str(dtype)[:40]!r}")
        shape = checked_shape(entry["shape"], where)
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise CorruptFileError(f"{where} has data_offsets {str(offsets)[:60]}, not two integers")
        start, stop = offsets
        itemsize = np.dtype(_DTYPES[dtype][1]).itemsize
        if not (0 <= start <= stop) or stop - start != numel(shape) * itemsize:
            raise CorruptFileError(f"{where} has inconsistent data offsets")
        if stop > data_len:
            raise CorruptFileError(
                f"{path}: truncated safetensors file (tensor {name!r} ends at byte {stop} "
                f"of a data section of {data_len})"
            )
        entry["shape"] = list(shape)
        if stop > start:  # an empty tensor overlaps nothing
            ranges.append((start, stop, name))
    ranges.sort()
    end, last = 0, ""
    for start, stop, name in ranges:
        if start < end:
            raise CorruptFileError(f"{path}: tensors {last!r} and {name!r} share bytes (data offsets overlap "
                                   f"at {start}); the safetensors format forbids overlapping tensors")
        end, last = stop, name
    return header, 8 + n


class SafetensorsCheckpoint(Checkpoint):
    """Lazy view of a safetensors file.

    Parameters
    ----------
    path : Path
        The file.
    layout : mapping, optional
        ``{regex: "in_out" | "out_in"}`` (:func:`netinit.formats._layouts.stored_in_out`).
    in_out : mapping, optional
        The tensors stored ``(in, out)`` (name -> reason), already decided by the caller (a
        sharded checkpoint decides over all its shards); ``layout`` is then ignored.
    """

    def __init__(self, path: Path, *, layout: Mapping[str, str] | None = None,
                 in_out: Mapping[str, str] | None = None) -> None:
        header, data_start = _parse_header(path)
        meta = header.get("__metadata__") or {}
        super().__init__(path=path, format="safetensors", metadata=dict(meta))
        self._entries = {k: v for k, v in header.items() if k != "__metadata__"}
        self._data_start = data_start
        self._order = sorted(self._entries, key=lambda k: self._entries[k]["data_offsets"][0])
        if in_out is None:
            in_out = _layouts.stored_in_out(
                {k: tuple(v["shape"]) for k, v in self._entries.items()}, layout, where=str(path))
        self.converted = dict(in_out)

    def names(self) -> list[str]:
        return list(self._order)

    def stored_info(self, name: str) -> TensorInfo:
        """Shape and dtype of tensor ``name`` as stored in the file."""
        e = self._entries[name]
        return TensorInfo(name, tuple(int(d) for d in e["shape"]), _DTYPES[e["dtype"]][0])

    def info(self, name: str) -> TensorInfo:
        info = self.stored_info(name)
        return _layouts.canonical_info(info) if name in self.converted else info

    def byte_range(self, name: str) -> tuple[int, int]:
        """Absolute byte offsets ``[start, stop)`` of tensor ``name`` in the file."""
        start, stop = self._entries[name]["data_offsets"]
        return self._data_start + start, self._data_start + stop

    def _load(self, name: str) -> np.ndarray:
        e = self._entries[name]
        start, stop = self.byte_range(name)
        np_dtype = np.dtype(_DTYPES[e["dtype"]][1])
        arr = np.empty(tuple(e["shape"]), dtype=np_dtype)  # read straight into it: one buffer
        with open(self.path, "rb") as f:
            f.seek(start)
            got = f.readinto(memoryview(arr.reshape(-1)).cast("B"))
        if got != stop - start:
            raise CorruptFileError(f"{self.path}: truncated while reading tensor {name!r}")
        if e["dtype"] == "BF16":
            arr = bf16_bits_to_float32(arr)
        else:
            arr = arr.astype(np_dtype.newbyteorder("="), copy=False)
        return _layouts.to_canonical(arr) if name in self.converted else arr


def encode(info_dtype: str, stored: str, shape: tuple[int, ...], value: np.ndarray, where: str) -> bytes:
    """Bytes of ``value`` in safetensors dtype ``stored`` (little-endian), checking its shape."""
    value = np.asarray(value)
    if tuple(value.shape) != tuple(shape):
        raise ShapeError(f"{where}: replacement has shape {tuple(value.shape)}, stored {tuple(shape)}")
    if stored == "BF16":
        return float32_to_bf16_bits(value).astype("<u2").tobytes()
    if stored.startswith("F8"):
        raise DtypeError(f"{where}: writing {info_dtype} tensors is not supported")
    return np.ascontiguousarray(value, dtype=np.dtype(_DTYPES[stored][1]).newbyteorder("<")).tobytes()


class SafetensorsFormat(Format):
    name = "safetensors"
    description = "safetensors file, read lazily tensor by tensor"
    suffixes = (".safetensors",)
    options = ("layout",)

    def sniff(self, head: bytes, path: Path) -> bool:
        if len(head) < 10:
            return False
        (n,) = struct.unpack("<Q", head[:8])
        return 0 < n < _MAX_HEADER and head[8:9] == b"{"

    def open(self, path: Path, *, layout: Mapping[str, str] | None = None) -> SafetensorsCheckpoint:
        return SafetensorsCheckpoint(path, layout=layout)

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        assert isinstance(ckpt, SafetensorsCheckpoint)
        write_copy(ckpt, replacements, out)


def write_copy(ckpt: SafetensorsCheckpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
    """Copy ``ckpt``'s file to ``out`` and overwrite the bytes of the replaced tensors.

    Replacements are in the layout :meth:`SafetensorsCheckpoint.info` shows; tensors stored
    ``(in, out)`` are transposed back. Memory stays near the largest replacement.
    """
    shutil.copyfile(ckpt.path, out)
    with open(out, "r+b") as f:
        for name, value in replacements.items():
            e = ckpt._entries[name]
            where = f"{ckpt.path}: tensor {name!r}"
            if name in ckpt.converted:
                value = _layouts.to_stored(value, tuple(e["shape"]), where)
            data = encode(ckpt.info(name).dtype, e["dtype"], tuple(e["shape"]), value, where)
            start, _ = ckpt.byte_range(name)
            f.seek(start)
            f.write(data)


FORMAT = SafetensorsFormat()
