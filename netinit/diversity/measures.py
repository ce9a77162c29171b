r"""Diversity of the neurons of a layer, in weight space and in activation (function) space.

For a layer with weight matrix ``W`` of shape ``(n_out, n_in)`` (row ``i`` = incoming weights of
neuron ``i``; a Conv kernel ``(out, in/groups, *k)`` flattened to ``(out, in/groups * prod(k))``)
and activations ``H`` of shape ``(samples, n_out)``, the diversity measures are summaries of the
Pearson correlation matrix ``R`` of the rows of ``W`` (weight space) or of the columns of ``H``
(activation space), over the off-diagonal pairs ``i != j``:

* ``mean_abs_r`` = mean ``|r_ij|``;  ``max_abs_r`` = max ``|r_ij|``;
* ``redundant_share`` = share of pairs with ``|r_ij| > threshold`` (0.5 by default);
* ``effective_n`` = participation ratio of the eigenvalues of ``R``,

  .. math:: n_\mathrm{eff} = \frac{(\sum_k \lambda_k)^2}{\sum_k \lambda_k^2}
            = \frac{\operatorname{tr}(R)^2}{\lVert R \rVert_F^2},

  between 1 (all neurons the same up to sign and scale) and the number of neurons (pairwise
  uncorrelated).

A neuron whose activation is constant on the batch (a dead ReLU) has no correlation: it is counted
in ``dead_neurons`` and left out of the summaries; in weight space a constant row is counted in
``constant_neurons``. A layer with fewer than two usable neurons has no pairs: its pair statistics
are 0.0 and ``effective_n`` is the number of usable neurons (1.0 for a one-neuron layer). No
summary is ever NaN. The summaries are those of :func:`netinit.metrics.correlation.correlation_summary`.

**Which activation.** The activation of a layer is its *output*, the pre-activation ``W x + b``,
caught by a forward hook on the Linear/Conv module itself; this works whatever the nonlinearity
is and however it is written (a module or a function call in ``forward``). Pass ``activation=``
(``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"gelu"`` or a callable) to measure the output of the
nonlinearity that follows instead, as the hidden representation ``h = f(W x + b)``; dead ReLUs are
then seen as dead. :class:`~netinit.diversity.Decorrelation` and
:class:`~netinit.diversity.DiversityTracker` use the same hook and the same option. Conv
activations are averaged over positions, after the nonlinearity when one is given (one value per
channel and sample).

References
----------
A. Kovalenko, P. Kordik, M. Friedjungova, "Dynamic Neural Diversification: Path to Computationally
Sustainable Neural Networks", arXiv:2109.09612 (2021).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from netinit.diversity._modules import (
    ActivationLike,
    as_samples,
    batch_input,
    capture,
    model_device,
    resolve_activation,
    select_modules,
)
from netinit.errors import DataError, LayerError, ShapeError
from netinit.metrics.correlation import correlation_summary
from netinit.validation import check_finite, is_torch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["weight_diversity", "activation_diversity", "diversity", "MEASURES"]

#: Names of the per-layer summaries (the keys of the dicts and the suffixes of the columns).
MEASURES = ("mean_abs_r", "max_abs_r", "redundant_share", "effective_n")


def _summary(X: Any, threshold: float, centre: bool, name: str) -> dict[str, float]:
    s = correlation_summary(X, threshold=threshold, centre=centre, name=name)
    return {
        "mean_abs_r": s["mean_abs"],
        "max_abs_r": s["max_abs"],
        "redundant_share": s["share_above"],
        "effective_n": s["effective_n"],
        "_constant": s["n_constant"],
    }


def weight_diversity(
    W: Any, *, threshold: float = 0.5, centre: bool = True, name: str = "W"
) -> dict[str, float]:
    r"""Diversity of a layer's neurons in weight space.

    Parameters
    ----------
    W : array or tensor of shape (n_out, n_in) or (out, in/groups, \*k)
        Row ``i`` holds the incoming weights of neuron ``i``; a Conv kernel is flattened to
        ``(out, in/groups * prod(k))``. numpy array or torch tensor (on its own device).
    threshold : float, default 0.5
        A pair with ``|r| > threshold`` counts as redundant.
    centre : bool, default True
        Pearson correlation of the rows (True) or cosine similarity (False).
    name : str
        Used in error messages.

    Returns
    -------
    dict
        ``mean_abs_r``, ``max_abs_r``, ``redundant_share``, ``effective_n`` (see the module
        docstring), ``n_neurons`` (= ``n_out``) and ``constant_neurons`` (rows with zero variance,
        left out). With ``n_in < 2`` (Pearson) no row has a correlation: every row is counted as
        constant and the summaries are 0.0.

    Raises
    ------
    ShapeError
        ``W`` has fewer than 2 dimensions.
    NonFiniteError
        ``W`` holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> d = weight_diversity(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]))
    >>> round(d["max_abs_r"], 3), d["n_neurons"]
    (0.5, 3.0)
    """
    if len(W.shape) < 2:
        raise ShapeError(f"{name}: expected a weight of shape (n_out, n_in, ...), got {tuple(W.shape)}")
    n = int(W.shape[0])
    M = W.detach().reshape(n, -1) if is_torch(W) else np.asarray(W).reshape(n, -1)
    if M.shape[1] < 2 and centre:
        check_finite(M, name)
        s = {m: 0.0 for m in MEASURES} | {"_constant": float(n)}
    else:
        s = _summary(M if M.shape[1] >= 2 else _pad_cosine(M), threshold, centre, name)
    out = {m: s[m] for m in MEASURES}
    out["n_neurons"] = float(n)
    out["constant_neurons"] = s["_constant"]
    return out


def _pad_cosine(M: Any) -> Any:
    """One-input rows for cosine similarity: a zero column changes no cosine and makes 2 features."""
    if is_torch(M):
        import torch

        return torch.cat([M, torch.zeros_like(M)], dim=1)
    return np.concatenate([M, np.zeros_like(M)], axis=1)


def activation_diversity(
    H: Any, *, threshold: float = 0.5, centre: bool = True, name: str = "H"
) -> dict[str, float]:
    r"""Diversity of a layer's neurons in activation (function) space.

    Parameters
    ----------
    H : array or tensor of shape (samples, n) or (batch, channels, \*positions)
        Activations of ``n`` neurons on a batch; a Conv activation is averaged over positions.
    threshold : float, default 0.5
        A pair with ``|r| > threshold`` counts as redundant.
    centre : bool, default True
        Pearson correlation of the columns (True) or cosine similarity (False).
    name : str
        Used in error messages.

    Returns
    -------
    dict
        ``mean_abs_r``, ``max_abs_r``, ``redundant_share``, ``effective_n`` over the live neurons,
        ``n_neurons``, ``dead_neurons`` (constant on the batch, left out) and ``n_samples``.

    Raises
    ------
    DataError
        Fewer than 2 samples.
    NonFiniteError
        ``H`` holds NaN or infinity.
    ShapeError
        ``H`` has fewer than 2 dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.random.default_rng(0).normal(size=(500, 3))
    >>> H[:, 2] = 0.0                       # a dead neuron
    >>> d = activation_diversity(H)
    >>> d["dead_neurons"], d["max_abs_r"] < 0.2
    (1.0, True)
    """
    if len(H.shape) < 2:
        raise ShapeError(f"{name}: expected activations (samples, neurons), got shape {tuple(H.shape)}")
    if is_torch(H):
        H = as_samples(H.detach())
    else:
        H = np.asarray(H)
        if H.ndim > 2:
            H = H.reshape(H.shape[0], H.shape[1], -1).mean(axis=2)
    if H.shape[0] < 2:
        raise DataError(
            f"{name}: activation statistics need at least 2 samples, got {H.shape[0]} "
            f"(shape {tuple(H.shape)})"
        )
    s = _summary(H.T, threshold, centre, name)
    out = {m: s[m] for m in MEASURES}
    out["n_neurons"] = float(H.shape[1])
    out["dead_neurons"] = s["_constant"]
    out["n_samples"] = float(H.shape[0])
    return out


def diversity(
    model: Any,
    batch: Any = None,
    *,
    layers: str | Sequence[str] | None = None,
    activation: ActivationLike = None,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Per-layer neuron diversity of a torch model, in weight space and (with data) activation space.

    One forward pass of ``batch`` in eval mode under ``torch.no_grad`` on the model's device,
    with forward hooks on the chosen layers; the mode of every submodule is restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        Its ``Linear`` and ``Conv1d/2d/3d`` modules are the layers.
    batch : tensor or tuple (inputs, targets, ...), optional
        Input for the activation statistics, at least 2 samples; without it only the weight-space
        columns are computed.
    layers : None, str or list of str
        Which Linear/Conv layers (:mod:`netinit.layers`, "Selection"): a regular expression on the
        layer names (``"fc1.weight"``) or a list of layer or module names; default every one.
    activation : None, "relu", "tanh", "sigmoid", "gelu" or callable
        Applied to each layer's output before the activation statistics (default: the layer's
        output itself, the pre-activation); see the module docstring.
    threshold : float, default 0.5
        ``|r|`` above which a pair counts as redundant.

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``layer``, ``type``, ``n_neurons``, ``weight_mean_abs_r``,
        ``weight_max_abs_r``, ``weight_redundant_share``, ``weight_effective_n``,
        ``weight_constant``; with ``batch`` also ``act_mean_abs_r``, ``act_max_abs_r``,
        ``act_redundant_share``, ``act_effective_n``, ``dead_neurons``, ``n_samples``.

    Raises
    ------
    DataError
        ``batch`` has fewer than 2 samples.
    NonFiniteError
        Weights or activations hold NaN or infinity (the message names the layer).
    LayerError
        An entry of ``layers`` is not a Linear/Conv layer of the model, or a chosen layer is not
        called by the forward pass.
    NoLayersError
        The model has no Linear/Conv layer.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    >>> df = diversity(model, x, activation="relu")
    >>> list(df["layer"]), int(df["n_samples"].iloc[0])
    (['0', '2'], 64)
    """
    import pandas as pd
    import torch

    mods = select_modules(model, layers)
    f = resolve_activation(activation)
    acts: dict[str, Any] = {}
    if batch is not None:
        x = batch_input(batch).to(model_device(model))
        modes = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            with torch.no_grad(), capture(mods, detach=True) as store:
                model(x)
                acts = dict(store)
        finally:
            for m, mode in modes:
                m.training = mode
        missing = [n for n in mods if n not in acts]
        if missing:
            raise LayerError(
                f"layers {missing} were not called by the forward pass of the batch; "
                "leave them out with layers="
            )
    rows = []
    for name, m in mods.items():
        w = weight_diversity(m.weight, threshold=threshold, name=f"weight of layer {name!r}")
        row: dict[str, Any] = {"layer": name, "type": type(m).__name__, "n_neurons": int(w["n_neurons"])}
        row.update({f"weight_{k}": w[k] for k in MEASURES})
        row["weight_constant"] = int(w["constant_neurons"])
        if batch is not None:
            with torch.no_grad():
                H = as_samples(acts[name] if f is None else f(acts[name]), m)
            a = activation_diversity(H, threshold=threshold, name=f"activations of layer {name!r}")
            row.update({f"act_{k}": a[k] for k in MEASURES})
            row["dead_neurons"] = int(a["dead_neurons"])
            row["n_samples"] = int(a["n_samples"])
        rows.append(row)
    return pd.DataFrame(rows)
