"""The fast CPU engine: PA passes in place on numpy matrices, block by block.

It computes exactly what :func:`netinit.rewire.kernels.pa_pass` computes (same float64
operations in the same order, same packed-key sort), with these changes for speed:

* the rows are processed in blocks; for each block the values are sorted at once
  (``ndarray.sort(axis=-1)``) and the block's exponential draws are made at once;
* on large matrices a helper thread prepares block ``b + 1`` (draws, value sorts and, for the
  column pass, the transposed copy of the block's columns) while the calling thread rewires
  block ``b``; numpy releases the GIL in its sorts, ufuncs and random fills, so the two cores
  work at once;
* the per-row work is ~9 numpy calls on preallocated buffers (``out=``), no allocation; the
  argsort is an in-place int64 sort of packed keys (3x faster than ``argsort`` of the keys,
  thanks to numpy's SIMD sorts);
* several matrices of one shape and dtype (the repeated blocks of a model) are rewired as a
  *stack*: step ``t`` of every matrix is done by the same ~12 numpy calls on ``(k, n)`` arrays,
  so a model with many small layers pays the per-call cost once per step of the stack, not of
  each layer; each matrix still gets exactly its own result (its strengths, draws and sorts
  never mix with the others');
* the column pass works on ``(block, n_rows)`` transposed copies of column blocks; blocks hold
  at most 2**17 entries (all matrices of a stack together) and an eighth of the rows, so the
  extra memory stays around the stack's own size (about half of it for small matrices, a few
  MiB for large ones).

Draws are made block after block from each matrix's streams; numpy generators produce the same
numbers in chunks as at once, so the result is the kernel's applied to the whole ``E``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np

from netinit.rewire.kernels import index_bits

__all__ = ["rewire_inplace", "rewire_stack_inplace", "plan_stacks", "Draw"]

#: ``draw(out)`` fills the float64 array ``out`` with Exp(1) draws from the pass's stream.
Draw = Callable[[np.ndarray], None]

_BLOCK_ELEMENTS = 1 << 17  # entries per block, all matrices of a stack (1 MiB of float64 draws)
_THREAD_MIN_ELEMENTS = 1 << 18  # below this, one thread (a helper's hand-offs cost more)
_STACK_ROW = 1 << 14  # most entries in one row of a stack, all its matrices together


def plan_stacks(keys: Sequence[object], shapes: Sequence[tuple[int, int]], copied: Sequence[bool]) -> list[list[int]]:
    """Group matrices into stacks for :func:`rewire_stack_inplace`; indices, in order of first use.

    Matrix ``i`` can join matrices of the same ``keys[i]`` (which must fix the shape and dtype;
    ``None`` keeps it alone). A stack's buffers stay around the size of the largest matrix: at
    most ``2**14`` entries in a row of the stack (blocks hold at least 8 rows), and, when the
    matrices are rewired on copies (``copied[i]``), at most the largest matrix's entries in all.
    """
    budget = max((r * c for r, c in shapes), default=0)
    open_: dict[object, list[int]] = {}
    stacks: list[list[int]] = []
    for i, (key, (r, c), copy) in enumerate(zip(keys, shapes, copied)):
        stack = open_.get(key) if key is not None else None
        k = len(stack) + 1 if stack is not None else 1
        if stack is None or k * max(r, c) > _STACK_ROW or (copy and k * r * c > budget):
            stack = []
            if key is not None:
                open_[key] = stack
            stacks.append(stack)
        stack.append(i)
    return stacks


def _block_rows(n_rows: int, n_cols: int, k: int = 1) -> int:
    """Rows per block: at most 1 MiB of draws, and an eighth of the rows (so the buffers stay
    well under the stack's size), but at least 8 rows (per-block costs stay small)."""
    return int(min(n_rows, max(8, min(_BLOCK_ELEMENTS // (k * n_cols), -(-n_rows // 8)))))


class _Rows:
    """Per-pass state of a stack of ``k`` matrices: running strengths ``s`` and row buffers."""

    def __init__(self, k: int, n_cols: int) -> None:
        b = index_bits(n_cols)
        self.lo = np.int64((1 << b) - 1)
        self.hi = np.int64(~((1 << b) - 1))
        self.idx = np.arange(n_cols, dtype=np.int64)
        self.base = (np.arange(k, dtype=np.int64) * n_cols)[:, None]  # flat offset of matrix i
        self.s = np.zeros((k, n_cols), dtype=np.float64)
        self.p = np.empty((k, n_cols), dtype=np.float64)
        self.key = np.empty((k, n_cols), dtype=np.float64)
        self.order = np.empty((k, n_cols), dtype=np.int64)
        self.c = np.empty((k, 1), dtype=np.float64)
        self.started = False  # has the pass's row 0 been seen?

    def run(self, X: np.ndarray, SV: np.ndarray, E: np.ndarray) -> None:
        """Rewire the rows of block ``X`` in place.

        ``X`` and ``SV`` have shape ``(rows, k, n_cols)``: the block's rows of each matrix (row
        0 of a pass in its original order, the others overwritten) and the same rows sorted;
        ``E`` has shape ``(k, rows, n_cols)``: each matrix's draws for the block.
        """
        start = 0
        if not self.started:  # row 0 of the pass keeps its order
            np.add(self.s, X[0], out=self.s)
            self.started = True
            start = 1
        if X.shape[1] == 1:
            self._run_one(X[:, 0], SV[:, 0], E[0], start)
        else:
            self._run_stack(X, SV, E, start)

    def _run_one(self, X: np.ndarray, SV: np.ndarray, E: np.ndarray, start: int) -> None:
        s, p, key, order, idx, lo, hi = self.s[0], self.p[0], self.key[0], self.order[0], self.idx, self.lo, self.hi
        kb = key.view(np.int64)
        add, divide, band, bor, smallest = np.add, np.divide, np.bitwise_and, np.bitwise_or, np.minimum.reduce
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

    def _run_stack(self, X: np.ndarray, SV: np.ndarray, E: np.ndarray, start: int) -> None:
        s, p, key, order, idx, lo, hi, base, c = (
            self.s, self.p, self.key, self.order, self.idx, self.lo, self.hi, self.base, self.c)
        kb = key.view(np.int64)
        flat = order.reshape(-1)
        add, divide, band, bor, absolute, smallest = (
            np.add, np.divide, np.bitwise_and, np.bitwise_or, np.absolute, np.minimum.reduce)
        for t in range(start, X.shape[0]):
            rows = X[t]
            smallest(s, axis=1, out=c[:, 0])  # same float64 operations as _run_one, per matrix
            absolute(c, out=c)
            add(c, 1.0, out=c)
            add(s, c, out=p)
            divide(E[:, t], p, out=key)
            band(kb, hi, out=kb)
            bor(kb, idx, out=kb)
            kb.sort(axis=1)
            band(kb, lo, out=order)
            add(order, base, out=order)
            rows.reshape(-1)[flat] = SV[t].reshape(-1)
            add(s, rows, out=s)


def _run_pass(
    mats: Sequence[np.ndarray],
    draws: Sequence[Draw],
    transposed: bool,
    pool: ThreadPoolExecutor | None,
) -> None:
    """One pass over the rows (or, ``transposed``, the columns) of each matrix of a stack."""
    k = len(mats)
    n_steps, width = mats[0].shape[::-1] if transposed else mats[0].shape
    bt = _block_rows(n_steps, width, k)
    starts = list(range(0, n_steps, bt))
    nb = 2 if pool else 1
    dtype = mats[0].dtype
    bufs = [
        (np.empty((k, bt, width), np.float64), np.empty((bt, k, width), dtype), np.empty((bt, k, width), dtype))
        for _ in range(nb)
    ]

    def prepare(b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r0 = starts[b]
        r1 = min(r0 + bt, n_steps)
        E, SV, X = (buf[:, : r1 - r0] if j == 0 else buf[: r1 - r0] for j, buf in enumerate(bufs[b % nb]))
        for i, (A, draw) in enumerate(zip(mats, draws)):
            draw(E[i])
            rows = A[:, r0:r1].T if transposed else A[r0:r1]
            np.copyto(SV[:, i], rows)
            if r0 == 0:  # row 0 of the pass keeps its order; every other row of X is overwritten
                np.copyto(X[0, i], rows[0])
        SV.sort(axis=-1)
        return E, SV, X

    state = _Rows(k, width)
    nxt = pool.submit(prepare, 0) if pool else None
    for b, r0 in enumerate(starts):
        if pool:
            E, SV, X = nxt.result()
            if b + 1 < len(starts):
                nxt = pool.submit(prepare, b + 1)
        else:
            E, SV, X = prepare(b)
        state.run(X, SV, E)
        r1 = r0 + X.shape[0]
        for i, A in enumerate(mats):
            if transposed:
                A[:, r0:r1] = X[:, i].T
            else:
                A[r0:r1] = X[:, i]


def rewire_stack_inplace(
    mats: Sequence[np.ndarray],
    passes: str,
    draws_rows: Sequence[Draw],
    draws_cols: Sequence[Draw],
    *,
    threads: bool | None = None,
) -> None:
    """Rewire each of the 2-D C-contiguous arrays ``mats`` in place (one shape, one float dtype).

    Matrix ``i`` gets exactly what :func:`rewire_inplace` gives it with ``draws_rows[i]`` and
    ``draws_cols[i]``; the stack only shares the numpy calls. ``threads=None`` uses a helper
    thread when the stack holds at least 2**18 entries.
    """
    if not mats:
        return
    shape, dtype = mats[0].shape, mats[0].dtype
    if any(A.shape != shape or A.dtype != dtype or A.ndim != 2 for A in mats):
        raise ValueError("a stack holds 2-D matrices of one shape and dtype")
    if threads is None:
        threads = len(mats) * mats[0].size >= _THREAD_MIN_ELEMENTS
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netinit-pa") if threads else None
    # p = s + |min s| + 1 rounds to 0 at the smallest strength once |min s| passes 2**53 (weights
    # of extreme magnitude): its key is E / 0 = inf, sorted last (ties by index) as in every
    # backend, so numpy's division warning says nothing useful
    try:
        with np.errstate(divide="ignore"):
            if passes in ("both", "rows") and shape[0] > 1:
                _run_pass(mats, draws_rows, False, pool)
            if passes in ("both", "cols") and shape[1] > 1:
                _run_pass(mats, draws_cols, True, pool)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


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
    rewire_stack_inplace([A], passes, [draw_rows], [draw_cols], threads=threads)
    return A
