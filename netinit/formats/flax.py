"""Flax msgpack checkpoints (``flax.serialization.to_bytes``), read and written without JAX.

A Flax checkpoint is one msgpack object: nested maps (the state dict of a module, a
``TrainState``, ``{"params": ..., "batch_stats": ...}``) whose array leaves are msgpack
extension records. Code 1 is an ``ndarray``, code 3 a numpy scalar; the payload of both is the
msgpack array ``[shape, dtype name, raw C-order bytes]`` (native byte order, little-endian in
practice; ``bfloat16`` by name). Code 2 (a Python ``complex``) is not a tensor. Arrays over 1 GiB
are stored as ``{"__msgpack_chunked_array__": True, "shape": {...}, "chunks": {"0": ..., ...}}``
and are shown here as one tensor.

Reading scans the structure (headers only, never the array bytes) and records where each array's
bytes lie, so listing a file costs no tensor data and :meth:`FlaxCheckpoint.load` reads one array.
The scanner understands the whole msgpack grammar; it needs neither JAX nor the ``msgpack``
package. Writing copies the file and overwrites the replaced arrays' bytes: a replacement keeps
its shape and dtype, so every length and header stays the same, and every other byte of the file
(other arrays, scalars, the optimizer state) is kept; ``save(load(x))`` is byte-identical.

Names and layouts
-----------------
Map keys are joined with ``.`` (``"params.Dense_0.kernel"``; list items by index). Entries named
``opt_state`` or ``optimizer`` (an optax state beside the parameters, as in a ``TrainState``) are
not listed; the writer keeps them unchanged. Scalar leaves (``step``) are shown in
:attr:`FlaxCheckpoint.metadata`.
Leaves named ``kernel`` are shown in PyTorch layout, decided by their shape and module name, so
that ``torch.nn.functional`` computes with them what the Flax module computes:

========================================================  ===========================  ==================
stored ``kernel`` (module)                                shown as                     kind hint
========================================================  ===========================  ==================
``(in, out)`` (``Dense``)                                 ``(out, in)``                (from the name)
``(*k, in/g, out)`` (``Conv``, 1-3 spatial dims)          ``(out, in/g, *k)``          (from the shape)
``(*k, in, out)`` (``ConvTranspose``, ``deconv``)         ``(in, out, *k)``, flipped   conv_transpose{n}d
``(in, heads, head_dim)`` (``query``/``key``/``value``)   ``(heads * head_dim, in)``   attention
``(heads, head_dim, out)`` (``out``)                      ``(out, heads * head_dim)``  attention
========================================================  ===========================  ==================

A transposed kernel is flipped in space because Flax's ``ConvTranspose`` (with its default
``transpose_kernel=False``) correlates where ``torch.nn.functional.conv_transpose2d`` convolves.
The ``query``/``key``/``value``/``out`` rows apply inside an attention module, one whose name
contains ``attention``, ``attn`` or ``mha`` (``MultiHeadDotProductAttention_0``,
``SelfAttention_0``). Other leaves (``embedding``, ``scale``, ``bias``, batch statistics,
parameters of custom modules) are shown as stored. The file does not record module classes: a
``DenseGeneral`` kernel of 3 or more dimensions outside an attention module is read as a ``Conv``
kernel, a grouped ``Conv`` is not marked depthwise, and ``ConvTranspose`` is assumed to use
``transpose_kernel=False``.
"""

from __future__ import annotations

import mmap
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit.errors import CorruptFileError, DtypeError, FormatError
from netinit.formats._layouts import AxisLayout
from netinit.formats.base import Checkpoint, Format, TensorInfo, checked_shape, numel, replacement

__all__ = ["FlaxFormat", "FlaxCheckpoint"]

_EXT_NDARRAY, _EXT_COMPLEX, _EXT_NPSCALAR = 1, 2, 3
_CHUNKED = "__msgpack_chunked_array__"
_MAX_DEPTH = 100
_OPTIMIZER = re.compile(r"^(opt_state|optimizer|optimizer_state|optim_state)$", re.I)
_TRANSPOSED = re.compile(r"(conv_?transpose|deconv)", re.I)
_ATTENTION = re.compile(r"(attention|attn|mha)", re.I)

# msgpack type bytes 0xc0-0xdf: (kind, struct format of the length/value, fixed ext length)
_HEADS: dict[int, tuple[str, str, int]] = {
    0xC0: ("nil", "", 0), 0xC2: ("false", "", 0), 0xC3: ("true", "", 0),
    0xC4: ("bin", ">B", 0), 0xC5: ("bin", ">H", 0), 0xC6: ("bin", ">I", 0),
    0xC7: ("ext", ">B", 0), 0xC8: ("ext", ">H", 0), 0xC9: ("ext", ">I", 0),
    0xCA: ("float", ">f", 0), 0xCB: ("float", ">d", 0),
    0xCC: ("int", ">B", 0), 0xCD: ("int", ">H", 0), 0xCE: ("int", ">I", 0), 0xCF: ("int", ">Q", 0),
    0xD0: ("int", ">b", 0), 0xD1: ("int", ">h", 0), 0xD2: ("int", ">i", 0), 0xD3: ("int", ">q", 0),
    0xD4: ("ext", "", 1), 0xD5: ("ext", "", 2), 0xD6: ("ext", "", 4), 0xD7: ("ext", "", 8),
    0xD8: ("ext", "", 16),
    0xD9: ("str", ">B", 0), 0xDA: ("str", ">H", 0), 0xDB: ("str", ">I", 0),
    0xDC: ("array", ">H", 0), 0xDD: ("array", ">I", 0), 0xDE: ("map", ">H", 0), 0xDF: ("map", ">I", 0),
}


class _Bad(Exception):
    """Malformed msgpack at a byte offset (turned into CorruptFileError with the file name)."""

    def __init__(self, pos: int, what: str) -> None:
        super().__init__(what)
        self.pos, self.what = pos, what


@dataclass(frozen=True)
class _Array:
    """Where one stored array's bytes are: ``(offset, nbytes)`` pieces, in order."""

    code: int
    shape: tuple[int, ...]
    dtype: str
    pieces: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Blob:
    """A str/bin value not decoded (it may be large), or an ext record that is not an array."""

    pos: int


class _Scanner:
    """Decodes msgpack structure from a buffer, leaving array bytes where they are."""

    def __init__(self, buf: Any, end: int) -> None:
        self.buf, self.end = buf, end

    def head(self, pos: int) -> tuple[str, Any, int]:
        """Kind, value (count, length, number, ``(ext code, length)``) and the position after."""
        if pos >= self.end:
            raise _Bad(pos, "runs past the end of the file")
        b = self.buf[pos]
        pos += 1
        if b <= 0x7F:
            return "int", b, pos
        if b <= 0x8F:
            return "map", b & 0x0F, pos
        if b <= 0x9F:
            return "array", b & 0x0F, pos
        if b <= 0xBF:
            return "str", b & 0x1F, pos
        if b >= 0xE0:
            return "int", b - 0x100, pos
        if b not in _HEADS:
            raise _Bad(pos - 1, f"invalid msgpack byte 0x{b:02x}")
        kind, fmt, fixed = _HEADS[b]
        if kind == "ext":
            size = struct.calcsize(fmt) if fmt else 0
            if pos + size + 1 > self.end:
                raise _Bad(pos, "runs past the end of the file")
            length = struct.unpack_from(fmt, self.buf, pos)[0] if fmt else fixed
            code = struct.unpack_from(">b", self.buf, pos + size)[0]
            return "ext", (code, length), pos + size + 1
        if not fmt:
            return kind, {"nil": None, "false": False, "true": True}[kind], pos
        size = struct.calcsize(fmt)
        if pos + size > self.end:
            raise _Bad(pos, "runs past the end of the file")
        return kind, struct.unpack_from(fmt, self.buf, pos)[0], pos + size

    def payload(self, pos: int, length: int) -> int:
        """Position after a payload of ``length`` bytes at ``pos`` (checked against the end)."""
        if pos + length > self.end:
            raise _Bad(pos, f"a value of {length} bytes runs past the end of the file")
        return pos + length

    def value(self, pos: int, depth: int = 0) -> tuple[Any, int]:
        """The object at ``pos`` (maps as dicts, arrays as ``_Array``) and the position after."""
        if depth > _MAX_DEPTH:
            raise _Bad(pos, f"nested more than {_MAX_DEPTH} levels deep")
        start = pos
        kind, val, pos = self.head(pos)
        if kind == "map":
            out: dict[Any, Any] = {}
            for _ in range(val):
                key, pos = self.value(pos, depth + 1)
                if not isinstance(key, (str, int, float, bool, type(None))):
                    raise _Bad(pos, "a map key is not a string or number")
                out[key], pos = self.value(pos, depth + 1)
            return out, pos
        if kind == "array":
            items = []
            for _ in range(val):
                item, pos = self.value(pos, depth + 1)
                items.append(item)
            return items, pos
        if kind == "str":
            stop = self.payload(pos, val)
            if val > 4096:
                return _Blob(start), stop
            return bytes(self.buf[pos:stop]).decode("utf-8", "backslashreplace"), stop
        if kind == "bin":
            return _Blob(start), self.payload(pos, val)
        if kind == "ext":
            code, length = val
            stop = self.payload(pos, length)
            if code in (_EXT_NDARRAY, _EXT_NPSCALAR):
                return self.array(code, pos, stop), stop
            return _Blob(start), stop
        return val, pos

    def array(self, code: int, pos: int, stop: int) -> _Array:
        """The ``[shape, dtype, bytes]`` record of an ndarray/scalar extension in ``[pos, stop)``."""
        inner = _Scanner(self.buf, stop)
        kind, n, p = inner.head(pos)
        if kind != "array" or n != 3:
            raise _Bad(pos, "an array record is not [shape, dtype, data]")
        kind, ndim, p = inner.head(p)
        if kind != "array":
            raise _Bad(p, "an array record's shape is not a list")
        shape = []
        for _ in range(ndim):
            kind, d, p = inner.head(p)
            if kind != "int" or d < 0:
                raise _Bad(p, "an array record's shape holds a non-integer")
            shape.append(int(d))
        kind, n, p = inner.head(p)
        if kind not in ("str", "bin"):
            raise _Bad(p, "an array record's dtype is not a string")
        q = inner.payload(p, n)
        dtype = bytes(self.buf[p:q]).decode("ascii", "replace")
        kind, nbytes, p = inner.head(q)
        if kind != "bin":
            raise _Bad(q, "an array record's data is not binary")
        if inner.payload(p, nbytes) != stop:
            raise _Bad(p, "an array record's length does not match its data")
        try:
            shape = list(checked_shape(shape, "array record"))
        except CorruptFileError as exc:
            raise _Bad(p, str(exc)) from None
        itemsize = _itemsize(dtype)
        if itemsize is not None and numel(shape) * itemsize != nbytes:
            raise _Bad(p, f"an array of shape {tuple(shape)} and dtype {dtype} holds {nbytes} bytes")
        return _Array(code, tuple(shape), dtype, ((p, nbytes),))


#: dtype names netinit reads from a Flax file; any other name (``"V9"``, ``"(1000,)f4"``, ``","``) is a
#: dtype it cannot load, and is never handed to ``np.dtype``, whose parser accepts structured
#: and sub-array specifications (and raises ``SyntaxError`` on some strings)
_ITEMSIZES = {
    "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int8": 1, "int16": 2, "int32": 4, "int64": 8,
    "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8, "bool": 1, "complex64": 8, "complex128": 16,
}


def _itemsize(dtype: str) -> int | None:
    return _ITEMSIZES.get(dtype)


def _np_dtype(dtype: str) -> np.dtype:
    """Little-endian numpy dtype of the stored bytes (``bfloat16`` as its ``uint16`` bits)."""
    return np.dtype("<u2") if dtype == "bfloat16" else np.dtype(dtype).newbyteorder("<")


def _key(k: Any) -> str:
    return k if isinstance(k, str) else str(k)


def _unchunk(d: dict, where: str) -> _Array:
    try:
        shape = tuple(int(d["shape"][str(i)]) for i in range(len(d["shape"])))
        chunks = [d["chunks"][str(i)] for i in range(len(d["chunks"]))]
    except (KeyError, TypeError, ValueError):
        raise CorruptFileError(f"{where}: a chunked array record is malformed") from None
    if not chunks or not all(isinstance(c, _Array) and c.dtype == chunks[0].dtype for c in chunks):
        raise CorruptFileError(f"{where}: a chunked array record is malformed")
    pieces = tuple(p for c in chunks for p in c.pieces)
    itemsize = _itemsize(chunks[0].dtype)
    shape = checked_shape(shape, f"{where}: a chunked array record")
    if itemsize is not None and sum(n for _, n in pieces) != numel(shape) * itemsize:
        raise CorruptFileError(f"{where}: a chunked array's chunks do not fill its shape {shape}")
    return _Array(_EXT_NDARRAY, shape, chunks[0].dtype, pieces)


def _flatten(obj: Any, prefix: tuple[str, ...], arrays: dict, scalars: dict, where: str) -> None:
    if isinstance(obj, dict):
        if obj.get(_CHUNKED) is True:
            arrays[prefix] = _unchunk(obj, where)
            return
        for k, v in obj.items():
            if _OPTIMIZER.match(_key(k)):
                continue
            _flatten(v, prefix + (_key(k),), arrays, scalars, where)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _flatten(v, prefix + (str(i),), arrays, scalars, where)
    elif isinstance(obj, _Array):
        arrays[prefix] = obj
    elif isinstance(obj, (int, float, str, bool)) and prefix:
        scalars[".".join(prefix)] = str(obj)


_Layout = AxisLayout  # stored -> PyTorch layout (netinit.formats._layouts)


def _layout(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[_Layout, str | None, str] | None:
    """PyTorch layout, kind hint and description of a Flax leaf, or ``None`` to show it as stored."""
    n = len(shape)
    if not path or path[-1] != "kernel" or not 2 <= n <= 5:
        return None
    module = path[-2] if len(path) > 1 else ""
    parent = path[-3] if len(path) > 2 else ""
    if n == 2:
        return _Layout((1, 0), (shape[1], shape[0])), None, "flax Dense kernel (in, out)"
    if n == 3 and _ATTENTION.search(parent) and module in ("query", "key", "value"):
        return (_Layout((1, 2, 0), (shape[1] * shape[2], shape[0])), "attention",
                "flax attention DenseGeneral kernel (in, heads, head_dim)")
    if n == 3 and _ATTENTION.search(parent) and module == "out":
        return (_Layout((2, 0, 1), (shape[2], shape[0] * shape[1])), "attention",
                "flax attention DenseGeneral kernel (heads, head_dim, out)")
    space = tuple(range(n - 2))
    if _TRANSPOSED.search(module):
        perm = (n - 2, n - 1) + space
        return (_Layout(perm, tuple(shape[i] for i in perm), tuple(range(2, n))), f"conv_transpose{n - 2}d",
                "flax ConvTranspose kernel (*k, in, out), flipped in space")
    perm = (n - 1, n - 2) + space
    return _Layout(perm, tuple(shape[i] for i in perm)), None, "flax Conv kernel (*k, in, out)"


def _scan(path: Path) -> tuple[Any, int]:
    """The decoded structure of the file (arrays as positions) and its size."""
    size = path.stat().st_size
    if size == 0:
        raise CorruptFileError(f"{path}: the file is empty")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        scanner = _Scanner(buf, size)
        try:
            obj, end = scanner.value(0)
        except _Bad as exc:
            raise CorruptFileError(f"{path}: truncated or corrupt Flax msgpack file ({exc.what}, at byte "
                                   f"{exc.pos} of {size})") from None
    if end != size:
        raise CorruptFileError(f"{path}: corrupt Flax msgpack file ({size - end} bytes after the end "
                               f"of the msgpack object at byte {end})")
    return obj, size


class FlaxCheckpoint(Checkpoint):
    """Lazy view of a Flax msgpack checkpoint (see the module docstring for names and layouts)."""

    def __init__(self, path: Path) -> None:
        obj, _ = _scan(path)
        if not isinstance(obj, dict):
            raise CorruptFileError(f"{path}: not a Flax msgpack checkpoint (the top-level object is a "
                                   f"{type(obj).__name__}, not a map of parameters)")
        arrays: dict[tuple[str, ...], _Array] = {}
        scalars: dict[str, str] = {}
        _flatten(obj, (), arrays, scalars, str(path))
        super().__init__(path=path, format="flax", metadata=scalars)
        self._arrays: dict[str, _Array] = {}
        self._layouts: dict[str, tuple[_Layout, str | None]] = {}
        converted: dict[str, str] = {}
        for key, arr in arrays.items():
            name = ".".join(key)
            if name in self._arrays:
                raise FormatError(f"{path}: two arrays are both named {name!r} (keys containing '.')")
            self._arrays[name] = arr
            found = _layout(key, arr.shape) if _itemsize(arr.dtype) is not None else None
            if found is not None:
                self._layouts[name] = found[:2]
                converted[name] = found[2]
        self.converted = converted

    def names(self) -> list[str]:
        return list(self._arrays)

    def info(self, name: str) -> TensorInfo:
        arr = self._arrays[name]
        shape = self._layouts[name][0].shape if name in self._layouts else arr.shape
        return TensorInfo(name, shape, arr.dtype)

    def kind_hint(self, name: str) -> str | None:
        return self._layouts[name][1] if name in self._layouts else None

    def stored_shape(self, name: str) -> tuple[int, ...]:
        """Shape of tensor ``name`` as stored in the file (Flax layout)."""
        return self._arrays[name].shape

    def byte_ranges(self, name: str) -> list[tuple[int, int]]:
        """Absolute ``[start, stop)`` byte ranges of tensor ``name``'s data in the file."""
        return [(p, p + n) for p, n in self._arrays[name].pieces]

    def _load(self, name: str) -> np.ndarray:
        arr = self._arrays[name]
        if _itemsize(arr.dtype) is None:
            raise DtypeError(f"{self.path}: tensor {name!r} has dtype {arr.dtype}, which netinit cannot load")
        parts = []
        with open(self.path, "rb") as f:
            for pos, n in arr.pieces:
                f.seek(pos)
                buf = f.read(n)
                if len(buf) != n:
                    raise CorruptFileError(f"{self.path}: truncated while reading tensor {name!r}")
                parts.append(buf)
        raw = np.frombuffer(b"".join(parts), dtype=_np_dtype(arr.dtype)).reshape(arr.shape)
        if arr.dtype == "bfloat16":
            from netinit.formats.safetensors import bf16_bits_to_float32

            out = bf16_bits_to_float32(raw)
        else:
            out = raw.astype(raw.dtype.newbyteorder("="))
        return self._layouts[name][0].to_canonical(out) if name in self._layouts else out

    def encode(self, name: str, value: np.ndarray) -> bytes:
        """The stored bytes of a replacement given in the shape :meth:`info` reports."""
        arr = self._arrays[name]
        value = replacement(f"{self.path}: tensor {name!r}", value, self.info(name).shape)
        if _itemsize(arr.dtype) is None:
            raise DtypeError(f"{self.path}: tensor {name!r} has dtype {arr.dtype}, which netinit cannot write")
        if name in self._layouts:
            value = self._layouts[name][0].to_stored(value, arr.shape)
        if arr.dtype == "bfloat16":
            from netinit.formats.safetensors import float32_to_bf16_bits

            return float32_to_bf16_bits(value).astype("<u2").tobytes()
        return np.ascontiguousarray(value, dtype=_np_dtype(arr.dtype)).tobytes()


class FlaxFormat(Format):
    name = "flax"
    description = "Flax msgpack (flax.serialization.to_bytes), no JAX needed"
    suffixes = (".msgpack", ".flax")

    def sniff(self, head: bytes, path: Path) -> bool:
        if not head or not (0x81 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
            return False
        try:
            obj, _ = _scan(path)
        except (CorruptFileError, OSError, ValueError):
            return False
        arrays: dict = {}
        try:
            _flatten(obj, (), arrays, {}, str(path))
        except CorruptFileError:
            return False
        return isinstance(obj, dict) and bool(arrays)

    def open(self, path: Path) -> FlaxCheckpoint:
        return FlaxCheckpoint(path)

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        assert isinstance(ckpt, FlaxCheckpoint)
        encoded = {name: ckpt.encode(name, value) for name, value in replacements.items()}
        shutil.copyfile(ckpt.path, out)
        with open(out, "r+b") as f:
            for name, data in encoded.items():
                at = 0
                for start, stop in ckpt.byte_ranges(name):
                    f.seek(start)
                    f.write(data[at: at + stop - start])
                    at += stop - start


FORMAT = FlaxFormat()
