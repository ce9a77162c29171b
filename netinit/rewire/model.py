r"""PA rewiring of every weight layer of a torch model, in place: :func:`rewire_model_`.

Layers rewired: the ``weight`` of every ``nn.Linear`` (``MultiheadAttention.out_proj``
included), ``nn.Conv1d/2d/3d`` and ``nn.ConvTranspose1d/2d/3d``, and the input projections of
``nn.MultiheadAttention`` (``in_proj_weight``, or ``q/k/v_proj_weight`` when the key and value
sizes differ). A parameter shared by several modules is rewired once.

Orientation (the one place it is handled). Rewiring works on the canonical ``(n_out, n_in)``
matrix:

===========================  ===========================  ====================================
module                       stored weight                canonical matrix
===========================  ===========================  ====================================
Linear, attention            ``(out, in)``                as stored
Conv{1,2,3}d                 ``(out, in/g, *k)``          ``(out, in/g * prod(k))`` (reshape)
ConvTranspose{1,2,3}d        ``(in, out/g, *k)``          ``(out, in/g * prod(k))``: group
                                                          ``g``'s block ``(in/g, out/g, *k)``
                                                          transposed to ``(out/g, in/g, *k)``
===========================  ===========================  ====================================

The transposed-convolution matrix is a copy, rewired and written back through the inverse
permutation, so each output channel's row holds the weights from its group's input channels.

Streams. Layer ``name`` (the parameter's name, ``"features.0.weight"``) gets a
``torch.Generator`` on the weight's device seeded from
:func:`netinit._rng.layer_seed_sequence` ``(seed, name)``, so its result does not depend on
which other layers are rewired; stabilisation (if asked) and both passes draw from it in turn.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from netinit._rng import layer_seed_sequence
from netinit.errors import LayerError, NoLayersError
from netinit.rewire._checks import check_passes, check_tensor, matrix_shape
from netinit.rewire._cpu import plan_stacks
from netinit.rewire.pa import _cpu_in_place, _rewire_stack_, pa_rewire_
from netinit.rewire.stabilize import Initializer, _best_of, _check_k, resolve_initializer, strength_variances

__all__ = ["rewire_model_", "COLUMNS"]

#: Columns of the table :func:`rewire_model_` returns.
COLUMNS = (
    "layer",
    "module",
    "shape",
    "in_strength_var_before",
    "in_strength_var_after",
    "out_strength_var_before",
    "out_strength_var_after",
    "ratio_in",
    "ratio_out",
)


@dataclass
class _Weight:
    name: str  # parameter name, e.g. "encoder.attn.in_proj_weight"
    module_name: str
    module_type: str
    param: Any
    transposed_groups: int  # 0 for (out, ...) layouts; the groups of a ConvTranspose otherwise
    default_init: Callable[[Any, Any], None]


def _kaiming_default(t: Any, generator: Any) -> None:  # nn.Linear / nn.ConvNd reset_parameters
    import torch

    torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=generator)


def _xavier_default(t: Any, generator: Any) -> None:  # nn.MultiheadAttention._reset_parameters
    import torch

    torch.nn.init.xavier_uniform_(t, generator=generator)


def _find_weights(model: Any) -> list[_Weight]:
    import torch.nn as nn

    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    convt = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    found: list[_Weight] = []
    seen: set[int] = set()

    def add(mname: str, mod: Any, attr: str, groups: int, init: Callable) -> None:
        p = getattr(mod, attr, None)
        if p is None or isinstance(p, nn.parameter.UninitializedParameter) or id(p) in seen:
            return
        seen.add(id(p))
        name = f"{mname}.{attr}" if mname else attr
        found.append(_Weight(name, mname, type(mod).__name__, p, groups, init))

    for mname, mod in model.named_modules():
        if isinstance(mod, (nn.Linear,) + conv):
            add(mname, mod, "weight", 0, _kaiming_default)
        elif isinstance(mod, convt):
            add(mname, mod, "weight", int(mod.groups), _kaiming_default)
        elif isinstance(mod, nn.MultiheadAttention):
            for attr in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                add(mname, mod, attr, 0, _xavier_default)
    return found


def _to_canonical(w: Any, groups: int) -> Any:
    """Canonical ``(n_out, n_in)`` matrix of a stored weight (a view, or a copy if transposed)."""
    if not groups:
        return w.detach().reshape(w.shape[0], -1)
    n_in, n_out_g = w.shape[0], w.shape[1]
    assert n_in % groups == 0, f"ConvTranspose weight {tuple(w.shape)} with {groups} groups"
    k = int(np.prod(w.shape[2:], dtype=np.int64))
    blocks = w.detach().reshape(groups, n_in // groups, n_out_g, k).transpose(1, 2)
    return blocks.reshape(groups * n_out_g, (n_in // groups) * k).contiguous()


def _from_canonical(M: Any, w: Any, groups: int) -> None:
    """Write the canonical matrix ``M`` back into the stored weight ``w`` (inverse of the above)."""
    if not groups:
        if M.data_ptr() != w.data_ptr():
            w.copy_(M.reshape(w.shape))
        return
    n_in, n_out_g = w.shape[0], w.shape[1]
    k = int(np.prod(w.shape[2:], dtype=np.int64))
    back = M.reshape(groups, n_out_g, n_in // groups, k).transpose(1, 2).reshape(w.shape)
    w.copy_(back)


def _torch_seed(seed: int, name: str) -> int:
    state = layer_seed_sequence(seed, name).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])  # 63 bits


def rewire_model_(
    model: Any,
    *,
    seed: int = 0,
    passes: str = "both",
    layers: str | None = None,
    stabilize: int = 0,
    initializer: Initializer | None = None,
) -> Any:
    r"""PA-rewire the weight layers of a torch model in place; return a per-layer summary.

    Parameters
    ----------
    model : torch.nn.Module
        Modified in place (under ``torch.no_grad``), on whatever devices its weights are.
    seed : int, default 0
        Run seed; layer ``name`` draws from a stream derived from ``(seed, name)``.
    passes : {"both", "rows", "cols"}, default "both"
        As in :func:`~netinit.rewire.pa_rewire`.
    layers : str, optional
        Regular expression; only modules whose name it matches (``re.search``) are rewired.
    stabilize : int, default 0
        If positive, first re-draw each layer ``stabilize`` times and keep the draw of lowest
        strength variance (:func:`~netinit.rewire.stabilize_`), as the authors do.
    initializer : str or callable, optional
        Initialiser for ``stabilize``; by default each weight's PyTorch default
        (``kaiming_uniform_(a=sqrt(5))`` for Linear and convolutions, ``xavier_uniform_`` for
        attention input projections).

    Returns
    -------
    pandas.DataFrame
        One row per rewired weight, in module order, columns :data:`COLUMNS`: ``layer`` (the
        parameter name), ``module`` (its class), ``shape`` (stored), the population variances
        of in-strengths (row sums of the canonical matrix) and out-strengths (column sums)
        before and after, and ``ratio_in``/``ratio_out`` = after / before (NaN when before is
        0).

    Raises
    ------
    NoLayersError
        If the model has no Linear, convolution or attention weight.
    LayerError
        If ``layers`` matches no module name (the message names the regex).
    ValueError
        For a bad ``passes``, ``stabilize`` or ``seed``.
    NonFiniteError, DtypeError
        If a selected weight holds NaN/inf or is not floating point.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 10))
    >>> table = rewire_model_(net, seed=0)
    >>> list(table["layer"])
    ['0.weight', '2.weight']
    >>> bool((table["ratio_in"] < 1).all())
    True
    """
    import pandas as pd
    import torch

    passes = check_passes(passes)
    k = _check_k(stabilize)
    layer_seed_sequence(seed, "")  # validates the seed
    weights = _find_weights(model)
    if not weights:
        raise NoLayersError(
            f"{type(model).__name__} has no Linear, Conv, ConvTranspose or MultiheadAttention weight"
        )
    if layers is not None:
        try:
            pattern = re.compile(layers)
        except re.error as exc:
            raise LayerError(f"layers={layers!r} is not a valid regular expression: {exc}") from None
        weights = [w for w in weights if pattern.search(w.module_name)]
        if not weights:
            raise LayerError(f"layers={layers!r} matches no module name of {type(model).__name__}")
    for w in weights:  # dtype, shape and (unless re-drawn first) finiteness, before any change
        check_tensor(w.param, w.name, finite=not k)
    rows: dict[int, tuple] = {}
    with torch.no_grad():
        for chunk in _chunks(weights):
            todo = []
            for i in chunk:
                w = weights[i]
                p = w.param
                gen = torch.Generator(device=p.device).manual_seed(_torch_seed(seed, w.name))
                M = _to_canonical(p, w.transposed_groups)
                before = strength_variances(M)
                if k:
                    init = resolve_initializer(initializer) if initializer is not None else w.default_init
                    canon = lambda t, g=w.transposed_groups: _to_canonical(t, g)  # noqa: E731
                    _best_of(p, init, k, gen, canon)
                    M = _to_canonical(p, w.transposed_groups)
                todo.append((i, M, gen, before))
            if todo[0][1].device.type == "cpu":
                # finiteness was checked above unless the weights were re-drawn since
                _rewire_stack_([t[1] for t in todo], [t[2] for t in todo], passes, check_finite=bool(k))
            else:
                pa_rewire_(todo[0][1], generator=todo[0][2], passes=passes)
            for i, M, _, (v_in0, v_out0) in todo:
                w = weights[i]
                _from_canonical(M, w.param, w.transposed_groups)
                v_in1, v_out1 = strength_variances(M)
                rows[i] = (w.name, w.module_type, tuple(w.param.shape), v_in0, v_in1, v_out0, v_out1,
                           v_in1 / v_in0 if v_in0 > 0 else float("nan"),
                           v_out1 / v_out0 if v_out0 > 0 else float("nan"))
    return pd.DataFrame([rows[i] for i in sorted(rows)], columns=list(COLUMNS))


def _canonical_shape(w: _Weight) -> tuple[int, int]:
    """The ``(n_out, n_in)`` shape :func:`_to_canonical` gives ``w``, without making it."""
    shape = tuple(int(d) for d in w.param.shape)
    if not w.transposed_groups:
        return matrix_shape(shape, w.name)
    g, (n_in, n_out_g) = w.transposed_groups, shape[:2]
    return g * n_out_g, (n_in // g) * int(np.prod(shape[2:], dtype=np.int64))


def _chunks(weights: list[_Weight]) -> list[list[int]]:
    """Indices of ``weights`` in the groups rewired together (:func:`_rewire_stack_`): CPU
    weights of one canonical shape and dtype, within :func:`~netinit.rewire._cpu.plan_stacks`'
    limits (a weight is rewired on a copy when it is a transposed convolution, float16/bfloat16
    or not contiguous). Weights on other devices are groups of their own."""
    keys, shapes, copied = [], [], []
    for w in weights:
        p = w.param
        shapes.append(_canonical_shape(w))
        copied.append(bool(w.transposed_groups) or not _cpu_in_place(p))
        keys.append((shapes[-1], p.dtype, copied[-1]) if p.device.type == "cpu" else None)
    return plan_stacks(keys, shapes, copied)
