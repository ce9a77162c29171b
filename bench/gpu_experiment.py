"""Candidate PA pass kernels on CUDA (not used by netinit): sample-sort buckets, two phases per row.

Per row ``i``: phase 1, each of ``P`` programs computes the packed keys of its ``CHUNK``
columns, buckets each key by the number of keys of a fixed sample of ``S`` columns below it
(times ``P / (S + 1)``: non-decreasing in the key, so the buckets concatenate in key order) and
appends it to its bucket's list (an atomic counter per bucket); phase 2, program ``b`` ranks the
keys of bucket ``b`` by counting, places ``sorted[i, below + rank]`` at their columns and updates
``s`` and its per-program minimum. ``"coop"``: one launch of ``P`` resident programs for the
pass, a grid barrier (flags + spin) after each phase; ``"bucket"``: the phases as two kernels
per row replayed from a CUDA graph. Both were bit-identical to numpy's ``pa_pass`` on every shape
tried and neither beat the current ``"graph"`` kernel (bench/results/rewire_gpu_experiment.log).
This file holds the last version (one-tile ranking of buckets of <= 128 keys, sample 512), which
was checked for exactness on three shapes (coop only) but never timed.

    python bench/gpu_experiment.py      # needs CUDA and Triton
"""
import statistics
import sys
import time
from typing import Any

import torch
import triton
import triton.language as tl

sys.path.insert(0, ".")
from netinit.rewire import pa_pass  # noqa: E402
from netinit.rewire._triton import _CHUNK, _Launcher, _replay_in_graph, pa_pass_triton  # noqa: E402
from netinit.rewire.kernels import index_bits  # noqa: E402

_INT64_MAX = 0x7FFFFFFFFFFFFFFF
_MAX_BITS = tl.constexpr(_INT64_MAX)  # pads key lists: above every key


@triton.jit
def _keys_phase(e_own, e_smp, s_ptr, stat_ptr, cnt_ptr, lst_ptr, i, cols, cm, ks, km, n_s, n_cols, hi_mask,
                P: tl.constexpr):
    """Keys of this program's columns of row ``i``, appended to the list of their bucket.

    The bucket of a key is ``count * P // (n_s + 1)``, ``count`` = sampled keys below it: a
    non-decreasing function of the key, so the buckets' concatenation is in key order.
    """
    n = n_cols.to(tl.int64)
    s_cur = s_ptr + (i % 2) * n
    ps = tl.arange(0, P)
    c = tl.abs(tl.min(tl.load(stat_ptr + ps, cache_modifier=".cg"), axis=0)) + 1.0
    k_s = e_smp / (tl.load(s_cur + ks, mask=km, other=0.0, cache_modifier=".cg") + c)
    kb_s = tl.where(km, (k_s.to(tl.int64, bitcast=True) & hi_mask) | ks, _MAX_BITS)
    key = e_own / (tl.load(s_cur + cols, mask=cm, other=0.0, cache_modifier=".cg") + c)
    kb = (key.to(tl.int64, bitcast=True) & hi_mask) | cols.to(tl.int64)
    below = tl.sum((kb_s[None, :] < kb[:, None]).to(tl.int32), axis=1)
    b = (below * P) // (n_s + 1)
    pos = tl.atomic_add(cnt_ptr + (i % 2) * P + b, cm.to(tl.int32), mask=cm, sem="relaxed")
    tl.store(lst_ptr + b.to(tl.int64) * n + pos, kb, mask=cm)


@triton.jit
def _place_phase(out_ptr, sv_ptr, s_ptr, stat_ptr, cnt_ptr, lst_ptr, i, b, n_cols, lo_mask,
                 P: tl.constexpr, Q: tl.constexpr, QF: tl.constexpr = 128):
    """Rank the keys of bucket ``b`` of row ``i``, place their values, update ``s`` and its minimum."""
    n = n_cols.to(tl.int64)
    row = n * i
    s_cur = s_ptr + (i % 2) * n
    s_nxt = s_ptr + ((i + 1) % 2) * n
    ps = tl.arange(0, P)
    cnts = tl.load(cnt_ptr + (i % 2) * P + ps, cache_modifier=".cg")
    below = tl.sum(tl.where(ps < b, cnts, 0), axis=0)
    m = tl.sum(tl.where(ps == b, cnts, 0), axis=0)
    lst = lst_ptr + b.to(tl.int64) * n
    low = tl.full([Q], float("inf"), tl.float64)
    lo1 = tl.full([], float("inf"), tl.float64)
    if m <= QF:  # the whole bucket in one tile: rank it against itself
        fi = tl.arange(0, QF)
        fm = fi < m
        fk = tl.load(lst + fi, mask=fm, other=_MAX_BITS, cache_modifier=".cg")
        fc = fk & lo_mask
        f_old = tl.load(s_cur + fc, mask=fm, other=0.0, cache_modifier=".cg")
        f_rank = tl.sum((fk[None, :] < fk[:, None]).to(tl.int32), axis=1)
        fv = tl.load(sv_ptr + row + below + f_rank, mask=fm)
        tl.store(out_ptr + row + fc, fv, mask=fm)
        f_new = f_old + fv.to(tl.float64)
        tl.store(s_nxt + fc, f_new, mask=fm)
        lo1 = tl.min(tl.where(fm, f_new, float("inf")), axis=0)
        m = m * 0
    for q0 in range(0, m, Q):
        qi = q0 + tl.arange(0, Q)
        qm = qi < m
        qk = tl.load(lst + qi, mask=qm, other=0, cache_modifier=".cg")
        col = qk & lo_mask
        s_old = tl.load(s_cur + col, mask=qm, other=0.0, cache_modifier=".cg")
        cnt = tl.zeros([Q], tl.int32)
        for k0 in range(0, m, Q):
            ki = k0 + tl.arange(0, Q)
            kk = tl.load(lst + ki, mask=ki < m, other=_MAX_BITS, cache_modifier=".cg")
            cnt += tl.sum((kk[None, :] < qk[:, None]).to(tl.int32), axis=1)
        v = tl.load(sv_ptr + row + below + cnt, mask=qm)
        tl.store(out_ptr + row + col, v, mask=qm)
        s_new = s_old + v.to(tl.float64)
        tl.store(s_nxt + col, s_new, mask=qm)
        low = tl.minimum(low, tl.where(qm, s_new, float("inf")))
    tl.store(stat_ptr + b, tl.minimum(lo1, tl.min(low, axis=0)))
    tl.store(cnt_ptr + ((i + 1) % 2) * P + b, 0)  # the counts of row i + 1 (last read by row i - 1)


@triton.jit
def _grid_sync(flag_ptr, epoch, P: tl.constexpr):
    """Wait until all ``P`` programs have reached this point (they are all resident)."""
    tl.debug_barrier()
    tl.atomic_xchg(flag_ptr + tl.program_id(0), epoch, sem="release")
    ps = tl.arange(0, P)
    low = tl.min(tl.load(flag_ptr + ps, volatile=True), axis=0)
    while low < epoch:
        low = tl.min(tl.load(flag_ptr + ps, volatile=True), axis=0)
    tl.atomic_add(flag_ptr + tl.program_id(0), 0, sem="acquire")
    tl.debug_barrier()


@triton.jit
def _sample_cols(g, n_cols, CHUNK: tl.constexpr, S: tl.constexpr):
    n = n_cols.to(tl.int64)
    cols = g * CHUNK + tl.arange(0, CHUNK)
    k = tl.arange(0, S)
    n_s = tl.minimum(n, S)
    return cols, cols < n_cols, (k.to(tl.int64) * n) // n_s, k < n_s, n_s


@triton.jit(do_not_specialize=["n_rows", "n_cols", "lo_mask", "hi_mask"])
def _pa_coop_kernel(out_ptr, sv_ptr, e_ptr, s_ptr, stat_ptr, cnt_ptr, lst_ptr, flag_ptr, n_rows, n_cols,
                    lo_mask, hi_mask, P: tl.constexpr, CHUNK: tl.constexpr, S: tl.constexpr, Q: tl.constexpr):
    """The whole pass in one launch of ``P`` resident programs, two grid barriers per row."""
    g = tl.program_id(0)
    n = n_cols.to(tl.int64)
    cols, cm, ks, km, n_s = _sample_cols(g, n_cols, CHUNK, S)
    e_own = tl.load(e_ptr + n + cols, mask=cm, other=1.0)
    e_smp = tl.load(e_ptr + n + ks, mask=km, other=1.0)
    for i in range(1, n_rows):
        _keys_phase(e_own, e_smp, s_ptr, stat_ptr, cnt_ptr, lst_ptr, i, cols, cm, ks, km, n_s, n_cols,
                    hi_mask, P)
        _grid_sync(flag_ptr, 2 * i, P)
        nxt = n * (i + 1)  # prefetch the next row's draws
        more = i + 1 < n_rows
        e_own = tl.load(e_ptr + nxt + cols, mask=cm & more, other=1.0)
        e_smp = tl.load(e_ptr + nxt + ks, mask=km & more, other=1.0)
        _place_phase(out_ptr, sv_ptr, s_ptr, stat_ptr, cnt_ptr, lst_ptr, i, g, n_cols, lo_mask, P, Q)
        _grid_sync(flag_ptr, 2 * i + 1, P)


@triton.jit(do_not_specialize=["t", "n_rows", "n_cols", "hi_mask"])
def _bucket_keys_kernel(e_ptr, s_ptr, stat_ptr, cnt_ptr, lst_ptr, base_ptr, t, n_rows, n_cols, hi_mask,
                        P: tl.constexpr, CHUNK: tl.constexpr, S: tl.constexpr):
    i = tl.load(base_ptr) + t
    if i < n_rows:
        row = n_cols.to(tl.int64) * i
        cols, cm, ks, km, n_s = _sample_cols(tl.program_id(0), n_cols, CHUNK, S)
        e_own = tl.load(e_ptr + row + cols, mask=cm, other=1.0)
        e_smp = tl.load(e_ptr + row + ks, mask=km, other=1.0)
        _keys_phase(e_own, e_smp, s_ptr, stat_ptr, cnt_ptr, lst_ptr, i, cols, cm, ks, km, n_s, n_cols,
                    hi_mask, P)


@triton.jit(do_not_specialize=["t", "n_rows", "n_cols", "lo_mask"])
def _bucket_place_kernel(out_ptr, sv_ptr, s_ptr, stat_ptr, cnt_ptr, lst_ptr, base_ptr, t, n_rows, n_cols, lo_mask,
                         P: tl.constexpr, Q: tl.constexpr):
    i = tl.load(base_ptr) + t
    if i < n_rows:
        _place_phase(out_ptr, sv_ptr, s_ptr, stat_ptr, cnt_ptr, lst_ptr, i, tl.program_id(0), n_cols, lo_mask,
                     P, Q)


def programs_for(n_cols: int, device: Any) -> int:
    """Programs (= buckets) of the coop/bucket kernels: about 64 keys each, a power of two, at
    most 128 and at most the multiprocessors (the coop kernel needs them all resident)."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    cap = 1 << (min(128, sms).bit_length() - 1)
    return max(2, min(cap, triton.next_power_of_2(max(1, n_cols // 64))))


def pa_pass_bucketed_(out: Any, sorted_rows: Any, E: Any, mode: str, P: int, S: int, num_warps: int) -> None:
    """Rows 1.. of the pass in place on ``out``: ``"coop"`` (one launch) or ``"bucket"`` (two per row)."""
    n_rows, n_cols = out.shape
    dev = out.device
    bits = index_bits(n_cols)
    lo, hi = (1 << bits) - 1, -(1 << bits)
    chunk = triton.next_power_of_2(-(-n_cols // P))
    s = torch.empty((2, n_cols), dtype=torch.float64, device=dev)
    s[1] = out[0]
    stat = torch.full((P,), float("inf"), dtype=torch.float64, device=dev)
    stat[0] = s[1].min()
    cnt = torch.zeros((2, P), dtype=torch.int32, device=dev)
    lst = torch.empty(P * n_cols, dtype=torch.int64, device=dev)
    if mode == "coop":
        flags = torch.zeros(P, dtype=torch.int32, device=dev)
        _pa_coop_kernel[(P,)](out, sorted_rows, E, s, stat, cnt, lst, flags, n_rows, n_cols, lo, hi,
                              P=P, CHUNK=chunk, S=S, Q=64, num_warps=num_warps)
        return
    base = torch.zeros(1, dtype=torch.int64, device=dev)
    keys = _Launcher(_bucket_keys_kernel, -(-n_cols // chunk),
                     [E, s, stat, cnt, lst, base, 0, n_rows, n_cols, hi, P, chunk, S], 3, num_warps)
    place = _Launcher(_bucket_place_kernel, P,
                      [out, sorted_rows, s, stat, cnt, lst, base, 0, n_rows, n_cols, lo, P, 64], 2, num_warps)

    def step(t: int) -> None:
        keys(t)
        place(t)

    if n_rows - 1 > _CHUNK:
        _replay_in_graph(step, base, n_rows)
    else:
        for i in range(1, n_rows):
            step(i)


def pa_pass_bucketed(M: Any, E: Any, mode: str = "coop", ctas: int | None = None, sample: int = 512,
                     num_warps: int = 4) -> Any:
    """``pa_pass`` of a CUDA matrix with the candidate kernels (``mode`` "coop" or "bucket")."""
    out = M.detach().contiguous().clone()
    if out.shape[0] > 1:
        sorted_rows = torch.sort(out, dim=1).values
        E = E.to(device=M.device, dtype=torch.float64).contiguous()
        P = ctas or programs_for(out.shape[1], M.device)
        pa_pass_bucketed_(out, sorted_rows, E, mode, P, sample, num_warps)
    return out


def timed(fn, rep=3):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(rep):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def pair(shape, seed=0, dtype=torch.float32):
    g = torch.Generator(device="cuda").manual_seed(seed)
    M = torch.randn(shape, device="cuda", generator=g).to(dtype)
    E = torch.empty(shape, dtype=torch.float64, device="cuda").exponential_(generator=g)
    return M, E


def main() -> None:
    print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).multi_processor_count, flush=True)
    for mode in ("bucket", "coop"):
        for shape in [(2, 2), (7, 1), (70, 50), (300, 40), (130, 257), (40, 4096), (100, 8192)]:
            M, E = pair(shape, seed=3)
            out = pa_pass_bucketed(M, E, mode)
            ok = bool((out.cpu().numpy() == pa_pass(M.cpu().numpy(), E.cpu().numpy())).all())
            print(f"exact {mode} {shape}: {ok}", flush=True)
    for n in (8192, 4096, 2048, 1024):
        M, E = pair((n, n))
        base_mode = "single" if n <= 1024 else "graph"
        ref = pa_pass_triton(M, E, mode=base_mode)
        t = timed(lambda: pa_pass_triton(M, E, mode=base_mode))
        print(f"{n}: {base_mode} {t:.4f} s/pass {t / n * 1e6:.1f} us/row", flush=True)
        for v in (dict(mode="coop"), dict(mode="bucket"), dict(mode="coop", sample=1024)):
            out = pa_pass_bucketed(M, E, **v)
            t = timed(lambda: pa_pass_bucketed(M, E, **v))
            print(f"{n}: {v} exact={torch.equal(out, ref)} {t:.4f} s/pass {t / n * 1e6:.1f} us/row", flush=True)


if __name__ == "__main__":
    main()
