"""ONNX models (``.onnx``): weights are graph initializers, oriented by the nodes that use them.

Needs the ``onnx`` package (``pip install onnx``), imported only when an ONNX file is read or
written. The protobuf is parsed without its external data; a tensor's values are decoded when it
is loaded, and external data is read from its file by offset and length, one tensor at a time.

Stored tensors are the graph's initializers and the tensors of those ``Constant`` nodes that feed
a layer's weight input (named by the node's output; other constants hold shapes, indices and
initial states). Each is shown in PyTorch layout, decided by the nodes that consume it (through
``Identity``, ``Cast`` and 2-D ``Transpose`` nodes):

=====================================  ====================  ===================================
consumer (weight input)                stored                shown (:meth:`Checkpoint.load`)
=====================================  ====================  ===================================
``Gemm`` B, ``transB=1``               ``(out, in)``         as stored
``Gemm`` B, ``transB=0``               ``(in, out)``         transposed, ``(out, in)``
``MatMul`` B (``x @ W``), 2-D          ``(in, out)``         transposed, ``(out, in)``
``Gemm`` A / ``MatMul`` A (``W @ x``)  ``(out, in)``         as stored (transposed if transA=1)
``Conv``                               ``(out, in/g, *k)``   as stored (PyTorch layout)
``ConvTranspose``                      ``(in, out/g, *k)``   as stored (PyTorch layout)
``LSTM``/``GRU``/``RNN`` W, R          ``(dirs, G*h, n)``    one ``(h, n)`` matrix per direction
                                                             and gate: ``W.gate_i`` (LSTM gates
                                                             ``i o f c``, GRU ``z r h``), with
                                                             ``.forward``/``.reverse`` before the
                                                             gate when bidirectional
``LSTM``/``GRU``/``RNN`` B             ``(dirs, 2*G*h)``     one vector per direction
anything else                          any                   as stored
=====================================  ====================  ===================================

A ``Gemm``/``MatMul`` whose inputs both depend on the graph's inputs multiplies activations
(attention scores) and is no layer. Weights a layer node computes rather than reads (the output
of a ``DequantizeLinear`` or a ``Mul`` of stored data; a ``Conv`` or recurrent weight fed as a
graph input), tensors whose consumers disagree on their orientation,
sparse initializers, initializers inside subgraphs, and float initializers of two or more
dimensions that no layer node uses as its weight (an embedding table read by ``Gather``, a
positional table added by ``Add``) are listed in :attr:`Checkpoint.unmapped` with the nodes
concerned; computed weights, sparse and subgraph tensors are not shown as tensors, the others are
shown as stored.

This module reads the model and the tensors' bytes and writes them back; following the nodes to
the stored tensors and choosing how each is shown (the table above) is
:mod:`netinit.formats._onnx_graph`.

The writer puts replacements back into the same initializers (converted back to the stored
layout and dtype) and keeps everything else: opset, metadata, other initializers, the graph.
External data keeps its layout: each external file is copied beside the output as
``<output name>.data`` (``<output name>.<k>.data`` when the model uses several) with the replaced
byte ranges overwritten, and the output's tensors point at the copies (an existing file of that
name is replaced). Each file is written atomically, the model last, after
``onnx.checker.check_model`` has passed on it; when the check fails (on a model whose input
passes it), nothing is left behind.

Convolution weights carry their kind (:meth:`OnnxCheckpoint.kind_hint`): a ``ConvTranspose``
weight, whose PyTorch layout ``(in, out/g, *k)`` a shape cannot tell from a convolution's, is
``conv_transpose{n}d`` whatever its name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit.errors import CorruptFileError, DtypeError, FormatError
from netinit.formats._onnx_graph import RNN_GATES, Entry, entries_for, find_roles, stored_tensors
from netinit.formats.base import FLOAT_DTYPES, Checkpoint, Format, TensorInfo, checked_shape, numel, replacement
from netinit.formats.safetensors import bf16_bits_to_float32, float32_to_bf16_bits

__all__ = ["OnnxFormat", "OnnxCheckpoint", "RNN_GATES"]

#: ONNX element types read and written: name -> (dtype name, numpy dtype of the stored bytes)
_DTYPES = {
    "FLOAT": ("float32", "<f4"), "DOUBLE": ("float64", "<f8"), "FLOAT16": ("float16", "<f2"),
    "BFLOAT16": ("bfloat16", "<u2"), "INT8": ("int8", "i1"), "UINT8": ("uint8", "u1"),
    "INT16": ("int16", "<i2"), "UINT16": ("uint16", "<u2"), "INT32": ("int32", "<i4"),
    "UINT32": ("uint32", "<u4"), "INT64": ("int64", "<i8"), "UINT64": ("uint64", "<u8"),
    "BOOL": ("bool", "?"),
}
_TYPED_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")


def _onnx(where: Path | str):
    try:
        import onnx
    except ImportError:
        raise FormatError(f"{where}: reading ONNX models needs the onnx package: pip install onnx") from None
    return onnx


def _not_text(model: Any) -> bytes | None:
    """The first name of ``model`` that is not text, or ``None``: protobuf hands back ``bytes`` for
    a string field whose bytes are not UTF-8, as in a damaged file."""
    strings = [p.key for p in model.metadata_props] + [p.value for p in model.metadata_props]
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        strings += [g.name] + [t.name for t in g.initializer] + [v.name for v in (*g.input, *g.output)]
        for node in g.node:
            strings += [node.op_type, node.name, node.domain, *node.input, *node.output]
            for a in node.attribute:
                strings.append(a.name)
                graphs += ([a.g] if a.HasField("g") else []) + list(a.graphs)
    return next((x for x in strings if not isinstance(x, str)), None)


class OnnxCheckpoint(Checkpoint):
    """Lazy view of the weights of an ONNX model."""

    def __init__(self, path: Path) -> None:
        onnx = _onnx(path)
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf DecodeError and friends: the file is damaged
            raise CorruptFileError(f"{path}: truncated or corrupt ONNX model "
                                   f"({type(exc).__name__}: {str(exc)[:160]})") from None
        if not model.HasField("graph") or not model.opset_import:
            raise CorruptFileError(f"{path}: truncated or corrupt ONNX model (no graph or no opset)")
        bad = _not_text(model)
        if bad is not None:
            raise CorruptFileError(f"{path}: truncated or corrupt ONNX model (a name that is not UTF-8 "
                                   f"text: {bad[:40]!r})")
        meta = {p.key: p.value for p in model.metadata_props}
        meta["onnx.ir_version"] = str(model.ir_version)
        meta["onnx.opset_import"] = ",".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import)
        if model.producer_name:
            meta["onnx.producer"] = f"{model.producer_name} {model.producer_version}".strip()
        super().__init__(path=path, format="onnx", metadata=meta)
        self._model = model
        self._base = path.parent
        graph = model.graph
        self._protos, producers, unmapped = stored_tensors(graph)
        for proto in self._protos.values():
            self._check_stored(proto)
        try:
            roles = find_roles(graph, self._protos, producers, unmapped)
        except CorruptFileError as exc:
            raise CorruptFileError(f"{path}: truncated or corrupt ONNX model ({exc})") from None
        initializers = {t.name for t in graph.initializer}
        # Constant nodes hold shapes, indices and initial states as often as weights: only those
        # that feed a layer's weight input are shown
        self._protos = {n: t for n, t in self._protos.items() if n in initializers or n in roles}
        users: dict[str, list[str]] = {}
        for node in graph.node:
            for i in node.input:
                users.setdefault(i, []).append(node.op_type)
        self._entries: dict[str, Entry] = {}
        self._hints: dict[str, str] = {}
        converted: dict[str, str] = {}
        for name, proto in self._protos.items():
            if name not in roles and name not in unmapped and len(proto.dims) >= 2 \
                    and self._dtype(proto)[0] in FLOAT_DTYPES:
                ops = ", ".join(sorted(set(users.get(name, [])))) or "no node"
                unmapped[name] = f"not the weight of a layer node (used by {ops}); shown as stored"
            shape = tuple(int(d) for d in proto.dims)
            for entry in entries_for(name, shape, roles.get(name, []), unmapped, self._hints):
                if entry.name in self._entries:
                    raise CorruptFileError(f"{path}: two tensors would be called {entry.name!r}")
                self._entries[entry.name] = entry
                if entry.note:
                    converted[entry.name] = entry.note
        self.converted = converted
        self.unmapped = unmapped

    # ---- reading the model ------------------------------------------------------------------

    def _dtype(self, proto: Any) -> tuple[str, str | None]:
        import onnx

        kind = onnx.TensorProto.DataType.Name(proto.data_type)
        if kind in _DTYPES:
            return _DTYPES[kind]
        return kind.lower(), None

    def _external(self, proto: Any) -> tuple[Path, int, int | None]:
        info = {e.key: e.value for e in proto.external_data}
        loc = info.get("location")
        if not loc:
            raise CorruptFileError(f"{self.path}: tensor {proto.name!r} has external data without a location")
        target = (self._base / loc).resolve()
        if os.path.isabs(loc) or self._base.resolve() not in target.parents:
            raise FormatError(f"{self.path}: tensor {proto.name!r} points outside the model's folder ({loc!r})")
        try:
            length = int(info["length"]) if "length" in info else None
            offset = int(info.get("offset", 0))
        except ValueError:
            length = offset = -1
        if offset < 0 or (length is not None and length < 0):
            raise CorruptFileError(f"{self.path}: tensor {proto.name!r} has external data at offset "
                                   f"{info.get('offset')!r} of length {info.get('length')!r}, not byte counts")
        return target, offset, length

    def _is_external(self, proto: Any) -> bool:
        import onnx

        return proto.data_location == onnx.TensorProto.EXTERNAL

    def _check_stored(self, proto: Any) -> None:
        """Refuse a tensor whose dims, data or external data do not hold exactly its values."""
        from onnx.helper import tensor_dtype_to_field

        where = f"{self.path}: tensor {proto.name!r}"
        shape = checked_shape(list(proto.dims), where)
        _, np_dtype = self._dtype(proto)
        if np_dtype is None:
            return
        nbytes = numel(shape) * np.dtype(np_dtype).itemsize
        if not self._is_external(proto) and not proto.HasField("raw_data"):
            field = tensor_dtype_to_field(proto.data_type)
            count = len(getattr(proto, field))
            if count != numel(shape):  # also an initializer with no data at all
                raise CorruptFileError(f"{where} of shape {shape} holds {count} values in {field}")
            return
        if self._is_external(proto):
            target, offset, length = self._external(proto)
            if not target.is_file():
                raise CorruptFileError(f"{self.path}: external data file {target.name!r} of tensor "
                                       f"{proto.name!r} is missing")
            if length is not None and length != nbytes:
                raise CorruptFileError(f"{self.path}: tensor {proto.name!r} has external data of {length} "
                                       f"bytes, expected {nbytes}")
            if offset + nbytes > target.stat().st_size:
                raise CorruptFileError(f"{self.path}: external data file {target.name!r} is truncated "
                                       f"(tensor {proto.name!r} ends at byte {offset + nbytes})")
        elif proto.HasField("raw_data") and len(proto.raw_data) != nbytes:
            raise CorruptFileError(f"{self.path}: tensor {proto.name!r} holds {len(proto.raw_data)} bytes, "
                                   f"expected {nbytes}")

    # ---- the Checkpoint interface ---------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._entries)

    def kind_hint(self, name: str) -> str | None:
        """``conv_transpose{1,2,3}d`` for ``ConvTranspose`` weights, ``conv{1,2,3}d`` (with
        ``_depthwise`` for a grouped convolution with one input channel per group) for ``Conv``."""
        return self._hints.get(name)

    def info(self, name: str) -> TensorInfo:
        e = self._entries[name]
        return TensorInfo(name, e.shape, self._dtype(self._protos[e.source])[0])

    def stored_array(self, source: str) -> np.ndarray:
        """The whole stored tensor ``source`` in its stored dtype (bfloat16 as uint16 bits)."""
        from onnx import numpy_helper

        proto = self._protos[source]
        dtype, np_dtype = self._dtype(proto)
        shape = tuple(int(d) for d in proto.dims)
        if np_dtype is None:
            raise DtypeError(f"{self.path}: tensor {source!r} of ONNX type {dtype} is not supported")
        nbytes = numel(shape) * np.dtype(np_dtype).itemsize
        if self._is_external(proto):
            target, offset, _ = self._external(proto)
            with open(target, "rb") as f:
                f.seek(offset)
                buf = f.read(nbytes)
            if len(buf) != nbytes:
                raise CorruptFileError(f"{self.path}: external data of {source!r} is truncated")
            arr = np.frombuffer(buf, dtype=np_dtype)
        elif proto.HasField("raw_data"):
            arr = np.frombuffer(proto.raw_data, dtype=np_dtype)
        else:
            typed = np.asarray(numpy_helper.to_array(proto))
            arr = typed.view(np.uint16) if dtype == "bfloat16" else typed.astype(np_dtype, copy=False)
        return arr.reshape(shape).astype(np.dtype(np_dtype).newbyteorder("="), copy=True)

    def _load(self, name: str) -> np.ndarray:
        e = self._entries[name]
        arr = self.stored_array(e.source)
        if e.index is not None:
            arr = arr[e.index]
        if e.transpose:
            arr = arr.T
        if self.info(name).dtype == "bfloat16":
            arr = bf16_bits_to_float32(arr)
        return np.ascontiguousarray(arr)

    def replaced_sources(self, replacements: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The new stored arrays (stored layout and dtype) of the tensors ``replacements`` touch."""
        out: dict[str, np.ndarray] = {}
        for name, value in replacements.items():
            e = self._entries[name]
            value = replacement(f"{self.path}: tensor {name!r}", value, e.shape)
            if e.source not in out:
                out[e.source] = self.stored_array(e.source)
            stored = out[e.source]
            if self.info(name).dtype == "bfloat16":
                value = float32_to_bf16_bits(value)
            if e.transpose:
                value = value.T
            if e.index is None:
                stored[...] = value.astype(stored.dtype, copy=False)
            else:
                stored[e.index] = value.astype(stored.dtype, copy=False)
        return out


def _check(onnx: Any, written: Path, source: Path) -> None:
    """``onnx.checker.check_model`` on the written model (by path: external data is checked too).

    A model whose input already fails the checker (custom domains, an old IR) is not blamed on
    the rewrite.
    """
    try:
        onnx.checker.check_model(str(written))
    except onnx.checker.ValidationError as exc:
        try:
            onnx.checker.check_model(str(source))
        except onnx.checker.ValidationError:
            return
        raise FormatError(f"{source}: the rewritten model fails onnx.checker "
                          f"({str(exc).strip().splitlines()[0][:200]}); nothing written") from None


def _raw_bytes(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


class OnnxFormat(Format):
    name = "onnx"
    description = "ONNX model; weights are initializers, external data supported"
    suffixes = (".onnx",)
    requires = "onnx"

    def sniff(self, head: bytes, path: Path) -> bool:
        # ModelProto fields in number order: ir_version (1, a small varint), then producer_name,
        # producer_version, domain, model_version, doc_string, graph or opset_import
        return (len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 20
                and head[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42))

    def open(self, path: Path) -> OnnxCheckpoint:
        return OnnxCheckpoint(path)

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        """Write the model to ``out``, its external data files beside it named after ``out``."""
        self.save(ckpt, replacements, out)

    def save(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> Path:
        from netinit._io import atomic_path, check_not_input

        assert isinstance(ckpt, OnnxCheckpoint)
        onnx = _onnx(ckpt.path)
        new = ckpt.replaced_sources(replacements)
        external = [p for p in ckpt._protos.values() if ckpt._is_external(p)]
        files: dict[Path, str] = {}
        for proto in external:
            target = ckpt._external(proto)[0]
            files.setdefault(target, "")
        for k, src in enumerate(files):
            files[src] = f"{out.name}.data" if len(files) == 1 else f"{out.name}.{k}.data"
            check_not_input(out.parent / files[src], ckpt.path, *files)
        check_not_input(out, *files)
        saved = {}
        try:
            for name, proto in ckpt._protos.items():
                if name in new or ckpt._is_external(proto):
                    saved[name] = type(proto)()
                    saved[name].CopyFrom(proto)
                if ckpt._is_external(proto):
                    target = ckpt._external(proto)[0]
                    for e in proto.external_data:
                        if e.key == "location":
                            e.value = files[target]
                elif name in new:
                    for field in _TYPED_FIELDS:
                        proto.ClearField(field)
                    proto.raw_data = _raw_bytes(new[name])
            written: list[Path] = []
            try:
                for src, loc in files.items():
                    with atomic_path(out.parent / loc) as tmp:
                        shutil.copyfile(src, tmp)
                        with open(tmp, "r+b") as f:
                            for name, arr in new.items():
                                if name in saved and ckpt._is_external(saved[name]):
                                    target, offset, _ = ckpt._external(saved[name])
                                    if target == src:
                                        f.seek(offset)
                                        f.write(_raw_bytes(arr))
                    written.append(out.parent / loc)
                with atomic_path(out) as tmp:
                    tmp.write_bytes(ckpt._model.SerializeToString())
                    _check(onnx, tmp, ckpt.path)
            except BaseException:
                for w in written:
                    w.unlink(missing_ok=True)
                raise
        finally:
            for name, proto in saved.items():
                ckpt._protos[name].CopyFrom(proto)
        return out


FORMAT = OnnxFormat()
