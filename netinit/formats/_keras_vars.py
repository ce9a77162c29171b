"""The variables of a Keras HDF5 weights file: where they are, what they are called, how they are laid out.

The reader (:mod:`netinit.formats.keras`) opens the file and calls :func:`keras3_variables` (a
Keras 3 ``.keras`` archive's ``model.weights.h5`` or ``.weights.h5`` file) or
:func:`legacy_variables` (a legacy ``.h5`` file's ``model_weights`` group or root) to walk the
HDF5 groups, then :func:`variable_table` to name each variable ``<layer name>.<variable>`` and
give it its PyTorch layout (an :class:`~netinit.formats._layouts.AxisLayout`) and kind hint. The
conventions (names, layer classes, the table of layouts) are stated once, in the docstring of
:mod:`netinit.formats.keras`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit.errors import CorruptFileError, FormatError
from netinit.formats._layouts import AxisLayout

__all__ = ["KerasVar", "import_h5py", "as_text", "natural_key", "keras3_variables", "legacy_variables",
           "variable_table"]

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


def import_h5py(path: Path) -> Any:
    """The ``h5py`` module, or a :class:`FormatError` naming ``path`` that says to install it."""
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


def as_text(x: Any) -> str:
    """An HDF5 attribute or JSON value as ``str`` (bytes decoded as UTF-8)."""
    return x.decode("utf-8", "backslashreplace") if isinstance(x, bytes) else str(x)


def natural_key(s: str) -> tuple:
    """Sort key that orders the numbers in ``s`` numerically (``vars/2`` before ``vars/10``)."""
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
class KerasVar:
    """One variable: its dataset, netinit name, sort order, stored shape and dtype, PyTorch layout."""

    dataset: str
    name: str
    order: tuple
    shape: tuple[int, ...]
    dtype: str
    layout: _Layout | None
    hint: str | None
    converted: str


def keras3_variables(h5: Any, path: Path, config: Any) -> list[tuple]:
    """(dataset path, names, cls, sub, var, cfg, order) for each Keras 3 variable."""
    h5py = import_h5py(path)
    classes, order = _config_classes(config)
    out: list[tuple] = []

    def visit(group: Any, names: tuple[str, ...], parent_cls: str, depth: int) -> None:
        if depth > 30:
            return
        for key in sorted(group.keys(), key=natural_key):
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
            own = names + (as_text(vg.attrs.get("name", key)),)
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
                              key=natural_key)
            key_order = tuple(order.get(own[:i + 1], 1 << 30) for i in range(len(own)))
            if sub:  # query, key, value, output: the order MultiHeadAttention makes them in
                key_order = key_order[:-1] + ((_MHA_QKV + _MHA_OUT).index(sub) % 3 + 3 * (sub in _MHA_OUT),)
            for k, var in zip(datasets, _var_names(cls, cfg, len(datasets))):
                out.append((f"{vg.name}/{k}", own + (var,), cls, sub, var, cfg, key_order))
            visit(child, own, cls, depth + 1)

    root = h5.get("vars")
    if isinstance(root, h5py.Group):  # variables of the model itself (a subclassed model's add_weight)
        model = as_text(root.attrs.get("name", "model"))
        for k in sorted(root.keys(), key=natural_key):
            out.append((f"/vars/{k}", (model, f"vars.{k}"), "", "", f"vars.{k}", {}, (-1,)))
    visit(h5, (), "", 0)
    return out


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


def legacy_variables(root: Any, path: Path, config: Any) -> list[tuple]:
    """The same tuples as :func:`keras3_variables` for a legacy file's layer groups under ``root``."""
    h5py = import_h5py(path)
    classes, _ = _config_classes(config)
    out: list[tuple] = []
    layer_names = [as_text(x) for x in _attr_list(root, "layer_names")]
    if "top_level_model_weights" in root and "top_level_model_weights" not in layer_names:
        layer_names.append("top_level_model_weights")
    for li, layer in enumerate(layer_names):
        g = root.get(layer)
        if not isinstance(g, h5py.Group):
            continue
        cls, cfg = classes.get((layer,), ("", {}))
        for wi, wn in enumerate(as_text(x) for x in _attr_list(g, "weight_names")):
            if not isinstance(g.get(wn), h5py.Dataset):
                raise CorruptFileError(f"{path}: weight {wn!r} of layer {layer!r} is listed but missing")
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


def variable_table(h5: Any, found: list[tuple]) -> tuple[dict[str, KerasVar], dict[str, str]]:
    """Name -> variable, in file order, and name -> why it is not read, from the walkers' tuples."""
    names = [".".join(t[1]) for t in found]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    result: dict[str, KerasVar] = {}
    unmapped: dict[str, str] = {}
    for (dataset, _, cls, sub, var, cfg, order), name in sorted(
            zip(found, names), key=lambda p: (p[0][6], natural_key(p[0][0]))):
        if counts[name] > 1:
            name = dataset.strip("/").replace("/", ".")
        ds = h5[dataset]
        if ds.dtype.kind == "V" and ds.dtype.itemsize == 2 and as_text(ds.attrs.get("dtype", "")) == "bfloat16":
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
        result[name] = KerasVar(dataset, name, order, shape, dtype, layout, hint, desc)
    return result, unmapped
