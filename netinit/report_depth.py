"""Figures of a model's layers over depth: each metric by block and role, and the spread over experts.

For models with numbered blocks (:mod:`netinit.naming`) a per-layer figure of 150 or 3,000 layers
reads as noise; these figures summarise the same table by place instead:

* ``depth_by_role.png``: for each key metric, a block x role heatmap (the mean over a block's
  experts where a role has several) beside its lines over depth, one line per role;
* ``experts.png``: for mixture-of-experts models, each metric's median over the experts of a
  block and role, with the band from the lowest to the highest expert.

Both stay readable with 100+ blocks (tick labels thinned) and 100+ experts (a band, not a box
per expert). They are drawn with matplotlib alone (imported inside the functions): the heatmaps
are :func:`heatmap`, whose figure is drawn once, when it is saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

__all__ = ["DEPTH_METRICS", "PER_LAYER_MAX", "has_depth", "has_experts", "depth_figures", "heatmap"]

#: layer columns drawn over depth (those present in the table)
DEPTH_METRICS = ("in_strength_var", "out_strength_var", "corr_in_mean_abs", "weight_std")
#: above this many layers, per-layer figures give way to the figures over depth
PER_LAYER_MAX = 60


def has_depth(layers: pd.DataFrame) -> bool:
    """Whether the layers sit in at least two numbered blocks with known roles."""
    return ("block" in layers.columns and "role" in layers.columns
            and layers["block"].dropna().nunique() >= 2 and layers["role"].notna().any())


def has_experts(layers: pd.DataFrame) -> bool:
    """Whether some layer is one expert of a mixture-of-experts block."""
    return "expert" in layers.columns and layers["expert"].notna().any()


def _by_place(layers: pd.DataFrame, metric: str) -> pd.DataFrame:
    df = layers[["block", "role", metric]].dropna(subset=["block", "role"]).copy()
    df["block"] = df["block"].astype(int)
    df[metric] = pd.to_numeric(df[metric], errors="coerce")
    return df


def heatmap(ax, values: Any, *, cmap: str, label: str, vmin: float | None = None, vmax: float | None = None,
            yticklabels: list[str] | None = None, square: bool = False) -> Any:
    """Cells of ``values`` (rows top to bottom, NaN left blank) on ``ax`` with a colour bar labelled
    ``label``; the row labels at the cells' centres, no column labels (the caller sets them).

    A matplotlib ``pcolormesh``: the look of seaborn's heatmap without its extra drawing of the
    whole figure to place the labels (four heatmaps drew a 4 x 2 figure four times).
    """
    data = np.ma.masked_invalid(np.asarray(values, dtype=float))
    mesh = ax.pcolormesh(data, cmap=cmap, vmin=vmin, vmax=vmax)
    n_rows, n_cols = data.shape
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, 0)
    ax.grid(False)
    ax.set_xticks([])
    if yticklabels is None:
        ax.set_yticks([])
    else:
        ax.set_yticks(np.arange(n_rows) + 0.5, yticklabels)
    if square:
        ax.set_aspect("equal")
    for spine in ax.spines.values():
        spine.set_visible(False)
    bar = ax.figure.colorbar(mesh, ax=ax, shrink=0.8)
    bar.set_label(label)
    bar.outline.set_visible(False)
    return mesh


def _thin_ticks(ax, blocks: list[int], axis: str = "x") -> None:
    step = max(1, int(np.ceil(len(blocks) / 24)))
    ticks = list(range(0, len(blocks), step))
    labels = [str(blocks[i]) for i in ticks]
    if axis == "x":
        ax.set_xticks([t + 0.5 for t in ticks], labels, rotation=0)
    else:
        ax.set_yticks([t + 0.5 for t in ticks], labels)


def depth_figures(layers: pd.DataFrame, out: Path, save_figure: Callable[[Any, Path], None]) -> list[Path]:
    """Write ``depth_by_role.png`` (and ``experts.png`` for MoE models) into ``out`` with
    ``save_figure(fig, path)``; the paths written."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written: list[Path] = []
    metrics = [m for m in DEPTH_METRICS if m in layers.columns]
    if not has_depth(layers) or not metrics:
        return written
    from netinit.naming import ROLES

    fig, axes = plt.subplots(len(metrics), 2, figsize=(15, 3.2 * len(metrics)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.15, 1]})
    for (ax_h, ax_l), metric in zip(axes, metrics):
        df = _by_place(layers, metric)
        grid = df.groupby(["role", "block"])[metric].mean().unstack("block")
        grid = grid.reindex(sorted(grid.index, key=lambda r: ROLES.index(r) if r in ROLES else len(ROLES)))
        blocks = [int(b) for b in grid.columns]
        heatmap(ax_h, grid.to_numpy(dtype=float), cmap="viridis", label=metric,
                yticklabels=[str(r) for r in grid.index])
        _thin_ticks(ax_h, blocks)
        ax_h.set_xlabel("block")
        ax_h.set_ylabel("")
        ax_h.set_title(f"{metric}: block x role (mean over experts)", fontsize=10)
        for role, row in grid.iterrows():
            ax_l.plot(blocks, row.to_numpy(dtype=float), marker="." if len(blocks) <= 48 else None, lw=1.2,
                      label=str(role))
        ax_l.set_xlabel("block")
        ax_l.set_title(f"{metric} over depth", fontsize=10)
        if (grid.to_numpy(dtype=float) > 0).all() and metric.endswith("_var"):
            ax_l.set_yscale("log")
        ax_l.legend(fontsize=7, ncol=2, frameon=True)
        ax_l.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.subplots_adjust(hspace=0.5)
    p = out / "depth_by_role.png"
    save_figure(fig, p)
    written.append(p)

    if has_experts(layers):
        moe = layers[layers["expert"].notna()]
        fig, axes = plt.subplots(len(metrics), 1, figsize=(12, 3.0 * len(metrics)), squeeze=False)
        for ax, metric in zip(axes[:, 0], metrics):
            df = _by_place(moe, metric)
            stats = df.groupby(["role", "block"])[metric].agg(["median", "min", "max", "count"]).reset_index()
            for role, part in stats.groupby("role"):
                ax.plot(part["block"], part["median"], lw=1.2, label=f"{role} (median of {int(part['count'].max())})")
                ax.fill_between(part["block"], part["min"], part["max"], alpha=0.2)
            ax.set_xlabel("block")
            ax.set_title(f"{metric} over the experts of each block: median, lowest to highest", fontsize=10)
            if metric.endswith("_var") and (stats["min"] > 0).all():
                ax.set_yscale("log")
            ax.legend(fontsize=7, frameon=True)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.subplots_adjust(hspace=0.5)
        p = out / "experts.png"
        save_figure(fig, p)
        written.append(p)
    return written
