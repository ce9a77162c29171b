"""The PA pass on CUDA with Triton kernels. Exactly :func:`netinit.rewire.kernels.pa_pass`.

Imported only when a CUDA tensor is rewired; importing it raises ImportError when Triton is
missing, and the caller then falls back to the torch kernel. Both kernels perform the oracle's
float64 operations (``p = s + (|min s| + 1)``, ``E / p`` correctly rounded, ``s`` updated by one
addition per row) and order the columns by the same packed int64 keys, so their results are
bit-identical to numpy's. The values of every row are sorted beforehand (one ``torch.sort``).

Rows of up to ``SINGLE_MAX_COLS`` entries: **one program walks all rows** (one launch per
pass). It keeps ``s`` in registers, sorts the packed keys of a row with ``tl.sort``, scatters the
sorted values to ``out[i, order]`` and, after a block barrier, reads the row back in column
order to update ``s``; the next row's loads are issued before the current row's sort. Triton's
bitonic ``tl.sort`` slows down sharply past ~1024 entries (about 200 us per 8192-entry row on an
H100), hence the second kernel.

Longer rows: **one launch per row, a bucket of key values per program** (``ctas_for`` programs,
about 16 keys each and at most 256). Every program computes ``c = |min s| + 1`` from the
per-program minima the previous row left, sorts the keys of a fixed sample of 256 columns
(``tl.sort``) to cut the key range into as many buckets as programs (thresholds are computed
identically by every program, so each key lands in exactly one bucket whatever the sample),
scans the whole row's keys to count those below its bucket and compact those inside it (a
cumulative sum), ranks its keys by counting comparisons, and writes ``out[i, col] =
sorted[i, below + rank]`` and ``s_next[col] = s[col] + value`` (``s`` is double-buffered, the
kernel boundary is the grid-wide barrier between rows). The launches are recorded once into a
CUDA graph of ``_CHUNK`` row steps that reads its first row from device memory, and replayed;
nothing returns to the host inside a pass.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from netinit.rewire.kernels import index_bits

__all__ = ["pa_pass_triton", "ctas_for", "SINGLE_MAX_COLS"]

_INT64_MAX = 0x7FFFFFFFFFFFFFFF
_INF_BITS = tl.constexpr(0x7FF0000000000000)  # +inf as int64 bits: pads sort after every key


@triton.jit(do_not_specialize=["n_rows", "n_cols", "lo_mask", "hi_mask"])
def _pa_rows_kernel(
    out_ptr, sv_ptr, e_ptr, n_rows, n_cols, lo_mask, hi_mask, pad, BLOCK: tl.constexpr,
):
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    n = n_cols.to(tl.int64)
    s = tl.load(out_ptr + cols, mask=mask, other=0.0).to(tl.float64)
    e = tl.load(e_ptr + n + cols, mask=mask & (n_rows > 1), other=1.0)
    v = tl.load(sv_ptr + n + cols, mask=mask & (n_rows > 1))
    for i in range(1, n_rows):
        base = n * i  # int64: no overflow past 2**31 entries
        m = tl.min(tl.where(mask, s, float("inf")), axis=0)
        p = s + (tl.abs(m) + 1.0)
        key = e / p  # float64: div.rn.f64, correctly rounded
        kb = (key.to(tl.int64, bitcast=True) & hi_mask) | cols.to(tl.int64)
        kb = tl.where(mask, kb, pad)  # padding sorts last
        # prefetch row i + 1 (independent of this row's result)
        nxt = mask & (i + 1 < n_rows)
        e = tl.load(e_ptr + base + n + cols, mask=nxt, other=1.0)
        v_now = v
        v = tl.load(sv_ptr + base + n + cols, mask=nxt)
        order = tl.sort(kb) & lo_mask
        tl.store(out_ptr + base + order, v_now, mask=mask)
        tl.debug_barrier()
        row = tl.load(out_ptr + base + cols, mask=mask, other=0.0)
        s = s + row.to(tl.float64)


@triton.jit(do_not_specialize=["t", "n_rows", "n_cols", "lo_mask", "hi_mask"])
def _pa_step_kernel(
    out_ptr, sv_ptr, e_ptr, s_ptr, min_ptr, scratch_ptr, base_ptr, t, n_rows, n_cols, lo_mask, hi_mask,
    TILE: tl.constexpr, SAMPLE: tl.constexpr, Q: tl.constexpr, GB: tl.constexpr,
):
    """Row ``i = *base + t`` of the pass, spread over the grid's programs (a bucket each)."""
    i = tl.load(base_ptr) + t
    if i < n_rows:
        g = tl.program_id(0)
        n_prog = tl.num_programs(0)
        n = n_cols.to(tl.int64)
        row = n * i
        s_cur = s_ptr + (i % 2) * n
        s_nxt = s_ptr + ((i + 1) % 2) * n
        # 1. c = |min s| + 1, from the programs' minima of the previous row
        gs = tl.arange(0, GB)
        minima = tl.load(min_ptr + (i % 2) * GB + gs, mask=gs < n_prog, other=float("inf"))
        cols = tl.arange(0, TILE)  # the first tile's loads go out now, before they are needed
        e_t = tl.load(e_ptr + row + cols, mask=cols < n_cols, other=1.0)
        s_t = tl.load(s_cur + cols, mask=cols < n_cols, other=0.0)
        c = tl.abs(tl.min(minima, axis=0)) + 1.0
        # 2. this program's bucket [t_lo, t_hi) of key values, from the sorted keys of a sample
        t_lo = tl.full([], -float("inf"), tl.float64)
        t_hi = tl.full([], float("inf"), tl.float64)
        if n_prog > 1:
            k = tl.arange(0, SAMPLE)
            n_s = tl.minimum(n, SAMPLE)
            ks = (k.to(tl.int64) * n) // n_s
            km = k < n_s
            key_s = tl.load(e_ptr + row + ks, mask=km, other=1.0) / (tl.load(s_cur + ks, mask=km, other=0.0) + c)
            kb_s = (key_s.to(tl.int64, bitcast=True) & hi_mask) | ks
            srt = tl.sort(tl.where(km, kb_s, _INF_BITS)).to(tl.float64, bitcast=True)
            lo_at = (g * n_s) // n_prog
            hi_at = ((g + 1) * n_s) // n_prog
            at_lo = tl.max(tl.where(k == lo_at, srt, -float("inf")), axis=0)
            at_hi = tl.max(tl.where(k == hi_at, srt, -float("inf")), axis=0)
            t_lo = tl.where(g == 0, -float("inf"), at_lo)
            t_hi = tl.where(g == n_prog - 1, float("inf"), at_hi)
        # 3. keys of the whole row: count those below the bucket, compact those inside it
        scr = scratch_ptr + g.to(tl.int64) * n
        below = tl.full([], 0, tl.int32)
        m = tl.full([], 0, tl.int32)
        for k0 in range(0, n_cols, TILE):
            cols = k0 + tl.arange(0, TILE)
            cm = cols < n_cols
            nm = cols + TILE < n_cols  # prefetch the next tile
            e_n = tl.load(e_ptr + row + TILE + cols, mask=nm, other=1.0)
            s_n = tl.load(s_cur + TILE + cols, mask=nm, other=0.0)
            key = e_t / (s_t + c)
            e_t = e_n
            s_t = s_n
            kb = (key.to(tl.int64, bitcast=True) & hi_mask) | cols.to(tl.int64)
            kf = kb.to(tl.float64, bitcast=True)
            below += tl.sum((cm & (kf < t_lo)).to(tl.int32), axis=0)
            inside = cm & (kf >= t_lo) & (kf < t_hi)
            pos = m + tl.cumsum(inside.to(tl.int32), axis=0) - 1
            tl.store(scr + pos, kb, mask=inside)
            m += tl.sum(inside.to(tl.int32), axis=0)
        tl.debug_barrier()
        # 4. rank inside the bucket by counting; place the values and update the strengths
        low = tl.full([Q], float("inf"), tl.float64)
        for q0 in range(0, m, Q):
            qi = q0 + tl.arange(0, Q)
            qm = qi < m
            qk = tl.load(scr + qi, mask=qm, other=_INF_BITS)
            col = qk & lo_mask
            s_old = tl.load(s_cur + col, mask=qm, other=0.0)
            qf = qk.to(tl.float64, bitcast=True)
            cnt = tl.zeros([Q], tl.int32)
            for k0 in range(0, m, Q):
                ki = k0 + tl.arange(0, Q)
                kf = tl.load(scr + ki, mask=ki < m, other=_INF_BITS).to(tl.float64, bitcast=True)
                cnt += tl.sum((kf[None, :] < qf[:, None]).to(tl.int32), axis=1)
            rank = below + cnt
            v = tl.load(sv_ptr + row + rank, mask=qm)
            tl.store(out_ptr + row + col, v, mask=qm)
            s_new = s_old + v.to(tl.float64)
            tl.store(s_nxt + col, s_new, mask=qm)
            low = tl.minimum(low, tl.where(qm, s_new, float("inf")))
        tl.store(min_ptr + ((i + 1) % 2) * GB + g, tl.min(low, axis=0))


def num_warps_for(block: int) -> int:
    """Warps of the single program for a row of ``block`` (power of two) entries."""
    return 4 if block <= 512 else 8 if block <= 2048 else 16 if block <= 4096 else 32


def ctas_for(n_cols: int) -> int:
    """Programs per row of the bucketed kernel: about 16 keys each, at most 256.

    Tuned on an H100 (bench/results/rewire_gpu_sweep.log): more programs shorten the counting
    step; past 256 (two per multiprocessor) the programs no longer run at once.
    """
    return max(1, min(256, n_cols // 16))


def pa_pass_triton(M: Any, E: Any, *, num_warps: int | None = None, ctas: int | None = None,
                   tile: int | None = None, mode: str = "auto") -> Any:
    """:func:`~netinit.rewire.pa_pass` of a CUDA tensor ``M`` (2-D) given float64 draws ``E``.

    ``mode``: ``"auto"`` (``"single"`` up to ``SINGLE_MAX_COLS`` columns, else ``"graph"``),
    ``"single"`` (one program for the pass), ``"graph"`` (bucketed row steps replayed from a
    CUDA graph) or ``"loop"`` (the same steps launched one by one). ``num_warps``, ``ctas`` and
    ``tile`` override the tuned launch parameters (for benchmarks).
    """
    if M.dim() != 2 or tuple(E.shape) != tuple(M.shape):
        raise ValueError(f"pa_pass_triton needs 2-D M and E of one shape; got {tuple(M.shape)}, {tuple(E.shape)}")
    n_rows, n_cols = M.shape
    with torch.no_grad():
        out = M.detach().contiguous().clone()
        sorted_rows = torch.sort(out, dim=1).values
        E = E.to(device=M.device, dtype=torch.float64).contiguous()
        bits = index_bits(n_cols)
        if mode == "auto":
            mode = "single" if n_cols <= SINGLE_MAX_COLS else "graph"
        if mode == "single":
            block = triton.next_power_of_2(n_cols)
            _pa_rows_kernel[(1,)](
                out, sorted_rows, E, n_rows, n_cols, (1 << bits) - 1, -(1 << bits), _INT64_MAX,
                BLOCK=block, num_warps=num_warps or num_warps_for(block),
            )
            return out
        if n_rows < 2:
            return out
        G = ctas or ctas_for(n_cols)
        GB = triton.next_power_of_2(G)
        s = torch.empty((2, n_cols), dtype=torch.float64, device=M.device)
        s[1] = out[0]
        minima = torch.full((2, GB), float("inf"), dtype=torch.float64, device=M.device)
        minima[1, 0] = s[1].min()
        scratch = torch.empty(G * n_cols, dtype=torch.int64, device=M.device)
        base = torch.zeros(1, dtype=torch.int64, device=M.device)
        tile = min(tile or 2048, triton.next_power_of_2(n_cols))
        args = [out, sorted_rows, E, s, minima, scratch, base, 0, n_rows, n_cols, (1 << bits) - 1, -(1 << bits),
                tile, 256, 64, GB]
        launch = _Launcher(_pa_step_kernel, G, args, n_constexpr=4, num_warps=num_warps or 8)
        if mode == "graph" and n_rows - 1 > _CHUNK and M.is_cuda:
            _replay_in_graph(launch, base, n_rows)
        else:
            for i in range(1, n_rows):
                launch(i)
    return out


_CHUNK = 64  # rows per captured CUDA graph
SINGLE_MAX_COLS = 1024  # up to this row length one program walks all rows (one launch per pass)


class _Launcher:
    """Launches ``kernel`` on ``grid`` programs with ``args`` and the row offset ``t``.

    The first launch goes through Triton's JIT (compiling if needed); later ones call the
    compiled kernel directly, skipping the argument binding that costs most of a launch.
    """

    def __init__(self, kernel: Any, grid: int, args: list, n_constexpr: int, num_warps: int) -> None:
        self.kernel, self.grid, self.args, self.num_warps = kernel, grid, args, num_warps
        self.compiled = None
        self.direct = True
        self.t_at = kernel.arg_names.index("t")
        self.n_constexpr = n_constexpr

    def __call__(self, t: int) -> None:
        args = list(self.args)
        args[self.t_at] = t
        if self.compiled is not None and self.direct:
            try:
                self.compiled[(self.grid, 1, 1)](*args)
                return
            except Exception:  # a Triton whose compiled-kernel API differs: use the JIT path
                self.direct = False
        n = len(args) - self.n_constexpr
        names = self.kernel.arg_names[n:]
        kernel = self.kernel[(self.grid,)](*args[:n], **dict(zip(names, args[n:])), num_warps=self.num_warps)
        if kernel is not None and hasattr(kernel, "__getitem__"):
            self.compiled = kernel


def _replay_in_graph(step: Any, base: Any, n_rows: int) -> None:
    """Capture ``_CHUNK`` row steps (row ``*base + t``) and ``base += _CHUNK`` once; replay."""
    step(n_rows)  # compiles (row n_rows does not exist: a no-op)
    step(n_rows)  # and loads the direct launcher
    base.fill_(1)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for t in range(_CHUNK):
            step(t)
        base.add_(_CHUNK)
    for _ in range(-(-(n_rows - 1) // _CHUNK)):
        graph.replay()
