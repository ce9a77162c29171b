"""Layer metrics: strength and degree, correlation, centrality, network measures on ``|w|``, null
models, and the tables built from them.

Every function takes a canonical matrix ``W`` of shape ``(n_out, n_in)`` (conventions in
:mod:`netinit`): strength and correlation functions accept numpy arrays and torch tensors,
centralities go through :class:`netinit.graph.LayerGraph` (numpy). Heavy libraries (igraph,
networkx, pandas, scipy.sparse, torch) are imported inside the functions that need them.
"""

from __future__ import annotations

from netinit.metrics.centrality import EXACT_MAX_NODES, neuron_centrality
from netinit.metrics.correlation import correlation_matrix, correlation_summary
from netinit.metrics.network import (
    MEASURES,
    bipartite_clustering,
    current_flow_closeness,
    harmonic_centrality,
    leiden_communities,
    network_measures,
    neural_persistence,
    subgraph_centrality,
)
from netinit.metrics.null import (
    NULL_MODELS,
    SUMMARY_STATS,
    null_chain_correlation,
    null_model,
    null_summary,
    shuffle_weights,
)
from netinit.metrics.strength import (
    chain_strength_correlation,
    degree,
    in_strength,
    out_strength,
    strength_stats,
)
from netinit.metrics.tables import layer_summary, neuron_table

__all__ = [
    "in_strength",
    "out_strength",
    "degree",
    "strength_stats",
    "chain_strength_correlation",
    "correlation_matrix",
    "correlation_summary",
    "neuron_centrality",
    "EXACT_MAX_NODES",
    "layer_summary",
    "neuron_table",
    "bipartite_clustering",
    "harmonic_centrality",
    "current_flow_closeness",
    "subgraph_centrality",
    "neural_persistence",
    "leiden_communities",
    "network_measures",
    "MEASURES",
    "shuffle_weights",
    "null_model",
    "null_summary",
    "null_chain_correlation",
    "NULL_MODELS",
    "SUMMARY_STATS",
]
