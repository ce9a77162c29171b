"""Benchmark: ``netinit analyze`` end to end on a generated LLM-shaped bf16 checkpoint.

The checkpoint is written into a temporary folder (deleted afterwards, never committed): a
Llama-style decoder of ``N`` blocks, each with ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``
(grouped-query attention: ``k``/``v`` have ``kv_heads * hidden / heads`` rows), ``gate_proj``,
``up_proj``, ``down_proj`` and two RMSNorm vectors, plus the final norm, in bfloat16 (normal
weights, std 0.02), split into shards beside a ``model.safetensors.index.json``. Embedding and
output head are left out, so the weights are those of the analysed layers.

* ``--shape tinyllama`` (default): 22 blocks, hidden 2048, FFN 5632, 32 heads / 4 KV heads:
  154 layers, 0.97B weights, 2 shards (about 1.9 GB).
* ``--shape llama3-8b``: 32 blocks, hidden 4096, FFN 14336, 32 heads / 8 KV heads: 224 layers,
  7.0B weights, 8 shards (about 14 GB of disk; not run by default).

``netinit analyze FOLDER -o OUT -q`` (default options: figures and the report included) runs in
a child process under ``/usr/bin/time -v`` (or, without it, ``resource.getrusage`` of the
children), which gives the wall time and the child's peak RSS. With ``--exact``, a second run
passes ``--correlation exact`` when the command line has that option. The load average is
recorded before and after: the machine is shared.

Run: ``python bench/bench_llm.py`` (generation about a minute, the analysis minutes); writes
``bench/results/llm.json``. ``--keep FOLDER`` writes the checkpoint there and keeps it, or reuses
the one a previous ``--keep`` wrote; ``--blocks N`` takes the first N blocks only (one shard).
``--weightwatcher PYTHON`` also times WeightWatcher's default ``analyze(model=FOLDER)`` in an
environment that has it (it reads safetensors through torch), on the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {
    "tinyllama": {"blocks": 22, "hidden": 2048, "ffn": 5632, "heads": 32, "kv_heads": 4, "shards": 2},
    "llama3-8b": {"blocks": 32, "hidden": 4096, "ffn": 14336, "heads": 32, "kv_heads": 8, "shards": 8},
}


def tensor_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    h, f = cfg["hidden"], cfg["ffn"]
    kv = cfg["kv_heads"] * h // cfg["heads"]
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(cfg["blocks"]):
        p = f"model.layers.{i}"
        shapes[f"{p}.input_layernorm.weight"] = (h,)
        shapes[f"{p}.self_attn.q_proj.weight"] = (h, h)
        shapes[f"{p}.self_attn.k_proj.weight"] = (kv, h)
        shapes[f"{p}.self_attn.v_proj.weight"] = (kv, h)
        shapes[f"{p}.self_attn.o_proj.weight"] = (h, h)
        shapes[f"{p}.post_attention_layernorm.weight"] = (h,)
        shapes[f"{p}.mlp.gate_proj.weight"] = (f, h)
        shapes[f"{p}.mlp.up_proj.weight"] = (f, h)
        shapes[f"{p}.mlp.down_proj.weight"] = (h, f)
    shapes["model.norm.weight"] = (h,)
    return shapes


def make_checkpoint(folder: Path, cfg: dict, seed: int = 0) -> dict:
    """Write the shards and the index, one shard in memory at a time."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    shapes = tensor_shapes(cfg)
    numel = {n: int(torch.Size(s).numel()) for n, s in shapes.items()}
    target = sum(numel.values()) / cfg["shards"]
    groups: list[list[str]] = [[]]
    size = 0
    for name in shapes:
        if size + numel[name] > target * 1.02 and groups[-1] and len(groups) < cfg["shards"]:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += numel[name]
    weight_map = {}
    for i, names in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for n in names:
            if len(shapes[n]) == 1:
                tensors[n] = torch.ones(shapes[n], dtype=torch.bfloat16)
            else:
                tensors[n] = (torch.randn(shapes[n], generator=gen) * 0.02).to(torch.bfloat16)
        save_file(tensors, str(folder / fname), metadata={"format": "pt"})
        del tensors
        weight_map.update({n: fname for n in names})
    total = 2 * sum(numel.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    matrices = [n for n, s in shapes.items() if len(s) == 2]
    return {"n_tensors": len(shapes), "n_matrices": len(matrices), "n_shards": len(groups),
            "matrix_weights": sum(numel[n] for n in matrices), "total_bytes": total}


def describe_checkpoint(folder: Path, cfg: dict) -> dict:
    """What :func:`make_checkpoint` returns, for a checkpoint it wrote earlier (``--keep``)."""
    shapes = tensor_shapes(cfg)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    if set(index["weight_map"]) != set(shapes):
        raise SystemExit(f"{folder} holds another checkpoint than the {cfg} shape; give an empty folder")
    numel = {n: int(np.prod(s)) for n, s in shapes.items()}
    return {"n_tensors": len(shapes), "n_matrices": sum(len(s) == 2 for s in shapes.values()),
            "n_shards": len(set(index["weight_map"].values())),
            "matrix_weights": sum(numel[n] for n, s in shapes.items() if len(s) == 2),
            "total_bytes": 2 * sum(numel.values()), "reused": str(folder)}


_ESTIMATED = {"corr_{}_mean_abs": "corr_{}_mean_abs_se", "corr_{}_mean_sq": "corr_{}_mean_sq_se",
              "corr_{}_share_above": "corr_{}_share_above_se", "effective_n_{}": "effective_n_{}_se"}


def exact_vs_sampled(default_csv: Path, exact_csv: Path, examples: int = 7) -> dict:
    """The default run's sampled statistics against the exact run's values, layer by layer: for each
    estimated statistic the share of sampled layers within 2 stated standard errors (about 95% if
    the errors hold), the largest ``|sampled - exact| / se``, and the first ``examples`` layers
    side by side (max |r| beside them: a lower bound when sampled)."""
    import pandas as pd

    d, e = pd.read_csv(default_csv).set_index("layer"), pd.read_csv(exact_csv).set_index("layer")
    out: dict = {"statistics": {}, "examples": []}
    for side in ("in", "out"):
        sampled = d[d[f"corr_{side}_method"].astype(str).str.startswith("sampled")].index
        for stat, se in _ESTIMATED.items():
            stat, se = stat.format(side), se.format(side)
            err, diff = d.loc[sampled, se], (d.loc[sampled, stat] - e.loc[sampled, stat]).abs()
            # an exact value in a sampled side (standard error 0, e.g. mean r^2 from the small Gram
            # matrix) counts as within when it matches to rounding
            matches = diff <= 1e-9 * e.loc[sampled, stat].abs()
            z = (diff / err.where(err > 0)).where(err > 0, matches.map({True: 0.0, False: float("inf")}))
            out["statistics"][stat] = {"sampled_layers": int(len(sampled)), "within_2se": float((z <= 2).mean()),
                                       "max_abs_z": float(z.max()) if len(z) else None}
        below = d.loc[sampled, f"corr_{side}_max_abs"] <= e.loc[sampled, f"corr_{side}_max_abs"] + 1e-12
        out["statistics"][f"corr_{side}_max_abs"] = {"sampled_layers": int(len(sampled)),
                                                     "sampled_at_most_exact": float(below.mean())}
    for layer in d.index[:examples]:
        row = {"layer": layer}
        for side in ("in", "out"):
            row[f"corr_{side}_method"] = d.loc[layer, f"corr_{side}_method"]
            for stat, se in _ESTIMATED.items():
                stat, se = stat.format(side), se.format(side)
                row[stat] = {"exact": float(e.loc[layer, stat]), "sampled": float(d.loc[layer, stat]),
                             "se": float(d.loc[layer, se])}
            row[f"corr_{side}_max_abs"] = {"exact": float(e.loc[layer, f"corr_{side}_max_abs"]),
                                           "sampled": float(d.loc[layer, f"corr_{side}_max_abs"])}
        out["examples"].append(row)
    return out


WW_CHILD = """
import sys, weightwatcher as ww
details = ww.WeightWatcher().analyze(model=sys.argv[1])
print(len(details), "layers")
"""


def timed_run(cmd: list[str], timeout: float | None = None) -> dict:
    """Wall time and peak RSS of ``cmd`` run as a child process (killed after ``timeout`` seconds)."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    t0 = time.perf_counter()
    if timeout is not None:
        proc = subprocess.Popen([gnu_time or "env", *(["-v"] if gnu_time else []), *cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the wrapper and the command under it
            proc.communicate()
            return {"cmd": cmd, "returncode": None, "wall_s": time.perf_counter() - t0, "peak_rss_bytes": None,
                    "timed_out_after_s": timeout}
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
        return {"cmd": cmd, "returncode": proc.returncode, "wall_s": time.perf_counter() - t0,
                "peak_rss_bytes": int(m.group(1)) * 1024 if m else None,
                "stderr_tail": err[-2000:] if proc.returncode else ""}
    if gnu_time:
        proc = subprocess.run([gnu_time, "-v", *cmd], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak = int(m.group(1)) * 1024 if m else None
        tail = proc.stderr[-2000:]
    else:  # pragma: no cover
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
        tail = proc.stderr[-2000:]
    return {"cmd": cmd, "returncode": proc.returncode, "wall_s": wall, "peak_rss_bytes": peak,
            "stderr_tail": tail if proc.returncode else ""}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama")
    parser.add_argument("--exact", action="store_true", help="also run with --correlation exact")
    parser.add_argument("--tmp", help="folder for the checkpoint and outputs (default: a temp folder)")
    parser.add_argument("--keep", metavar="FOLDER",
                        help="the checkpoint's folder, kept: generated there unless it holds one already (reused)")
    parser.add_argument("--blocks", type=int, help="only this many blocks of the shape (one shard): a quick subset")
    parser.add_argument("--weightwatcher", metavar="PYTHON",
                        help="also time WeightWatcher's default analyze() of the same folder with this Python "
                             "(an environment with weightwatcher installed)")
    parser.add_argument("--ww-timeout", type=float, default=3600.0, metavar="S")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "llm.json"))
    args = parser.parse_args(argv)
    cfg = SHAPES[args.shape] if args.blocks is None else dict(SHAPES[args.shape], blocks=args.blocks, shards=1)
    netinit = str(Path(sys.executable).with_name("netinit"))
    help_text = subprocess.run([netinit, "analyze", "--help"], capture_output=True, text=True).stdout

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        ckpt = Path(args.keep) if args.keep else Path(tmp) / "ckpt"
        ckpt.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if (ckpt / "model.safetensors.index.json").exists():
            info = describe_checkpoint(ckpt, cfg)
        else:
            info = make_checkpoint(ckpt, cfg)
            info["generate_s"] = time.perf_counter() - t0
        print(f"checkpoint: {info}", flush=True)
        runs = {"default": timed_run([netinit, "analyze", str(ckpt), "-o", str(Path(tmp) / "out"), "-q"])}
        print("default:", {k: v for k, v in runs["default"].items() if k != "cmd"}, flush=True)
        if args.exact:
            if "--correlation" in help_text:
                runs["exact"] = timed_run([netinit, "analyze", str(ckpt), "-o", str(Path(tmp) / "out_exact"),
                                           "-q", "--correlation", "exact"])
                print("exact:", {k: v for k, v in runs["exact"].items() if k != "cmd"}, flush=True)
            else:
                runs["exact"] = {"skipped": "netinit analyze has no --correlation option yet"}
        if args.weightwatcher:
            runs["weightwatcher"] = timed_run([args.weightwatcher, "-c", WW_CHILD, str(ckpt)], timeout=args.ww_timeout)
            print("weightwatcher:", {k: v for k, v in runs["weightwatcher"].items() if k != "cmd"}, flush=True)
        outputs = sorted(p.name for p in (Path(tmp) / "out").iterdir()) if (Path(tmp) / "out").exists() else []
        side_by_side = None
        if (Path(tmp) / "out_exact" / "layers.csv").exists() and (Path(tmp) / "out" / "layers.csv").exists():
            side_by_side = exact_vs_sampled(Path(tmp) / "out" / "layers.csv", Path(tmp) / "out_exact" / "layers.csv")

    result = {
        "benchmark": f"netinit analyze (default options, figures and report) on a {args.shape}-shaped "
                     "bf16 sharded safetensors checkpoint",
        "shape": {"name": args.shape, **cfg},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg_start": load_start, "load_avg_end": os.getloadavg()},
        "checkpoint": info,
        "targets": {"wall_s": 20 if args.shape == "tinyllama" else 180,
                    "peak_rss_bytes": (3 if args.shape == "tinyllama" else 4) * 10**9},
        "runs": runs,
        "outputs": outputs,
        "exact_vs_sampled": side_by_side,
    }
    for run in runs.values():
        run.pop("cmd", None)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
