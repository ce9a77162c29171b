r"""Tidy tables of layer metrics: one dict per layer, one DataFrame row per neuron.

Two correlations describe a layer ``W`` of shape ``(n_out, n_in)``:

* **"in"**: Pearson correlation between the *rows* of ``W``, the incoming weight vectors of the
  output neurons (``n_out`` vectors of length ``n_in``);
* **"out"**: between the *columns*, the outgoing weight vectors of the input neurons (``n_in``
  vectors of length ``n_out``).

Both come from :func:`netinit.metrics.correlation.correlation_summary`, exact or (for a side
of more than :data:`~netinit.metrics.correlation.EXACT_MAX_NEURONS` neurons under
``correlation="auto"``) estimated from a seeded sample of neurons with standard errors. A side
whose vectors have a single entry (``n_in == 1`` for "in", ``n_out == 1`` for "out") has no
correlation: every vector counts as constant, the pair statistics are 0.0 and the effective number
is 0, the same documented values the correlation module gives when fewer than two vectors are
usable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from netinit._rng import RngLike, as_generator, layer_generator
from netinit.metrics.correlation import EXACT_MAX_NEURONS, correlation_summary, usable_from_moments
from netinit.metrics.strength import LayerSums, degree, in_strength, layer_sums, out_strength, stats_from_sums, strength_stats
from netinit.validation import check_matrix, is_torch

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["layer_summary", "neuron_table"]

_CENTRALITY = (None, "auto", "exact", "sampled")
_CORRELATION = ("auto", "exact", "sampled")


def _corr(X: Any, threshold: float, name: str, method: str, rng: Any, usable: Any = None) -> dict[str, Any]:
    if int(X.shape[1]) < 2:  # one feature per vector: Pearson undefined for every vector
        n = float(X.shape[0])
        return {"mean_abs": 0.0, "max_abs": 0.0, "share_above": 0.0, "mean_sq": 0.0,
                "effective_n": 0.0, "n_constant": n, "n_pairs": 0.0, "mean_abs_se": 0.0,
                "share_above_se": 0.0, "mean_sq_se": 0.0, "effective_n_se": 0.0,
                "max_abs_is_lower_bound": False, "method": "exact"}
    return correlation_summary(X, threshold=threshold, name=name, method=method, rng=rng, usable=usable)


def layer_summary(
    W: Any,
    *,
    layer: str,
    kind: str,
    shape: Sequence[int] | None = None,
    threshold: float = 0.5,
    correlation: str = "auto",
    rng: RngLike = 0,
    sums: LayerSums | None = None,
) -> dict[str, Any]:
    r"""One row of the per-layer table: size, weights, strengths and correlations.

    Parameters
    ----------
    W : array or tensor of shape (n_out, n_in)
        The canonical matrix (numpy, or torch on any device).
    layer : str
        The layer's name.
    kind : str
        Its kind as the caller classifies it (``"linear"``, ``"conv2d"``, ...), copied as is.
    shape : sequence of int, optional
        The original tensor's shape (a conv kernel ``(64, 3, 7, 7)``, a Keras layout ...),
        recorded as the string ``"64x3x7x7"``; defaults to ``W.shape``.
    threshold : float, default 0.5
        A pair of neurons with ``|r| > threshold`` counts as redundant (``*_share_above``).
    correlation : {"auto", "exact", "sampled"}, default "auto"
        ``method`` of :func:`~netinit.metrics.correlation.correlation_summary` for each side:
        ``"auto"`` is exact for a side of at most
        :data:`~netinit.metrics.correlation.EXACT_MAX_NEURONS` neurons and samples
        :data:`~netinit.metrics.correlation.SAMPLE_SIZE` neurons above.
    rng : None, int or numpy.random.Generator, default 0
        Draws the sampled neurons (the "in" side first, then "out", from one generator). An int
        seed is combined with ``layer`` through :func:`netinit._rng.layer_generator`, so a
        layer's values do not depend on the other layers; the default 0 makes the table
        reproducible. A Generator is used as is.
    sums : LayerSums, optional
        :func:`~netinit.metrics.strength.layer_sums` of ``W`` (a numpy ``W``) where the caller
        has it (the neuron table needs the same sums): the strength statistics come from it, and
        the usable rows of a sampled correlation side from its sums of squares
        (:func:`~netinit.metrics.correlation.usable_from_moments`), so ``W`` is read once for
        all of them. Computed here when omitted, for a numpy ``W``.

    Returns
    -------
    dict
        ``layer``, ``kind``, ``shape``, ``n_out``, ``n_in``, ``n_weights``, ``n_zero``,
        ``density`` (share of non-zero weights); ``weight_mean``, ``weight_std`` (population);
        ``in_strength_mean``/``_var``, ``out_strength_mean``/``_var`` (signed, population
        variance) and their ``*_abs_*`` counterparts
        (:func:`~netinit.metrics.strength.strength_stats`);
        for ``side`` in ("in", "out"): ``corr_{side}_mean_abs``, ``corr_{side}_max_abs``,
        ``corr_{side}_share_above``, ``corr_{side}_mean_sq``, ``corr_{side}_n_constant``;
        ``effective_n_in`` (participation ratio of the row correlation: the effective number
        of distinct output neurons, between 1 and ``n_out``), ``effective_n_out`` (same for the
        columns, up to ``n_in``) and ``corr_threshold``. Beside the estimated statistics:
        ``corr_{side}_mean_abs_se``, ``corr_{side}_share_above_se``, ``corr_{side}_mean_sq_se``,
        ``effective_n_{side}_se`` (standard errors, 0.0 for an exact side),
        ``corr_{side}_max_abs_is_lower_bound`` (True when sampled: the maximum over the sampled
        pairs) and ``corr_{side}_method`` (``"exact"`` or ``"sampled(s=512)"``).

    Raises
    ------
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.
    ValueError
        ``threshold`` outside [0, 1], ``shape`` holds a non-integer, or an unknown
        ``correlation``.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.random.default_rng(0).normal(size=(64, 3 * 7 * 7))
    >>> row = layer_summary(W, layer="conv1", kind="conv2d", shape=(64, 3, 7, 7))
    >>> row["shape"], row["n_out"], row["n_in"], row["density"]
    ('64x3x7x7', 64, 147, 1.0)
    """
    W = check_matrix(W, str(layer), allow_torch=True)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if correlation not in _CORRELATION:
        raise ValueError(f"correlation must be one of {_CORRELATION}, got {correlation!r}")
    shape = tuple(W.shape) if shape is None else tuple(shape)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape):
        raise ValueError(f"{layer}: shape must be a sequence of ints, got {shape!r}")
    if sums is None and not is_torch(W):
        sums = layer_sums(W)
    stats = strength_stats(W) if sums is None else stats_from_sums(sums)
    row: dict[str, Any] = {
        "layer": str(layer),
        "kind": str(kind),
        "shape": "x".join(str(int(v)) for v in shape),
        "n_out": int(W.shape[0]),
        "n_in": int(W.shape[1]),
    }
    for key in ("n_weights", "n_zero", "density", "weight_mean", "weight_std"):
        row[key] = stats[key]
    for key in ("in_strength_mean", "in_strength_var", "out_strength_mean", "out_strength_var",
                "in_strength_abs_mean", "in_strength_abs_var", "out_strength_abs_mean",
                "out_strength_abs_var"):
        row[key] = stats[key]
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = layer_generator(int(rng), str(layer))
    elif correlation != "exact":
        rng = as_generator(rng)
    errors: dict[str, Any] = {}
    n_out, n_in = int(W.shape[0]), int(W.shape[1])
    for side, X in (("in", W), ("out", W.T)):
        usable = None
        if sums is not None and (correlation == "sampled" or (correlation == "auto" and X.shape[0] > EXACT_MAX_NEURONS)):
            s_, q_, d = (sums.in_strength, sums.in_sq, n_in) if side == "in" else (sums.out_strength, sums.out_sq, n_out)
            usable = usable_from_moments(s_, q_, d, X) if d >= 2 else None
        s = _corr(X, threshold, f"{layer} ({side})", correlation, rng, usable)
        for key in ("mean_abs", "max_abs", "share_above", "mean_sq"):
            row[f"corr_{side}_{key}"] = s[key]
        row[f"corr_{side}_n_constant"] = int(s["n_constant"])
        row[f"effective_n_{side}"] = s["effective_n"]
        for key in ("mean_abs", "share_above", "mean_sq"):
            errors[f"corr_{side}_{key}_se"] = s[f"{key}_se"]
        errors[f"effective_n_{side}_se"] = s["effective_n_se"]
        errors[f"corr_{side}_max_abs_is_lower_bound"] = bool(s["max_abs_is_lower_bound"])
        errors[f"corr_{side}_method"] = s["method"]
    row["corr_threshold"] = float(threshold)
    row.update(errors)
    return row


def neuron_table(
    W: Any,
    *,
    layer: str,
    centrality: str | None = None,
    k: int = 64,
    rng: RngLike = None,
    sums: LayerSums | None = None,
) -> "pandas.DataFrame":
    r"""One row per neuron of a layer, inputs first, with its strength, degree and centralities.

    Rows follow the graph's node order (:mod:`netinit.graph`): the ``n_in`` input neurons
    (``side = "in"``), then the ``n_out`` output neurons (``side = "out"``). Each neuron's
    strength and degree are those of its edges *in this layer*:

    * side ``"in"``, input neuron ``j``: out-strength :math:`\sum_i W_{ij}`, out-degree;
    * side ``"out"``, output neuron ``i``: in-strength :math:`\sum_j W_{ij}`, in-degree.

    Parameters
    ----------
    W : array or tensor of shape (n_out, n_in)
    layer : str
        The layer's name (a column, so tables of several layers concatenate).
    centrality : {None, "auto", "exact", "sampled"}, default None
        Add the columns of :func:`~netinit.metrics.centrality.neuron_centrality` computed with
        this ``method`` (igraph backend); None leaves them out.
    k : int, default 64
        Sampled sources when centralities are sampled.
    rng : None, int or numpy.random.Generator
        Draws the sources. An int seed is combined with ``layer`` through
        :func:`netinit._rng.layer_generator`, so every layer of a model gets its own stream
        from one run seed; a Generator is used as is.
    sums : LayerSums, optional
        :func:`~netinit.metrics.strength.layer_sums` of ``W`` where the caller has it: the
        strengths and degrees are taken from it instead of new passes over ``W``.

    Returns
    -------
    pandas.DataFrame
        Columns ``layer``, ``node``, ``side``, ``neuron``, ``strength`` (signed),
        ``abs_strength``, ``degree``; with centrality also ``betweenness``, ``closeness``,
        ``eigenvector``, ``pagerank``, ``centrality_method``, ``distance_transform``.

    Raises
    ------
    ValueError
        Unknown ``centrality``.
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import numpy as np
    >>> t = neuron_table(np.array([[1.0, -2.0, 0.0], [3.0, 4.0, 0.5]]), layer="fc")
    >>> t["side"].tolist(), t["strength"].tolist(), t["degree"].tolist()
    (['in', 'in', 'in', 'out', 'out'], [4.0, 2.0, 0.5, -1.0, 7.5], [2, 2, 1, 2, 3])
    """
    import pandas as pd

    if centrality not in _CENTRALITY:
        raise ValueError(f"centrality must be one of {_CENTRALITY}, got {centrality!r}")
    W = check_matrix(W, str(layer), allow_torch=True)
    n_out, n_in = int(W.shape[0]), int(W.shape[1])
    if sums is None and not is_torch(W):
        sums = layer_sums(W)
    if sums is not None:
        parts = [sums.out_strength, sums.in_strength, sums.out_abs, sums.in_abs, sums.out_degree, sums.in_degree]
    else:
        k_in, k_out = degree(W)
        parts = [out_strength(W), in_strength(W), out_strength(W, abs=True), in_strength(W, abs=True),
                 k_out, k_in]
        parts = [p.cpu().numpy() for p in parts]
    side = np.empty(n_in + n_out, dtype=object)
    side[:n_in], side[n_in:] = "in", "out"
    df = pd.DataFrame({
        "layer": str(layer),
        "node": np.arange(n_in + n_out),
        "side": side,
        "neuron": np.concatenate([np.arange(n_in), np.arange(n_out)]),
        "strength": np.concatenate(parts[0:2]),
        "abs_strength": np.concatenate(parts[2:4]),
        "degree": np.concatenate(parts[4:6]).astype(np.int64),
    })
    if centrality is not None:
        from netinit.metrics.centrality import neuron_centrality

        if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            rng = layer_generator(int(rng), str(layer))
        c = neuron_centrality(W, method=centrality, k=k, rng=rng)
        for col in ("betweenness", "closeness", "eigenvector", "pagerank", "centrality_method",
                    "distance_transform"):
            df[col] = c[col].to_numpy()
    return df
