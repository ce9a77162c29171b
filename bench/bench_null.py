"""Benchmark: the null model of the layer summary (``null_summary``, K=100) against the plain
summary (``layer_summary``) of the same 4096x4096 float32 layer, in the same process.

The weights are Kaiming-normal (std ``sqrt(2 / n_in)``) drawn from
``layer_generator(0, "fc")``. The plain summary (strength statistics and the two exact
correlation summaries) runs before and after the null models; its mean is the reference. Each
null model (``matrix``, ``rows``, ``columns``) runs once with K shuffled copies and the
correlation sampled on ``corr_sample`` neurons per side (the default, 512). Wall and CPU
seconds (user + system of the process, all threads) are both reported, with the load average
at the start and the end: wall time depends on what else runs on the machine.

Run: ``python bench/bench_null.py`` (about 4 minutes on 2 idle cores); writes
``bench/results/null.json`` and prints one line per case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netinit._rng import layer_generator  # noqa: E402
from netinit.metrics.null import NULL_MODELS, null_summary  # noqa: E402
from netinit.metrics.tables import layer_summary  # noqa: E402

SEED = 0


def timed(fn) -> tuple[float, float]:
    """(wall, cpu) seconds of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="n_out = n_in (default 4096)")
    parser.add_argument("--shuffles", type=int, default=100, help="shuffled copies (default 100)")
    parser.add_argument("--models", nargs="+", default=list(NULL_MODELS), choices=NULL_MODELS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "null.json"))
    args = parser.parse_args(argv)

    n = args.size
    W = (layer_generator(SEED, "fc").standard_normal((n, n), dtype=np.float32)
         * np.float32(np.sqrt(2.0 / n)))

    def plain() -> None:
        layer_summary(W, layer="fc", kind="linear")

    cases = []
    load_start = os.getloadavg()
    first = timed(plain)
    print(f"plain layer_summary: {first[0]:.2f} s wall, {first[1]:.2f} s cpu", flush=True)
    null_times = {}
    for model in args.models:
        wall, cpu = timed(lambda: null_summary(W, shuffles=args.shuffles, model=model, rng=SEED))
        null_times[model] = (wall, cpu)
        print(f"null_summary shuffles={args.shuffles} model={model}: {wall:.2f} s wall, {cpu:.2f} s cpu",
              flush=True)
    second = timed(plain)
    print(f"plain layer_summary again: {second[0]:.2f} s wall, {second[1]:.2f} s cpu",
          flush=True)
    plain_wall = (first[0] + second[0]) / 2
    plain_cpu = (first[1] + second[1]) / 2
    for model, (wall, cpu) in null_times.items():
        cases.append({
            "case": f"null_summary/{model}", "shuffles": args.shuffles, "corr_sample": 512,
            "seconds": wall, "cpu_seconds": cpu,
            "ratio_to_plain": wall / plain_wall, "cpu_ratio_to_plain": cpu / plain_cpu,
            "seconds_per_copy": wall / args.shuffles,
        })
        print(f"  {model}: {wall / plain_wall:.1f}x the plain summary (cpu {cpu / plain_cpu:.1f}x)")
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_1_5_15": {"start": list(load_start), "end": list(os.getloadavg())},
        "seed": SEED,
        "layer": {"shape": [n, n], "dtype": "float32", "init": "kaiming normal"},
        "plain": {"case": "layer_summary", "seconds": [first[0], second[0]],
                  "cpu_seconds": [first[1], second[1]], "mean_seconds": plain_wall,
                  "mean_cpu_seconds": plain_cpu},
        "cases": cases,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
