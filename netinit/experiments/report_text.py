"""The sentences of a results-folder comparison, written from its tables only.

The verdict of one paired comparison (:func:`sentence_text`) and of a table of them
(:func:`headline_text`), the number formats they share with the HTML tables, and the narrative helpers
the notebooks use: :func:`conclusion_text` (Markdown bullets for a subset of the comparisons) and
:func:`claim_check` (a claimed relative improvement against the measured one).
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from netinit.experiments.report_tables import ResultsReport

__all__ = ["conclusion_text", "claim_check"]


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


def sentence_text(r: Any, what: str, metric: str, alpha: float) -> str:
    sign = 1.0 if "loss" not in metric else -1.0  # values of losses were negated for the tests
    sig = r.p_wilcoxon_holm < alpha
    better = r.mean_diff > 0
    verdict = (("significantly better" if better else "significantly worse") if sig
               else "no significant difference")
    return (f"{r.method} vs {r.reference} ({r.kind}), {what}: {_val(sign * r.mean_method, metric)} vs "
            f"{_val(sign * r.mean_base, metric)}, paired difference {pts_text(sign * r.mean_diff, metric)} "
            f"(95% CI {pts_text(sign * r.diff_ci_low, metric)} to {pts_text(sign * r.diff_ci_high, metric)}; "
            f"relative {100 * r.rel_improvement:+.2f}%), Wilcoxon {p_text(r.p_wilcoxon)} "
            f"(Holm {fmt_p(r.p_wilcoxon_holm)}), paired t {p_text(r.p_ttest)}; {r.wins} wins, "
            f"{r.ties} ties, {r.losses} losses over {r.n} seeds: {verdict} at alpha = {alpha}"
            + (f" (with {r.n} seeds the Wilcoxon test cannot reach p < 0.05; it needs 6 or more)." if r.n < 6 else "."))


def headline_text(table: pd.DataFrame, what: str, alpha: float) -> str:
    if table.empty:
        return f"{what}: no comparison could be tested."
    sig = table[table["p_wilcoxon_holm"] < alpha]
    up = sig[sig["mean_diff"] > 0]["method"] + " vs " + sig[sig["mean_diff"] > 0]["reference"]
    down = sig[sig["mean_diff"] < 0]["method"] + " vs " + sig[sig["mean_diff"] < 0]["reference"]
    s = f"{what}: {len(sig)} of {len(table)} comparisons significant after Holm correction (alpha = {alpha})"
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
    for key in ("paired_final", "paired_early"):
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

    The measured relative improvement is the mean paired difference over the reference's mean;
    its interval is the CI of the difference divided by that mean.
    """
    t = rep.tables.get(table, pd.DataFrame())
    row = t[(t["method"] == method) & (t["reference"] == reference)] if not t.empty else t
    what = rep.outcomes.get(table, table)
    if row.empty:
        return (f"The claim of {100 * claimed:+.0f}% for {method} over {reference} ({what}) could not be "
                f"checked: no paired test was possible (see the notes).")
    r = row.iloc[0]
    lo, hi = r["diff_ci_low"] / r["mean_base"], r["diff_ci_high"] / r["mean_base"]
    where = "inside" if lo <= claimed <= hi else ("above" if claimed > hi else "below")
    return (f"Claimed: {100 * claimed:+.0f}% relative for {method} over {reference}. Measured ({what}, "
            f"{int(r['n'])} seeds): {100 * r['rel_improvement']:+.1f}% (95% CI {100 * lo:+.1f}% to "
            f"{100 * hi:+.1f}%), Wilcoxon {p_text(r['p_wilcoxon'])} (Holm {fmt_p(r['p_wilcoxon_holm'])}); "
            f"the claimed value lies {where} the interval.")
