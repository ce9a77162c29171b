"""TorchScript archives (``torch.jit.save``), read without running their code.

A TorchScript archive is a zip holding ``<archive>/data.pkl`` (the module tree, pickled),
``<archive>/data/<key>`` (one raw record per tensor storage), ``constants.pkl`` and ``code/``
(the compiled TorchScript source). ``torch.load(weights_only=True)`` refuses it and
``torch.jit.load`` runs the code, so this reader unpickles ``data.pkl`` with a restricted
unpickler that can build nothing but:

- tensors (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``) over storages
  (``torch.FloatStorage`` ...), which become references to ``data/`` records, read lazily;
- the module objects (``__torch__.*`` classes), which become inert stand-ins collecting their
  attributes, and ``collections.OrderedDict``;
- the typed lists of ``torch.jit._pickle`` (``build_intlist`` ...), rebuilt as plain lists.

Any other global (``os.system``, ``builtins.eval``, a quantised tensor) raises
:class:`~netinit.errors.UnsafeCheckpointError` naming it, before anything is called. Tensors are
named by their attribute path (``"0.weight"``, ``"features.3.bias"``), as in
``module.state_dict()``.

The writer copies the archive byte for byte and overwrites the bytes of the storage records that
hold replaced tensors (same size, CRC-32 updated in the local header or data descriptor and the
central directory), so the code, the constants and every other record stay as they were and
``torch.jit.load`` of the result runs the same program with the new weights. Two names that share
one storage (tied weights) are one set of bytes: replacing both writes the later one. A submodule
reachable by two attribute paths is listed under the first.

There is no option to load through ``torch.jit.load``: the restricted reader covers what
``torch.jit.save`` writes for modules, and running an archive's code is never needed to read
its weights.
"""

from __future__ import annotations

import collections
import pickle
import shutil
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit.errors import CorruptFileError, FormatError, UnsafeCheckpointError
from netinit.formats.base import ZIP_ERRORS, Checkpoint, Format, TensorInfo, check_inflation, numel, replacement, zip_entries
from netinit.formats.limits import Limits, current_limits
from netinit.formats.safetensors import bf16_bits_to_float32, float32_to_bf16_bits

__all__ = ["TorchScriptFormat", "TorchScriptCheckpoint", "is_torchscript_archive"]

#: storage classes -> (dtype name, numpy dtype of the raw bytes, little-endian)
_STORAGES = {
    "FloatStorage": ("float32", "<f4"), "DoubleStorage": ("float64", "<f8"),
    "HalfStorage": ("float16", "<f2"), "BFloat16Storage": ("bfloat16", "<u2"),
    "LongStorage": ("int64", "<i8"), "IntStorage": ("int32", "<i4"), "ShortStorage": ("int16", "<i2"),
    "CharStorage": ("int8", "i1"), "ByteStorage": ("uint8", "u1"), "BoolStorage": ("bool", "?"),
    "ComplexFloatStorage": ("complex64", "<c8"), "ComplexDoubleStorage": ("complex128", "<c16"),
}
_MAX_DEPTH = 64


def is_torchscript_archive(entries: list[str]) -> bool:
    """Whether zip entries are those of a TorchScript archive (``constants.pkl`` or ``code/``)."""
    return any(e.endswith("constants.pkl") or "/code/" in e for e in entries)


@dataclass(frozen=True)
class _StorageType:
    dtype: str
    np_dtype: str


@dataclass(frozen=True)
class _Storage:
    key: str
    type: _StorageType
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


class _ScriptObject:
    """Inert stand-in for a ``__torch__.*`` object: its class name and its pickled state."""

    qualname = "__torch__"
    args: tuple = ()
    state: Any = None

    def __init__(self, *args: Any) -> None:  # REDUCE; NEWOBJ calls only __new__
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _as_list(values: Any) -> list:
    return list(values)


def _restore_type_tag(value: Any, _type: Any) -> Any:
    return value


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _as_list,
    ("torch.jit._pickle", "build_doublelist"): _as_list,
    ("torch.jit._pickle", "build_boollist"): _as_list,
    ("torch.jit._pickle", "build_tensorlist"): _as_list,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
}


class _Unpickler(pickle.Unpickler):
    """Builds tensor references, ``__torch__`` stand-ins and plain containers; refuses the rest."""

    def __init__(self, data: bytes, where: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._where = where
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGES:
            return _StorageType(*_STORAGES[name])
        if module == "__torch__" or module.startswith("__torch__."):
            qual = f"{module}.{name}"
            if qual not in self._classes:  # a fresh inert subclass, named for messages only
                self._classes[qual] = type(name, (_ScriptObject,), {"qualname": qual})
            return self._classes[qual]
        raise UnsafeCheckpointError(
            f"{self._where}: data.pkl asks for {module}.{name}, which is not a tensor, storage or "
            f"module record; netinit builds tensors only and ran nothing"
        )

    def persistent_load(self, pid: Any) -> Any:
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        return _Storage(str(pid[2]), pid[1], int(pid[4]))


def _flatten(obj: Any, prefix: tuple, out: dict[str, _TensorRef], seen: set[int], depth: int = 0) -> None:
    """Tensors of the object tree by attribute path.

    Each container is walked once (``seen``): a module shared by two parents is listed under the
    first path, and shared or cyclic references in a crafted pickle cannot make the walk explode.
    """
    if isinstance(obj, _TensorRef):
        out[".".join(map(str, prefix))] = obj
        return
    if depth > _MAX_DEPTH or not isinstance(obj, (_ScriptObject, Mapping, list, tuple)) or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, _ScriptObject):
        _flatten(obj.state, prefix, out, seen, depth + 1)
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, prefix + (k,), out, seen, depth + 1)
    else:
        for i, v in enumerate(obj):
            _flatten(v, prefix + (i,), out, seen, depth + 1)


def _span(ref: _TensorRef) -> int:
    """Number of storage elements the tensor reaches past its offset."""
    if any(s == 0 for s in ref.size):
        return 0
    return 1 + sum((n - 1) * st for n, st in zip(ref.size, ref.stride))


def _misfit(ref: _TensorRef, storage_numel: int) -> str | None:
    """Why the tensor ``ref`` does not lie inside a storage of ``storage_numel`` elements, or ``None``.

    Offset, sizes and strides must be non-negative (a negative offset would count from the end
    of the storage, a negative stride walk before it), there must be one stride per size, and the
    last element reached must be inside the storage. A tensor may repeat storage elements (stride
    0, an expanded tensor) but not have more than ``max_inflation`` times its storage's elements
    beyond ``inflation_floor`` bytes (:mod:`netinit.formats.limits`).
    """
    if ref.offset < 0 or any(n < 0 for n in ref.size) or any(st < 0 for st in ref.stride):
        return f"a negative offset, size or stride (offset {ref.offset}, size {ref.size}, stride {ref.stride})"
    if len(ref.size) != len(ref.stride) or len(ref.size) > 64:
        return f"size {ref.size} and stride {ref.stride} of different lengths"
    if ref.offset + _span(ref) > storage_numel:
        return (f"offset {ref.offset}, size {ref.size} and stride {ref.stride} reach past the "
                f"{storage_numel} elements of its storage")
    lim = current_limits()
    nbytes = numel(ref.size) * np.dtype(ref.storage.type.np_dtype).itemsize
    if nbytes > lim.inflation_floor and numel(ref.size) > lim.max_inflation * max(storage_numel, 1):
        return (f"size {ref.size} repeats its storage of {storage_numel} elements more than max_inflation="
                f"{lim.max_inflation} times (raise it with {Limits.variable('max_inflation')}=N)")
    return None


def _check_memo(data: bytes, where: str) -> None:
    """Refuse a pickle whose memo indexes exceed its length, before :mod:`pickle` allocates a memo.

    A pickler numbers memo entries from 0, one per ``PUT``/``MEMOIZE``, so an index is always
    below the number of opcodes; the C unpickler grows its memo table to the largest index it is
    given (a 5-byte ``LONG_BINPUT`` of 2**32 - 1 asks for 32 GiB). Opcodes are listed by
    :func:`pickletools.genops`, which also refuses truncated arguments and unknown opcodes.
    """
    import pickletools

    memo_ops = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}
    bad = None
    try:
        for op, arg, pos in pickletools.genops(data):
            if op.name in memo_ops and not (isinstance(arg, int) and 0 <= arg < len(data)):
                bad = f"{op.name} memo index {arg} at byte {pos} of a {len(data)}-byte pickle"
                break
            if op.name == "STOP":
                break
    except ValueError as exc:
        bad = " ".join(str(exc).split())[:160]
    if bad is not None:
        raise CorruptFileError(f"{where}: corrupt data.pkl in TorchScript archive ({bad})")


class TorchScriptCheckpoint(Checkpoint):
    """The tensors of a TorchScript archive, read lazily from its storage records."""

    def __init__(self, path: Path) -> None:
        where = str(path)
        try:
            with zipfile.ZipFile(path) as z:
                infos = {i.filename: i for i in z.infolist()}
                pkl = next((n for n in infos if n.endswith("/data.pkl") or n == "data.pkl"), None)
                if pkl is None or not is_torchscript_archive(list(infos)):
                    raise CorruptFileError(f"{path}: not a TorchScript archive (no data.pkl with code/)")
                prefix = pkl[: -len("data.pkl")]
                for info in infos.values():
                    check_inflation(info, path)
                data = z.read(pkl)
                byteorder = z.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in infos else "little"
                version = z.read(prefix + "version").decode().strip() if prefix + "version" in infos else ""
        except CorruptFileError:
            raise
        except ZIP_ERRORS as exc:
            raise CorruptFileError(f"{path}: truncated or corrupt TorchScript archive ({exc})") from None
        if byteorder != "little":
            raise FormatError(f"{path}: TorchScript archive of byte order {byteorder!r}; netinit reads 'little'")
        refs: dict[str, _TensorRef] = {}
        _check_memo(data, where)
        try:
            root = _Unpickler(data, where).load()
            _flatten(root, (), refs, set())
        except UnsafeCheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                KeyError, struct.error, RecursionError) as exc:
            raise CorruptFileError(f"{path}: corrupt data.pkl in TorchScript archive ({exc})") from None
        for name, ref in refs.items():
            record = prefix + "data/" + ref.storage.key
            if record not in infos:
                raise CorruptFileError(f"{path}: tensor {name!r} needs storage record {record!r}, missing")
            itemsize = np.dtype(ref.storage.type.np_dtype).itemsize
            if ref.storage.numel < 0 or infos[record].file_size != ref.storage.numel * itemsize:
                raise CorruptFileError(f"{path}: tensor {name!r} has a storage of {ref.storage.numel} elements "
                                       f"and its record {record!r} holds {infos[record].file_size} bytes")
            why = _misfit(ref, ref.storage.numel)
            if why is not None:
                raise CorruptFileError(f"{path}: tensor {name!r} does not fit its storage record {record!r} "
                                       f"({why})")
        meta = {"archive": prefix.rstrip("/"), "module": getattr(root, "qualname", type(root).__name__)}
        if version:
            meta["version"] = version
        super().__init__(path=path, format="torchscript", metadata=meta)
        self._prefix = prefix
        self._refs = refs

    def names(self) -> list[str]:
        return list(self._refs)

    def info(self, name: str) -> TensorInfo:
        ref = self._refs[name]
        return TensorInfo(name, ref.size, ref.storage.type.dtype)

    def _record(self, ref: _TensorRef) -> str:
        return self._prefix + "data/" + ref.storage.key

    def _storage_array(self, ref: _TensorRef) -> np.ndarray:
        try:
            with zipfile.ZipFile(self.path) as z:
                raw = z.read(self._record(ref))
        except ZIP_ERRORS as exc:
            raise CorruptFileError(f"{self.path}: cannot read storage {ref.storage.key!r} ({exc})") from None
        return np.frombuffer(raw, dtype=ref.storage.type.np_dtype)

    def _view(self, storage: np.ndarray, ref: _TensorRef, *, writeable: bool = False) -> np.ndarray:
        """The tensor ``ref`` as a strided view of ``storage``, its bounds checked again here, at
        the one place that makes a view (reader and writer alike): never a byte outside it."""
        why = _misfit(ref, storage.size)
        if why is not None:
            raise CorruptFileError(f"{self.path}: storage {ref.storage.key!r} does not hold its tensor ({why})")
        if _span(ref) == 0:
            return np.zeros(ref.size, dtype=storage.dtype)
        item = storage.itemsize
        return np.lib.stride_tricks.as_strided(
            storage[ref.offset:], shape=ref.size, strides=tuple(s * item for s in ref.stride),
            writeable=writeable)

    def _load(self, name: str) -> np.ndarray:
        ref = self._refs[name]
        arr = self._view(self._storage_array(ref), ref)
        if ref.storage.type.dtype == "bfloat16":
            return bf16_bits_to_float32(arr)
        return arr.astype(arr.dtype.newbyteorder("="), copy=True)

    def replaced_records(self, replacements: Mapping[str, np.ndarray]) -> dict[str, bytes]:
        """New bytes of every storage record that holds a replaced tensor (same sizes)."""
        by_record: dict[str, list[str]] = {}
        for name in replacements:
            by_record.setdefault(self._record(self._refs[name]), []).append(name)
        out = {}
        for record, names in by_record.items():
            storage = self._storage_array(self._refs[names[0]]).copy()
            for name in names:
                ref = self._refs[name]
                value = replacement(f"{self.path}: tensor {name!r}", replacements[name], ref.size, stored=True)
                if ref.storage.type.dtype == "bfloat16":
                    value = float32_to_bf16_bits(value)
                view = self._view(storage, ref, writeable=True)
                view[...] = value.astype(storage.dtype, copy=False)
            out[record] = storage.tobytes()
        return out


def _patch_records(path: Path, out: Path, records: Mapping[str, bytes]) -> None:
    """Overwrite the data of stored zip records of ``out`` (a copy of ``path``), CRCs included."""
    with zipfile.ZipFile(path) as z:
        infos = {i.filename: i for i in z.infolist()}
        start_dir = z.start_dir
        order = [i.filename for i in z.infolist()]
    with open(out, "r+b") as f:
        crc_at: dict[str, int] = {}
        f.seek(start_dir)  # central directory: one 46-byte record + name + extra + comment each
        for filename in order:
            head = f.read(46)
            if head[:4] != b"PK\x01\x02":
                raise CorruptFileError(f"{path}: corrupt zip central directory")
            nlen, xlen, clen = struct.unpack("<3H", head[28:34])
            crc_at[filename] = f.tell() - 46 + 16
            f.seek(nlen + xlen + clen, 1)
        for record, data in records.items():
            info = infos[record]
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != len(data):
                raise FormatError(f"{path}: storage record {record!r} is compressed or resized; "
                                  f"cannot rewrite it in place")
            f.seek(info.header_offset)
            local = f.read(30)
            sig, _, flag, _, _, _, _, _, _, nlen, xlen = struct.unpack("<4s5H3I2H", local)
            if sig != b"PK\x03\x04":
                raise CorruptFileError(f"{path}: corrupt zip local header for {record!r}")
            data_start = info.header_offset + 30 + nlen + xlen
            crc = struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)
            f.seek(data_start)
            f.write(data)
            if flag & 0x08:  # CRC in the data descriptor after the data (optional signature first)
                desc = f.read(4)
                f.seek(data_start + len(data) + (4 if desc == b"PK\x07\x08" else 0))
            else:
                f.seek(info.header_offset + 14)
            f.write(crc)
            f.seek(crc_at[record])
            f.write(crc)


class TorchScriptFormat(Format):
    name = "torchscript"
    description = "TorchScript archive (torch.jit.save), read without running its code"
    suffixes = (".jit", ".torchscript")

    def sniff(self, head: bytes, path: Path) -> bool:
        names = zip_entries(head, path)
        if names is None:
            return False
        return any(n.endswith("data.pkl") for n in names) and is_torchscript_archive(names)

    def open(self, path: Path) -> TorchScriptCheckpoint:
        return TorchScriptCheckpoint(path)

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        assert isinstance(ckpt, TorchScriptCheckpoint)
        records = ckpt.replaced_records(replacements)  # every check before a byte is written
        shutil.copyfile(ckpt.path, out)
        _patch_records(ckpt.path, out, records)


FORMAT = TorchScriptFormat()
