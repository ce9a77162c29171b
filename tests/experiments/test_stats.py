from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from netinit.experiments.stats import (
    StatsError,
    critical_difference,
    friedman_nemenyi,
    holm,
    paired_comparison,
    relative_improvement,
    seeds_needed,
)

# AUC of C4.5 variants on 14 data sets, after Demšar (JMLR 2006), Table 6.
DEMSAR = np.array([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.975, 0.975], [0.957, 0.978, 0.946, 0.970],
])
METHODS = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]


def _long(matrix, methods, block="seed"):
    return pd.DataFrame([{block: i, "method": m, "acc": matrix[i, j]}
                         for i in range(matrix.shape[0]) for j, m in enumerate(methods)])


def test_friedman_nemenyi_on_demsar_data():
    res = friedman_nemenyi(_long(DEMSAR, METHODS), value="acc")
    ranks = np.mean([stats.rankdata(-row) for row in DEMSAR], axis=0)  # 1 = best, ties averaged
    assert res.ranks.to_dict() == pytest.approx(dict(zip(METHODS, ranks)))
    assert res.ranks.index[0] == "C4.5+m+cf" and res.ranks.index[-1] == "C4.5"
    assert res.statistic == pytest.approx(stats.friedmanchisquare(*DEMSAR.T).statistic)
    k, n = 4, 14  # chi^2_F from the average ranks (Demsar eq. for the Friedman statistic, no tie correction)
    chi2_untied = 12 * n / (k * (k + 1)) * (np.sum(ranks ** 2) - k * (k + 1) ** 2 / 4)
    assert res.statistic >= chi2_untied - 1e-9  # scipy's tie correction only increases it
    assert res.cd == pytest.approx(1.25, abs=0.005)  # the paper's CD for k=4, N=14
    assert res.nemenyi.shape == (4, 4)
    for a in METHODS:  # Nemenyi p < alpha exactly when the rank difference exceeds the CD
        for b in METHODS:
            if a != b:
                gap = abs(res.ranks[a] - res.ranks[b])
                assert (res.nemenyi.loc[a, b] < 0.05) == (gap > res.cd), (a, b)


def test_friedman_needs_three_methods_and_two_blocks():
    with pytest.raises(StatsError, match="at least 3 methods, got 2"):
        friedman_nemenyi(_long(DEMSAR[:, :2], METHODS[:2]), value="acc")
    with pytest.raises(StatsError, match="at least 2 complete seeds, got 1"):
        friedman_nemenyi(_long(DEMSAR[:1], METHODS), value="acc")


def test_critical_difference_table_values():
    # Demšar Table 5(a): q_0.05 for k = 2..5 is 1.960, 2.343, 2.569, 2.728
    for k, q in ((2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728)):
        assert critical_difference(k, 6) == pytest.approx(q * np.sqrt(k * (k + 1) / 36), rel=1e-3)


def test_holm_against_statsmodels(rng):
    from statsmodels.stats.multitest import multipletests

    p = rng.uniform(0, 0.2, size=9)
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])


def test_paired_comparison_against_scipy(rng):
    seeds = np.arange(12)
    base = rng.normal(0.80, 0.02, size=12)
    better = base + rng.normal(0.02, 0.01, size=12)
    same = base + rng.normal(0.0, 0.01, size=12)
    df = pd.concat([pd.DataFrame({"seed": seeds, "method": m, "acc": v})
                    for m, v in (("base", base), ("pa", better), ("noise", same))])
    out = paired_comparison(df, baseline="base", value="acc", rng=0).set_index("method")
    d = better - base
    assert out.loc["pa", "mean_diff"] == pytest.approx(d.mean())
    assert out.loc["pa", "p_wilcoxon"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert out.loc["pa", "p_ttest"] == pytest.approx(stats.ttest_rel(better, base).pvalue)
    assert out.loc["pa", "dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert out.loc["pa", "diff_ci_low"] < d.mean() < out.loc["pa", "diff_ci_high"]
    assert out.loc["pa", "diff_ci_low"] > 0  # a clear effect excludes 0
    assert out.loc["pa", "wins"] + out.loc["pa", "ties"] + out.loc["pa", "losses"] == 12
    assert out.loc["pa", "p_wilcoxon_holm"] == pytest.approx(
        min(1.0, 2 * min(out["p_wilcoxon"])) if out.loc["pa", "p_wilcoxon"] == out["p_wilcoxon"].min()
        else out.loc["pa", "p_wilcoxon_holm"])
    assert out.loc["pa", "rel_improvement"] == pytest.approx(d.mean() / base.mean())


def test_too_few_seeds_is_an_error():
    df = pd.DataFrame({"seed": [0, 0], "method": ["a", "b"], "acc": [0.5, 0.6]})
    with pytest.raises(StatsError, match="has 1 seed\\(s\\) paired with 'a'; a paired test needs at least 2"):
        paired_comparison(df, baseline="a", value="acc")
    with pytest.raises(StatsError, match="no runs of method 'zzz'"):
        paired_comparison(df, baseline="zzz", value="acc")


def test_identical_methods_give_p_one_not_nan():
    df = pd.DataFrame({"seed": [0, 1, 2, 0, 1, 2], "method": list("aaabbb"), "acc": [0.5, 0.6, 0.7] * 2})
    row = paired_comparison(df, baseline="a", value="acc").iloc[0]
    assert row["p_wilcoxon"] == 1.0 and row["ties"] == 3 and row["mean_diff"] == 0.0


def test_relative_improvement_per_epoch(rng):
    rows = []
    for seed in range(10):
        for epoch in (1, 2):
            b = 0.5 + 0.1 * epoch + rng.normal(0, 0.01)
            rows += [{"seed": seed, "epoch": epoch, "method": "base", "test_acc": b},
                     {"seed": seed, "epoch": epoch, "method": "dec", "test_acc": b * 1.4}]
    out = relative_improvement(pd.DataFrame(rows), baseline="base")
    assert out["epoch"].tolist() == [1, 2]
    np.testing.assert_allclose(out["rel_improvement"], 0.4)
    assert (out["p_wilcoxon"] < 0.01).all()


def test_seeds_needed_against_statsmodels(rng):
    from statsmodels.stats.power import TTestPower

    pilot = rng.normal(0.3, 1.0, size=20)
    dz = pilot.mean() / pilot.std(ddof=1)
    n = seeds_needed(pilot)
    exact = TTestPower().solve_power(effect_size=dz, alpha=0.05, power=0.8)
    assert n == int(np.ceil(exact))
    with pytest.raises(StatsError, match="at least 2 pilot seeds"):
        seeds_needed([0.1])
