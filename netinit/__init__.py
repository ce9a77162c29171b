"""netinit: the weights of a neural network as a weighted graph.

Conventions (stated once, used everywhere)
------------------------------------------
* **Canonical matrix.** A weight layer is viewed as ``W`` of shape ``(n_out, n_in)``; row ``i``
  holds the incoming weights of output neuron ``i`` (PyTorch ``Linear`` layout). A convolution
  kernel ``(out, in/groups, *k)`` is the matrix ``(out, in/groups * prod(k))``. Foreign layouts
  are converted by the format reader and converted back by its writer.
* **Graph.** A layer is a weighted bipartite graph: input neurons are nodes ``0 .. n_in-1``,
  output neurons ``n_in .. n_in+n_out-1`` (node attribute ``bipartite`` 0 and 1), one directed
  edge input -> output per non-zero weight, edge attribute ``weight = W[i, j]``.
* **Strength.** In-strength of output neuron ``i`` is ``W[i, :].sum()``; out-strength of input
  neuron ``j`` is ``W[:, j].sum()``; signed unless ``abs`` is asked for; accumulated in float64.
* **Distances.** Path-based centralities use ``1 / |w|`` as edge length.
* **Randomness.** ``rng`` (numpy: None, int or Generator) or ``generator`` (torch); per-layer
  streams derive from ``(seed, layer name)`` through ``zlib.crc32``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from netinit.errors import (  # noqa: E402
    CorruptFileError,
    DataError,
    DeviceError,
    DtypeError,
    FormatError,
    LayerError,
    NetinitError,
    NoLayersError,
    NonFiniteError,
    OutputError,
    ShapeError,
    UnknownFormatError,
    UnsafeCheckpointError,
)

#: public name -> module that defines it; imported on first use so ``import netinit`` stays fast
_LAZY = {
    # checkpoints and layers
    "load_checkpoint": "netinit.formats",
    "save_checkpoint": "netinit.formats",
    "available_formats": "netinit.formats",
    "Checkpoint": "netinit.formats",
    "find_layers": "netinit.layers",
    "Layer": "netinit.layers",
    # graphs and metrics
    "LayerGraph": "netinit.graph",
    "NetworkGraph": "netinit.graph",
    "in_strength": "netinit.metrics",
    "out_strength": "netinit.metrics",
    "strength_stats": "netinit.metrics",
    "correlation_summary": "netinit.metrics",
    "neuron_centrality": "netinit.metrics",
    "layer_summary": "netinit.metrics",
    "neuron_table": "netinit.metrics",
    "network_measures": "netinit.metrics",
    "null_summary": "netinit.metrics",
    "null_model": "netinit.metrics",
    "shuffle_weights": "netinit.metrics",
    "analyze": "netinit.analyzer",
    "Analysis": "netinit.analyzer",
    "compare_checkpoints": "netinit.compare",
    "analyze_trajectory": "netinit.trajectory",
    "Trajectory": "netinit.trajectory",
    # PA rewiring
    "pa_rewire": "netinit.rewire",
    "pa_rewire_": "netinit.rewire",
    "rewire_model_": "netinit.rewire",
    "stabilize": "netinit.rewire",
    "stabilize_": "netinit.rewire",
    "rewire_checkpoint": "netinit.rewire.checkpoint",
    # neuron diversity
    "weight_diversity": "netinit.diversity",
    "activation_diversity": "netinit.diversity",
    "decorrelate": "netinit.diversity",
    "decorrelated_": "netinit.diversity",
    "Decorrelation": "netinit.diversity",
    "DiversityTracker": "netinit.diversity",
}

__all__ = [
    "__version__",
    "NetinitError",
    "FormatError",
    "UnknownFormatError",
    "CorruptFileError",
    "UnsafeCheckpointError",
    "LayerError",
    "NoLayersError",
    "ShapeError",
    "NonFiniteError",
    "DtypeError",
    "OutputError",
    "DataError",
    "DeviceError",
    *_LAZY,
]


#: ``netinit.diversity`` is the subpackage, callable as its per-layer ``diversity`` table
__all__.append("diversity")


def __getattr__(name: str) -> Any:
    if name == "diversity":
        return importlib.import_module("netinit.diversity")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'netinit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, the version and the subpackages imported so far (not helpers)."""
    own = {n for n, v in globals().items() if type(v).__name__ == "module" and n != "importlib"}
    return sorted(set(__all__) | {"__version__"} | own)
