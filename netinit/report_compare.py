"""Files, figures and the HTML report of a checkpoint comparison (:func:`netinit.compare_checkpoints`).

:func:`write_comparison` writes ``layers.csv``, ``neurons.csv``, ``unmatched.csv``,
``summary.json``, ``change_by_layer.png``, ``strength_scatter.png`` and ``report.html``.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from netinit._io import prepare_output_dir
from netinit.compare import Comparison
from netinit.report import REPORT_CSS, save_figure, short_label, table_html, write_table, write_text_file

__all__ = ["write_comparison", "COMPARE_FILES"]

COMPARE_FILES = ("layers.csv", "neurons.csv", "unmatched.csv", "summary.json", "change_by_layer.png",
                 "strength_scatter.png", "report.html")
_MAX_PANELS = 12


def _figures(c: Comparison, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    L = c.layers
    labels = short_label(list(L["layer"]))
    fig, axes = plt.subplots(1, 2, figsize=(max(10.0, 1.1 * len(L) + 6), 4.2), layout="constrained")
    sns.barplot(x=labels, y=L["rel_change"], color="#4C72B0", ax=axes[0])
    axes[0].set_title("Relative change of the weights ||B-A|| / ||A||")
    axes[0].set_ylabel("relative change")
    long = {"layer": labels * 2, "checkpoint": ["A"] * len(L) + ["B"] * len(L),
            "in-strength variance": list(L["in_strength_var_a"]) + list(L["in_strength_var_b"])}
    sns.barplot(data=long, x="layer", y="in-strength variance", hue="checkpoint",
                palette=["#8C8C8C", "#DD8452"], ax=axes[1])
    if (np.asarray(long["in-strength variance"]) > 0).all():
        axes[1].set_yscale("log")
    axes[1].set_title("In-strength variance, A vs B")
    for ax in axes:
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=45)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
    p1 = out / "change_by_layer.png"
    save_figure(fig, p1)

    shown = list(L["layer"])[:_MAX_PANELS]
    cols = min(4, len(shown))
    rows = int(np.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    N = c.neurons[c.neurons["side"] == "out"]
    for ax, name, label in zip(axes.flat, shown, short_label(shown, 22)):
        d = N[N["layer"] == name]
        ax.scatter(d["strength_a"], d["strength_b"], s=8, alpha=0.6, color="#4C72B0", edgecolor="none")
        lo = float(min(d["strength_a"].min(), d["strength_b"].min()))
        hi = float(max(d["strength_a"].max(), d["strength_b"].max()))
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
        r = float(L.loc[L["layer"] == name, "in_strength_corr"].iloc[0])
        ax.set_title(f"{label}\nr = {r:.2f}", fontsize=9)
        ax.set_xlabel("in-strength in A", fontsize=8)
        ax.set_ylabel("in-strength in B", fontsize=8)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.suptitle("Output neurons' in-strength: A against B", y=1.02)
    fig.tight_layout()
    p2 = out / "strength_scatter.png"
    save_figure(fig, p2)
    return [p1, p2]


def write_comparison(c: Comparison, out_dir: os.PathLike | str, *, plots: bool = True,
                     overwrite: bool = False) -> list[Path]:
    """Write the tables, figures and ``report.html`` of a comparison into ``out_dir``.

    Raises
    ------
    OutputError
        The folder holds files other than earlier comparison outputs (unless ``overwrite``).
    """
    out = prepare_output_dir(out_dir, owned=COMPARE_FILES, overwrite=overwrite)
    written = []
    for name, df in (("layers.csv", c.layers), ("neurons.csv", c.neurons), ("unmatched.csv", c.unmatched)):
        write_table(df, out / name)
        written.append(out / name)
    write_text_file(out / "summary.json", json.dumps(c.summary(), indent=2, default=str))
    written.append(out / "summary.json")
    figures = _figures(c, out) if plots else []
    written += figures
    e = html.escape
    L = c.layers
    most = L.sort_values("rel_change", ascending=False).iloc[0]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>netinit comparison</title>",
        f"<style>{REPORT_CSS}</style></head><body><h1>netinit comparison</h1>",
        f"<p class='meta'>A = {e(c.a)}<br>B = {e(c.b)}</p>",
        f"<p>{len(L)} shared layers. The largest relative change is in <b>{e(str(most['layer']))}</b> "
        f"({most['rel_change']:.3g}); the mean correlation of output neurons' in-strength between A and B "
        f"is {L['in_strength_corr'].mean():.3f}.</p>",
        "<h2>Layers</h2>" + table_html(L),
    ]
    for p, title in zip(figures, ("Change by layer", "Neuron strength, A against B")):
        parts.append(f"<h2>{title}</h2><img src='{p.name}' alt='{title}'>")
    if len(c.unmatched):
        parts.append(f"<h2>Unmatched layers ({len(c.unmatched)})</h2>" + table_html(c.unmatched))
    parts.append("<h2>Files</h2><ul>" + "".join(f"<li><a href='{e(p.name)}'>{e(p.name)}</a></li>"
                                                for p in written) + "</ul></body></html>")
    write_text_file(out / "report.html", "\n".join(parts))
    written.append(out / "report.html")
    return written
