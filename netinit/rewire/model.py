r"""PA rewiring of every weight layer of a torch model, in place: :func:`rewire_model_`.

The layers are those of :func:`netinit.layers.find_layers` on the module: the ``weight`` of every
``nn.Linear`` (``MultiheadAttention.out_proj`` included), ``nn.Conv1d/2d/3d`` and
``nn.ConvTranspose1d/2d/3d``, the input projections of ``nn.MultiheadAttention``
(``in_proj_weight``, or ``q/k/v_proj_weight``) and ``transformers``' ``Conv1D``; a parameter
shared by several modules is rewired once. Rewiring works on each layer's canonical
``(n_out, n_in)`` matrix (:meth:`netinit.layers.Layer.canonical`, the one definition of every
orientation, grouped transposed convolutions included): a view of the weight where the layout
allows, otherwise a copy written back through :meth:`~netinit.layers.Layer.write_`.

Streams. Layer ``name`` (the parameter's name, ``"features.0.weight"``) gets a
``torch.Generator`` on the weight's device from :func:`netinit._rng.torch_generator`
``(seed, name)``, so its result does not depend on which other layers are rewired; stabilisation
(if asked) and both passes draw from it in turn.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from netinit._rng import layer_seed_sequence, torch_generator
from netinit.errors import NoLayersError
from netinit.layers import Layer, LayerSelection, find_layers
from netinit.metrics.strength import strength_variances
from netinit.rewire._checks import Passes, check_passes
from netinit.rewire._cpu import plan_stacks
from netinit.rewire.pa import cpu_in_place, pa_rewire_, rewire_stack_
from netinit.rewire.report import REPORT_COLUMNS, report_frame, report_row
from netinit.rewire.stabilize import Initializer, best_of, check_draws, resolve_initializer
from netinit.validation import check_tensor

__all__ = ["rewire_model_", "COLUMNS"]

#: Columns of the table :func:`rewire_model_` returns (the one rewiring report schema).
COLUMNS = tuple(REPORT_COLUMNS)


def _kaiming_default(t: Any, generator: Any) -> None:  # nn.Linear / nn.ConvNd reset_parameters
    import torch

    torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=generator)


def _xavier_default(t: Any, generator: Any) -> None:  # nn.MultiheadAttention._reset_parameters
    import torch

    torch.nn.init.xavier_uniform_(t, generator=generator)


def _default_init(layer: Layer) -> Callable[[Any, Any], None]:
    return _xavier_default if layer.module == "MultiheadAttention" else _kaiming_default


def _weights(model: Any, layers: LayerSelection) -> list[Layer]:
    """The layers to rewire (embeddings never: their rows are tokens)."""
    try:
        return find_layers(model, layers=layers)[0]
    except NoLayersError as exc:
        if layers is None:
            raise NoLayersError(f"{type(model).__name__} has no Linear, Conv, ConvTranspose or MultiheadAttention "
                                f"weight ({exc})") from None
        raise


def rewire_model_(
    model: Any,
    *,
    seed: int = 0,
    passes: Passes = "both",
    layers: LayerSelection = None,
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
    layers : None, str or list of str
        Which layers (:mod:`netinit.layers`, "Selection"): a regular expression searched in the
        parameter name (``"features.0.weight"``), or a list of parameter or module names.
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
        One row per rewired weight, in module order, the rewiring report
        (:mod:`netinit.rewire.report`): ``layer`` (the parameter name), ``kind``, ``block``,
        ``role``, ``expert``, ``shape`` (stored), ``dtype``, the population variances of
        in-strengths (row sums of the canonical matrix) and out-strengths (column sums) before
        and after, and ``ratio_in``/``ratio_out`` = after / before.

    Raises
    ------
    NoLayersError
        If the model has no Linear, convolution or attention weight.
    NoLayersError, LayerError
        If ``layers`` selects nothing, or names something that is not a layer.
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
    import torch

    passes = check_passes(passes)
    k = check_draws(stabilize)
    layer_seed_sequence(seed, "")  # validates the seed
    weights = _weights(model, layers)
    for w in weights:  # dtype, shape and (unless re-drawn first) finiteness, before any change
        check_tensor(w.param, w.name, finite=not k)
    rows: dict[int, dict[str, Any]] = {}
    with torch.no_grad():
        for chunk in _chunks(weights):
            todo = []
            for i in chunk:
                w = weights[i]
                p = w.param
                gen = torch_generator(seed, w.name, p.device)
                M = _canonical(w)
                before = strength_variances(M)
                if k:
                    init = resolve_initializer(initializer) if initializer is not None else _default_init(w)
                    best_of(p, init, k, gen, w.canonical)
                    M = _canonical(w)
                todo.append((i, M, gen, before))
            if todo[0][1].device.type == "cpu":
                # finiteness was checked above unless the weights were re-drawn since
                rewire_stack_([t[1] for t in todo], [t[2] for t in todo], passes, check_finite=bool(k))
            else:
                pa_rewire_(todo[0][1], generator=todo[0][2], passes=passes)
            for i, M, _, before in todo:
                weights[i].write_(M)
                rows[i] = report_row(weights[i], before, strength_variances(M))
    return report_frame(rows[i] for i in sorted(rows))


def _canonical(w: Layer) -> Any:
    """The canonical matrix of ``w``'s parameter to rewire in place: a view, or a contiguous copy."""
    M = w.canonical(w.param.detach())
    return M if M.is_contiguous() else M.contiguous()


def _chunks(weights: list[Layer]) -> list[list[int]]:
    """Indices of ``weights`` in the groups rewired together (:func:`rewire_stack_`): CPU
    weights of one canonical shape and dtype, within :func:`~netinit.rewire._cpu.plan_stacks`'
    limits (a weight is rewired on a copy when its canonical matrix is not a view of it:
    transposed convolutions, ``in_out`` weights; or when it is float16/bfloat16 or not
    contiguous). Weights on other devices are groups of their own."""
    keys, shapes, copied = [], [], []
    for w in weights:
        p = w.param
        shapes.append(w.matrix_shape)
        copied.append(w.transposed or w.layout != "out_in" or not cpu_in_place(p))
        keys.append((shapes[-1], p.dtype, copied[-1]) if p.device.type == "cpu" else None)
    return plan_stacks(keys, shapes, copied)
