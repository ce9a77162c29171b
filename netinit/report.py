"""Files, figures and the HTML report of an analysis (the edge of the package: seaborn lives here).

:func:`write_report` writes into one output folder:

* ``layers.csv``: one row per layer; ``neurons.csv`` (or ``.parquet``): one row per neuron and
  side; ``skipped.csv``: every tensor not analysed, with the reason; ``chains.csv``: strength
  correlation across consecutive layers; ``summary.json``;
* ``strength_distributions.png``, ``strength_variance.png``, ``correlation_heatmap.png``;
  ``null_zscores.png`` (the z-score of every layer statistic against its null model, when the
  analysis has one);
* ``report.html``, which shows the tables and figures (and the z-scores, the network measures
  and the chain null when the analysis has them).

:func:`write_trajectory_report` writes the stacked tables of a
:class:`~netinit.trajectory.Trajectory` (several checkpoints, ``checkpoint`` and ``step``
columns), ``trajectories.png`` (each key metric over the checkpoints, per layer, or per role
for models of many layers whose roles are known), the z-scores of the last checkpoint and a
``report.html`` of them.

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

__all__ = ["write_report", "write_trajectory_report", "OUTPUT_FILES", "TRAJECTORY_METRICS"]

OUTPUT_FILES = (
    "layers.csv", "neurons.csv", "neurons.parquet", "skipped.csv", "chains.csv", "summary.json",
    "strength_distributions.png", "strength_variance.png", "correlation_heatmap.png", "null_zscores.png",
    "trajectories.png", "depth_by_role.png", "experts.png", "report.html",
)
_HEATMAP_MAX = 96
#: The layer columns drawn over a trajectory (those the analysis has).
TRAJECTORY_METRICS = (
    "weight_std", "in_strength_var", "out_strength_var", "corr_in_mean_abs", "corr_out_mean_abs",
    "effective_n_in", "corr_in_mean_abs_z", "corr_out_mean_abs_z", "in_strength_var_z",
    "out_strength_var_z", "neural_persistence_normalized", "modularity", "clustering_mean",
    "subgraph_centrality_log_mean",
)
_Z_LIMIT = 10.0  # colour scale of the z heatmap: |z| beyond is shown at the end of the scale
_BY_ROLE_ABOVE = 8  # a trajectory of more layers than this is drawn per role, where roles are known
#: layer columns of the network measures, in the report's order
_NETWORK_COLUMNS = ("clustering_mean", "harmonic_mean", "current_flow_closeness_mean",
                    "subgraph_centrality_log_mean", "log_estrada_index", "neural_persistence",
                    "neural_persistence_normalized", "modularity", "n_communities", "network_skipped")


def write_text_file(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_table(df: pd.DataFrame, path: Path) -> None:
    """``df`` as CSV (or Parquet, by suffix), without its index. Tables of at least
    :data:`FAST_CSV_ROWS` rows go through pyarrow's CSV writer (:func:`_arrow_csv`), the same bytes
    as ``to_csv`` 10x faster; a table it cannot write as ``to_csv`` would goes to ``to_csv``."""
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif len(df) < FAST_CSV_ROWS or not _arrow_csv(df, tmp):
            df.to_csv(tmp, index=False)


#: Tables of at least this many rows are written by :func:`_arrow_csv` (the neuron table of a large model).
FAST_CSV_ROWS = 50_000


def _arrow_csv(df: pd.DataFrame, path: Path) -> bool:
    """Write ``df`` as ``df.to_csv(path, index=False)`` does, byte for byte, with pyarrow's CSV writer;
    False (nothing written) for a table it cannot: object or other columns of no plain kind, or a
    value that would need quotes (a comma, quote or line break in a string).

    Floats are formatted as pandas formats them (``ndarray.astype(str)``, for float64 the same
    strings as Python's ``repr``: the shortest that round-trips; NaN empty), booleans as
    ``True``/``False``; integers, nullable integers and strings are written by pyarrow unquoted
    (missing values empty), as pandas writes them.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = {}
    for name in df.columns:
        col = df[name]
        dtype = col.dtype
        if not isinstance(name, str) or any(c in name for c in ',"\r\n'):
            return False
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            values = col.to_numpy()
            # float64: Python's repr is numpy's astype(str), 1.5x faster (float32 has its own repr)
            text = list(map(repr, values.tolist())) if dtype == np.float64 else values.astype(str)
            columns[name] = pa.array(text, mask=np.isnan(values), type=pa.string())
        elif isinstance(dtype, np.dtype) and dtype.kind == "b":
            columns[name] = pa.array(np.where(col.to_numpy(), "True", "False"), type=pa.string())
        elif (isinstance(dtype, np.dtype) and dtype.kind in "iu") or isinstance(dtype, (pd.Int64Dtype, pd.StringDtype)):
            columns[name] = pa.Array.from_pandas(col)
        else:
            return False
    try:
        table = pa.table(columns)
        with open(path, "wb") as fh:  # the header as pandas writes it (pyarrow quotes it)
            fh.write((",".join(df.columns) + "\n").encode())
            pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        Path(path).unlink(missing_ok=True)
        return False
    return True


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

    from netinit.report_depth import PER_LAYER_MAX, depth_figures

    layers = result.layers
    order = list(layers["layer"])
    if len(order) > PER_LAYER_MAX:  # one violin or bar per layer no longer reads: the figures over depth do
        # matplotlib alone, in seaborn's look (importing seaborn and scipy.stats takes 1-2 s)
        with plt.style.context("seaborn-v0_8-whitegrid"):
            return depth_figures(layers, out, save_figure) + _heatmap_only(result, out, matrix_of)
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    written: list[Path] = depth_figures(layers, out, save_figure)
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
    return written + _heatmap_only(result, out, matrix_of)


def _heatmap_only(result: Analysis, out: Path, matrix_of: Callable[[str], np.ndarray] | None) -> list[Path]:
    """The correlation heatmap of the most correlated layer and the null model's z-scores."""
    import matplotlib.pyplot as plt

    from netinit.report_depth import heatmap

    written: list[Path] = []
    layers = result.layers
    labels = dict(zip(list(layers["layer"]), short_label(list(layers["layer"]))))
    # the heatmap: the layer of most correlated incoming weights, among those with a correlation
    # (at least 2 inputs and 2 output neurons: a (16, 1) layer's rows have no correlation)
    shown_layers = layers[(layers["n_in"] >= 2) & (layers["n_out"] >= 2)] if len(layers) else layers
    if matrix_of is not None and len(shown_layers):
        from scipy.cluster.hierarchy import leaves_list, linkage

        from netinit.metrics.correlation import correlation_matrix

        top = shown_layers.sort_values("corr_in_mean_abs", ascending=False, na_position="last").iloc[0]
        W = np.asarray(matrix_of(str(top["layer"]))[:_HEATMAP_MAX], dtype=np.float64)  # the rows shown only
        R = correlation_matrix(W, name=str(top["layer"]))
        ok = ~np.isnan(R).all(axis=1)
        R = R[np.ix_(ok, ok)]
        if len(R) >= 3:
            idx = leaves_list(linkage(np.nan_to_num(W[ok]), method="average", metric="correlation"))
            R = R[np.ix_(idx, idx)]
        fig, ax = plt.subplots(figsize=(6.5, 5.5))
        heatmap(ax, R, cmap="RdBu_r", vmin=-1, vmax=1, label="Pearson r", square=True)
        shown = f"first {len(R)} of {int(top['n_out'])}" if int(top["n_out"]) > len(R) else f"{len(R)}"
        ax.set_title(f"Incoming-weight correlation, {labels[str(top['layer'])]}\n"
                     f"({shown} output neurons, clustered; mean |r| = {top['corr_in_mean_abs']:.3f})",
                     fontsize=10)
        p = out / "correlation_heatmap.png"
        save_figure(fig, p)
        written.append(p)
    if "null_model" in layers.columns:
        p = _zscore_figure(layers, out / "null_zscores.png", _null_title(result.options))
        if p is not None:
            written.append(p)
    return written

def z_columns(layers: pd.DataFrame) -> list[str]:
    """The ``<stat>_z`` columns of a layer table that hold at least one finite z."""
    return [c for c in layers.columns if c.endswith("_z") and c != "strength_correlation_z"
            and pd.to_numeric(layers[c], errors="coerce").notna().any()]


def _zscore_figure(layers: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Heatmap of the z-scores: one row per layer, one column per statistic."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    cols = z_columns(layers)
    if not cols or not len(layers):
        return None
    Z = layers[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    rows = short_label([str(n) for n in layers["layer"]])
    names = [c[:-2] for c in cols]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(cols) + 3), max(2.5, 0.4 * len(rows) + 1.8)))
    annotate = Z.size <= 400
    sns.heatmap(np.clip(Z, -_Z_LIMIT, _Z_LIMIT), cmap="vlag", center=0.0, vmin=-_Z_LIMIT, vmax=_Z_LIMIT,
                annot=Z if annotate else False, fmt=".1f", annot_kws={"fontsize": 7},
                xticklabels=names, yticklabels=rows, linewidths=0.4, linecolor="white",
                cbar_kws={"label": f"z (clipped at ±{_Z_LIMIT:g})", "shrink": 0.8}, ax=ax)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=60)
    for t in ax.get_xticklabels():
        t.set_horizontalalignment("right")
    save_figure(fig, path)
    return path


_NULL_SUFFIXES = ("_null_observed", "_null_mean", "_null_sd", "_z")
_LATER = {"null_model", "null_shuffles", "null_corr_rows", "null_corr_cols", "weight_transform",
          "distance_transform", "clustering_definition", "persistence_w_max", "leiden_resolution",
          *_NETWORK_COLUMNS}


def _in_later_section(column: str) -> bool:
    """A layer column shown in the null-model or network section, not in the main table."""
    return column in _LATER or column.endswith(_NULL_SUFFIXES)


def _null_title(options: dict[str, Any]) -> str:
    return (f"z-scores against {options.get('null')} shuffled copies "
            f"({options.get('null_model')} model; empty: a null without spread, e.g. a statistic the model keeps)")


def _null_html(result: Any, figures: set[str]) -> list[str]:
    """Report sections of the null model and the network measures (where the analysis has them)."""
    e = html.escape
    parts: list[str] = []
    L = result.layers
    cols = z_columns(L)
    if "null_model" in L.columns:
        opts = result.options
        parts.append(
            f"<h2>Null model: z-scores</h2><p class='note'>Each statistic against {e(str(opts.get('null')))} "
            f"copies of the same layer shuffled {e(str(opts.get('null_model')))}-wise: "
            "<code>z = (observed - null mean) / null SD</code>. |z| above about 3 says the trained "
            "structure is not what a random arrangement of the same weights gives; an empty cell is a "
            "statistic the shuffle keeps (or a null with no spread). Correlation statistics use up to 512 "
            "neurons per side (<code>null_corr_rows</code>, <code>null_corr_cols</code>).</p>")
        if "null_zscores.png" in figures:
            parts.append("<img src='null_zscores.png' alt='z-scores'>")
        parts.append(table_html(L[["layer", *cols]]))
    present = [c for c in _NETWORK_COLUMNS if c in L.columns]
    if present:
        parts.append("<h2>Network measures on |w|</h2><p class='note'>Weighted bipartite clustering "
                     "(Latapy, weighted Jaccard), harmonic and current-flow closeness (lengths 1/|w|, "
                     "conductances |w|), subgraph centrality (log, from the SVD), neural persistence "
                     "(Rieck et al. 2019; normalised by the largest |w| over the analysed layers) and Leiden "
                     "modularity. Per-neuron values are in the neuron table.</p>" + table_html(L[["layer", *present]]))
    return parts


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
        + (f" · weights found under <code>{e(result.container)}</code>" if result.container else "")
        + (" · " + ", ".join(f"{k} {e(str(v))}" for k, v in result.model.items()
                             if v is not None and k != "quantization_config") if result.model else "") + "</p>",
        f"<p><b>{e(result.coverage.text())}</b></p>" if result.coverage is not None else "",
        "<div class='cards'>" + "".join(f"<div class='card'><b>{v}</b>{e(k)}</div>" for k, v in cards) + "</div>",
    ]
    if top_var is not None and most is not None:
        parts.append(
            f"<p>The largest in-strength variance is in <b>{e(str(top_var['layer']))}</b> "
            f"({top_var['in_strength_var']:.4g}); the most correlated incoming weight vectors are in "
            f"<b>{e(str(most['layer']))}</b> (mean |r| = {most['corr_in_mean_abs']:.3f}, "
            f"max |r| = {most['corr_in_max_abs']:.3f}).</p>")
    own = [c for c in L.columns if not _in_later_section(c)]
    parts.append("<h2>Layers</h2>" + table_html(L[own])
                 + ("<p class='note'>The null-model and network columns are in their sections below and in "
                    "layers.csv.</p>" if len(own) < len(L.columns) else ""))
    names = {p.name for p in figures}
    for fname, title in (("strength_variance.png", "Strength variance"),
                         ("strength_distributions.png", "Strength distributions"),
                         ("correlation_heatmap.png", "Neuron correlation")):
        if fname in names:
            parts.append(f"<h2>{title}</h2><img src='{fname}' alt='{title}'>")
    for fname, title, note in (
            ("depth_by_role.png", "Over depth, by role",
             "Each metric by block and role (the mean over a block's experts), and its lines over depth."),
            ("experts.png", "Spread over the experts",
             "Per block and role: the median over the experts and the band from the lowest to the highest.")):
        if fname in names:
            parts.append(f"<h2>{title}</h2><p class='note'>{note}</p><img src='{fname}' alt='{title}'>")
    parts += _null_html(result, names)
    if len(result.chains):
        parts.append("<h2>Strength across consecutive layers</h2><p class='note'>Pearson correlation "
                     "between a neuron's in-strength in one layer and its out-strength in the next, and "
                     "the strength flowing through those neurons (mean in-strength in the first layer, "
                     "mean out-strength in the next, signed and of |w|)"
                     + ("; with the null model, the correlation's z against the same shuffled copies of "
                        "both layers" if "strength_correlation_z" in result.chains.columns else "")
                     + ".</p>" + table_html(result.chains))
    parts.append(f"<h2>Skipped tensors ({len(result.skipped)})</h2>")
    if len(result.skipped):
        counts = result.skipped["reason"].value_counts()
        parts.append("<p class='note'>" + "; ".join(f"{e(str(r))}: {n}" for r, n in counts.items()) + "</p>")
        parts.append(table_html(result.skipped))
    return _page_end(parts, files)


def _page_end(parts: list[str], files: list[str]) -> str:
    """The report page: ``parts``, then the list of files written."""
    e = html.escape
    links = "".join(f"<li><a href='{e(f)}'>{e(f)}</a></li>" for f in files)
    return "\n".join([*parts, f"<h2>Files</h2><ul>{links}</ul>", "</body></html>"])


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
    written = _write_tables(result, out, neurons_format)
    figures = _figures(result, out, matrix_of) if plots else []
    written += figures
    return _finish(out, written, lambda files: _html(result, figures, files), result.summary())


def _write_tables(result: Any, out: Path, neurons_format: str) -> list[Path]:
    written = []
    for name, df in (("layers.csv", result.layers), (f"neurons.{neurons_format}", result.neurons),
                     ("skipped.csv", result.skipped), ("chains.csv", result.chains)):
        write_table(df, out / name)
        written.append(out / name)
    return written


def _finish(out: Path, written: list[Path], page: Callable[[list[str]], str], summary: dict[str, Any]) -> list[Path]:
    """Write ``report.html`` and ``summary.json``, remove an earlier run's other outputs."""
    report, summary_path = out / "report.html", out / "summary.json"
    written = [*written, report, summary_path]
    write_text_file(report, page([p.name for p in written]))
    summary["outputs"] = [str(p) for p in written]  # the same record as ``netinit analyze --json``
    write_text_file(summary_path, json.dumps(summary, indent=2, default=str))
    for stale in set(OUTPUT_FILES) - {p.name for p in written}:  # an earlier run's, not this one's
        (out / stale).unlink(missing_ok=True)
    return written


def _trajectory_frame(layers: pd.DataFrame) -> tuple[pd.DataFrame, str, str, list[str] | None]:
    """(long table, x column, line column, x tick labels): per layer, or per role for many layers."""
    df = layers.copy()
    by_role = (df["layer"].nunique() > _BY_ROLE_ABOVE and "role" in df.columns
               and df["role"].notna().all() and df["role"].nunique() < df["layer"].nunique())
    ticks = None
    if df["step"].notna().all():
        df["x"] = df["step"].astype("int64")
        xlabel = "step"
    else:  # checkpoints without steps: their order
        order = list(dict.fromkeys(df["checkpoint"]))
        df["x"] = df["checkpoint"].map({c: i for i, c in enumerate(order)})
        ticks = short_label([Path(str(c)).stem for c in order], width=22)
        xlabel = "checkpoint"
    if by_role:
        metrics = [m for m in TRAJECTORY_METRICS if m in df.columns]
        df = (df.groupby(["x", "role"], sort=True)[metrics].mean().reset_index()
              .rename(columns={"role": "line"}))
        return df, xlabel, "role (mean over its layers)", ticks
    labels = dict(zip(df["layer"], short_label([str(n) for n in df["layer"]])))
    df["line"] = df["layer"].map(labels)
    return df, xlabel, "layer", ticks


def _trajectory_figure(layers: pd.DataFrame, path: Path) -> Path | None:
    import matplotlib.pyplot as plt
    import seaborn as sns

    df, xlabel, hue, ticks = _trajectory_frame(layers)
    metrics = [m for m in TRAJECTORY_METRICS
               if m in df.columns and pd.to_numeric(df[m], errors="coerce").notna().any()]
    if not metrics:
        return None
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols + 1.5, 3.0 * nrows), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        data = df[["x", "line", m]].copy()
        data[m] = pd.to_numeric(data[m], errors="coerce")
        sns.lineplot(data=data, x="x", y=m, hue="line", marker="o", ax=ax, legend=ax is axes.flat[0])
        if m.endswith("_z"):
            ax.axhline(0, color="0.4", lw=0.8)
            for v in (-3, 3):
                ax.axhline(v, color="0.6", lw=0.6, ls=":")
        ax.set_title(m, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("")
        if ticks is not None:
            ax.set_xticks(range(len(ticks)))
            ax.set_xticklabels(ticks, rotation=30, ha="right", fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    first = axes.flat[0]
    if first.get_legend() is not None:
        handles, labels = first.get_legend_handles_labels()
        first.get_legend().remove()
        fig.legend(handles, labels, title=hue, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
                   fontsize=8)
    fig.suptitle("Layer statistics over the checkpoints", fontsize=12)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def _trajectory_html(traj: Any, figures: list[Path], files: list[str]) -> str:
    e = html.escape
    L = traj.layers
    last = traj.analyses[-1]
    steps = "" if any(s is None for s in traj.steps) else f" (steps {traj.steps[0]} to {traj.steps[-1]})"
    cards = [("checkpoints", f"{len(traj.analyses)}"), ("layers per checkpoint", f"{len(last.layers)}"),
             ("rows in layers.csv", f"{len(L)}")]
    names = {p.name for p in figures}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>netinit trajectory report</title>",
        f"<style>{REPORT_CSS}</style></head><body>",
        f"<h1>netinit trajectory</h1><p class='meta'>{len(traj.analyses)} checkpoints{e(steps)}: "
        + ", ".join(f"<code>{e(c)}</code>" for c in traj.checkpoints) + "</p>",
        "<div class='cards'>" + "".join(f"<div class='card'><b>{v}</b>{e(k)}</div>" for k, v in cards) + "</div>",
        "<p class='note'>Every table has the columns <code>checkpoint</code> and <code>step</code> (from the "
        "names or <code>--steps</code>; empty where unknown). Compare any two checkpoints neuron by neuron "
        "with <code>netinit compare A B -o DIR</code>.</p>",
    ]
    if "trajectories.png" in names:
        parts.append("<h2>Over training</h2><img src='trajectories.png' alt='trajectories'>")
    key = ["checkpoint", "step", "layer", *[c for c in ("role",) if c in L.columns],
           *[m for m in TRAJECTORY_METRICS if m in L.columns]]
    parts.append("<h2>Layers at every checkpoint</h2>" + table_html(L[key]))
    if "null_model" in last.layers.columns:
        parts.append(f"<h2>z-scores at the last checkpoint</h2><p class='note'>{e(traj.checkpoints[-1])}: "
                     f"{e(_null_title(last.options))}.</p>")
        if "null_zscores.png" in names:
            parts.append("<img src='null_zscores.png' alt='z-scores'>")
    if len(traj.chains):
        parts.append("<h2>Strength across consecutive layers</h2>" + table_html(traj.chains))
    return _page_end(parts, files)


def write_trajectory_report(
    traj: Any,
    out_dir: os.PathLike | str,
    *,
    plots: bool = True,
    neurons_format: str = "csv",
    overwrite: bool = False,
) -> list[Path]:
    """Write the stacked tables, ``trajectories.png`` and ``report.html`` of a trajectory.

    Parameters
    ----------
    traj : Trajectory
        From :func:`netinit.trajectory.analyze_trajectory`.
    out_dir : path-like
        As :func:`write_report`.
    plots : bool, default True
        Draw ``trajectories.png`` (and ``null_zscores.png`` of the last checkpoint with a null
        model).
    neurons_format : {"csv", "parquet"}
    overwrite : bool, default False

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ValueError
        A bad ``neurons_format``.
    OutputError
        The folder holds other files, or is a file.
    """
    if neurons_format not in ("csv", "parquet"):
        raise ValueError(f"neurons_format must be 'csv' or 'parquet', got {neurons_format!r}")
    out = prepare_output_dir(out_dir, owned=OUTPUT_FILES, overwrite=overwrite)
    written = _write_tables(traj, out, neurons_format)
    figures: list[Path] = []
    if plots:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import seaborn as sns

        sns.set_theme(style="whitegrid", context="notebook")
        for p in (_trajectory_figure(traj.layers, out / "trajectories.png"),
                  _zscore_figure(traj.analyses[-1].layers, out / "null_zscores.png",
                                 _null_title(traj.analyses[-1].options))
                  if "null_model" in traj.analyses[-1].layers.columns else None):
            if p is not None:
                figures.append(p)
    written += figures
    return _finish(out, written, lambda files: _trajectory_html(traj, figures, files), traj.summary())
