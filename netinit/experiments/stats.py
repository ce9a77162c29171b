"""Statistics for comparing initialisation methods over seeds (paired designs).

Every method is compared with its baseline on the same seed (same initial draw, data order and
split), so differences are paired. The functions take tidy tables (one row per run) and return
tidy tables; nothing here plots.

* :func:`paired_comparison`: per method against the baseline, the mean paired difference with a
  bootstrap confidence interval, Cohen's ``d_z`` with its interval, the relative improvement,
  Wilcoxon signed-rank and paired t-test p-values (Holm-corrected over the methods) and
  win/tie/loss counts.
* :func:`relative_improvement`: the papers' "x% higher accuracy in the first epochs": per epoch,
  ``(acc_method - acc_base) / acc_base`` per seed, averaged, with a bootstrap interval and a
  Wilcoxon test.
* :func:`friedman_nemenyi`: many methods over seeds (or tasks): Friedman test, average ranks,
  Nemenyi post-hoc p-values and the critical difference (Demšar, JMLR 2006).
* :func:`seeds_needed`: how many seeds a paired t-test needs to detect the effect of a pilot run.

References
----------
J. Demšar, "Statistical comparisons of classifiers over multiple data sets", JMLR 7, 2006.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "StatsError",
    "paired_differences",
    "paired_comparison",
    "relative_improvement",
    "holm",
    "friedman_nemenyi",
    "FriedmanResult",
    "critical_difference",
    "seeds_needed",
]


class StatsError(ValueError):
    """The data cannot support the requested test (too few seeds, unpaired runs, ...)."""


def holm(pvalues: np.ndarray | list[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (same order as the input).

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


def paired_differences(
    df: pd.DataFrame, *, method: str, baseline: str, value: str,
    method_col: str = "method", seed_col: str = "seed",
) -> pd.DataFrame:
    """Pair the runs of ``method`` and ``baseline`` by seed: columns ``seed, base, other, diff``.

    Raises
    ------
    StatsError
        A method is missing, or a seed appears twice for one method.
    """
    for m in (method, baseline):
        if m not in set(df[method_col]):
            raise StatsError(f"no runs of method {m!r}; methods present: {sorted(set(df[method_col]))}")
    sub = df[df[method_col].isin([method, baseline])]
    dup = sub.duplicated([method_col, seed_col])
    if dup.any():
        raise StatsError(f"seed {sub.loc[dup, seed_col].iloc[0]!r} appears twice for one method; "
                         f"filter to one epoch/configuration first")
    wide = sub.pivot(index=seed_col, columns=method_col, values=value).dropna()
    out = pd.DataFrame({"seed": wide.index, "base": wide[baseline].to_numpy(),
                        "other": wide[method].to_numpy()})
    out["diff"] = out["other"] - out["base"]
    return out.reset_index(drop=True)


def _bootstrap_ci(x: np.ndarray, stat, *, n_boot: int, rng: np.random.Generator, level: float) -> tuple[float, float]:
    if len(x) < 2 or np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        v = float(stat(x))
        return v, v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        return _bootstrap(x, stat, n_boot=n_boot, rng=rng, level=level)


def _bootstrap(x: np.ndarray, stat, *, n_boot: int, rng: np.random.Generator, level: float) -> tuple[float, float]:
    res = stats.bootstrap((x,), stat, n_resamples=n_boot, confidence_level=level, method="BCa",
                          random_state=rng, vectorized=False)
    lo, hi = res.confidence_interval
    if not (np.isfinite(lo) and np.isfinite(hi)):  # BCa can fail on degenerate samples
        res = stats.bootstrap((x,), stat, n_resamples=n_boot, confidence_level=level,
                              method="percentile", random_state=rng, vectorized=False)
        lo, hi = res.confidence_interval
    return float(lo), float(hi)


def _dz(d: np.ndarray) -> float:
    sd = d.std(ddof=1)
    return float(d.mean() / sd) if sd > 0 else 0.0


def _tests(d: np.ndarray) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank and paired t p-values; 1.0 when every difference is 0."""
    if np.all(d == 0):
        return 1.0, 1.0
    w = float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue) if np.any(d != 0) else 1.0
    t = float(stats.ttest_1samp(d, 0.0).pvalue) if d.std(ddof=1) > 0 else 0.0
    return w, t


def paired_comparison(
    df: pd.DataFrame, *, baseline: str, value: str, method_col: str = "method", seed_col: str = "seed",
    n_boot: int = 2000, level: float = 0.95, rng: int | np.random.Generator | None = 0,
    tie_tolerance: float = 0.0,
) -> pd.DataFrame:
    """Compare every method with ``baseline`` over paired seeds.

    Parameters
    ----------
    df : DataFrame
        One row per (method, seed) with the outcome in column ``value`` (e.g. final test
        accuracy). Filter to one epoch first.
    baseline : str
        The reference method.
    value : str
        The outcome column (higher is better).
    n_boot, level : int, float
        Bootstrap resamples and confidence level of the intervals (BCa).
    rng : int or Generator
        Seed of the bootstrap.
    tie_tolerance : float
        ``|diff| <= tie_tolerance`` counts as a tie.

    Returns
    -------
    DataFrame
        One row per method: ``method, n, mean_base, mean_method, mean_diff, diff_ci_low,
        diff_ci_high, rel_improvement, dz, dz_ci_low, dz_ci_high, p_wilcoxon, p_ttest,
        p_wilcoxon_holm, p_ttest_holm, wins, ties, losses``.

    Raises
    ------
    StatsError
        Fewer than 2 paired seeds for a method (a test needs at least 2; 6 or more for the
        Wilcoxon test to reach p < 0.05).
    """
    gen = np.random.default_rng(rng)
    rows = []
    for m in sorted(set(df[method_col]) - {baseline}):
        pairs = paired_differences(df, method=m, baseline=baseline, value=value,
                                   method_col=method_col, seed_col=seed_col)
        d = pairs["diff"].to_numpy(dtype=float)
        if len(d) < 2:
            raise StatsError(f"method {m!r} has {len(d)} seed(s) paired with {baseline!r}; "
                             f"a paired test needs at least 2 (better 10 or more)")
        lo, hi = _bootstrap_ci(d, np.mean, n_boot=n_boot, rng=gen, level=level)
        dlo, dhi = _bootstrap_ci(d, _dz, n_boot=n_boot, rng=gen, level=level)
        pw, pt = _tests(d)
        base_mean = float(pairs["base"].mean())
        rows.append({
            "method": m, "baseline": baseline, "n": len(d), "mean_base": base_mean,
            "mean_method": float(pairs["other"].mean()), "mean_diff": float(d.mean()),
            "diff_ci_low": lo, "diff_ci_high": hi,
            "rel_improvement": float(d.mean() / base_mean) if base_mean != 0 else float("nan"),
            "dz": _dz(d), "dz_ci_low": dlo, "dz_ci_high": dhi, "p_wilcoxon": pw, "p_ttest": pt,
            "wins": int((d > tie_tolerance).sum()), "ties": int((np.abs(d) <= tie_tolerance).sum()),
            "losses": int((d < -tie_tolerance).sum()),
        })
    if not rows:
        raise StatsError(f"no method other than the baseline {baseline!r} to compare")
    out = pd.DataFrame(rows)
    out["p_wilcoxon_holm"] = holm(out["p_wilcoxon"].to_numpy())
    out["p_ttest_holm"] = holm(out["p_ttest"].to_numpy())
    return out


def relative_improvement(
    df: pd.DataFrame, *, baseline: str, value: str = "test_acc", epoch_col: str = "epoch",
    method_col: str = "method", seed_col: str = "seed", n_boot: int = 2000, level: float = 0.95,
    rng: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """Per epoch and method: the mean over seeds of ``(v_method - v_base) / v_base`` (paired).

    Returns
    -------
    DataFrame
        ``epoch, method, n, rel_improvement, ci_low, ci_high, p_wilcoxon, p_wilcoxon_holm``
        (Holm over methods within each epoch). Seeds where the baseline is 0 are left out.

    Raises
    ------
    StatsError
        Fewer than 2 paired seeds at an epoch.
    """
    gen = np.random.default_rng(rng)
    rows = []
    for epoch, part in df.groupby(epoch_col, sort=True):
        block = []
        for m in sorted(set(part[method_col]) - {baseline}):
            pairs = paired_differences(part, method=m, baseline=baseline, value=value,
                                       method_col=method_col, seed_col=seed_col)
            pairs = pairs[pairs["base"] != 0]
            r = (pairs["diff"] / pairs["base"]).to_numpy(dtype=float)
            if len(r) < 2:
                raise StatsError(f"epoch {epoch}: method {m!r} has {len(r)} paired seed(s); "
                                 f"at least 2 are needed")
            lo, hi = _bootstrap_ci(r, np.mean, n_boot=n_boot, rng=gen, level=level)
            block.append({"epoch": epoch, "method": m, "n": len(r), "rel_improvement": float(r.mean()),
                          "ci_low": lo, "ci_high": hi, "p_wilcoxon": _tests(pairs["diff"].to_numpy())[0]})
        if block:
            adj = holm([b["p_wilcoxon"] for b in block])
            for b, a in zip(block, adj):
                b["p_wilcoxon_holm"] = float(a)
            rows += block
    return pd.DataFrame(rows, columns=["epoch", "method", "n", "rel_improvement", "ci_low", "ci_high",
                                       "p_wilcoxon", "p_wilcoxon_holm"])


@dataclass
class FriedmanResult:
    """Friedman test over blocks (seeds or tasks) and Nemenyi post-hoc."""

    statistic: float
    pvalue: float
    ranks: pd.Series            #: average rank per method (1 = best)
    nemenyi: pd.DataFrame       #: pairwise Nemenyi p-values
    cd: float                   #: critical difference of average ranks at ``alpha``
    n_blocks: int
    alpha: float


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks: ``q_alpha * sqrt(k (k+1) / (6 n))``.

    ``q_alpha`` is the studentised range quantile divided by ``sqrt(2)`` (Demšar 2006, Table 5).

    Examples
    --------
    >>> round(critical_difference(4, 14), 2)   # Demšar 2006, section 3.2.4
    1.25
    """
    if k < 2 or n < 1:
        raise StatsError(f"a critical difference needs k >= 2 methods and n >= 1 blocks, got k={k}, n={n}")
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6.0 * n)))


def friedman_nemenyi(
    df: pd.DataFrame, *, value: str, method_col: str = "method", block_col: str = "seed",
    alpha: float = 0.05, higher_is_better: bool = True,
) -> FriedmanResult:
    """Friedman test of ``k >= 3`` methods over blocks, average ranks, Nemenyi post-hoc.

    Raises
    ------
    StatsError
        Fewer than 3 methods or 2 complete blocks.
    """
    import scikit_posthocs as sp

    wide = df.pivot_table(index=block_col, columns=method_col, values=value, aggfunc="mean").dropna()
    k, n = wide.shape[1], wide.shape[0]
    if k < 3:
        raise StatsError(f"the Friedman test needs at least 3 methods, got {k}; use paired_comparison for 2")
    if n < 2:
        raise StatsError(f"the Friedman test needs at least 2 complete {block_col}s, got {n}")
    res = stats.friedmanchisquare(*[wide[c].to_numpy() for c in wide.columns])
    ranks = wide.rank(axis=1, ascending=not higher_is_better).mean(axis=0)
    data = wide.to_numpy() if higher_is_better else -wide.to_numpy()
    nem = sp.posthoc_nemenyi_friedman(data)
    nem.index = nem.columns = list(wide.columns)
    return FriedmanResult(float(res.statistic), float(res.pvalue), ranks.sort_values(), nem,
                          critical_difference(k, n, alpha), n, alpha)


def seeds_needed(diffs: np.ndarray | list[float], *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Seeds a two-sided paired t-test needs to detect the mean difference of a pilot run.

    Uses the pilot's effect size ``d_z = mean / sd`` and the noncentral t distribution.

    Raises
    ------
    StatsError
        Fewer than 2 pilot differences, or a zero effect (no number of seeds suffices).
    """
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        raise StatsError(f"a power estimate needs at least 2 pilot seeds, got {len(d)}")
    dz = abs(_dz(d))
    if dz == 0:
        raise StatsError("the pilot shows no effect (mean difference 0): no number of seeds detects it")
    for n in range(2, 100_000):
        crit = stats.t.ppf(1 - alpha / 2, n - 1)
        nc = dz * np.sqrt(n)
        achieved = stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
        if achieved >= power:
            return n
    raise StatsError(f"the pilot effect d_z={dz:.2g} needs more than 100000 seeds")
