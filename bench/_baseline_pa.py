"""A straightforward PA rewiring, written from the paper's text: the benchmark's baseline.

Row after row, the column order is drawn with ``rng.choice(n, n, replace=False, p=p)`` (the
sequential weighted draw without replacement) and the row's sorted values are placed along it.
Same distribution as :func:`netinit.rewire.pa_rewire`, different random numbers.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["baseline_pass", "baseline_rewire", "baseline_seconds"]


def baseline_pass(M: np.ndarray, rng: np.random.Generator, n_rows: int | None = None) -> np.ndarray:
    """One pass over the rows of ``M`` (the first ``n_rows`` rows only, when given)."""
    out = np.array(M, dtype=np.float64)
    stop = M.shape[0] if n_rows is None else min(M.shape[0], n_rows)
    s = np.zeros(M.shape[1])
    for i in range(1, stop):
        s += out[i - 1]
        p = s + abs(s.min()) + 1.0
        order = rng.choice(M.shape[1], M.shape[1], replace=False, p=p / p.sum())
        out[i, order] = np.sort(M[i])
    return out


def baseline_rewire(W: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows pass, then the columns pass on the transpose of the result."""
    M = W.reshape(W.shape[0], -1)
    return baseline_pass(baseline_pass(M, rng).T, rng).T.reshape(W.shape)


def baseline_seconds(W: np.ndarray, rng: np.random.Generator, max_rows: int = 256) -> tuple[float, bool]:
    """Seconds of :func:`baseline_rewire` on ``W``; extrapolated from ``max_rows`` rows per pass.

    Returns ``(seconds, extrapolated)``. Each pass's time is its time on its first
    ``min(rows, max_rows)`` rows scaled by ``(rows - 1) / (timed rows - 1)`` (every row costs
    the same: one weighted draw of the same length).
    """
    M = W.reshape(W.shape[0], -1)
    total, extrapolated = 0.0, False
    for A in (M, M.T):
        k = min(A.shape[0], max_rows)
        if k < 2:
            continue
        t0 = time.perf_counter()
        baseline_pass(A, rng, n_rows=k)
        dt = time.perf_counter() - t0
        if k < A.shape[0]:
            dt *= (A.shape[0] - 1) / (k - 1)
            extrapolated = True
        total += dt
    return total, extrapolated
