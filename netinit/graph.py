r"""Layers and chains of layers as weighted graphs, exported in bulk to networkx and igraph.

A layer with canonical matrix ``W`` of shape ``(n_out, n_in)`` is the weighted bipartite graph

.. math:: G = (U \cup V, E), \quad U = \{0, \dots, n_{in}-1\}, \quad
          V = \{n_{in}, \dots, n_{in}+n_{out}-1\}, \quad
          E = \{(j, n_{in}+i) : W_{ij} \neq 0\},

with edge weight ``W[i, j]`` and, for path-based metrics, edge length ``1 / |W[i, j]|``.
Edges are directed input -> output. ``W`` *is* the biadjacency matrix of ``G``:
:class:`LayerGraph` is a view over it (no copy) that builds edge arrays with numpy and hands
them to networkx (``add_edges_from``) or igraph (``add_edges``) in one call, never an edge at a
time.

A chain of ``Linear`` layers, where the outputs of layer ``k`` are the inputs of layer ``k+1``,
is the multipartite graph of :class:`NetworkGraph`: partition 0 holds the inputs of the first
layer, partition ``k+1`` the outputs of layer ``k``; nodes are numbered partition by partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from netinit.errors import LayerError, NoLayersError, ShapeError
from netinit.validation import check_matrix

if TYPE_CHECKING:  # pragma: no cover
    import igraph
    import networkx

__all__ = ["LayerGraph", "NetworkGraph", "DISTANCE_TRANSFORM"]

#: How edge lengths for shortest paths are derived from weights (recorded in every output).
DISTANCE_TRANSFORM = "1/|w|"


def _bipartite_edges(W: np.ndarray, src_offset: int, dst_offset: int):
    """Edge arrays of one layer: src = src_offset + j, dst = dst_offset + i, weight = W[i, j]."""
    mask = W != 0
    rows, cols = np.nonzero(mask)
    return cols + src_offset, rows + dst_offset, W[mask].astype(np.float64, copy=False)


def _to_networkx(node_attrs, src, dst, weight, *, distance, directed, edge_layer=None,
                 graph_attrs=None):
    import networkx as nx

    G = nx.DiGraph() if directed else nx.Graph()
    G.graph.update(graph_attrs or {})
    names = list(node_attrs)
    columns = [node_attrs[k] for k in names]
    G.add_nodes_from((v, dict(zip(names, vals))) for v, vals in enumerate(zip(*columns)))
    w = weight.tolist()
    if distance:
        G.graph["distance_transform"] = DISTANCE_TRANSFORM
        d = (1.0 / np.abs(weight)).tolist()
        if edge_layer is None:
            data = ({"weight": a, "distance": b} for a, b in zip(w, d))
        else:
            data = ({"weight": a, "distance": b, "layer": c} for a, b, c in zip(w, d, edge_layer))
    elif edge_layer is None:
        data = ({"weight": a} for a in w)
    else:
        data = ({"weight": a, "layer": c} for a, c in zip(w, edge_layer))
    G.add_edges_from(zip(src.tolist(), dst.tolist(), data))
    return G


def _to_igraph(n_nodes, node_attrs, src, dst, weight, *, directed, edge_layer=None,
               graph_attrs=None):
    import igraph as ig

    g = ig.Graph(n=n_nodes, directed=directed)
    g.add_edges(np.column_stack([src, dst]))
    for key, value in (graph_attrs or {}).items():
        g[key] = value
    g["distance_transform"] = DISTANCE_TRANSFORM
    for key, values in node_attrs.items():
        g.vs[key] = list(values)
    g.es["weight"] = weight.tolist()
    g.es["distance"] = (1.0 / np.abs(weight)).tolist()
    if edge_layer is not None:
        g.es["layer"] = edge_layer
    return g


class LayerGraph:
    """The weighted bipartite graph of one layer, as a view over its matrix.

    Input neuron ``j`` is node ``j``; output neuron ``i`` is node ``n_in + i``; there is one
    edge ``j -> n_in + i`` of weight ``W[i, j]`` for every non-zero weight.

    Parameters
    ----------
    W : array of shape (n_out, n_in)
        Canonical weight matrix (numpy array or torch tensor). Numpy arrays and CPU tensors are
        referenced, not copied, so in-place changes of ``W`` show through; CUDA and bfloat16
        tensors are copied to a host array once.
    name : str, default "layer"
        The layer's name, used in error messages and stored on exported graphs.

    Raises
    ------
    ShapeError
        ``W`` is not 2-D or has a zero dimension.
    NonFiniteError
        ``W`` holds NaN or infinity.
    DtypeError
        ``W`` is boolean, complex or quantised.

    Examples
    --------
    >>> import numpy as np
    >>> g = LayerGraph(np.array([[1.0, 0.0, -2.0], [0.5, 0.25, 0.0]]), name="fc")
    >>> g.n_in, g.n_out, g.n_nodes, g.n_edges
    (3, 2, 5, 4)
    >>> src, dst, w = g.edges()
    >>> src.tolist(), dst.tolist(), w.tolist()
    ([0, 2, 0, 1], [3, 3, 4, 4], [1.0, -2.0, 0.5, 0.25])
    """

    def __init__(self, W: Any, name: str = "layer") -> None:
        self.name = str(name)
        self._W = check_matrix(W, self.name)

    @property
    def W(self) -> np.ndarray:
        """The matrix the graph is a view of, shape ``(n_out, n_in)``."""
        return self._W

    @property
    def n_in(self) -> int:
        """Number of input neurons (nodes ``0 .. n_in-1``)."""
        return int(self._W.shape[1])

    @property
    def n_out(self) -> int:
        """Number of output neurons (nodes ``n_in .. n_in+n_out-1``)."""
        return int(self._W.shape[0])

    @property
    def n_nodes(self) -> int:
        """``n_in + n_out``."""
        return self.n_in + self.n_out

    @property
    def n_edges(self) -> int:
        """Number of non-zero weights (counted on access: the view follows ``W``)."""
        return int(np.count_nonzero(self._W))

    @property
    def input_nodes(self) -> np.ndarray:
        """Node ids of the input neurons, ``arange(n_in)``."""
        return np.arange(self.n_in)

    @property
    def output_nodes(self) -> np.ndarray:
        """Node ids of the output neurons, ``n_in + arange(n_out)``."""
        return np.arange(self.n_in, self.n_nodes)

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Edge arrays ``(src, dst, weight)`` in row-major order of ``W``.

        Returns
        -------
        src : ndarray of int64, shape (n_edges,)
            Input node ``j``.
        dst : ndarray of int64, shape (n_edges,)
            Output node ``n_in + i``.
        weight : ndarray of float64, shape (n_edges,)
            ``W[i, j]`` (zeros are not edges).
        """
        return _bipartite_edges(self._W, 0, self.n_in)

    def _node_attrs(self) -> dict[str, list]:
        return {"bipartite": [0] * self.n_in + [1] * self.n_out}

    def to_networkx(self, distance: bool = True, *, directed: bool = True) -> "networkx.Graph":
        """Build the networkx graph in bulk.

        Parameters
        ----------
        distance : bool, default True
            Also store ``distance = 1/|w|`` on every edge (graph attribute
            ``distance_transform`` records it).
        directed : bool, default True
            A ``DiGraph`` with edges input -> output, or the undirected ``Graph``.

        Returns
        -------
        networkx.DiGraph or networkx.Graph
            Nodes ``0 .. n_nodes-1`` with attribute ``bipartite`` (0 inputs, 1 outputs); edges
            with ``weight`` (signed) and optionally ``distance``; graph attributes ``name``,
            ``n_in``, ``n_out``.
        """
        src, dst, w = self.edges()
        return _to_networkx(
            self._node_attrs(), src, dst, w, distance=distance, directed=directed,
            graph_attrs={"name": self.name, "n_in": self.n_in, "n_out": self.n_out},
        )

    def to_igraph(self, *, directed: bool = True) -> "igraph.Graph":
        """Build the igraph graph in bulk.

        Returns
        -------
        igraph.Graph
            ``n_nodes`` vertices with attributes ``bipartite`` (0/1) and ``type`` (False/True,
            the attribute igraph's bipartite functions read); edges with ``weight`` (signed)
            and ``distance`` (``1/|w|``); graph attributes ``name`` and ``distance_transform``.
        """
        src, dst, w = self.edges()
        attrs = self._node_attrs()
        attrs["type"] = [bool(b) for b in attrs["bipartite"]]
        return _to_igraph(self.n_nodes, attrs, src, dst, w, directed=directed,
                          graph_attrs={"name": self.name})

    def __repr__(self) -> str:
        return f"LayerGraph(name={self.name!r}, n_out={self.n_out}, n_in={self.n_in})"


class NetworkGraph:
    """The multipartite graph of a chain of layers (outputs of layer k = inputs of layer k+1).

    Partition 0 holds the ``n_in`` inputs of the first layer, partition ``k+1`` the outputs of
    layer ``k``. Nodes are numbered partition by partition: partition ``p`` is
    ``offsets[p] .. offsets[p+1]-1``. Neuron ``i`` of partition ``p`` is node
    ``offsets[p] + i``. Layer ``k`` contributes the edges ``offsets[k] + j -> offsets[k+1] + i``
    of weight ``W_k[i, j]``.

    Parameters
    ----------
    layers : sequence of (name, W) pairs, or a mapping name -> W
        The layers in forward order; ``W_k`` has shape ``(n_out_k, n_in_k)`` and the chain
        needs ``n_in_{k+1} == n_out_k``.

    Raises
    ------
    NoLayersError
        ``layers`` is empty.
    LayerError
        Two layers share a name.
    ShapeError
        A matrix is not 2-D, or two consecutive layers do not chain (the message names both).
    NonFiniteError
        A matrix holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> net = NetworkGraph([("fc1", np.ones((3, 4))), ("fc2", np.ones((2, 3)))])
    >>> net.partition_sizes, net.offsets, net.n_nodes, net.n_edges
    ((4, 3, 2), (0, 4, 7, 9), 9, 18)
    """

    def __init__(self, layers: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> None:
        items = list(layers.items()) if isinstance(layers, Mapping) else list(layers)
        if not items:
            raise NoLayersError("NetworkGraph needs at least one (name, W) layer, got none")
        self.layers: list[LayerGraph] = [LayerGraph(W, name=str(nm)) for nm, W in items]
        names = [g.name for g in self.layers]
        dup = sorted({nm for nm in names if names.count(nm) > 1})
        if dup:
            raise LayerError(f"layer names must be unique, got duplicates {dup}")
        for prev, nxt in zip(self.layers, self.layers[1:]):
            if nxt.n_in != prev.n_out:
                raise ShapeError(
                    f"layers do not chain: {prev.name!r} has shape {tuple(prev.W.shape)} "
                    f"({prev.n_out} outputs) but {nxt.name!r} has shape {tuple(nxt.W.shape)} "
                    f"({nxt.n_in} inputs)"
                )
        sizes = [self.layers[0].n_in] + [g.n_out for g in self.layers]
        self.partition_sizes: tuple[int, ...] = tuple(sizes)
        self.offsets: tuple[int, ...] = tuple(int(v) for v in np.cumsum([0, *sizes]))

    @property
    def layer_names(self) -> list[str]:
        """Names of the layers in forward order."""
        return [g.name for g in self.layers]

    @property
    def n_nodes(self) -> int:
        """Total number of neurons over all partitions."""
        return self.offsets[-1]

    @property
    def n_edges(self) -> int:
        """Total number of non-zero weights."""
        return sum(g.n_edges for g in self.layers)

    def partition_nodes(self, p: int) -> np.ndarray:
        """Node ids of partition ``p`` (0 = network inputs, ``k+1`` = outputs of layer ``k``)."""
        if not 0 <= p < len(self.partition_sizes):
            raise ValueError(f"partition must lie in [0, {len(self.partition_sizes) - 1}], got {p}")
        return np.arange(self.offsets[p], self.offsets[p + 1])

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Edge arrays ``(src, dst, weight)``, layer after layer, row-major within a layer."""
        parts = [_bipartite_edges(g.W, self.offsets[k], self.offsets[k + 1])
                 for k, g in enumerate(self.layers)]
        src, dst, w = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return src, dst, w

    def _edge_layers(self) -> list[str]:
        out: list[str] = []
        for g in self.layers:
            out.extend([g.name] * g.n_edges)
        return out

    def _node_attrs(self) -> dict[str, list]:
        partition: list[int] = []
        layer: list[str] = []
        for p, size in enumerate(self.partition_sizes):
            partition.extend([p] * size)
            layer.extend([("input" if p == 0 else self.layers[p - 1].name)] * size)
        return {"partition": partition, "layer": layer}

    def to_networkx(self, distance: bool = True, *, directed: bool = True) -> "networkx.Graph":
        """Build the networkx graph in bulk.

        Nodes carry ``partition`` (int) and ``layer`` (the name of the layer whose outputs they
        are; ``"input"`` for partition 0); edges carry ``weight``, ``layer`` and, when
        ``distance`` is true, ``distance = 1/|w|``. ``nx.multipartite_layout(G,
        subset_key="partition")`` draws it.
        """
        src, dst, w = self.edges()
        return _to_networkx(
            self._node_attrs(), src, dst, w, distance=distance, directed=directed,
            edge_layer=self._edge_layers(), graph_attrs={"layers": self.layer_names},
        )

    def to_igraph(self, *, directed: bool = True) -> "igraph.Graph":
        """Build the igraph graph in bulk (same attributes as :meth:`to_networkx`)."""
        src, dst, w = self.edges()
        return _to_igraph(self.n_nodes, self._node_attrs(), src, dst, w, directed=directed,
                          edge_layer=self._edge_layers(), graph_attrs={"layers": self.layer_names})

    def __repr__(self) -> str:
        return f"NetworkGraph(layers={self.layer_names}, partition_sizes={self.partition_sizes})"
