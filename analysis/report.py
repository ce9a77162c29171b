"""Compare the methods of a results folder: statistics tables, figures and an HTML report.

:func:`analyse` (pure: tables and sentences, no files) and :func:`write_report` (files) make up
:func:`compare_results`, which ``netinit compare RESULTS_DIR -o REPORT_DIR`` calls.

**Comparisons.** Every condition against the config's baseline; every method with modifiers
against the unmodified method of the same base initialiser (``kaiming_normal+pa`` against
``kaiming_normal``: the same initial draw, rewired or not); every regularised condition against the
same method without regulariser. Each comparison is paired by seed
(:func:`analysis.stats.paired_comparison`): mean difference with a BCa bootstrap 95% CI, Cohen's
``d_z``, Wilcoxon signed-rank and paired t p-values, Holm-adjusted over all comparisons of the
table, and win/tie/loss counts. Two outcomes: the metric at the last epoch (``final``), and its
mean over epochs ``1..min(5, epochs)`` (``early``: the papers' "first epochs"). Also: the
relative improvement over the baseline per epoch (:func:`analysis.stats.relative_improvement`),
a Friedman test with Nemenyi post-hoc and critical difference over all conditions
(:func:`analysis.stats.friedman_nemenyi`), and the seeds a paired t-test would need to detect each
observed difference with 80% power (:func:`analysis.stats.seeds_needed`, the folder as a pilot).

A verdict is "significant" when the Holm-adjusted Wilcoxon p-value is below ``alpha``. Runs that
diverged are listed and left out; a comparison uses the seeds where both of its conditions
finished. A test that the data cannot support (fewer than 2 paired seeds, fewer than 3
conditions for Friedman) is replaced by a sentence that says why; the report never shows a NaN
p-value.
"""

from __future__ import annotations

import html
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis.config import Condition, ExperimentConfig, Method, config_to_dict
from analysis.config import config_hash as _config_hash
from analysis.stats import (
    StatsError,
    friedman_nemenyi,
    holm,
    paired_comparison,
    paired_differences,
    relative_improvement,
    seeds_needed,
)

__all__ = ["ResultsReport", "analyse", "write_report", "compare_results", "planned_comparisons",
           "epoch_table", "layer_table", "conclusion_text", "claim_check", "structure_change",
           "structure_tests", "REPORT_FILES"]

#: Entries of a report folder (earlier reports in a folder are replaced without --force).
REPORT_FILES = ("report.html", "summary.json", "tables", "figures")
EARLY_EPOCHS = 5
_VERSIONS = ("python_version", "torch_version", "numpy_version", "netinit_version")


@dataclass
class ResultsReport:
    """Everything :func:`analyse` computed: tables, sentences and (unsaved) figures."""

    config: ExperimentConfig
    config_hash: str
    metric: str
    tables: dict[str, pd.DataFrame]
    conclusions: list[str]
    notes: list[str]
    alpha: float = 0.05
    headlines: list[str] = field(default_factory=list)      #: the one-line verdicts (a subset of conclusions)
    outcomes: dict[str, str] = field(default_factory=dict)  #: table key -> what its outcome is
    figures: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: config, counts, conclusions, notes and the final comparisons."""
        runs = self.tables["runs"]
        final = self.tables.get("paired_final", pd.DataFrame())
        return {"experiment": self.config.name, "config_hash": self.config_hash, "metric": self.metric,
                "runs": int(len(runs)), "ok": int((runs["status"] == "ok").sum()),
                "diverged": int((runs["status"] != "ok").sum()), "conclusions": self.conclusions,
                "notes": self.notes, "paired_final": json.loads(final.to_json(orient="records"))}


# --------------------------------------------------------------------------- tables
def epoch_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, seed, epoch) with the per-epoch measures as columns."""
    e = runs[runs["layer"] == ""]
    wide = e.pivot_table(index=["method", "seed", "epoch"], columns="measure", values="value",
                         aggfunc="first").reset_index()
    wide.columns.name = None
    return wide


def layer_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, seed, epoch, layer) with the per-layer measures as columns."""
    e = runs[runs["layer"] != ""]
    wide = e.pivot_table(index=["method", "seed", "epoch", "layer"], columns="measure", values="value",
                         aggfunc="first").reset_index()
    wide.columns.name = None
    return wide


def planned_comparisons(cfg: ExperimentConfig) -> list[tuple[str, str, str]]:
    """``(condition, reference, kind)`` for every comparison the report makes (module docstring)."""
    conds = cfg.grid.conditions()
    labels = {c.label for c in conds}
    base = cfg.grid.baseline_label
    out = [(c.label, base, "against the baseline") for c in conds if c.label != base]
    seen = {(a, b) for a, b, _ in out}
    for c in conds:
        refs = []
        if c.method.modifiers:
            refs.append((Condition(Method(c.method.base), c.regulariser).label, "modifier on the same draw"))
        if c.regulariser != "none":
            refs.append((Condition(c.method, "none").label, "regulariser"))
        for ref, kind in refs:
            if ref in labels and ref != c.label and (c.label, ref) not in seen:
                out.append((c.label, ref, kind))
                seen.add((c.label, ref))
    return out


def _runs_index(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    meta = [c for c in ("init", "base", "regulariser", "status", "error", "base_draw", "data_order", "seconds",
                        *_VERSIONS) if c in runs.columns]
    idx = runs.groupby(["method", "seed"], sort=False)[meta].first()
    ep = runs[runs["layer"] == ""]
    idx["last_epoch"] = ep.groupby(["method", "seed"])["epoch"].max()
    idx[f"last_{metric}"] = ep[ep["measure"] == metric].sort_values("epoch").groupby(["method", "seed"])["value"].last()
    return idx.reset_index().sort_values(["method", "seed"]).reset_index(drop=True)


def _pairing(idx: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    ok = idx[idx["status"] == "ok"]
    orders = ok.groupby("seed")["data_order"].nunique()
    draws = ok.groupby(["seed", "base"])["base_draw"].nunique()
    table = pd.DataFrame({"check": ["same batch order within each seed", "same base draw within each (seed, base)"],
                          "holds": [bool((orders <= 1).all()), bool((draws <= 1).all())],
                          "groups": [int(len(orders)), int(len(draws))]})
    notes = [] if table["holds"].all() else [
        "the pairing check failed (see the pairing table): runs of one seed do not share their "
        "batch order or base draw, so the paired tests are not valid for this folder"]
    return table, notes


def _outcome(ep: pd.DataFrame, metric: str, epochs: list[int]) -> pd.DataFrame:
    part = ep[ep["epoch"].isin(epochs)].dropna(subset=[metric])
    v = part.groupby(["method", "seed"])[metric].mean()
    if "loss" in metric:  # lower is better: compare the negative loss so "higher is better" holds
        v = -v
    return v.rename("value").reset_index()


def _compare(values: pd.DataFrame, pairs: list[tuple[str, str, str]]) -> tuple[pd.DataFrame, list[str]]:
    rows, notes = [], []
    for m, ref, kind in pairs:
        sub = values[values["method"].isin([m, ref])]
        if sub["method"].nunique() < 2:
            notes.append(f"{m} vs {ref}: no finished runs of {m if ref in set(sub['method']) else ref}")
            continue
        try:
            with warnings.catch_warnings():  # BCa on 2-3 seeds: numpy warns, stats falls back
                warnings.simplefilter("ignore", RuntimeWarning)
                r = paired_comparison(sub, baseline=ref, value="value", rng=0).iloc[0].to_dict()
        except StatsError as e:
            notes.append(f"{m} vs {ref}: not tested: {e}")
            continue
        r.update(reference=ref, kind=kind)
        rows.append(r)
    if not rows:
        return pd.DataFrame(), notes
    t = pd.DataFrame(rows).drop(columns=["baseline"])
    t["p_wilcoxon_holm"] = holm(t["p_wilcoxon"].to_numpy())
    t["p_ttest_holm"] = holm(t["p_ttest"].to_numpy())
    cols = ["method", "reference", "kind"] + [c for c in t.columns if c not in ("method", "reference", "kind")]
    return t[cols], notes


def _power(values: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in table.itertuples(index=False):
        d = paired_differences(values[values["method"].isin([r.method, r.reference])], method=r.method,
                               baseline=r.reference, value="value")["diff"].to_numpy()
        try:
            need: Any = seeds_needed(d)
        except StatsError:
            need = pd.NA
        rows.append({"method": r.method, "reference": r.reference, "pilot_seeds": len(d),
                     "mean_diff": float(d.mean()), "dz": r.dz, "seeds_needed_80": need})
    return pd.DataFrame(rows).astype({"seeds_needed_80": "Int64"}) if rows else pd.DataFrame()


# --------------------------------------------------------------------------- sentences
def _fmt_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p(p: float) -> str:
    """``p < 0.001`` or ``p = 0.123``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _pts(x: float, metric: str) -> str:
    if "acc" in metric:
        return f"{100 * x:+.2f} points"
    return f"{x:+.4g}"


def _val(x: float, metric: str) -> str:
    return f"{100 * x:.2f}%" if "acc" in metric else f"{x:.4g}"


def _sentence(r: Any, what: str, metric: str, alpha: float) -> str:
    sign = 1.0 if "loss" not in metric else -1.0  # values of losses were negated for the tests
    sig = r.p_wilcoxon_holm < alpha
    better = r.mean_diff > 0
    verdict = (("significantly better" if better else "significantly worse") if sig
               else "no significant difference")
    return (f"{r.method} vs {r.reference} ({r.kind}), {what}: {_val(sign * r.mean_method, metric)} vs "
            f"{_val(sign * r.mean_base, metric)}, paired difference {_pts(sign * r.mean_diff, metric)} "
            f"(95% CI {_pts(sign * r.diff_ci_low, metric)} to {_pts(sign * r.diff_ci_high, metric)}; "
            f"relative {100 * r.rel_improvement:+.2f}%), Wilcoxon {_p(r.p_wilcoxon)} "
            f"(Holm {_fmt_p(r.p_wilcoxon_holm)}), paired t {_p(r.p_ttest)}; {r.wins} wins, "
            f"{r.ties} ties, {r.losses} losses over {r.n} seeds: {verdict} at alpha = {alpha}"
            + (f" (with {r.n} seeds the Wilcoxon test cannot reach p < 0.05; it needs 6 or more)." if r.n < 6 else "."))


def _headline(table: pd.DataFrame, what: str, alpha: float) -> str:
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


# --------------------------------------------------------------------------- analysis
def analyse(cfg: ExperimentConfig, runs: pd.DataFrame, *, metric: str = "test_acc", alpha: float = 0.05,
            figures: bool = True) -> ResultsReport:
    """Statistics, sentences and figures of the runs of one config (no files written).

    Parameters
    ----------
    cfg : ExperimentConfig
        The config the runs belong to (its grid gives the baseline and the comparisons).
    runs : DataFrame
        The concatenated run tables (:func:`analysis.runner.load_results`).
    metric : str
        A per-epoch measure: ``test_acc`` (default), ``train_acc``, ``test_loss``, ``train_loss``.
    alpha : float
        Significance level of the verdicts and of the Nemenyi post-hoc.
    figures : bool
        Also draw the figures (``report.figures``).
    """
    from analysis import plots

    if metric not in ("test_acc", "train_acc", "test_loss", "train_loss"):
        raise ValueError(f"metric must be one of test_acc, train_acc, test_loss, train_loss; got {metric!r}")
    order = [c.label for c in cfg.grid.conditions() if c.label in set(runs["method"])]
    base = cfg.grid.baseline_label
    idx = _runs_index(runs, metric)
    tables: dict[str, pd.DataFrame] = {"runs": idx}
    notes: list[str] = []
    failed = idx[idx["status"] != "ok"]
    tables["failed_runs"] = failed[["method", "seed", "status", "error", "last_epoch"]]
    if len(failed):
        notes.append(f"{len(failed)} run(s) diverged and are left out: "
                     + ", ".join(f"{r.method} seed {r.seed}" for r in failed.head(10).itertuples())
                     + (" ..." if len(failed) > 10 else ""))
    tables["pairing"], more = _pairing(idx)
    notes += more
    ok_keys = idx[idx["status"] == "ok"].set_index(["method", "seed"]).index
    ep = epoch_table(runs)
    ep = ep[ep.set_index(["method", "seed"]).index.isin(ok_keys)]
    lay = layer_table(runs)
    lay = lay[lay.set_index(["method", "seed"]).index.isin(ok_keys)]
    E = cfg.train.epochs
    early = list(range(1, min(EARLY_EPOCHS, E) + 1))
    final_v, early_v = _outcome(ep, metric, [E]), _outcome(ep, metric, early)
    tables["summary"] = (ep[ep["epoch"] == E].groupby("method")[[c for c in ("test_acc", "test_loss",
                         "train_acc", "train_loss") if c in ep.columns]].agg(["mean", "std", "count"]))
    tables["summary"].columns = ["_".join(c) for c in tables["summary"].columns]
    tables["summary"] = tables["summary"].reindex([o for o in order if o in tables["summary"].index]).reset_index()
    seeds_ok = final_v.groupby("method")["seed"].nunique()
    conclusions: list[str] = []
    if seeds_ok.empty or seeds_ok.max() < 2:
        n = int(seeds_ok.max()) if len(seeds_ok) else 0
        notes.append(f"the statistical tests need at least 2 finished seeds per condition; this folder has {n} "
                     f"(run more: netinit experiment CONFIG -o DIR --seeds 10); no test was computed")
    elif seeds_ok.min() < 6:
        notes.append(f"only {int(seeds_ok.min())} finished seeds for some condition: a two-sided Wilcoxon test "
                     f"needs at least 6 paired seeds to reach p < 0.05, and bootstrap intervals from so few seeds "
                     f"are rough; treat this as a pilot (its power estimate says how many seeds to run)")
    pairs = planned_comparisons(cfg)
    final_what = f"{metric} at the last epoch ({E})"
    early_what = f"mean {metric} over epochs {early[0]}-{early[-1]}"
    tables["paired_final"], n1 = _compare(final_v, pairs)
    tables["paired_early"], n2 = _compare(early_v, pairs)
    notes += n1 + [n for n in n2 if n not in n1]
    for key, what in (("paired_final", final_what), ("paired_early", early_what)):
        conclusions.append(_headline(tables[key], what, alpha))
    for key, what in (("paired_final", final_what), ("paired_early", early_what)):
        conclusions += [_sentence(r, what, metric, alpha) for r in tables[key].itertuples(index=False)]
    tables["power"] = _power(final_v, tables["paired_final"]) if not tables["paired_final"].empty else pd.DataFrame()
    for r in tables["power"].itertuples(index=False):
        need = "no number of seeds (the pilot shows no difference)" if pd.isna(r.seeds_needed_80) else \
            f"about {int(r.seeds_needed_80)} seeds"
        conclusions.append(f"Power: detecting the observed final difference of {r.method} vs {r.reference} "
                           f"(d_z = {r.dz:+.2f}) with 80% power at alpha = 0.05 takes {need}; "
                           f"this folder has {r.pilot_seeds}.")
    try:
        per_epoch = ep[ep["epoch"] >= 1][["method", "seed", "epoch", metric]].dropna()
        if "loss" in metric:
            per_epoch = per_epoch.assign(**{metric: -per_epoch[metric]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            tables["relative_per_epoch"] = relative_improvement(per_epoch, baseline=base, value=metric, rng=0)
    except StatsError as e:
        tables["relative_per_epoch"] = pd.DataFrame()
        notes.append(f"relative improvement per epoch: not computed: {e}")
    fr = None
    try:
        if final_v["method"].nunique() < 3:
            raise StatsError(f"it ranks 3 or more conditions and this grid has {final_v['method'].nunique()}; "
                             "the paired comparisons above cover two")
        fr = friedman_nemenyi(final_v, value="value", alpha=alpha)
        tables["friedman_ranks"] = fr.ranks.rename("average_rank").rename_axis("method").reset_index()
        tables["nemenyi"] = fr.nemenyi.rename_axis("method").reset_index()
        conclusions.append(
            f"Friedman test over {len(fr.ranks)} conditions and {fr.n_blocks} complete seeds ({final_what}): "
            f"chi2 = {fr.statistic:.2f}, {_p(fr.pvalue)}; best average rank {fr.ranks.index[0]} "
            f"({fr.ranks.iloc[0]:.2f}), worst {fr.ranks.index[-1]} ({fr.ranks.iloc[-1]:.2f}); Nemenyi critical "
            f"difference {fr.cd:.2f} ranks: the two are "
            + ("separated." if fr.ranks.iloc[-1] - fr.ranks.iloc[0] > fr.cd else "not separated."))
    except StatsError as e:
        notes.append(f"Friedman/Nemenyi: not computed: {e}")
    init = lay[lay["epoch"] == 0]
    keep = [c for c in ("in_strength_var", "out_strength_var", "corr_in_mean_abs", "act_mean_abs_r") if c in init]
    if len(init):
        st = init.groupby(["method", "layer"], sort=False)[keep].mean().reset_index()
        st["_o"] = st["method"].map({m: i for i, m in enumerate(order)})
        tables["init_structure"] = st.sort_values(["_o", "layer"], kind="stable").drop(columns="_o").reset_index(drop=True)
    else:
        tables["init_structure"] = pd.DataFrame()
    headlines = conclusions[:2] + [c for c in conclusions if c.startswith("Friedman test")]
    rep = ResultsReport(cfg, _config_hash(cfg), metric, tables, conclusions, notes, alpha, headlines,
                        {"paired_final": final_what, "paired_early": early_what})
    if figures and len(ep):
        rep.figures["learning_curves"] = plots.learning_curves(ep, metrics=(metric, "train_loss"), order=order)
        if not tables["relative_per_epoch"].empty:
            rep.figures["improvement_per_epoch"] = plots.improvement_per_epoch(
                tables["relative_per_epoch"], baseline=base, metric=metric,
                order=[o for o in order if o != base])
        if fr is not None:
            rep.figures["critical_difference"] = plots.critical_difference(fr.ranks, fr.nemenyi, cd=fr.cd,
                                                                           alpha=alpha, order=order)
        if len(init) and "in_strength_var" in init:
            pts = init[["method", "seed", "layer", "in_strength_var"]].merge(
                ep[ep["epoch"] == E][["method", "seed", metric]], on=["method", "seed"])
            rep.figures["strength_vs_accuracy"] = plots.strength_vs_accuracy(pts, y=metric, order=order)
    return rep


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
        lines.append(_headline(t, rep.outcomes.get(key, key), rep.alpha))
        lines += [_sentence(r, rep.outcomes.get(key, key), rep.metric, rep.alpha) for r in t.itertuples(index=False)]
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
            f"{100 * hi:+.1f}%), Wilcoxon {_p(r['p_wilcoxon'])} (Holm {_fmt_p(r['p_wilcoxon_holm'])}); "
            f"the claimed value lies {where} the interval.")


_STRUCTURE = ("in_strength_var", "out_strength_var", "corr_in_mean_abs")


def structure_change(results_dir: str | os.PathLike, *, config_hash: str | None = None) -> pd.DataFrame:
    """Per run and layer: strength variance and weight correlation of the initial and trained weights.

    Reads the checkpoints a grid wrote (config ``checkpoints = true``) and compares each run's
    initial and final weights with :func:`netinit.compare.compare_checkpoints`.

    Returns
    -------
    DataFrame
        ``method, seed, layer, measure, random, trained`` for the measures ``in_strength_var``,
        ``out_strength_var``, ``corr_in_mean_abs``, plus ``rel_change`` (``random`` = 0).

    Raises
    ------
    ResultsFolderError
        The folder holds no pair of checkpoints.
    """
    from analysis.runner import ResultsFolderError, load_results
    from netinit.compare import compare_checkpoints

    cfg, runs = load_results(results_dir, config_hash=config_hash)
    folder = Path(results_dir) / "runs" / _config_hash(cfg) / "checkpoints"
    rows = []
    for (method, seed), _ in runs[runs["status"] == "ok"].groupby(["method", "seed"]):
        a, b = (folder / f"{method}__seed{int(seed):05d}_{s}.safetensors" for s in ("init", "final"))
        if not (a.is_file() and b.is_file()):
            continue
        for r in compare_checkpoints(a, b).layers.itertuples(index=False):
            layer = r.layer.removesuffix(".weight")
            rows += [(method, int(seed), layer, m, getattr(r, f"{m}_a"), getattr(r, f"{m}_b")) for m in _STRUCTURE]
            rows.append((method, int(seed), layer, "rel_change", 0.0, r.rel_change))
    if not rows:
        raise ResultsFolderError(f"{results_dir}: no initial/final checkpoints; run a config with checkpoints = true")
    return pd.DataFrame(rows, columns=["method", "seed", "layer", "measure", "random", "trained"])


def structure_tests(change: pd.DataFrame, *, alpha: float = 0.05, reference: str | None = None,
                    state: str = "trained") -> tuple[pd.DataFrame, list[str]]:
    """Paired tests over seeds of the measures of :func:`structure_change`, with one sentence each.

    Without ``reference``: trained against random weights, per (method, layer, measure). With
    ``reference`` (a method): every other method against it, per (layer, measure), on the
    ``state`` (``"random"`` or ``"trained"``) weights: does a difference made at initialisation
    survive training? Holm's correction runs over the rows of the table.
    """
    rows, sentences = [], []
    part0 = change[change["measure"] != "rel_change"]
    if reference is None:
        groups = part0.groupby(["method", "layer", "measure"], sort=False)
    else:
        groups = part0.groupby(["layer", "measure"], sort=False)
    for key, part in groups:
        if reference is None:
            long = pd.concat([part.assign(g="random", v=part["random"]), part.assign(g="trained", v=part["trained"])])
            pairs = [("trained", "random", key[0])]
        else:
            long = part.assign(g=part["method"], v=part[state])
            pairs = [(m, reference, m) for m in part["method"].unique() if m != reference]
        layer, measure = key[-2], key[-1]
        for other, ref, method in pairs:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = paired_comparison(long[long["g"].isin([other, ref])], baseline=ref, value="v",
                                          method_col="g", rng=0).iloc[0]
            except StatsError as e:
                sentences.append(f"{method}, layer {layer}, {measure}: not tested: {e}")
                continue
            rows.append({"method": method, "reference": ref, "layer": layer, "measure": measure, "n": int(r["n"]),
                         "mean_reference": r["mean_base"], "mean": r["mean_method"],
                         "ratio": r["mean_method"] / r["mean_base"] if r["mean_base"] else np.inf,
                         "diff_ci_low": r["diff_ci_low"], "diff_ci_high": r["diff_ci_high"],
                         "p_wilcoxon": r["p_wilcoxon"], "p_ttest": r["p_ttest"], "higher": int(r["wins"])})
    t = pd.DataFrame(rows)
    if t.empty:
        return t, sentences
    t["p_wilcoxon_holm"] = holm(t["p_wilcoxon"].to_numpy())
    names = {"in_strength_var": "in-strength variance", "out_strength_var": "out-strength variance",
             "corr_in_mean_abs": "mean |r| between incoming weight vectors"}
    for r in t.itertuples(index=False):
        what = names.get(r.measure, r.measure)
        if reference is None:
            head = (f"{r.method}, layer {r.layer}: training {'raised' if r.mean > r.mean_reference else 'lowered'} "
                    f"the {what} from {r.mean_reference:.3g} to {r.mean:.3g}")
            count = f"higher after training in {r.higher} of {r.n} seeds"
        else:
            head = (f"{state} weights, layer {r.layer}: the {what} of {r.method} is {r.mean:.3g} against "
                    f"{r.mean_reference:.3g} for {r.reference}")
            count = f"higher than {r.reference} in {r.higher} of {r.n} seeds"
        sentences.append(
            f"{head} (x{r.ratio:.2f}; difference 95% CI {r.diff_ci_low:+.3g} to {r.diff_ci_high:+.3g}), {count}, "
            f"Wilcoxon {_p(r.p_wilcoxon)} (Holm {_fmt_p(r.p_wilcoxon_holm)}): "
            + ("significant" if r.p_wilcoxon_holm < alpha else "not significant") + f" at alpha = {alpha}"
            + (" (fewer than 6 seeds: the Wilcoxon test cannot reach p < 0.05)." if r.n < 6 else "."))
    return t, sentences


# --------------------------------------------------------------------------- files
def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "n/a"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return html.escape(str(v))


def _html_table(df: pd.DataFrame, max_rows: int = 200) -> str:
    if df is None or df.empty:
        return "<p><em>empty</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in df.head(max_rows).itertuples(index=False))
    more = f"<p><em>{len(df) - max_rows} more rows in the CSV</em></p>" if len(df) > max_rows else ""
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{more}"


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
        "table{border-collapse:collapse;font-size:0.8em;margin:0.5em 0}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}td:first-child{text-align:left}th{background:#f3f3f3}li{margin:0.3em 0}img{max-width:100%}"
        ".note{color:#8a4b00}.scroll{overflow-x:auto}")
_SECTIONS = (("paired_final", "Paired comparisons: last epoch"), ("paired_early", "Paired comparisons: early epochs"),
             ("relative_per_epoch", "Relative improvement over the baseline per epoch"),
             ("power", "Seeds needed (this folder as a pilot)"), ("friedman_ranks", "Friedman average ranks"),
             ("nemenyi", "Nemenyi post-hoc p-values"), ("summary", "Per-condition summary at the last epoch"),
             ("init_structure", "Network structure at initialisation (mean over seeds)"),
             ("failed_runs", "Runs that diverged"), ("pairing", "Pairing check"), ("runs", "All runs"))


def _glance(t: pd.DataFrame, metric: str, alpha: float) -> pd.DataFrame:
    sign = -1.0 if "loss" in metric else 1.0
    return pd.DataFrame({
        "comparison": t["method"] + " vs " + t["reference"], "kind": t["kind"], "seeds": t["n"],
        "difference (95% CI)": [f"{_pts(sign * r.mean_diff, metric)} ({_pts(sign * r.diff_ci_low, metric)} to "
                                f"{_pts(sign * r.diff_ci_high, metric)})" for r in t.itertuples()],
        "relative": [f"{100 * x:+.2f}%" for x in t["rel_improvement"]],
        "Wilcoxon p (Holm)": [f"{_fmt_p(a)} ({_fmt_p(b)})" for a, b in zip(t["p_wilcoxon"], t["p_wilcoxon_holm"])],
        "t-test p (Holm)": [f"{_fmt_p(a)} ({_fmt_p(b)})" for a, b in zip(t["p_ttest"], t["p_ttest_holm"])],
        "wins/ties/losses": [f"{r.wins}/{r.ties}/{r.losses}" for r in t.itertuples()],
        "verdict": ["better" if (h < alpha and d > 0) else "worse" if h < alpha else "no significant difference"
                    for h, d in zip(t["p_wilcoxon_holm"], t["mean_diff"])],
    })


def _html(rep: ResultsReport, figs: dict[str, str]) -> str:
    cfg = rep.config
    c = config_to_dict(cfg)
    runs = rep.tables["runs"]
    vers = "; ".join(f"{k.split('_')[0]} {', '.join(map(str, runs[k].unique()))}" for k in _VERSIONS if k in runs)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(cfg.name)}: comparison"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(cfg.name)}: which initialisation trains better?</h1>",
             f"<p>{html.escape(cfg.description)} <i>(the config's own description; this folder holds "
             f"{runs['seed'].nunique()} seeds of {cfg.train.epochs} epochs)</i></p>" if cfg.description else "",
             f"<p>Config hash <code>{rep.config_hash}</code>; data <code>{html.escape(json.dumps(c['data']))}</code>; "
             f"model <code>{html.escape(json.dumps(c['model']))}</code>; training "
             f"<code>{html.escape(json.dumps(c['train']))}</code>; baseline <b>{html.escape(cfg.grid.baseline_label)}"
             f"</b>; {len(runs)} runs ({int((runs['status'] == 'ok').sum())} finished, "
             f"{int((runs['status'] != 'ok').sum())} diverged) over {runs['seed'].nunique()} seeds; {html.escape(vers)}.</p>",
             "<p>Every method is compared with its reference on the same seeds (same initial draw, data split "
             "and batch order): mean paired difference with a BCa bootstrap 95% CI, Wilcoxon signed-rank and "
             "paired t-test p-values with Holm's correction over the comparisons of a table, wins/ties/losses. "
             "A verdict is significant when the Holm-adjusted Wilcoxon p-value is below alpha.</p>",
             "<h2>Verdicts</h2><ul>", *[f"<li><b>{html.escape(s)}</b></li>" for s in rep.headlines], "</ul>"]
    if rep.notes:
        parts += ["<h2>Notes</h2><ul>", *[f"<li class='note'>{html.escape(n)}</li>" for n in rep.notes], "</ul>"]
    for key in ("paired_final", "paired_early"):
        t = rep.tables.get(key, pd.DataFrame())
        if not t.empty:
            parts += [f"<h2>At a glance: {html.escape(rep.outcomes.get(key, key))}</h2>",
                      _html_table(_glance(t, rep.metric, rep.alpha))]
    if figs:
        parts.append("<h2>Figures</h2>")
        parts += [f"<p><img src='{html.escape(p)}' alt='{html.escape(k)}'></p>" for k, p in figs.items()]
    details = [s for s in rep.conclusions if s not in rep.headlines]
    if details:
        parts += ["<h2>Every comparison in words (computed from the tables below)</h2><ul>",
                  *[f"<li>{html.escape(s)}</li>" for s in details], "</ul>"]
    for key, title in _SECTIONS:
        if key in rep.tables:
            parts += [f"<h2>{html.escape(title)}</h2>", _html_table(rep.tables[key]),
                      f"<p><a href='tables/{key}.csv'>tables/{key}.csv</a></p>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(rep: ResultsReport, out_dir: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write ``tables/*.csv``, ``figures/*.png``, ``summary.json`` and ``report.html``.

    Raises
    ------
    OutputError
        ``out_dir`` holds files other than an earlier report (unless ``force``).
    """
    from netinit._io import atomic_path, prepare_output_dir

    out = prepare_output_dir(out_dir, owned=REPORT_FILES, force=force)
    (out / "tables").mkdir(exist_ok=True)
    files: list[Path] = []
    for key, df in rep.tables.items():
        with atomic_path(out / "tables" / f"{key}.csv") as tmp:
            df.to_csv(tmp, index=False)
        files.append(out / "tables" / f"{key}.csv")
    figs = {}
    if rep.figures:
        (out / "figures").mkdir(exist_ok=True)
        for key, fig in rep.figures.items():
            with atomic_path(out / "figures" / f"{key}.png") as tmp:
                fig.savefig(tmp, format="png", bbox_inches="tight")
            files.append(out / "figures" / f"{key}.png")
            figs[key] = f"figures/{key}.png"
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(rep.summary(), indent=2, default=str), encoding="utf-8")
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(_html(rep, figs), encoding="utf-8")
    files += [out / "summary.json", out / "report.html"]
    rep.files = files
    return files


def compare_results(results_dir: str | os.PathLike, out_dir: str | os.PathLike, *, config_hash: str | None = None,
                    metric: str = "test_acc", plots: bool = True, force: bool = False) -> ResultsReport:
    """Statistics tables, figures and an HTML report of a results folder (``netinit compare DIR``).

    Parameters
    ----------
    results_dir : path
        A folder written by :func:`analysis.runner.run_grid`.
    out_dir : path
        The report folder (created; an earlier report there is replaced).
    config_hash : str, optional
        Which config, when the folder holds several.
    metric : str, default "test_acc"
        Outcome of the comparisons.
    plots : bool, default True
        Draw the figures.
    force : bool, default False
        Write into a folder holding other files.

    Returns
    -------
    ResultsReport
        With ``files`` set to the paths written.

    Raises
    ------
    ResultsFolderError
        Not a results folder, or no finished run.
    """
    from analysis.runner import load_results

    cfg, runs = load_results(results_dir, config_hash=config_hash)
    rep = analyse(cfg, runs, metric=metric, figures=plots)
    write_report(rep, out_dir, force=force)
    return rep
