"""The fast CPU engine: PA passes in place on a numpy matrix, block by block.

It computes exactly what :func:`netinit.rewire.kernels.pa_pass` computes (same float64
operations in the same order, same packed-key sort), with these changes for speed:

* the rows are processed in blocks; for each block the values are sorted at once
  (``ndarray.sort(axis=1)``) and the block's exponential draws are made at once;
* on large matrices a helper thread prepares block ``b + 1`` (draws, value sorts and, for the
  column pass, the transposed copy of the block's columns) while the calling thread rewires
  block ``b``; numpy releases the GIL in its sorts, ufuncs and random fills, so the two cores
  work at once;
* the per-row work is ~9 numpy calls on preallocated buffers (``out=``), no allocation; the
  argsort is an in-place int64 sort of packed keys (3x faster than ``argsort`` of the keys,
  thanks to numpy's SIMD sorts);
* the column pass works on ``(block, n_rows)`` transposed copies of column blocks; blocks hold
  at most 2**17 entries and an eighth of the matrix, so the extra memory stays under the
  matrix's own size (about half of it for small matrices, a few MiB for large ones).

Draws are made block after block from one stream; numpy generators produce the same numbers in
chunks as at once, so the result is the kernel's applied to the whole ``E``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from netinit.rewire.kernels import index_bits

__all__ = ["rewire_inplace", "Draw"]

#: ``draw(out)`` fills the float64 array ``out`` with Exp(1) draws from the pass's stream.
Draw = Callable[[np.ndarray], None]

_BLOCK_ELEMENTS = 1 << 17  # entries per block (1 MiB of float64 draws)
_THREAD_MIN_ELEMENTS = 1 << 18  # below this, one thread (a helper's hand-offs cost more)


def _block_rows(n_rows: int, n_cols: int) -> int:
    """Rows per block: at most 1 MiB of draws, and an eighth of the rows (so the buffers stay
    well under the layer's size), but at least 8 rows (per-block costs stay small)."""
    return int(min(n_rows, max(8, min(_BLOCK_ELEMENTS // n_cols, -(-n_rows // 8)))))


class _Rows:
    """Per-pass state: running strengths ``s`` and the row buffers of one pass."""

    def __init__(self, n_cols: int) -> None:
        b = index_bits(n_cols)
        self.lo = np.int64((1 << b) - 1)
        self.hi = np.int64(~((1 << b) - 1))
        self.idx = np.arange(n_cols, dtype=np.int64)
        self.s = np.zeros(n_cols, dtype=np.float64)
        self.p = np.empty(n_cols, dtype=np.float64)
        self.key = np.empty(n_cols, dtype=np.float64)
        self.order = np.empty(n_cols, dtype=np.int64)
        self.started = False  # has the pass's row 0 been seen?

    def run(self, X: np.ndarray, SV: np.ndarray, E: np.ndarray) -> None:
        """Rewire the rows of block ``X`` in place (``SV``: its rows sorted; ``E``: its draws)."""
        s, p, key, order, idx, lo, hi = self.s, self.p, self.key, self.order, self.idx, self.lo, self.hi
        kb = key.view(np.int64)
        add, divide, band, bor, smallest = np.add, np.divide, np.bitwise_and, np.bitwise_or, np.minimum.reduce
        start = 0
        if not self.started:  # row 0 of the pass keeps its order
            add(s, X[0], out=s)
            self.started = True
            start = 1
        for t in range(start, X.shape[0]):
            row = X[t]
            add(s, abs(smallest(s)) + 1.0, out=p)
            divide(E[t], p, out=key)
            band(kb, hi, out=kb)
            bor(kb, idx, out=kb)
            kb.sort()
            band(kb, lo, out=order)
            row[order] = SV[t]
            add(s, row, out=s)


def _row_pass(A: np.ndarray, draw: Draw, pool: ThreadPoolExecutor | None) -> None:
    n_rows, n_cols = A.shape
    br = _block_rows(n_rows, n_cols)
    starts = list(range(0, n_rows, br))
    bufs = [(np.empty((br, n_cols), np.float64), np.empty((br, n_cols), A.dtype)) for _ in range(2 if pool else 1)]

    def prepare(k: int) -> tuple[np.ndarray, np.ndarray]:
        r0 = starts[k]
        r1 = min(r0 + br, n_rows)
        E, SV = (b[: r1 - r0] for b in bufs[k % len(bufs)])
        draw(E)
        np.copyto(SV, A[r0:r1])
        SV.sort(axis=1)
        return E, SV

    state = _Rows(n_cols)
    nxt = pool.submit(prepare, 0) if pool else None
    for k, r0 in enumerate(starts):
        if pool:
            E, SV = nxt.result()
            if k + 1 < len(starts):
                nxt = pool.submit(prepare, k + 1)
        else:
            E, SV = prepare(k)
        state.run(A[r0 : r0 + SV.shape[0]], SV, E)


def _col_pass(A: np.ndarray, draw: Draw, pool: ThreadPoolExecutor | None) -> None:
    n_rows, n_cols = A.shape
    bc = _block_rows(n_cols, n_rows)
    starts = list(range(0, n_cols, bc))
    nb = 2 if pool else 1
    bufs = [
        (np.empty((bc, n_rows), np.float64), np.empty((bc, n_rows), A.dtype), np.empty((bc, n_rows), A.dtype))
        for _ in range(nb)
    ]

    def prepare(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c0 = starts[k]
        c1 = min(c0 + bc, n_cols)
        E, SV, T = (b[: c1 - c0] for b in bufs[k % nb])
        draw(E)
        np.copyto(T, A[:, c0:c1].T)
        np.copyto(SV, T)
        SV.sort(axis=1)
        return E, SV, T

    state = _Rows(n_rows)
    nxt = pool.submit(prepare, 0) if pool else None
    for k, c0 in enumerate(starts):
        if pool:
            E, SV, T = nxt.result()
            if k + 1 < len(starts):
                nxt = pool.submit(prepare, k + 1)
        else:
            E, SV, T = prepare(k)
        state.run(T, SV, E)
        A[:, c0 : c0 + T.shape[0]] = T.T


def rewire_inplace(
    A: np.ndarray,
    passes: str,
    draw_rows: Draw,
    draw_cols: Draw,
    *,
    threads: bool | None = None,
) -> np.ndarray:
    """Rewire the 2-D C-contiguous float32/float64 array ``A`` in place and return it.

    ``passes`` is ``"rows"``, ``"cols"`` or ``"both"`` (rows, then columns of the result);
    ``draw_rows`` fills the row pass's draws (``E`` of shape ``A.shape``, block after block),
    ``draw_cols`` those of the column pass (shape ``A.shape[::-1]``). ``threads=None`` uses a
    helper thread on matrices of at least 2**18 entries.
    """
    if threads is None:
        threads = A.size >= _THREAD_MIN_ELEMENTS
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netinit-pa") if threads else None
    try:
        if passes in ("both", "rows") and A.shape[0] > 1:
            _row_pass(A, draw_rows, pool)
        if passes in ("both", "cols") and A.shape[1] > 1:
            _col_pass(A, draw_cols, pool)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return A
