"""Analyse every weight layer of a checkpoint into tidy tables.

The pipeline is the one of the package docstring: file -> tensors -> layers -> canonical matrix ->
metrics -> :class:`pandas.DataFrame`. Layers are loaded one at a time, so memory stays near the
largest layer. Nothing here prints, plots or writes files; :mod:`netinit.report` and the command
line do that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from netinit._rng import layer_generator
from netinit.formats import Checkpoint, load_checkpoint
from netinit.layers import Layer, find_layers

__all__ = ["Analysis", "analyze"]

_CHAIN_KINDS = ("linear", "attention")


@dataclass
class Analysis:
    """Tables describing one checkpoint.

    Attributes
    ----------
    layers : DataFrame
        One row per layer (:func:`netinit.metrics.layer_summary` columns).
    neurons : DataFrame
        One row per neuron and side (:func:`netinit.metrics.neuron_table` columns).
    skipped : DataFrame
        Every tensor not analysed: ``name, shape, dtype, reason``.
    chains : DataFrame
        For consecutive linear layers ``a -> b`` whose sizes chain: the Pearson correlation
        between a neuron's in-strength in ``a`` and its out-strength in ``b`` (NaN, shown empty
        in CSV files, where a strength vector is constant and the correlation undefined).
    """

    checkpoint: str
    format: str
    container: str | None
    layers: pd.DataFrame
    neurons: pd.DataFrame
    skipped: pd.DataFrame
    chains: pd.DataFrame
    options: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: the checkpoint, per-layer key statistics, skipped tensors."""
        cols = [c for c in ("layer", "kind", "shape", "n_out", "n_in", "in_strength_var",
                            "out_strength_var", "corr_in_mean_abs", "corr_out_mean_abs",
                            "act_mean_abs_r", "act_effective_n", "dead_neurons")
                if c in self.layers.columns]
        return {
            "checkpoint": self.checkpoint,
            "format": self.format,
            "container": self.container,
            "n_layers": int(len(self.layers)),
            "n_skipped": int(len(self.skipped)),
            "skipped_by_reason": {str(k): int(v) for k, v in self.skipped["reason"].value_counts().items()}
            if len(self.skipped) else {},
            "layers": _records(self.layers[cols]),
            "chains": _records(self.chains),
            "options": self.options,
        }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()})
    return out


def analyze(
    source: Checkpoint | os.PathLike | str,
    *,
    layers: str | None = None,
    embeddings: bool = False,
    centrality: str | None = None,
    k: int = 64,
    seed: int = 0,
    data: Any = None,
    activation: str = "relu",
    progress: Callable[[Iterable[Layer]], Iterable[Layer]] | None = None,
) -> Analysis:
    """Per-layer and per-neuron statistics of every weight layer of a checkpoint.

    Parameters
    ----------
    source : Checkpoint or path
        An open checkpoint or the path of one (any registered format).
    layers : str, optional
        Regular expression selecting layers by tensor name.
    embeddings : bool, default False
        Analyse embedding matrices too.
    centrality : {None, "auto", "exact", "sampled"}
        Add betweenness, closeness, eigenvector and PageRank centralities to the neuron table
        (sampled with ``k`` source nodes for large layers under ``"auto"``).
    k : int, default 64
        Sources of the sampled path-based centralities.
    seed : int, default 0
        Seed of the sampled centralities; each layer's stream derives from it and its name.
    data : array of shape (n_samples, n_features), optional
        A batch of inputs: adds the activation-space diversity of each layer (``act_*`` and
        ``dead_neurons`` columns) for checkpoints that store an MLP (a chain of linear layers;
        see :func:`netinit.diversity.checkpoint.checkpoint_activation_diversity`).
    activation : {"relu", "tanh", "sigmoid", "gelu"}
        The nonlinearity between the MLP's layers when ``data`` is given.
    progress : callable, optional
        Wraps the iteration over layers (e.g. ``tqdm``).

    Returns
    -------
    Analysis

    Raises
    ------
    NoLayersError, ShapeError, NonFiniteError, FormatError
        No layer to analyse, a bad selection, NaN/inf weights, an unreadable file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(p, fc1=np.eye(3, dtype=np.float32), fc2=np.ones((2, 3), dtype=np.float32))
    >>> result = analyze(p)
    >>> result.layers[["layer", "n_out", "n_in", "in_strength_mean"]].values.tolist()
    [['fc1', 3, 3, 1.0], ['fc2', 2, 3, 3.0]]
    """
    from netinit.metrics import chain_strength_correlation, layer_summary, neuron_table

    if centrality not in (None, "auto", "exact", "sampled"):
        raise ValueError(f"centrality must be None, 'auto', 'exact' or 'sampled', got {centrality!r}")
    ckpt = source if isinstance(source, Checkpoint) else load_checkpoint(source)
    found, skipped = find_layers(ckpt, layers=layers, embeddings=embeddings)
    rows: list[dict[str, Any]] = []
    neurons: list[pd.DataFrame] = []
    chains: list[dict[str, Any]] = []
    prev: tuple[Layer, np.ndarray] | None = None
    iterator = progress(found) if progress is not None else found
    for layer in iterator:
        W = layer.matrix()
        row = {"layer": layer.name, "kind": layer.kind, "dtype": layer.dtype}
        summary = layer_summary(W, layer=layer.name, kind=layer.kind, shape=layer.shape)
        row.update(summary)
        row["dtype"] = layer.dtype
        rows.append(row)
        nt = neuron_table(W, layer=layer.name, centrality=centrality, k=k,
                          rng=layer_generator(seed, layer.name) if centrality else None)
        neurons.append(nt)
        if layer.kind in _CHAIN_KINDS:
            if prev is not None and prev[0].n_out == layer.n_in:
                chains.append({"layer_a": prev[0].name, "layer_b": layer.name, "n_neurons": layer.n_in,
                               "strength_correlation": chain_strength_correlation(prev[1], W)})
            prev = (layer, W)
        else:
            prev = None
    layers_df = pd.DataFrame(rows)
    if data is not None:
        from netinit.diversity.checkpoint import checkpoint_activation_diversity

        act = checkpoint_activation_diversity(ckpt, data, layers=layers, activation=activation)
        layers_df = layers_df.merge(act, on="layer", how="left")
    first = ["layer", "kind", "shape", "dtype"]
    layers_df = layers_df[first + [c for c in layers_df.columns if c not in first]]
    return Analysis(
        checkpoint=str(ckpt.path),
        format=ckpt.format,
        container=ckpt.container,
        layers=layers_df,
        neurons=pd.concat(neurons, ignore_index=True),
        skipped=pd.DataFrame(
            [{"name": s.name, "shape": "x".join(map(str, s.shape)) or "scalar", "dtype": s.dtype,
              "reason": s.reason} for s in skipped],
            columns=["name", "shape", "dtype", "reason"]),
        chains=pd.DataFrame(chains, columns=["layer_a", "layer_b", "n_neurons", "strength_correlation"]),
        options={"layers": layers, "embeddings": embeddings, "centrality": centrality, "k": k, "seed": seed,
                 "data": None if data is None else f"{len(data)} samples", "activation": activation},
    )
