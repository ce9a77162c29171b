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
from typing import Any

import numpy as np

from netinit.errors import ShapeError
from netinit.metrics.correlation import correlation_matrix
from netinit.validation import check_matrix, is_torch

__all__ = ["in_strength", "out_strength", "degree", "strength_stats", "strength_variances", "chain_strength_correlation"]

_BLOCK_ELEMENTS = 1 << 20  # numpy statistics are computed on row blocks of ~8 MiB in float64


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

        X = W.detach().to(torch.float64)
        A = X.abs()
        s_in, s_out, a_in, a_out = X.sum(1), X.sum(0), A.sum(1), A.sum(0)
        n_nonzero = int(torch.count_nonzero(X))
        mean = float(s_in.sum()) / (n_out * n_in)
        sq_dev = float(((X - mean) ** 2).sum())
        var = [float(v.var(correction=0)) for v in (s_in, s_out, a_in, a_out)]
        means = [float(v.mean()) for v in (s_in, s_out, a_in, a_out)]
    else:
        s_in, a_in = np.empty(n_out), np.empty(n_out)
        s_out, a_out = np.zeros(n_in), np.zeros(n_in)
        step = max(1, _BLOCK_ELEMENTS // n_in)
        for a in range(0, n_out, step):  # one pass of sums, float64 blocks of ~8 MiB
            B = W[a:a + step].astype(np.float64)
            s_in[a:a + step] = B.sum(axis=1)
            s_out += B.sum(axis=0)
            np.abs(B, out=B)
            a_in[a:a + step] = B.sum(axis=1)
            a_out += B.sum(axis=0)
        n_nonzero = int(np.count_nonzero(W))
        mean = float(s_in.sum()) / (n_out * n_in)
        sq_dev = 0.0
        for a in range(0, n_out, step):  # second pass: squared deviations (stable variance)
            B = W[a:a + step].astype(np.float64) - mean
            sq_dev += float(np.einsum("ij,ij->", B, B))
        var = [float(v.var()) for v in (s_in, s_out, a_in, a_out)]
        means = [float(v.mean()) for v in (s_in, s_out, a_in, a_out)]
    size = n_out * n_in
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
