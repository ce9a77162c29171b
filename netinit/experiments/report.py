"""Compare the methods of a results folder: statistics tables, figures and an HTML report.

:func:`analyse` (pure: tables and sentences, no files) and :func:`write_report` (files) make up
:func:`compare_results`, which ``netinit results RESULTS_DIR -o REPORT_DIR`` calls. This module
assembles them and re-exports the names of the modules that do the work:
:mod:`netinit.experiments.report_tables` (:class:`ResultsReport` and the statistics tables),
:mod:`netinit.experiments.report_text` (the sentences, :func:`conclusion_text`, :func:`claim_check`),
:mod:`netinit.experiments.report_html` (:func:`write_report`: CSV, PNG, JSON and HTML files) and
:mod:`netinit.experiments.structure` (:func:`structure_change`, :func:`structure_tests`); the figures are
drawn by :mod:`netinit.experiments.plots`.

**Comparisons.** Every condition against the config's baseline; every method with modifiers
against the unmodified method of the same base initialiser (``kaiming_normal+pa`` against
``kaiming_normal``: the same initial draw, rewired or not); every regularised condition against the
same method without regulariser; and every comparison the config's ``[[families]]`` declare.
Each comparison is paired by seed (:func:`netinit.experiments.stats.paired_comparison`): mean
difference with a BCa bootstrap 95% CI and its 90% t-interval (with the TOST p-value when
``analysis.margin`` is declared), the relative change as a ratio of means with a paired
bootstrap CI, Cohen's ``d_z``, the SD ratio over seeds with the Pitman-Morgan test, Wilcoxon
signed-rank and paired t p-values, Holm-adjusted **within the comparison's family** (column
``family``; the comparisons no family declares form the exploratory family ``undeclared``), and
win/tie/loss counts. Outcomes: the declared ``analysis.primary`` and ``analysis.secondary``
(``paired_primary``, ``paired_secondary``) when the config declares them, and always the metric
at the last epoch (``final``) and its mean over epochs ``1..min(5, epochs)`` (``early``). Each
row gets a ``verdict`` (:func:`netinit.experiments.report_text.verdict`): ``reproduced``, ``not
reproduced: effects above X excluded`` or ``inconclusive``. Also: the relative improvement over
the baseline per epoch (:func:`netinit.experiments.stats.relative_improvement`), the provenance of
the runs (versions, threads, Wilcoxon method), the manipulation check (the layers' weight and
activation correlation at initialisation and at the end, per condition) and, for regularised
conditions, the dose table (penalty over task loss, change of the activation correlation),
a Friedman test with Nemenyi post-hoc and critical difference over all conditions
(:func:`netinit.experiments.stats.friedman_nemenyi`), and the seeds a paired t-test would need to detect each
observed difference with 80% power (:func:`netinit.experiments.stats.seeds_needed`, the folder as a pilot):
in the declared primary outcome (else the metric at the last epoch), at Holm's strictest level within
the comparison's family (alpha over the family's size).

A verdict is "significant" when the Holm-adjusted Wilcoxon p-value is below ``alpha``. Runs that
diverged are listed and left out; a comparison uses the seeds where both of its conditions
finished. A test that the data cannot support (fewer than 2 paired seeds, fewer than 3
conditions for Friedman) is replaced by a sentence that says why; the report never shows a NaN
p-value.
"""

from __future__ import annotations

import os
import warnings

import pandas as pd

from netinit.experiments.config import ExperimentConfig
from netinit.experiments.config import config_hash as _config_hash
from netinit.experiments.report_html import REPORT_FILES, write_report
from netinit.experiments.report_tables import (
    ResultsReport,
    compare_table,
    dose_table,
    epoch_table,
    family_plan,
    layer_table,
    manipulation_table,
    outcome_column,
    pairing_check,
    planned_comparisons,
    power_rows,
    provenance_table,
    runs_index,
)
from netinit.experiments.report_text import (
    claim_check,
    claim_verdicts,
    conclusion_text,
    headline_text,
    p_text,
    sentence_text,
    verdict,
    verdicts_markdown,
)
from netinit.experiments.stats import StatsError, friedman_nemenyi, relative_improvement
from netinit.experiments.structure import structure_change, structure_tests

__all__ = ["ResultsReport", "analyse", "write_report", "compare_results", "planned_comparisons",
           "epoch_table", "layer_table", "conclusion_text", "claim_check", "claim_verdicts", "verdict", "verdicts_markdown",
           "structure_change", "structure_tests", "REPORT_FILES"]

EARLY_EPOCHS = 5


# --------------------------------------------------------------------------- analysis
def analyse(cfg: ExperimentConfig, runs: pd.DataFrame, *, metric: str = "test_acc", alpha: float = 0.05,
            figures: bool = True) -> ResultsReport:
    """Statistics, sentences and figures of the runs of one config (no files written).

    Parameters
    ----------
    cfg : ExperimentConfig
        The config the runs belong to (its grid gives the baseline and the comparisons).
    runs : DataFrame
        The concatenated run tables (:func:`netinit.experiments.runner.load_results`).
    metric : str
        A per-epoch measure: ``test_acc`` (default), ``train_acc``, ``test_loss``, ``train_loss``.
    alpha : float
        Significance level of the verdicts and of the Nemenyi post-hoc.
    figures : bool
        Also draw the figures (``report.figures``).
    """
    from netinit.experiments import plots
    from netinit.experiments.config import OUTCOMES

    if metric not in OUTCOMES:
        raise ValueError(f"metric must be one of {', '.join(OUTCOMES)}; got {metric!r}")
    order = [c.label for c in cfg.grid.conditions() if c.label in set(runs["method"])]
    base = cfg.grid.baseline_label
    idx = runs_index(runs, metric)
    tables: dict[str, pd.DataFrame] = {"runs": idx}
    notes: list[str] = []
    failed = idx[idx["status"] != "ok"]
    tables["failed_runs"] = failed[["method", "seed", "status", "error", "last_epoch"]]
    if len(failed):
        notes.append(f"{len(failed)} run(s) diverged and are left out: "
                     + ", ".join(f"{r.method} seed {r.seed}" for r in failed.head(10).itertuples())
                     + (" ..." if len(failed) > 10 else ""))
    tables["pairing"], more = pairing_check(idx)
    notes += more
    ok_keys = idx[idx["status"] == "ok"].set_index(["method", "seed"]).index
    ep = epoch_table(runs)
    ep = ep[ep.set_index(["method", "seed"]).index.isin(ok_keys)]
    lay = layer_table(runs)
    lay = lay[lay.set_index(["method", "seed"]).index.isin(ok_keys)]
    E = cfg.train.epochs
    early = list(range(1, min(EARLY_EPOCHS, E) + 1))
    final_v, early_v = outcome_column(ep, metric, [E]), outcome_column(ep, metric, early)
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
    pairs, plan_notes = family_plan(cfg)
    notes += plan_notes
    A = cfg.analysis
    final_what = f"{metric} at the last epoch ({E})"
    early_what = f"mean {metric} over epochs {early[0]}-{early[-1]}"
    outcomes = {"paired_final": (final_v, final_what, metric), "paired_early": (early_v, early_what, metric)}
    for role in ("primary", "secondary"):
        measure = getattr(A, role)
        if measure and measure in ep.columns:
            w = getattr(A, f"{role}_epochs")
            first, last = (E, E) if w[0] == 0 else (min(w[0], E), E if w[1] == 0 else min(w[1], E))
            when = f"epoch {first}" if first == last else f"mean over epochs {first}-{last}"
            outcomes[f"paired_{role}"] = (outcome_column(ep, measure, list(range(first, last + 1))),
                                          f"{role} outcome: {measure}, {when}", measure)
        elif measure:
            notes.append(f"the declared {role} outcome {measure!r} is not in these runs (recorded by a later netinit)")
    for key in ("paired_primary", "paired_secondary", "paired_final", "paired_early"):
        if key not in outcomes:
            continue
        values, what, measure = outcomes[key]
        t, more = compare_table(values, pairs, margin=A.margin if "acc" in measure else 0.0)
        notes += [n for n in more if n not in notes]
        if not t.empty:
            t["verdict"] = [verdict(r, alpha, measure) for r in t.itertuples(index=False)]
        tables[key] = t
    for key in outcomes:
        conclusions.append(headline_text(tables[key], outcomes[key][1], alpha))
    for key in outcomes:
        conclusions += [sentence_text(r, outcomes[key][1], outcomes[key][2], alpha)
                        for r in tables[key].itertuples(index=False)]
    # the power of the design's question: the declared primary outcome, at Holm's strictest level within
    # each family (alpha / its size); without a declared primary outcome, the metric at the last epoch
    pkey = "paired_primary" if not tables.get("paired_primary", pd.DataFrame()).empty else "paired_final"
    tables["power"] = power_rows(outcomes[pkey][0], tables[pkey], outcomes[pkey][1], alpha) \
        if not tables[pkey].empty else pd.DataFrame()
    for r in tables["power"].itertuples(index=False):
        need = "no number of seeds (the observed mean difference is 0)" if pd.isna(r.seeds_needed_80) else \
            f"about {int(r.seeds_needed_80)} seeds"
        conclusions.append(f"Power ({r.outcome}): detecting the observed difference of {r.method} vs {r.reference} "
                           f"(d_z = {r.dz:+.2f}) with 80% power at alpha = {r.alpha:.3g} (Holm's strictest level "
                           f"in family {r.family}) takes {need}; this folder has {r.pilot_seeds}.")
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
            f"chi2 = {fr.statistic:.2f}, {p_text(fr.pvalue)}; best average rank {fr.ranks.index[0]} "
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
    tables["provenance"] = provenance_table(runs)
    tables["manipulation"] = manipulation_table(lay, E)
    if any(c.regulariser != "none" for c in cfg.grid.conditions()):
        tables["dose"] = dose_table(ep, lay, cfg, E)
    headlines = conclusions[:len(outcomes)] + [c for c in conclusions if c.startswith("Friedman test")]
    rep = ResultsReport(cfg, _config_hash(cfg), metric, tables, conclusions, notes, alpha, headlines,
                        {k: v[1] for k, v in outcomes.items()})
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


def compare_results(results_dir: str | os.PathLike, out_dir: str | os.PathLike, *, config_hash: str | None = None,
                    metric: str | None = None, plots: bool = True, overwrite: bool = False) -> ResultsReport:
    """Statistics tables, figures and an HTML report of a results folder (``netinit results DIR``).

    Parameters
    ----------
    results_dir : path
        A folder written by :func:`netinit.experiments.runner.run_grid`.
    out_dir : path
        The report folder (created; an earlier report there is replaced).
    config_hash : str, optional
        Which config, when the folder holds several.
    metric : str, optional
        Outcome of the last-epoch and mean-over-epochs tables, the ranks and the figures: by default
        the config's declared primary outcome when the runs recorded it, else ``test_acc``.
    plots : bool, default True
        Draw the figures.
    overwrite : bool, default False
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
    from netinit.experiments.runner import load_results

    cfg, runs = load_results(results_dir, config_hash=config_hash)
    if metric is None:
        primary = cfg.analysis.primary
        metric = primary if primary and "measure" in runs and (runs["measure"] == primary).any() else "test_acc"
    rep = analyse(cfg, runs, metric=metric, figures=plots)
    write_report(rep, out_dir, overwrite=overwrite)
    return rep
