from __future__ import annotations

import json

import pandas as pd
import pytest

import netinit.experiments.runner as runner
import netinit.experiments.training as training
from netinit.errors import OutputError
from netinit.experiments.config import config_hash
from netinit.experiments.runner import (
    Progress,
    ResultsFolderError,
    load_results,
    run_grid,
    run_path,
    train_run,
)


def test_run_table_is_tidy_and_complete(tiny_results):
    cfg, out = tiny_results
    _, runs = load_results(out)
    assert set(runs["method"]) == {"default", "default+pa", "kaiming_normal"}
    assert sorted(runs["seed"].unique()) == [0, 1, 2]
    assert (runs["status"] == "ok").all() and (runs["config_hash"] == config_hash(cfg)).all()
    for col in ("torch_version", "numpy_version", "netinit_version", "python_version", "base_draw", "data_order"):
        assert runs[col].notna().all() and (runs[col] != "").all()
    one = runs[(runs["method"] == "default") & (runs["seed"] == 0)]
    ep = one[one["layer"] == ""]
    assert sorted(ep["epoch"].unique()) == [0, 1, 2]
    assert set(ep["measure"]) == {"train_loss", "train_acc", "test_loss", "test_acc", "train_acc_running",
                                  "train_loss_running"}
    assert sorted(ep[ep["measure"] == "train_acc_running"]["epoch"]) == [1, 2]
    lay = one[one["layer"] != ""]
    assert sorted(lay["epoch"].unique()) == [0, 2]  # at initialisation and at the end
    assert {"in_strength_var", "out_strength_var", "corr_in_mean_abs", "act_mean_abs_r"} <= set(lay["measure"])
    assert set(lay["layer"]) == {"fc1", "out"}
    assert runs["value"].notna().all()


def test_paired_design_in_the_results(tiny_results):
    """Every method of a seed has the same batch order; methods of one base share the base draw."""
    _, runs = load_results(tiny_results[1])
    idx = runs.groupby(["method", "seed"])[["base", "base_draw", "data_order"]].first().reset_index()
    assert (idx.groupby("seed")["data_order"].nunique() == 1).all()
    assert idx["data_order"].nunique() == 3  # and seeds differ
    assert (idx.groupby(["seed", "base"])["base_draw"].nunique() == 1).all()
    d = idx[idx["base"] == "default"].groupby("seed")["base_draw"].first()
    k = idx[idx["base"] == "kaiming_normal"].groupby("seed")["base_draw"].first()
    assert (d != k).all()


def test_resume_runs_nothing_the_second_time(tiny, tmp_path, torch_one_thread):
    cfg = tiny(**{"grid.seeds": 2, "grid.methods": ["default", "default+pa"], "train.epochs": 1})
    first = run_grid(cfg, tmp_path)
    assert (first.planned, first.done, first.skipped) == (4, 4, 0)
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")}
    seen = []
    second = run_grid(cfg, tmp_path, progress=seen.append)
    assert (second.done, second.skipped, len(second.failed), len(second.errors)) == (0, 4, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")} == mtimes
    assert seen == [Progress(0, 0, 0, 0, 4, "")]
    # a grown grid (one more seed) keeps the hash and runs only the new runs
    third = run_grid(tiny(**{"grid.seeds": 3, "grid.methods": ["default", "default+pa"], "train.epochs": 1}), tmp_path)
    assert (third.done, third.skipped) == (2, 4)
    # a deleted run (a lost worker's) is run again
    run_path(tmp_path, first.config_hash, "default+pa", 1).unlink()
    assert run_grid(cfg, tmp_path).done == 1


def test_nan_run_is_recorded_as_failed_and_the_grid_goes_on(tiny, tmp_path, monkeypatch, torch_one_thread):
    real = training.initialise  # train_run looks it up there

    def poisoned(model, method, seed, options):
        info = real(model, method, seed, options)
        if method.label == "default+pa" and seed == 1:  # this run's training loss becomes NaN
            model.out.register_forward_hook(lambda m, i, o: o * float("nan") if m.training else o)
        return info

    monkeypatch.setattr(training, "initialise", poisoned)
    cfg = tiny(**{"grid.seeds": 3, "grid.methods": ["default", "default+pa"], "train.epochs": 2})
    seen = []
    res = run_grid(cfg, tmp_path, progress=seen.append)
    assert res.done == 5 and not res.errors
    assert [(f["method"], f["seed"]) for f in res.failed] == [("default+pa", 1)]
    assert "non-finite training loss (nan) at epoch 1, step 1" in res.failed[0]["error"]
    assert seen[-1].failed == 1 and seen[-1].left == 0
    _, runs = load_results(tmp_path)
    status = runs.groupby(["method", "seed"])["status"].first()
    assert status[("default+pa", 1)] == "diverged" and (status.drop(("default+pa", 1)) == "ok").all()
    assert runs.loc[runs["status"] == "diverged", "error"].str.contains("epoch 1, step 1").all()
    # a diverged run is finished: a rerun does not repeat it
    monkeypatch.setattr(training, "initialise", real)
    assert run_grid(cfg, tmp_path).skipped == 6


def test_natural_divergence_is_detected(tiny, torch_one_thread):
    cfg = tiny(**{"train.lr": 1e4, "train.epochs": 1})
    df = train_run(cfg, cfg.grid.conditions()[0], 0)
    assert (df["status"] == "diverged").all()
    assert df["error"].iloc[0].startswith("non-finite training loss")


def test_a_raising_run_is_reported_not_written(tiny, tmp_path, monkeypatch, torch_one_thread):
    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "train_run", broken)
    res = run_grid(tiny(**{"grid.seeds": 1, "grid.methods": ["default"]}), tmp_path)
    assert [e["error"] for e in res.errors] == ["RuntimeError: boom"]
    assert not list(tmp_path.rglob("*.parquet"))


def test_refuses_to_mix_results_folders(tiny, tmp_path, torch_one_thread):
    a = tiny(**{"grid.seeds": 1, "grid.methods": ["default"], "train.epochs": 1})
    run_grid(a, tmp_path)
    b = tiny(**{"grid.seeds": 1, "grid.methods": ["default"], "train.epochs": 1, "train.lr": 0.1})
    with pytest.raises(ResultsFolderError, match=r"holds runs of another config .*train.lr: 0.05 -> 0.1.*--allow-mixed"):
        run_grid(b, tmp_path)
    run_grid(b, tmp_path, allow_mixed=True)
    assert len(json.loads((tmp_path / "experiment.json").read_text())["configs"]) == 2
    with pytest.raises(ResultsFolderError, match=r"holds runs of 2 configs .*--config-hash"):
        load_results(tmp_path)
    cfg, runs = load_results(tmp_path, config_hash=config_hash(b)[:6])
    assert cfg.train.lr == 0.1 and (runs["config_hash"] == config_hash(b)).all()


def test_refuses_a_foreign_folder(tiny, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds other files and no experiment.json"):
        run_grid(tiny(), tmp_path)
    with pytest.raises(ResultsFolderError, match=r"not a results folder"):
        load_results(tmp_path)


def test_dask_local_cluster_two_workers(tiny, tmp_path):
    """The grid on a distributed.LocalCluster of 2 worker processes on loopback; then it resumes."""
    pytest.importorskip("distributed")
    cfg = tiny(**{"grid.seeds": 2, "grid.methods": ["default", "default+pa"], "train.epochs": 1})
    seen = []
    res = run_grid(cfg, tmp_path, scheduler="local", workers=2, progress=seen.append)
    assert (res.done, len(res.failed), len(res.errors)) == (4, 0, 0), res.summary()
    assert [p.left for p in seen] == [4, 3, 2, 1, 0]
    assert len(list(tmp_path.rglob("*.parquet"))) == 4
    # the same tables as a serial run: the engine does not change the results
    _, runs = load_results(tmp_path)
    serial_dir = tmp_path.parent / (tmp_path.name + "_serial")
    run_grid(cfg, serial_dir)
    _, ref = load_results(serial_dir)
    cols = ["method", "seed", "epoch", "layer", "measure", "value"]
    pd.testing.assert_frame_equal(runs[cols].sort_values(cols[:5]).reset_index(drop=True),
                                  ref[cols].sort_values(cols[:5]).reset_index(drop=True), rtol=1e-5)
    assert run_grid(cfg, tmp_path, scheduler="local", workers=2).skipped == 4


def test_published_folder_with_runs_parquet(tiny_results, tmp_path):
    """A published folder (experiment.json and all run tables in runs.parquet) reads like the
    results folder it came from; one without either says what it lacks."""
    import shutil

    src = tiny_results[1]
    cfg0, runs0 = load_results(src)
    shutil.copy(src / "experiment.json", tmp_path / "experiment.json")
    runs0.sample(frac=1.0, random_state=0).to_parquet(tmp_path / "runs.parquet")
    cfg, runs = load_results(tmp_path)
    assert cfg == cfg0
    key = ["method", "seed", "epoch", "layer", "measure"]
    pd.testing.assert_frame_equal(runs.sort_values(key).reset_index(drop=True),
                                  runs0.sort_values(key).reset_index(drop=True))
    (tmp_path / "runs.parquet").unlink()
    with pytest.raises(ResultsFolderError, match=r"no finished runs of config \w+ yet \(no runs/\w+/\*\.parquet, "
                                                 r"no runs\.parquet\)"):
        load_results(tmp_path)
