"""Benchmark: time and peak memory of analysing layers with netinit.metrics.

Cases (weights Kaiming-normal float32, drawn per layer from ``layer_generator(seed, name)``):

* a 4096x4096 Linear layer: strength statistics, the two correlation summaries (rows and
  columns), and sampled centralities (k=32, igraph backend);
* a ResNet-50-shaped set of conv/linear weights (54 tensors, shapes written out below):
  ``layer_summary`` (strength + correlation) for every layer, and sampled centralities (k=16)
  for the layers with at most 1024 neurons (n_in + n_out);
* baselines: building the networkx DiGraph of a 2048x2048 layer (4096x4096 would need about
  7 GB and a minute: 1024x1024 takes 3.2 s and 0.46 GB here, and the cost is linear in the
  number of edges) and the igraph graph with edge attributes of the same layer.

Each case runs in a forked child process, so its ``ru_maxrss`` delta is its own: the increase
of the resident-set high-water mark over the process after its weights were drawn (everything,
numpy, Python objects and igraph's C heap). The numpy-only cases also report the ``tracemalloc``
peak (numpy buffers); cases that build graphs run without tracemalloc, which cannot see igraph's
C heap and slows millions of small Python allocations several-fold (it made the k=32
centrality case 3x slower and doubled its RSS).

Wall time depends on what else runs on the machine; CPU time (user + system of the child, all
threads) is reported beside it. Run: ``python bench/bench_analyze.py`` (1-2 minutes on 2
idle cores); writes ``bench/results/analyze.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netinit._rng import layer_generator  # noqa: E402
from netinit.graph import LayerGraph  # noqa: E402
from netinit.metrics import (  # noqa: E402
    correlation_summary,
    degree,
    in_strength,
    layer_summary,
    neuron_centrality,
    out_strength,
    strength_stats,
)

SEED = 0


def resnet50_shapes() -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, kind, weight shape) of the 53 convolutions and the classifier of ResNet-50."""
    out = [("conv1", "conv2d", (64, 3, 7, 7))]
    inplanes = 64
    for stage, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            out += [(f"{p}.conv1", "conv2d", (planes, inplanes, 1, 1)),
                    (f"{p}.conv2", "conv2d", (planes, planes, 3, 3)),
                    (f"{p}.conv3", "conv2d", (planes * 4, planes, 1, 1))]
            if b == 0:
                out.append((f"{p}.downsample.0", "conv2d", (planes * 4, inplanes, 1, 1)))
            inplanes = planes * 4
    out.append(("fc", "linear", (1000, 2048)))
    return out


def kaiming(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Canonical (n_out, n_in) matrix of a Kaiming-normal weight of ``shape``."""
    fan_in = int(np.prod(shape[1:]))
    W = layer_generator(SEED, name).standard_normal(shape, dtype=np.float32)
    W *= np.float32(np.sqrt(2.0 / fan_in))
    return W.reshape(shape[0], fan_in)


def resnet_layers():
    return [(name, kind, shape, kaiming(name, shape)) for name, kind, shape in resnet50_shapes()]


def small(layers, max_nodes=1024):
    return [x for x in layers if sum(x[3].shape) <= max_nodes]


# case name -> (setup, run, trace with tracemalloc, note)
CASES = {
    "layer4096/strength": (
        lambda: kaiming("fc4096", (4096, 4096)),
        lambda W: (strength_stats(W), in_strength(W), out_strength(W), degree(W)),
        True, "strength_stats + in/out strength + degree",
    ),
    "layer4096/correlation": (
        lambda: kaiming("fc4096", (4096, 4096)),
        lambda W: (correlation_summary(W), correlation_summary(W.T)),
        True, "correlation_summary of rows and of columns (4096 x 4096 each, blocks of 1024)",
    ),
    "layer4096/centrality_sampled_k32": (
        lambda: kaiming("fc4096", (4096, 4096)),
        lambda W: neuron_centrality(W, method="sampled", k=32, rng=SEED),
        False, "neuron_centrality igraph backend, k=32 sources; includes building the graph",
    ),
    "resnet50/layer_summary_all": (
        resnet_layers,
        lambda L: [layer_summary(W, layer=n, kind=k, shape=s) for n, k, s, W in L],
        True, "54 layers (25.5M weights): strength + both correlation summaries",
    ),
    "resnet50/strength_all": (
        resnet_layers,
        lambda L: [strength_stats(W) for *_, W in L],
        True, "54 layers: strength_stats only",
    ),
    "resnet50/centrality_sampled_k16_small": (
        lambda: small(resnet_layers()),
        lambda L: [neuron_centrality(W, method="sampled", k=16, rng=SEED) for *_, W in L],
        False, "sampled k=16 on the 21 layers with n_in + n_out <= 1024",
    ),
    "baseline/networkx_digraph_2048": (
        lambda: kaiming("fc2048", (2048, 2048)),
        lambda W: LayerGraph(W).to_networkx().number_of_edges(),
        False, "LayerGraph.to_networkx() of 2048x2048 (4.2M edges; 4096x4096 is 4x that)",
    ),
    "baseline/igraph_graph_2048": (
        lambda: kaiming("fc2048", (2048, 2048)),
        lambda W: LayerGraph(W).to_igraph().ecount(),
        False, "LayerGraph.to_igraph() of 2048x2048 with weight/distance attributes",
    ),
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _child(name: str, queue) -> None:
    setup, run, trace, _ = CASES[name]
    data = setup()
    rss0 = _rss_mb()
    if trace:
        tracemalloc.start()
    c0 = _cpu_s()
    t0 = time.perf_counter()
    run(data)
    seconds = time.perf_counter() - t0
    cpu = _cpu_s() - c0
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    tracemalloc.stop()
    n_layers = len(data) if isinstance(data, list) else 1
    names = [x[0] for x in data] if isinstance(data, list) and n_layers < 30 else None
    queue.put({"seconds": seconds, "cpu_seconds": cpu, "tracemalloc_peak_mb": peak,
               "rss_delta_mb": _rss_mb() - rss0, "n_layers": n_layers, "layers": names})


def run_case(name: str) -> dict:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return {"case": name, **out, "note": CASES[name][3]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case names to run (default: all)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "analyze.json"))
    args = parser.parse_args(argv)
    import igraph
    import networkx
    import scipy

    names = args.only or list(CASES)
    results = []
    for name in names:
        results.append(run_case(name))
        r = results[-1]
        print(f"{name:42s} {r['seconds']:8.2f} s", flush=True)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "scipy": scipy.__version__, "igraph": igraph.__version__,
                    "networkx": networkx.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seed": SEED,
        "cases": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print()
    print(f"{'case':40s} {'wall (s)':>9s} {'cpu (s)':>8s} {'tracemalloc (MB)':>17s} "
          f"{'RSS delta (MB)':>15s}")
    for r in results:
        tm = "-" if r["tracemalloc_peak_mb"] is None else f"{r['tracemalloc_peak_mb']:.0f}"
        print(f"{r['case']:40s} {r['seconds']:9.2f} {r['cpu_seconds']:8.2f} {tm:>17s} "
              f"{r['rss_delta_mb']:15.0f}")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
