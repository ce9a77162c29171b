"""Network structure of random and trained weights: does a difference made at initialisation last?

:func:`structure_change` reads the initial and final checkpoints a grid wrote (config
``checkpoints = true``) and measures the strength variances and weight correlation of both;
:func:`structure_tests` tests the changes over seeds, with one sentence per test.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from netinit.experiments.config import config_hash as _config_hash
from netinit.experiments.report_text import fmt_p, p_text
from netinit.experiments.stats import StatsError, holm, paired_comparison

__all__ = ["structure_change", "structure_tests"]


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
    from netinit.compare import compare_checkpoints
    from netinit.experiments.runner import ResultsFolderError, load_results

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
            f"Wilcoxon {p_text(r.p_wilcoxon)} (Holm {fmt_p(r.p_wilcoxon_holm)}): "
            + ("significant" if r.p_wilcoxon_holm < alpha else "not significant") + f" at alpha = {alpha}"
            + (" (fewer than 6 seeds: the Wilcoxon test cannot reach p < 0.05)." if r.n < 6 else "."))
    return t, sentences
