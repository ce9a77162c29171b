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

Two options add columns. ``null=K`` judges the layer statistics against ``K`` shuffled copies
of the same weights (:func:`netinit.metrics.null_summary`: ``<stat>_null_mean``,
``<stat>_null_sd``, ``<stat>_z``) and the chain correlations against the same copies
(:func:`netinit.metrics.null_chain_correlation`). ``network=True`` adds the measures of
:func:`netinit.metrics.network_measures` on ``|w|``; neural persistence is normalised by the
largest ``|w|`` over the analysed layers (:func:`largest_abs_weight`, a first pass over the
layers), and clustering, harmonic and current-flow closeness are skipped, with the reason in
``network_skipped``, on layers with more than :data:`NETWORK_MAX_SIDE` neurons on a side, and
Leiden and subgraph centrality on layers of more than :data:`NETWORK_MAX_WEIGHTS` weights.

Randomness: each layer's draws come from ``layer_generator(seed, name)``; the sampled
centralities draw from it directly (as before), while the null model and Leiden use its two
spawned children (``.spawn(2)``: shuffles, then Leiden), so no sub-step reuses a stream and no
layer's result depends on the other layers or on which options are on.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from netinit._rng import layer_generator
from netinit.formats import Checkpoint, load_checkpoint
from netinit.layers import Coverage, Layer, LayerSelection, find_layers
from netinit.validation import checked

__all__ = ["Analysis", "analyze", "LayerResult", "plan_analysis", "analyze_layer", "assemble_analysis",
           "largest_abs_weight", "check_null", "recorded_options", "NETWORK_MAX_SIDE", "NETWORK_SLOW",
           "NETWORK_MAX_WEIGHTS", "NETWORK_LARGE", "layer_threads", "map_layers", "MAX_LAYER_THREADS"]

_CHAIN_KINDS = ("linear", "attention")
#: Above this many neurons on a side, ``network=True`` skips the measures of :data:`NETWORK_SLOW`
#: (measured on 2 cores: a 1024x1024 layer takes 7 s for clustering, 22 s for harmonic and
#: 0.8 s for current-flow closeness; they grow as n^3, n^3 log n and (2n)^3).
NETWORK_MAX_SIDE = 2048
#: The network measures skipped on layers wider than :data:`NETWORK_MAX_SIDE`.
NETWORK_SLOW = ("clustering", "harmonic", "current_flow")
#: Above this many weights (a 2048x2048 layer), ``network=True`` skips :data:`NETWORK_LARGE`
#: (measured on 2 loaded cores: Leiden takes 22 s and 0.7 GB on 2048x2048, 270 s and 2.4 GB on
#: 4096x4096; the SVD of subgraph centrality 11 s and 68 s). Neural persistence (12 s on
#: 4096x4096) always runs.
NETWORK_MAX_WEIGHTS = 2048 * 2048
#: The network measures skipped on layers of more than :data:`NETWORK_MAX_WEIGHTS` weights.
NETWORK_LARGE = ("subgraph", "communities")
#: At most this many layers are analysed at once (threads; :func:`layer_threads`).
MAX_LAYER_THREADS = 4
_NULL_MODELS = ("matrix", "rows", "columns")
_CENTRALITY = (None, "auto", "exact", "sampled")
#: ``centrality=`` of :func:`analyze`
Centrality = Literal[None, "auto", "exact", "sampled"]
#: ``correlation=`` of :func:`analyze`
Correlation = Literal["auto", "exact", "sampled"]


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
        in CSV files, where a strength vector is constant and the correlation undefined), the
        strength flow through those neurons (``in_strength_mean`` in ``a``,
        ``out_strength_mean`` in ``b``, and both of ``|w|``: ``in_strength_abs_mean``,
        ``out_strength_abs_mean``) and, with ``null``, ``strength_correlation_null_mean``,
        ``strength_correlation_null_sd`` and ``strength_correlation_z``.
    """

    checkpoint: str
    format: str
    container: str | None
    layers: pd.DataFrame
    neurons: pd.DataFrame
    skipped: pd.DataFrame
    chains: pd.DataFrame
    options: dict[str, Any] = field(default_factory=dict)
    #: what the layers cover (:class:`netinit.layers.Coverage`), said first by every output
    coverage: Coverage | None = None
    #: what the checkpoint says about the model (a folder's config.json, a GGUF header): model type,
    #: blocks, experts, quantization
    model: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: the checkpoint, per-layer key statistics, skipped tensors."""
        cols = [c for c in ("layer", "kind", "block", "role", "expert", "quantization", "shape", "n_out", "n_in",
                            "in_strength_var",
                            "out_strength_var", "corr_in_mean_abs", "corr_out_mean_abs",
                            "act_mean_abs_r", "act_effective_n", "dead_neurons",
                            "in_strength_var_z", "out_strength_var_z", "corr_in_mean_abs_z",
                            "corr_out_mean_abs_z", "neural_persistence_normalized", "modularity")
                if c in self.layers.columns]
        return {
            "coverage": None if self.coverage is None else {"text": self.coverage.text(), **self.coverage.as_dict()},
            "checkpoint": self.checkpoint,
            "format": self.format,
            "container": self.container,
            "model": {k: v for k, v in self.model.items() if k != "quantization_config"},
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
    null: int | None = None,
    null_model: Literal["matrix", "rows", "columns"] = "matrix",
    network: bool = False,
    correlation: Correlation = "auto",
    device: str | None = None,
    progress: Callable[[Iterable[Layer]], Iterable[Layer]] | None = None,
) -> Analysis:
    """Per-layer and per-neuron statistics of every weight layer of a checkpoint.

    The work is :func:`plan_analysis` (open, find the layers), :func:`analyze_layer` on each
    layer, and :func:`assemble_analysis`; ``netinit.parallel.analyze_parallel`` runs the
    same three steps with the layers spread over Dask workers, and gets the same tables. Without
    ``centrality``, ``null``, ``network`` and ``device``, the layers are analysed on
    :func:`layer_threads` threads, a layer each (:func:`map_layers`): the same tables, bit for bit.

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
        Seed of the sampled centralities, the null shuffles and Leiden; each layer's stream derives
        from it and its name (module docstring).
    data : array of shape (n_samples, n_features), optional
        A batch of inputs: adds the activation-space diversity of each layer (``act_*`` and
        ``dead_neurons`` columns) for checkpoints that store an MLP (a chain of linear layers;
        see :func:`netinit.diversity.checkpoint.checkpoint_activation_diversity`).
    activation : {"relu", "tanh", "sigmoid", "gelu"}
        The nonlinearity between the MLP's layers when ``data`` is given.
    null : int, optional
        Shuffled copies (at least 2) of every layer for a null model of its statistics: adds,
        for each statistic ``s`` of :data:`netinit.metrics.SUMMARY_STATS`, the columns
        ``s_null_observed``, ``s_null_mean``, ``s_null_sd`` and ``s_z``, with ``null_model``,
        ``null_shuffles``, ``null_corr_rows``, ``null_corr_cols``
        (:func:`netinit.metrics.null_summary`, correlation sampled on 512 neurons per side), and
        ``strength_correlation_null_mean``, ``_null_sd`` and ``strength_correlation_z`` to the
        chains. Each layer's copies come from its own stream (module docstring).
    null_model : {"matrix", "rows", "columns"}, default "matrix"
        Shuffle all weights, within rows or within columns.
    network : bool, default False
        Add the network measures on ``|w|`` (:func:`netinit.metrics.network_measures`): layer
        columns (``clustering_mean``, ``harmonic_mean``, ``current_flow_closeness_mean``,
        ``subgraph_centrality_log_mean``, ``log_estrada_index``, ``neural_persistence``,
        ``neural_persistence_normalized``, ``persistence_w_max``, ``modularity``,
        ``n_communities``, ...) and neuron columns (``clustering``, ``harmonic``,
        ``current_flow_closeness``, ``subgraph_centrality``, ``subgraph_centrality_log``,
        ``community``). Persistence is normalised by the largest ``|w|`` over the analysed
        layers; layers wider than :data:`NETWORK_MAX_SIDE` on a side skip
        :data:`NETWORK_SLOW`, layers of more than :data:`NETWORK_MAX_WEIGHTS` weights skip
        :data:`NETWORK_LARGE` (``network_skipped`` says so).
    correlation : {"auto", "exact", "sampled"}, default "auto"
        How the neuron-correlation columns are computed (:func:`netinit.metrics.correlation_summary`):
        exactly, or estimated from a seeded sample of neurons with a standard error beside each
        estimate (``*_se`` columns; ``corr_in_method`` and ``corr_out_method`` say which); ``auto`` is exact below
        :data:`netinit.metrics.correlation.EXACT_MAX_NEURONS` neurons on a side (1024). The sample of layer
        ``name`` is drawn from the stream ``(seed, name + ":correlation")``.
    device : str, optional
        ``None`` (default): the numpy metrics. ``"cuda"``, ``"cuda:N"`` or ``"cpu"``: the layer
        summary, the neuron table and the strengths through torch on that device, each layer
        moved there on its own and freed after it. Sums accumulate in float64 on every device; on
        the CPU the tables equal the numpy ones to a relative 1e-9 (tested), on a GPU the
        correlation products of layers above 512 neurons run in float32, within
        :func:`netinit.metrics.correlation.float32_error_bound` of the float64 values (tested to a
        relative 1e-5). The null model and the network measures stay on the CPU.
    progress : callable, optional
        Wraps the iteration over layers (e.g. ``tqdm``).

    Returns
    -------
    Analysis

    Raises
    ------
    ValueError
        A bad ``centrality``, ``null`` or ``null_model``.
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
    check_null(null, null_model)
    ckpt, found, skipped = plan_analysis(source, layers=layers, embeddings=embeddings, centrality=centrality)
    w_max = largest_abs_weight(found) if network else None
    iterator = progress(found) if progress is not None else found
    one = partial(analyze_layer, centrality=centrality, k=k, seed=seed, null=null, null_model=null_model,
                  network_w_max=w_max, correlation=correlation, device=device)
    plain = device is None and centrality is None and null is None and w_max is None
    parts = map_layers(one, iterator, threads=layer_threads() if plain else 1)
    act = None
    if data is not None:
        from netinit.diversity.checkpoint import checkpoint_activation_diversity

        act = checkpoint_activation_diversity(ckpt, data, layers=layers, activation=activation)
    return assemble_analysis(
        ckpt, parts, skipped, activations=act,
        options={"layers": layers, "embeddings": embeddings, "centrality": centrality, "k": k, "seed": seed,
                 "data": None if data is None else f"{len(data)} samples", "activation": activation,
                 "correlation": correlation, "device": device, **recorded_options(null, null_model, w_max)})


def layer_threads() -> int:
    """Layers :func:`analyze` works on at once: one per CPU core this process may use, at most
    :data:`MAX_LAYER_THREADS`."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(MAX_LAYER_THREADS, n))


def map_layers(fn: Callable[[Layer], LayerResult], layers: Iterable[Layer], *, threads: int = 1) -> list[LayerResult]:
    """``[fn(layer) for layer in layers]``, on ``threads`` threads with at most ``threads`` layers in
    memory at once; results in the order of ``layers``.

    The threads share the process (numpy releases the GIL in its loops and BLAS calls): each works
    on whole layers, and BLAS runs one thread each meanwhile (``threadpoolctl``),
    since a multi-threaded BLAS on small products spins on cores that other work, or the other
    layer, is using (measured: a 512 x 512 x 2048 float32 product took 36 ms on two BLAS threads
    of a loaded 2-core machine, 5 ms on one). Exceptions come from the first failed layer in order.
    """
    if threads <= 1:
        return [fn(layer) for layer in layers]
    from concurrent.futures import ThreadPoolExecutor

    results: list[LayerResult] = []
    pending: deque[Any] = deque()
    with _one_blas_thread(), ThreadPoolExecutor(threads, thread_name_prefix="netinit-layer") as pool:
        for layer in layers:
            pending.append(pool.submit(fn, layer))
            if len(pending) >= threads:
                results.append(pending.popleft().result())
        results.extend(f.result() for f in pending)
    return results


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def recorded_options(null: int | None, null_model: str, w_max: float | None) -> dict[str, Any]:
    """The recorded options of ``null`` and ``network`` (only those asked for, so an analysis
    without them records what it always recorded)."""
    out: dict[str, Any] = {}
    if null is not None:
        out.update(null=int(null), null_model=null_model)
    if w_max is not None:
        out.update(network=True, network_max_side=NETWORK_MAX_SIDE, network_max_weights=NETWORK_MAX_WEIGHTS,
                   persistence_w_max=float(w_max))
    return out


def check_null(null: Any, null_model: Any) -> None:
    """Refuse a bad ``null`` (None or an integer >= 2) or ``null_model``, before anything runs.

    Raises
    ------
    ValueError
        With the value and what was expected.
    """
    if null is not None and (isinstance(null, bool) or not isinstance(null, (int, np.integer)) or null < 2):
        raise ValueError(f"null must be None or an integer >= 2 (shuffled copies of each layer), got {null!r}")
    if null_model not in _NULL_MODELS:
        raise ValueError(f"null_model must be one of {', '.join(_NULL_MODELS)}, got {null_model!r}")


def largest_abs_weight(layers: Iterable[Layer]) -> float:
    """The largest ``|w|`` over ``layers`` (a pass that loads each layer once): the normaliser of
    neural persistence over the analysed layers (Rieck et al. 2019).

    Raises
    ------
    NonFiniteError
        A layer holds NaN or infinity.
    """
    return max((float(np.abs(layer.matrix()).max()) for layer in layers), default=0.0)


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
    null_in_strength, null_out_strength : ndarray of shape (null, n_out) / (null, n_in), or None
        The same sums of each shuffled copy, in float32 (chainable kinds with ``null`` only), for
        the null model of the chain correlation.
    """

    name: str
    kind: str
    n_out: int
    n_in: int
    row: dict[str, Any]
    neurons: pd.DataFrame
    in_strength: np.ndarray | None = None
    out_strength: np.ndarray | None = None
    null_in_strength: np.ndarray | None = None
    null_out_strength: np.ndarray | None = None


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


def analyze_layer(
    layer: Layer,
    *,
    centrality: Centrality = None,
    k: int = 64,
    seed: int = 0,
    null: int | None = None,
    null_model: str = "matrix",
    network_w_max: float | None = None,
    correlation: Correlation = "auto",
    device: str | None = None,
) -> LayerResult:
    """Summary row and neuron table of one layer (loaded from its checkpoint).

    The sampled centralities draw from :func:`netinit._rng.layer_generator` ``(seed, layer.name)``,
    the null model and Leiden from its two spawned children, so the result does not depend on
    which other layers are analysed, nor where.

    Parameters
    ----------
    layer : Layer
    centrality, k, seed, null, null_model
        As :func:`analyze`.
    network_w_max : float, optional
        Add the network measures, neural persistence normalised by this largest ``|w|`` over
        the analysed layers (:func:`largest_abs_weight`); None: no network measures.

    Raises
    ------
    ValueError
        A bad ``centrality``, ``null`` or ``null_model``.
    NonFiniteError, ShapeError
        NaN/inf weights, a tensor that does not match the layer.
    """
    from netinit.metrics import in_strength, layer_summary, neuron_table, out_strength
    from netinit.metrics.strength import layer_sums

    if centrality not in _CENTRALITY:
        raise ValueError(f"centrality must be None, 'auto', 'exact' or 'sampled', got {centrality!r}")
    check_null(null, null_model)
    W = layer.matrix(check_finite=False)
    sums = None
    if device is None:  # one pass for the strengths, degrees and sums of squares of both tables
        sums = layer_sums(W)
        if not (math.isfinite(float(sums.in_strength.sum())) and math.isfinite(float(sums.in_sq.sum()))):
            layer.check_finite(W)  # NaN or inf, or finite sums beyond float64's range
    else:
        layer.check_finite(W)
    Wd = W if device is None else _on_device(W, device)  # the metrics of the tables, through torch there
    with checked(W, Wd):  # validated once, above: the metrics need not scan it again
        place = {"block": layer.block, "role": layer.role, "expert": layer.expert}
        row = {"layer": layer.name, "kind": layer.kind, **place, "dtype": layer.dtype,
               "quantization": None if layer.quant is None else layer.quant.scheme, "_tensor": layer.stored_name}
        row.update(layer_summary(Wd, layer=layer.name, kind=layer.kind, shape=layer.shape, correlation=correlation,
                                 rng=layer_generator(seed, layer.name + ":correlation"), sums=sums))
        row["dtype"] = layer.dtype
        nt = neuron_table(Wd, layer=layer.name, centrality=centrality, k=k,
                          rng=layer_generator(seed, layer.name) if centrality else None, sums=sums)
        for i, (col, value) in enumerate(place.items(), start=1):
            nt.insert(i, col, pd.array([value] * len(nt), dtype="Int64" if col != "role" else "string"))
        chain = layer.kind in _CHAIN_KINDS
        null_rng, network_rng = layer_generator(seed, layer.name).spawn(2)
        null_in = null_out = None
        if null is not None:
            from netinit.metrics import null_summary

            res = null_summary(W, shuffles=null, model=null_model, rng=null_rng, strengths=chain)
            if chain:  # kept until the chains are assembled: float32 halves that (plenty for a correlation)
                null_in = res.pop("null_in_strengths").astype(np.float32)
                null_out = res.pop("null_out_strengths").astype(np.float32)
            row.update(res)
        if network_w_max is not None:
            nt = _add_network(W, layer, row, nt, w_max=network_w_max, rng=network_rng)
        if not chain:
            s_in = s_out = None
        elif sums is not None:
            s_in, s_out = sums.in_strength, sums.out_strength
        else:
            s_in, s_out = _host(in_strength(Wd)), _host(out_strength(Wd))
        return LayerResult(layer.name, layer.kind, layer.n_out, layer.n_in, row, nt, s_in, s_out, null_in, null_out)


def _on_device(W: np.ndarray, device: str) -> Any:
    """``W`` as a torch tensor on ``device`` (one layer at a time: freed when the layer is done)."""
    import torch

    from netinit.errors import DeviceError

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} asked for, but CUDA is not available here")
    return torch.from_numpy(np.ascontiguousarray(W)).to(device)


def _host(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def _add_network(W: np.ndarray, layer: Layer, row: dict[str, Any], nt: pd.DataFrame, *, w_max: float,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Network measures of ``W`` into ``row`` (in place) and the neuron table (returned)."""
    from netinit.metrics import MEASURES, network_measures

    side, size = max(layer.n_out, layer.n_in), layer.n_out * layer.n_in
    skip, why = set(), []
    if side > NETWORK_MAX_SIDE:
        skip.update(NETWORK_SLOW)
        why.append(f"{', '.join(NETWORK_SLOW)}: {side} neurons on a side > {NETWORK_MAX_SIDE}")
    if size > NETWORK_MAX_WEIGHTS:
        skip.update(NETWORK_LARGE)
        why.append(f"{', '.join(NETWORK_LARGE)}: {size} weights > {NETWORK_MAX_WEIGHTS}")
    measures = [m for m in MEASURES if m not in skip]
    net_row, net = network_measures(W, layer=layer.name, measures=measures, w_max=w_max, rng=rng)
    row.update({key: v for key, v in net_row.items() if key not in ("layer", "n_out", "n_in")})
    row["network_skipped"] = "; ".join(why)
    return nt.merge(net.drop(columns=["node"]), on=["layer", "side", "neuron"], how="left", validate="1:1")


def _chain_correlation(a: LayerResult, b: LayerResult) -> float:
    """:func:`~netinit.metrics.chain_strength_correlation` of ``a -> b`` from their strengths.

    That function needs only the row sums of ``W_a`` and the column sums of ``W_b``; a one-column
    matrix of the former and a one-row matrix of the latter have exactly those sums, so this is
    the value of the full matrices, bit for bit, while no layer's weights are kept.
    """
    from netinit.metrics import chain_strength_correlation

    return chain_strength_correlation(a.in_strength[:, None], b.out_strength[None, :])


_CHAIN_COLUMNS = ("layer_a", "layer_b", "n_neurons", "strength_correlation", "in_strength_mean",
                  "out_strength_mean", "in_strength_abs_mean", "out_strength_abs_mean")


def _chain_row(a: LayerResult, b: LayerResult) -> dict[str, Any]:
    """One row of :attr:`Analysis.chains`: the correlation, the strength flow through the shared
    neurons (their mean in-strength in ``a`` and out-strength in ``b``, signed and of ``|w|``)
    and, with a null model, the correlation's null columns."""
    r = _chain_correlation(a, b)
    row = {"layer_a": a.name, "layer_b": b.name, "n_neurons": b.n_in, "strength_correlation": r,
           "in_strength_mean": a.row["in_strength_mean"], "out_strength_mean": b.row["out_strength_mean"],
           "in_strength_abs_mean": a.row["in_strength_abs_mean"],
           "out_strength_abs_mean": b.row["out_strength_abs_mean"]}
    if a.null_in_strength is not None and b.null_out_strength is not None:
        from netinit.metrics import null_chain_correlation

        row.update(null_chain_correlation(a.null_in_strength, b.null_out_strength, r,
                                          model=str(a.row["null_model"])))
    return row


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
    skipped_list = list(skipped)
    chains: list[dict[str, Any]] = []
    prev: LayerResult | None = None
    for part in parts:
        if part.kind in _CHAIN_KINDS:
            if prev is not None and prev.n_out == part.n_in:
                chains.append(_chain_row(prev, part))
            prev = part
        else:
            prev = None
    layers_df = pd.DataFrame([p.row for p in parts])
    if activations is not None:
        layers_df = layers_df.merge(activations, on="layer", how="left")
    tensors = set(layers_df.pop("_tensor")) if "_tensor" in layers_df.columns else set()
    first = ["layer", "kind", "block", "role", "expert", "shape", "dtype", "quantization"]
    layers_df = layers_df[first + [c for c in layers_df.columns if c not in first]]
    layers_df = layers_df.astype({"block": "Int64", "expert": "Int64"})
    if "n_communities" in layers_df.columns:  # empty where Leiden was skipped: integers all the same
        layers_df["n_communities"] = layers_df["n_communities"].astype("Int64")
    neurons_df = pd.concat([p.neurons for p in parts], ignore_index=True)
    if "community" in neurons_df.columns:
        neurons_df["community"] = neurons_df["community"].astype("Int64")
    return Analysis(
        checkpoint=str(ckpt.path),
        format=ckpt.format,
        container=ckpt.container,
        layers=layers_df,
        neurons=neurons_df,
        skipped=pd.DataFrame(
            [{"name": s.name, "shape": "x".join(map(str, s.shape)) or "scalar", "dtype": s.dtype,
              "reason": s.reason} for s in skipped_list],
            columns=["name", "shape", "dtype", "reason"]),
        chains=pd.DataFrame(chains, columns=list(dict.fromkeys(
            [*_CHAIN_COLUMNS, *(c for ch in chains for c in ch)]))),
        options=dict(options or {}),
        coverage=_coverage(parts, tensors, skipped_list),
        model=model_of(ckpt),
    )


def model_of(ckpt: Checkpoint) -> dict[str, Any]:
    """What a checkpoint says about its model: a folder's config.json (:mod:`netinit.formats.folder`)
    or a GGUF header (architecture, blocks, experts); empty where it says nothing."""
    model = getattr(ckpt, "model", None)
    if isinstance(model, dict):
        return dict(model)
    meta = getattr(ckpt, "gguf_metadata", None)
    if isinstance(meta, dict):
        arch = meta.get("general.architecture")
        return {"model_type": arch, "blocks": meta.get(f"{arch}.block_count"),
                "experts": meta.get(f"{arch}.expert_count"), "quantization": meta.get("general.file_type")}
    return {}


def _coverage(parts: list[LayerResult], tensors: set[str], skipped: list[Any]) -> Coverage:
    """:func:`netinit.layers.coverage` from the layers' results (which hold no :class:`Layer`)."""
    return Coverage.of(len(parts), tensors, sum(p.n_out * p.n_in for p in parts), skipped)
