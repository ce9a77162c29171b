"""Keras checkpoints: Keras 3 ``.keras`` archives and HDF5 weight files, read with h5py alone.

Three layouts are read (Keras itself is never imported):

* a Keras 3 ``.keras`` archive: a zip holding ``config.json`` (the model's layers and their
  classes), ``metadata.json`` and ``model.weights.h5``, which is read in place from the archive;
* a Keras 3 weights file (``model.save_weights("x.weights.h5")``): the same HDF5 layout, alone;
* a legacy HDF5 file (``model.save("x.h5")``, Keras 2 ``save_weights("x.h5")``): a
  ``model_weights`` group (or the file root) with one group per layer and the attributes
  ``layer_names`` and ``weight_names``, and the model config in the root attribute
  ``model_config`` when the whole model was saved.

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
import re
import shutil
import struct
import tempfile
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit.errors import CorruptFileError, FormatError, ShapeError
from netinit.formats._layouts import AxisLayout
from netinit.formats.base import Checkpoint, Format, TensorInfo, zip_entries

__all__ = ["KerasFormat", "KerasCheckpoint"]

_WEIGHTS = "model.weights.h5"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CONTAINERS = re.compile(r"^(layers|_layer_checkpoint_dependencies|container(_\d+)?)$")
_OPTIMIZER = re.compile(r"(optimizer|optim)", re.I)
_CONV = re.compile(r"^conv([123])d$")
_TRANSPOSE = re.compile(r"^conv([123])d_transpose$")
_DEPTHWISE = re.compile(r"^depthwise_conv([12])d$")
_SEPARABLE = re.compile(r"^separable_conv([12])d$")
_MHA_QKV = ("query", "key", "value", "query_dense", "key_dense", "value_dense")
_MHA_OUT = ("attention_output", "output_dense")
#: variables of a layer class in Keras 3's ``vars/<i>`` order
_VARS: dict[str, tuple[str, ...]] = {
    "dense": ("kernel", "bias"), "einsum_dense": ("kernel", "bias"), "embedding": ("embeddings",),
    "multi_head_attention": ("kernel", "bias"),  # its query/key/value/output EinsumDense layers
    "lstm_cell": ("kernel", "recurrent_kernel", "bias"), "gru_cell": ("kernel", "recurrent_kernel", "bias"),
    "simple_rnn_cell": ("kernel", "recurrent_kernel", "bias"),
    "batch_normalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "layer_normalization": ("gamma", "beta"),
}


def _h5py(path: Path) -> Any:
    try:
        import h5py
    except ImportError:
        raise FormatError(f"{path}: reading Keras files needs h5py; pip install h5py") from None
    return h5py


def _snake(name: str) -> str:
    """Keras' ``to_snake_case`` (``Conv2DTranspose`` -> ``conv2d_transpose``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _known(cls: str) -> bool:
    return cls in _VARS or any(r.match(cls) for r in (_CONV, _TRANSPOSE, _DEPTHWISE, _SEPARABLE))


def _text(x: Any) -> str:
    return x.decode("utf-8", "backslashreplace") if isinstance(x, bytes) else str(x)


def _natural(s: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


_Layout = AxisLayout  # stored -> PyTorch layout (netinit.formats._layouts)


def _matrix(shape: tuple[int, ...], in_axes: tuple[int, ...]) -> _Layout:
    out_axes = tuple(i for i in range(len(shape)) if i not in in_axes)
    n_out = int(np.prod([shape[i] for i in out_axes], dtype=np.int64))
    n_in = int(np.prod([shape[i] for i in in_axes], dtype=np.int64))
    return _Layout(out_axes + in_axes, (n_out, n_in))


def _einsum_in_axes(equation: Any, ndim: int) -> tuple[int, ...] | None:
    """Kernel axes contracted with the input in an ``EinsumDense`` equation (``"ab,bc->ac"``)."""
    m = re.fullmatch(r"\s*([a-z]+)\s*,\s*([a-z]+)\s*->\s*([a-z]+)\s*", str(equation))
    if m is None or len(m.group(2)) != ndim:
        return None
    axes = tuple(i for i, ch in enumerate(m.group(2)) if ch in m.group(1) and ch not in m.group(3))
    return axes if axes and len(axes) < ndim else None


def _layout(cls: str, sub: str, var: str, shape: tuple[int, ...],
            cfg: Mapping[str, Any]) -> tuple[_Layout, str | None, str] | None:
    """PyTorch layout, kind hint and description of one variable, or ``None`` to show it as stored."""
    n = len(shape)
    if n < 2:
        return None
    space = tuple(range(n - 2))
    if cls == "embedding":
        return None
    if var == "depthwise_kernel" or (var == "kernel" and _DEPTHWISE.match(cls)):
        perm = (n - 2, n - 1) + space
        return (_Layout(perm, (shape[n - 2] * shape[n - 1], 1) + shape[:n - 2]), f"conv{n - 2}d_depthwise",
                f"keras {cls} {var} (*k, in, multiplier)")
    if cls == "multi_head_attention" and var == "kernel" and n >= 3 and sub in _MHA_QKV + _MHA_OUT:
        in_axes = (0,) if sub in _MHA_QKV else (0, 1)
        return _matrix(shape, in_axes), "attention", f"keras MultiHeadAttention {sub} kernel (einsum)"
    if cls == "einsum_dense" and var == "kernel":
        in_axes = _einsum_in_axes(cfg.get("equation"), n)
        if in_axes is None:
            return None
        return _matrix(shape, in_axes), None, f"keras EinsumDense kernel ({cfg.get('equation')})"
    if var not in ("kernel", "pointwise_kernel", "recurrent_kernel") or n > 5:
        return None
    if var == "kernel" and _TRANSPOSE.match(cls):
        perm = (n - 1, n - 2) + space
        return _Layout(perm, tuple(shape[i] for i in perm)), f"conv_transpose{n - 2}d", \
            f"keras {cls} kernel (*k, out, in)"
    if n == 2:
        return _Layout((1, 0), (shape[1], shape[0])), None, f"keras {cls or 'layer'} {var} (in, out)"
    perm = (n - 1, n - 2) + space
    return _Layout(perm, tuple(shape[i] for i in perm)), None, f"keras {cls or 'layer'} {var} (*k, in, out)"


def _var_names(cls: str, cfg: Mapping[str, Any], count: int) -> list[str]:
    """Names of a layer's ``count`` numbered variables (``vars.<i>`` when the class is unknown)."""
    table: tuple[str, ...] = ()
    if cls in _VARS:
        table = _VARS[cls]
        if cls in ("batch_normalization", "layer_normalization"):
            table = tuple(v for v in table if not (v == "gamma" and cfg.get("scale") is False)
                          and not (v == "beta" and cfg.get("center") is False))
    elif _SEPARABLE.match(cls):
        table = ("depthwise_kernel", "pointwise_kernel", "bias")
    elif _CONV.match(cls) or _TRANSPOSE.match(cls) or _DEPTHWISE.match(cls):
        table = ("kernel", "bias")
    if table and count == len(table) - 1 and table[-1] == "bias":
        table = table[:-1]
    if count < len(table):
        table = ()
    return [table[i] if i < len(table) else f"vars.{i}" for i in range(count)]


def _config_classes(config: Any) -> tuple[dict[tuple[str, ...], tuple[str, dict]], dict[tuple[str, ...], int]]:
    """Layer name path -> (snake class, layer config), and its position, from a model config."""
    classes: dict[tuple[str, ...], tuple[str, dict]] = {}
    order: dict[tuple[str, ...], int] = {}

    def walk(model_cfg: Any, prefix: tuple[str, ...], depth: int) -> None:
        layers = model_cfg.get("layers") if isinstance(model_cfg, dict) else None
        if not isinstance(layers, list) or depth > 20:
            return
        for i, entry in enumerate(layers):
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                continue
            name = entry["config"].get("name", entry.get("name"))
            if not isinstance(name, str):
                continue
            key = prefix + (name,)
            classes[key] = (_snake(str(entry.get("class_name", ""))), entry["config"])
            order[key] = i
            walk(entry["config"], key, depth + 1)

    if isinstance(config, dict):
        walk(config.get("config"), (), 0)
    return classes, order


@dataclass(frozen=True)
class _Var:
    dataset: str
    name: str
    order: tuple
    shape: tuple[int, ...]
    dtype: str
    layout: _Layout | None
    hint: str | None
    converted: str


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


class KerasCheckpoint(Checkpoint):
    """Lazy view of a Keras file (see the module docstring for names and layouts)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path=path, format="keras")
        h5py = _h5py(path)
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
                config, source = self._open_archive(path)
            else:
                source = str(path)
            try:
                self._h5 = h5py.File(source, "r")
            except OSError as exc:
                if self.archive:
                    what = f"{_WEIGHTS} in the .keras archive is truncated or corrupt"
                elif head.startswith(_HDF5_MAGIC):
                    what = "truncated or corrupt HDF5 file"
                else:
                    what = "neither a .keras archive (zip) nor an HDF5 file"
                raise CorruptFileError(f"{path}: {what} ({exc})") from None
            self._handles.append(self._h5)
            self._vars = self._read_vars(config)
            if not self._vars:
                what = f"its {_WEIGHTS}" if self.archive else "the HDF5 file"
                raise FormatError(f"{path}: {what} holds no weights (a model saved before it was built?)")
        except BaseException:
            self.close()
            raise
        self.converted = {v.name: v.converted for v in self._vars.values() if v.layout is not None}

    # -- opening -------------------------------------------------------------------------------

    def _open_archive(self, path: Path) -> tuple[Any, Any]:
        try:
            z = zipfile.ZipFile(path)
            names = z.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CorruptFileError(f"{path}: truncated or corrupt .keras archive ({exc})") from None
        with z:
            if _WEIGHTS not in names:
                other = "model.weights.npz, which netinit does not read; save with the default h5 weights" \
                    if "model.weights.npz" in names else f"only {', '.join(names) or 'nothing'}"
                raise FormatError(f"{path}: the .keras archive holds no weights ({_WEIGHTS} missing; it holds "
                                  f"{other})")
            config = None
            try:
                if "config.json" in names:
                    config = json.loads(z.read("config.json"))
                if "metadata.json" in names:
                    meta = json.loads(z.read("metadata.json"))
                    if isinstance(meta, dict):
                        self.metadata = {k: _text(v) for k, v in meta.items()}
            except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CorruptFileError(f"{path}: corrupt config.json or metadata.json in the .keras archive "
                                       f"({exc})") from None
            info = z.getinfo(_WEIGHTS)
            self.container = _WEIGHTS
            if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1:
                source: Any = _Window(path, _member_start(path, info), info.file_size)
            else:
                fd, self._tmp = tempfile.mkstemp(prefix="netinit-keras-", suffix=".h5")
                weakref.finalize(self, Path(self._tmp).unlink, missing_ok=True)
                try:
                    with os.fdopen(fd, "wb") as out, z.open(info) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise CorruptFileError(f"{path}: {_WEIGHTS} in the archive is truncated or corrupt "
                                           f"({exc})") from None
                source = self._tmp
        if isinstance(source, _Window):
            self._handles.append(source)
        return config, source

    def _read_vars(self, config: Any) -> dict[str, _Var]:
        h5 = self._h5
        legacy_root = h5 if "layer_names" in h5.attrs or "layer_names0" in h5.attrs else None
        mw = h5.get("model_weights")
        if legacy_root is None and mw is not None and ("layer_names" in mw.attrs or "layer_names0" in mw.attrs):
            legacy_root = mw
            self.container = "model_weights"
        if legacy_root is not None:
            self.metadata = {k: _text(h5.attrs[k]) for k in ("keras_version", "backend") if k in h5.attrs} or \
                {k: _text(legacy_root.attrs[k]) for k in ("keras_version", "backend") if k in legacy_root.attrs}
            if config is None and "model_config" in h5.attrs:
                try:
                    config = json.loads(_text(h5.attrs["model_config"]))
                except json.JSONDecodeError as exc:
                    raise CorruptFileError(f"{self.path}: corrupt model_config attribute ({exc})") from None
            found = self._legacy_vars(legacy_root, config)
        elif "vars" in h5 or "layers" in h5 or "_layer_checkpoint_dependencies" in h5:
            found = self._keras3_vars(config)
        else:
            raise FormatError(f"{self.path}: an HDF5 file that is not a Keras model or weights file (no "
                              f"'layers' or 'vars' groups, no 'layer_names' attribute)")
        return self._finish(found)

    def _keras3_vars(self, config: Any) -> list[tuple]:
        """(dataset path, names, cls, sub, var, cfg, order) for each Keras 3 variable."""
        h5py = _h5py(self.path)
        classes, order = _config_classes(config)
        out: list[tuple] = []

        def visit(group: Any, names: tuple[str, ...], parent_cls: str, depth: int) -> None:
            if depth > 30:
                return
            for key in sorted(group.keys(), key=_natural):
                child = group.get(key, getlink=False)
                if key == "vars" or not isinstance(child, h5py.Group) or (depth == 0 and _OPTIMIZER.search(key)):
                    continue
                if _CONTAINERS.match(key):
                    visit(child, names, parent_cls, depth + 1)
                    continue
                vg = child.get("vars")
                if not isinstance(vg, h5py.Group):
                    visit(child, names, parent_cls, depth + 1)
                    continue
                own = names + (_text(vg.attrs.get("name", key)),)
                cls, cfg = classes.get(own, ("", {}))
                sub = ""
                if parent_cls == "multi_head_attention" and key in _MHA_QKV + _MHA_OUT:
                    cls, sub = "multi_head_attention", key
                elif not _known(cls):
                    for guess in (re.sub(r"_\d+$", "", key), re.sub(r"_\d+$", "", own[-1])):
                        if _known(guess) or guess == "multi_head_attention":
                            cls = guess
                            break
                datasets = sorted((k for k in vg.keys() if isinstance(vg.get(k, getlink=False), h5py.Dataset)),
                                  key=_natural)
                key_order = tuple(order.get(own[:i + 1], 1 << 30) for i in range(len(own)))
                if sub:  # query, key, value, output: the order MultiHeadAttention makes them in
                    key_order = key_order[:-1] + ((_MHA_QKV + _MHA_OUT).index(sub) % 3 + 3 * (sub in _MHA_OUT),)
                for k, var in zip(datasets, _var_names(cls, cfg, len(datasets))):
                    out.append((f"{vg.name}/{k}", own + (var,), cls, sub, var, cfg, key_order))
                visit(child, own, cls, depth + 1)

        root = self._h5.get("vars")
        if isinstance(root, h5py.Group):  # variables of the model itself (a subclassed model's add_weight)
            model = _text(root.attrs.get("name", "model"))
            for k in sorted(root.keys(), key=_natural):
                out.append((f"/vars/{k}", (model, f"vars.{k}"), "", "", f"vars.{k}", {}, (-1,)))
        visit(self._h5, (), "", 0)
        return out

    def _legacy_vars(self, root: Any, config: Any) -> list[tuple]:
        h5py = _h5py(self.path)
        classes, _ = _config_classes(config)
        out: list[tuple] = []
        layer_names = [_text(x) for x in _attr_list(root, "layer_names")]
        if "top_level_model_weights" in root and "top_level_model_weights" not in layer_names:
            layer_names.append("top_level_model_weights")
        for li, layer in enumerate(layer_names):
            g = root.get(layer)
            if not isinstance(g, h5py.Group):
                continue
            cls, cfg = classes.get((layer,), ("", {}))
            for wi, wn in enumerate(_text(x) for x in _attr_list(g, "weight_names")):
                if not isinstance(g.get(wn), h5py.Dataset):
                    raise CorruptFileError(f"{self.path}: weight {wn!r} of layer {layer!r} is listed but missing")
                parts = [re.sub(r":\d+$", "", p) for p in wn.split("/")]
                if len(parts) > 1 and parts[0] == layer:
                    parts = parts[1:]
                var, sub = parts[-1], parts[-2] if len(parts) > 1 else ""
                c, sub_cfg = cls, cfg
                if sub and (layer, sub) in classes:
                    c, sub_cfg = classes[(layer, sub)]
                elif not _known(c) and c != "multi_head_attention":
                    guess = re.sub(r"_\d+$", "", sub or layer)
                    c = guess if _known(guess) else c
                out.append((g[wn].name, (layer, *parts), c, sub, var, sub_cfg, (li, wi)))
        return out

    def _finish(self, found: list[tuple]) -> dict[str, _Var]:
        names = [".".join(t[1]) for t in found]
        counts: dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        result: dict[str, _Var] = {}
        unmapped: dict[str, str] = {}
        for (dataset, _, cls, sub, var, cfg, order), name in sorted(
                zip(found, names), key=lambda p: (p[0][6], _natural(p[0][0]))):
            if counts[name] > 1:
                name = dataset.strip("/").replace("/", ".")
            ds = self._h5[dataset]
            if ds.dtype.kind == "V" and ds.dtype.itemsize == 2 and _text(ds.attrs.get("dtype", "")) == "bfloat16":
                dtype = "bfloat16"
            elif ds.dtype.kind in "biufc" and ds.shape is not None:
                dtype = ds.dtype.name
            else:
                unmapped[name] = f"dataset {dataset} of dtype {ds.dtype} is not a numeric array"
                continue
            shape = tuple(int(d) for d in ds.shape)
            found_layout = _layout(cls, sub, var, shape, cfg)
            layout, hint, desc = found_layout if found_layout is not None else (None, None, "")
            if hint is None and cls == "embedding" and len(shape) == 2:
                hint = "embedding"
            result[name] = _Var(dataset, name, order, shape, dtype, layout, hint, desc)
        self.unmapped = unmapped
        return result

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
        value = np.asarray(value)
        want = self.info(name).shape
        if tuple(value.shape) != want:
            raise ShapeError(f"{self.path}: tensor {name!r} replacement has shape {tuple(value.shape)}, "
                             f"expected {want}")
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


def _attr_list(group: Any, name: str) -> list:
    """An attribute Keras may split into ``name0``, ``name1``, ... when it is large."""
    if name in group.attrs:
        return list(np.atleast_1d(group.attrs[name])) if np.size(group.attrs[name]) else []
    out: list = []
    i = 0
    while f"{name}{i}" in group.attrs:
        out.extend(np.atleast_1d(group.attrs[f"{name}{i}"]))
        i += 1
    return out


def _patch_h5(ckpt: KerasCheckpoint, values: Mapping[str, np.ndarray], h5_path: Path) -> None:
    """Overwrite the replaced datasets of the HDF5 file ``h5_path`` (a copy of the checkpoint's)."""
    h5py = _h5py(ckpt.path)
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
        with zipfile.ZipFile(ckpt.path) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                big = info.file_size >= zipfile.ZIP64_LIMIT
                if info.filename != _WEIGHTS or not values:
                    with src.open(info) as r, dst.open(_clone(info), "w", force_zip64=big) as w:
                        shutil.copyfileobj(r, w, 1 << 20)
                    continue
                fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".h5", dir=out.parent)
                try:
                    with os.fdopen(fd, "wb") as w, src.open(info) as r:
                        shutil.copyfileobj(r, w, 1 << 20)
                    _patch_h5(ckpt, values, Path(tmp))
                    with open(tmp, "rb") as r, dst.open(_clone(info), "w", force_zip64=big) as w:
                        shutil.copyfileobj(r, w, 1 << 20)
                finally:
                    Path(tmp).unlink(missing_ok=True)


FORMAT = KerasFormat()
