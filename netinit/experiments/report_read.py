"""Read a written report back: the :class:`ResultsReport` of a results folder, without re-analysing.

``netinit results RESULTS -o RESULTS/report`` writes the tables of
:func:`netinit.experiments.report.analyse` as ``report/tables/*.csv`` and its sentences as
``report/summary.json``; :func:`read_report` rebuilds the report from those files and the folder's
``experiment.json``, so :func:`netinit.experiments.report_text.claim_verdicts`,
:func:`~netinit.experiments.report_text.verdicts_markdown` and
:func:`~netinit.experiments.report_text.conclusion_text` give on committed results what they give on
the report that wrote them, in a fraction of a second instead of a re-analysis (about 25 CPU-seconds
for a 500-run folder). Figures are not read back (``figures`` is empty).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from netinit.experiments.config import ConfigError, ExperimentConfig, config_from_dict
from netinit.experiments.report_tables import ResultsReport
from netinit.experiments.report_text import headline_parts

__all__ = ["read_report", "has_report"]

#: The outcome tables of :func:`netinit.experiments.report.analyse`, in the order of its headlines.
_OUTCOME_TABLES = ("paired_final", "paired_early", "paired_primary", "paired_secondary")


def _report_dir(results_dir: Path, report_dir: str | os.PathLike | None) -> Path:
    return Path(report_dir) if report_dir is not None else results_dir / "report"


def has_report(results_dir: str | os.PathLike, *, report_dir: str | os.PathLike | None = None) -> bool:
    """Whether ``results_dir`` holds a written report (``report/tables/*.csv``) that :func:`read_report` can read."""
    tables = _report_dir(Path(results_dir), report_dir) / "tables"
    return tables.is_dir() and (tables / "runs.csv").is_file()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # an empty table is written as an empty file
        return pd.DataFrame()


def _config(results_dir: Path, chash: str | None) -> tuple[ExperimentConfig, str]:
    from netinit.experiments.runner import ResultsFolderError, read_manifest

    configs = read_manifest(results_dir)["configs"]
    if chash is None:
        if len(configs) != 1:
            raise ResultsFolderError(f"{results_dir}: its report does not say which of {len(configs)} configs it "
                                     f"covers (no config_hash in report/summary.json)")
        chash = next(iter(configs))
    if chash not in configs:
        raise ResultsFolderError(f"{results_dir}: the report is of config {chash}, which experiment.json lacks "
                                 f"(configs: {', '.join(configs)}); rewrite it with netinit results")
    try:
        return config_from_dict(configs[chash]), chash
    except ConfigError as e:
        raise ResultsFolderError(f"{results_dir}: the stored config {chash} is not valid here ({e})") from None


def read_report(results_dir: str | os.PathLike, *, report_dir: str | os.PathLike | None = None) -> ResultsReport:
    """The :class:`ResultsReport` that ``netinit results`` wrote for ``results_dir``, read from its files.

    Parameters
    ----------
    results_dir : path
        A results folder (holds ``experiment.json``).
    report_dir : path, optional
        Its report folder; default ``results_dir/report`` (where the committed results keep it).

    Returns
    -------
    ResultsReport
        ``tables`` from ``tables/*.csv`` (file stem -> table; an empty file gives an empty table);
        ``config`` from ``experiment.json`` (the config named by ``summary.json``'s
        ``config_hash``); ``metric``, ``conclusions`` and ``notes`` from ``summary.json``;
        ``outcomes`` (table key -> what the outcome is) and ``alpha`` from the headlines that
        :func:`netinit.experiments.report_text.headline_text` wrote (alpha from the config's
        ``analysis.alpha`` when no headline names it); ``figures`` empty, ``files`` the files read.

    Raises
    ------
    ResultsFolderError
        Not a results folder; no report (the message names the ``netinit results`` command that
        writes it); a report of a config ``experiment.json`` lacks.
    """
    from netinit.experiments.runner import ResultsFolderError, read_manifest

    folder = Path(results_dir)
    read_manifest(folder)  # a results folder, or a one-line error saying it is not
    out = _report_dir(folder, report_dir)
    if not has_report(folder, report_dir=report_dir):
        raise ResultsFolderError(f"{folder}: no report in {out} (no tables/runs.csv); write it with "
                                 f"`netinit results {folder} -o {out}`")
    files = sorted((out / "tables").glob("*.csv"))
    tables = {p.stem: _read_csv(p) for p in files}
    summary: dict[str, Any] = {}
    if (out / "summary.json").is_file():
        try:
            summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ResultsFolderError(f"{out / 'summary.json'}: unreadable ({e})") from None
        files.append(out / "summary.json")
    cfg, chash = _config(folder, summary.get("config_hash"))
    conclusions = [str(c) for c in summary.get("conclusions", [])]
    keys = [k for k in _OUTCOME_TABLES if k in tables]
    outcomes: dict[str, str] = {}
    alpha = None
    for key, line in zip(keys, conclusions):
        parts = headline_parts(line)
        if parts is None:  # a summary of another netinit: describe the outcome by its table's name
            break
        outcomes[key] = parts[0]
        alpha = parts[1] if parts[1] is not None else alpha
    for key in keys:
        outcomes.setdefault(key, key)
    headlines = conclusions[:len(keys)] + [c for c in conclusions if c.startswith("Friedman test")]
    return ResultsReport(config=cfg, config_hash=chash, metric=str(summary.get("metric", "test_acc")),
                         tables=tables, conclusions=conclusions, notes=[str(n) for n in summary.get("notes", [])],
                         alpha=alpha if alpha is not None else cfg.analysis.alpha, headlines=headlines,
                         outcomes=outcomes, files=files)
