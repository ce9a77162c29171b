"""netinit.trajectory: checkpoints named by paths, globs and folders; steps; stacked tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from netinit import analyze
from netinit.trajectory import Trajectory, analyze_trajectory, expand_checkpoints, parse_step

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
INIT, TRAINED = EXAMPLES / "mlp_digits_init.safetensors", EXAMPLES / "mlp_digits.safetensors"


@pytest.mark.parametrize("name, step", [
    ("step_1000.pt", 1000), ("runs/epoch3.safetensors", 3), ("ckpt-500", 500), ("checkpoint-12", 12),
    ("model_steps=7.npz", 7), ("iter_40.pt", 40), ("it5.pt", 5), ("epoch2_step_300.pt", 300),
    ("model_init.pt", None), ("fit2.pt", None), ("resnet50.pt", None), ("Step_9.PT", 9),
])
def test_parse_step(name, step):
    assert parse_step(name) == step


@pytest.fixture
def run_folder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for step, src in ((1000, TRAINED), (200, INIT), (30, TRAINED)):
        shutil.copy(src, folder / f"ckpt-{step}.safetensors")
    (folder / "README.txt").write_text("notes")
    (folder / ".ckpt-1.safetensors.123.abcdefgh.tmp").write_text("a killed write")
    return folder


def test_folders_and_globs_are_ordered_by_step(run_folder):
    by_step = [str(run_folder / f"ckpt-{s}.safetensors") for s in (30, 200, 1000)]
    assert expand_checkpoints([run_folder]) == by_step  # not by name (1000 < 200 < 30)
    assert expand_checkpoints([str(run_folder / "ckpt-*.safetensors")]) == by_step
    # explicit paths keep the order given
    assert expand_checkpoints([by_step[2], by_step[0]]) == [by_step[2], by_step[0]]
    assert expand_checkpoints(["missing.pt"]) == ["missing.pt"]  # opening it gives the usual error


def test_folder_that_is_a_checkpoint_stays_one(tmp_path):
    """A sharded checkpoint's folder is one checkpoint, not a folder of them."""
    import json

    from safetensors.numpy import save_file

    folder = tmp_path / "shards"
    folder.mkdir()
    import numpy as np

    save_file({"fc.weight": np.ones((2, 3), dtype=np.float32)}, str(folder / "model-00001-of-00001.safetensors"))
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"fc.weight": "model-00001-of-00001.safetensors"}}))
    assert expand_checkpoints([folder]) == [str(folder)]


def test_expand_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint matches this pattern"):
        expand_checkpoints([str(tmp_path / "*.pt")])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"not a checkpoint \(.*\) and holds no checkpoint files"):
        expand_checkpoints([tmp_path])


def test_trajectory_tables_stack_the_analyses(run_folder):
    traj = analyze_trajectory([run_folder], null=4, seed=1)
    assert traj.steps == [30, 200, 1000]
    alone = analyze(run_folder / "ckpt-200.safetensors", null=4, seed=1)
    for table in ("layers", "neurons", "chains", "skipped"):
        df = getattr(traj, table)
        assert list(df.columns[:2]) == ["checkpoint", "step"] and str(df["step"].dtype) == "Int64"
        part = df[df["step"] == 200].drop(columns=["checkpoint", "step"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(part, getattr(alone, table), check_exact=True, obj=table)
    assert traj.options["null"] == 4
    s = traj.summary()
    assert s["n_checkpoints"] == 3 and [c["step"] for c in s["checkpoints"]] == [30, 200, 1000]


def test_given_steps_and_their_errors():
    traj = analyze_trajectory([INIT, TRAINED], steps=[0, 30])
    assert traj.layers["step"].tolist() == [0, 0, 0, 30, 30, 30]
    assert analyze_trajectory([INIT, TRAINED]).layers["step"].isna().all()
    with pytest.raises(ValueError, match=r"one step per checkpoint: 1 steps for 2 checkpoints"):
        analyze_trajectory([INIT, TRAINED], steps=[0])
    with pytest.raises(ValueError, match=r"steps must be non-negative integers, got -1"):
        analyze_trajectory([INIT, TRAINED], steps=[0, -1])
    with pytest.raises(ValueError, match=r"no checkpoint to analyse"):
        analyze_trajectory([])
    with pytest.raises(ValueError, match=r"one analysis and one step per checkpoint"):
        Trajectory([analyze(INIT)], [str(INIT), str(TRAINED)], [0, 1])
