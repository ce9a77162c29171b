"""Analyse the layers of a large checkpoint in parallel, one Dask task per layer.

:func:`netinit.analyze` works through the layers one after the other. :func:`analyze_parallel`
runs the same three steps of :mod:`netinit.analyzer` on the Dask engine of the experiment grid
(:mod:`netinit.experiments.runner`):

1. :func:`netinit.analyzer.plan_analysis` in this process: check the options, open the checkpoint
   lazily, list its layers in file order;
2. :func:`netinit.analyzer.analyze_layer` as one task per layer: the worker opens the checkpoint
   by its path (lazily: it reads that layer only) and computes the layer's summary row and
   neuron table, with the sampled centralities drawn from the layer's own stream
   ``layer_generator(seed, name)``; it sends back those tables and two strength vectors, never
   the weights;
3. :func:`netinit.analyzer.assemble_analysis` in this process, on the results in file order.

Hence the :class:`~netinit.analyzer.Analysis` is the one of :func:`netinit.analyze`: the same
tables, rows in the same order, the same chain correlations. The workers must see the checkpoint
at the same path (a shared file system for a remote cluster) and import ``netinit``.

The command line reaches it as ``netinit analyze CKPT -o DIR --workers N [--scheduler ADDRESS]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

from netinit.analyzer import (
    Analysis,
    LayerResult,
    analyze_layer,
    assemble_analysis,
    check_null,
    largest_abs_weight,
    plan_analysis,
    recorded_options,
)
from netinit.layers import Layer

__all__ = ["analyze_parallel", "dask_client"]


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, *, workers: int = 2) -> Iterator[Any]:
    """A :class:`distributed.Client`, closed on exit (with the cluster it started).

    Parameters
    ----------
    scheduler : None, "local" or str
        ``None`` or ``"local"``: start a :class:`distributed.LocalCluster` of ``workers`` worker
        processes with one thread each on 127.0.0.1 (no dashboard); otherwise the address of a
        running Dask scheduler (``tcp://host:8786``).
    workers : int, default 2
        Worker processes of the local cluster.

    Raises
    ------
    ValueError
        ``workers`` is not a positive integer.
    """
    from distributed import Client, LocalCluster

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    cluster = None
    if scheduler is None or scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _attached(path: str, fmt: str, layer: Layer) -> Layer:
    """The layer attached to the checkpoint opened by path on a worker."""
    from netinit.formats import load_checkpoint

    return dataclasses.replace(layer, source=load_checkpoint(path, format=fmt))


def _abs_max_task(path: str, fmt: str, layer: Layer) -> float:
    """The first pass of ``network=True`` on a worker: the layer's largest ``|w|``."""
    return largest_abs_weight([_attached(path, fmt, layer)])


def _layer_task(path: str, fmt: str, layer: Layer, options: dict[str, Any]) -> LayerResult:
    """One layer on a worker: open the checkpoint by path, attach the layer to it, analyse it."""
    return analyze_layer(_attached(path, fmt, layer), **options)


def analyze_parallel(
    path: str | os.PathLike,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    layers: str | None = None,
    centrality: str | None = None,
    k: int = 64,
    seed: int = 0,
    null: int | None = None,
    null_model: str = "matrix",
    network: bool = False,
    correlation: str = "auto",
) -> Analysis:
    """:func:`netinit.analyze` of a checkpoint file with one Dask task per layer.

    Parameters
    ----------
    path : path-like
        The checkpoint (any registered format); workers open it by this path.
    workers : int, default 2
        Worker processes of the local cluster started when ``scheduler`` is None.
    scheduler : str, optional
        Address of a running Dask scheduler to use instead of a local cluster.
    layers : str, optional
        Regular expression selecting layers by tensor name.
    centrality : {None, "auto", "exact", "sampled"}
        As :func:`netinit.analyze`.
    k : int, default 64
        Sources of the sampled path-based centralities.
    seed : int, default 0
        Seed of the sampled centralities, null models and Leiden; each layer's stream derives
        from it and its name.
    null, null_model, network, correlation
        As :func:`netinit.analyze`. With ``network``, a first round of tasks finds the largest
        ``|w|`` over the layers (the normaliser of neural persistence).

    Returns
    -------
    Analysis
        Equal, table for table and row for row, to ``netinit.analyze(path, layers=layers,
        centrality=centrality, k=k, seed=seed, null=null, null_model=null_model,
        network=network)``.

    Raises
    ------
    ValueError
        A bad ``centrality``, ``null``, ``null_model`` or ``workers`` (before any cluster
        starts).
    NoLayersError, ShapeError, NonFiniteError, FormatError
        As :func:`netinit.analyze`; an error in a worker is raised here as it was raised there.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(p, fc1=np.eye(3, dtype=np.float32), fc2=np.ones((2, 3), dtype=np.float32))
    >>> analyze_parallel(p, workers=2).layers["layer"].tolist()  # doctest: +SKIP
    ['fc1', 'fc2']
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    check_null(null, null_model)
    ckpt, found, skipped = plan_analysis(path, layers=layers, centrality=centrality)
    where = str(Path(path).resolve())  # the workers' working folder may differ
    token = uuid.uuid4().hex[:8]  # task keys unique to this call, even on a shared cluster
    bare = [dataclasses.replace(layer, source=None) for layer in found]
    options: dict[str, Any] = {"centrality": centrality, "k": k, "seed": seed, "null": null,
                               "null_model": null_model, "network_w_max": None, "correlation": correlation}
    with dask_client(scheduler, workers=workers) as client:
        if network:
            maxima = client.gather([client.submit(_abs_max_task, where, ckpt.format, layer, pure=False,
                                                  key=f"netinit-absmax-{token}-{i}")
                                    for i, layer in enumerate(bare)])
            options["network_w_max"] = max(maxima, default=0.0)
        futures = [client.submit(_layer_task, where, ckpt.format, layer, options, pure=False,
                                 key=f"netinit-analyze-{token}-{i}")
                   for i, layer in enumerate(bare)]
        parts = client.gather(futures)
    return assemble_analysis(
        ckpt, parts, skipped,
        options={"layers": layers, "embeddings": False, "centrality": centrality, "k": k, "seed": seed,
                 "data": None, "activation": "relu", "correlation": correlation, "device": None,
                 **recorded_options(null, null_model, options["network_w_max"])})
