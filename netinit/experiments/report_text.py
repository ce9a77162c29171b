"""The sentences of a results-folder comparison, written from its tables only.

The verdict of one paired comparison (:func:`sentence_text`) and of a table of them
(:func:`headline_text`, read back by :func:`headline_parts`), the number formats they share with the HTML tables, and the narrative helpers
the notebooks use: :func:`conclusion_text` (Markdown bullets for a subset of the comparisons),
:func:`claim_check` (a claimed relative improvement against the measured one), and the verdict of a
claim, :func:`verdict` and :func:`claim_verdicts` (and :func:`structure_verdicts` for the structure of
random and trained weights):

``reproduced``
    the Holm-adjusted (within its family) Wilcoxon p-value is below alpha and the difference
    is in the claimed direction (higher accuracy, lower loss);
``not reproduced: effects above X excluded``
    not significant (or significant the other way: ``the effect is reversed``), and the upper
    end X of the 90% t-interval of the paired difference (a one-sided 95% bound: the TOST bound)
    lies below the declared margin ``analysis.margin`` (or the claimed effect): effects as
    large as the claim are excluded by the data (``any gain excluded (upper bound X)`` when X is
    not positive);
``inconclusive``
    neither: the interval still holds effects of the declared size; always with fewer than
    :data:`MIN_SEEDS` seeds (a two-sided Wilcoxon test cannot reach 0.05 below 6, and a t-interval
    from so few seeds rests on a normality no one can check).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import pandas as pd

from netinit.experiments.report_tables import ResultsReport

#: Fewest paired seeds for a verdict other than inconclusive.
MIN_SEEDS = 6

__all__ = ["conclusion_text", "claim_check", "verdict", "claim_verdicts", "verdicts_markdown", "headline_parts",
           "structure_verdicts"]


# --------------------------------------------------------------------------- sentences
def fmt_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_text(p: float) -> str:
    """``p < 0.001`` or ``p = 0.123``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def pts_text(x: float, metric: str) -> str:
    if "acc" in metric:
        return f"{100 * x:+.2f} points"
    return f"{x:+.4g}"


def _val(x: float, metric: str) -> str:
    return f"{100 * x:.2f}%" if "acc" in metric else f"{x:.4g}"


def _excluded(bound: float, metric: str) -> str:
    """What the one-sided 95% bound on a gain excludes: ``effects above 0.40 points excluded``, or
    ``any gain excluded (upper bound -0.84 points)`` when the bound is not positive (losses: loss
    reductions)."""
    gain = "loss" not in metric
    if bound <= 0:
        return ("any gain" if gain else "any loss reduction") + f" excluded (upper bound {pts_text(bound, metric)})"
    return ("effects above " if gain else "loss reductions beyond ") + pts_text(bound, metric).lstrip("+") + " excluded"


def verdict(r: Any, alpha: float, metric: str = "test_acc", *, claimed: float | None = None) -> str:
    """``reproduced``, ``not reproduced: ...`` or ``inconclusive`` for one comparison row (module
    docstring); ``claimed`` (in the outcome's units, higher = better) replaces the row's margin, and
    a significant gain whose 90% interval ends below it is ``not reproduced: effects above X
    excluded; a smaller gain is significant``."""
    if getattr(r, "n", MIN_SEEDS) < MIN_SEEDS:
        return f"inconclusive (fewer than {MIN_SEEDS} seeds)"
    sig = r.p_wilcoxon_holm < alpha
    target = claimed if claimed is not None else getattr(r, "margin", 0.0)
    bound = getattr(r, "diff_ci90_high", float("nan"))
    if sig and r.mean_diff > 0:
        if claimed is not None and claimed > 0 and bound < claimed:  # a gain, but smaller than the claim
            return f"not reproduced: {_excluded(bound, metric)}; a smaller gain is significant"
        return "reproduced"
    if target and target > 0 and bound < target:
        return ("not reproduced: the effect is reversed; " if sig else "not reproduced: ") + _excluded(bound, metric)
    if sig:
        return "not reproduced: the effect is reversed"
    return "inconclusive"


def sentence_text(r: Any, what: str, metric: str, alpha: float) -> str:
    sign = 1.0 if "loss" not in metric else -1.0  # values of losses were negated for the tests
    sig = r.p_wilcoxon_holm < alpha
    better = r.mean_diff > 0
    verdict = (("significantly better" if better else "significantly worse") if sig
               else "no significant difference")
    fam = f"; family {r.family} ({r.role})" if hasattr(r, "family") else ""
    return (f"{r.method} vs {r.reference} ({r.kind}{fam}), {what}: {_val(sign * r.mean_method, metric)} vs "
            f"{_val(sign * r.mean_base, metric)}, paired difference {pts_text(sign * r.mean_diff, metric)} "
            f"(95% CI {pts_text(sign * r.diff_ci_low, metric)} to {pts_text(sign * r.diff_ci_high, metric)}; "
            f"relative {100 * r.rel_improvement:+.2f}%"
            + (f", CI {100 * r.rel_ci_low:+.2f}% to {100 * r.rel_ci_high:+.2f}%" if hasattr(r, "rel_ci_low") else "")
            + (f"; SD ratio {r.sd_ratio:.2f}, Pitman-Morgan {p_text(r.p_pitman_morgan)}"
               if hasattr(r, "sd_ratio") and r.sd_ratio == r.sd_ratio and r.p_pitman_morgan == r.p_pitman_morgan
               else "")
            + f"), Wilcoxon {p_text(r.p_wilcoxon)} "
            f"(Holm {fmt_p(r.p_wilcoxon_holm)}), paired t {p_text(r.p_ttest)}; {r.wins} wins, "
            f"{r.ties} ties, {r.losses} losses over {r.n} seeds: {verdict} at alpha = {alpha}"
            + (f"; verdict: {r.verdict}" if hasattr(r, "verdict") else "")
            + (f" (with {r.n} seeds the Wilcoxon test cannot reach p < 0.05; it needs 6 or more)." if r.n < 6 else "."))


#: What :func:`headline_text` writes after the outcome's description (:func:`headline_parts` reads it back).
_HEADLINE = re.compile(r"^(?P<what>.*?): (?:\d+ of \d+ comparisons significant after Holm correction within .*"
                       r"\(alpha = (?P<alpha>[0-9.eE+-]+)\)|no comparison could be tested\.)")


def headline_parts(line: str) -> tuple[str, float | None] | None:
    """The outcome description and alpha of a :func:`headline_text` line (alpha ``None`` when the
    line names none), or ``None`` when ``line`` is not a headline."""
    m = _HEADLINE.match(line)
    if m is None:
        return None
    return m["what"], (float(m["alpha"]) if m["alpha"] else None)


def headline_text(table: pd.DataFrame, what: str, alpha: float) -> str:
    if table.empty:
        return f"{what}: no comparison could be tested."
    sig = table[table["p_wilcoxon_holm"] < alpha]
    up = sig[sig["mean_diff"] > 0]["method"] + " vs " + sig[sig["mean_diff"] > 0]["reference"]
    down = sig[sig["mean_diff"] < 0]["method"] + " vs " + sig[sig["mean_diff"] < 0]["reference"]
    fams = table["family"].nunique() if "family" in table else 1
    s = (f"{what}: {len(sig)} of {len(table)} comparisons significant after Holm correction within "
         f"{'each of ' + str(fams) + ' families' if fams > 1 else 'one family'} (alpha = {alpha})")
    if len(up):
        s += "; better: " + ", ".join(up)
    if len(down):
        s += "; worse: " + ", ".join(down)
    return s + "."


# --------------------------------------------------------------------------- narrative helpers
def conclusion_text(rep: ResultsReport, *, kinds: Sequence[str] | None = None) -> str:
    """The conclusions of ``rep`` restricted to comparisons of ``kinds``, as Markdown bullets.

    Built only from the report's tables: the headline and one sentence per comparison for the
    last epoch and the early epochs, the change of in-strength variance at initialisation that
    each method brings over its reference, the seeds needed, and the notes on tests not made.
    """
    lines: list[str] = []
    for key in [k for k in ("paired_primary", "paired_secondary") if k in rep.tables] + ["paired_final", "paired_early"]:
        t = rep.tables.get(key, pd.DataFrame())
        if not t.empty and kinds is not None:
            t = t[t["kind"].isin(list(kinds))]
        lines.append(headline_text(t, rep.outcomes.get(key, key), rep.alpha))
        lines += [sentence_text(r, rep.outcomes.get(key, key), rep.metric, rep.alpha) for r in t.itertuples(index=False)]
    t = rep.tables.get("paired_final", pd.DataFrame())
    if not t.empty and kinds is not None:
        t = t[t["kind"].isin(list(kinds))]
    init = rep.tables.get("init_structure", pd.DataFrame())
    if not t.empty and not init.empty and "in_strength_var" in init:
        v = init.pivot(index="layer", columns="method", values="in_strength_var")
        for r in t.itertuples(index=False):
            if r.method in v and r.reference in v:
                ratio = (v[r.method] / v[r.reference]).dropna()
                per = ", ".join(f"{layer} {x:.3g}" for layer, x in ratio.items())
                lines.append(f"At initialisation the in-strength variance of {r.method} is {ratio.min():.3g} to "
                             f"{ratio.max():.3g} times that of {r.reference} (per layer: {per}).")
    power = rep.tables.get("power", pd.DataFrame())
    if not power.empty and not t.empty:
        p = power.merge(t[["method", "reference"]], on=["method", "reference"])
        need = p["seeds_needed_80"].dropna()
        if len(p):
            lines.append("Seeds needed for 80% power (paired t-test, this run as pilot): "
                         + (f"{int(need.min())} to {int(need.max())} for the {len(need)} comparisons with an "
                            f"observed difference" if len(need) else "no comparison shows a difference")
                         + f"; {int(p['pilot_seeds'].max())} were run.")
    lines += [f"Note: {n}" for n in rep.notes]
    return "\n".join(f"- {x}" for x in lines)


def claim_check(rep: ResultsReport, method: str, reference: str, claimed: float, *,
                table: str = "paired_early") -> str:
    """One sentence comparing a claimed relative improvement (0.40 = +40%) with the measured one.

    The measured relative improvement is the ratio of the means minus 1
    (:func:`netinit.experiments.stats.ratio_of_means`) with its paired bootstrap 95% CI; the
    sentence ends with the verdict: ``reproduced`` (significant, in the claimed direction),
    ``not reproduced: effects above X excluded`` (the claimed value lies above the interval,
    whose upper end is X) or ``inconclusive``.
    """
    t = rep.tables.get(table, pd.DataFrame())
    row = t[(t["method"] == method) & (t["reference"] == reference)] if not t.empty else t
    what = rep.outcomes.get(table, table)
    if row.empty:
        return (f"The claim of {100 * claimed:+.0f}% for {method} over {reference} ({what}) could not be "
                f"checked: no paired test was possible (see the notes).")
    r = row.iloc[0]
    lo, hi = (r["rel_ci_low"], r["rel_ci_high"]) if "rel_ci_low" in r else \
        (r["diff_ci_low"] / r["mean_base"], r["diff_ci_high"] / r["mean_base"])
    where = "inside" if lo <= claimed <= hi else ("above" if claimed > hi else "below")
    return (f"Claimed: {100 * claimed:+.0f}% relative for {method} over {reference}. Measured ({what}, "
            f"{int(r['n'])} seeds): {100 * r['rel_improvement']:+.1f}% (95% CI {100 * lo:+.1f}% to "
            f"{100 * hi:+.1f}%), Wilcoxon {p_text(r['p_wilcoxon'])} (Holm {fmt_p(r['p_wilcoxon_holm'])}"
            f"{', family ' + str(r['family']) if 'family' in r else ''}); the claimed value lies {where} "
            f"the interval: {_relative_verdict(r, lo, hi, claimed, rep.alpha)}.")


def _relative_verdict(r: Any, lo: float, hi: float, claimed: float, alpha: float) -> str:
    if r["n"] < MIN_SEEDS:
        return f"inconclusive (fewer than {MIN_SEEDS} seeds)"
    if r["p_wilcoxon_holm"] < alpha and r["mean_diff"] > 0:
        return "reproduced" if claimed <= hi else f"reproduced in direction, but effects above {100 * hi:+.1f}% excluded"
    if claimed > hi:
        if hi <= 0:
            return f"not reproduced: any gain excluded (upper bound {100 * hi:+.1f}%)"
        return f"not reproduced: effects above {100 * hi:+.1f}% excluded"
    return "inconclusive"


def claim_verdicts(rep: ResultsReport, claims: Sequence[tuple[str, str, str]], *,
                   table: str | None = None, claimed_relative: float | None = None) -> pd.DataFrame:
    """One row per claim ``(claim text, condition, reference)``: the verdict from ``rep``'s numbers.

    ``table`` defaults to the declared primary outcome (``paired_primary``) when the report has
    it, else ``paired_early``. The verdict (:func:`verdict`) weighs the 90% interval against the
    declared margin ``analysis.margin`` (the row's ``margin``), or, with ``claimed_relative``
    (0.40 = a claimed +40%), against the claimed effect in the outcome's units,
    ``claimed_relative * |mean of the reference|``. Columns: ``claim, comparison, outcome,
    family, n, difference, ci90_high, margin`` (the effect size the verdict weighs), ``against``
    (``declared margin`` or the claim), ``relative, rel_ci_low, rel_ci_high`` (ratio of means
    minus 1 and its paired bootstrap 95% CI), ``p_holm, verdict`` (``not tested`` when the
    comparison could not be made).
    """
    key = table or ("paired_primary" if "paired_primary" in rep.tables else "paired_early")
    t = rep.tables.get(key, pd.DataFrame())
    measure = rep.outcomes.get(key, rep.metric)
    against = "declared margin" if claimed_relative is None else f"claimed {100 * claimed_relative:+.0f}% relative"
    nan = float("nan")
    rows = []
    for text, m, ref in claims:
        row = t[(t["method"] == m) & (t["reference"] == ref)] if not t.empty else t
        if row.empty:
            rows.append({"claim": text, "comparison": f"{m} vs {ref}", "outcome": measure, "family": "",
                         "n": 0, "difference": nan, "ci90_high": nan,
                         "margin": rep.config.analysis.margin if claimed_relative is None else nan,
                         "against": against, "relative": nan, "rel_ci_low": nan, "rel_ci_high": nan,
                         "p_holm": nan, "verdict": "not tested"})
            continue
        r = next(row.itertuples(index=False))
        target = float(r.margin) if claimed_relative is None else claimed_relative * abs(float(r.mean_base))
        rows.append({"claim": text, "comparison": f"{m} vs {ref}", "outcome": measure,
                     "family": getattr(r, "family", ""), "n": int(r.n), "difference": float(r.mean_diff),
                     "ci90_high": float(r.diff_ci90_high), "margin": target, "against": against,
                     "relative": float(r.rel_improvement), "rel_ci_low": float(getattr(r, "rel_ci_low", nan)),
                     "rel_ci_high": float(getattr(r, "rel_ci_high", nan)), "p_holm": float(r.p_wilcoxon_holm),
                     "verdict": verdict(r, rep.alpha, rep.metric,
                                        claimed=None if claimed_relative is None else target)})
    return pd.DataFrame(rows)


def verdicts_markdown(table: pd.DataFrame) -> str:
    """Markdown bullets of a :func:`claim_verdicts` table: the claim, its verdict and the numbers behind it."""
    lines = []
    for r in table.itertuples(index=False):
        if r.verdict == "not tested":
            lines.append(f"- **{r.claim}** ({r.comparison}): not tested (no paired runs; see the notes).")
            continue
        against = getattr(r, "against", "declared margin")
        rel = getattr(r, "relative", float("nan"))
        lines.append(f"- **{r.claim}** ({r.comparison}, {r.outcome}; family {r.family}, {r.n} seeds): "
                     f"**{r.verdict}**. Paired difference {100 * r.difference:+.2f} points"
                     + (f" (relative {100 * rel:+.1f}%, 95% CI {100 * r.rel_ci_low:+.1f}% to "
                        f"{100 * r.rel_ci_high:+.1f}%)" if rel == rel and r.rel_ci_low == r.rel_ci_low else "")
                     + f", upper end of its 90% interval {100 * r.ci90_high:+.2f} points, {against} "
                     f"{100 * r.margin:.2f} points, Holm-adjusted Wilcoxon {p_text(r.p_holm)}.")
    return "\n".join(lines)


def structure_verdicts(at_init: pd.DataFrame, after: pd.DataFrame, *, alpha: float = 0.05,
                       measures: Sequence[str] = ("in_strength_var", "out_strength_var")) -> pd.DataFrame:
    """Verdicts of two claims per (method, layer, measure) from the tables of
    :func:`netinit.experiments.structure.structure_tests` against a reference method, on the random
    (``at_init``) and trained (``after``) weights:

    ``lowers``
        the method lowers the measure at initialisation: ``reproduced`` when the Holm-adjusted
        Wilcoxon p is below ``alpha`` and the mean is below the reference's; ``not reproduced: the
        effect is reversed`` when significant the other way; else ``inconclusive``;
    ``survives``
        the reduction measured at initialisation, ``d0 = mean_reference - mean``, is still there
        after training: ``reproduced`` when significant and lower; ``not reproduced: reductions
        above X excluded`` when X, the largest reduction the 95% interval of the trained difference
        allows (``-diff_ci_low``), is below ``d0`` (the reduction at initialisation did not
        survive whole); else ``inconclusive``.

    Both are ``inconclusive (fewer than 6 seeds)`` below :data:`MIN_SEEDS` seeds. Columns: ``claim,
    method, reference, layer, measure, state, n, mean, mean_reference, ratio, diff_ci_low,
    diff_ci_high, p_holm, claimed`` (``d0`` for ``survives``), ``verdict``.
    """
    rows = []
    if at_init.empty:
        return pd.DataFrame(rows)
    key = ["method", "reference", "layer", "measure"]
    trained = after.set_index(key) if not after.empty else pd.DataFrame()
    for r in at_init[at_init["measure"].isin(list(measures))].itertuples(index=False):
        d0 = float(r.mean_reference - r.mean)
        cases = [("lowers", "random", r._asdict(), float("nan"))]
        k = (r.method, r.reference, r.layer, r.measure)
        if not trained.empty and k in trained.index:
            cases.append(("survives", "trained", {**dict(zip(key, k)), **trained.loc[k].to_dict()}, d0))
        for claim, state, x, claimed in cases:
            sig = x["p_wilcoxon_holm"] < alpha
            lower = x["mean"] < x["mean_reference"]
            if x["n"] < MIN_SEEDS:
                v = f"inconclusive (fewer than {MIN_SEEDS} seeds)"
            elif sig and lower:
                v = "reproduced"
            elif claim == "survives" and d0 > 0 and -x["diff_ci_low"] < d0:
                most = -x["diff_ci_low"]  # the largest reduction the interval allows
                v = (("not reproduced: the effect is reversed; " if sig else "not reproduced: ")
                     + (f"reductions above {most:.3g} excluded" if most > 0
                        else f"any reduction excluded (largest allowed {most:.3g})"))
            elif sig:
                v = "not reproduced: the effect is reversed"
            else:
                v = "inconclusive"
            rows.append({"claim": claim, "method": x["method"], "reference": x["reference"], "layer": x["layer"],
                         "measure": x["measure"], "state": state, "n": int(x["n"]), "mean": float(x["mean"]),
                         "mean_reference": float(x["mean_reference"]), "ratio": float(x["ratio"]),
                         "diff_ci_low": float(x["diff_ci_low"]), "diff_ci_high": float(x["diff_ci_high"]),
                         "p_holm": float(x["p_wilcoxon_holm"]), "claimed": claimed, "verdict": v})
    return pd.DataFrame(rows)
