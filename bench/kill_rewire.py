"""Kill ``netinit rewire`` with SIGKILL at random moments; check what it leaves and what the next run does.

    python bench/kill_rewire.py --kills 100          # per format (safetensors and .pt)

For each format a checkpoint is made (12 float32 layers of 768 x 768, 28 MB, seeded) and rewired once to
completion (the reference output and its duration). Then, ``--kills`` times, a ``netinit rewire
IN -o OUT --seed 0 --force`` is started, alternately to a new output and over an existing
(complete, older) one, and killed with SIGKILL after a random delay between 0.3 and 1.1 times the
reference duration (before that it is still importing). After each kill the script checks:

* the input is byte-identical to what it was;
* the output is absent, the old file or the complete one (byte-identical to the reference:
  rewrites are reproducible), never anything else;
* how many hidden temporary files (``.OUT.*.tmp``) the killed run left.

Then the same command runs to completion, and the script checks that its output equals the
reference and that no temporary file is left beside it. Results: ``bench/results/kill_rewire.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NETINIT = [str(Path(sys.executable).parent / "netinit")]  # the console script of this environment


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _make_inputs(work: Path, seed: int) -> dict[str, Path]:
    import torch
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    sd = {f"layers.{i}.weight": rng.standard_normal((768, 768)).astype(np.float32) for i in range(12)}
    save_file(sd, str(work / "model.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, work / "model.pt")
    return {"safetensors": work / "model.safetensors", "pt": work / "model.pt"}


def _temps(out: Path) -> list[Path]:
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and p.name.endswith(".tmp"))


def _cmd(src: Path, out: Path) -> list[str]:
    return NETINIT + ["rewire", str(src), "-o", str(out), "--seed", "0", "--force", "-q"]


def run_format(name: str, src: Path, kills: int, rng: np.random.Generator) -> dict:
    out = src.with_name(f"out_{src.name}")
    t0 = time.monotonic()
    subprocess.run(_cmd(src, out), check=True, cwd=ROOT, capture_output=True)
    duration = time.monotonic() - t0
    reference = out.read_bytes()
    old = bytes(reversed(reference[-64:])) + reference[:-64]  # an "older" output: same size, other bytes
    input_sha = _sha(src)
    r = {"format": name, "input_bytes": src.stat().st_size, "reference_seconds": round(duration, 2), "kills": 0,
         "input_intact": 0, "output_absent": 0, "output_old": 0, "output_complete": 0, "output_other": 0,
         "temps_left_by_kill": 0, "largest_temp_bytes": 0, "next_run_ok": 0, "temps_after_next_run": 0,
         "next_run_failed": 0}
    for i in range(kills):
        existing = i % 2 == 1
        if existing:
            out.write_bytes(old)
        else:
            out.unlink(missing_ok=True)
        delay = float(rng.uniform(0.3, 1.1) * duration)  # start-up is ~0.3 of it: kill while working
        proc = subprocess.Popen(_cmd(src, out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        r["kills"] += 1
        r["input_intact"] += _sha(src) == input_sha
        if not out.exists():
            r["output_absent"] += 1
        else:
            data = out.read_bytes()
            key = "output_complete" if data == reference else "output_old" if data == old else "output_other"
            r[key] += 1
        temps = _temps(out)
        r["temps_left_by_kill"] += len(temps)
        r["largest_temp_bytes"] = max([r["largest_temp_bytes"]] + [t.stat().st_size for t in temps])
        done = subprocess.run(_cmd(src, out), cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            r["next_run_failed"] += 1
            r.setdefault("next_run_errors", []).append(done.stderr.strip()[-300:])
        r["next_run_ok"] += done.returncode == 0 and out.read_bytes() == reference and _sha(src) == input_sha
        r["temps_after_next_run"] += len(_temps(out))
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=100, help="kills per format")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--formats", nargs="+", default=["safetensors", "pt"], choices=["safetensors", "pt"])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "kill_rewire.json",
                    help="results; a format run again replaces its entry (the old one is kept under 'superseded')")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="netinit-kill-"))
    try:
        inputs = _make_inputs(work, args.seed)
        results = [run_format(name, inputs[name], args.kills, rng) for name in args.formats]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = json.loads(args.out.read_text()) if args.out.exists() else {"formats": []}
    old = {r["format"]: r for r in report["formats"]}
    report.setdefault("superseded", []).extend(old[r["format"]] for r in results if r["format"] in old)
    old.update({r["format"]: r for r in results})
    report.update({"kills_per_format": args.kills, "seed": args.seed, "python": sys.version.split()[0],
                   "cpus": os.cpu_count(), "formats": list(old.values())})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for r in results:
        print(f"{r['format']:12s} kills {r['kills']}: input intact {r['input_intact']}, output absent "
              f"{r['output_absent']} / old {r['output_old']} / complete {r['output_complete']} / other "
              f"{r['output_other']}; temps left by kills {r['temps_left_by_kill']}; next run ok {r['next_run_ok']}, "
              f"temps after it {r['temps_after_next_run']}")
    bad = sum(r["kills"] - r["input_intact"] + r["output_other"] + r["temps_after_next_run"]
              + (r["kills"] - r["next_run_ok"]) for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
