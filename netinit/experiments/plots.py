"""Figures of an experiment (seaborn), each a function of tidy tables returning a matplotlib Figure.

The figures are built on :class:`matplotlib.figure.Figure` directly, never through pyplot, so
nothing here changes the global backend or leaks open figures; :func:`show` displays one in a
notebook, ``fig.savefig(path)`` writes it.

* :func:`learning_curves`: a metric per epoch, mean over seeds with a 95% bootstrap band, per
  method;
* :func:`improvement_per_epoch`: the paired relative improvement over the baseline per epoch with
  its confidence band (table of :func:`netinit.experiments.stats.relative_improvement`);
* :func:`critical_difference`: the critical-difference diagram of a Friedman/Nemenyi analysis
  (:func:`scikit_posthocs.critical_difference_diagram`);
* :func:`strength_vs_accuracy`: a layer statistic at initialisation (strength variance) against
  the final accuracy, one point per run;
* :func:`measure_curves`: a per-layer measure (activation diversity, ...) per epoch;
* :func:`structure_shift`: layer statistics of random and trained weights, per method.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

__all__ = [
    "learning_curves",
    "improvement_per_epoch",
    "critical_difference",
    "strength_vs_accuracy",
    "measure_curves",
    "structure_shift",
    "show",
]

_LABELS = {"test_acc": "test accuracy", "train_acc": "training accuracy", "test_loss": "test loss",
           "train_loss": "training loss", "in_strength_var": "in-strength variance at init",
           "out_strength_var": "out-strength variance at init", "act_mean_abs_r": "mean |r| of activations",
           "corr_in_mean_abs": "mean |r| of incoming weights"}


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " "))


def _figure(ncols: int = 1, width: float = 6.4, height: float = 4.0) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=110, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _palette(order: Sequence[str]) -> dict[str, Any]:
    import seaborn as sns

    return dict(zip(order, sns.color_palette("tab10" if len(order) <= 10 else "husl", len(order))))


def learning_curves(epochs: pd.DataFrame, *, metrics: Sequence[str] = ("test_acc", "train_loss"),
                    order: Sequence[str] | None = None) -> Any:
    """Mean of each metric per epoch and method over seeds, with a 95% bootstrap CI band.

    Parameters
    ----------
    epochs : DataFrame
        One row per (method, seed, epoch) with the metric columns.
    metrics : sequence of str
        One panel each.
    order : sequence of str, optional
        Methods in legend order (default: sorted).
    """
    import seaborn as sns

    order = list(order) if order is not None else sorted(epochs["method"].unique())
    fig, axes = _figure(len(metrics))
    for ax, m in zip(axes, metrics):
        sns.lineplot(data=epochs, x="epoch", y=m, hue="method", hue_order=order, palette=_palette(order),
                     errorbar=("ci", 95), n_boot=1000, seed=0, ax=ax, marker="o", markersize=3)
        ax.set_ylabel(_label(m))
        _integer_x(ax)
        ax.set_title(f"{_label(m)} per epoch (mean, 95% CI over seeds)", fontsize=9)
        if ax is not axes[-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title=None)
    return fig


def improvement_per_epoch(rel: pd.DataFrame, *, baseline: str, metric: str = "test_acc",
                          order: Sequence[str] | None = None) -> Any:
    """Relative improvement over ``baseline`` per epoch (percent), with its bootstrap CI band.

    ``rel`` is the table of :func:`netinit.experiments.stats.relative_improvement` (``epoch, method,
    rel_improvement, ci_low, ci_high``).
    """
    order = list(order) if order is not None else sorted(rel["method"].unique())
    pal = _palette(order)
    fig, (ax,) = _figure()
    for m in order:
        part = rel[rel["method"] == m].sort_values("epoch")
        if part.empty:
            continue
        ax.plot(part["epoch"], 100 * part["rel_improvement"], marker="o", markersize=3, color=pal[m], label=m)
        ax.fill_between(part["epoch"], 100 * part["ci_low"], 100 * part["ci_high"], color=pal[m], alpha=0.15)
    ax.axhline(0.0, color="0.3", lw=0.8, ls="--")
    ax.set_xlabel("epoch")
    _integer_x(ax)
    ax.set_ylabel(f"relative improvement of {_label(metric)} (%)")
    ax.set_title(f"paired improvement over {baseline} (mean over seeds, 95% bootstrap CI)", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return fig


def critical_difference(ranks: pd.Series, nemenyi: pd.DataFrame, *, cd: float, alpha: float = 0.05,
                        order: Sequence[str] | None = None, title: str = "") -> Any:
    """Critical-difference diagram: average ranks (1 = best) joined where Nemenyi finds no difference."""
    import scikit_posthocs as sp

    order = list(order) if order is not None else sorted(ranks.index)
    # labels ("name (rank)") sit left and right of the rank axis: room for the longest keeps the axis wide
    longest = max(len(str(m)) for m in ranks.index) + 6
    fig, (ax,) = _figure(width=max(7.0, 3.5 + 2 * 0.085 * longest), height=0.6 + 0.3 * len(ranks))
    sp.critical_difference_diagram(ranks, nemenyi, ax=ax, alpha=alpha, color_palette=_palette(order))
    ax.set_title(title or f"average ranks (1 = best); bars join methods Nemenyi cannot separate "
                          f"at alpha = {alpha} (CD = {cd:.2f})", fontsize=9)
    return fig


def strength_vs_accuracy(points: pd.DataFrame, *, x: str = "in_strength_var", y: str = "test_acc",
                         order: Sequence[str] | None = None, max_layers: int = 4) -> Any:
    """One point per run: a layer statistic at initialisation against the final metric, per layer.

    ``points`` has columns ``method, seed, layer, <x>, <y>``.
    """
    import seaborn as sns

    order = list(order) if order is not None else sorted(points["method"].unique())
    layers = list(dict.fromkeys(points["layer"]))[:max_layers]
    fig, axes = _figure(len(layers), width=4.2, height=3.8)
    for ax, layer in zip(axes, layers):
        part = points[points["layer"] == layer]
        sns.scatterplot(data=part, x=x, y=y, hue="method", hue_order=order, palette=_palette(order),
                        ax=ax, s=18, alpha=0.8)
        if (part[x] > 0).all() and part[x].max() / max(part[x].min(), 1e-300) > 20:
            ax.set_xscale("log")
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xlabel(_label(x))
        ax.set_ylabel(f"final {_label(y)}")
        if ax is not axes[-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title=None)
    return fig


def measure_curves(layers: pd.DataFrame, *, measure: str = "act_mean_abs_r", layer: str | None = None,
                   order: Sequence[str] | None = None) -> Any:
    """A per-layer measure per epoch and method (mean over seeds, 95% CI), for one layer.

    ``layers`` has columns ``method, seed, epoch, layer`` and ``measure``; ``layer`` defaults to
    the first layer that has the measure.
    """
    import seaborn as sns

    part = layers.dropna(subset=[measure])
    layer = layer if layer is not None else str(part["layer"].iloc[0])
    part = part[part["layer"] == layer]
    order = list(order) if order is not None else sorted(part["method"].unique())
    fig, (ax,) = _figure()
    sns.lineplot(data=part, x="epoch", y=measure, hue="method", hue_order=order, palette=_palette(order),
                 errorbar=("ci", 95), n_boot=1000, seed=0, ax=ax, marker="o", markersize=3)
    ax.set_ylabel(_label(measure))
    _integer_x(ax)
    ax.set_title(f"{_label(measure)} of layer {layer} per epoch (mean, 95% CI over seeds)", fontsize=9)
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title=None)
    return fig


def structure_shift(change: pd.DataFrame, *, measures: Sequence[str] = ("in_strength_var", "corr_in_mean_abs"),
                    order: Sequence[str] | None = None) -> Any:
    """Per layer, the mean over seeds (95% CI) of each measure for random and trained weights.

    ``change`` is the table of :func:`netinit.experiments.structure.structure_change` (``method, seed, layer,
    measure, random, trained``).
    """
    import seaborn as sns

    long = change[change["measure"].isin(measures)].melt(
        id_vars=["method", "seed", "layer", "measure"], value_vars=["random", "trained"], var_name="weights")
    long["condition"] = long["method"] + ", " + long["weights"]
    methods = list(order) if order is not None else sorted(long["method"].unique())
    hue_order = [f"{m}, {w}" for w in ("random", "trained") for m in methods]
    fig, axes = _figure(len(measures), width=4.6, height=3.8)
    for ax, m in zip(axes, measures):
        sns.pointplot(data=long[long["measure"] == m], x="layer", y="value", hue="condition", hue_order=hue_order,
                      palette=_palette(hue_order), errorbar=("ci", 95), n_boot=1000, seed=0, dodge=0.4,
                      linestyle="none", markersize=4, ax=ax)
        ax.set_ylabel(m.replace("_", " "))
        ax.set_title(_label(m).replace(" at init", ""), fontsize=9)
        if ax is not axes[-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title=None)
    return fig


def show(fig: Any) -> None:
    """Display a figure in a notebook (as PNG), without pyplot."""
    import io

    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    display(Image(data=buf.getvalue()))


def _integer_x(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
