"""Analyse every weight layer of a checkpoint into tidy tables.

The pipeline is the one of the package docstring: file -> tensors -> layers -> canonical matrix ->
metrics -> :class:`pandas.DataFrame`. Layers are loaded one at a time, so memory stays near the
largest layer. Nothing here prints, plots or writes files; :mod:`netinit.report` and the command
line do that.

:func:`analyze` is three steps, public so that another engine can run the middle one elsewhere
(``netinit.parallel`` runs it as one Dask task per layer) and get the same tables:
:func:`plan_analysis` (check the options, open the checkpoint, list the layers),
:func:`analyze_layer` (one layer's row, neuron table and strengths) and
:func:`assemble_analysis` (the tables, in file order, and the chain correlations).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from netinit._rng import layer_generator
from netinit.formats import Checkpoint, load_checkpoint
from netinit.layers import Layer, LayerSelection, find_layers

__all__ = ["Analysis", "analyze", "LayerResult", "plan_analysis", "analyze_layer", "assemble_analysis"]

_CHAIN_KINDS = ("linear", "attention")
_CENTRALITY = (None, "auto", "exact", "sampled")
#: ``centrality=`` of :func:`analyze`
Centrality = Literal[None, "auto", "exact", "sampled"]


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
        cols = [c for c in ("layer", "kind", "block", "role", "expert", "shape", "n_out", "n_in", "in_strength_var",
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
        out.append({k: None if v is pd.NA else v.item() if isinstance(v, np.generic) else v for k, v in rec.items()})
    return out


def analyze(
    source: Checkpoint | os.PathLike | str,
    *,
    layers: LayerSelection = None,
    embeddings: bool = False,
    centrality: Centrality = None,
    k: int = 64,
    seed: int = 0,
    data: ArrayLike | None = None,
    activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu",
    progress: Callable[[Iterable[Layer]], Iterable[Layer]] | None = None,
) -> Analysis:
    """Per-layer and per-neuron statistics of every weight layer of a checkpoint.

    The work is :func:`plan_analysis` (open, find the layers), :func:`analyze_layer` on each
    layer in turn, and :func:`assemble_analysis`; ``netinit.parallel.analyze_parallel`` runs the
    same three steps with the layers spread over Dask workers, and gets the same tables.

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
    ckpt, found, skipped = plan_analysis(source, layers=layers, embeddings=embeddings, centrality=centrality)
    iterator = progress(found) if progress is not None else found
    parts = [analyze_layer(layer, centrality=centrality, k=k, seed=seed) for layer in iterator]
    act = None
    if data is not None:
        from netinit.diversity.checkpoint import checkpoint_activation_diversity

        act = checkpoint_activation_diversity(ckpt, data, layers=layers, activation=activation)
    return assemble_analysis(
        ckpt, parts, skipped, activations=act,
        options={"layers": layers, "embeddings": embeddings, "centrality": centrality, "k": k, "seed": seed,
                 "data": None if data is None else f"{len(data)} samples", "activation": activation})


# ----------------------------------------------------------------------------- the three steps
@dataclass(frozen=True)
class LayerResult:
    """What one layer contributes to an :class:`Analysis` (:func:`analyze_layer`).

    Small and picklable (no weights), so it can come back from another process.

    Attributes
    ----------
    name, kind : str
        The layer's tensor name and kind (:class:`netinit.layers.Layer`).
    n_out, n_in : int
        Its canonical matrix shape.
    row : dict
        Its row of :attr:`Analysis.layers`.
    neurons : DataFrame
        Its rows of :attr:`Analysis.neurons`.
    in_strength : ndarray of shape (n_out,), float64, or None
        Row sums of ``W`` (chainable kinds only): with the next layer's ``out_strength`` this is
        all that the chain correlation needs.
    out_strength : ndarray of shape (n_in,), float64, or None
        Column sums of ``W`` (chainable kinds only).
    """

    name: str
    kind: str
    n_out: int
    n_in: int
    row: dict[str, Any]
    neurons: pd.DataFrame
    in_strength: np.ndarray | None = None
    out_strength: np.ndarray | None = None


def plan_analysis(
    source: Checkpoint | os.PathLike | str,
    *,
    layers: str | None = None,
    embeddings: bool = False,
    centrality: str | None = None,
) -> tuple[Checkpoint, list[Layer], list[Any]]:
    """Check the options, open the checkpoint (lazily) and list its layers and skipped tensors.

    Returns
    -------
    ckpt : Checkpoint
    found : list of Layer
        In the order of the model (:func:`netinit.layers.find_layers`): the order of the rows
        of every table.
    skipped : list of Skipped

    Raises
    ------
    TypeError
        ``source`` is neither a path nor a :class:`~netinit.formats.Checkpoint` (a model or a
        state dict in memory: save it first).
    ValueError
        ``centrality`` is not one of None, "auto", "exact", "sampled".
    NoLayersError, ShapeError, FormatError
        As :func:`netinit.layers.find_layers` and :func:`netinit.formats.load_checkpoint`.
    """
    if centrality not in _CENTRALITY:
        raise ValueError(f"centrality must be None, 'auto', 'exact' or 'sampled', got {centrality!r}")
    if not isinstance(source, (Checkpoint, str, os.PathLike)):
        in_memory = isinstance(source, dict) or hasattr(source, "state_dict")
        raise TypeError(f"source must be a checkpoint path or a netinit Checkpoint; got {type(source).__name__}"
                        + ("; save the weights first (torch.save(model.state_dict(), 'model.pt')) and pass "
                           "the file" if in_memory else ""))
    ckpt = source if isinstance(source, Checkpoint) else load_checkpoint(source)
    found, skipped = find_layers(ckpt, layers=layers, embeddings=embeddings)
    return ckpt, found, skipped


def analyze_layer(layer: Layer, *, centrality: Centrality = None, k: int = 64, seed: int = 0) -> LayerResult:
    """Summary row and neuron table of one layer (loaded from its checkpoint).

    The sampled centralities draw from :func:`netinit._rng.layer_generator` ``(seed, layer.name)``,
    so the result does not depend on which other layers are analysed, nor where.

    Raises
    ------
    ValueError
        A bad ``centrality``.
    NonFiniteError, ShapeError
        NaN/inf weights, a tensor that does not match the layer.
    """
    from netinit.metrics import in_strength, layer_summary, neuron_table, out_strength

    if centrality not in _CENTRALITY:
        raise ValueError(f"centrality must be None, 'auto', 'exact' or 'sampled', got {centrality!r}")
    W = layer.matrix()
    place = {"block": layer.block, "role": layer.role, "expert": layer.expert}
    row = {"layer": layer.name, "kind": layer.kind, **place, "dtype": layer.dtype}
    row.update(layer_summary(W, layer=layer.name, kind=layer.kind, shape=layer.shape))
    row["dtype"] = layer.dtype
    nt = neuron_table(W, layer=layer.name, centrality=centrality, k=k,
                      rng=layer_generator(seed, layer.name) if centrality else None)
    for i, (col, value) in enumerate(place.items(), start=1):
        nt.insert(i, col, pd.array([value] * len(nt), dtype="Int64" if col != "role" else "string"))
    chain = layer.kind in _CHAIN_KINDS
    return LayerResult(layer.name, layer.kind, layer.n_out, layer.n_in, row, nt,
                       in_strength(W) if chain else None, out_strength(W) if chain else None)


def _chain_correlation(a: LayerResult, b: LayerResult) -> float:
    """:func:`~netinit.metrics.chain_strength_correlation` of ``a -> b`` from their strengths.

    That function needs only the row sums of ``W_a`` and the column sums of ``W_b``; a one-column
    matrix of the former and a one-row matrix of the latter have exactly those sums, so this is
    the value of the full matrices, bit for bit, while no layer's weights are kept.
    """
    from netinit.metrics import chain_strength_correlation

    return chain_strength_correlation(a.in_strength[:, None], b.out_strength[None, :])


def assemble_analysis(
    ckpt: Checkpoint,
    parts: Iterable[LayerResult],
    skipped: Iterable[Any],
    *,
    activations: pd.DataFrame | None = None,
    options: dict[str, Any] | None = None,
) -> Analysis:
    """The :class:`Analysis` of ``ckpt`` from its layers' results, in the order given.

    Parameters
    ----------
    ckpt : Checkpoint
        Names the checkpoint, its format and container.
    parts : iterable of LayerResult
        One per layer, in file order (:func:`plan_analysis`).
    skipped : iterable of Skipped
        The tensors left out.
    activations : DataFrame, optional
        Activation-diversity columns by ``layer``, merged into the layer table.
    options : dict, optional
        Recorded as :attr:`Analysis.options`.
    """
    parts = list(parts)
    chains: list[dict[str, Any]] = []
    prev: LayerResult | None = None
    for part in parts:
        if part.kind in _CHAIN_KINDS:
            if prev is not None and prev.n_out == part.n_in:
                chains.append({"layer_a": prev.name, "layer_b": part.name, "n_neurons": part.n_in,
                               "strength_correlation": _chain_correlation(prev, part)})
            prev = part
        else:
            prev = None
    layers_df = pd.DataFrame([p.row for p in parts])
    if activations is not None:
        layers_df = layers_df.merge(activations, on="layer", how="left")
    first = ["layer", "kind", "block", "role", "expert", "shape", "dtype"]
    layers_df = layers_df[first + [c for c in layers_df.columns if c not in first]]
    layers_df = layers_df.astype({"block": "Int64", "expert": "Int64"})
    return Analysis(
        checkpoint=str(ckpt.path),
        format=ckpt.format,
        container=ckpt.container,
        layers=layers_df,
        neurons=pd.concat([p.neurons for p in parts], ignore_index=True),
        skipped=pd.DataFrame(
            [{"name": s.name, "shape": "x".join(map(str, s.shape)) or "scalar", "dtype": s.dtype,
              "reason": s.reason} for s in skipped],
            columns=["name", "shape", "dtype", "reason"]),
        chains=pd.DataFrame(chains, columns=["layer_a", "layer_b", "n_neurons", "strength_correlation"]),
        options=dict(options or {}),
    )
