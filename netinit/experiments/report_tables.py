"""The tables of a results-folder comparison, and :class:`ResultsReport`, which holds them.

Pure pandas and :mod:`netinit.experiments.stats` on the run tables of :func:`netinit.experiments.runner.load_results`:
the per-epoch and per-layer tables, the comparisons a config plans, the run index with its pairing
check, the outcomes, the paired comparisons with Holm's correction and the seeds needed. What the
comparisons are is stated in :mod:`netinit.experiments.report`, which assembles these tables in
:func:`netinit.experiments.report.analyse`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from netinit.experiments.config import Condition, ExperimentConfig, Method
from netinit.experiments.stats import (
    StatsError,
    holm_within,
    paired_comparison,
    paired_differences,
    seeds_needed,
)

__all__ = ["ResultsReport", "epoch_table", "layer_table", "planned_comparisons", "family_plan", "provenance_table",
           "manipulation_table", "dose_table"]

VERSION_COLUMNS = ("python_version", "torch_version", "numpy_version", "scipy_version", "netinit_version")
#: Provenance columns of a run table shown by the report (versions, threads, the Wilcoxon method).
PROVENANCE_COLUMNS = (*VERSION_COLUMNS, "torch_threads", "torch_interop_threads", "omp_num_threads",
                      "mkl_num_threads", "wilcoxon_method")
#: The family of the comparisons a config does not declare.
UNDECLARED = "undeclared"


@dataclass
class ResultsReport:
    """Everything :func:`netinit.experiments.report.analyse` computed: tables, sentences and (unsaved) figures."""

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
                "notes": self.notes, "paired_final": json.loads(final.to_json(orient="records")),
                **{k: json.loads(self.tables[k].to_json(orient="records"))
                   for k in ("paired_primary", "paired_secondary") if k in self.tables}}


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
    """``(condition, reference, kind)`` for every comparison the report makes (:mod:`netinit.experiments.report`)."""
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


def family_plan(cfg: ExperimentConfig) -> tuple[list[tuple[str, str, str, str, str]], list[str]]:
    """``(condition, reference, kind, family, role)`` of every comparison, and notes on the plan.

    The comparisons of the config's ``[[families]]`` first, each in its declared family; then the
    planned comparisons (:func:`planned_comparisons`) that no family declares, in one exploratory
    family named :data:`UNDECLARED`. Without declared families that family holds all of them.
    """
    planned = planned_comparisons(cfg)
    kinds = {(a, b): k for a, b, k in planned}
    out, seen = [], set()
    for f in cfg.families:
        for a, b in f.pairs:
            if (a, b) not in seen:
                out.append((a, b, kinds.get((a, b), "declared"), f.name, f.role))
                seen.add((a, b))
    rest = [(a, b, k, UNDECLARED, "exploratory") for a, b, k in planned if (a, b) not in seen]
    notes = []
    if not cfg.families:
        notes.append("the config declares no families: every comparison of a table forms one exploratory "
                     "family, and Holm's correction runs over all of them")
    elif rest:
        notes.append(f"{len(rest)} comparison(s) no family declares are reported as the exploratory family "
                     f"{UNDECLARED!r} (Holm within it)")
    return out + rest, notes


def provenance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The distinct values of each provenance column (:data:`PROVENANCE_COLUMNS`) over the runs."""
    rows = [{"item": c, "values": ", ".join(sorted({str(v) for v in runs[c].unique()}))}
            for c in PROVENANCE_COLUMNS if c in runs.columns]
    for c in PROVENANCE_COLUMNS:
        if c not in runs.columns:
            rows.append({"item": c, "values": "not recorded (runs of an earlier netinit)"})
    return pd.DataFrame(rows, columns=["item", "values"])


def manipulation_table(lay: pd.DataFrame, last_epoch: int) -> pd.DataFrame:
    """The manipulation check: per condition and layer, mean over seeds of the weight and activation
    correlation (``corr_in_mean_abs``, ``act_mean_abs_r``) and the in-strength variance at
    initialisation and after the last epoch."""
    keep = [c for c in ("corr_in_mean_abs", "act_mean_abs_r", "in_strength_var") if c in lay.columns]
    if lay.empty or not keep:
        return pd.DataFrame()
    part = lay[lay["epoch"].isin([0, last_epoch])]
    t = part.groupby(["method", "layer", "epoch"], sort=False)[keep].mean().unstack("epoch")
    t.columns = [f"{m}_{'init' if e == 0 else 'final'}" for m, e in t.columns]
    return t.reset_index()


def dose_table(ep: pd.DataFrame, lay: pd.DataFrame, cfg: ExperimentConfig, last_epoch: int) -> pd.DataFrame:
    """Per regularised condition: how much it changed what it targets (the hidden layers' activation
    correlation, paired with the same method without regulariser, at the last epoch and averaged
    over the epochs it was recorded at) and its dose (mean penalty over mean task loss)."""
    rows = []
    hidden = lay[(lay["layer"] != "out") & lay.get("act_mean_abs_r", pd.Series(dtype=float)).notna()] \
        if "act_mean_abs_r" in lay.columns else lay.iloc[:0]
    for c in cfg.grid.conditions():
        if c.regulariser == "none":
            continue
        ref = Condition(c.method, "none").label
        row: dict[str, Any] = {"method": c.label, "reference": ref, "penalty": c.penalty,
                               "coef": c.coef(cfg.regulariser.coef)}
        e = ep[ep["method"] == c.label]
        if "reg_penalty" in e and "train_loss_running" in e and e["train_loss_running"].notna().any():
            row["penalty_over_loss"] = float(e["reg_penalty"].mean() / e["train_loss_running"].mean())
        elif "reg_penalty" in e:
            row["penalty_over_loss"] = float(e["reg_penalty"].mean() / e["train_loss"].mean())
        for layer, part in hidden.groupby("layer"):
            for when, sub in (("final", part[part["epoch"] == last_epoch]), ("mean", part[part["epoch"] >= 1])):
                v = sub.groupby(["method", "seed"])["act_mean_abs_r"].mean().rename("value").reset_index()
                try:
                    d = paired_differences(v, method=c.label, baseline=ref, value="value")
                except StatsError:
                    continue
                if len(d):
                    row[f"{layer}_act_r_ref_{when}"] = float(d["base"].mean())
                    row[f"{layer}_act_r_change_{when}"] = float(d["diff"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def runs_index(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    meta = [c for c in ("init", "base", "regulariser", "status", "error", "base_draw", "data_order", "seconds",
                        *PROVENANCE_COLUMNS) if c in runs.columns]
    idx = runs.groupby(["method", "seed"], sort=False)[meta].first()
    ep = runs[runs["layer"] == ""]
    idx["last_epoch"] = ep.groupby(["method", "seed"])["epoch"].max()
    idx[f"last_{metric}"] = ep[ep["measure"] == metric].sort_values("epoch").groupby(["method", "seed"])["value"].last()
    return idx.reset_index().sort_values(["method", "seed"]).reset_index(drop=True)


def pairing_check(idx: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
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


def outcome_column(ep: pd.DataFrame, metric: str, epochs: list[int]) -> pd.DataFrame:
    part = ep[ep["epoch"].isin(epochs)].dropna(subset=[metric])
    v = part.groupby(["method", "seed"])[metric].mean()
    if "loss" in metric:  # lower is better: compare the negative loss so "higher is better" holds
        v = -v
    return v.rename("value").reset_index()


def compare_table(values: pd.DataFrame, pairs: list[tuple], *, margin: float = 0.0) -> tuple[pd.DataFrame, list[str]]:
    """Paired comparisons of ``pairs`` (``(condition, reference, kind[, family, role])``), Holm within
    each family (one family when none is given)."""
    rows, notes = [], []
    for m, ref, kind, *fam in pairs:
        family, role = fam if fam else ("all", "exploratory")
        sub = values[values["method"].isin([m, ref])]
        if sub["method"].nunique() < 2:
            notes.append(f"{m} vs {ref}: no finished runs of {m if ref in set(sub['method']) else ref}")
            continue
        try:
            with warnings.catch_warnings():  # BCa on 2-3 seeds: numpy warns, stats falls back
                warnings.simplefilter("ignore", RuntimeWarning)
                r = paired_comparison(sub, baseline=ref, value="value", rng=0, margin=margin).iloc[0].to_dict()
        except StatsError as e:
            notes.append(f"{m} vs {ref}: not tested: {e}")
            continue
        r.update(reference=ref, kind=kind, family=family, role=role)
        rows.append(r)
    if not rows:
        return pd.DataFrame(), notes
    t = pd.DataFrame(rows).drop(columns=["baseline"])
    t["family_size"] = t.groupby("family")["method"].transform("size")
    t["p_wilcoxon_holm"] = holm_within(t, "p_wilcoxon")
    t["p_ttest_holm"] = holm_within(t, "p_ttest")
    first = ("method", "reference", "kind", "family", "role", "family_size")
    cols = list(first) + [c for c in t.columns if c not in first]
    return t[cols], notes


def power_rows(values: pd.DataFrame, table: pd.DataFrame, outcome: str, alpha: float = 0.05) -> pd.DataFrame:
    """Seeds a paired t-test needs to detect each comparison's observed difference (the folder as a
    pilot) with 80% power at ``alpha / k``, Holm's strictest level in a family of ``k`` comparisons."""
    rows = []
    fam = table["family"] if "family" in table else pd.Series("all", index=table.index)
    size = fam.map(fam.value_counts())
    for (_, r), f, k in zip(table.iterrows(), fam, size):
        d = paired_differences(values[values["method"].isin([r["method"], r["reference"]])], method=r["method"],
                               baseline=r["reference"], value="value")["diff"].to_numpy()
        level = alpha / int(k)
        try:
            need: Any = seeds_needed(d, alpha=level)
        except StatsError:
            need = pd.NA
        rows.append({"method": r["method"], "reference": r["reference"], "outcome": outcome, "family": f,
                     "alpha": level, "pilot_seeds": len(d), "mean_diff": float(d.mean()), "dz": r["dz"],
                     "seeds_needed_80": need})
    return pd.DataFrame(rows).astype({"seeds_needed_80": "Int64"}) if rows else pd.DataFrame()
