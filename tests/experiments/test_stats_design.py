"""The statistics of the designed experiments: ratio of means, SD ratio (Pitman-Morgan), TOST,
the Wilcoxon method, Holm within families and the power analysis, against scipy, statsmodels and
textbook values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from netinit.experiments.stats import (
    StatsError,
    holm,
    holm_within,
    paired_comparison,
    pitman_morgan,
    ratio_of_means,
    relative_improvement,
    sd_ratio,
    seeds_for_effect,
    tost_paired,
    wilcoxon_p,
)


def _pairs(rng, n=30, rho=0.6, sx=1.0, sy=1.5):
    cov = [[sx * sx, rho * sx * sy], [rho * sx * sy, sy * sy]]
    xy = rng.multivariate_normal([0.0, 0.0], cov, size=n)
    return xy[:, 0], xy[:, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pitman_morgan_is_the_correlation_test_of_sums_and_differences(seed):
    rng = np.random.default_rng(seed)
    x, y = _pairs(rng)
    t, p = pitman_morgan(x, y)
    r, p_scipy = stats.pearsonr(x + y, x - y)  # the definition: r(x + y, x - y) = 0 iff var x = var y
    assert p == pytest.approx(p_scipy, rel=1e-9)
    n = len(x)  # the classical closed form (Pitman 1939, Morgan 1939)
    sx2, sy2, rxy = x.var(ddof=1), y.var(ddof=1), np.corrcoef(x, y)[0, 1]
    t_closed = (sx2 - sy2) * np.sqrt(n - 2) / (2 * np.sqrt(sx2 * sy2 * (1 - rxy ** 2)))
    assert t == pytest.approx(t_closed, rel=1e-9)


def test_pitman_morgan_holds_its_level_under_equal_variances():
    rng = np.random.default_rng(7)
    ps = np.array([pitman_morgan(*_pairs(rng, n=20, sx=1.0, sy=1.0))[1] for _ in range(2000)])
    # under H0 the p-values are uniform: rejection rate at 0.05 within a binomial 99.9% band of 2000 draws
    assert 0.05 - 0.016 < (ps < 0.05).mean() < 0.05 + 0.016
    assert stats.kstest(ps, "uniform").pvalue > 0.001


def test_sd_ratio_reports_ratio_interval_and_test():
    rng = np.random.default_rng(3)
    x, y = _pairs(rng, n=60, sx=1.0, sy=0.5)
    out = sd_ratio(x, y, n_boot=999, rng=0)
    assert out["sd_ratio"] == pytest.approx(y.std(ddof=1) / x.std(ddof=1))
    assert out["sd_ratio_ci_low"] < out["sd_ratio"] < out["sd_ratio_ci_high"]
    assert out["p_pitman_morgan"] < 0.01
    with pytest.raises(StatsError, match="3 or more pairs"):
        sd_ratio([1.0, 2.0], [1.0, 3.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_tost_matches_statsmodels_ttost_paired(seed):
    weightstats = pytest.importorskip("statsmodels.stats.weightstats")
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0.80, 0.02, 40)
    x2 = x1 - rng.normal(0.002, 0.01, 40)
    for low, high in ((-0.01, 0.01), (-0.005, 0.02), (-0.001, 0.001)):
        p, lower, upper = weightstats.ttost_paired(x1, x2, low, high)
        ours = tost_paired(x1 - x2, low, high)
        assert ours["p_tost"] == pytest.approx(p, rel=1e-9)
        assert ours["p_low"] == pytest.approx(lower[1], rel=1e-9)
        assert ours["p_high"] == pytest.approx(upper[1], rel=1e-9)


def test_tost_interval_is_the_90_percent_t_interval():
    d = np.random.default_rng(4).normal(0.01, 0.02, 25)
    out = tost_paired(d, -0.05, 0.05)
    lo, hi = stats.t.interval(0.90, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((lo, hi))
    assert (out["p_tost"] < 0.05) == (-0.05 < lo and hi < 0.05)
    with pytest.raises(StatsError, match="low < high"):
        tost_paired(d, 0.1, -0.1)


def test_ratio_of_means_bootstrap_covers_a_known_ratio():
    """Coverage of the paired BCa interval on simulated pairs with a known ratio of means."""
    rng = np.random.default_rng(11)
    mu_x, mu_y, n, reps = 0.40, 0.46, 30, 300  # true relative change +15%
    hits = 0
    for _ in range(reps):
        x = rng.normal(mu_x, 0.08, n)
        y = x * (mu_y / mu_x) + rng.normal(0.0, 0.05, n)
        est, lo, hi = ratio_of_means(x, y, n_boot=999, rng=rng)
        hits += lo <= mu_y / mu_x - 1 <= hi
    # nominal 95%; a binomial 99.9% band for 300 replications is about +-4 points
    assert 0.95 - 0.05 <= hits / reps <= 0.995


def test_ratio_of_means_is_not_the_mean_of_ratios():
    x = np.array([0.1, 0.5, 0.5, 0.9])
    y = np.array([0.2, 0.5, 0.5, 0.9])
    est = ratio_of_means(x, y, n_boot=200)[0]
    assert est == pytest.approx(y.mean() / x.mean() - 1)
    assert est < np.mean(y / x) - 1  # the per-seed average is pulled up by the low baseline
    with pytest.raises(StatsError, match="mean is 0"):
        ratio_of_means([0.0, 0.0], [1.0, 1.0])


def test_relative_improvement_and_paired_comparison_use_the_ratio_of_means():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.1, 0.3, 12)
    other = base + rng.normal(0.02, 0.01, 12)
    df = pd.DataFrame({"method": ["a"] * 12 + ["b"] * 12, "seed": list(range(12)) * 2,
                       "epoch": 1, "acc": np.r_[base, other]})
    rel = relative_improvement(df, baseline="a", value="acc", n_boot=200)
    assert rel["rel_improvement"].iloc[0] == pytest.approx(other.mean() / base.mean() - 1)
    pc = paired_comparison(df, baseline="a", value="acc", n_boot=200, margin=0.05)
    r = pc.iloc[0]
    assert r["rel_improvement"] == pytest.approx(other.mean() / base.mean() - 1)
    assert r["rel_ci_low"] < r["rel_improvement"] < r["rel_ci_high"]
    assert r["p_tost"] == pytest.approx(tost_paired(other - base, -0.05, 0.05)["p_tost"])
    assert r["sd_ratio"] == pytest.approx(other.std(ddof=1) / base.std(ddof=1))
    assert r["wilcoxon_method"] == "exact"


def test_wilcoxon_method_is_chosen_and_reported():
    d = np.array([0.3, -0.1, 0.25, 0.4, 0.05, 0.6, 0.7, -0.2])
    p, how = wilcoxon_p(d)
    assert how == "exact" and p == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)
    tied = np.array([0.1, 0.1, 0.2, -0.1, 0.3, 0.0, 0.2, 0.4])
    p, how = wilcoxon_p(tied)
    nz = tied[tied != 0]
    assert how == "approx"
    assert p == pytest.approx(stats.wilcoxon(nz, method="approx", correction=False).pvalue)
    assert wilcoxon_p(np.zeros(5)) == (1.0, "none")


def test_holm_runs_within_each_family_only():
    t = pd.DataFrame({"family": ["a", "a", "b", "b", "b"], "p": [0.01, 0.04, 0.01, 0.02, 0.03]})
    adj = holm_within(t, "p")
    assert adj[:2] == pytest.approx(holm([0.01, 0.04]))
    assert adj[2:] == pytest.approx(holm([0.01, 0.02, 0.03]))
    assert not np.allclose(adj, holm(t["p"]))


def test_seeds_for_a_declared_effect():
    assert seeds_for_effect(0.5) == 34  # Cohen (1988): paired t, d_z = 0.5, alpha 0.05, power 0.8
    n = seeds_for_effect(0.3, alpha=0.05 / 4)
    crit = stats.t.ppf(1 - 0.05 / 8, n - 1)
    assert stats.nct.sf(crit, n - 1, 0.3 * np.sqrt(n)) >= 0.8 > stats.nct.sf(
        stats.t.ppf(1 - 0.05 / 8, n - 2), n - 2, 0.3 * np.sqrt(n - 1))
    with pytest.raises(StatsError, match="d_z > 0"):
        seeds_for_effect(0.0)
