"""Benchmark: ``netinit.analyze`` (and ``write_report``) of one checkpoint, a base commit against the
working tree, interleaved.

The base commit's ``netinit`` package is extracted (``git archive``) into a temporary folder; each
round runs one child process per side (base, then working tree, alternating which goes first), and
each child times, in-process, ``analyze(path)`` and ``write_report`` (wall with ``perf_counter``,
CPU with ``process_time``: all threads) after its imports. The best round of each side is kept and
the ratios come from those. The machine may be shared: the load average is recorded, and wall and
CPU seconds are given side by side.

With ``--report-only PICKLE`` (a pickled :class:`netinit.analyzer.Analysis` of the checkpoint) only
``write_report`` is timed, figures included (the correlation heatmap reads its layer from the
checkpoint, as the command line does).

Run: ``python bench/bench_analyze_ab.py CHECKPOINT --base COMMIT [--rounds 3] [--out FILE]``; a
checkpoint from ``bench/bench_llm.py`` (``--keep FOLDER``) suits it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, tempfile, time, resource
t0 = time.perf_counter()
import netinit
from netinit.analyzer import analyze
from netinit.report import write_report
imports = time.perf_counter() - t0
w, c = time.perf_counter(), time.process_time()
if sys.argv[4]:  # the report only, of a pickled analysis
    import pickle
    a = pickle.loads(open(sys.argv[4], "rb").read())
else:
    a = analyze(sys.argv[1], correlation=sys.argv[2])
analyze_wall, analyze_cpu = time.perf_counter() - w, time.process_time() - c
out = tempfile.mkdtemp()
from netinit.formats import load_checkpoint
from netinit.layers import find_layers
by_name = {layer.name: layer for layer in find_layers(load_checkpoint(sys.argv[1]))[0]}
w, c = time.perf_counter(), time.process_time()
write_report(a, out, plots=sys.argv[3] == "plots", overwrite=True, matrix_of=lambda n: by_name[n].matrix())
report_wall, report_cpu = time.perf_counter() - w, time.process_time() - c
print(json.dumps({"netinit": os.path.dirname(netinit.__file__), "imports_s": imports,
                  "analyze_wall_s": analyze_wall, "analyze_cpu_s": analyze_cpu,
                  "report_wall_s": report_wall, "report_cpu_s": report_cpu,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "n_layers": len(a.layers), "n_neuron_rows": len(a.neurons)}))
"""


def run_side(path: str, pythonpath: str, correlation: str, plots: bool, pickled: str = "") -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    proc = subprocess.run([sys.executable, "-c", CHILD, path, correlation, "plots" if plots else "none", pickled],
                          capture_output=True, text=True, env=env, cwd=pythonpath)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--correlation", default="auto")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--report-only", metavar="PICKLE", default="",
                        help="time write_report only, of this pickled Analysis of the checkpoint")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "analyze_ab.json"))
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "netinit"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        sides = {"base": tmp, "new": str(ROOT)}
        runs: dict[str, list[dict]] = {"base": [], "new": []}
        for r in range(args.rounds):
            for side in (("base", "new") if r % 2 == 0 else ("new", "base")):
                res = run_side(args.checkpoint, sides[side], args.correlation, not args.no_plots, args.report_only)
                runs[side].append(res)
                print(side, {k: round(v, 2) if isinstance(v, float) else v for k, v in res.items() if k != "netinit"},
                      flush=True)
    best = {s: {k: min(r[k] for r in rs) for k in rs[0] if k.endswith("_s")} for s, rs in runs.items()}
    ratio = {k: best["base"][k] / best["new"][k] for k in best["new"] if best["new"][k] > 0}
    what = "write_report of a pickled analysis" if args.report_only else "analyze + write_report"
    base = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.base], capture_output=True, text=True).stdout.strip()
    result = {"benchmark": f"{what}, base commit vs working tree, interleaved child processes",
              "checkpoint": args.checkpoint, "base": base, "correlation": args.correlation,
              "plots": not args.no_plots, "rounds": args.rounds, "cpus": os.cpu_count(),
              "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
              "best": best, "ratio_base_over_new": ratio, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("ratios (base / new):", {k: round(v, 2) for k, v in ratio.items()})
    print("wrote", args.out)


if __name__ == "__main__":
    main()
