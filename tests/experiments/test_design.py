"""Families, the running accuracy, provenance, scale modifiers, batch norm, regulariser doses,
Fashion-MNIST's default location and the learning-rate tuning."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pandas as pd
import pytest

from netinit.experiments.config import (
    CONFIG_DIR,
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    config_hash,
    config_to_dict,
    for_notebook,
    load_config,
    override,
    parse_method,
)
from netinit.experiments.stats import holm

from .conftest import tiny_config

FAMILIES = [{"name": "pa", "role": "primary", "comparisons": ["default+pa vs default"]},
            {"name": "kn", "role": "exploratory", "comparisons": ["kaiming_normal vs default"]}]


def test_families_parse_and_are_checked_against_the_grid():
    cfg = override(tiny_config(), {})
    d = {"grid": {"methods": ["default", "default+pa", "kaiming_normal"]}, "families": FAMILIES}
    c = config_from_dict(d)
    assert [f.name for f in c.families] == ["pa", "kn"] and c.families[0].pairs == [("default+pa", "default")]
    assert config_hash(c) == config_hash(config_from_dict({"grid": d["grid"]}))  # families are not hashed
    with pytest.raises(ConfigError, match="'orthogonal' is not a condition of the grid"):
        config_from_dict({**d, "families": [{"name": "x", "comparisons": ["orthogonal vs default"]}]})
    with pytest.raises(ConfigError, match="must read 'A vs B'"):
        config_from_dict({**d, "families": [{"name": "x", "comparisons": ["default+pa default"]}]})
    with pytest.raises(ConfigError, match="families.x.role = 'main' is not valid"):
        config_from_dict({**d, "families": [{"name": "x", "role": "main", "comparisons": ["default+pa vs default"]}]})
    table_style = config_from_dict({**d, "families": {"pa": {"role": "primary", "comparisons": ["default+pa vs default"]}}})
    assert table_style.families[0].name == "pa"
    assert cfg.families == ()
    narrowed = override(c, {"grid.methods": ["default", "default+pa"]})  # keeps what it still can compare
    assert [f.name for f in narrowed.families] == ["pa"]


def test_old_configs_keep_their_hash():
    # the hash of the committed results of pa_vs_baseline (data/results/experiments_pa_vs_baseline)
    assert config_hash(load_config(CONFIG_DIR / "pa_vs_baseline.toml")) == "1a75c6fc46822738"
    c = load_config(CONFIG_DIR / "pa_vs_baseline.toml")
    assert config_hash(override(c, {"model.batchnorm": True})) != config_hash(c)


@pytest.mark.parametrize("name", ["pa_fashion_mlp", "pa_fashion_cnn", "decorrelation_controlled",
                                  "regularisers_dose", "pa_vs_baseline", "diversity_digits", "cnn_digits"])
def test_bundled_configs_load_and_shrink(name):
    cfg = load_config(CONFIG_DIR / f"{name}.toml")
    small = for_notebook(cfg, small=True)
    labels = {c.label for c in small.grid.conditions()}
    for f in small.families:
        assert all(a in labels and b in labels for a, b in f.pairs)


def test_method_rules_for_the_new_modifiers():
    assert parse_method("orthogonal+scale_default").modifiers == ("scale_default",)
    assert parse_method("default+decorrelated_greedy+scale_gain1").modifiers == ("decorrelated_greedy", "scale_gain1")
    with pytest.raises(ConfigError, match="must come last"):
        parse_method("default+scale_gain1+pa")
    with pytest.raises(ConfigError, match="must come first"):
        parse_method("default+pa+decorrelated_greedy")
    with pytest.raises(ConfigError, match="choose one of 'decorrelated'"):
        parse_method("default+decorrelated+decorrelated_backprop")


def test_scale_modifiers_match_row_norms_and_keep_structure():
    import torch

    from netinit.experiments.config import InitConfig, ModelConfig
    from netinit.experiments.models import build_model, initialise

    def fc1(method):
        m = build_model(ModelConfig(hidden=(16,)), 64, 10)
        initialise(m, parse_method(method), 3, InitConfig())
        return m.fc1.weight.detach().double()

    rms = lambda w: float(w.pow(2).sum(1).mean().sqrt())  # noqa: E731
    assert rms(fc1("orthogonal")) == pytest.approx(1.0, rel=1e-6)
    assert rms(fc1("orthogonal+scale_default")) == pytest.approx(np.sqrt(1 / 3), rel=1e-6)
    assert rms(fc1("default+scale_gain1")) == pytest.approx(1.0, rel=1e-6)
    d, ds = fc1("default+decorrelated"), fc1("default+decorrelated+scale_gain1")
    assert torch.allclose(ds / ds.norm(), d / d.norm(), atol=1e-6)  # one factor: same structure
    g = fc1("default+decorrelated_greedy")
    assert g.shape == d.shape and not torch.equal(g, fc1("default"))


def test_batchnorm_and_sigmoid_models():
    from netinit.experiments.config import ModelConfig
    from netinit.experiments.models import build_model, weight_layers

    m = build_model(ModelConfig(hidden=(8,), batchnorm=True, activation="sigmoid"), 64, 10)
    names = [n for n, _ in m.named_children()]
    assert names == ["fc1", "bn1", "act1", "out"] and type(m.act1).__name__ == "Sigmoid"
    c = build_model(ModelConfig(arch="cnn", channels=(4, 8), batchnorm=True), 64, 10)
    assert [n for n, _ in c.named_children() if n.startswith("bn")] == ["bn1", "bn2"]
    assert list(weight_layers(c)) == ["conv1", "conv2", "out"]


def test_running_accuracy_is_the_mean_over_the_epochs_batches(torch_one_thread):
    """With a learning rate too small to move the weights, the running accuracy of an epoch (every
    training sample seen once, in mini-batches) equals the accuracy of the initial model on the
    whole training set."""
    from netinit.experiments.runner import train_run

    cfg = tiny_config(**{"train.lr": 1e-12, "train.epochs": 1, "train.batch_size": 100})
    df = train_run(cfg, cfg.grid.conditions()[0], 0)
    ep = df[df["layer"] == ""].set_index(["epoch", "measure"])["value"]
    assert ep[(1, "train_acc_running")] == pytest.approx(ep[(0, "train_acc")], abs=1e-12)
    assert ep[(1, "train_loss_running")] == pytest.approx(ep[(0, "train_loss")], rel=1e-5)
    for col in ("scipy_version", "wilcoxon_method", "torch_interop_threads", "omp_num_threads"):
        assert col in df.columns
    assert df["torch_threads"].iloc[0] == 1


def test_running_accuracy_follows_training(torch_one_thread):
    from netinit.experiments.runner import train_run

    cfg = tiny_config(**{"train.epochs": 2, "train.lr": 0.2})
    df = train_run(cfg, cfg.grid.conditions()[0], 1)
    ep = df[df["layer"] == ""].set_index(["epoch", "measure"])["value"]
    # the running accuracy lags the evaluated one: it averages over the epoch, while the model improved
    assert ep[(0, "train_acc")] < ep[(1, "train_acc_running")] < ep[(1, "train_acc")]


def test_report_holm_within_declared_families(tiny_results):
    from netinit.experiments.report import analyse
    from netinit.experiments.runner import load_results

    cfg, out = tiny_results
    cfg2, runs = load_results(out)
    fams = config_from_dict({**config_to_dict(cfg2), "families": FAMILIES[:1],
                             "analysis": {"primary": "train_acc_running", "primary_epochs": [1, 1],
                                          "secondary": "test_acc", "secondary_epochs": [0, 0], "margin": 0.02}})
    rep = analyse(fams, runs, figures=False)
    t = rep.tables["paired_primary"]
    assert set(t["family"]) == {"pa", "undeclared"}
    for fam, part in t.groupby("family"):
        assert part["p_wilcoxon_holm"].to_numpy() == pytest.approx(holm(part["p_wilcoxon"].to_numpy()))
    assert (t.loc[t["family"] == "pa", "role"] == "primary").all()
    assert set(t["verdict"]) == {"inconclusive (fewer than 6 seeds)"}  # 3 seeds: no verdict
    assert "paired_secondary" in rep.tables and "provenance" in rep.tables and "manipulation" in rep.tables
    prov = rep.tables["provenance"].set_index("item")["values"]
    assert "exact" in prov["wilcoxon_method"] and prov["scipy_version"]
    man = rep.tables["manipulation"]
    assert {"corr_in_mean_abs_init", "corr_in_mean_abs_final", "act_mean_abs_r_init"} <= set(man.columns)
    old = analyse(cfg2, runs, figures=False)
    assert any("declares no families" in n for n in old.notes)
    assert set(old.tables["paired_final"]["family"]) == {"undeclared"}


def test_verdicts_from_numbers():
    from types import SimpleNamespace as R

    from netinit.experiments.report_text import verdict

    assert verdict(R(p_wilcoxon_holm=0.01, mean_diff=0.02, margin=0.01, diff_ci90_high=0.03), 0.05) == "reproduced"
    v = verdict(R(p_wilcoxon_holm=0.6, mean_diff=0.001, margin=0.01, diff_ci90_high=0.004), 0.05)
    assert v == "not reproduced: effects above 0.40 points excluded"
    assert verdict(R(p_wilcoxon_holm=0.6, mean_diff=0.001, margin=0.01, diff_ci90_high=0.02), 0.05) == "inconclusive"
    assert verdict(R(p_wilcoxon_holm=0.01, mean_diff=-0.02, margin=0.0, diff_ci90_high=-0.01), 0.05) == \
        "not reproduced: the effect is reversed"
    # a bound at or below zero excludes every gain: said so, not as "effects above -0.84 points"
    assert verdict(R(p_wilcoxon_holm=0.01, mean_diff=-0.015, margin=0.005, diff_ci90_high=-0.0084), 0.05) == \
        "not reproduced: the effect is reversed; any gain excluded (upper bound -0.84 points)"
    assert verdict(R(p_wilcoxon_holm=0.3, mean_diff=-0.001, margin=0.005, diff_ci90_high=0.0), 0.05) == \
        "not reproduced: any gain excluded (upper bound +0.00 points)"
    assert verdict(R(p_wilcoxon_holm=0.3, mean_diff=0.001, margin=0.005, diff_ci90_high=0.0001), 0.05) == \
        "not reproduced: effects above 0.01 points excluded"
    assert verdict(R(p_wilcoxon_holm=0.01, mean_diff=-0.2, margin=0.1, diff_ci90_high=-0.05), 0.05, "test_loss") == \
        "not reproduced: the effect is reversed; any loss reduction excluded (upper bound -0.05)"


def test_regulariser_coefficients_in_the_grid(torch_one_thread, tmp_path):
    from netinit.experiments.report import analyse
    from netinit.experiments.runner import load_results, run_grid

    cfg = tiny_config(**{"grid.methods": ["default"], "grid.regularisers": ["none", "decov=10", "decov=0.001"],
                         "grid.seeds": 2, "train.epochs": 1, "stats.every_epoch": True})
    labels = [c.label for c in cfg.grid.conditions()]
    assert labels == ["default", "default@decov=10", "default@decov=0.001"]
    assert [c.coef(0.1) for c in cfg.grid.conditions()[1:]] == [10.0, 0.001]
    with pytest.raises(ConfigError, match="coefficient 'x' is not a number"):
        override(cfg, {"grid.regularisers": ["decov=x"]})
    out = tmp_path / "dose"
    run_grid(cfg, out)
    _, runs = load_results(out)
    dose = analyse(cfg, runs, figures=False).tables["dose"].set_index("method")
    assert dose.loc["default@decov=10", "penalty_over_loss"] > 100 * dose.loc["default@decov=0.001", "penalty_over_loss"]
    assert "fc1_act_r_change_final" in dose.columns


def _write_idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(head + arr.tobytes())


def test_fashion_mnist_is_found_where_debian_installs_it(tmp_path, monkeypatch):
    from netinit.experiments import datasets

    rng = np.random.default_rng(0)
    for name, arr in (("train-images-idx3-ubyte", rng.integers(0, 256, (30, 28, 28))),
                      ("train-labels-idx1-ubyte", np.arange(30) % 10),
                      ("t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28))),
                      ("t10k-labels-idx1-ubyte", np.arange(10))):
        _write_idx(tmp_path / f"{name}.gz", arr)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path)
    d = datasets.load_dataset("fashion_mnist")
    assert tuple(d.X_train.shape) == (30, 784) and tuple(d.X_test.shape) == (10, 784)
    s = datasets.subsample(d, 20, seed=0)
    assert len(s.y_train) == 20 and np.bincount(s.y_train.numpy()).tolist() == [2] * 10
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.load_dataset("fashion_mnist")
    assert ExperimentConfig().data.name == "digits"
    config_from_dict({"data": {"name": "fashion_mnist"}})  # no path needed any more


def test_tune_lr_picks_the_best_validation_rate(torch_one_thread):
    from netinit.experiments.training import run_data
    from netinit.experiments.tuning import tune_lr, validation_split

    cfg = tiny_config(**{"train.epochs": 2})
    best, table = tune_lr(cfg, [1e-6, 0.1], seeds=2, window=(1, 2))
    assert best == 0.1 and len(table) == 4
    means = table.groupby("lr")["val_acc_window"].mean()
    assert means[0.1] > means[1e-6]
    d = run_data(cfg.data)
    v = validation_split(d, 0.2)
    assert len(v.y_train) + len(v.y_test) == len(d.y_train)
    assert isinstance(table, pd.DataFrame)


def test_no_verdict_from_too_few_seeds():
    from types import SimpleNamespace as R

    from netinit.experiments.report_text import verdict

    r = R(n=2, p_wilcoxon_holm=0.5, mean_diff=0.0, margin=0.01, diff_ci90_high=0.001)
    assert verdict(r, 0.05) == "inconclusive (fewer than 6 seeds)"


def test_relative_verdict_of_a_bound_below_zero():
    from netinit.experiments.report_text import _relative_verdict

    row = {"n": 30, "p_wilcoxon_holm": 0.4, "mean_diff": -0.01}
    assert _relative_verdict(row, -0.05, -0.012, 0.40, 0.05) == "not reproduced: any gain excluded (upper bound -1.2%)"
    assert _relative_verdict(row, -0.05, 0.031, 0.40, 0.05) == "not reproduced: effects above +3.1% excluded"
    assert _relative_verdict(row, -0.05, 0.5, 0.40, 0.05) == "inconclusive"
