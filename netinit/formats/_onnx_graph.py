"""The graph walk of an ONNX model: which stored tensors are layer weights, and how each is shown.

The reader (:class:`netinit.formats.onnx.OnnxCheckpoint`) parses the model, then calls
:func:`stored_tensors` to collect the graph's initializers and ``Constant`` values (and the
sparse and subgraph tensors it does not read), :func:`find_roles` to follow each layer node's
weight inputs back through ``Identity``, ``Cast`` and 2-D ``Transpose`` nodes to the stored tensor
they read, and :func:`entries_for` to turn each stored tensor into the tensors it is shown as
(transposed, or one matrix per direction and gate of a recurrent weight). The conventions (the
table of consumers and layouts, what is listed as unmapped) are stated once, in the docstring of
:mod:`netinit.formats.onnx`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Mapping

from netinit.errors import CorruptFileError

__all__ = ["RNN_GATES", "Entry", "Role", "stored_tensors", "find_roles", "entries_for"]

#: gate order of the ONNX recurrent operators' stacked W, R and B
RNN_GATES = {"LSTM": ("i", "o", "f", "c"), "GRU": ("z", "r", "h"), "RNN": ("h",)}
_PASS_THROUGH = ("Identity", "Cast")


@dataclass(frozen=True)
class Entry:
    """A shown tensor: ``stored[index]``, transposed when ``transpose``."""

    name: str
    source: str
    index: tuple | None
    transpose: bool
    shape: tuple[int, ...]
    note: str = ""


@dataclass(frozen=True)
class Role:
    """How a layer node uses a stored tensor as its weight."""

    kind: str  # "out_in", "in_out", "torch" (conv layouts), "rnn_W", "rnn_R", "rnn_B"
    op: str
    node: str
    hidden: int = 0
    group: int = 1


def _attr(node: Any, name: str, default: Any) -> Any:
    """Attribute ``name`` of ``node``, of the type of ``default`` (an int, or a list of ints)."""
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            ok = isinstance(value, int) if isinstance(default, int) else \
                isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value)
            if not ok:
                raise CorruptFileError(f"attribute {name!r} of {_node_label(node)} is {value!r}, not "
                                       f"{'an integer' if isinstance(default, int) else 'a list of integers'}")
            return value
    return default


def _node_label(node: Any) -> str:
    return f"{node.op_type} node {node.name or (node.output[0] if node.output else '(no output)')!r}"


def _weight_slots(node: Any) -> list[tuple[int, str]]:
    """(input index, layout) of the weight inputs of a layer node; alternatives first-wins."""
    op = node.op_type
    if op == "Gemm":
        return [(1, "out_in" if _attr(node, "transB", 0) else "in_out"),
                (0, "in_out" if _attr(node, "transA", 0) else "out_in")]
    if op == "MatMul":
        return [(1, "in_out"), (0, "out_in")]
    if op in ("Conv", "ConvTranspose"):
        return [(1, "torch")]
    if op in RNN_GATES:
        return [(1, "rnn_W"), (2, "rnn_R"), (3, "rnn_B")]
    return []


def stored_tensors(graph: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The graph's stored tensors by name, the node producing each value, and the tensors not read.

    Stored: the initializers, then the ``value`` tensors of ``Constant`` nodes (named by the
    node's output). Not read (returned with the reason): sparse constants, sparse initializers and
    initializers inside subgraphs.
    """
    protos: dict[str, Any] = {t.name: t for t in graph.initializer}
    producers: dict[str, Any] = {}
    unmapped: dict[str, str] = {}
    for node in graph.node:
        for o in node.output:
            producers[o] = node
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and node.output and node.output[0] not in protos:
                    protos[node.output[0]] = a.t
                elif a.name == "sparse_value":
                    unmapped[node.output[0]] = f"sparse tensor of {_node_label(node)}; not read"
    for sp in graph.sparse_initializer:
        unmapped[sp.values.name] = "sparse initializer; not read"
    for node in graph.node:
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                for t in g.initializer:
                    unmapped[t.name] = f"initializer inside a subgraph of {_node_label(node)}; not read"
    return protos, producers, unmapped


def _source(value: str, stored: Collection[str],
            producers: Mapping[str, Any]) -> tuple[str | None, bool, str]:
    """Follow ``value`` back to a stored tensor: (name or None, flipped by a Transpose, reason)."""
    flipped = False
    seen = 0
    while value not in stored:
        node = producers.get(value)
        if node is None:
            return None, flipped, "is a graph input (fed at run time, not stored)"
        if node.op_type in _PASS_THROUGH or (node.op_type == "Transpose" and seen < 64):
            if node.op_type == "Transpose":
                perm = list(_attr(node, "perm", []))
                if perm not in ([], [1, 0]):
                    return None, flipped, f"comes from {_node_label(node)} with perm {perm}"
                flipped = not flipped
            value = node.input[0]
            seen += 1
            continue
        return None, flipped, f"is computed by {_node_label(node)}, not stored"
    return value, flipped, ""


def find_roles(graph: Any, stored: Collection[str], producers: Mapping[str, Any],
               unmapped: dict[str, str]) -> dict[str, list[Role]]:
    """The roles of each stored tensor that layer nodes read as their weight.

    A weight input that is not stored (a graph input, a computed value, a Transpose of more than
    two axes) is added to ``unmapped`` with the reason, as is a stored tensor that reaches a
    non-matrix weight input through a Transpose.
    """
    # values that depend on stored data only (nodes are topologically sorted in ONNX)
    constant = set(stored)
    for node in graph.node:
        if node.input and all(not i or i in constant for i in node.input):
            constant.update(node.output)
    roles: dict[str, list[Role]] = {}
    for node in graph.node:
        slots = [(i, k) for i, k in _weight_slots(node) if i < len(node.input) and node.input[i]]
        if node.op_type in ("Gemm", "MatMul"):
            # the weight is B, or A when only A is data; activation x activation (attention
            # scores) is no layer at all
            slots = [next(((i, k) for i, k in slots if node.input[i] in constant), None)]
            if slots[0] is None:
                continue
        use = [(i, k, *_source(node.input[i], stored, producers)) for i, k in slots]
        for i, kind, src, flipped, reason in use:
            if src is None:
                unmapped[node.input[i]] = f"weight input {i} of {_node_label(node)} {reason}"
                continue
            if flipped:
                if kind not in ("out_in", "in_out"):
                    unmapped[src] = f"reaches {_node_label(node)} through a Transpose; shown as stored"
                    continue
                kind = "in_out" if kind == "out_in" else "out_in"
            hidden = _attr(node, "hidden_size", 0) if kind.startswith("rnn") else 0
            group = _attr(node, "group", 1) if kind == "torch" else 1
            roles.setdefault(src, []).append(Role(kind, node.op_type, _node_label(node), hidden, group))
    return roles


def entries_for(name: str, shape: tuple[int, ...], roles: list[Role], unmapped: dict[str, str],
                hints: dict[str, str]) -> list[Entry]:
    """The tensors the stored tensor ``name`` of ``shape`` is shown as, given its ``roles``.

    Tensors shown as stored for a reason (consumers that disagree, a batched ``MatMul``, a
    recurrent weight of an unexpected shape) are added to ``unmapped``; the kind of a convolution
    weight is put in ``hints``.
    """
    as_stored = [Entry(name, name, None, False, shape)]
    if not roles:
        return as_stored
    first = roles[0]
    if any((r.kind, r.op, r.hidden) != (first.kind, first.op, first.hidden) for r in roles[1:]):
        other = next(r for r in roles[1:] if (r.kind, r.op, r.hidden) != (first.kind, first.op, first.hidden))
        unmapped[name] = (f"used as {first.kind} by {first.node} and as {other.kind} by {other.node}; "
                          f"shown as stored")
        return as_stored
    if first.kind in ("out_in", "in_out"):
        if len(shape) != 2:
            if first.op == "MatMul" and len(shape) > 2:
                unmapped[name] = f"{len(shape)}-D weight of {first.node} (batched MatMul); shown as stored"
            return as_stored
        if first.kind == "out_in":
            return as_stored
        return [Entry(name, name, None, True, (shape[1], shape[0]),
                      f"onnx {first.op}: stored (in, out) {shape}, shown transposed")]
    if first.kind == "torch":
        if 3 <= len(shape) <= 5:
            n = len(shape) - 2
            if first.op == "ConvTranspose":
                hints[name] = f"conv_transpose{n}d"
            else:
                hints[name] = f"conv{n}d" + ("_depthwise" if first.group > 1 and shape[1] == 1 else "")
        return as_stored
    gates = RNN_GATES[first.op]
    dirs = shape[0] if shape else 0
    width = {"rnn_W": len(gates), "rnn_R": len(gates), "rnn_B": 2 * len(gates)}[first.kind]
    h = first.hidden
    ok = dirs in (1, 2) and h > 0 and (
        (first.kind == "rnn_B" and len(shape) == 2 and shape[1] == width * h)
        or (first.kind != "rnn_B" and len(shape) == 3 and shape[1] == width * h))
    if not ok:
        unmapped[name] = (f"{first.kind[4:]} of {first.node} has shape {shape}, not "
                          f"(directions, {width}*hidden_size{', n' if first.kind != 'rnn_B' else ''}); "
                          f"shown as stored")
        return as_stored
    out = []
    for d in range(dirs):
        base = name + ({0: ".forward", 1: ".reverse"}[d] if dirs == 2 else "")
        if first.kind == "rnn_B":
            out.append(Entry(base, name, (d,), False, (shape[1],),
                             f"onnx {first.op} B: direction {d} of {shape}"))
            continue
        for g, gate in enumerate(gates):
            gname = base + (f".gate_{gate}" if len(gates) > 1 else "")
            out.append(Entry(gname, name, (d, slice(g * h, (g + 1) * h)), False, (h, shape[2]),
                             f"onnx {first.op} {first.kind[4:]}: direction {d}, gate {gate} "
                             f"(rows {g * h}:{(g + 1) * h}) of {shape}"))
    return out
