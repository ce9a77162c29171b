"""The weight layers of a network: discovery, classification, place, canonical matrix, write-back.

One model of "the weight layers of a network" for checkpoint files and torch modules alike.
:func:`find_layers` takes an open :class:`~netinit.formats.Checkpoint` or a ``torch.nn.Module``
and either makes each weight a :class:`Layer` or reports it as :class:`Skipped` with the reason,
so no tensor disappears silently. Analysis, rewiring (of files and of modules), the diversity
measures and the experiments all find their layers here.

Canonical matrix
----------------
A layer's :meth:`Layer.matrix` is the canonical ``(n_out, n_in)`` view; :meth:`Layer.from_matrix`
inverts it exactly. Both work on numpy arrays and torch tensors.

==========================  =====================  ==========================================
stored tensor               kind                   canonical matrix
==========================  =====================  ==========================================
``(out, in)``               linear / attention     as stored
``(out, in/g, k)``          conv1d                 ``(out, in/g * k)``
``(out, in/g, kh, kw)``     conv2d (``_depthwise``  ``(out, in/g * kh * kw)``
                            when ``in/g = 1``)
``(out, in/g, kd, kh, kw)`` conv3d                 ``(out, in/g * kd * kh * kw)``
``(in, out/g, *k)``         conv_transpose*d       ``(out, in/g * prod(k))``: group ``j``'s block
                                                   ``(in/g, out/g, *k)`` transposed to
                                                   ``(out/g, in/g, *k)``, groups stacked
==========================  =====================  ==========================================

A grouped transposed convolution stores, for input channel ``i`` of group ``j``, the weights to
the ``out/g`` output channels of that group; the row of output channel ``o`` of group ``j`` is
therefore made of the ``(in/g) * prod(k)`` weights of group ``j``'s inputs, so each row holds
exactly the incoming weights of one output neuron (the same rule as an ordinary grouped
convolution, whose rows have ``in/g * prod(k)`` entries). Only a torch module records ``groups``
(``Layer.groups``); a checkpoint file does not, and its transposed convolutions are read with
``groups = 1``, which is the same view when the layer has one group. A torch module's
``transformers`` ``Conv1D`` (GPT-2) stores ``(in, out)``: ``Layer.layout == "in_out"``, shown
transposed (checkpoint readers convert such weights themselves).

Selection
---------
``layers=`` means the same everywhere: ``None`` (every layer), a regular expression searched
(:func:`re.search`) in the layer's name, or a list of names, each a layer name
(``"fc1.weight"``) or the module that holds it (``"fc1"``), selecting exactly those. A layer's
name is its tensor name in a checkpoint and its parameter name (``"fc1.weight"``,
``"attn.in_proj_weight"``) in a module, so a module saved as a state dict has the layers of the
module, with the same names.

Place and order
---------------
Each layer knows its ``block``, ``role`` and ``expert`` (:mod:`netinit.naming`). Layers come in
the order of the model: the module tree for torch modules and files that keep their writing
order (PyTorch state dicts), :func:`netinit.naming.model_order` for files that store names
sorted as strings (safetensors): block 2 before block 10, the head last.

Transposed convolutions cannot be told from ordinary ones by shape in a file; names matching
``transposed=`` (by default ``convtranspose``, ``conv_transpose``, ``deconv``) are treated as
such. A checkpoint that records its layer classes (Keras, Flax) says the kind through
:meth:`~netinit.formats.Checkpoint.kind_hint`, which wins over these guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np

from netinit import validation
from netinit.errors import CorruptFileError, LayerError, NoLayersError, ShapeError
from netinit.formats.base import Checkpoint, TensorInfo
from netinit.naming import block_of, expert_of, is_string_sorted, order_key, role_of
from netinit.quant import Quantized, dequantize

if TYPE_CHECKING:
    import torch

__all__ = ["Layer", "Skipped", "Coverage", "coverage", "find_layers", "weight_modules", "classify", "LayerSelection", "DEFAULT_TRANSPOSED"]

#: What ``layers=`` accepts everywhere: None, a regular expression, or a list of names.
LayerSelection = Union[None, str, Sequence[str]]

DEFAULT_TRANSPOSED = r"(conv_?transpose|deconv)"
_ATTENTION = re.compile(
    r"(^|[._])(q_proj|k_proj|v_proj|o_proj|out_proj|in_proj_weight|query|key|value|qkv|c_attn|"
    r"wq|wk|wv|wo|self_attn|attention|attn)([._]|$)", re.I)
_EMBEDDING = re.compile(
    r"(embed|embedding|embeddings|wte|wpe|tok_embeddings|word_embeddings|position_embeddings|"
    r"token_type_embeddings|pos_emb|token_embd|shared\.weight$|(^|\.)tok_emb\.|(^|\.)emb\.weight$)", re.I)
_NORM = re.compile(r"(norm|^bn\d*|[._]bn\d*[._]|ln_?\d*|layernorm|batchnorm|groupnorm|rmsnorm)", re.I)
_DEPTHWISE = re.compile(r"(depthwise|dwconv|dw_conv|conv_dw|(^|[._])dw([._]|$))", re.I)
_BUFFER = re.compile(r"(running_mean|running_var|num_batches_tracked|position_ids|(^|\.)masked_bias$|"
                     r"attn\.bias$|inv_freq$)")


@dataclass(frozen=True)
class Skipped:
    """A tensor that is not analysed, with the reason."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    reason: str


def _prod(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _swap12(x: Any) -> Any:
    """Axes 1 and 2 swapped, for a numpy array or a torch tensor."""
    return x.swapaxes(1, 2)


@dataclass(frozen=True)
class Layer:
    """One weight layer: where it is stored, where it sits, and how it maps to the canonical matrix.

    Attributes
    ----------
    name : str
        Tensor name in the checkpoint, or parameter name in the module (``"features.0.weight"``).
    kind : str
        ``linear``, ``attention``, ``embedding``, ``conv1d``/``conv2d``/``conv3d`` (with
        ``_depthwise`` when each output sees one input channel), ``conv_transpose1d/2d/3d``.
    shape : tuple of int
        Stored shape.
    dtype : str
        Stored dtype (``float32``, ``bfloat16`` ...).
    block, role, expert
        Place in the network (:mod:`netinit.naming`): block index, role (``attn_q``,
        ``mlp_down``, ``conv``, ``head``, ...) and expert index, each ``None`` where the name
        says nothing.
    groups : int
        Groups of a transposed convolution (1 unless a torch module says otherwise).
    layout : {"out_in", "in_out"}
        Stored orientation of a 2-D weight of a torch module (``in_out``: ``transformers`` Conv1D).
    module : str or None
        Class of the torch module holding the weight (``"Linear"``), None for checkpoint layers.
    tensor_name, index : str or None, int or None
        For one expert of a stacked 3-D expert tensor: the tensor (``...mlp.experts.gate_up_proj``)
        and the expert's index in it; the layer's ``name`` then names the expert
        (``...mlp.experts.3.gate_up_proj``) and ``shape`` is one expert's.
    quant : Quantized or None
        How the stored weight is quantised (:mod:`netinit.quant`); :meth:`tensor` dequantises.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: str
    source: Checkpoint | None = field(default=None, repr=False, compare=False)
    block: int | None = None
    role: str | None = None
    expert: int | None = None
    groups: int = 1
    layout: str = "out_in"
    module: str | None = None
    param: Any = field(default=None, repr=False, compare=False)
    tensor_name: str | None = None
    index: int | None = None
    quant: Quantized | None = None

    @property
    def stored_name(self) -> str:
        """The checkpoint tensor that holds the layer (a stack of experts holds several)."""
        return self.tensor_name or self.name

    @property
    def transposed(self) -> bool:
        return self.kind.startswith("conv_transpose")

    @property
    def n_out(self) -> int:
        if self.transposed:
            return int(self.shape[1]) * self.groups
        return int(self.shape[1] if self.layout == "in_out" else self.shape[0])

    @property
    def n_in(self) -> int:
        return _prod(self.shape) // self.n_out

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return (self.n_out, self.n_in)

    def tensor(self) -> Any:
        """The stored tensor: loaded from the checkpoint, or the module's parameter (a torch tensor).
        A quantised weight comes dequantised (:func:`netinit.quant.dequantize`): float32 of
        :attr:`shape`."""
        if self.param is not None:
            return self.param
        if self.source is None:
            raise LayerError(f"layer {self.name!r} has no checkpoint to load from")
        method = self.quant.method if self.quant is not None else ""
        if self.index is None and not method:
            return self.source.load(self.name)
        cache = self.source.__dict__.setdefault("_netinit_stack", {})  # one stack kept: experts come in order
        t = cache.get(self.stored_name)
        if t is None:
            if method:
                try:
                    t = dequantize(self.quant, self.source.load, self.stored_name, self.dtype)
                except (ShapeError, CorruptFileError) as exc:
                    raise type(exc)(f"{self.source.path}: layer {self.name!r}: {exc}") from None
            else:
                t = self.source.load(self.stored_name)
            cache.clear()
            cache[self.stored_name] = t
        return t if self.index is None else t[self.index]

    def canonical(self, t: Any) -> Any:
        """The canonical ``(n_out, n_in)`` matrix of the stored tensor ``t`` (numpy or torch).

        A view where the layout allows (linear, convolutions), a copy for transposed
        convolutions and ``in_out`` weights. No validation (see :meth:`matrix`).
        """
        if tuple(t.shape) != self.shape:
            raise ShapeError(f"layer {self.name!r}: tensor of shape {tuple(t.shape)}, expected {self.shape}")
        if self.transposed:
            g, k = self.groups, _prod(self.shape[2:])
            blocks = _swap12(t.reshape(g, self.shape[0] // g, self.shape[1], k))
            return blocks.reshape(self.n_out, self.n_in)
        if self.layout == "in_out":
            return t.T
        return t.reshape(self.n_out, self.n_in)

    def matrix(self, tensor: Any = None, *, check_finite: bool = True) -> np.ndarray:
        """The canonical ``(n_out, n_in)`` matrix as a numpy array (a view of ``tensor`` where the
        layout allows).

        Parameters
        ----------
        tensor : ndarray, optional
            The stored tensor; loaded from the checkpoint (or taken from the module, detached,
            on the CPU, bfloat16 as float32) when omitted.
        check_finite : bool, default True
            Raise :class:`~netinit.errors.NonFiniteError` on NaN or infinity.
        """
        t = self.tensor() if tensor is None else tensor
        if validation.is_torch(t):
            t = t.detach().cpu()
            t = (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()
        m = self.canonical(np.asarray(t))
        if check_finite:
            self.check_finite(m)
        return m

    def check_finite(self, m: Any) -> None:
        """Raise :class:`~netinit.errors.NonFiniteError` naming the file and this layer where ``m``
        (its matrix) holds NaN or infinity (the check of :meth:`matrix`)."""
        where = f"{self.source.path}: " if self.source is not None else ""
        validation.check_finite(m, f"{where}layer {self.name!r}")

    def from_matrix(self, m: Any) -> Any:
        """Inverse of :meth:`canonical`: the stored-shape tensor holding canonical matrix ``m``
        (numpy or torch, like ``m``)."""
        if not validation.is_torch(m):
            m = np.asarray(m)
        if tuple(m.shape) != self.matrix_shape:
            raise ShapeError(f"layer {self.name!r}: matrix of shape {tuple(m.shape)}, expected {self.matrix_shape}")
        if self.transposed:
            g, k = self.groups, _prod(self.shape[2:])
            return _swap12(m.reshape(g, self.shape[1], self.shape[0] // g, k)).reshape(self.shape)
        if self.layout == "in_out":
            return m.T
        return m.reshape(self.shape)

    def write_(self, m: "torch.Tensor") -> None:
        """Copy canonical matrix ``m`` into the module's parameter, in place (torch module layers)."""
        if self.param is None:
            raise LayerError(f"layer {self.name!r} belongs to a checkpoint file; save it with save_checkpoint")
        stored = self.from_matrix(m)
        if stored.data_ptr() != self.param.data_ptr():
            self.param.data.copy_(stored)


def _hint_ndim(hint: str) -> int:
    m = re.fullmatch(r"(linear|attention|embedding)|conv(?:_transpose)?([123])d(?:_depthwise)?", hint)
    return -1 if m is None else 2 if m.group(1) else int(m.group(2)) + 2


def classify(info: TensorInfo, *, embeddings: bool = False, transposed: str = DEFAULT_TRANSPOSED,
             hint: str | None = None) -> tuple[str | None, str]:
    """Kind of layer of a tensor, or ``None`` and the reason it is skipped.

    ``hint`` is the kind the checkpoint records (:meth:`Checkpoint.kind_hint`); it is used for
    tensors of its number of dimensions that are not skipped as buffers, biases or vectors.

    Returns
    -------
    (kind, reason) : tuple
        ``kind`` is ``None`` for skipped tensors; ``reason`` then says why.
    """
    name, shape, nd = info.name, info.shape, len(info.shape)
    if _BUFFER.search(name):
        return None, "buffer (running statistics, masks, ids)"
    if not info.is_float:
        return None, f"unsupported dtype {info.dtype} (integer or quantised)"
    if nd == 0:
        return None, "scalar"
    if name.endswith("bias") or name.endswith("_bias"):
        return None, "bias"
    if nd == 1:
        return None, "norm" if _NORM.search(name) else "1-D tensor (a scale or other vector, not a weight matrix)"
    if 0 in shape:
        return None, "empty tensor"
    if hint is not None and _hint_ndim(hint) == nd:
        return (None, "embedding (not asked for)") if hint == "embedding" and not embeddings else (hint, "")
    if nd == 2:
        if _EMBEDDING.search(name):
            return ("embedding", "") if embeddings else (None, "embedding (not asked for)")
        if _ATTENTION.search(name):
            return "attention", ""
        if _NORM.search(name) and min(shape) == 1:
            return None, "norm"
        return "linear", ""
    if nd <= 5:
        if transposed and re.search(transposed, name, re.I):
            return f"conv_transpose{nd - 2}d", ""
        kind = f"conv{nd - 2}d"
        if shape[1] == 1 and _DEPTHWISE.search(name):  # (out, 1, *k) alone may be a 1-channel input
            kind += "_depthwise"
        return kind, ""
    return None, f"{nd}-D tensor (more dimensions than a convolution)"


def _compile(layers: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(layers)
    except re.error as exc:
        raise LayerError(f"invalid layer regex {layers!r} for {what}: {exc}") from None


def _selector(layers: LayerSelection, what: str):
    """``(predicate on a layer name, description)`` of a ``layers=`` value (module docstring)."""
    if layers is None:
        return (lambda name: True), None
    if isinstance(layers, str):
        pattern = _compile(layers, what)
        return (lambda name: bool(pattern.search(name))), f"the layer regex {layers!r}"
    names = list(dict.fromkeys(layers))
    if not names or not all(isinstance(n, str) for n in names):
        raise LayerError(f"layers must be None, a regular expression or a non-empty list of layer names; got {layers!r}")
    wanted = set(names)
    return (lambda name: name in wanted or _module_of(name) in wanted), f"the layer names {names}"


def _module_of(name: str) -> str:
    """The module holding parameter ``name`` (``fc1.weight`` -> ``fc1``; ``attn.in_proj_weight`` -> ``attn``)."""
    return name.rpartition(".")[0]


def find_layers(
    source: Any,
    *,
    layers: LayerSelection = None,
    embeddings: bool = False,
    transposed: str = DEFAULT_TRANSPOSED,
) -> tuple[list[Layer], list[Skipped]]:
    """Weight layers of a checkpoint or a torch module, and every tensor left out, with the reason.

    Parameters
    ----------
    source : Checkpoint or torch.nn.Module
        An open checkpoint (:func:`netinit.load_checkpoint`) or a model.
    layers : None, str or list of str
        Which layers to keep (module docstring, "Selection").
    embeddings : bool, default False
        Include embedding matrices (skipped by default: their "input neurons" are tokens).
    transposed : str
        Regular expression of tensor names that are transposed convolutions (checkpoints only:
        a module says it by its class).

    Returns
    -------
    layers : list of Layer
        In the order of the model (module docstring, "Place and order").
    skipped : list of Skipped
        Every other tensor with its reason: together with ``layers`` it covers the whole file
        (every parameter and buffer of the module).

    Raises
    ------
    NoLayersError
        No tensor, or no weight layer (or none that ``layers`` selects).
    ShapeError
        ``layers`` selects only tensors of fewer than 2 dimensions.
    LayerError
        A bad ``layers``, or a lazy module whose weights are not initialised yet.
    TypeError
        ``source`` is neither a checkpoint nor a torch module.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Conv1d(1, 2, 3))
    >>> found, skipped = find_layers(net)
    >>> [(layer.name, layer.kind, layer.matrix_shape) for layer in found]
    [('0.weight', 'linear', (3, 4)), ('2.weight', 'conv1d', (2, 3))]
    >>> [s.reason for s in skipped]
    ['bias', 'bias']
    """
    if isinstance(source, Checkpoint):
        infos = source.infos()
        if not infos:
            raise NoLayersError(f"{source.path}: the checkpoint holds no tensors")
        if is_string_sorted([i.name for i in infos]):
            infos = sorted(infos, key=lambda i: order_key(i.name))
        where, ckpt = str(source.path), source
        from netinit._checkpoint_layers import checkpoint_tensors

        candidates = checkpoint_tensors(source, infos)
    elif type(source).__module__.startswith("torch") or hasattr(source, "named_modules"):
        from netinit._module_layers import module_tensors

        candidates = module_tensors(source)
        if not candidates:
            raise NoLayersError(f"{type(source).__name__} has no parameters or buffers")
        where, ckpt = type(source).__name__, None
    else:
        raise TypeError(f"find_layers takes a Checkpoint (netinit.load_checkpoint) or a torch.nn.Module; "
                        f"got {type(source).__name__}")
    keep, description = _selector(layers, where)
    found: list[Layer] = []
    skipped: list[Skipped] = []
    matched_low_dim: list[TensorInfo] = []
    matched_skipped: list[Skipped] = []
    every: list[str] = []  # every weight layer, selected or not
    for info, hint, extra in candidates:
        kind, reason = classify(info, embeddings=embeddings, transposed=transposed, hint=hint)
        if kind is not None and extra.get("not_a_layer"):
            kind, reason = None, extra["not_a_layer"]
        if extra.get("skip"):
            kind, reason = None, extra["skip"]
        selected = keep(info.name)
        if kind is not None:
            every.append(info.name)
        if kind is not None and selected:
            stored = extra.get("tensor_name", info.name)
            role = role_of(info.name) if stored != info.name else None  # an expert's own name, then its stack's
            place = {"block": block_of(stored), "role": role or role_of(stored, kind), "expert": expert_of(info.name)}
            fields = {k: v for k, v in extra.items() if k not in ("not_a_layer", "skip", "stored_dtype")}
            found.append(Layer(info.name, kind, info.shape, extra.get("stored_dtype", info.dtype), ckpt,
                               **{**place, **fields}))
            continue
        if kind is not None:
            reason = f"excluded by {description}"
        elif layers is not None and selected:
            if len(info.shape) < 2:
                matched_low_dim.append(info)
            matched_skipped.append(Skipped(info.name, info.shape, info.dtype, reason))
        skipped.append(Skipped(info.name, info.shape, info.dtype, reason))
    if layers is not None and not isinstance(layers, str):  # every name given must be a layer
        chosen = {n for layer in found for n in (layer.name, _module_of(layer.name))}
        why: dict[str, str] = {}
        for s in matched_skipped:
            for n in (s.name, _module_of(s.name)):
                why.setdefault(n, s.reason)
        bad = [f"{n!r} ({why[n]})" if n in why else f"{n!r} (no such tensor or module)"
               for n in dict.fromkeys(layers) if n not in chosen]
        if bad:
            shown = ", ".join(map(repr, every[:12])) + (" ..." if len(every) > 12 else "")
            raise LayerError(f"{where}: not weight layers: {', '.join(bad)}; the weight layers are {shown}")
    if not found:
        if matched_low_dim:
            i = matched_low_dim[0]
            raise ShapeError(
                f"{where}: {description} selects only tensors of fewer than 2 "
                f"dimensions (e.g. {i.name!r} of shape {i.shape}); a weight layer needs 2 or more"
            )
        if matched_skipped:
            s = matched_skipped[0]
            raise NoLayersError(
                f"{where}: {description} matches only tensors that are not weight "
                f"layers (e.g. {s.name!r}: {s.reason})"
            )
        if layers is not None:
            raise NoLayersError(f"{where}: no weight layer matches {description}")
        reasons = sorted({s.reason for s in skipped})
        raise NoLayersError(
            f"{where}: no weight layers among {len(candidates)} tensors (skipped: {'; '.join(reasons)})"
        )
    return found, skipped


def _is_weight_module(m: Any) -> bool:
    import torch.nn as nn

    if isinstance(m, nn.Linear):
        return True
    return isinstance(m, nn.modules.conv._ConvNd) and not m.transposed


def _module_name(layer_name: str) -> str:
    return layer_name[: -len(".weight")] if layer_name.endswith(".weight") else ""


def weight_modules(model: Any, layers: LayerSelection = None) -> dict[str, Any]:
    """The Linear and (non-transposed) Conv modules among the layers of ``model`` that ``layers``
    selects (:func:`find_layers`), by module name, in module order: the modules whose outputs
    are a layer's activations (the diversity measures and the experiments hook them).

    Raises
    ------
    LayerError
        ``layers`` lists a layer held by another module (attention projections, transposed
        convolutions).
    """
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    found, _ = find_layers(model, layers=layers)
    out, other = {}, []
    for layer in found:
        name = _module_name(layer.name)
        m = model.get_submodule(name) if layer.name.endswith("weight") else None
        if m is not None and _is_weight_module(m) and layer.name == (f"{name}.weight" if name else "weight"):
            out[name] = m
        else:
            other.append(f"{layer.name!r} belongs to a {layer.module}, not a Linear or Conv layer")
    if layers is not None and not isinstance(layers, str) and other:
        raise LayerError(f"layers: {'; '.join(other)}")
    return out


@dataclass(frozen=True)
class Coverage:
    """How much of a checkpoint the layers cover (:func:`coverage`)."""

    layers: int
    tensors: int
    tensors_total: int
    parameters: int
    parameters_total: int
    skipped_by_reason: dict[str, int]

    @property
    def share(self) -> float:
        """Share of the parameters in the analysed layers (0 to 1)."""
        return self.parameters / self.parameters_total if self.parameters_total else 0.0

    def text(self) -> str:
        """One line: ``analysed 154 layers in 154 of 201 tensors (97.3% of the parameters); skipped: ...``."""
        skipped = ", ".join(f"{n} {reason}" for reason, n in self.skipped_by_reason.items())
        return (f"analysed {self.layers} layer{'s' * (self.layers != 1)} in {self.tensors} of {self.tensors_total} "
                f"tensors ({100 * self.share:.1f}% of the parameters)" + (f"; skipped: {skipped}" if skipped else ""))

    @classmethod
    def of(cls, n_layers: int, tensors: set[str], parameters: int, skipped: Sequence[Skipped]) -> "Coverage":
        """From the layers' count, the tensors holding them and their parameters, and the skipped tensors."""
        counts: dict[str, int] = {}
        for s in skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        by_reason = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        total = parameters + sum(_prod(s.shape) for s in skipped)
        return cls(n_layers, len(tensors), len(tensors) + len(skipped), parameters, total, by_reason)

    def as_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "tensors": self.tensors, "tensors_total": self.tensors_total,
                "parameters": self.parameters, "parameters_total": self.parameters_total,
                "parameter_share": self.share, "skipped_by_reason": dict(self.skipped_by_reason)}


def coverage(found: Sequence[Layer], skipped: Sequence[Skipped]) -> Coverage:
    """What :func:`find_layers` covered: layers, the tensors holding them (a stack of experts is one
    tensor, several layers), parameters, and the skipped tensors counted by reason (most first)."""
    return Coverage.of(len(found), {layer.stored_name for layer in found}, sum(_prod(layer.shape) for layer in found),
                       skipped)
