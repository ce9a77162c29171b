"""analysis.diversity_experiment: pairing, statistics, the command line (tiny runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.diversity_experiment import (
    ExperimentConfig,
    build_model,
    init_model,
    main,
    pa_rewire_available,
    run_experiment,
    summarise,
)


def test_init_is_paired_across_methods():
    base, dec, orth = (build_model(64, (16,), 10) for _ in range(3))
    init_model(base, "baseline", 3)
    init_model(dec, "decorrelated", 3)
    init_model(orth, "orthogonal", 3)
    for name in ("0", "2"):
        wb, wd = dict(base.named_modules())[name].weight, dict(dec.named_modules())[name].weight
        np.testing.assert_allclose(wd.detach().norm(dim=1), wb.detach().norm(dim=1), rtol=1e-5)
        assert not torch.allclose(wb, wd)
    for a, b in ((base, dec), (base, orth)):
        assert torch.equal(a[0].bias, b[0].bias) and torch.equal(a[2].bias, b[2].bias)
    again = build_model(64, (16,), 10)
    init_model(again, "baseline", 3)
    assert torch.equal(again[0].weight, base[0].weight)
    init_model(again, "baseline", 4)
    assert not torch.equal(again[0].weight, base[0].weight)


def _runs(acc_base, acc_method):
    rows = []
    for seed, (b, m) in enumerate(zip(acc_base, acc_method)):
        for method, acc in (("baseline", b), ("decorrelated", m)):
            for epoch, a in enumerate(acc):
                rows.append(dict(seed=seed, method=method, regulariser="none", epoch=epoch, step=0,
                                 layer="", measure="test_acc", value=a))
    return pd.DataFrame(rows)


def test_summary_relative_increase_bootstrap_and_wilcoxon():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.4, size=(12, 3))
    method = base * 1.5
    s = summarise(_runs(base, method), n_boot=500)
    assert list(s["epochs"]) == ["1", "2", "1-2"]
    assert list(s["method"]) == ["decorrelated"] * 3 and list(s["regulariser"]) == ["none"] * 3
    assert s["rel_improvement"].to_numpy() == pytest.approx([0.5, 0.5, 0.5])
    assert (s["ci_low"] <= 0.5 + 1e-9).all() and (s["ci_high"] >= 0.5 - 1e-9).all()
    assert (s["p_wilcoxon"] < 0.001).all() and s["n_seeds"].eq(12).all()
    pooled = s.iloc[-1]
    assert pooled["wins"] == 12 and pooled["mean_method"] == pytest.approx(1.5 * base[:, 1:].mean())
    assert s["mean_base"].iloc[0] == pytest.approx(base[:, 1].mean())
    same = summarise(_runs(base, base), n_boot=100)
    assert (same["p_wilcoxon"] == 1.0).all() and (same["rel_improvement"] == 0).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # BCa intervals of analysis.stats on 2 seeds
def test_tiny_run_and_command_line(tmp_path):
    cfg = ExperimentConfig(dataset="synthetic", seeds=2, epochs=1, hidden=(8,), methods=("baseline", "decorrelated"),
                           regularisers=("none", "decov"), lr=0.05)
    runs = run_experiment(cfg)
    acc0 = runs[(runs["measure"] == "test_acc") & (runs["epoch"] == 0) & (runs["method"] == "baseline")]
    by_seed = acc0.groupby("seed")["value"].nunique()
    assert (by_seed == 1).all()  # same init with and without the regulariser
    assert set(runs["regulariser"]) == {"none", "decov"} and set(runs["schedule"]) == {"first_epochs"}
    assert main(["--dataset", "synthetic", "--seeds", "2", "--epochs", "1", "--hidden", "8", "4",
                 "--methods", "baseline", "decorrelated", "--regularisers", "none", "activation_correlation",
                 "-o", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["diversity_synthetic.md", "diversity_synthetic_runs.csv", "diversity_synthetic_summary.csv"]
    md = (tmp_path / "diversity_synthetic.md").read_text()
    assert "python -m analysis.diversity_experiment --dataset synthetic" in md and "| decorrelated | none |" in md
    one = tmp_path / "one"
    assert main(["--dataset", "synthetic", "--seeds", "1", "--epochs", "1", "--hidden", "4", "--methods", "baseline",
                 "--regularisers", "none", "-o", str(one)]) == 0
    assert sorted(p.name for p in one.iterdir()) == ["diversity_synthetic_runs.csv"]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"unknown methods/regularisers \['lsuv'\]"):
        ExperimentConfig(methods=("baseline", "lsuv"))
    with pytest.raises(ValueError, match="needs method 'baseline' and regulariser 'none'"):
        ExperimentConfig(methods=("decorrelated",))
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        ExperimentConfig(optimizer="rmsprop")


@pytest.mark.skipif(not pa_rewire_available(), reason="netinit.rewire.pa_rewire_ is missing")
def test_pa_rewire_permutes_the_baseline_draw():
    base, pa = build_model(20, (12,), 4), build_model(20, (12,), 4)
    init_model(base, "baseline", 5)
    init_model(pa, "pa_rewire", 5)
    for i in (0, 2):
        a, b = base[i].weight.detach(), pa[i].weight.detach()
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values) and not torch.equal(a, b)
        assert torch.equal(base[i].bias, pa[i].bias)


@pytest.mark.skipif(pa_rewire_available(), reason="netinit.rewire.pa_rewire_ exists")
def test_pa_rewire_missing_is_a_clear_error():
    cfg = ExperimentConfig(dataset="synthetic", seeds=1, epochs=1, methods=("baseline", "pa_rewire"),
                           regularisers=("none",))
    with pytest.raises(NotImplementedError, match="needs netinit.rewire.pa_rewire_.*--methods baseline"):
        run_experiment(cfg)
