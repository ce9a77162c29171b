"""Keras checkpoints: Keras 3 ``.keras`` archives and HDF5 weight files, read with h5py alone.

Three layouts are read (Keras itself is never imported):

* a Keras 3 ``.keras`` archive: a zip holding ``config.json`` (the model's layers and their
  classes), ``metadata.json`` and ``model.weights.h5``, which is read in place from the archive;
* a Keras 3 weights file (``model.save_weights("x.weights.h5")``): the same HDF5 layout, alone;
* a legacy HDF5 file (``model.save("x.h5")``, Keras 2 ``save_weights("x.h5")``): a
  ``model_weights`` group (or the file root) with one group per layer and the attributes
  ``layer_names`` and ``weight_names``, and the model config in the root attribute
  ``model_config`` when the whole model was saved.

This module opens the files and writes them back; walking the HDF5 groups, naming the variables
and choosing their layouts (the Names and Layouts below) is :mod:`netinit.formats._keras_vars`.

Names
-----
Keras 3 stores a layer's variables as ``layers/<class>_<n>/vars/<i>``: the path names the layer's
class and position, not the layer, and the variables are numbered. netinit shows them as
``<layer name>.<variable>`` (``"head.kernel"``, ``"sub.dense.bias"`` for a layer of a nested
model, ``"mha.query.kernel"``, ``"lstm.lstm_cell.recurrent_kernel"``): the layer names are the
``name`` attributes Keras writes on each ``vars`` group, the variable names come from the layer's
class (``kernel``/``bias`` for ``Dense`` and convolutions, ``gamma``/``beta``/``moving_mean``/
``moving_variance`` for ``BatchNormalization``, ...; ``vars.<i>`` for classes not known here).
Legacy files name their weights themselves (``"c1/kernel"`` -> ``"c1.kernel"``). Tensors follow
the model's layer order where the file has a config or ``layer_names``, the HDF5 order otherwise
(a Keras 3 weights file). Optimizer variables are not listed (the writer keeps them unchanged).

Layouts
-------
Layer classes come from the config (``config.json``, ``model_config``) by layer name, else from
the class name in the Keras 3 HDF5 path (``layers/conv2d_transpose_1``), else, for a legacy
weights-only file, from a default layer name (``depthwise_conv2d_3``): a renamed depthwise or
transposed convolution in such a file is read as an ordinary one. Kernels are shown in PyTorch
layout, so that ``torch.nn.functional`` computes with them what the Keras layer computes:

=================================================  ===========================  =====================
Keras class: stored kernel                         shown as                     kind hint
=================================================  ===========================  =====================
``Dense``, RNN cells: ``(in, out)``                ``(out, in)``                (from the name)
``Conv1D/2D/3D``: ``(*k, in/g, out)``              ``(out, in/g, *k)``          (from the shape)
``Conv1D/2D/3DTranspose``: ``(*k, out, in)``       ``(in, out, *k)``            conv_transpose{n}d
``DepthwiseConv1D/2D``: ``(*k, in, m)``            ``(in * m, 1, *k)``          conv{n}d_depthwise
``SeparableConv1D/2D``: both kernels               as depthwise, as conv        conv{n}d_depthwise
``EinsumDense``: by its equation                   ``(prod(out), prod(in))``    (from the name)
``MultiHeadAttention``: ``query``/.../``output``   ``(prod(out), prod(in))``    attention
``Embedding``: ``(vocab, dim)``                    as stored                    embedding
=================================================  ===========================  =====================

Variables of unknown classes are shown as stored (legacy weights named ``kernel`` are taken as
Keras kernels). ``bfloat16`` variables (stored by Keras as 2-byte opaque data with the attribute
``dtype="bfloat16"``) load as float32. Not read: ``.keras`` archives saved with
``weights_format="npz"`` and sharded Keras weights (``model.weights.json``).

Writing
-------
A legacy or weights file is copied and the replaced datasets are overwritten in place: their raw
bytes where the dataset is stored contiguously (every other byte of the file is kept), through
h5py otherwise. A ``.keras`` archive is rebuilt member by member: every member but
``model.weights.h5`` is copied byte for byte, and ``model.weights.h5`` is the original with the
replaced datasets overwritten the same way (copied unchanged when nothing in it is replaced).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
import weakref
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit._io import output_of, temp_beside
from netinit.errors import CorruptFileError, FormatError, NetinitError
from netinit.formats._bounded import bounded_call
from netinit.formats._h5check import check_global_heaps
from netinit.formats._keras_vars import (
    as_text,
    import_h5py,
    keras3_variables,
    legacy_variables,
    variable_table,
)
from netinit.formats.base import ZIP_ERRORS, Checkpoint, Format, TensorInfo, check_inflation, corrupt, replacement, zip_entries
from netinit.formats.limits import Limits, current_limits

__all__ = ["KerasFormat", "KerasCheckpoint"]

_WEIGHTS = "model.weights.h5"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class _Window(io.RawIOBase):
    """A read-only file object over bytes ``[start, start + size)`` of a file (a stored zip member)."""

    def __init__(self, path: Path, start: int, size: int) -> None:
        super().__init__()
        self._f = open(path, "rb")
        self._start, self._size, self._pos = start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), self._size - self._pos))
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(memoryview(b)[:n])
        self._pos += got
        return got

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._f.close()
        super().close()


def _member_start(path: Path, info: zipfile.ZipInfo) -> int:
    """Offset in the file of a stored zip member's data."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise CorruptFileError(f"{path}: corrupt .keras archive (bad local header of {info.filename})")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _h5_source(spec: tuple) -> Any:
    """What ``h5py.File`` opens for a source spec: ``("file", path)`` or ``("window", path, start, size)``."""
    return spec[1] if spec[0] == "file" else _Window(Path(spec[1]), spec[2], spec[3])


def _walk(spec: tuple, path: Path, config: Any, archive: bool, head: bytes) -> tuple:
    """Open the HDF5 file of ``spec`` and list its variables: ``(variables, unmapped, metadata, container)``.

    Run by :func:`netinit.formats._bounded.bounded_call`: this is every HDF5 call that decodes
    attributes, names and group structure (where a damaged file can make HDF5 loop), plus the
    dataset metadata the reader needs later, and a full read of every chunked dataset (its
    B-tree is the other structure HDF5 walks); a contiguous dataset is read later by offset.
    """
    h5py = import_h5py(path)
    source = _h5_source(spec)
    try:
        h5 = h5py.File(source, "r")
    except OSError as exc:
        if archive:
            what = f"{_WEIGHTS} in the .keras archive is truncated or corrupt"
        elif head.startswith(_HDF5_MAGIC):
            what = "truncated or corrupt HDF5 file"
        else:
            what = "neither a .keras archive (zip) nor an HDF5 file"
        raise CorruptFileError(f"{path}: {what} ({' '.join(str(exc).split())[:160]})") from None
    try:
        found, unmapped, metadata, container = _read_vars(h5, path, config)
        for v in found.values():
            ds = h5[v.dataset]
            if ds.chunks is not None or ds.id.get_offset() is None:
                ds[()]
        return found, unmapped, metadata, container
    except NetinitError:
        raise
    except Exception as exc:  # h5py on a damaged file: OSError, RuntimeError, KeyError, TypeError ...
        raise corrupt(path, "corrupt HDF5 structure", exc) from None
    finally:
        h5.close()
        if isinstance(source, _Window):
            source.close()


def _read_vars(h5: Any, path: Path, config: Any) -> tuple:
    metadata: dict[str, str] | None = None
    container = None
    legacy_root = h5 if "layer_names" in h5.attrs or "layer_names0" in h5.attrs else None
    mw = h5.get("model_weights")
    if legacy_root is None and mw is not None and ("layer_names" in mw.attrs or "layer_names0" in mw.attrs):
        legacy_root = mw
        container = "model_weights"
    if legacy_root is not None:
        metadata = {k: as_text(h5.attrs[k]) for k in ("keras_version", "backend") if k in h5.attrs} or \
            {k: as_text(legacy_root.attrs[k]) for k in ("keras_version", "backend") if k in legacy_root.attrs}
        if config is None and "model_config" in h5.attrs:
            try:
                config = json.loads(as_text(h5.attrs["model_config"]))
            except (json.JSONDecodeError, RecursionError) as exc:
                raise CorruptFileError(f"{path}: corrupt model_config attribute ({exc})") from None
        found = legacy_variables(legacy_root, path, config)
    elif "vars" in h5 or "layers" in h5 or "_layer_checkpoint_dependencies" in h5:
        found = keras3_variables(h5, path, config)
    else:
        raise FormatError(f"{path}: an HDF5 file that is not a Keras model or weights file (no "
                          f"'layers' or 'vars' groups, no 'layer_names' attribute)")
    result, unmapped = variable_table(h5, found)
    return result, unmapped, metadata, container


class KerasCheckpoint(Checkpoint):
    """Lazy view of a Keras file (see the module docstring for names and layouts).

    HDF5 can loop forever on a damaged file, in C code that nothing else can interrupt. The one
    loop known (a global-heap object whose size was changed) is refused before HDF5 runs
    (:mod:`netinit.formats._h5check`); against the loops not known, the HDF5 structure is walked
    once in a child process stopped after ``h5_timeout`` seconds (:mod:`netinit.formats.limits`).
    Checking all of HDF5's structures first would need a second HDF5 parser; the bound covers any
    loop. The reader's own handle then reads only datasets, by the paths the walk found.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path=path, format="keras")
        h5py = import_h5py(path)
        self._handles: list[Any] = []
        self._tmp: str | None = None
        self.archive = False
        config: Any = None
        with open(path, "rb") as f:
            head = f.read(8)
        is_zip = head[:4] == b"PK\x03\x04"
        try:
            if is_zip:
                self.archive = True
                config, spec = self._open_archive(path)
            else:
                spec = ("file", str(path))
            check_global_heaps(Path(spec[1]), *spec[2:], where=path)  # the known HDF5 loop, refused up front
            lim = current_limits()
            walk = lambda: _walk(spec, path, config, self.archive, head)  # noqa: E731
            # the walk reads metadata and chunked datasets: it needs memory of the order of the
            # file, and HDF5 allocates what damaged length fields declare: cap it at twice the
            # HDF5 file's size plus h5_memory
            memory = 2 * (spec[3] if spec[0] == "window" else Path(spec[1]).stat().st_size) + lim.h5_memory
            self._vars, self.unmapped, metadata, container = walk() if lim.h5_timeout == 0 else bounded_call(
                walk, path, timeout=lim.h5_timeout, what="reading the HDF5 structure",
                variable=Limits.variable("h5_timeout"), memory=memory)
            if metadata is not None:
                self.metadata = metadata
            if container is not None:
                self.container = container
            source = _h5_source(spec)
            if isinstance(source, _Window):
                self._handles.append(source)
            try:
                self._h5 = h5py.File(source, "r")
            except OSError as exc:
                raise corrupt(path, "truncated or corrupt HDF5 file", exc) from None
            self._handles.append(self._h5)
            if not self._vars:
                what = f"its {_WEIGHTS}" if self.archive else "the HDF5 file"
                raise FormatError(f"{path}: {what} holds no weights (a model saved before it was built?)")
        except BaseException:
            self.close()
            raise
        self.converted = {v.name: v.converted for v in self._vars.values() if v.layout is not None}

    # -- opening -------------------------------------------------------------------------------

    def _open_archive(self, path: Path) -> tuple[Any, tuple]:
        try:
            z = zipfile.ZipFile(path)
            names = z.namelist()
        except ZIP_ERRORS as exc:
            raise CorruptFileError(f"{path}: truncated or corrupt .keras archive ({exc})") from None
        with z:
            if _WEIGHTS not in names:
                other = "model.weights.npz, which netinit does not read; save with the default h5 weights" \
                    if "model.weights.npz" in names else f"only {', '.join(names) or 'nothing'}"
                raise FormatError(f"{path}: the .keras archive holds no weights ({_WEIGHTS} missing; it holds "
                                  f"{other})")
            for info in z.infolist():
                check_inflation(info, path)
            config = None
            try:
                if "config.json" in names:
                    config = json.loads(z.read("config.json"))
                if "metadata.json" in names:
                    meta = json.loads(z.read("metadata.json"))
                    if isinstance(meta, dict):
                        self.metadata = {k: as_text(v) for k, v in meta.items()}
            except ZIP_ERRORS + (RecursionError,) as exc:  # JSONDecodeError is a ValueError
                raise CorruptFileError(f"{path}: corrupt config.json or metadata.json in the .keras archive "
                                       f"({type(exc).__name__}: {str(exc)[:160]})") from None
            info = z.getinfo(_WEIGHTS)
            self.container = _WEIGHTS
            if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1:
                return config, ("window", str(path), _member_start(path, info), info.file_size)
            fd, self._tmp = tempfile.mkstemp(prefix="netinit-keras-", suffix=".h5")
            weakref.finalize(self, Path(self._tmp).unlink, missing_ok=True)
            try:
                with os.fdopen(fd, "wb") as out, z.open(info) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            except ZIP_ERRORS as exc:  # bad deflate stream, unsupported compression, encryption, CRC
                raise CorruptFileError(f"{path}: {_WEIGHTS} in the archive is truncated or corrupt "
                                       f"({type(exc).__name__}: {str(exc)[:160]})") from None
            return config, ("file", self._tmp)

    # -- reading -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._vars)

    def info(self, name: str) -> TensorInfo:
        v = self._vars[name]
        return TensorInfo(name, v.layout.shape if v.layout is not None else v.shape, v.dtype)

    def kind_hint(self, name: str) -> str | None:
        return self._vars[name].hint

    def dataset(self, name: str) -> str:
        """Path of tensor ``name``'s dataset in the HDF5 file (``/layers/dense/vars/0``)."""
        return self._vars[name].dataset

    def stored_shape(self, name: str) -> tuple[int, ...]:
        """Shape of tensor ``name`` as stored (Keras layout)."""
        return self._vars[name].shape

    def _load(self, name: str) -> np.ndarray:
        v = self._vars[name]
        try:
            raw = self._h5[v.dataset][()]
        except (OSError, ValueError) as exc:
            raise CorruptFileError(f"{self.path}: tensor {name!r} is truncated or corrupt ({exc})") from None
        if v.dtype == "bfloat16":
            from netinit.formats.safetensors import bf16_bits_to_float32

            arr = bf16_bits_to_float32(np.asarray(raw).view("<u2"))
        else:
            arr = np.asarray(raw)
            arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
        return v.layout.to_canonical(arr) if v.layout is not None else arr

    def encode(self, name: str, value: np.ndarray) -> np.ndarray:
        """A replacement given in the shape :meth:`info` reports, in the stored layout and dtype.

        ``bfloat16`` tensors come back as their ``uint16`` bit patterns.
        """
        v = self._vars[name]
        value = replacement(f"{self.path}: tensor {name!r}", value, self.info(name).shape)
        if v.layout is not None:
            value = v.layout.to_stored(value, v.shape)
        if v.dtype == "bfloat16":
            from netinit.formats.safetensors import float32_to_bf16_bits

            return float32_to_bf16_bits(value).astype("<u2")
        return np.ascontiguousarray(value, dtype=self._h5[v.dataset].dtype)

    def close(self) -> None:
        for h in reversed(self.__dict__.get("_handles", [])):
            try:
                h.close()
            except (OSError, ValueError):  # a handle already closed
                pass
        self.__dict__["_handles"] = []
        if self.__dict__.get("_tmp"):
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None


def _patch_h5(ckpt: KerasCheckpoint, values: Mapping[str, np.ndarray], h5_path: Path) -> None:
    """Overwrite the replaced datasets of the HDF5 file ``h5_path`` (a copy of the checkpoint's)."""
    h5py = import_h5py(ckpt.path)
    direct: list[tuple[int, bytes]] = []
    other: dict[str, np.ndarray] = {}
    src = ckpt._h5
    for name, value in values.items():
        ds = src[ckpt.dataset(name)]
        offset = ds.id.get_offset()
        if offset is not None and src.userblock_size == 0 and ds.id.get_storage_size() == value.nbytes:
            direct.append((offset, value.tobytes()))
        else:
            other[ckpt.dataset(name)] = value
    with open(h5_path, "r+b") as f:
        for offset, data in direct:
            f.seek(offset)
            f.write(data)
    if other:
        with h5py.File(h5_path, "r+") as dst:
            for dataset, value in other.items():
                ds = dst[dataset]
                ds[...] = value.view(ds.dtype) if ds.dtype.kind == "V" else value


def _clone(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    z = zipfile.ZipInfo(info.filename, date_time=info.date_time)
    z.compress_type, z.comment = info.compress_type, info.comment
    z.create_system, z.external_attr = info.create_system, info.external_attr
    return z


class KerasFormat(Format):
    name = "keras"
    description = "Keras 3 .keras / .weights.h5, legacy Keras .h5"
    suffixes = (".keras", ".h5", ".hdf5")
    requires = "h5py"

    def sniff(self, head: bytes, path: Path) -> bool:
        if head.startswith(_HDF5_MAGIC):
            return True
        entries = zip_entries(head, path)
        if entries is None:
            return False
        names = set(entries)
        return _WEIGHTS in names or {"config.json", "metadata.json"} <= names

    def open(self, path: Path) -> KerasCheckpoint:
        return KerasCheckpoint(path)

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        assert isinstance(ckpt, KerasCheckpoint)
        values = {name: ckpt.encode(name, value) for name, value in replacements.items()}
        if not ckpt.archive:
            shutil.copyfile(ckpt.path, out)
            _patch_h5(ckpt, values, out)
            return
        try:
            _write_archive(ckpt, values, out)
        except NetinitError:
            raise
        except ZIP_ERRORS as exc:  # a member whose bytes fail their CRC shows only when copied whole
            raise CorruptFileError(f"{ckpt.path}: the .keras archive is corrupt ({exc})") from None


def _write_archive(ckpt: KerasCheckpoint, values: Mapping[str, np.ndarray], out: Path) -> None:
    """The archive of ``ckpt`` with ``values`` patched into its weights file, to ``out``."""
    with zipfile.ZipFile(ckpt.path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            big = info.file_size >= zipfile.ZIP64_LIMIT
            if info.filename != _WEIGHTS or not values:
                with src.open(info) as r, dst.open(_clone(info), "w", force_zip64=big) as w:
                    shutil.copyfileobj(r, w, 1 << 20)
                continue
            tmp = temp_beside(output_of(out))  # removed by the next write of the output if killed
            try:
                with open(tmp, "wb") as w, src.open(info) as r:
                    shutil.copyfileobj(r, w, 1 << 20)
                _patch_h5(ckpt, values, Path(tmp))
                with open(tmp, "rb") as r, dst.open(_clone(info), "w", force_zip64=big) as w:
                    shutil.copyfileobj(r, w, 1 << 20)
            finally:
                Path(tmp).unlink(missing_ok=True)


FORMAT = KerasFormat()
