"""Benchmark of PA rewiring: the fast path against a per-row baseline and the reference's times.

CPU (default)::

    python bench/bench_rewire.py                      # sizes 64..8192, conv, ResNet-18/50 shapes
    python bench/bench_rewire.py --max-size 2048 --no-models

writes ``bench/results/rewire_cpu.json`` and ``rewire_cpu.md``. GPU::

    python bench/bench_rewire.py --device cuda [--sweep] [--out DIR]

writes ``rewire_gpu.json`` / ``.md`` (baseline there: the torch kernel, one launch series per row).

Columns: ``fast_s`` (median of repeats; :func:`netinit.rewire.pa_rewire` on numpy, or
:func:`netinit.rewire.pa_rewire_` on CUDA, models through :func:`netinit.rewire.rewire_model_`);
``fast_min_s`` the fastest repeat (the 2 cores are shared with other jobs);
``baseline_s`` (same process; per-row ``rng.choice(n, n, replace=False, p=p)`` on the CPU,
extrapolated from the first rows of each pass when marked ``*``); ``reference_s`` (the
reference implementation on a 2-core machine of this kind, quoted in the spec) and
``x_reference`` = reference_s / fast_s; ``extra_mem`` = peak traced allocation during the call
minus the returned array, over the largest layer's bytes (tracemalloc, a separate run).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _baseline_pa import baseline_seconds  # noqa: E402

from netinit.rewire import pa_rewire  # noqa: E402

REFERENCE_S = {  # reference numpy variant, 2-core machine (spec)
    "64x64": 0.010, "256x256": 0.079, "1024x1024": 0.84, "2048x2048": 2.82, "4096x4096": 12.6,
    "8192x8192": 52.0, "16384x16384": 220.0, "conv64x64x3x3": 0.060, "conv256x256x3x3": 0.49,
    "conv512x512x3x3": 1.75, "resnet18": 10.0, "resnet50": 21.3,
}


def resnet_shapes(blocks: list[int], bottleneck: bool) -> list[tuple[int, ...]]:
    """Conv and Linear weight shapes of a torchvision-style ResNet (ImageNet head)."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7)]
    c_in = 64
    for stage, (n, width) in enumerate(zip(blocks, [64, 128, 256, 512])):
        for b in range(n):
            if bottleneck:
                c_out = 4 * width
                shapes += [(width, c_in, 1, 1), (width, width, 3, 3), (c_out, width, 1, 1)]
                if b == 0:
                    shapes.append((c_out, c_in, 1, 1))
            else:
                c_out = width
                shapes += [(width, c_in, 3, 3), (width, width, 3, 3)]
                if b == 0 and stage > 0:
                    shapes.append((c_out, c_in, 1, 1))
            c_in = c_out
    shapes.append((1000, c_in))
    return shapes


MODELS = {"resnet18": resnet_shapes([2, 2, 2, 2], False), "resnet50": resnet_shapes([3, 4, 6, 3], True)}


def _model(shapes, device="cpu"):
    import torch.nn as nn

    mods = [nn.Linear(s[1], s[0], bias=False) if len(s) == 2 else
            nn.Conv2d(s[1], s[0], s[2:], bias=False) for s in shapes]
    return nn.ModuleList(mods).to(device)


_LAST_MIN = [0.0]  # fastest repeat of the last _median_time call


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    _LAST_MIN[0] = min(times)
    return statistics.median(times)


def _repeats(n_entries: int) -> int:
    return 7 if n_entries <= 1 << 16 else 5 if n_entries <= 1 << 22 else 3


def _extra_memory(fn, largest_bytes: int) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    out_bytes = result.nbytes if isinstance(result, np.ndarray) else 0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base - out_bytes) / largest_bytes


def cpu_cases(args) -> list[tuple[str, list[tuple[int, ...]]]]:
    cases = [(f"{n}x{n}", [(n, n)]) for n in args.sizes if n <= args.max_size]
    if not args.no_conv:
        cases += [(f"conv{o}x{i}x3x3", [(o, i, 3, 3)]) for o, i in [(64, 64), (256, 256), (512, 512)]]
    if not args.no_models:
        cases += list(MODELS.items())
    return cases


def run_cpu(args) -> list[dict]:

    results = []
    rng = np.random.default_rng(0)
    for name, shapes in cpu_cases(args):
        largest = max(int(np.prod(s)) for s in shapes) * 4
        if name in MODELS:
            model = _model(shapes)
            from netinit.rewire import rewire_model_

            fast = _median_time(lambda: rewire_model_(model, seed=0), 3)
            best = _LAST_MIN[0]
            extra = _extra_memory(lambda: rewire_model_(model, seed=1), largest)
        else:
            W = rng.standard_normal(shapes[0]).astype(np.float32)
            pa_rewire(W, rng=0)  # warm-up
            fast = _median_time(lambda: pa_rewire(W, rng=1), _repeats(W.size))
            best = _LAST_MIN[0]
            extra = _extra_memory(lambda: pa_rewire(W, rng=2), largest)
        base, extrapolated = 0.0, False
        for s in shapes:
            b, e = baseline_seconds(rng.standard_normal(s).astype(np.float32), rng, args.baseline_rows)
            base += b
            extrapolated |= e
        ref = REFERENCE_S.get(name)
        row = dict(case=name, fast_s=fast, fast_min_s=best, baseline_s=base, baseline_extrapolated=extrapolated,
                   x_baseline=base / fast, reference_s=ref, x_reference=(ref / fast) if ref else None,
                   extra_mem_vs_largest_layer=extra)
        results.append(row)
        print(_fmt_row(row), flush=True)
    return results


def key_sort_microbench() -> dict:
    """Microseconds to order one row's keys: argsorts (numpy, torch) against the packed int64 sort."""
    import torch

    rng = np.random.default_rng(0)
    table = {}
    for n in (1024, 4096, 8192):
        k64 = rng.random(n)
        k32 = k64.astype(np.float32)
        packed = (k64.view(np.int64) & ~np.int64(8191)) | np.arange(n)
        buf = np.empty_like(packed)
        t64, t32 = torch.from_numpy(k64), torch.from_numpy(k32)

        def packed_sort():
            np.copyto(buf, packed)
            buf.sort()

        cases = dict(numpy_argsort_f64=lambda: np.argsort(k64), numpy_argsort_f32=lambda: np.argsort(k32),
                     torch_argsort_f64=lambda: torch.argsort(t64), torch_argsort_f32=lambda: torch.argsort(t32),
                     numpy_packed_int64_sort=packed_sort)
        table[n] = {name: 1e6 * _median_time(fn, 200) for name, fn in cases.items()}
        print(f"keys n={n}: " + ", ".join(f"{k} {v:.1f} us" for k, v in table[n].items()), flush=True)
    return table


def run_cuda(args) -> list[dict]:
    import torch

    from netinit.rewire import pa_rewire_, rewire_model_
    from netinit.rewire.kernels import pa_pass_torch

    dev = torch.device("cuda")
    results = []

    def cuda_time(fn, repeats):
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    for name, shapes in cpu_cases(args):
        if name in MODELS:
            model = _model(shapes, dev)
            fast = cuda_time(lambda: rewire_model_(model, seed=0), 3)
            base = None
        else:
            g = torch.Generator(device=dev).manual_seed(0)
            w = torch.randn(shapes[0], device=dev, generator=g)
            fast = cuda_time(lambda: pa_rewire_(w, generator=g), 3)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            pa_rewire_(w, generator=g)
            torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() - before) / (w.numel() * w.element_size())
            # baseline: the torch kernel (per-row launches), first rows of each pass, extrapolated
            M = w.reshape(w.shape[0], -1)
            base = 0.0
            for A in (M, M.t().contiguous()):
                k = min(A.shape[0], args.baseline_rows)
                E = torch.empty((k, A.shape[1]), dtype=torch.float64, device=dev).exponential_(generator=g)
                dt = cuda_time(lambda: pa_pass_torch(A[:k], E), 1)
                base += dt * (A.shape[0] - 1) / max(k - 1, 1)
        ref = REFERENCE_S.get(name)
        row = dict(case=name, fast_s=fast, baseline_s=base, baseline_extrapolated=base is not None,
                   x_baseline=(base / fast) if base else None, reference_s=ref,
                   x_reference=(ref / fast) if ref else None,
                   extra_cuda_mem_vs_layer=None if name in MODELS else peak)
        results.append(row)
        print(_fmt_row(row), flush=True)
    if args.sweep:
        results += sweep_triton(args)
    return results


def sweep_triton(args) -> list[dict]:
    """One Triton pass on square float32 matrices, per launch mode and programs per row."""
    import torch

    from netinit.rewire._triton import pa_pass_triton

    out = []

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    for n in [n for n in args.sizes if 1024 <= n <= args.max_size][::-1]:
        g = torch.Generator(device="cuda").manual_seed(0)
        M = torch.randn(n, n, device="cuda", generator=g)
        E = torch.empty(n, n, dtype=torch.float64, device="cuda").exponential_(generator=g)
        parts = dict(sort=timed(lambda: torch.sort(M, dim=1)),
                     exponential=timed(lambda: torch.empty_like(E).exponential_(generator=g)),
                     transpose=timed(lambda: M.t().contiguous()))
        print(f"sweep {n}x{n} pieces: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in parts.items()))
        variants = [dict(mode="single")] if n <= 2048 else []
        variants += [dict(mode="graph", tile=tl_, num_warps=nw, ctas=c)
                     for tl_, nw in ((1024, 4), (2048, 8), (2048, 16), (4096, 16))
                     for c in (32, 64, 128, 256) if c <= n // 16 and tl_ <= n]
        variants += [dict(mode="loop")]
        for v in variants:
            dt = timed(lambda: pa_pass_triton(M, E, **v))
            out.append(dict(case=f"sweep {n}x{n} one pass", **v, fast_s=dt, us_per_row=dt / n * 1e6,
                            **{f"{k}_s": x for k, x in parts.items()}))
            print(f"sweep {n}x{n} {v}: {dt:.4f} s one pass, {dt / n * 1e6:.1f} us/row", flush=True)
    return out


def _fmt_row(r: dict) -> str:
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    star = "*" if r.get("baseline_extrapolated") else ""
    mem = r.get("extra_mem_vs_largest_layer", r.get("extra_cuda_mem_vs_layer"))
    return (f"| {r['case']:>16} | {f(r['fast_s'], '.4f'):>8} | {f(r.get('fast_min_s'), '.4f'):>8} | "
            f"{f(r['baseline_s'], '.3f')}{star:1} | "
            f"{f(r.get('x_baseline'), '.1f'):>6} | {f(r.get('reference_s'), '.3f'):>7} | "
            f"{f(r.get('x_reference'), '.1f'):>6} | {f(mem, '.2f'):>6} |")


HEADER = ("| case             |   fast_s |    min_s | baseline_s | x_base | ref_s   | x_ref  | mem    |\n"
          "|------------------|----------|----------|------------|--------|---------|--------|--------|")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 2048, 4096, 8192])
    ap.add_argument("--max-size", type=int, default=8192)
    ap.add_argument("--no-conv", action="store_true")
    ap.add_argument("--no-models", action="store_true")
    ap.add_argument("--baseline-rows", type=int, default=128, help="rows per pass timed for the baseline")
    ap.add_argument("--sweep", action="store_true",
                    help="(cuda) time one Triton pass per launch mode and grid size")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)

    import os

    import torch

    info = dict(python=platform.python_version(), numpy=np.__version__, torch=torch.__version__,
                machine=platform.machine(), cpus=os.cpu_count(), torch_threads=torch.get_num_threads(),
                loadavg_before=os.getloadavg())
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            info["triton"] = None
    print(json.dumps(info))
    print(HEADER)
    results = run_cuda(args) if args.device == "cuda" else run_cpu(args)
    if args.device == "cpu":
        info["key_sort_us_per_row"] = key_sort_microbench()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"rewire_{args.device if args.device == 'cpu' else 'gpu'}"
    info["loadavg_after"] = os.getloadavg()
    (args.out / f"{stem}.json").write_text(json.dumps(dict(info=info, results=results), indent=1))
    table = [HEADER] + [_fmt_row(r) for r in results if "mode" not in r]
    note = ("\nfast_s: median of repeats; min_s: fastest repeat (2 shared cores). "
            "`*` baseline extrapolated from the first rows of each pass. x_ref = reference seconds "
            "(spec, 2-core machine) / fast_s. mem = extra memory / largest layer (CPU: tracemalloc "
            "peak minus the returned array; CUDA: peak allocated during one in-place call beyond "
            "what was allocated before, over the layer's bytes).\n")
    (args.out / f"{stem}.md").write_text("\n".join(table) + "\n" + note)


if __name__ == "__main__":
    main()
