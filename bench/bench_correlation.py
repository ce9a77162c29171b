"""Benchmark: exact correlation summaries, old (``bench/_baseline_correlation.py``) against new,
and sampled against exact values, in the same process.

Layers are Kaiming-normal square matrices (std ``sqrt(2 / n)``) from ``layer_generator(0, "fc")``:
float32 at 1024, 2048 and 4096 neurons, and a 4096 layer in half precision (numpy float16 for
the memory figure, a torch bfloat16 tensor for the time). Both sides of each layer are
summarised (rows ``W`` and columns ``W.T``), as ``layer_summary`` does. Each case runs old, new,
sampled in turn for ``--repeats`` rounds and reports the best wall and CPU seconds of each; the
ratio is old / new. Peak memory
is the largest traced allocation (``tracemalloc``, which sees numpy's buffers) above the layer
itself, for one summary of the float16 layer. The load average is recorded at the start and end:
the machine is shared, so compare ratios, not seconds.

Run: ``python bench/bench_correlation.py`` (about 3 minutes on 2 cores); writes
``bench/results/correlation.json`` and prints one line per case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _baseline_correlation import baseline_correlation_summary  # noqa: E402

from netinit._rng import layer_generator  # noqa: E402
from netinit.metrics.correlation import correlation_summary  # noqa: E402

KEYS = ("mean_abs", "max_abs", "share_above", "mean_sq", "effective_n")


def layer(n: int) -> np.ndarray:
    return layer_generator(0, "fc").standard_normal((n, n), dtype=np.float32) * np.float32(np.sqrt(2.0 / n))


def both_sides(fn, W, **kw):
    return [fn(W, **kw), fn(W.T, **kw)]


def interleaved(fns: dict, repeats: int) -> dict:
    """Run every function once per round, ``repeats`` rounds; per function the best wall and CPU
    seconds (CPU: user + system of the process, all threads) and the last result."""
    out = {k: {"wall": [], "cpu": [], "value": None} for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            out[k]["value"] = fn()
            out[k]["wall"].append(time.perf_counter() - t0)
            out[k]["cpu"].append(time.process_time() - c0)
    return out


def peak_bytes(fn) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "correlation.json"))
    args = parser.parse_args(argv)

    cases = []
    load_start = os.getloadavg()
    both_sides(correlation_summary, layer(256))  # warm up BLAS threads
    for n in args.sizes:
        W = layer(n)
        r = interleaved({"old": lambda: both_sides(baseline_correlation_summary, W),
                         "new": lambda: both_sides(correlation_summary, W),
                         "sampled": lambda: both_sides(correlation_summary, W, method="sampled", rng=0)},
                        args.repeats)
        t_old, t_new, t_smp = (min(r[k]["wall"]) for k in ("old", "new", "sampled"))
        old, new, smp = (r[k]["value"] for k in ("old", "new", "sampled"))
        case = {"case": f"float32 {n}x{n}", "old_s": t_old, "new_exact_s": t_new, "ratio": t_old / t_new,
                "old_cpu_s": min(r["old"]["cpu"]), "new_exact_cpu_s": min(r["new"]["cpu"]),
                "cpu_ratio": min(r["old"]["cpu"]) / min(r["new"]["cpu"]),
                "sampled_s": t_smp, "sampled_ratio_vs_old": t_old / t_smp,
                "all_wall_s": {k: v["wall"] for k, v in r.items()}, "sides": []}
        for side, o, e, s in zip(("in", "out"), old, new, smp):
            case["sides"].append({
                "side": side,
                "old": {k: o[k] for k in KEYS},
                "exact": {k: e[k] for k in KEYS},
                "max_abs_diff_exact_vs_old": max(abs(e[k] - o[k]) for k in KEYS),
                "sampled": {k: s[k] for k in KEYS},
                "sampled_se": {k: s.get(f"{k}_se") for k in KEYS},
                "sampled_z": {k: (s[k] - e[k]) / s[f"{k}_se"] for k in KEYS
                              if s.get(f"{k}_se") not in (None, 0.0)},
                "sampled_method": s["method"],
            })
        cases.append(case)
        print(f"{case['case']}: old {t_old:.3f}s, new exact {t_new:.3f}s ({case['ratio']:.2f}x wall, "
              f"{case['cpu_ratio']:.2f}x CPU), sampled {t_smp:.3f}s, load {os.getloadavg()[0]:.1f}", flush=True)

    n = 4096
    W16 = layer(n).astype(np.float16)
    try:
        import torch

        Wb = torch.from_numpy(layer(n)).to(torch.bfloat16)
        r = interleaved({"old": lambda: both_sides(baseline_correlation_summary, Wb),
                         "new": lambda: both_sides(correlation_summary, Wb),
                         "sampled": lambda: both_sides(correlation_summary, Wb, method="sampled", rng=0)},
                        args.repeats)
        t_old, t_new, t_smp = (min(r[k]["wall"]) for k in ("old", "new", "sampled"))
        case = {"case": f"torch bfloat16 {n}x{n} (CPU)", "old_s": t_old, "new_exact_s": t_new,
                "ratio": t_old / t_new, "old_cpu_s": min(r["old"]["cpu"]),
                "new_exact_cpu_s": min(r["new"]["cpu"]), "cpu_ratio": min(r["old"]["cpu"]) / min(r["new"]["cpu"]),
                "sampled_s": t_smp, "all_wall_s": {k: v["wall"] for k, v in r.items()},
                "max_abs_diff_exact_vs_old": max(abs(a[k] - b[k]) for a, b in zip(r["old"]["value"], r["new"]["value"])
                                                 for k in KEYS)}
        cases.append(case)
        print(f"bf16 {n}: old {t_old:.3f}s, new exact {t_new:.3f}s ({case['ratio']:.2f}x wall, "
              f"{case['cpu_ratio']:.2f}x CPU), sampled {t_smp:.3f}s", flush=True)
    except ImportError:  # pragma: no cover
        pass
    mem = {"layer_bytes": int(W16.nbytes),
           "old_peak_bytes": peak_bytes(lambda: baseline_correlation_summary(W16)),
           "new_exact_peak_bytes": peak_bytes(lambda: correlation_summary(W16)),
           "new_sampled_peak_bytes": peak_bytes(lambda: correlation_summary(W16, method="sampled", rng=0))}
    print("float16 4096 peak memory above the layer (MiB):",
          {k: round(v / 2**20, 1) for k, v in mem.items()}, flush=True)

    result = {
        "benchmark": "correlation_summary exact old vs new, sampled vs exact (both sides of a layer)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg_start": load_start, "load_avg_end": os.getloadavg()},
        "repeats": args.repeats, "cases": cases, "float16_4096_memory": mem,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
