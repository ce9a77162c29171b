"""Weight layers of a checkpoint: discovery, classification, the canonical matrix and write-back.

:func:`find_layers` goes through every tensor of a :class:`~netinit.formats.Checkpoint` and
either makes it a :class:`Layer` or reports it as skipped with the reason, so no tensor
disappears silently. A layer's :meth:`Layer.matrix` is the canonical ``(n_out, n_in)`` view:

==========================  =====================  ==========================================
stored tensor               kind                   canonical matrix
==========================  =====================  ==========================================
``(out, in)``               linear / attention     as stored
``(out, in/g, k)``          conv1d                 ``(out, in/g * k)``
``(out, in/g, kh, kw)``     conv2d (``_depthwise``  ``(out, in/g * kh * kw)``
                            for ``(out, 1, ...)``
                            named ``dw``, ...)
``(out, in/g, kd, kh, kw)`` conv3d                 ``(out, in/g * kd * kh * kw)``
``(in, out/g, *k)``         conv_transpose*d       ``(out/g, in * prod(k))`` (transposed)
==========================  =====================  ==========================================

Transposed convolutions cannot be told from ordinary ones by shape; names matching
``transposed=`` (by default ``convtranspose``, ``conv_transpose``, ``deconv``) are treated as
such. A checkpoint that records its layer classes (Keras, Flax) says the kind through
:meth:`~netinit.formats.Checkpoint.kind_hint`, which wins over these guesses.
:meth:`Layer.from_matrix` inverts :meth:`Layer.matrix` exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
import numpy as np

from netinit.errors import LayerError, NoLayersError, NonFiniteError, ShapeError
from netinit.formats.base import Checkpoint, TensorInfo

__all__ = ["Layer", "Skipped", "find_layers", "classify", "DEFAULT_TRANSPOSED"]

DEFAULT_TRANSPOSED = r"(conv_?transpose|deconv)"
_ATTENTION = re.compile(
    r"(^|[._])(q_proj|k_proj|v_proj|o_proj|out_proj|in_proj_weight|query|key|value|qkv|c_attn|"
    r"wq|wk|wv|wo|self_attn|attention|attn)([._]|$)", re.I)
_EMBEDDING = re.compile(
    r"(embed|embedding|embeddings|wte|wpe|tok_embeddings|word_embeddings|position_embeddings|"
    r"token_type_embeddings|pos_emb|shared\.weight$|(^|\.)tok_emb\.|(^|\.)emb\.weight$)", re.I)
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


@dataclass(frozen=True)
class Layer:
    """One weight layer: where it is stored and how it maps to the canonical matrix.

    Attributes
    ----------
    name : str
        Tensor name in the checkpoint (``"features.0.weight"``).
    kind : str
        ``linear``, ``attention``, ``embedding``, ``conv1d``/``conv2d``/``conv3d`` (with
        ``_depthwise`` when each output sees one input channel), ``conv_transpose1d/2d/3d``.
    shape : tuple of int
        Stored shape.
    dtype : str
        Stored dtype (``float32``, ``bfloat16`` ...).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: str
    source: Checkpoint | None = field(default=None, repr=False, compare=False)

    @property
    def transposed(self) -> bool:
        return self.kind.startswith("conv_transpose")

    @property
    def n_out(self) -> int:
        return int(self.shape[1] if self.transposed else self.shape[0])

    @property
    def n_in(self) -> int:
        rest = int(np.prod(self.shape, dtype=np.int64)) // self.n_out
        return rest

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return (self.n_out, self.n_in)

    def tensor(self) -> np.ndarray:
        """Load the stored tensor from the checkpoint."""
        if self.source is None:
            raise LayerError(f"layer {self.name!r} has no checkpoint to load from")
        return self.source.load(self.name)

    def matrix(self, tensor: np.ndarray | None = None, *, check_finite: bool = True) -> np.ndarray:
        """The canonical ``(n_out, n_in)`` matrix (a view of ``tensor`` where the layout allows).

        Parameters
        ----------
        tensor : ndarray, optional
            The stored tensor; loaded from the checkpoint when omitted.
        check_finite : bool, default True
            Raise :class:`~netinit.errors.NonFiniteError` on NaN or infinity.
        """
        t = self.tensor() if tensor is None else np.asarray(tensor)
        if tuple(t.shape) != self.shape:
            raise ShapeError(f"layer {self.name!r}: tensor of shape {tuple(t.shape)}, expected {self.shape}")
        if self.transposed:
            k = int(np.prod(self.shape[2:], dtype=np.int64))
            m = t.reshape(self.shape[0], self.shape[1], k).transpose(1, 0, 2).reshape(self.n_out, self.n_in)
        else:
            m = t.reshape(self.n_out, self.n_in)
        if check_finite and not np.isfinite(m).all():
            bad = int(np.count_nonzero(~np.isfinite(m)))
            where = f"{self.source.path}: " if self.source is not None else ""
            raise NonFiniteError(f"{where}layer {self.name!r} holds {bad} NaN or infinite weights")
        return m

    def from_matrix(self, m: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`matrix`: the stored-shape tensor holding canonical matrix ``m``."""
        m = np.asarray(m)
        if tuple(m.shape) != self.matrix_shape:
            raise ShapeError(f"layer {self.name!r}: matrix of shape {tuple(m.shape)}, expected {self.matrix_shape}")
        if self.transposed:
            k = int(np.prod(self.shape[2:], dtype=np.int64))
            return m.reshape(self.shape[1], self.shape[0], k).transpose(1, 0, 2).reshape(self.shape)
        return m.reshape(self.shape)


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


def find_layers(
    ckpt: Checkpoint,
    *,
    layers: str | None = None,
    embeddings: bool = False,
    transposed: str = DEFAULT_TRANSPOSED,
) -> tuple[list[Layer], list[Skipped]]:
    """Weight layers of ``ckpt`` and every tensor left out, with the reason.

    Parameters
    ----------
    ckpt : Checkpoint
        An open checkpoint (:func:`netinit.load_checkpoint`).
    layers : str, optional
        Regular expression (``re.search``) on tensor names: only matching weight layers are kept.
    embeddings : bool, default False
        Include embedding matrices (skipped by default: their "input neurons" are tokens).
    transposed : str
        Regular expression of names that are transposed convolutions.

    Returns
    -------
    layers : list of Layer
        In file order.
    skipped : list of Skipped
        Every other tensor with its reason: together with ``layers`` it covers the whole file.

    Raises
    ------
    NoLayersError
        The checkpoint holds no tensor, or no weight layer (or none matches ``layers``).
    ShapeError
        ``layers`` selects only tensors of fewer than 2 dimensions.
    """
    infos = ckpt.infos()
    if not infos:
        raise NoLayersError(f"{ckpt.path}: the checkpoint holds no tensors")
    pattern = None
    if layers is not None:
        try:
            pattern = re.compile(layers)
        except re.error as exc:
            raise LayerError(f"invalid layer regex {layers!r}: {exc}") from None
    found: list[Layer] = []
    skipped: list[Skipped] = []
    matched_low_dim: list[TensorInfo] = []
    matched_skipped: list[Skipped] = []
    for info in infos:
        kind, reason = classify(info, embeddings=embeddings, transposed=transposed,
                                hint=ckpt.kind_hint(info.name))
        selected = pattern is None or bool(pattern.search(info.name))
        if kind is not None and selected:
            found.append(Layer(info.name, kind, info.shape, info.dtype, ckpt))
            continue
        if kind is not None:
            reason = f"excluded by the layer regex {layers!r}"
        elif pattern is not None and selected:
            if len(info.shape) < 2:
                matched_low_dim.append(info)
            matched_skipped.append(Skipped(info.name, info.shape, info.dtype, reason))
        skipped.append(Skipped(info.name, info.shape, info.dtype, reason))
    if not found:
        if matched_low_dim:
            i = matched_low_dim[0]
            raise ShapeError(
                f"{ckpt.path}: the layer regex {layers!r} selects only tensors of fewer than 2 "
                f"dimensions (e.g. {i.name!r} of shape {i.shape}); a weight layer needs 2 or more"
            )
        if matched_skipped:
            s = matched_skipped[0]
            raise NoLayersError(
                f"{ckpt.path}: the layer regex {layers!r} matches only tensors that are not weight "
                f"layers (e.g. {s.name!r}: {s.reason})"
            )
        if pattern is not None:
            raise NoLayersError(f"{ckpt.path}: no weight layer matches the layer regex {layers!r}")
        reasons = sorted({s.reason for s in skipped})
        raise NoLayersError(
            f"{ckpt.path}: no weight layers among {len(infos)} tensors (skipped: {'; '.join(reasons)})"
        )
    return found, skipped

