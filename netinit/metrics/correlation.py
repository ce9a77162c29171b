r"""Neuron-to-neuron correlation of weight vectors (or activations) and its summaries.

For a matrix ``X`` of shape ``(n, d)`` whose rows are the vectors of ``n`` neurons (the incoming
weights of a layer's output neurons, the columns of an activation batch transposed, ...), the
Pearson correlation of neurons ``a`` and ``b`` is

.. math:: r_{ab} = \frac{\sum_k (x_{ak} - \bar x_a)(x_{bk} - \bar x_b)}
                       {\lVert x_a - \bar x_a \rVert \, \lVert x_b - \bar x_b \rVert}.

Rows with zero variance (a constant neuron: a dead ReLU, an all-equal weight vector) have no
correlation; they are counted as ``n_constant`` and left out of every summary, never averaged
in as NaN. Summaries are computed block by block, so memory stays ``O(block * n)`` even when the
full ``n x n`` matrix would not fit.

The effective number of neurons is the participation ratio of the eigenvalues of ``R``:
``(sum lambda)^2 / sum lambda^2 = trace(R)^2 / ||R||_F^2``, between 1 (all neurons identical up to
sign and scale) and ``n`` (pairwise uncorrelated).

Works on numpy arrays and on torch tensors (on their own device); accumulation is float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netinit.errors import ShapeError
from netinit.validation import check_finite, is_torch

__all__ = ["correlation_matrix", "correlation_summary"]

_BLOCK = 1024


def _standardise(X: Any, centre: bool):
    """Rows centred (Pearson) or not (cosine) and scaled to unit norm; mask of usable rows."""
    if is_torch(X):
        import torch

        Z = X.detach().to(torch.float64)
        if centre:
            Z = Z - Z.mean(dim=1, keepdim=True)
        norms = torch.linalg.vector_norm(Z, dim=1)
        scale = torch.clamp(Z.abs().amax(dim=1), min=1.0)
        ok = norms > 1e-12 * scale * (Z.shape[1] ** 0.5)
        Z = Z[ok] / norms[ok, None]
        return Z, ok
    Z = np.asarray(X, dtype=np.float64)
    if centre:
        Z = Z - Z.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(Z, axis=1)
    scale = np.maximum(np.abs(Z).max(axis=1, initial=0.0), 1.0)
    ok = norms > 1e-12 * scale * np.sqrt(Z.shape[1])
    return Z[ok] / norms[ok, None], ok


def _check(X: Any, name: str) -> None:
    if len(X.shape) != 2:
        raise ShapeError(f"{name}: expected a 2-D matrix (neurons, features), got shape {tuple(X.shape)}")
    if X.shape[1] < 2:
        raise ShapeError(
            f"{name}: correlation needs at least 2 features per neuron, got shape {tuple(X.shape)}"
        )
    check_finite(X, name)


def correlation_matrix(X: Any, *, centre: bool = True, name: str = "X") -> np.ndarray:
    """Pearson (or cosine) correlation matrix of the rows of ``X``.

    Parameters
    ----------
    X : array of shape (n, d)
        One row per neuron.
    centre : bool, default True
        Centre each row first (Pearson); ``False`` gives cosine similarity.
    name : str
        Used in error messages.

    Returns
    -------
    R : ndarray of shape (n, n), float64
        Rows and columns of constant neurons are NaN (their correlation is undefined);
        the diagonal of the others is 1.

    Raises
    ------
    ShapeError
        ``X`` is not 2-D or has fewer than 2 columns.
    NonFiniteError
        ``X`` holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> R = correlation_matrix(np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.1], [3.0, 2.0, 1.0]]))
    >>> np.round(R[0], 3).tolist()
    [1.0, 1.0, -1.0]
    """
    _check(X, name)
    Z, ok = _standardise(X, centre)
    if is_torch(Z):
        Z, ok = Z.cpu().numpy(), ok.cpu().numpy()
    n = X.shape[0]
    R = np.full((n, n), np.nan)
    idx = np.flatnonzero(ok)
    sub = np.clip(Z @ Z.T, -1.0, 1.0)
    np.fill_diagonal(sub, 1.0)
    R[np.ix_(idx, idx)] = sub
    return R


def correlation_summary(
    X: Any, *, threshold: float = 0.5, centre: bool = True, name: str = "X"
) -> dict[str, float]:
    """Summaries of the pairwise correlation of the rows of ``X`` over off-diagonal pairs.

    Parameters
    ----------
    X : array of shape (n, d)
        One row per neuron (numpy array or torch tensor on any device).
    threshold : float, default 0.5
        A pair with ``|r| > threshold`` counts as redundant.
    centre : bool, default True
        Pearson (True) or cosine similarity (False).
    name : str
        Used in error messages.

    Returns
    -------
    dict
        ``mean_abs`` (mean ``|r|``), ``max_abs``, ``share_above`` (share of pairs with
        ``|r| > threshold``), ``mean_sq`` (mean ``r^2``), ``effective_n`` (participation ratio of
        the eigenvalues of ``R``), ``n_constant`` (rows left out) and ``n_pairs``. With fewer than
        two usable rows the pair statistics are 0.0 and ``effective_n`` equals the number of
        usable rows: documented values, never NaN.

    Raises
    ------
    ShapeError, NonFiniteError
        As :func:`correlation_matrix`.

    Examples
    --------
    >>> import numpy as np
    >>> s = correlation_summary(np.eye(4))
    >>> round(s["mean_abs"], 4), round(s["effective_n"], 4)
    (0.3333, 3.0)
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    _check(X, name)
    Z, ok = _standardise(X, centre)
    torch_in = is_torch(Z)
    m = int(Z.shape[0])
    n_constant = int(X.shape[0]) - m
    if m < 2:
        return {
            "mean_abs": 0.0, "max_abs": 0.0, "share_above": 0.0, "mean_sq": 0.0,
            "effective_n": float(m), "n_constant": float(n_constant), "n_pairs": 0.0,
        }
    sum_abs = 0.0
    sum_sq = 0.0
    n_above = 0.0
    max_abs = 0.0
    for start in range(0, m, _BLOCK):
        stop = min(start + _BLOCK, m)
        B = Z[start:stop] @ Z.T
        rows = np.arange(stop - start)
        if torch_in:
            import torch

            B = B.clamp(-1.0, 1.0)
            r = torch.arange(stop - start, device=B.device)
            B[r, r + start] = 0.0
            A = B.abs()
            sum_abs += float(A.sum())
            sum_sq += float((B * B).sum())
            n_above += float((A > threshold).sum())
            max_abs = max(max_abs, float(A.max()))
        else:
            B = np.clip(B, -1.0, 1.0)
            B[rows, rows + start] = 0.0
            A = np.abs(B)
            sum_abs += float(A.sum())
            sum_sq += float(np.einsum("ij,ij->", B, B))
            n_above += float(np.count_nonzero(A > threshold))
            max_abs = max(max_abs, float(A.max()))
    n_pairs = m * (m - 1)  # ordered pairs; every statistic below is symmetric
    frob_sq = m + sum_sq  # ||R||_F^2 with the unit diagonal
    return {
        "mean_abs": sum_abs / n_pairs,
        "max_abs": max_abs,
        "share_above": n_above / n_pairs,
        "mean_sq": sum_sq / n_pairs,
        "effective_n": m * m / frob_sq,
        "n_constant": float(n_constant),
        "n_pairs": float(n_pairs // 2),
    }
