"""Statistics for comparing initialisation methods over seeds (paired designs).

Every method is compared with its baseline on the same seed (same initial draw, data order and
split), so differences are paired. The functions take tidy tables (one row per run) and return
tidy tables; nothing here plots.

* :func:`paired_comparison`: per method against the baseline, the mean paired difference with a
  bootstrap confidence interval, Cohen's ``d_z`` with its interval, the relative improvement,
  Wilcoxon signed-rank and paired t-test p-values (Holm-corrected over the methods) and
  win/tie/loss counts.
* :func:`ratio_of_means`: the relative change, defined once for the whole package as the ratio
  of the means ``mean(method) / mean(base) - 1`` (never the mean of per-seed ratios, which is
  biased upward when the baseline is small), with a paired BCa bootstrap interval (seeds
  resampled jointly).
* :func:`relative_improvement`: the papers' "x% higher accuracy in the first epochs": per epoch,
  :func:`ratio_of_means` with its interval and a Wilcoxon test.
* :func:`sd_ratio`: the spread over seeds, ``sd(method) / sd(base)``, with the Pitman-Morgan test
  for paired variances (the correlation of ``x + y`` and ``x - y``) and a paired bootstrap interval.
* :func:`tost_paired`: two one-sided paired t-tests against an equivalence margin, and the 90%
  interval that tells which effects the data exclude.
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
    "seeds_for_effect",
    "ratio_of_means",
    "sd_ratio",
    "pitman_morgan",
    "tost_paired",
    "holm_within",
    "wilcoxon_p",
    "WILCOXON_METHOD",
]

#: How every Wilcoxon signed-rank test here is computed (recorded in each run table): zero
#: differences dropped (``zero_method="wilcox"``), then the exact null distribution when at most
#: 50 non-zero differences remain and none tie in absolute value, else the normal approximation
#: with scipy's tie correction and no continuity correction; two-sided. The method is chosen
#: here, not left to scipy's ``method="auto"``, whose rule changed between scipy versions.
WILCOXON_METHOD = ("scipy.stats.wilcoxon zero_method='wilcox' (zeros dropped); method='exact' if <= 50 non-zero "
                   "differences without tied |d|, else 'approx' (normal, tie-corrected, no continuity correction)")


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


def wilcoxon_p(d: np.ndarray | list[float]) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank p-value of paired differences and the method used
    (:data:`WILCOXON_METHOD`): ``"exact"``, ``"approx"`` or ``"none"`` (every difference 0: p = 1).

    Examples
    --------
    >>> wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    (0.03125, 'exact')
    """
    d = np.asarray(d, dtype=float)
    nz = d[d != 0]
    if len(nz) == 0:
        return 1.0, "none"
    ties = len(np.unique(np.abs(nz))) < len(nz)
    method = "exact" if len(nz) <= 50 and not ties else "approx"
    res = stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided", method=method,
                         **({"correction": False} if method == "approx" else {}))
    return float(res.pvalue), method


def _tests(d: np.ndarray) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank and paired t p-values; 1.0 when every difference is 0."""
    if np.all(d == 0):
        return 1.0, 1.0
    w = wilcoxon_p(d)[0]
    t = float(stats.ttest_1samp(d, 0.0).pvalue) if d.std(ddof=1) > 0 else 0.0
    return w, t


def paired_comparison(
    df: pd.DataFrame, *, baseline: str, value: str, method_col: str = "method", seed_col: str = "seed",
    n_boot: int = 2000, level: float = 0.95, rng: int | np.random.Generator | None = 0,
    tie_tolerance: float = 0.0, margin: float = 0.0,
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
    margin : float
        Equivalence margin of the TOST (:func:`tost_paired` on ``(-margin, margin)``); 0: no TOST
        (``p_tost`` is NaN), the 90% interval is reported all the same.

    Returns
    -------
    DataFrame
        One row per method: ``method, n, mean_base, mean_method, mean_diff, diff_ci_low,
        diff_ci_high, rel_improvement`` (:func:`ratio_of_means`) ``, rel_ci_low, rel_ci_high, dz,
        dz_ci_low, dz_ci_high, p_wilcoxon, wilcoxon_method, p_ttest, diff_ci90_low,
        diff_ci90_high, margin, p_tost, sd_base, sd_method, sd_ratio, sd_ratio_ci_low,
        sd_ratio_ci_high, p_pitman_morgan, p_wilcoxon_holm, p_ttest_holm, wins, ties, losses``.

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
        xb, xo = pairs["base"].to_numpy(dtype=float), pairs["other"].to_numpy(dtype=float)
        base_mean = float(xb.mean())
        try:
            rel, rlo, rhi = ratio_of_means(xb, xo, n_boot=n_boot, level=level, rng=gen)
        except StatsError:
            rel = rlo = rhi = float("nan")
        tost = tost_paired(d, -margin, margin, alpha=(1 - level) / 2) if margin > 0 else \
            tost_paired(d, -np.inf, np.inf, alpha=(1 - level) / 2)
        spread = sd_ratio(xb, xo, n_boot=n_boot, level=level, rng=gen) if len(d) >= 3 else {
            "sd_ratio": float("nan"), "sd_ratio_ci_low": float("nan"), "sd_ratio_ci_high": float("nan"),
            "p_pitman_morgan": float("nan")}
        rows.append({
            "method": m, "baseline": baseline, "n": len(d), "mean_base": base_mean,
            "mean_method": float(xo.mean()), "mean_diff": float(d.mean()),
            "diff_ci_low": lo, "diff_ci_high": hi,
            "rel_improvement": rel, "rel_ci_low": rlo, "rel_ci_high": rhi,
            "dz": _dz(d), "dz_ci_low": dlo, "dz_ci_high": dhi, "p_wilcoxon": pw,
            "wilcoxon_method": wilcoxon_p(d)[1], "p_ttest": pt,
            "diff_ci90_low": tost["ci_low"], "diff_ci90_high": tost["ci_high"], "margin": margin,
            "p_tost": tost["p_tost"] if margin > 0 else float("nan"),
            "sd_base": float(xb.std(ddof=1)), "sd_method": float(xo.std(ddof=1)), **spread,
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
    """Per epoch and method: the relative change ``mean(v_method) / mean(v_base) - 1`` over paired seeds.

    The ratio of means of :func:`ratio_of_means` with its paired bootstrap interval (the mean of
    per-seed ratios is not used: it is biased upward when the baseline is small).

    Returns
    -------
    DataFrame
        ``epoch, method, n, rel_improvement, ci_low, ci_high, p_wilcoxon, p_wilcoxon_holm``
        (Holm over methods within each epoch). Epochs where the baseline's mean is 0 are left out.

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
            if len(pairs) < 2:
                raise StatsError(f"epoch {epoch}: method {m!r} has {len(pairs)} paired seed(s); "
                                 f"at least 2 are needed")
            if pairs["base"].mean() == 0:
                continue
            est, lo, hi = ratio_of_means(pairs["base"].to_numpy(dtype=float), pairs["other"].to_numpy(dtype=float),
                                         n_boot=n_boot, level=level, rng=gen)
            block.append({"epoch": epoch, "method": m, "n": len(pairs), "rel_improvement": est,
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


# --------------------------------------------------------------------------- relative change, spread, equivalence
def _paired_bootstrap(base: np.ndarray, other: np.ndarray, stat, *, n_boot: int, level: float,
                      rng: np.random.Generator) -> tuple[float, float]:
    """BCa interval of ``stat(base, other, axis)`` with the seeds resampled jointly (percentile
    when BCa fails on degenerate samples)."""
    if len(base) < 3:
        v = float(stat(base, other, axis=-1))
        return v, v
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for method in ("BCa", "percentile"):
            res = stats.bootstrap((base, other), stat, paired=True, vectorized=True, n_resamples=n_boot,
                                  confidence_level=level, method=method, random_state=rng)
            lo, hi = res.confidence_interval
            if np.isfinite(lo) and np.isfinite(hi):
                return float(lo), float(hi)
    v = float(stat(base, other, axis=-1))
    return v, v


def _rom(base: np.ndarray, other: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(other, axis=axis) / np.mean(base, axis=axis) - 1.0


def ratio_of_means(base: np.ndarray | list[float], other: np.ndarray | list[float], *, n_boot: int = 2000,
                   level: float = 0.95, rng: int | np.random.Generator | None = 0) -> tuple[float, float, float]:
    r"""The relative change ``mean(other) / mean(base) - 1`` of paired samples and its bootstrap CI.

    .. math:: \hat\rho = \bar y / \bar x - 1

    The one definition of a relative change in :mod:`netinit.experiments`: a ratio of means, not
    the mean of per-seed ratios ``mean(y_i / x_i) - 1``, which is biased upward when ``x`` is
    small and noisy (Jensen). The interval is the BCa bootstrap with the pairs ``(x_i, y_i)``
    resampled together.

    Returns
    -------
    (estimate, ci_low, ci_high)

    Raises
    ------
    StatsError
        Fewer than 2 pairs, unequal lengths, or a baseline mean of 0.

    Examples
    --------
    >>> round(ratio_of_means([0.5, 0.5], [0.6, 0.6])[0], 6)
    0.2
    """
    x, y = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise StatsError(f"a ratio of means needs 2 or more pairs of equal length, got {x.shape} and {y.shape}")
    if x.mean() == 0:
        raise StatsError("the baseline's mean is 0: a relative change is undefined")
    lo, hi = _paired_bootstrap(x, y, _rom, n_boot=n_boot, level=level, rng=np.random.default_rng(rng))
    return float(_rom(x, y)), lo, hi


def pitman_morgan(base: np.ndarray | list[float], other: np.ndarray | list[float]) -> tuple[float, float]:
    r"""The Pitman-Morgan test of equal variances of paired samples: ``(t, two-sided p)``.

    For pairs ``(x_i, y_i)``, ``cov(x + y, x - y) = var(x) - var(y)``, so equal variances are
    equivalent to a zero correlation ``r`` between the sums and the differences; the test is
    the t-test of that correlation,

    .. math:: t = r \sqrt{n - 2} / \sqrt{1 - r^2},\quad \text{df} = n - 2

    (Pitman 1939; Morgan 1939), equal to the closed form
    ``(s_x^2 - s_y^2) sqrt(n - 2) / (2 s_x s_y sqrt(1 - r_xy^2))``.

    Raises
    ------
    StatsError
        Fewer than 3 pairs.
    """
    x, y = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    n = len(x)
    if n < 3 or x.shape != y.shape:
        raise StatsError(f"the Pitman-Morgan test needs 3 or more pairs, got {n}")
    s, d = x + y, x - y
    if s.std() == 0 or d.std() == 0:
        return 0.0, 1.0
    r = float(np.corrcoef(s, d)[0, 1])
    if abs(r) >= 1.0:
        return float(np.sign(r) * np.inf), 0.0
    t = r * np.sqrt(n - 2) / np.sqrt(1 - r * r)
    return float(t), float(2 * stats.t.sf(abs(t), n - 2))


def _sd_ratio(base: np.ndarray, other: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.std(other, axis=axis, ddof=1) / np.std(base, axis=axis, ddof=1)


def sd_ratio(base: np.ndarray | list[float], other: np.ndarray | list[float], *, n_boot: int = 2000,
             level: float = 0.95, rng: int | np.random.Generator | None = 0) -> dict[str, float]:
    """The spread over seeds of ``other`` relative to ``base``: ``sd(other) / sd(base)``.

    Returns
    -------
    dict
        ``sd_ratio``, ``sd_ratio_ci_low``, ``sd_ratio_ci_high`` (paired BCa bootstrap) and
        ``p_pitman_morgan`` (:func:`pitman_morgan`).

    Raises
    ------
    StatsError
        Fewer than 3 pairs.
    """
    x, y = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    _, p = pitman_morgan(x, y)
    if x.std() == 0:
        return {"sd_ratio": float("nan"), "sd_ratio_ci_low": float("nan"), "sd_ratio_ci_high": float("nan"),
                "p_pitman_morgan": p}
    lo, hi = _paired_bootstrap(x, y, _sd_ratio, n_boot=n_boot, level=level, rng=np.random.default_rng(rng))
    return {"sd_ratio": float(_sd_ratio(x, y)), "sd_ratio_ci_low": lo, "sd_ratio_ci_high": hi, "p_pitman_morgan": p}


def tost_paired(d: np.ndarray | list[float], low: float, high: float, *, alpha: float = 0.05) -> dict[str, float]:
    r"""Two one-sided paired t-tests (TOST) of ``low < mean(d) < high``.

    ``p_low`` tests ``H0: mean <= low`` against ``mean > low``, ``p_high`` tests
    ``H0: mean >= high`` against ``mean < high``; equivalence is declared at level ``alpha`` when
    ``p_tost = max(p_low, p_high) < alpha``, which is when the ``1 - 2 alpha`` t-interval
    ``[ci_low, ci_high]`` lies inside ``(low, high)`` (Schuirmann 1987). The interval says which
    effects the data exclude whatever the margin: effects above ``ci_high`` (below ``ci_low``).
    Same as ``statsmodels.stats.weightstats.ttost_paired(x1, x2, low, high)`` for ``d = x1 - x2``.

    Returns
    -------
    dict
        ``p_tost``, ``p_low``, ``p_high``, ``ci_low``, ``ci_high`` (the ``1 - 2 alpha`` interval).

    Raises
    ------
    StatsError
        Fewer than 2 differences, or ``low >= high``.
    """
    d = np.asarray(d, dtype=float)
    n = len(d)
    if n < 2:
        raise StatsError(f"TOST needs 2 or more paired differences, got {n}")
    if not low < high:
        raise StatsError(f"TOST needs low < high, got low={low!r}, high={high!r}")
    m, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(n))
    if se == 0:
        inside = low < m < high
        return {"p_tost": 0.0 if inside else 1.0, "p_low": 0.0 if m > low else 1.0,
                "p_high": 0.0 if m < high else 1.0, "ci_low": m, "ci_high": m}
    p_low = float(stats.t.sf((m - low) / se, n - 1))
    p_high = float(stats.t.cdf((m - high) / se, n - 1))
    q = float(stats.t.ppf(1 - alpha, n - 1))
    return {"p_tost": max(p_low, p_high), "p_low": p_low, "p_high": p_high,
            "ci_low": m - q * se, "ci_high": m + q * se}


def holm_within(table: pd.DataFrame, column: str, by: str = "family") -> np.ndarray:
    """Holm-adjusted ``table[column]`` within each group of ``table[by]`` (a family), in table order."""
    out = np.empty(len(table))
    for _, idx in table.groupby(by, sort=False).indices.items():
        out[idx] = holm(table[column].to_numpy()[idx])
    return out


def seeds_for_effect(dz: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Seeds a two-sided paired t-test at level ``alpha`` needs to detect a declared ``d_z`` with ``power``.

    Noncentral t; ``alpha`` is the per-test level (divide by the family size for Holm's worst case).

    Examples
    --------
    >>> seeds_for_effect(0.5)    # the textbook 34 pairs (Cohen 1988, d_z = 0.5, alpha 0.05, 80%)
    34
    """
    if not dz > 0:
        raise StatsError(f"a power analysis needs a declared effect d_z > 0, got {dz!r}")
    for n in range(2, 1_000_000):
        crit = stats.t.ppf(1 - alpha / 2, n - 1)
        nc = dz * np.sqrt(n)
        if stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc) >= power:
            return n
    raise StatsError(f"d_z = {dz!r} needs more than a million seeds")  # pragma: no cover
