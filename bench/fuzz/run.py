"""Fuzz every format reader for N minutes each, one after another on one CPU core.

    python bench/fuzz/run.py --minutes 10                  # all 8 targets, 10 minutes each
    python bench/fuzz/run.py --minutes 2 --targets npz pt  # some of them
    python bench/fuzz/run.py --runs 500 --out /tmp/f.json  # a fixed number of inputs (CI)

Each target (:mod:`target`) runs under libFuzzer (atheris) pinned to one CPU (``--cpu``, by
default the last one), starting from the seeds in ``bench/fuzz/seeds/<target>`` (made by the real
libraries: ``make_seeds.py``) and the corpus it grew on earlier runs (``bench/fuzz/corpus/``, not
committed). When libFuzzer stops on a crash, a hang (``-timeout``) or running out of memory
(``-rss_limit_mb``), the reproducer is kept and fuzzing restarts for the time left. Written per
target to ``--out`` (default ``bench/results/fuzz.json``, merged with what it holds): executions,
seconds, escapes (exceptions other than NetinitError, recorded by the target), bounded hangs
(HDF5 stopped by the reader's own time bound), hangs, crashes and out-of-memory stops, with the
reproducers under ``bench/results/fuzz_findings/<target>/``. Each stop's reproducer is then read
again by the reader as shipped (default limits, a fresh process: ``stops_replayed``), which tells a
stop of the harness's configuration (the ``h5`` target walks HDF5 in-process, without the
reader's time and memory bounds) from a failure of the reader.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from target import TARGETS  # noqa: E402

_STOPS = {"timeout": r"ERROR: libFuzzer: timeout", "oom": r"ERROR: libFuzzer: (out-of-memory|malloc limit)",
          "crash": r"(ERROR: libFuzzer: deadly signal|ERROR: AddressSanitizer|Segmentation fault|"
                   r"ERROR: libFuzzer: fuzz target exited)"}


def _execs(log: str) -> int:
    final = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    if final:
        return int(final[-1])
    status = re.findall(r"^#(\d+)\s", log, re.M)
    return int(status[-1]) if status else 0


def fuzz_target(name: str, *, seconds: float | None = None, runs: int | None = None, cpu: int | None = None,
                findings: Path, corpus: Path | None, seed: int = 1, timeout_s: int = 25,
                rss_limit_mb: int = 3072) -> dict:
    """Fuzz one target for ``seconds`` (restarting after each stop) or for ``runs`` inputs."""
    findings.mkdir(parents=True, exist_ok=True)
    escapes = findings / "escapes.jsonl"
    escapes.unlink(missing_ok=True)
    seeds = HERE / "seeds" / name
    if corpus is None:  # libFuzzer writes new inputs into its first folder: never the seeds
        corpus = findings / "corpus"
        shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir(parents=True, exist_ok=True)
    dirs = [str(corpus), str(seeds)]
    env = dict(os.environ, NETINIT_FUZZ_ESCAPES=str(escapes), PYTHONPATH=str(ROOT))
    result = {"target": name, "executions": 0, "seconds": 0.0, "escapes": 0, "escape_kinds": [],
              "bounded_hangs": 0, "hangs": 0, "crashes": 0, "ooms": 0, "restarts": 0,
              "seed_files": len(list(seeds.iterdir()))}
    start = time.monotonic()
    attempt = 0
    while True:
        left = None if seconds is None else seconds - (time.monotonic() - start)
        if left is not None and left < 5:
            break
        args = [sys.executable, str(HERE / "target.py"), name, f"-seed={seed + attempt}", f"-timeout={timeout_s}",
                f"-rss_limit_mb={rss_limit_mb}", "-malloc_limit_mb=2048", "-max_len=65536", "-print_final_stats=1",
                f"-artifact_prefix={findings}/", "-close_fd_mask=1"]
        args.append(f"-max_total_time={int(left)}" if left is not None else f"-runs={runs}")
        args += dirs
        preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, preexec_fn=preexec)
        log = proc.stdout + proc.stderr
        (findings / f"libfuzzer-{attempt}.log").write_text(log[-20000:])
        result["executions"] += _execs(log)
        stopped = next((k for k, pat in _STOPS.items() if re.search(pat, log)), None)
        if stopped is None and proc.returncode != 0:
            stopped = "crash"
        if stopped is not None:
            result[{"timeout": "hangs", "oom": "ooms", "crash": "crashes"}[stopped]] += 1
            result["restarts"] += 1
            attempt += 1
            if seconds is None:
                break
            continue
        break
    result["seconds"] = round(time.monotonic() - start, 1)
    if escapes.exists():
        entries = [json.loads(line) for line in escapes.read_text().splitlines() if line.strip()]
        result["escapes"] = sum(e["kind"] == "escape" for e in entries)
        result["bounded_hangs"] = sum(e["kind"] == "bounded_hang" for e in entries)
        kinds = {}
        for e in entries:
            kinds.setdefault((e["kind"], e["type"], e["where"]), e)
        result["escape_kinds"] = [{k: e[k] for k in ("kind", "type", "where", "message", "input")}
                                  for e in kinds.values()]
    return result


_REPLAY = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from target import TARGETS
from netinit.errors import NetinitError
from netinit.formats import load_checkpoint
suffix, fmt = TARGETS[sys.argv[1]]
src = Path(sys.argv[4]) / ("replay" + suffix)
src.write_bytes(Path(sys.argv[2]).read_bytes())
try:
    with load_checkpoint(src, format=fmt) as ckpt:
        for n in ckpt.names():
            ckpt.load(n)
    print("read")
except NetinitError as exc:
    print(type(exc).__name__ + ": " + str(exc)[:200])
"""


def replay(name: str, artifact: Path, *, timeout_s: int = 180) -> dict:
    """Read a reproducer the way the shipped reader does (default limits, in a fresh process) and
    report how it ends, how long it took and its peak memory (of the process and the children it
    waited for, from ``wait4``)."""
    import tempfile
    import threading

    env = {k: v for k, v in os.environ.items() if not k.startswith("NETINIT_")}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _REPLAY, name, str(artifact), str(HERE), tmp],
                                cwd=ROOT, env=dict(env, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        killed = not killer.is_alive()
        killer.cancel()
        wall = time.monotonic() - t0
    lines = out.strip().splitlines()
    if killed:
        outcome = f"still running after {timeout_s} s"
    elif proc.returncode == 0 and lines:
        outcome = lines[-1]
    else:
        outcome = f"exit {proc.returncode}: {' '.join(lines[-3:])[-200:]}"
    return {"input": artifact.name, "shipped_reader": outcome, "seconds": round(wall, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def write_summary(report: dict, path: Path) -> None:
    """A Markdown table of ``report`` (what :func:`main` writes as JSON) at ``path``."""
    rows = ["| target | minutes | inputs run | inputs/s | escapes | hangs | bounded HDF5 loops | crashes | "
            "out of memory | stops replayed by the shipped reader |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["targets"].items():
        replayed = "; ".join(f"{x['input'][:18]}: {x['shipped_reader'][:90]} ({x['seconds']} s, "
                             f"{x['peak_rss_mb']} MB)" for x in r.get("stops_replayed", [])) or "-"
        rows.append(f"| {name} | {r['seconds'] / 60:.1f} | {r['executions']:,} | "
                    f"{r['executions'] / max(r['seconds'], 1):.0f} | {r['escapes']} | {r['hangs']} | "
                    f"{r['bounded_hangs']} | {r['crashes']} | {r['ooms']} | {replayed} |")
    m = report.get("machine", {})
    head = (f"Fuzzing of the format readers (`python bench/fuzz/run.py`), one target after another on one "
            f"pinned CPU (of {m.get('cpus')}), Python {m.get('python')}. Escapes: exceptions other than "
            f"NetinitError. Details and reproducers: `fuzz.json`, `fuzz_findings/`.")
    path.write_text(head + "\n\n" + "\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--minutes", type=float, help="minutes per target")
    how.add_argument("--runs", type=int, help="inputs per target (a fixed amount of work, for CI)")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="the one CPU to run on")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fuzz.json")
    ap.add_argument("--findings", type=Path, default=ROOT / "bench" / "results" / "fuzz_findings")
    ap.add_argument("--corpus", type=Path, default=HERE / "corpus",
                    help="where each target's grown corpus is kept between runs ('none': a fresh one under --findings)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.setdefault("targets", {})
    for name in args.targets:
        t_start = time.time()
        corpus = None if str(args.corpus) == "none" else args.corpus / name
        r = fuzz_target(name, seconds=None if args.minutes is None else args.minutes * 60, runs=args.runs,
                        cpu=args.cpu, findings=args.findings / name, corpus=corpus, seed=args.seed)
        stops = sorted(p for p in (args.findings / name).iterdir()
                       if re.match(r"(oom|timeout|crash|leak)-", p.name) and p.stat().st_mtime >= t_start)
        r["stops_replayed"] = [replay(name, p) for p in stops]
        r["minutes_asked"] = args.minutes
        r["runs_asked"] = args.runs
        report["targets"][name] = r
        print(f"{name:12s} {r['executions']:>9d} inputs in {r['seconds']:>6.0f} s  escapes {r['escapes']}  "
              f"hangs {r['hangs']} (bounded {r['bounded_hangs']})  crashes {r['crashes']}  ooms {r['ooms']}",
              flush=True)
        report["machine"] = {"python": sys.version.split()[0], "cpu_pinned": args.cpu,
                             "cpus": os.cpu_count()}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        write_summary(report, args.out.with_suffix(".md"))
    bad = sum(r["escapes"] + r["hangs"] + r["crashes"] + r["ooms"] for r in report["targets"].values()
              if r["target"] in args.targets)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
