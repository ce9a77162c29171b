"""The files of a results-folder comparison: CSV tables, PNG figures, ``summary.json`` and ``report.html``.

:func:`write_report` writes a :class:`~netinit.experiments.report_tables.ResultsReport` into a report folder
(the entries :data:`REPORT_FILES`); the HTML page puts the verdicts, the notes, an at-a-glance
table per outcome, the figures, every comparison in words and every table in one document.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from netinit.experiments.config import config_to_dict
from netinit.experiments.report_tables import VERSION_COLUMNS, ResultsReport
from netinit.experiments.report_text import fmt_p, pts_text

__all__ = ["write_report", "REPORT_FILES"]

#: Entries of a report folder (earlier reports in a folder are replaced without --force).
REPORT_FILES = ("report.html", "summary.json", "tables", "figures")


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
_SECTIONS = (("paired_primary", "Paired comparisons: the declared primary outcome"),
             ("paired_secondary", "Paired comparisons: the declared secondary outcome"),
             ("paired_final", "Paired comparisons: last epoch"), ("paired_early", "Paired comparisons: early epochs"),
             ("manipulation", "Manipulation check: correlation and strength variance at initialisation and at the end"),
             ("dose", "Regularisers: dose (penalty over task loss) and change of the activation correlation"),
             ("provenance", "Provenance: versions, threads and the Wilcoxon method"),
             ("relative_per_epoch", "Relative improvement over the baseline per epoch"),
             ("power", "Seeds needed for 80% power (this folder as a pilot, at Holm's strictest level per family)"),
             ("friedman_ranks", "Friedman average ranks"),
             ("nemenyi", "Nemenyi post-hoc p-values"), ("summary", "Per-condition summary at the last epoch"),
             ("init_structure", "Network structure at initialisation (mean over seeds)"),
             ("failed_runs", "Runs that diverged"), ("pairing", "Pairing check"), ("runs", "All runs"))


def _glance(t: pd.DataFrame, metric: str, alpha: float) -> pd.DataFrame:
    sign = -1.0 if "loss" in metric else 1.0
    fam = (t["family"] + " (" + t["role"] + ")") if "family" in t else "all"
    return pd.DataFrame({
        "comparison": t["method"] + " vs " + t["reference"], "family": fam, "kind": t["kind"], "seeds": t["n"],
        "difference (95% CI)": [f"{pts_text(sign * r.mean_diff, metric)} ({pts_text(sign * r.diff_ci_low, metric)} to "
                                f"{pts_text(sign * r.diff_ci_high, metric)})" for r in t.itertuples()],
        "relative": [f"{100 * x:+.2f}%" for x in t["rel_improvement"]],
        "Wilcoxon p (Holm)": [f"{fmt_p(a)} ({fmt_p(b)})" for a, b in zip(t["p_wilcoxon"], t["p_wilcoxon_holm"])],
        "t-test p (Holm)": [f"{fmt_p(a)} ({fmt_p(b)})" for a, b in zip(t["p_ttest"], t["p_ttest_holm"])],
        "wins/ties/losses": [f"{r.wins}/{r.ties}/{r.losses}" for r in t.itertuples()],
        "significance": ["better" if (h < alpha and d > 0) else "worse" if h < alpha else "no significant difference"
                         for h, d in zip(t["p_wilcoxon_holm"], t["mean_diff"])],
        "SD ratio (Pitman-Morgan p)": [f"{r:.2f} ({fmt_p(p)})" if r == r and p == p else "n/a"
                                       for r, p in zip(t.get("sd_ratio", [float("nan")] * len(t)),
                                                       t.get("p_pitman_morgan", [float("nan")] * len(t)))],
        "verdict": t["verdict"] if "verdict" in t else "",
    })


def _provenance(rep: ResultsReport) -> str:
    t = rep.tables.get("provenance", pd.DataFrame())
    return "; ".join(f"{r.item}: {r.values}" for r in t.itertuples(index=False)) if not t.empty else "not recorded"


def _html(rep: ResultsReport, figs: dict[str, str]) -> str:
    cfg = rep.config
    c = config_to_dict(cfg)
    runs = rep.tables["runs"]
    vers = "; ".join(f"{k.split('_')[0]} {', '.join(map(str, runs[k].unique()))}" for k in VERSION_COLUMNS if k in runs)
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
             "and batch order): mean paired difference with a BCa bootstrap 95% CI and a 90% t-interval (TOST "
             "against the declared margin), the relative change as a ratio of means with a paired bootstrap CI, "
             "the SD ratio over seeds with the Pitman-Morgan test, Wilcoxon signed-rank and paired t-test "
             "p-values with Holm's correction within each comparison's family, wins/ties/losses. A comparison "
             "is significant when the Holm-adjusted Wilcoxon p-value is below alpha; its verdict is "
             "'reproduced', 'not reproduced: effects above X excluded' or 'inconclusive'.</p>",
             f"<p>Provenance: {html.escape(_provenance(rep))}</p>",
             "<h2>Verdicts</h2><ul>", *[f"<li><b>{html.escape(s)}</b></li>" for s in rep.headlines], "</ul>"]
    if rep.notes:
        parts += ["<h2>Notes</h2><ul>", *[f"<li class='note'>{html.escape(n)}</li>" for n in rep.notes], "</ul>"]
    for key in ("paired_primary", "paired_secondary", "paired_final", "paired_early"):
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


def write_report(rep: ResultsReport, out_dir: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Write ``tables/*.csv``, ``figures/*.png``, ``summary.json`` and ``report.html``.

    Raises
    ------
    OutputError
        ``out_dir`` holds files other than an earlier report (unless ``overwrite``).
    """
    from netinit._io import atomic_path, prepare_output_dir

    out = prepare_output_dir(out_dir, owned=REPORT_FILES, overwrite=overwrite)
    earlier = _earlier_files(out)
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
    written = sorted(f.relative_to(out).as_posix() for f in files)
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps({**rep.summary(), "files": written}, indent=2, default=str), encoding="utf-8")
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(_html(rep, figs), encoding="utf-8")
    files += [out / "summary.json", out / "report.html"]
    for rel in earlier - set(written):  # a table or figure of the earlier report this one does not have
        with contextlib.suppress(FileNotFoundError):
            (out / rel).unlink()
    rep.files = files
    return files


def _earlier_files(out: Path) -> set[str]:
    """The tables and figures an earlier report in ``out`` listed in its summary.json (none when it
    has no list): the ones this report does not write again are removed, nothing else."""
    try:
        listed = json.loads((out / "summary.json").read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    ok = re.compile(r"(tables/[\w.-]+\.csv|figures/[\w.-]+\.png)")
    return {f for f in listed if isinstance(f, str) and ok.fullmatch(f)} if isinstance(listed, list) else set()
