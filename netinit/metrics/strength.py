r"""Strength and degree of the neurons of a layer, and their summaries.

For a layer with canonical matrix ``W`` of shape ``(n_out, n_in)`` (see :mod:`netinit.graph`):

.. math:: s^{in}_i = \sum_j W_{ij} \quad\text{(output neuron } i\text{)}, \qquad
          s^{out}_j = \sum_i W_{ij} \quad\text{(input neuron } j\text{)},

signed by default, with ``|W_{ij}|`` when ``abs=True``; degrees count the non-zero weights.
Sums accumulate in float64 on every backend. Every function takes a numpy array or a torch
tensor (on its own device) and answers with the same kind of object; torch is never imported
for numpy input. Variances are population variances (``ddof=0``), as in the PA-rewiring paper
(Scabini et al., 2022) whose strength-variance ratios this package reproduces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from netinit.errors import ShapeError
from netinit.metrics.correlation import correlation_matrix
from netinit.validation import check_matrix, is_torch

__all__ = ["in_strength", "out_strength", "degree", "strength_stats", "strength_variances", "chain_strength_correlation",
           "LayerSums", "layer_sums", "stats_from_sums"]

_BLOCK_ELEMENTS = 1 << 20  # numpy statistics: one float64 block up to this many weights (8 MiB) ...
_PASS_ELEMENTS = 1 << 16  # ... and row blocks of this many above (512 KiB: they stay in cache)


def _strength(W: Any, axis: int, use_abs: bool, name: str) -> Any:
    W = check_matrix(W, name, allow_torch=True)
    if is_torch(W):
        import torch

        X = W.detach()
        return (X.abs() if use_abs else X).sum(dim=axis, dtype=torch.float64)
    return (np.abs(W) if use_abs else W).sum(axis=axis, dtype=np.float64)


def in_strength(W: Any, abs: bool = False) -> Any:
    r"""In-strength of every output neuron, :math:`s^{in}_i = \sum_j W_{ij}` (or ``|W_{ij}|``).

    Parameters
    ----------
    W : array or tensor of shape (n_out, n_in)
        Canonical weight matrix.
    abs : bool, default False
        Sum absolute values instead of signed ones.

    Returns
    -------
    ndarray or tensor of shape (n_out,), float64
        Same kind as ``W`` (a torch tensor stays on its device).

    Raises
    ------
    ShapeError
        ``W`` is not 2-D or is empty.
    NonFiniteError
        ``W`` holds NaN or infinity.
    DtypeError
        ``W`` is boolean, complex or quantised.

    Examples
    --------
    >>> import numpy as np
    >>> in_strength(np.array([[1.0, -2.0], [3.0, 4.0]])).tolist()
    [-1.0, 7.0]
    >>> in_strength(np.array([[1.0, -2.0], [3.0, 4.0]]), abs=True).tolist()
    [3.0, 7.0]
    """
    return _strength(W, 1, abs, "W")


def out_strength(W: Any, abs: bool = False) -> Any:
    r"""Out-strength of every input neuron, :math:`s^{out}_j = \sum_i W_{ij}` (or ``|W_{ij}|``).

    Parameters
    ----------
    W : array or tensor of shape (n_out, n_in)
        Canonical weight matrix.
    abs : bool, default False
        Sum absolute values instead of signed ones.

    Returns
    -------
    ndarray or tensor of shape (n_in,), float64
        Same kind as ``W``.

    Raises
    ------
    ShapeError, NonFiniteError, DtypeError
        As :func:`in_strength`.

    Examples
    --------
    >>> import numpy as np
    >>> out_strength(np.array([[1.0, -2.0], [3.0, 4.0]])).tolist()
    [4.0, 2.0]
    """
    return _strength(W, 0, abs, "W")


def degree(W: Any) -> tuple[Any, Any]:
    r"""Number of non-zero weights per neuron.

    .. math:: k^{in}_i = \#\{j : W_{ij} \neq 0\}, \qquad k^{out}_j = \#\{i : W_{ij} \neq 0\}.

    Parameters
    ----------
    W : array or tensor of shape (n_out, n_in)

    Returns
    -------
    in_degree : int64 array or tensor of shape (n_out,)
        In-degree of the output neurons.
    out_degree : int64 array or tensor of shape (n_in,)
        Out-degree of the input neurons.

    Raises
    ------
    ShapeError, NonFiniteError, DtypeError
        As :func:`in_strength`.

    Examples
    --------
    >>> import numpy as np
    >>> k_in, k_out = degree(np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]))
    >>> k_in.tolist(), k_out.tolist()
    ([2, 1], [1, 0, 2])
    """
    W = check_matrix(W, "W", allow_torch=True)
    if is_torch(W):
        import torch

        X = W.detach()
        return torch.count_nonzero(X, dim=1), torch.count_nonzero(X, dim=0)
    return (np.count_nonzero(W, axis=1).astype(np.int64),
            np.count_nonzero(W, axis=0).astype(np.int64))


@dataclass(frozen=True)
class LayerSums:
    r"""The row and column sums of one layer that its tables need, from one pass (:func:`layer_sums`).

    All float64 (degrees int64); ``W`` of shape ``(n_out, n_in)``.

    Attributes
    ----------
    in_strength, in_abs, in_sq : ndarray of shape (n_out,)
        :math:`\sum_j W_{ij}`, :math:`\sum_j |W_{ij}|`, :math:`\sum_j W_{ij}^2` (output neurons).
    out_strength, out_abs, out_sq : ndarray of shape (n_in,)
        The same over :math:`i` (input neurons).
    in_degree, out_degree : int64 ndarray of shape (n_out,) / (n_in,)
        Non-zero weights per output / input neuron (:func:`degree`).
    sq_dev : float
        :math:`\sum_{ij} (W_{ij} - \bar w)^2`, for the weights' standard deviation.
    """

    in_strength: np.ndarray
    out_strength: np.ndarray
    in_abs: np.ndarray
    out_abs: np.ndarray
    in_sq: np.ndarray
    out_sq: np.ndarray
    in_degree: np.ndarray
    out_degree: np.ndarray
    sq_dev: float


def layer_sums(W: Any) -> LayerSums:
    r"""Strengths (signed and of ``|w|``), sums of squares, degrees and the squared deviation of the
    weights of a numpy matrix, in one pass over it.

    The pass goes through ``W`` in float64 row blocks: one block up to :data:`_BLOCK_ELEMENTS`
    weights (the sums of :func:`strength_stats` and :func:`in_strength` of earlier releases, bit for
    bit), blocks of :data:`_PASS_ELEMENTS` (512 KiB, in cache) above, whose column sums are added
    block by block: a float64 sum of the same terms in another order, within
    :math:`\gamma_n \sum |w|` of the one-block sum (Higham 2002, 4.2), ``n = n_out`` or ``n_in``.
    Rows with a zero weight (``min |w| = 0``) are the only ones whose degrees are counted.
    ``sq_dev`` is the two-pass :math:`\sum (w - \bar w)^2` for one block, and above
    :math:`\sum w^2 - n \bar w^2` from the same pass unless the mean dominates
    (:math:`\sum w^2 > 4 \,\mathrm{sq\_dev}`, where the difference loses digits), when a second
    pass takes the deviations; the one-pass value is within :math:`16 \gamma_N` (relative) of
    the exact one, ``N`` the number of weights (about 2e-9 for 11.5M weights; BLAS-free sums
    are typically 1e-15 close).

    Parameters
    ----------
    W : ndarray of shape (n_out, n_in)
        Validated by the caller (:func:`netinit.validation.check_matrix`): real dtype, 2-D,
        non-empty; NaN or infinity turn the sums non-finite.

    Returns
    -------
    LayerSums
    """
    W = np.asarray(W)
    n_out, n_in = (int(v) for v in W.shape)
    size = n_out * n_in
    one_block = size <= _BLOCK_ELEMENTS
    step = max(1, (_BLOCK_ELEMENTS if one_block else min(_PASS_ELEMENTS, _BLOCK_ELEMENTS)) // n_in)
    rows = min(step, n_out)
    buf, abuf = np.empty((rows, n_in)), np.empty((rows, n_in))
    s_in, a_in, q_in, k_in = np.empty(n_out), np.empty(n_out), np.empty(n_out), np.full(n_out, n_in, np.int64)
    s_out, a_out, q_out = np.zeros(n_in), np.zeros(n_in), np.zeros(n_in)
    k_out = np.full(n_in, n_out, np.int64)
    sq_dev = 0.0
    for a in range(0, n_out, step):
        b = min(a + step, n_out)
        B, A = buf[:b - a], abuf[:b - a]
        np.copyto(B, W[a:b], casting="unsafe")
        s_in[a:b] = B.sum(axis=1)
        s_out += B.sum(axis=0)
        q_in[a:b] = np.einsum("ij,ij->i", B, B)
        q_out += np.einsum("ij,ij->j", B, B)
        if one_block:  # the two-pass deviations of earlier releases (the mean is known: one block)
            mean = float(s_in.sum()) / size
            np.subtract(B, mean, out=A)
            sq_dev = float(np.einsum("ij,ij->", A, A))
        np.abs(B, out=A)
        a_in[a:b] = A.sum(axis=1)
        a_out += A.sum(axis=0)
        zero = np.flatnonzero(A.min(axis=1) == 0)  # rows holding a zero weight: count those
        if len(zero):
            Z = A[zero] != 0
            k_in[a + zero] = Z.sum(axis=1)
            k_out -= len(zero) - Z.sum(axis=0)
    if not one_block:
        mean = float(s_in.sum()) / size
        total_sq = float(q_in.sum())
        sq_dev = total_sq - size * mean * mean
        if not (math.isfinite(sq_dev) and 4.0 * sq_dev >= total_sq):  # the mean dominates: digits lost
            sq_dev = 0.0
            for a in range(0, n_out, step):  # second pass: squared deviations (stable)
                B = buf[:min(a + step, n_out) - a]
                np.copyto(B, W[a:a + step], casting="unsafe")
                B -= mean
                sq_dev += float(np.einsum("ij,ij->", B, B))
    return LayerSums(s_in, s_out, a_in, a_out, q_in, q_out, k_in, k_out, sq_dev)


def strength_stats(W: Any) -> dict[str, float | int]:
    r"""Summary statistics of the strengths and weights of a layer.

    With :math:`s^{in}, s^{out}` the signed strengths and :math:`a^{in}, a^{out}` the absolute
    ones (:func:`in_strength`, :func:`out_strength`), means and **population** variances
    (``ddof=0``), e.g. :math:`\operatorname{var}(s^{in}) = \frac1{n_{out}} \sum_i
    (s^{in}_i - \bar s^{in})^2`, and the mean and population standard deviation of the
    ``n_out * n_in`` weights (zeros included).

    Parameters
    ----------
    W : array or tensor of shape (n_out, n_in)

    Returns
    -------
    dict
        ``in_strength_mean``, ``in_strength_var``, ``out_strength_mean``, ``out_strength_var``
        (signed); ``in_strength_abs_mean``, ``in_strength_abs_var``, ``out_strength_abs_mean``,
        ``out_strength_abs_var``; ``weight_mean``, ``weight_std``; ``n_weights`` (int),
        ``n_zero`` (int, weights exactly 0: pruned connections) and ``density`` (share of
        non-zero weights). Python floats and ints.

    Raises
    ------
    ShapeError, NonFiniteError, DtypeError
        As :func:`in_strength`.

    Examples
    --------
    >>> import numpy as np
    >>> s = strength_stats(np.array([[1.0, -1.0], [2.0, 0.0]]))
    >>> s["in_strength_mean"], s["in_strength_var"], s["n_zero"], s["density"]
    (1.0, 1.0, 1, 0.75)
    """
    W = check_matrix(W, "W", allow_torch=True)
    n_out, n_in = (int(v) for v in W.shape)
    if is_torch(W):
        import torch

        X = W.detach()  # float64 row blocks (~8 MiB), never a float64 copy of the whole matrix
        f64, step = torch.float64, max(1, _BLOCK_ELEMENTS // n_in)
        s_in, a_in = torch.empty(n_out, dtype=f64, device=X.device), torch.empty(n_out, dtype=f64, device=X.device)
        s_out, a_out = torch.zeros(n_in, dtype=f64, device=X.device), torch.zeros(n_in, dtype=f64, device=X.device)
        for a in range(0, n_out, step):
            B = X[a:a + step].to(f64, copy=True)  # a copy even of float64: made absolute in place
            s_in[a:a + step], s_out = B.sum(1), s_out + B.sum(0)
            B.abs_()
            a_in[a:a + step], a_out = B.sum(1), a_out + B.sum(0)
        n_nonzero = int(torch.count_nonzero(X))
        mean = float(s_in.sum()) / (n_out * n_in)
        sq_dev = 0.0
        for a in range(0, n_out, step):  # second pass: squared deviations (stable variance)
            B = X[a:a + step].to(f64) - mean
            sq_dev += float((B * B).sum())
        var = [float(v.var(correction=0)) for v in (s_in, s_out, a_in, a_out)]
        means = [float(v.mean()) for v in (s_in, s_out, a_in, a_out)]
        return _stats_dict(means, var, mean, sq_dev, n_out * n_in, n_nonzero)
    return stats_from_sums(layer_sums(W))


def stats_from_sums(sums: LayerSums) -> dict[str, float | int]:
    """:func:`strength_stats` from the :func:`layer_sums` of a layer (no pass over the weights)."""
    n_out, n_in = len(sums.in_strength), len(sums.out_strength)
    vecs = (sums.in_strength, sums.out_strength, sums.in_abs, sums.out_abs)
    mean = float(sums.in_strength.sum()) / (n_out * n_in)
    return _stats_dict([float(v.mean()) for v in vecs], [float(v.var()) for v in vecs], mean, sums.sq_dev,
                       n_out * n_in, int(sums.in_degree.sum()))


def _stats_dict(means: list[float], var: list[float], mean: float, sq_dev: float, size: int,
                n_nonzero: int) -> dict[str, float | int]:
    return {
        "in_strength_mean": means[0],
        "in_strength_var": var[0],
        "out_strength_mean": means[1],
        "out_strength_var": var[1],
        "in_strength_abs_mean": means[2],
        "in_strength_abs_var": var[2],
        "out_strength_abs_mean": means[3],
        "out_strength_abs_var": var[3],
        "weight_mean": mean,
        "weight_std": math.sqrt(sq_dev / size),
        "n_weights": size,
        "n_zero": size - n_nonzero,
        "density": n_nonzero / size,
    }


def strength_variances(M: Any) -> tuple[float, float]:
    """``(Var of in-strengths, Var of out-strengths)`` of a canonical matrix, in float64.

    ``M`` is a numpy array or a torch tensor of shape ``(n_out, n_in)`` (``ndim > 2`` is
    reshaped to ``(shape[0], -1)``); in-strength of output ``i`` is ``M[i, :].sum()``,
    out-strength of input ``j`` is ``M[:, j].sum()``; population variances (``ddof=0``).
    """
    if is_torch(M):
        import torch

        if M.device.type == "cpu" and M.dtype in (torch.float32, torch.float64):
            M = M.detach().numpy()  # numpy's float64-accumulating sums are ~5x faster on the CPU
        else:
            with torch.no_grad():  # sums accumulate in float64 without a float64 copy of M
                A = M.detach().reshape(M.shape[0], -1)
                s_in, s_out = A.sum(1, dtype=torch.float64), A.sum(0, dtype=torch.float64)
                return float(s_in.var(unbiased=False)), float(s_out.var(unbiased=False))
    A = np.asarray(M).reshape(np.shape(M)[0], -1)
    return float(A.sum(1, dtype=np.float64).var()), float(A.sum(0, dtype=np.float64).var())


def chain_strength_correlation(W_prev: Any, W_next: Any, *, abs: bool = False) -> float:
    r"""Pearson correlation of the in- and out-strength of the neurons between two layers.

    The output neurons of ``W_prev`` (shape ``(n_mid, n_in)``) are the input neurons of
    ``W_next`` (shape ``(n_out, n_mid)``). For each of these ``n_mid`` neurons take its
    in-strength in ``W_prev``, :math:`x_m = \sum_j W^{prev}_{mj}`, and its out-strength in
    ``W_next``, :math:`y_m = \sum_i W^{next}_{im}`, and return

    .. math:: r = \frac{\sum_m (x_m - \bar x)(y_m - \bar y)}
                       {\lVert x - \bar x \rVert \, \lVert y - \bar y \rVert}.

    Parameters
    ----------
    W_prev : array or tensor of shape (n_mid, n_in)
    W_next : array or tensor of shape (n_out, n_mid)
    abs : bool, default False
        Correlate absolute strengths instead of signed ones.

    Returns
    -------
    float
        ``r`` in [-1, 1]; ``nan`` when it is undefined: ``n_mid < 2`` or either strength vector
        is constant (see :func:`netinit.metrics.correlation.correlation_matrix`).

    Raises
    ------
    ShapeError
        A matrix is not 2-D or empty, or ``W_next.shape[1] != W_prev.shape[0]``.
    NonFiniteError, DtypeError
        As :func:`in_strength`.

    Examples
    --------
    >>> import numpy as np
    >>> W1 = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 0.0]])   # in-strengths 1, 3, 0
    >>> W2 = np.array([[1.0, 2.0, 0.0], [0.0, 2.0, 0.5]])     # out-strengths 1, 4, 0.5
    >>> round(chain_strength_correlation(W1, W2), 4)
    0.9799
    """
    W_prev = check_matrix(W_prev, "W_prev", allow_torch=True)
    W_next = check_matrix(W_next, "W_next", allow_torch=True)
    if int(W_next.shape[1]) != int(W_prev.shape[0]):
        raise ShapeError(
            f"layers do not chain: W_prev has shape {tuple(W_prev.shape)} ({W_prev.shape[0]} "
            f"outputs) but W_next has shape {tuple(W_next.shape)} ({W_next.shape[1]} inputs)"
        )
    if int(W_prev.shape[0]) < 2:
        return float("nan")
    x = in_strength(W_prev, abs)
    y = out_strength(W_next, abs)
    x = x.cpu().numpy() if is_torch(x) else x
    y = y.cpu().numpy() if is_torch(y) else y
    return float(correlation_matrix(np.stack([x, y]), name="strengths")[0, 1])
