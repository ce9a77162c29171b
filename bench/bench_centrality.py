"""Benchmark: sampled centralities of a dense layer, the igraph path (before issue 14) against the
dense path (``netinit.metrics.centrality._Dense``), each in its own child process for its peak RSS.

The layer is a float32 Gaussian ``n x n`` matrix from ``layer_generator(0, "fc")`` (no zero
weight: a complete bipartite graph); both paths get the same ``k`` sources (``rng=0``). The
igraph path is the same function with the dense path switched off (``DENSE_MIN_NODES`` set to
infinity). Each child reports its wall time and its peak RSS (``ru_maxrss``) above the RSS it had
once the layer was made; the parent checks that the two tables agree and records the load
average. Cases alternate old, new, old, new for ``--repeats`` rounds; the best time of each is
kept.

Run: ``python bench/bench_centrality.py`` (about 2 minutes at 4096 on 2 cores); writes
``bench/results/centrality.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COLS = ["betweenness", "closeness", "eigenvector", "pagerank"]


def child(path: str, n: int, k: int, old: bool, out: str) -> None:
    import igraph  # noqa: F401 - imported before the baseline RSS, as the libraries' code is no data
    import pandas  # noqa: F401
    import scipy.sparse.linalg  # noqa: F401

    import netinit.metrics.centrality as cm
    from netinit._rng import layer_generator

    W = layer_generator(0, "fc").standard_normal((n, n), dtype=np.float32)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if old:
        cm.DENSE_MIN_NODES = float("inf")
    t0 = time.perf_counter()
    df = cm.neuron_centrality(W, method="sampled", k=k, rng=0)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.save(out, df[COLS].to_numpy())
    Path(path).write_text(json.dumps({"wall_s": wall, "peak_rss_above_layer_bytes": (peak - base) * 1024,
                                      "layer_bytes": int(W.nbytes)}))


def run(n: int, k: int, old: bool, tmp: Path, tag: str) -> dict:
    res, arr = tmp / f"{tag}.json", tmp / f"{tag}.npy"
    subprocess.run([sys.executable, __file__, "--child", str(res), "--size", str(n), "--k", str(k),
                    "--values", str(arr)] + (["--old"] if old else []), check=True)
    out = json.loads(res.read_text())
    out["values"] = np.load(arr)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child")
    parser.add_argument("--values")
    parser.add_argument("--old", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "centrality.json"))
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.size, args.k, args.old, args.values)
        return

    import tempfile

    load_start = os.getloadavg()
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name in ("old", "new"):
                runs[name].append(run(args.size, args.k, name == "old", Path(tmp), f"{name}{r}"))
                print(name, round(runs[name][-1]["wall_s"], 2), "s,",
                      round(runs[name][-1]["peak_rss_above_layer_bytes"] / 2**20), "MiB", flush=True)
    old, new = (min(runs[k], key=lambda x: x["wall_s"]) for k in ("old", "new"))
    diff = np.abs(new["values"] - old["values"]) / np.maximum(np.abs(old["values"]), 1e-300)
    result = {
        "benchmark": f"neuron_centrality(method='sampled', k={args.k}) on a dense float32 {args.size}x{args.size} layer",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg_start": load_start, "load_avg_end": os.getloadavg()},
        "layer_bytes": old["layer_bytes"],
        "old_igraph": {k: v for k, v in old.items() if k != "values"},
        "new_dense": {k: v for k, v in new.items() if k != "values"},
        "speedup": old["wall_s"] / new["wall_s"],
        "new_peak_over_layer": new["peak_rss_above_layer_bytes"] / new["layer_bytes"],
        "old_peak_over_layer": old["peak_rss_above_layer_bytes"] / old["layer_bytes"],
        "max_relative_difference": {c: float(diff[:, i].max()) for i, c in enumerate(COLS)},
        "all_runs_s": {k: [x["wall_s"] for x in v] for k, v in runs.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("speedup", "new_peak_over_layer", "old_peak_over_layer",
                                             "max_relative_difference")}))


if __name__ == "__main__":
    main()
