"""The correlation summary of netinit before issue 14 (full float64 Gram in blocks of 1024 rows,
five passes over each block): the benchmark's baseline, copied verbatim from
``netinit/metrics/correlation.py`` at commit 7389508.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netinit.errors import ShapeError
from netinit.validation import check_finite, is_torch

__all__ = ["baseline_correlation_summary"]

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



def baseline_correlation_summary(
    X: Any, *, threshold: float = 0.5, centre: bool = True, name: str = "X"
) -> dict[str, float]:
    """The old ``correlation_summary`` (same arguments and keys)."""
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
