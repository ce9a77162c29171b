from __future__ import annotations

import json
import re
from html import unescape

import pandas as pd
import pytest

from netinit.experiments.report import (
    analyse,
    claim_check,
    compare_results,
    conclusion_text,
    planned_comparisons,
    structure_change,
    structure_tests,
)
from netinit.experiments.runner import ResultsFolderError, load_results, run_grid
from netinit.experiments.stats import paired_comparison

NAN = re.compile(r"\bnan\b", re.IGNORECASE)


def test_compare_results_writes_tables_figures_and_report(tiny_results, tmp_path):
    cfg, results = tiny_results
    rep = compare_results(results, tmp_path / "report")
    out = tmp_path / "report"
    html = (out / "report.html").read_text()
    for name in ("learning_curves", "improvement_per_epoch", "critical_difference", "strength_vs_accuracy"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert f"figures/{name}.png" in html
    for name in ("paired_final", "paired_early", "relative_per_epoch", "power", "friedman_ranks", "runs"):
        assert (out / "tables" / f"{name}.csv").is_file()
    # every comparison states its effect, its CI and its p-value, and no NaN appears
    final = pd.read_csv(out / "tables" / "paired_final.csv")
    assert set(zip(final["method"], final["reference"])) == {("default+pa", "default"), ("kaiming_normal", "default")}
    for m in ("default+pa", "kaiming_normal"):
        line = next(s for s in rep.conclusions if s.startswith(f"{m} vs default") and "last epoch" in s)
        assert "paired difference" in line and "95% CI" in line and re.search(r"Wilcoxon p (=|<) [01]\.", line)
        assert line in unescape(html)
    assert not NAN.search(html)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 9 and summary["ok"] == 9 and summary["conclusions"] == rep.conclusions
    # the sentence's numbers are the statistics module's
    _, runs = load_results(results)
    last = runs[(runs["measure"] == "test_acc") & (runs["epoch"] == cfg.train.epochs)]
    ref = paired_comparison(last[last["method"].isin(["default", "default+pa"])], baseline="default", value="value")
    assert final.set_index("method").loc["default+pa", "mean_diff"] == pytest.approx(ref["mean_diff"].iloc[0])
    # a second report into the same folder replaces the first: the figures it does not draw go, a
    # file the reports never listed stays
    assert sorted(json.loads((out / "summary.json").read_text())["files"]) == sorted(
        f.relative_to(out).as_posix() for f in rep.files if f.parent.name in ("tables", "figures"))
    (out / "figures" / "mine.png").write_bytes(b"a user's file")
    compare_results(results, out, plots=False)
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["mine.png"]
    assert "figures/" not in (out / "report.html").read_text()


def test_one_seed_gives_a_message_not_nan(tiny, tmp_path, torch_one_thread):
    cfg = tiny(**{"grid.seeds": 1, "train.epochs": 1})
    run_grid(cfg, tmp_path / "res")
    rep = compare_results(tmp_path / "res", tmp_path / "rep")
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "the statistical tests need at least 2 finished seeds per condition; this folder has 1" in html
    assert "a paired test needs at least 2" in html
    assert not NAN.search(html)
    assert rep.tables["paired_final"].empty and "p =" not in " ".join(rep.conclusions)
    assert (tmp_path / "rep" / "figures" / "learning_curves.png").is_file()


def test_report_refuses_a_folder_without_results(tmp_path):
    with pytest.raises(ResultsFolderError, match=r"not a results folder .*netinit experiment"):
        compare_results(tmp_path, tmp_path / "rep")


def test_planned_comparisons_pair_modifiers_with_their_base(tiny):
    cfg = tiny(**{"grid.methods": ["default", "kaiming_normal", "kaiming_normal+pa"],
                  "grid.regularisers": ["none", "decov"]})
    got = planned_comparisons(cfg)
    assert ("kaiming_normal+pa", "kaiming_normal", "modifier on the same draw") in got
    assert ("kaiming_normal+pa@decov", "kaiming_normal@decov", "modifier on the same draw") in got
    assert ("kaiming_normal@decov", "kaiming_normal", "regulariser") in got
    assert ("default@decov", "default", "against the baseline") in got
    assert len(got) == len(set((a, b) for a, b, _ in got))


def test_narrative_helpers(tiny_results):
    cfg, results = tiny_results
    c, runs = load_results(results)
    rep = analyse(c, runs, figures=False)
    text = conclusion_text(rep, kinds=["against the baseline"])
    assert text.startswith("- test_acc at the last epoch (2): ")
    assert "At initialisation the in-strength variance of default+pa is" in text
    claim = claim_check(rep, "default+pa", "default", 0.40)
    assert claim.startswith("Claimed: +40% relative for default+pa over default. Measured (mean test_acc over epochs 1-2, 3 seeds)")
    assert re.search(r"the claimed value lies (inside|above|below) the interval", claim)
    assert "could not be checked" in claim_check(rep, "nope", "default", 0.4)


def test_structure_change_from_checkpoints(tiny, tmp_path, torch_one_thread):
    cfg = tiny(**{"grid.seeds": 2, "grid.methods": ["default"], "checkpoints": True, "train.epochs": 1})
    run_grid(cfg, tmp_path)
    ch = structure_change(tmp_path)
    assert set(ch["layer"]) == {"fc1", "out"} and set(ch["seed"]) == {0, 1}
    assert (ch.loc[ch["measure"] == "rel_change", "trained"] > 0).all()
    table, sentences = structure_tests(ch)
    assert len(table) == 6 and len(sentences) == 6 and table["higher"].between(0, 2).all()
    assert sentences[0].startswith("default, layer fc1: training ")
    out = tmp_path.parent / (tmp_path.name + "_nockpt")
    run_grid(tiny(**{"grid.seeds": 1, "grid.methods": ["default"], "train.epochs": 1}), out)
    with pytest.raises(ResultsFolderError, match="no initial/final checkpoints"):
        structure_change(out)


def test_power_is_computed_at_holms_strictest_level_of_each_family():
    import numpy as np

    from netinit.experiments.report_tables import power_rows
    from netinit.experiments.stats import seeds_needed

    rng = np.random.default_rng(3)
    base = rng.normal(0.5, 0.05, 12)
    values = pd.DataFrame(
        [{"method": "a", "seed": s, "value": base[s]} for s in range(12)]
        + [{"method": m, "seed": s, "value": base[s] + shift + rng.normal(0, 0.02)}
           for m, shift in (("b", 0.02), ("c", 0.01), ("d", 0.0)) for s in range(12)])
    table = pd.DataFrame({"method": ["b", "c", "d"], "reference": ["a"] * 3, "family": ["q", "q", "solo"],
                          "dz": [1.0, 0.5, 0.0]})
    t = power_rows(values, table, "train_acc_running, epoch 1", alpha=0.05)
    assert list(t["alpha"]) == pytest.approx([0.025, 0.025, 0.05])  # Holm's first step: alpha / family size
    assert set(t["outcome"]) == {"train_acc_running, epoch 1"} and list(t["family"]) == ["q", "q", "solo"]
    d_b = values[values.method == "b"]["value"].to_numpy() - base
    assert t["seeds_needed_80"].iloc[0] == seeds_needed(d_b, alpha=0.025)
    assert seeds_needed(d_b, alpha=0.025) > seeds_needed(d_b, alpha=0.05)  # the stricter level needs more seeds
