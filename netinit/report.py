"""Files, figures and the HTML report of an analysis (the edge of the package: seaborn lives here).

:func:`write_report` writes into one output folder:

* ``layers.csv``: one row per layer; ``neurons.csv`` (or ``.parquet``): one row per neuron and
  side; ``skipped.csv``: every tensor not analysed, with the reason; ``chains.csv``: strength
  correlation across consecutive layers; ``summary.json``;
* ``strength_distributions.png``, ``strength_variance.png``, ``correlation_heatmap.png``;
* ``report.html``, which shows the tables and figures.

Every file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from netinit._io import atomic_path, prepare_output_dir
from netinit.analyzer import Analysis

__all__ = ["write_report", "OUTPUT_FILES"]

OUTPUT_FILES = (
    "layers.csv", "neurons.csv", "neurons.parquet", "skipped.csv", "chains.csv", "summary.json",
    "strength_distributions.png", "strength_variance.png", "correlation_heatmap.png", "report.html",
)
_HEATMAP_MAX = 96


def write_text_file(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_table(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


def save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def short_label(names: list[str], width: int = 28) -> list[str]:
    return [n if len(n) <= width else "…" + n[-(width - 1):] for n in names]


def _figures(result: Analysis, out: Path, matrix_of: Callable[[str], np.ndarray] | None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    written: list[Path] = []
    layers = result.layers
    order = list(layers["layer"])
    labels = dict(zip(order, short_label(order)))

    neurons = result.neurons.copy()
    neurons["layer "] = neurons["layer"].map(labels)
    neurons["neuron side"] = neurons["side"].map({"out": "output neurons (in-strength)",
                                                  "in": "input neurons (out-strength)"})
    height = max(3.0, 0.45 * len(order) + 1.5)
    fig, ax = plt.subplots(figsize=(9, height))
    sns.violinplot(data=neurons, y="layer ", x="strength", hue="neuron side", order=[labels[o] for o in order],
                   split=True, inner="quart", density_norm="width", cut=0, linewidth=0.8, ax=ax,
                   palette=["#4C72B0", "#DD8452"])
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_title("Neuron strength per layer (sum of a neuron's weights)")
    ax.set_xlabel("strength")
    ax.set_ylabel("")
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    p = out / "strength_distributions.png"
    save_figure(fig, p)
    written.append(p)

    long = layers.melt(id_vars=["layer"], value_vars=["in_strength_var", "out_strength_var"],
                       var_name="statistic", value_name="variance")
    long["statistic"] = long["statistic"].map({"in_strength_var": "in-strength (output neurons)",
                                               "out_strength_var": "out-strength (input neurons)"})
    long["layer "] = long["layer"].map(labels)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(order) + 2), 4))
    sns.barplot(data=long, x="layer ", y="variance", hue="statistic", order=[labels[o] for o in order],
                palette=["#4C72B0", "#DD8452"], ax=ax)
    if (long["variance"] > 0).all():
        ax.set_yscale("log")
    ax.set_title("Strength variance by layer")
    ax.set_xlabel("")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), title=None, frameon=False)
    ax.tick_params(axis="x", rotation=45)
    for t in ax.get_xticklabels():
        t.set_horizontalalignment("right")
    p = out / "strength_variance.png"
    save_figure(fig, p)
    written.append(p)

    # the heatmap: the layer of most correlated incoming weights, among those with a correlation
    # (at least 2 inputs and 2 output neurons: a (16, 1) layer's rows have no correlation)
    shown_layers = layers[(layers["n_in"] >= 2) & (layers["n_out"] >= 2)] if len(layers) else layers
    if matrix_of is not None and len(shown_layers):
        from scipy.cluster.hierarchy import leaves_list, linkage

        from netinit.metrics.correlation import correlation_matrix

        top = shown_layers.sort_values("corr_in_mean_abs", ascending=False, na_position="last").iloc[0]
        W = np.asarray(matrix_of(str(top["layer"])), dtype=np.float64)[:_HEATMAP_MAX]
        R = correlation_matrix(W, name=str(top["layer"]))
        ok = ~np.isnan(R).all(axis=1)
        R = R[np.ix_(ok, ok)]
        if len(R) >= 3:
            idx = leaves_list(linkage(np.nan_to_num(W[ok]), method="average", metric="correlation"))
            R = R[np.ix_(idx, idx)]
        fig, ax = plt.subplots(figsize=(6.5, 5.5))
        sns.heatmap(R, cmap="vlag", vmin=-1, vmax=1, square=True, xticklabels=False, yticklabels=False,
                    cbar_kws={"label": "Pearson r", "shrink": 0.8}, ax=ax)
        shown = f"first {len(R)} of {int(top['n_out'])}" if int(top["n_out"]) > len(R) else f"{len(R)}"
        ax.set_title(f"Incoming-weight correlation, {labels[str(top['layer'])]}\n"
                     f"({shown} output neurons, clustered; mean |r| = {top['corr_in_mean_abs']:.3f})",
                     fontsize=10)
        p = out / "correlation_heatmap.png"
        save_figure(fig, p)
        written.append(p)
    return written


def table_html(df: pd.DataFrame, max_rows: int = 200) -> str:
    shown = df.head(max_rows)
    text = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="tbl", escape=True)
    if len(df) > max_rows:
        text += f"<p class='note'>{len(df) - max_rows} more rows in the CSV file.</p>"
    return text


REPORT_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.meta{color:#666} .note{color:#666;font-size:.9rem}
.tbl{border-collapse:collapse;font-size:.82rem;margin:.5rem 0;display:block;overflow-x:auto}
.tbl th{background:#f3f4f6;text-align:right;padding:4px 8px;position:sticky;top:0}
.tbl td{padding:3px 8px;text-align:right;border-top:1px solid #eee;white-space:nowrap}
.tbl td:first-child,.tbl th:first-child{text-align:left}
.cards{display:flex;gap:1rem;flex-wrap:wrap} .card{background:#f8f9fb;border:1px solid #e5e7eb;
border-radius:8px;padding:.6rem 1rem;min-width:9rem} .card b{display:block;font-size:1.3rem}
img{max-width:100%;border:1px solid #eee;border-radius:6px;margin:.5rem 0}
"""


def _html(result: Analysis, figures: list[Path], files: list[str]) -> str:
    L = result.layers
    n_params = int((L["n_out"] * L["n_in"]).sum()) if len(L) else 0
    most = L.sort_values("corr_in_mean_abs", ascending=False).iloc[0] if len(L) else None
    top_var = L.sort_values("in_strength_var", ascending=False).iloc[0] if len(L) else None
    cards = [("layers analysed", f"{len(L)}"), ("weights", f"{n_params:,}"),
             ("tensors skipped", f"{len(result.skipped)}")]
    if most is not None:
        cards.append(("most correlated layer", f"{html.escape(str(most['layer']))}"))
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>netinit report</title>",
        f"<style>{REPORT_CSS}</style></head><body>",
        f"<h1>netinit analysis</h1><p class='meta'>{e(result.checkpoint)} · format {e(result.format)}"
        + (f" · weights found under <code>{e(result.container)}</code>" if result.container else "") + "</p>",
        "<div class='cards'>" + "".join(f"<div class='card'><b>{v}</b>{e(k)}</div>" for k, v in cards) + "</div>",
    ]
    if top_var is not None and most is not None:
        parts.append(
            f"<p>The largest in-strength variance is in <b>{e(str(top_var['layer']))}</b> "
            f"({top_var['in_strength_var']:.4g}); the most correlated incoming weight vectors are in "
            f"<b>{e(str(most['layer']))}</b> (mean |r| = {most['corr_in_mean_abs']:.3f}, "
            f"max |r| = {most['corr_in_max_abs']:.3f}).</p>")
    parts.append("<h2>Layers</h2>" + table_html(L))
    names = {p.name for p in figures}
    for fname, title in (("strength_variance.png", "Strength variance"),
                         ("strength_distributions.png", "Strength distributions"),
                         ("correlation_heatmap.png", "Neuron correlation")):
        if fname in names:
            parts.append(f"<h2>{title}</h2><img src='{fname}' alt='{title}'>")
    if len(result.chains):
        parts.append("<h2>Strength across consecutive layers</h2><p class='note'>Pearson correlation "
                     "between a neuron's in-strength in one layer and its out-strength in the next.</p>"
                     + table_html(result.chains))
    parts.append(f"<h2>Skipped tensors ({len(result.skipped)})</h2>")
    if len(result.skipped):
        counts = result.skipped["reason"].value_counts()
        parts.append("<p class='note'>" + "; ".join(f"{e(str(r))}: {n}" for r, n in counts.items()) + "</p>")
        parts.append(table_html(result.skipped))
    parts.append("<h2>Files</h2><ul>" + "".join(f"<li><a href='{e(f)}'>{e(f)}</a></li>" for f in files) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    result: Analysis,
    out_dir: os.PathLike | str,
    *,
    plots: bool = True,
    neurons_format: str = "csv",
    matrix_of: Callable[[str], np.ndarray] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write the tables, figures and ``report.html`` of ``result`` into ``out_dir``.

    Parameters
    ----------
    result : Analysis
        From :func:`netinit.analyze`.
    out_dir : path-like
        Created if missing; a folder holding files other than netinit's outputs is refused
        unless ``overwrite``.
    plots : bool, default True
        Draw the figures (seaborn).
    neurons_format : {"csv", "parquet"}
        Format of the per-neuron table (parquet needs pyarrow).
    matrix_of : callable, optional
        ``layer name -> canonical matrix``, for the correlation heatmap.
    overwrite : bool, default False
        Write into a folder that holds other files.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    OutputError
        The folder holds other files, or is a file.
    """
    if neurons_format not in ("csv", "parquet"):
        raise ValueError(f"neurons_format must be 'csv' or 'parquet', got {neurons_format!r}")
    out = prepare_output_dir(out_dir, owned=OUTPUT_FILES, overwrite=overwrite)
    written = []
    for name, df in (("layers.csv", result.layers), (f"neurons.{neurons_format}", result.neurons),
                     ("skipped.csv", result.skipped), ("chains.csv", result.chains)):
        write_table(df, out / name)
        written.append(out / name)
    figures = _figures(result, out, matrix_of) if plots else []
    written += figures
    report, summary_path = out / "report.html", out / "summary.json"
    written += [report, summary_path]
    write_text_file(report, _html(result, figures, [p.name for p in written]))
    summary = result.summary()
    summary["outputs"] = [str(p) for p in written]  # the same record as ``netinit analyze --json``
    write_text_file(summary_path, json.dumps(summary, indent=2, default=str))
    for stale in set(OUTPUT_FILES) - {p.name for p in written}:  # an earlier run's, not this one's
        (out / stale).unlink(missing_ok=True)
    return written
