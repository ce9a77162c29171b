"""Reading a written report back (netinit.experiments.report_read): the same verdicts without re-analysing."""

from __future__ import annotations

import pandas as pd
import pytest

from netinit.experiments.config import config_from_dict, config_to_dict
from netinit.experiments.report_read import has_report, read_report
from netinit.experiments.report_text import claim_verdicts, conclusion_text, headline_parts, verdicts_markdown
from netinit.experiments.runner import ResultsFolderError

from .conftest import tiny_config

CLAIMS = [("PA on the default draw helps", "default+pa", "default"),
          ("kaiming_normal beats the default", "kaiming_normal", "default"),
          ("a condition the grid lacks", "orthogonal", "default")]


@pytest.fixture(scope="module")
def written(tmp_path_factory, torch_one_thread):
    """A 6-seed grid with a declared primary outcome and family, and the report `netinit results` writes."""
    from netinit.experiments.report import compare_results
    from netinit.experiments.runner import run_grid

    d = config_to_dict(tiny_config(**{"grid.seeds": 6}))
    cfg = config_from_dict({**d, "families": [{"name": "pa", "role": "primary", "comparisons": ["default+pa vs default"]}],
                            "analysis": {"primary": "train_acc_running", "primary_epochs": [1, 1],
                                         "secondary": "test_acc", "secondary_epochs": [0, 0], "margin": 0.02}})
    out = tmp_path_factory.mktemp("written")
    res = run_grid(cfg, out)
    assert res.done == 18 and not res.errors, res.summary()
    rep = compare_results(out, out / "report", plots=False)
    return out, rep


@pytest.mark.parametrize("table", [None, "paired_final", "paired_early", "paired_secondary"])
@pytest.mark.parametrize("claimed", [None, 0.40])
def test_read_report_gives_the_verdicts_of_the_report_that_wrote_it(written, table, claimed):
    out, rep = written
    back = read_report(out)
    ours = claim_verdicts(back, CLAIMS, table=table, claimed_relative=claimed)
    theirs = claim_verdicts(rep, CLAIMS, table=table, claimed_relative=claimed)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-12)
    assert verdicts_markdown(ours) == verdicts_markdown(theirs)
    assert ours["verdict"].iloc[-1] == "not tested"
    assert not ours["verdict"].iloc[0].startswith("inconclusive (fewer")  # 6 seeds: a real verdict


def test_read_report_rebuilds_config_outcomes_and_sentences(written):
    out, rep = written
    back = read_report(out)
    assert back.config == rep.config and back.config_hash == rep.config_hash
    assert (back.metric, back.alpha, back.outcomes) == (rep.metric, rep.alpha, rep.outcomes)
    assert back.outcomes["paired_primary"] == "primary outcome: train_acc_running, epoch 1"
    assert back.conclusions == rep.conclusions and back.notes == rep.notes and back.headlines == rep.headlines
    assert set(back.tables) == set(rep.tables) and not back.figures
    # the verdict column written by the report is what the verdict function gives on the rows read back
    t = back.tables["paired_primary"]
    assert list(t["verdict"]) == list(rep.tables["paired_primary"]["verdict"])
    assert conclusion_text(back) == conclusion_text(rep)
    assert conclusion_text(back, kinds=["modifier on the same draw"]) == conclusion_text(rep, kinds=["modifier on the same draw"])
    assert back.summary()["conclusions"] == rep.summary()["conclusions"]


def test_read_report_of_another_report_folder(written, tmp_path):
    from netinit.experiments.report_html import write_report

    out, rep = written
    write_report(rep, tmp_path / "elsewhere")
    assert not has_report(out, report_dir=tmp_path / "nowhere") and has_report(out, report_dir=tmp_path / "elsewhere")
    back = read_report(out, report_dir=tmp_path / "elsewhere")
    assert back.conclusions == rep.conclusions


def test_headline_parts():
    assert headline_parts("mean test_acc over epochs 1-5: 0 of 15 comparisons significant after Holm correction "
                          "within each of 4 families (alpha = 0.05).") == ("mean test_acc over epochs 1-5", 0.05)
    assert headline_parts("primary outcome: x, epoch 1: no comparison could be tested.") == ("primary outcome: x, epoch 1", None)
    assert headline_parts("default+pa vs default (modifier), ...") is None


def test_read_report_without_a_report_names_the_command(tiny_results, tmp_path):
    _, results = tiny_results
    assert not has_report(results)
    with pytest.raises(ResultsFolderError, match=r"no report in .*; write it with `netinit results .* -o .*report`"):
        read_report(results)
    with pytest.raises(ResultsFolderError, match="not a results folder"):
        read_report(tmp_path)


def _structure_row(**kw):
    row = {"method": "default+pa", "reference": "default", "layer": "fc1", "measure": "in_strength_var", "n": 10,
           "mean_reference": 1.0, "mean": 0.1, "ratio": 0.1, "diff_ci_low": -1.0, "diff_ci_high": -0.8,
           "p_wilcoxon": 0.002, "p_ttest": 0.001, "higher": 0, "p_wilcoxon_holm": 0.004}
    row.update(kw)
    row["ratio"] = row["mean"] / row["mean_reference"]
    return pd.DataFrame([row])


@pytest.mark.parametrize(("trained", "expected"), [
    ({"mean": 2.0, "mean_reference": 3.0, "diff_ci_low": -1.5, "diff_ci_high": -0.5}, "reproduced"),
    ({"mean": 2.9, "mean_reference": 3.0, "diff_ci_low": -0.3, "diff_ci_high": 0.1, "p_wilcoxon_holm": 0.4},
     "not reproduced: reductions above 0.3 excluded"),  # the 0.9 reduction at init is excluded
    ({"mean": 2.5, "mean_reference": 3.0, "diff_ci_low": -1.2, "diff_ci_high": 0.2, "p_wilcoxon_holm": 0.4},
     "inconclusive"),
    ({"mean": 3.5, "mean_reference": 3.0, "diff_ci_low": 0.2, "diff_ci_high": 0.8},
     "not reproduced: the effect is reversed; any reduction excluded (largest allowed -0.2)"),
    ({"n": 2, "p_wilcoxon_holm": 0.5}, "inconclusive (fewer than 6 seeds)"),
])
def test_structure_verdicts(trained, expected):
    from netinit.experiments.report_text import structure_verdicts

    t = structure_verdicts(_structure_row(), _structure_row(**trained))
    assert list(t["claim"]) == ["lowers", "survives"]
    assert t["verdict"].iloc[0] == "reproduced"
    assert t["claimed"].iloc[1] == pytest.approx(0.9)
    assert t["verdict"].iloc[1] == expected
    reversed_init = structure_verdicts(_structure_row(mean=1.5, diff_ci_low=0.2, diff_ci_high=0.8), pd.DataFrame())
    assert list(reversed_init["verdict"]) == ["not reproduced: the effect is reversed"]


def test_a_gain_smaller_than_the_claim_is_not_the_claim():
    from types import SimpleNamespace as R

    from netinit.experiments.report_text import verdict

    row = R(n=20, p_wilcoxon_holm=0.01, mean_diff=0.01, diff_ci90_high=0.02, margin=0.005)
    assert verdict(row, 0.05) == "reproduced"  # against the declared margin
    assert verdict(row, 0.05, claimed=0.3) == "not reproduced: effects above 2.00 points excluded; a smaller gain is significant"
    assert verdict(row, 0.05, claimed=0.015) == "reproduced"
