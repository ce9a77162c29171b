"""Benchmark: the null model of the layer summary (``null_summary``, K=100 shuffles) against the
plain summary (``layer_summary``) of the same 4096x4096 float32 layer, in the same process.

The weights are Kaiming-normal (std ``sqrt(2 / n_in)``) drawn from
``layer_generator(0, "fc")``. Two plain summaries are the references, each run before and after
the null models (their mean is the reference): ``layer_summary`` as ``netinit analyze`` runs it
(``correlation="auto"``: the correlation of a side above 1024 neurons estimated from 512 sampled
neurons) and with ``correlation="exact"`` (every pair). Each null model (``matrix``, ``rows``,
``columns``) runs once with K shuffled copies and the correlation sampled on ``corr_sample``
neurons per side (the default, 512). The floor of any null model is the shuffling itself: one
``Generator.permuted`` of the whole layer per copy, timed on ``--floor-copies`` copies and
reported per copy and for K. Wall and CPU seconds (user + system of the process, all threads)
are both reported, with the load average at the start and the end: wall time depends on what
else runs on the machine.

Run: ``python bench/bench_null.py`` (about 5 minutes on 2 idle cores); writes
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
    parser.add_argument("--floor-copies", type=int, default=10,
                        help="copies timed for the shuffling floor (default 10)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "null.json"))
    args = parser.parse_args(argv)

    n = args.size
    W = (layer_generator(SEED, "fc").standard_normal((n, n), dtype=np.float32)
         * np.float32(np.sqrt(2.0 / n)))

    def plain(method: str):
        return lambda: layer_summary(W, layer="fc", kind="linear", correlation=method, rng=SEED)

    cases = []
    load_start = os.getloadavg()
    first = {m: timed(plain(m)) for m in ("auto", "exact")}
    for m, (wall, cpu) in first.items():
        print(f"plain layer_summary (correlation={m}): {wall:.2f} s wall, {cpu:.2f} s cpu", flush=True)
    null_times = {}
    for model in args.models:
        wall, cpu = timed(lambda: null_summary(W, shuffles=args.shuffles, model=model, rng=SEED))
        null_times[model] = (wall, cpu)
        print(f"null_summary shuffles={args.shuffles} model={model}: {wall:.2f} s wall, {cpu:.2f} s cpu",
              flush=True)
    floor = {}
    for model in args.models:
        axis = {"matrix": None, "rows": 1, "columns": 0}[model]
        gens = np.random.default_rng(SEED).spawn(args.floor_copies)

        def shuffle_only() -> None:
            for g in gens:
                X = W.copy()
                g.permuted(X, axis=axis, out=X)

        wall, cpu = timed(shuffle_only)
        floor[model] = (wall / args.floor_copies, cpu / args.floor_copies)
        print(f"shuffling alone, model={model}: {floor[model][0]:.3f} s wall per copy", flush=True)
    second = {m: timed(plain(m)) for m in ("auto", "exact")}
    ref = {m: ((first[m][0] + second[m][0]) / 2, (first[m][1] + second[m][1]) / 2) for m in first}
    for model, (wall, cpu) in null_times.items():
        fw, fc = floor[model]
        cases.append({
            "case": f"null_summary/{model}", "shuffles": args.shuffles, "corr_sample": 512,
            "seconds": wall, "cpu_seconds": cpu, "seconds_per_copy": wall / args.shuffles,
            "ratio_to_plain": wall / ref["auto"][0], "cpu_ratio_to_plain": cpu / ref["auto"][1],
            "ratio_to_plain_exact": wall / ref["exact"][0], "cpu_ratio_to_plain_exact": cpu / ref["exact"][1],
            "shuffle_floor_seconds": fw * args.shuffles, "shuffle_floor_cpu_seconds": fc * args.shuffles,
            "share_of_time_shuffling": fw * args.shuffles / wall,
        })
        print(f"  {model}: {wall / ref['auto'][0]:.0f}x the plain summary as analyze runs it, "
              f"{wall / ref['exact'][0]:.1f}x the exact one; shuffling alone {fw * args.shuffles:.1f} s "
              f"({100 * fw * args.shuffles / wall:.0f}% of it)")
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_1_5_15": {"start": list(load_start), "end": list(os.getloadavg())},
        "seed": SEED,
        "layer": {"shape": [n, n], "dtype": "float32", "init": "kaiming normal"},
        "plain": {m: {"case": f"layer_summary(correlation={m!r})", "seconds": [first[m][0], second[m][0]],
                      "cpu_seconds": [first[m][1], second[m][1]], "mean_seconds": ref[m][0],
                      "mean_cpu_seconds": ref[m][1]} for m in ref},
        "cases": cases,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
