"""Analysis of LLM-sized layers with and without the single validation pass (validation.checked).

Three bfloat16 5632x2048 layers (an MLP up-projection of TinyLlama's shape), `netinit.analyze` with
default options; "once" is the analyzer as shipped (each layer's matrix scanned for NaN/inf once,
by Layer.matrix), "every metric" replaces validation.checked by a no-op so every metric scans it
again, as before. Runs alternate in one process, best of ``--repeats``; results to
bench/results/analyze_checked.json with the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

import netinit
import netinit.analyzer as analyzer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "analyze_checked.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        gen = torch.Generator().manual_seed(0)
        save_file({f"model.layers.{i}.mlp.up_proj.weight": (torch.randn(5632, 2048, generator=gen) * 0.02)
                   .to(torch.bfloat16) for i in range(3)}, str(path))
        shipped = analyzer.checked
        times: dict[str, list[float]] = {"once": [], "every metric": []}
        load = [os.getloadavg()]
        netinit.analyze(path)  # warm-up
        for _ in range(args.repeats):
            for mode in times:
                analyzer.checked = shipped if mode == "once" else (lambda *a: contextlib.nullcontext())
                t = time.perf_counter()
                netinit.analyze(path)
                times[mode].append(time.perf_counter() - t)
        analyzer.checked = shipped
        load.append(os.getloadavg())
    best = {k: min(v) for k, v in times.items()}
    result = {"case": "netinit.analyze, 3 bfloat16 5632x2048 layers, default options", "seconds": times,
              "best": best, "ratio_every_over_once": best["every metric"] / best["once"], "load_average": load}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
