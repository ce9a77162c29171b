"""Benchmark: peak memory of reading a ~1 GiB sharded safetensors checkpoint tensor by tensor.

The checkpoint (float32, written in a temporary folder and deleted afterwards) is shaped like a
small transformer: a ``32768 x 1024`` embedding (128 MiB, the largest tensor) and 22 blocks of
four matrices (``4096 x 1024``, ``1024 x 4096``, two ``1024 x 1024``: 40 MiB a block) with their
biases, about 1008 MiB in all, in four shards of about 256 MiB beside a
``model.safetensors.index.json``.

Reading runs in a fresh child process: ``load_checkpoint(folder)`` and then ``ckpt.load(name)``
for every tensor, each array dropped before the next. It reports

* ``rss_peak_delta``: the growth of the resident-set high-water mark (``VmHWM`` in
  ``/proc/self/status``, which is ``ru_maxrss``) over the resident set after the imports and
  before the first tensor;
* ``tracemalloc_peak``: the largest amount of memory numpy and Python held at once (traced
  allocations only);

both compared with the largest tensor's size. The files are read with ``read()``, not mapped, so
the page cache does not count in the resident set.

Run: ``python bench/bench_sharded.py`` (under a minute here); writes
``bench/results/sharded.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
N_BLOCKS = 22
D, H, VOCAB = 1024, 4096, 32768
N_SHARDS = 4


def _shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (VOCAB, D)}
    for i in range(N_BLOCKS):
        shapes[f"h.{i}.mlp.up.weight"] = (H, D)
        shapes[f"h.{i}.mlp.up.bias"] = (H,)
        shapes[f"h.{i}.mlp.down.weight"] = (D, H)
        shapes[f"h.{i}.mlp.down.bias"] = (D,)
        shapes[f"h.{i}.attn.q.weight"] = (D, D)
        shapes[f"h.{i}.attn.o.weight"] = (D, D)
    return shapes


def make_checkpoint(folder: Path, seed: int = 0) -> dict:
    """Write the shards and the index into ``folder``, one shard in memory at a time."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    shapes = _shapes()
    total = sum(int(np.prod(s)) * 4 for s in shapes.values())
    target = total / N_SHARDS
    groups: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = int(np.prod(shape)) * 4
        if size + nbytes > target * 1.05 and groups[-1] and len(groups) < N_SHARDS:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    weight_map = {}
    for i, names in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file({n: rng.standard_normal(shapes[n], dtype=np.float32) for n in names},
                  str(folder / fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in names})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return {"total_bytes": total, "n_tensors": len(shapes), "n_shards": len(groups),
            "largest_tensor_bytes": max(int(np.prod(s)) * 4 for s in shapes.values()),
            "shard_bytes": [(folder / f).stat().st_size for f in sorted(set(weight_map.values()))]}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def read_all(folder: Path, trace: bool) -> dict:
    """In this (fresh) process: read every tensor through netinit; memory and time."""
    import tracemalloc

    sys.path.insert(0, str(ROOT))
    from netinit.formats import load_checkpoint

    rss0 = _status_kib("VmRSS") * 1024
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    ckpt = load_checkpoint(folder)
    checksum = 0.0
    nbytes = 0
    for name in ckpt.names():
        arr = ckpt.load(name)
        checksum += float(arr.reshape(-1)[:: max(1, arr.size // 7)].sum(dtype=np.float64))
        nbytes += arr.nbytes
        del arr
    seconds = time.perf_counter() - t0
    peak_traced = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    return {"format": ckpt.format, "tensors": len(ckpt), "bytes_read": nbytes, "seconds": seconds,
            "rss_before": rss0, "rss_peak": _status_kib("VmHWM") * 1024,
            "tracemalloc_peak": peak_traced, "checksum": checksum}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--read", type=Path, help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sharded.json")
    args = ap.parse_args()
    if args.read is not None:
        print(json.dumps(read_all(args.read, args.trace)))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="netinit-bench-sharded-"))
    try:
        t0 = time.perf_counter()
        made = make_checkpoint(tmp)
        made["write_seconds"] = time.perf_counter() - t0
        runs = {}
        for mode in ("rss", "tracemalloc"):  # separate processes: tracemalloc off for the RSS run
            cmd = [sys.executable, __file__, "--read", str(tmp)] + (["--trace"] if mode == "tracemalloc" else [])
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            runs[mode] = json.loads(res.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    largest = made["largest_tensor_bytes"]
    rss = runs["rss"]
    delta = rss["rss_peak"] - rss["rss_before"]
    result = {
        "benchmark": "read every tensor of a sharded safetensors checkpoint (netinit.load_checkpoint on the folder)",
        "checkpoint": made,
        "read": {
            "seconds": rss["seconds"],
            "throughput_mib_s": made["total_bytes"] / MIB / rss["seconds"],
            "rss_before_mib": rss["rss_before"] / MIB,
            "rss_peak_mib": rss["rss_peak"] / MIB,
            "rss_peak_delta_mib": delta / MIB,
            "rss_peak_delta_over_largest_tensor": delta / largest,
            "tracemalloc_peak_mib": runs["tracemalloc"]["tracemalloc_peak"] / MIB,
            "tracemalloc_peak_over_largest_tensor": runs["tracemalloc"]["tracemalloc_peak"] / largest,
            "bytes_read": rss["bytes_read"],
        },
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "platform": platform.platform(), "cpus": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    r = result["read"]
    print(f"checkpoint: {made['total_bytes'] / MIB:.0f} MiB in {made['n_shards']} shards, "
          f"{made['n_tensors']} tensors, largest {largest / MIB:.0f} MiB (written in {made['write_seconds']:.1f} s)")
    print(f"read all:   {r['seconds']:.2f} s ({r['throughput_mib_s']:.0f} MiB/s); RSS {r['rss_before_mib']:.0f} MiB "
          f"before, peak {r['rss_peak_mib']:.0f} MiB: +{r['rss_peak_delta_mib']:.0f} MiB = "
          f"{r['rss_peak_delta_over_largest_tensor']:.2f} x largest tensor; tracemalloc peak "
          f"{r['tracemalloc_peak_mib']:.0f} MiB = {r['tracemalloc_peak_over_largest_tensor']:.2f} x largest")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
