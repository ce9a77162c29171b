r"""Null models of a layer: its statistics against seeded shuffles of the same weights.

A statistic ``f`` of a layer ``W`` (shape ``(n_out, n_in)``) is judged against ``K`` shuffled
copies :math:`W^{(1)}, \dots, W^{(K)}` of the same weights (WeightWatcher's ``randomize``;
Filan et al.'s clusterability baselines). Three models, each a uniformly random permutation in
its group, drawn independently for every copy:

* ``"matrix"``: the ``n_out * n_in`` weights anywhere (only the multiset of values is kept);
* ``"rows"``: within every row (each output neuron keeps its incoming weights, hence its
  in-strength and degree; the natural baseline of PA rewiring, itself a permutation);
* ``"columns"``: within every column (each input neuron keeps its outgoing weights).

For every statistic ``s`` with observed value :math:`x`, null mean :math:`\bar x_0` and null
standard deviation :math:`\sigma_0` (sample SD, ``ddof=1``) over the ``K`` copies,

.. math:: z = \frac{x - \bar x_0}{\sigma_0},

reported as ``<s>_null_observed`` (:math:`x`), ``<s>_null_mean``, ``<s>_null_sd`` and ``<s>_z``,
with ``null_model`` and ``null_shuffles`` recorded. **Degenerate null**: when
:math:`\sigma_0 \le 10^{-6} \max(|x|, |\bar x_0|)` (``sd`` exactly 0 included: a statistic the
model keeps, such as the in-strength variance under ``"rows"``, up to the rounding of
reordered sums, about :math:`10^{-7}` relative in float32) ``z`` is NaN, never a huge number
made of rounding noise. A null whose values are all equal has ``sd`` exactly 0.

For an iid layer the observed matrix is itself a draw of every model, so ``z`` is centred on
0 with SD about :math:`\sqrt{(K+1)/K}` times that of a t variable on ``K - 1`` degrees of
freedom (about 1.03 for ``K = 50``).

**Vectorised.** Each copy is one call of :meth:`numpy.random.Generator.permuted` (``axis``
picks the model: one C loop over all rows or columns, never a Python loop per row); small
layers are stacked in batches of copies and summarised together, large ones are drawn and
summarised on a few threads. :func:`null_model` accepts any statistic; :func:`null_summary` is
the fast path for the statistics of :func:`netinit.metrics.tables.layer_summary` that a
permutation can change: it skips what the model keeps and computes the correlation statistics
on ``corr_sample`` sampled neurons per side. Its cost is dominated by the shuffles themselves
(numpy's Fisher-Yates: about 0.3 s per 4096x4096 copy within rows or columns, 0.7 s for the
whole matrix, whose random accesses span the full array); ``bench/bench_null.py`` records
``K = 100`` against the plain summary.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from numbers import Real
from typing import Any

import numpy as np

from netinit._rng import RngLike, as_generator
from netinit.validation import check_matrix

__all__ = ["NULL_MODELS", "SUMMARY_STATS", "shuffle_weights", "null_model", "null_summary",
           "null_chain_correlation"]

#: The shuffles, as ``model=`` names them.
NULL_MODELS = ("matrix", "rows", "columns")
#: The statistics of :func:`null_summary` (the names of ``layer_summary``'s columns).
SUMMARY_STATS = (
    "in_strength_var", "out_strength_var", "in_strength_abs_var", "out_strength_abs_var",
    "corr_in_mean_abs", "corr_in_max_abs", "corr_in_share_above", "corr_in_mean_sq",
    "corr_in_n_constant", "effective_n_in",
    "corr_out_mean_abs", "corr_out_max_abs", "corr_out_share_above", "corr_out_mean_sq",
    "corr_out_n_constant", "effective_n_out",
)
# what each model keeps exactly (reported with sd 0 and z NaN, never recomputed)
_KEPT = {
    "matrix": (),
    "rows": ("in_strength_var", "in_strength_abs_var", "corr_in_n_constant"),
    "columns": ("out_strength_var", "out_strength_abs_var", "corr_out_n_constant"),
}
_AXIS = {"matrix": None, "rows": 1, "columns": 0}
_BATCH_ELEMENTS = 1 << 22  # weights per batch of shuffled copies (16 MiB in float32)
_THREAD_ELEMENTS = 1 << 20  # layers from this size draw and summarise copies in threads
_MAX_THREADS = 4
_REL_TOL = 1e-6  # above float32 rounding of reordered sums (~1e-7 relative)


def _check_model(model: str) -> str:
    if model not in NULL_MODELS:
        raise ValueError(f"model must be one of {NULL_MODELS}, got {model!r}")
    return model


def _check_shuffles(shuffles: Any) -> int:
    if isinstance(shuffles, bool) or not isinstance(shuffles, (int, np.integer)) or shuffles < 2:
        raise ValueError(f"shuffles must be an integer >= 2 (shuffled copies for a null SD), got {shuffles!r}")
    return int(shuffles)


def _permute(X: np.ndarray, model: str, gen: np.random.Generator) -> None:
    """Shuffle the matrix ``X`` in place under ``model``."""
    gen.permuted(X, axis=_AXIS[model], out=X)


def _copies(W: np.ndarray, shuffles: int, model: str, gen: np.random.Generator) -> Iterator[np.ndarray]:
    """``shuffles`` independent shuffled copies of ``W``, in batches of shape ``(b, n_out, n_in)``.

    Copy ``r`` is drawn by the ``r``-th of ``shuffles`` children spawned from ``gen``, so the copies
    do not depend on the batch size (nor, in :func:`null_summary`, on threads).
    """
    n_out, n_in = W.shape
    children = gen.spawn(shuffles)
    step = max(1, min(shuffles, _BATCH_ELEMENTS // (n_out * n_in)))
    for a in range(0, shuffles, step):
        X = np.broadcast_to(W, (min(step, shuffles - a), n_out, n_in)).copy()
        for i, child in enumerate(children[a:a + step]):
            _permute(X[i], model, child)
        yield X


def shuffle_weights(W: Any, *, model: str = "matrix", rng: RngLike = None) -> np.ndarray:
    r"""One shuffled copy of ``W`` under a null model.

    Parameters
    ----------
    W : array of shape (n_out, n_in)
    model : {"matrix", "rows", "columns"}, default "matrix"
        Permute all weights, within every row, or within every column.
    rng : None, int or numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_out, n_in)
        Same dtype as ``W``; same multiset of values (and of every row's or column's values
        under ``"rows"`` / ``"columns"``).

    Raises
    ------
    ValueError
        Unknown ``model``.
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import numpy as np
    >>> S = shuffle_weights(np.arange(6.0).reshape(2, 3), model="rows", rng=0)
    >>> np.sort(S, axis=1).tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    _check_model(model)
    W = check_matrix(W)
    return next(_copies(W, 1, model, as_generator(rng)))[0]


def _z(obs: float, mean: float, sd: float) -> float:
    if not sd > _REL_TOL * max(abs(obs), abs(mean)):  # also sd == 0 and sd NaN
        return float("nan")
    return (obs - mean) / sd


def _columns(observed: Mapping[str, float], null: Mapping[str, np.ndarray],
             model: str, shuffles: int) -> dict[str, Any]:
    out: dict[str, Any] = {"null_model": model, "null_shuffles": shuffles}
    for key, x in observed.items():
        vals = np.asarray(null[key], dtype=np.float64)
        if vals.min() == vals.max():  # exactly constant: no rounding noise in the mean or SD
            mean, sd = float(vals[0]), 0.0
        else:
            mean, sd = float(vals.mean()), float(vals.std(ddof=1))
        out[f"{key}_null_observed"] = float(x)
        out[f"{key}_null_mean"] = mean
        out[f"{key}_null_sd"] = sd
        out[f"{key}_z"] = _z(float(x), mean, sd)
    return out


def null_model(
    W: Any,
    statistic: Callable[[np.ndarray], Mapping[str, Any]],
    *,
    shuffles: int = 100,
    model: str = "matrix",
    rng: RngLike = None,
) -> dict[str, Any]:
    r"""Null mean, SD and z-score of every numeric statistic of ``statistic(W)``.

    Parameters
    ----------
    W : array of shape (n_out, n_in)
    statistic : callable
        ``statistic(X) -> mapping``; its int and float values are the statistics (strings and
        bools are skipped, so a whole ``layer_summary`` row can be passed). Called once on
        ``W`` and once on each shuffled copy (a numpy array of ``W``'s dtype, which it must not
        keep after returning).
    shuffles : int, default 100
        Shuffled copies, at least 2.
    model : {"matrix", "rows", "columns"}, default "matrix"
        The shuffle (module docstring).
    rng : None, int or numpy.random.Generator
        Seeds the shuffles. The copies are drawn from the first of two children spawned from
        it, as in :func:`null_summary`, so both see the same copies for the same seed.

    Returns
    -------
    dict
        ``null_model``, ``null_shuffles`` and, for every statistic ``s``: ``s_null_observed``,
        ``s_null_mean``, ``s_null_sd`` (``ddof=1``), ``s_z`` (NaN for a degenerate null).

    Raises
    ------
    ValueError
        Unknown ``model``, ``shuffles < 2``, or a statistic missing from a copy's mapping.
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> W = np.random.default_rng(0).normal(size=(20, 30))
    >>> r = null_model(W, lambda X: {"first_row_sum": X[0].sum()}, shuffles=50, model="rows", rng=0)
    >>> r["first_row_sum_null_sd"] < 1e-12, math.isnan(r["first_row_sum_z"])
    (True, True)
    """
    _check_model(model)
    shuffles = _check_shuffles(shuffles)
    W = check_matrix(W)
    gen = as_generator(rng).spawn(2)[0]
    observed = {key: float(v) for key, v in statistic(W).items()
                if isinstance(v, (Real, np.number)) and not isinstance(v, (bool, np.bool_))}
    null = {key: np.empty(shuffles) for key in observed}
    r = 0
    for X in _copies(W, shuffles, model, gen):
        for S in X:
            values = statistic(S)
            for key in observed:
                if key not in values:
                    raise ValueError(f"statistic returned no {key!r} for shuffled copy {r}")
                null[key][r] = float(values[key])
            r += 1
    return _columns(observed, null, model, shuffles)


def _corr_batch(X: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Correlation statistics of the rows of every ``X[b]`` (shape (b, m, d)), as
    :func:`netinit.metrics.correlation.correlation_summary` and ``layer_summary`` give them."""
    b, m, d = X.shape
    if d < 2:  # one feature: no correlation (layer_summary's convention)
        zeros = np.zeros(b)
        return {"mean_abs": zeros, "max_abs": zeros, "share_above": zeros, "mean_sq": zeros,
                "effective_n": zeros, "n_constant": np.full(b, float(m))}
    Z = X.astype(np.float64)
    Z -= Z.mean(axis=2, keepdims=True)
    norms = np.linalg.norm(Z, axis=2)
    scale = np.maximum(np.abs(Z).max(axis=2), 1.0)
    ok = norms > 1e-12 * scale * math.sqrt(d)
    Z *= np.where(ok, 1.0 / np.where(ok, norms, 1.0), 0.0)[:, :, None]
    G = np.clip(Z @ Z.transpose(0, 2, 1), -1.0, 1.0)
    idx = np.arange(m)
    G[:, idx, idx] = 0.0  # off-diagonal pairs only; constant rows are all-zero rows
    A = np.abs(G)
    mu = ok.sum(axis=1).astype(np.float64)
    pairs = mu * (mu - 1.0)
    sum_sq = np.einsum("bij,bij->b", G, G)
    has = pairs > 0
    den = np.where(has, pairs, 1.0)
    return {
        "mean_abs": np.where(has, A.sum(axis=(1, 2)) / den, 0.0),
        "max_abs": np.where(has, A.max(axis=(1, 2)), 0.0),
        "share_above": np.where(has, (A > threshold).sum(axis=(1, 2)) / den, 0.0),
        "mean_sq": np.where(has, sum_sq / den, 0.0),
        "effective_n": np.where(has, mu * mu / (mu + sum_sq), mu),
        "n_constant": m - mu,
    }


def _summary_batch(X: np.ndarray, keep: tuple[str, ...], threshold: float,
                   rows: np.ndarray, cols: np.ndarray, strengths: bool = False) -> dict[str, np.ndarray]:
    """The statistics of :data:`SUMMARY_STATS` not in ``keep`` for every ``X[b]``; with
    ``strengths`` also the signed strength vectors ``in_strengths`` (b, n_out) and
    ``out_strengths`` (b, n_in) of the sides the model changes."""
    out: dict[str, np.ndarray] = {}
    need_in = "in_strength_var" not in keep
    need_out = "out_strength_var" not in keep
    if need_in:
        s_in = X.sum(axis=2, dtype=np.float64)
        out["in_strength_var"] = s_in.var(axis=1)
        if strengths:
            out["in_strengths"] = s_in
    if need_out:
        s_out = X.sum(axis=1, dtype=np.float64)
        out["out_strength_var"] = s_out.var(axis=1)
        if strengths:
            out["out_strengths"] = s_out
    A = np.abs(X)
    if need_in:
        out["in_strength_abs_var"] = A.sum(axis=2, dtype=np.float64).var(axis=1)
    if need_out:
        out["out_strength_abs_var"] = A.sum(axis=1, dtype=np.float64).var(axis=1)
    del A
    for side, sub in (("in", lambda Y: Y[:, rows, :]),
                      ("out", lambda Y: Y[:, :, cols].transpose(0, 2, 1))):
        m, d = (rows.size, X.shape[2]) if side == "in" else (cols.size, X.shape[1])
        step = max(1, min(X.shape[0], _BATCH_ELEMENTS // max(1, m * max(m, d))))
        parts = [_corr_batch(sub(X[a:a + step]), threshold) for a in range(0, X.shape[0], step)]
        for key in ("mean_abs", "max_abs", "share_above", "mean_sq", "n_constant"):
            out[f"corr_{side}_{key}"] = np.concatenate([p[key] for p in parts])
        out[f"effective_n_{side}"] = np.concatenate([p["effective_n"] for p in parts])
    return {key: v for key, v in out.items() if key not in keep}


def _other_side(name: str) -> str:
    """The statistic of the other side: ``corr_in_max_abs`` <-> ``corr_out_max_abs``, ..."""
    return "_".join({"in": "out", "out": "in"}.get(part, part) for part in name.split("_"))


def _null_parts(W: np.ndarray, shuffles: int, model: str, gen: np.random.Generator,
                keep: tuple[str, ...], threshold: float, rows: np.ndarray,
                cols: np.ndarray, strengths: bool) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(first copy, statistics of a batch of copies): batches of small layers in this thread;
    one copy per task on a few threads for large layers (numpy releases the GIL while it
    shuffles, sums and multiplies, so the copies are drawn and summarised concurrently)."""
    workers = min(_MAX_THREADS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else (os.cpu_count() or 1))
    if W.size < _THREAD_ELEMENTS or workers < 2:
        r = 0
        for X in _copies(W, shuffles, model, gen):
            yield r, _summary_batch(X, keep, threshold, rows, cols, strengths)
            r += X.shape[0]
        return
    from concurrent.futures import ThreadPoolExecutor

    def one(child: np.random.Generator) -> dict[str, np.ndarray]:
        X = W.copy()
        _permute(X, model, child)
        return _summary_batch(X[None], keep, threshold, rows, cols, strengths)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from enumerate(pool.map(one, gen.spawn(shuffles)))


def null_summary(
    W: Any,
    *,
    shuffles: int = 100,
    model: str = "matrix",
    rng: RngLike = None,
    threshold: float = 0.5,
    corr_sample: int | None = 512,
    strengths: bool = False,
) -> dict[str, Any]:
    r"""Null models of the layer-summary statistics, vectorised (the fast path of :func:`null_model`).

    The statistics are those of :data:`SUMMARY_STATS`, with the definitions and names of
    :func:`netinit.metrics.tables.layer_summary`: population variances of the signed and
    absolute in- and out-strengths and, for the Pearson correlation between rows (``"in"``)
    and between columns (``"out"``), the mean ``|r|``, max ``|r|``, share of pairs with
    ``|r| > threshold``, mean ``r^2``, number of constant vectors and the participation ratio
    ``effective_n_{side}``. The weight mean and SD, the strength means, ``n_zero`` and
    ``density`` are the same in every shuffle and are left out.

    **Sampled correlation.** A side with more than ``corr_sample`` neurons has its correlation
    statistics computed over ``corr_sample`` neurons drawn once without replacement (rows of
    ``W`` for ``"in"``, columns for ``"out"``) in the observed layer and in every copy alike,
    so the z-score compares like with like: ``<s>_null_observed`` is then the statistic of the
    sample, which estimates ``layer_summary``'s (without bias for the means and shares; the
    max and ``effective_n`` of a sample are those of the sample). Cost per copy
    ``O(n_out n_in + c^2 (n_out + n_in))`` for ``c = corr_sample``, against
    ``O(n_out n_in (n_out + n_in))`` for one exact summary.

    Parameters
    ----------
    W : array of shape (n_out, n_in)
    shuffles : int, default 100
        Shuffled copies, at least 2.
    model : {"matrix", "rows", "columns"}, default "matrix"
    rng : None, int or numpy.random.Generator
        Two children are spawned from it: the first draws the copies (the same copies as
        :func:`null_model` with the same ``rng``; copy ``r`` from the ``r``-th of ``shuffles``
        grandchildren, so the result does not depend on batching or threads), the second
        the correlation sample. Layers of a million weights or more draw and summarise their
        copies on up to 4 threads.
    threshold : float, default 0.5
        As in ``layer_summary``.
    corr_sample : int or None, default 512
        Neurons per side for the correlation statistics (at least 2); None for all.
    strengths : bool, default False
        Also return every copy's signed strength vectors (float64), for
        :func:`null_chain_correlation`: ``null_in_strengths`` of shape ``(shuffles, n_out)``
        (row sums) and ``null_out_strengths`` of shape ``(shuffles, n_in)`` (column sums). A
        side the model keeps repeats the observed vector in every row. They are the sums the
        strength variances are computed from: no extra shuffles.

    Returns
    -------
    dict
        ``null_model``, ``null_shuffles``, ``null_corr_rows`` / ``null_corr_cols`` (neurons used for
        the "in" / "out" correlation) and, for every statistic ``s`` of
        :data:`SUMMARY_STATS`, ``s_null_observed``, ``s_null_mean``, ``s_null_sd``, ``s_z``.
        Statistics the model keeps (the in-strength variances and ``corr_in_n_constant``
        under ``"rows"``, the out- ones under ``"columns"``) have ``sd`` 0 and ``z`` NaN.

    Raises
    ------
    ValueError
        Unknown ``model``, ``shuffles < 2``, ``threshold`` outside [0, 1] or ``corr_sample < 2``.
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> g = np.random.default_rng(0)
    >>> W = g.normal(size=(64, 2)) @ g.normal(size=(2, 48))  # rank 2: rows strongly correlated
    >>> r = null_summary(W, shuffles=50, model="rows", rng=0)
    >>> r["corr_in_mean_abs_z"] > 10, math.isnan(r["in_strength_var_z"])
    (True, True)
    """
    _check_model(model)
    shuffles = _check_shuffles(shuffles)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if corr_sample is not None and (isinstance(corr_sample, bool) or corr_sample < 2):
        raise ValueError(f"corr_sample must be None or an integer >= 2, got {corr_sample!r}")
    W = check_matrix(W)
    n_out, n_in = W.shape
    shuffle_gen, sample_gen = as_generator(rng).spawn(2)

    def pick(n: int) -> np.ndarray:
        if corr_sample is None or n <= corr_sample:
            return np.arange(n)
        return np.sort(sample_gen.choice(n, size=int(corr_sample), replace=False))

    rows, cols = pick(n_out), pick(n_in)
    if model == "columns":  # the rows model of W.T: the same copies, shuffled along rows
        A, run, a_rows, a_cols = np.ascontiguousarray(W.T), "rows", cols, rows
    else:
        A, run, a_rows, a_cols = W, model, rows, cols
    keep = _KEPT[run]
    obs = {key: float(v[0]) for key, v in _summary_batch(A[None], (), threshold, a_rows,
                                                         a_cols).items()}
    null = {key: np.empty(shuffles) for key in SUMMARY_STATS}
    if strengths:
        null["in_strengths"] = np.empty((shuffles, A.shape[0]))
        null["out_strengths"] = np.empty((shuffles, A.shape[1]))
    for r, part in _null_parts(A, shuffles, run, shuffle_gen, keep, threshold, a_rows, a_cols,
                               strengths):
        for key, v in part.items():
            null[key][r:r + v.shape[0]] = v
    for key in keep:
        null[key][:] = obs[key]
    if strengths and run == "rows":  # the rows model keeps every row sum
        null["in_strengths"][:] = A.sum(axis=1, dtype=np.float64)
    if A is not W:  # statistics of W.T's rows are those of W's columns
        obs = {_other_side(key): obs[key] for key in SUMMARY_STATS}
        null = {_other_side(key): v for key, v in null.items()}
    obs = {key: obs[key] for key in SUMMARY_STATS}  # the same column order for every model
    out = _columns(obs, null, model, shuffles)
    out["null_corr_rows"] = int(rows.size)
    out["null_corr_cols"] = int(cols.size)
    if strengths:
        out["null_in_strengths"] = null["in_strengths"]
        out["null_out_strengths"] = null["out_strengths"]
    return out


def _row_pearson(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Pearson r of ``X[r]`` and ``Y[r]`` for every row; NaN where either row is constant."""
    X = X - X.mean(axis=1, keepdims=True)
    Y = Y - Y.mean(axis=1, keepdims=True)
    nx, ny = np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1)
    ok = (nx > 0) & (ny > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("ij,ij->i", X, Y) / (nx * ny)
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def null_chain_correlation(
    in_strengths: Any,
    out_strengths: Any,
    observed: float,
    *,
    model: str = "matrix",
) -> dict[str, Any]:
    r"""Null mean, SD and z of the chain strength correlation of two consecutive layers.

    For layers ``a`` (shape ``(n_mid, n_in)``) and ``b`` (shape ``(n_out, n_mid)``),
    :func:`netinit.metrics.chain_strength_correlation` is the Pearson correlation ``r`` of the
    shared neurons' in-strengths in ``a`` and out-strengths in ``b``. Its null shuffles both
    layers independently under the same model: copy ``r`` pairs the in-strengths of ``a``'s
    ``r``-th shuffled copy with the out-strengths of ``b``'s (``null_summary(...,
    strengths=True)`` of each layer, each from its own stream). Under ``"rows"`` ``a`` keeps
    its in-strengths and ``b``'s out-strengths move; under ``"columns"`` the reverse; under
    ``"matrix"`` both move. ``z`` follows the module's rules (NaN for a degenerate null).

    Parameters
    ----------
    in_strengths : array of shape (shuffles, n_mid)
        Row sums of the shuffled copies of ``a`` (``null_in_strengths``).
    out_strengths : array of shape (shuffles, n_mid)
        Column sums of the shuffled copies of ``b`` (``null_out_strengths``).
    observed : float
        The chain correlation of the unshuffled layers.
    model : {"matrix", "rows", "columns"}, default "matrix"
        Recorded.

    Returns
    -------
    dict
        ``strength_correlation_null_mean``, ``strength_correlation_null_sd`` (``ddof=1``, over
        the copies with a defined correlation), ``strength_correlation_z``.

    Raises
    ------
    ValueError
        Unknown ``model``; the two arrays differ in shape or have fewer than 2 copies.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.random.default_rng(0)
    >>> r = null_chain_correlation(g.normal(size=(50, 30)), g.normal(size=(50, 30)), 0.9)
    >>> bool(r["strength_correlation_z"] > 3)
    True
    """
    _check_model(model)
    X = np.asarray(in_strengths, dtype=np.float64)
    Y = np.asarray(out_strengths, dtype=np.float64)
    if X.ndim != 2 or X.shape != Y.shape or X.shape[0] < 2:
        raise ValueError("in_strengths and out_strengths must be arrays of one shape (shuffles >= 2, "
                         f"n_mid), got {X.shape} and {Y.shape}")
    vals = _row_pearson(X, Y)
    vals = vals[np.isfinite(vals)]
    if vals.size < 2 or not np.isfinite(observed):
        mean = float(vals.mean()) if vals.size else float("nan")
        return {"strength_correlation_null_mean": mean, "strength_correlation_null_sd": float("nan"),
                "strength_correlation_z": float("nan")}
    cols = _columns({"strength_correlation": float(observed)}, {"strength_correlation": vals},
                    model, int(X.shape[0]))
    return {key: cols[key] for key in ("strength_correlation_null_mean",
                                       "strength_correlation_null_sd", "strength_correlation_z")}
