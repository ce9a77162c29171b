r"""Network-science measures of a layer on :math:`|w|`: clustering, harmonic and current-flow
closeness, subgraph centrality, neural persistence, Leiden communities.

A layer with canonical matrix ``W`` of shape ``(n_out, n_in)`` is the undirected weighted
bipartite graph of :mod:`netinit.graph` with ``N = n_in + n_out`` nodes (inputs ``0..n_in-1``,
outputs ``n_in..N-1``) and biadjacency :math:`B = |W|`, so its adjacency matrix is

.. math:: A = \begin{pmatrix} 0 & B^\top \\ B & 0 \end{pmatrix}.

Every measure here uses the **magnitudes** :math:`|w|` (``weight_transform = "|w|"``, recorded
in :func:`network_measures`); a weight of exactly 0 is no edge, except in neural persistence,
which follows its authors and uses the complete bipartite graph. Path lengths are
``1/|w|`` (``distance_transform``), conductances ``|w|``.

Costs, for ``m`` non-zero weights: clustering ``O(n_in n_out (n_in + n_out))`` (no BLAS),
harmonic centrality ``O(N m log N)`` (one Dijkstra per node), current-flow closeness ``O(N^3)``
(one dense inverse), subgraph centrality one SVD of ``B``, neural persistence one spanning tree
of ``n_in n_out`` edges, Leiden about ``O(m)`` per pass. On 2 cores a dense 256x256 layer takes
about a second for everything; path-based and current-flow measures become minutes from about
2048 neurons per side, where the spectral ones (subgraph centrality, persistence) still take
seconds to a minute.

References
----------
.. [1] Latapy, Magnien & Del Vecchio (2008). Basic notions for the analysis of large two-mode
   networks. Social Networks 30(1), 31-48.
.. [2] Estrada & Rodriguez-Velazquez (2005). Subgraph centrality in complex networks.
   Phys. Rev. E 71, 056103.
.. [3] Rieck et al. (2019). Neural persistence: a complexity measure for deep neural networks
   using algebraic topology. ICLR 2019.
.. [4] Traag, Waltman & van Eck (2019). From Louvain to Leiden: guaranteeing well-connected
   communities. Sci. Rep. 9, 5233.
.. [5] Scabini & Bruno (2023). Structure and performance of fully connected neural networks:
   emerging complex network properties. Physica A 615, 128585.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from netinit._rng import RngLike, as_generator, layer_generator
from netinit.graph import DISTANCE_TRANSFORM
from netinit.validation import check_matrix

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = [
    "MEASURES",
    "WEIGHT_TRANSFORM",
    "CLUSTERING_DEFINITION",
    "bipartite_clustering",
    "harmonic_centrality",
    "current_flow_closeness",
    "subgraph_centrality",
    "neural_persistence",
    "leiden_communities",
    "network_measures",
]

#: The transform of the weights every measure of this module uses (recorded in the outputs).
WEIGHT_TRANSFORM = "|w|"
#: The clustering coefficient of :func:`bipartite_clustering` (recorded in the outputs).
CLUSTERING_DEFINITION = "latapy2008-dot, weighted jaccard (ruzicka) on |w|"
#: Names accepted by ``network_measures(measures=...)``.
MEASURES = ("clustering", "harmonic", "current_flow", "subgraph", "persistence", "communities")

_BLOCK_ELEMENTS = 1 << 22  # temporaries of ~32 MiB in float64


def _abs64(W: Any, name: str) -> np.ndarray:
    """Validated ``|W|`` in float64, shape (n_out, n_in)."""
    return np.abs(np.asarray(check_matrix(W, name), dtype=np.float64))


def _csr_graph(B: np.ndarray, values: np.ndarray):
    """The symmetric ``N x N`` sparse adjacency with ``values`` on the non-zero weights of B."""
    import scipy.sparse as sp

    n_out, n_in = B.shape
    rows, cols = np.nonzero(B)  # output i, input j
    src, dst = cols, rows + n_in
    n = n_in + n_out
    data = np.concatenate([values, values])
    return sp.csr_matrix(
        (data, (np.concatenate([src, dst]), np.concatenate([dst, src]))), shape=(n, n)
    )


def _jaccard_side(X: np.ndarray) -> np.ndarray:
    """Mean weighted Jaccard of every row of X with the rows that share a neighbour with it."""
    n, d = X.shape
    totals = X.sum(axis=1)
    out = np.zeros(n)
    step = max(1, _BLOCK_ELEMENTS // max(1, n * d))
    for a in range(0, n, step):
        blk = X[a:a + step]
        inter = np.minimum(blk[:, None, :], X[None, :, :]).sum(axis=2)  # sum_k min(x_uk, x_vk)
        union = totals[a:a + step, None] + totals[None, :] - inter
        second = inter > 0.0  # a common neighbour (weights are >= 0)
        second[np.arange(blk.shape[0]), np.arange(a, a + blk.shape[0])] = False
        cc = np.divide(inter, union, out=np.zeros_like(inter), where=second)
        k = second.sum(axis=1)
        out[a:a + step] = np.divide(cc.sum(axis=1), k, out=np.zeros(blk.shape[0]), where=k > 0)
    return out


def bipartite_clustering(W: Any) -> np.ndarray:
    r"""Weighted bipartite clustering of every neuron: Latapy's ``cc_dot`` on ``|w|``.

    Latapy et al. (2008) define, for two nodes ``u, v`` of the same side, the overlap of their
    neighbourhoods :math:`cc(u, v) = |N(u) \cap N(v)| / |N(u) \cup N(v)|` and the clustering
    of ``u`` as its mean over the second neighbours :math:`N_2(u)` (nodes ``v != u`` sharing a
    neighbour with ``u``). On a dense layer every neighbourhood is the whole other side, so the
    binary coefficient is 1 everywhere; here the Jaccard overlap is generalised to weights as
    the weighted Jaccard (Ruzicka) similarity of the rows of ``|w|``:

    .. math:: cc(u, v) = \frac{\sum_k \min(a_{uk}, a_{vk})}{\sum_k \max(a_{uk}, a_{vk})},
              \qquad c(u) = \frac{1}{|N_2(u)|} \sum_{v \in N_2(u)} cc(u, v),

    with :math:`a_{uk}` the ``|w|`` of the edge between ``u`` and ``k`` on the other side, and
    :math:`c(u) = 0` when :math:`N_2(u)` is empty (networkx's convention). On 0/1 weights it is
    exactly ``networkx.bipartite.clustering(G, mode="dot")``. This is Latapy's coefficient, not
    Opsahl's (2013) four-path coefficient.

    Parameters
    ----------
    W : array of shape (n_out, n_in)
        Canonical weight matrix (numpy or torch; converted to numpy).

    Returns
    -------
    ndarray of shape (n_in + n_out,), float64
        In node order: the ``n_in`` inputs, then the ``n_out`` outputs; values in [0, 1].

    Raises
    ------
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import numpy as np
    >>> bipartite_clustering(np.array([[1.0, 1.0], [0.0, 2.0]])).round(3).tolist()
    [0.333, 0.333, 0.333, 0.333]
    """
    B = _abs64(W, "W")
    return np.concatenate([_jaccard_side(np.ascontiguousarray(B.T)), _jaccard_side(B)])


def harmonic_centrality(W: Any) -> np.ndarray:
    r"""Harmonic centrality of every neuron in the undirected layer graph, lengths ``1/|w|``.

    .. math:: H(v) = \sum_{u \neq v} \frac{1}{d(u, v)},

    with :math:`d` the shortest-path length and :math:`1/\infty = 0` for unreachable pairs
    (Marchiori & Latora 2000; ``networkx.harmonic_centrality(G, distance=...)`` on the same
    graph, unnormalised). Computed with one ``scipy.sparse.csgraph.dijkstra`` per block of
    sources, ``O(N m log N)``.

    Parameters
    ----------
    W : array of shape (n_out, n_in)

    Returns
    -------
    ndarray of shape (n_in + n_out,), float64
        In node order (inputs, then outputs).

    Raises
    ------
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import numpy as np
    >>> harmonic_centrality(np.array([[2.0, 1.0]])).tolist()  # 0 -(1/2)- 2 -(1)- 1
    [2.6666666666666665, 1.6666666666666665, 3.0]
    """
    from scipy.sparse.csgraph import dijkstra

    B = _abs64(W, "W")
    n = sum(B.shape)
    G = _csr_graph(B, 1.0 / B[B != 0])
    out = np.empty(n)
    step = max(1, _BLOCK_ELEMENTS // n)
    for a in range(0, n, step):
        idx = np.arange(a, min(n, a + step))
        D = dijkstra(G, directed=False, indices=idx)
        D[np.arange(idx.size), idx] = np.inf  # leave v itself out
        with np.errstate(divide="ignore"):
            out[idx] = (1.0 / D).sum(axis=1)
    return out


def current_flow_closeness(W: Any) -> np.ndarray:
    r"""Current-flow closeness of every neuron, ``|w|`` as conductance (information centrality).

    With :math:`L = D - A` the Laplacian of the ``|w|``-weighted graph and :math:`L^+` its
    pseudo-inverse, the effective resistance is
    :math:`R(u, v) = L^+_{uu} + L^+_{vv} - 2 L^+_{uv}` and

    .. math:: C(v) = \Bigl(\sum_{u} R(u, v)\Bigr)^{-1}
                   = \bigl(N L^+_{vv} + \operatorname{tr} L^+\bigr)^{-1}

    (Brandes & Fleischer 2005; Stephenson & Zelen 1989), the value of
    ``networkx.current_flow_closeness_centrality(G, weight=...)``. Dense, ``O(N^3)``.

    Parameters
    ----------
    W : array of shape (n_out, n_in)

    Returns
    -------
    ndarray of shape (n_in + n_out,), float64
        In node order. All NaN when the graph is disconnected (pruned weights cutting a neuron
        off): resistances between components are infinite (networkx raises there).

    Raises
    ------
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import numpy as np
    >>> current_flow_closeness(np.array([[1.0, 1.0]])).round(4).tolist()  # a path of 3
    [0.3333, 0.3333, 0.5]
    """
    from scipy.sparse.csgraph import connected_components

    B = _abs64(W, "W")
    n_out, n_in = B.shape
    n = n_in + n_out
    if n == 1 or connected_components(_csr_graph(B, B[B != 0]), directed=False)[0] > 1:
        return np.full(n, np.nan)
    A = np.zeros((n, n))
    A[n_in:, :n_in] = B
    A[:n_in, n_in:] = B.T
    L = np.diag(A.sum(axis=1)) - A
    Lp = np.linalg.inv(L + 1.0 / n) - 1.0 / n  # pseudo-inverse of a connected graph's Laplacian
    d = np.diag(Lp)
    return 1.0 / (n * d + d.sum())


def _log_sinh(x: np.ndarray) -> np.ndarray:
    """log(sinh(x)) for x >= 0 without overflow (-inf at 0)."""
    with np.errstate(divide="ignore"):
        return x + np.log(-np.expm1(-2.0 * x)) - math.log(2.0)


def subgraph_centrality(W: Any, *, log: bool = False) -> np.ndarray:
    r"""Subgraph centrality :math:`SC(v) = (e^A)_{vv}` of every neuron, from the SVD of ``|W|``.

    Estrada's subgraph centrality counts closed walks, weighted by products of ``|w|``. For the
    bipartite adjacency ``A`` the eigenpairs are :math:`\pm\sigma_k` with vectors
    :math:`(v_k, \pm u_k)/\sqrt2` (:math:`B = U \Sigma V^\top`, ``B = |W|``) plus zeros, so, with
    the orthonormal completion contributing :math:`e^0 = 1`,

    .. math:: SC(j) = 1 + \sum_k V_{jk}^2 (\cosh\sigma_k - 1) \;\text{(input } j\text{)},
              \qquad SC(n_{in}+i) = 1 + \sum_k U_{ik}^2 (\cosh\sigma_k - 1).

    It is computed in log space, :math:`\cosh\sigma - 1 = 2\sinh^2(\sigma/2)` and a log-sum-exp
    over ``k``, so a 4096-wide layer with :math:`\sigma_1` in the thousands gives finite
    :math:`\log SC` where :math:`e^{\sigma_1}` overflows float64.
    ``networkx.subgraph_centrality`` ignores edge weights (it uses the 0/1 adjacency); on 0/1
    weights both agree.

    Parameters
    ----------
    W : array of shape (n_out, n_in)
    log : bool, default False
        Return :math:`\log SC` (always finite) instead of :math:`SC`.

    Returns
    -------
    ndarray of shape (n_in + n_out,), float64
        In node order. With ``log=False``, ``inf`` where :math:`SC` exceeds float64's range
        (:math:`\log SC > 709.78`): use ``log=True`` for such layers.

    Raises
    ------
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import numpy as np
    >>> subgraph_centrality(np.array([[1.0]])).round(4).tolist()  # cosh(1)
    [1.5431, 1.5431]
    >>> float(subgraph_centrality(np.full((64, 64), 50.0), log=True)[0].round(2))  # 3200 - log 128
    3195.15
    """
    from scipy.special import logsumexp

    B = _abs64(W, "W")
    U, s, Vt = np.linalg.svd(B, full_matrices=False)
    log_c = math.log(2.0) + 2.0 * _log_sinh(s / 2.0)  # log(cosh s - 1), shape (r,)
    out = []
    for X in (Vt.T, U):  # inputs: right singular vectors; outputs: left
        res = np.empty(X.shape[0])
        step = max(1, _BLOCK_ELEMENTS // max(1, X.shape[1]))
        for a in range(0, X.shape[0], step):
            blk = X[a:a + step]
            with np.errstate(divide="ignore"):
                T = 2.0 * np.log(np.abs(blk)) + log_c[None, :]
            T = np.concatenate([np.zeros((blk.shape[0], 1)), T], axis=1)  # the "1 +"
            res[a:a + step] = logsumexp(T, axis=1)
        out.append(res)
    logsc = np.concatenate(out)
    if log:
        return logsc
    with np.errstate(over="ignore"):
        return np.exp(logsc)


def neural_persistence(W: Any, *, w_max: float | None = None) -> dict[str, float]:
    r"""Neural persistence of a layer (Rieck et al., ICLR 2019), 0-dimensional, ``p = 2``.

    Weights are normalised to :math:`\tilde w = |w| / w_{max}`, with :math:`w_{max}` the
    largest ``|w|`` over the analysed layers (pass it for a whole network), by default this
    layer's own. In the descending filtration of the **complete** bipartite graph (every pair
    of neurons, zero weights included, as in the paper) all neurons are born at 1 and each edge
    of a maximum spanning tree ``T`` merges two components at :math:`\tilde w_e`, giving the
    persistence pairs :math:`(1, \tilde w_e)`. Then

    .. math:: NP = \Bigl(\sum_{e \in T} (1 - \tilde w_e)^2\Bigr)^{1/2}, \qquad
              NP_{norm} = NP / \sqrt{n_{in} + n_{out} - 1},

    the bound of the paper's Theorem 2 (``T`` has ``n_in + n_out - 1`` edges, each at most 1).
    All maximum spanning trees share their multiset of weights, so ``NP`` is well defined.
    Computed with ``scipy.sparse.csgraph.minimum_spanning_tree`` on the costs
    :math:`2 - \tilde w_e \in [1, 2]` (positive, so zero weights stay edges).

    Parameters
    ----------
    W : array of shape (n_out, n_in)
    w_max : float, optional
        The normaliser; at least this layer's largest ``|w|``. An all-zero layer (and
        ``w_max = 0``) has :math:`\tilde w = 0` and ``NP_norm = 1``.

    Returns
    -------
    dict
        ``neural_persistence``, ``neural_persistence_normalized`` and ``persistence_w_max``
        (the normaliser used), floats.

    Raises
    ------
    ValueError
        ``w_max`` is negative, not finite or below the layer's largest ``|w|``.
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import numpy as np
    >>> r = neural_persistence(np.array([[1.0, 0.5], [0.0, 0.25]]))
    >>> round(r["neural_persistence"], 4), round(r["neural_persistence_normalized"], 4)
    (0.9014, 0.5204)
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import minimum_spanning_tree

    B = _abs64(W, "W")
    n_out, n_in = B.shape
    top = float(B.max())
    if w_max is None:
        w_max = top
    w_max = float(w_max)
    if not math.isfinite(w_max) or w_max < 0.0 or w_max < top * (1.0 - 1e-12):
        raise ValueError(
            f"w_max must be finite and at least the layer's largest |w| ({top!r}), got {w_max!r}"
        )
    Wn = np.minimum(B / w_max, 1.0) if w_max > 0.0 else np.zeros_like(B)
    n = n_in + n_out
    if n == 2:
        pers = 1.0 - Wn.ravel()
    else:
        rows, cols = np.meshgrid(np.arange(n_out), np.arange(n_in), indexing="ij")
        G = sp.csr_matrix(((2.0 - Wn).ravel(), (cols.ravel(), (rows + n_in).ravel())),
                          shape=(n, n))
        T = minimum_spanning_tree(G).tocoo()
        a, b = np.minimum(T.row, T.col), np.maximum(T.row, T.col)  # input a, output b
        pers = 1.0 - Wn[b - n_in, a]
    np_value = float(np.sqrt(np.sum(pers * pers)))
    return {
        "neural_persistence": np_value,
        "neural_persistence_normalized": np_value / math.sqrt(n - 1),
        "persistence_w_max": w_max,
    }


@contextlib.contextmanager
def _igraph_rng(seed: int) -> Iterator[None]:
    """igraph draws from ``random.Random(seed)`` inside, from the ``random`` module after."""
    import igraph

    igraph.set_random_number_generator(random.Random(seed))
    try:
        yield
    finally:
        igraph.set_random_number_generator(random)


def leiden_communities(
    W: Any, *, resolution: float = 1.0, rng: RngLike = None
) -> tuple[np.ndarray, float]:
    r"""Communities of a layer by the Leiden algorithm (igraph) maximising modularity on ``|w|``.

    Modularity of a partition ``c`` of the ``|w|``-weighted undirected graph, with strengths
    :math:`s_v` and total weight :math:`m = \sum_{ij} |W_{ij}|`:

    .. math:: Q = \frac{1}{2m} \sum_{u, v} \Bigl(A_{uv} - \gamma \frac{s_u s_v}{2m}\Bigr)
              \delta(c_u, c_v),

    ``gamma`` the resolution. Leiden (Traag et al. 2019) runs until an iteration changes
    nothing (``n_iterations=-1``).

    **Determinism.** igraph draws from a process-wide generator. This function draws one
    63-bit integer from ``rng``, installs ``random.Random(that integer)`` with
    ``igraph.set_random_number_generator`` for the call and then reinstalls igraph's default
    (the :mod:`random` module; igraph has no getter, so a custom generator the caller had
    installed is replaced by that default). The same ``rng`` seed gives the same labels; the
    :mod:`random` module's own state is never touched. Not thread-safe with other igraph
    calls that draw random numbers.

    Parameters
    ----------
    W : array of shape (n_out, n_in)
    resolution : float, default 1.0
        ``gamma`` above, positive.
    rng : None, int or numpy.random.Generator
        Seeds igraph's generator as described.

    Returns
    -------
    labels : ndarray of shape (n_in + n_out,), int64
        Community of every neuron in node order, numbered 0, 1, ... by first appearance.
    modularity : float
        ``Q`` of that partition; NaN for a layer whose weights are all 0 (every neuron is then
        its own community).

    Raises
    ------
    ValueError
        ``resolution`` is not a positive finite number.
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.kron(np.eye(2), np.ones((2, 2)))  # two disjoint 2x2 blocks
    >>> labels, q = leiden_communities(W, rng=0)
    >>> labels.tolist(), round(q, 4)
    ([0, 0, 1, 1, 0, 0, 1, 1], 0.5)
    """
    import igraph

    if not (isinstance(resolution, (int, float)) and math.isfinite(resolution)
            and resolution > 0):
        raise ValueError(f"resolution must be a positive finite number, got {resolution!r}")
    B = _abs64(W, "W")
    gen = as_generator(rng)
    seed = int(gen.integers(0, 2**63 - 1))
    n_out, n_in = B.shape
    n = n_in + n_out
    rows, cols = np.nonzero(B)
    if rows.size == 0:
        return np.arange(n, dtype=np.int64), float("nan")
    g = igraph.Graph(n=n, directed=False)
    g.add_edges(np.column_stack([cols, rows + n_in]))  # in bulk, as netinit.graph does
    g.es["weight"] = B[rows, cols].tolist()
    with _igraph_rng(seed):
        part = g.community_leiden(objective_function="modularity", weights="weight",
                                  resolution=float(resolution), n_iterations=-1)
    raw = np.asarray(part.membership, dtype=np.int64)
    _, first = np.unique(raw, return_index=True)
    order = np.argsort(first)  # communities numbered by first appearance in node order
    relabel = np.empty(order.size, dtype=np.int64)
    relabel[np.unique(raw)[order]] = np.arange(order.size)
    labels = relabel[np.searchsorted(np.unique(raw), raw)]
    q = g.modularity(labels.tolist(), weights="weight", resolution=float(resolution))
    return labels, float(q)


def network_measures(
    W: Any,
    *,
    layer: str = "W",
    measures: Iterable[str] | None = None,
    w_max: float | None = None,
    resolution: float = 1.0,
    rng: RngLike = None,
) -> tuple[dict[str, Any], "pandas.DataFrame"]:
    r"""The measures of this module for one layer: a per-layer dict and a per-neuron table.

    Parameters
    ----------
    W : array of shape (n_out, n_in)
    layer : str, default "W"
        The layer's name: a column of both outputs, and mixed into an integer ``rng`` seed.
    measures : iterable of str, optional
        A subset of :data:`MEASURES` (``"clustering"``, ``"harmonic"``, ``"current_flow"``,
        ``"subgraph"``, ``"persistence"``, ``"communities"``); default all. Leave out the
        path-based and current-flow ones on wide layers (see the module's costs).
    w_max : float, optional
        Normaliser of neural persistence (:func:`neural_persistence`).
    resolution : float, default 1.0
        Leiden's resolution (:func:`leiden_communities`).
    rng : None, int or numpy.random.Generator
        Seeds Leiden. An int is combined with ``layer`` through
        :func:`netinit._rng.layer_generator`, so every layer gets its own stream.

    Returns
    -------
    layer_row : dict
        ``layer``, ``n_out``, ``n_in``, ``weight_transform`` (``"|w|"``),
        ``distance_transform`` (``"1/|w|"``); with clustering ``clustering_definition`` and
        ``clustering_mean``; ``harmonic_mean``; ``current_flow_closeness_mean``;
        ``subgraph_centrality_log_mean`` and ``log_estrada_index``
        (:math:`\log \sum_v SC(v) = \log \operatorname{tr} e^A`); ``neural_persistence``,
        ``neural_persistence_normalized``, ``persistence_w_max``; ``modularity``,
        ``n_communities``, ``leiden_resolution``. Means run over all ``n_in + n_out`` neurons.
    neurons : pandas.DataFrame
        One row per neuron in node order: ``layer``, ``node``, ``side`` (``"in"``/``"out"``),
        ``neuron`` (index within its side), and as computed ``clustering``, ``harmonic``,
        ``current_flow_closeness``, ``subgraph_centrality`` (``inf`` on overflow),
        ``subgraph_centrality_log``, ``community``.

    Raises
    ------
    ValueError
        An unknown measure name, or a bad ``w_max`` / ``resolution``.
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.random.default_rng(0).normal(size=(6, 4))
    >>> row, neurons = network_measures(W, layer="fc", rng=0)
    >>> row["weight_transform"], neurons.shape
    ('|w|', (10, 10))
    """
    import pandas as pd

    chosen = MEASURES if measures is None else tuple(measures)
    unknown = [m for m in chosen if m not in MEASURES]
    if unknown:
        raise ValueError(f"unknown measure(s) {unknown}; choose from {MEASURES}")
    W = check_matrix(W, str(layer))
    n_out, n_in = (int(v) for v in W.shape)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = layer_generator(int(rng), str(layer))
    row: dict[str, Any] = {"layer": str(layer), "n_out": n_out, "n_in": n_in,
                           "weight_transform": WEIGHT_TRANSFORM,
                           "distance_transform": DISTANCE_TRANSFORM}
    df = pd.DataFrame({
        "layer": str(layer),
        "node": np.arange(n_in + n_out),
        "side": np.array(["in"] * n_in + ["out"] * n_out, dtype=object),
        "neuron": np.concatenate([np.arange(n_in), np.arange(n_out)]),
    })
    if "clustering" in chosen:
        df["clustering"] = bipartite_clustering(W)
        row["clustering_definition"] = CLUSTERING_DEFINITION
        row["clustering_mean"] = float(df["clustering"].mean())
    if "harmonic" in chosen:
        df["harmonic"] = harmonic_centrality(W)
        row["harmonic_mean"] = float(df["harmonic"].mean())
    if "current_flow" in chosen:
        df["current_flow_closeness"] = current_flow_closeness(W)
        row["current_flow_closeness_mean"] = float(df["current_flow_closeness"].mean())
    if "subgraph" in chosen:
        from scipy.special import logsumexp

        logsc = subgraph_centrality(W, log=True)
        with np.errstate(over="ignore"):
            df["subgraph_centrality"] = np.exp(logsc)
        df["subgraph_centrality_log"] = logsc
        row["subgraph_centrality_log_mean"] = float(logsc.mean())
        row["log_estrada_index"] = float(logsumexp(logsc))
    if "persistence" in chosen:
        row.update(neural_persistence(W, w_max=w_max))
    if "communities" in chosen:
        labels, q = leiden_communities(W, resolution=resolution, rng=rng)
        df["community"] = labels
        row["modularity"] = q
        row["n_communities"] = int(labels.max()) + 1
        row["leiden_resolution"] = float(resolution)
    return row, df
