"""A short run of the fuzz harness (bench/fuzz): a fixed number of inputs per format, seeded, so
CI exercises every target and its seeds; the long runs are `python bench/fuzz/run.py --minutes N`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_fuzz_target_runs_clean(tmp_path):
    pytest.importorskip("atheris")
    out = tmp_path / "fuzz.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz" / "run.py"), "--runs", "400", "--seed", "1",
         "--out", str(out), "--findings", str(tmp_path / "findings"), "--corpus", "none"],
        capture_output=True, text=True, cwd=ROOT)
    report = json.loads(out.read_text())["targets"]
    assert set(report) == {"safetensors", "npz", "pt", "torchscript", "flax", "onnx", "keras", "h5"}
    for name, r in report.items():
        assert r["executions"] >= 400, (name, proc.stdout[-2000:])
        assert (r["escapes"], r["hangs"], r["crashes"], r["ooms"]) == (0, 0, 0, 0), (name, r["escape_kinds"])
    assert proc.returncode == 0
