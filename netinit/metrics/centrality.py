r"""Weighted centralities of the neurons of a layer, exact or estimated from sampled sources.

**Which graph.** A layer's graph (:mod:`netinit.graph`) is directed input -> output, hence a
bipartite DAG in which every path is one edge: directed betweenness is 0 everywhere, directed
closeness only sees each neuron's direct neighbours (inputs never reach inputs), the adjacency
matrix is nilpotent (no eigenvector centrality) and PageRank gives every input the same score. All four centralities are
therefore computed on the **undirected** layer graph, where a path may run input -> output ->
input and neurons on the same side are linked through the other side.

**Edge values.** Path-based centralities use the length ``d(e) = 1/|w_e|`` (a strong weight is a
short edge; signed weights are never given to Dijkstra); eigenvector and PageRank use ``|w_e|``.
The output records the transform (``distance_transform = "1/|w|"``).

Definitions (``n`` nodes; ``C(v)`` the connected component of ``v``, ``r_v = |C(v)|``):

* betweenness, normalised by the number of unordered pairs not containing ``v``:
  :math:`B(v) = \binom{n-1}{2}^{-1} \sum_{\{s,t\}: v \notin \{s,t\}} \sigma_{st}(v)/\sigma_{st}`;
* closeness, Wasserman--Faust form for graphs that may be disconnected (pruned weights):
  :math:`C(v) = \frac{(r_v-1)^2}{(n-1)\, F(v)}`, farness :math:`F(v) = \sum_{u \in C(v)} d(v,u)`,
  0 for an isolated neuron (networkx's ``wf_improved=True``; igraph's value times
  ``(r_v-1)/(n-1)``);
* eigenvector: the Perron vector of the ``|w|``-weighted adjacency, scaled to maximum 1 (igraph's
  scale; networkx's unit-norm vector is rescaled). For a bipartite graph it is the pair of
  leading singular vectors of ``|W|``. On a disconnected graph it is supported on the component
  with the largest spectral radius (ties: the one holding the lowest node); others get 0;
* PageRank with damping 0.85 on the ``|w|``-weighted undirected graph (sums to 1).

**Sampled estimates** (Brandes & Pich 2007; Eppstein & Wang 2004). ``k`` sources ``S`` are drawn
uniformly without replacement. In a component ``C`` holding ``m_C >= 1`` sources,

.. math:: \hat B(v) = \binom{n-1}{2}^{-1} \frac{|C|}{m_C} \cdot
          \frac12 \sum_{s \in S \cap C} \delta_s(v), \qquad
          \hat F(v) = \frac{r_v - 1}{m_C} \sum_{s \in S \cap C} d(s, v),

with :math:`\delta_s(v) = \sum_t \sigma_{st}(v)/\sigma_{st}` the dependency of ``s`` on ``v``.
Given ``m_C`` the sources in ``C`` are a uniform sample of ``C`` (of ``C \ {v}`` for ``v`` not a
source), so :math:`\hat B` and :math:`\hat F` are unbiased; for a connected layer
:math:`|C|/m_C = n/k`, the classical pivot estimator. Sources get their exact farness from their
own distance row; components without a source are computed exactly (in practice these are
isolated neurons, which get 0, and tiny fragments of pruned layers). Closeness is
:math:`(r_v-1)^2 / ((n-1)\hat F(v))`: the reciprocal of an unbiased estimate, consistent with a
relative bias of order ``1/k``. The standard error of both falls as ``1/sqrt(k)``.

**Backends.** ``"igraph"`` (default) uses igraph for betweenness (``sources=`` gives the sampled
sum in C), exact closeness and PageRank, ``scipy.sparse.csgraph.dijkstra`` for the sampled
distance rows (about 10x faster than igraph's Dijkstra on dense layers) and ARPACK
(``scipy.sparse.linalg.svds``) for the eigenvector, the leading singular vectors of ``|W|``: the
same vector as igraph's ``eigenvector_centrality``, 8x faster on a 4096x4096 layer.
``"networkx"`` computes everything with networkx; it is slow and serves as a cross-check: both
backends agree to rounding, with the same sources for the same ``rng``. For a given ``rng``
betweenness, closeness and eigenvector are bitwise reproducible; PageRank only to rounding
(PRPACK's sums are not ordered).

**Dense layers.** A mostly dense layer (every neuron linked to more than half of the other
side, hence connected; a complete bipartite graph when no weight is zero) of more than
:data:`DENSE_MIN_NODES` nodes, sampled, with the igraph backend, takes a matrix-native path
(:class:`_Dense`): Dijkstra's order kept in rounds that settle every node within the shortest
edge of the smallest tentative distance, each round relaxing its nodes' rows of ``1/|w|`` as
dense float64 blocks. Shortest paths from a source are then a tree (ties have probability 0 for
continuous weights; a tie hands the layer to igraph), betweenness is counted from subtree sizes
and closeness from the same distance rows, one pass per source for both; eigenvector and
PageRank use the dense ``|W|`` (ARPACK; a GMRES solve of the bipartite PageRank system). The
values are igraph's: betweenness and closeness bit for bit (the same sums ``d(u) + 1/|w|``),
eigenvector and PageRank to rounding. Peak memory about 2.5x a float32 layer, against about 40x
for the igraph graph.

Cost: exact path centralities run one Dijkstra per node, ``O(n m log n)`` for ``m`` non-zero
weights; on a 2-core machine a dense 256x256 layer takes about 0.5 s, 512x512 about 6 s and
4096x4096 about two hours (0.5 s per source for betweenness, as much for closeness), against
about 30 s sampled with k=32 on the igraph path and a few seconds on the dense path
(``bench/bench_centrality.py``). ``method="auto"`` is exact up to :data:`EXACT_MAX_NODES` nodes
and sampled above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from netinit._rng import RngLike, as_generator
from netinit.graph import DISTANCE_TRANSFORM, LayerGraph

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["neuron_centrality", "EXACT_MAX_NODES", "DENSE_MIN_NODES", "DAMPING"]

#: ``method="auto"`` computes exactly up to this many nodes (``n_in + n_out``), samples above.
EXACT_MAX_NODES = 512
#: PageRank damping factor.
DAMPING = 0.85

_METHODS = ("auto", "exact", "sampled")
_BACKENDS = ("igraph", "networkx")


class _Layer:
    """The arrays every backend shares, built once from ``W`` (edges in row-major order).

    ``src`` (input node ``j``) and ``dst`` (node ``n_in + i``) are int32 when they fit, ``aw``
    and ``dist`` float64; ``indptr`` makes ``(aw or dist, src, indptr)`` the CSR biadjacency of
    shape ``(n_out, n_in)`` without a sort or a copy.
    """

    def __init__(self, W: np.ndarray, mask: np.ndarray) -> None:
        self.n_out, self.n_in = (int(v) for v in W.shape)
        self.n = self.n_in + self.n_out
        itype = np.int32 if self.n < 2**31 - 1 else np.int64
        deg = np.count_nonzero(mask, axis=1)
        self.indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
        self.src = np.nonzero(mask)[1].astype(itype)
        self.dst = np.repeat(np.arange(self.n_in, self.n, dtype=itype), deg)
        self.aw = np.abs(W[mask], dtype=np.float64)
        self.dist = 1.0 / self.aw

    def biadjacency(self, data: np.ndarray):
        import scipy.sparse as sp

        return sp.csr_matrix((data, self.src, self.indptr), shape=(self.n_out, self.n_in))

    def adjacency(self, data: np.ndarray):
        """``(n, n)`` CSR holding each edge once (output row, input column): use undirected."""
        import scipy.sparse as sp

        indptr = np.concatenate([np.zeros(self.n_in, np.int64), self.indptr])
        return sp.csr_matrix((data, self.src, indptr), shape=(self.n, self.n))

    def components(self) -> np.ndarray:
        from scipy.sparse.csgraph import connected_components

        return connected_components(self.adjacency(self.aw), directed=False)[1]


class _Igraph:
    """igraph for betweenness, exact closeness and PageRank; scipy for distance rows."""

    def __init__(self, layer: _Layer, mask: np.ndarray):
        import igraph as ig

        self.layer = layer
        # Biadjacency of (n_in, n_out) numbers inputs first and lists the edges column by
        # column, i.e. in row-major order of W, like _Layer; 1.5x faster than add_edges
        g = ig.Graph.Biadjacency(mask.T)
        m = len(layer.src)
        probe = np.unique(np.linspace(0, m - 1, 64).astype(np.int64)) if m else []
        if m and not np.array_equal(
            np.array([g.es[int(e)].tuple for e in probe]),
            np.column_stack([layer.src[probe], layer.dst[probe]]),
        ):  # pragma: no cover - a future igraph with another edge order
            g = ig.Graph(n=layer.n, directed=False)
            g.add_edges(np.column_stack([layer.src, layer.dst]))
        self.g = g

    def betweenness_raw(self, sources):
        kw = {} if sources is None else {"sources": sources.tolist()}
        return np.asarray(self.g.betweenness(weights=self.layer.dist, directed=False, **kw), float)

    def distances(self, sources):
        from scipy.sparse.csgraph import dijkstra

        return dijkstra(self.layer.adjacency(self.layer.dist), directed=False, indices=sources)

    def closeness(self, sizes_of_node):
        c = np.asarray(self.g.closeness(weights=self.layer.dist, normalized=True), float)
        c = np.nan_to_num(c, nan=0.0)
        return c * (sizes_of_node - 1) / (self.layer.n - 1)

    eigenvector = None  # _eigenvector's singular vectors are the answer: no graph call needed

    def pagerank(self):
        # igraph 1.0 reads a numpy array here as an attribute name: pass a list
        weights = self.layer.aw.tolist()
        pr = self.g.personalized_pagerank(directed=False, damping=DAMPING, weights=weights)
        return np.asarray(pr, float)


class _Networkx:
    """networkx on the undirected layer graph (the cross-check backend)."""

    def __init__(self, layer: _Layer, mask: np.ndarray):
        import networkx as nx

        self.nx, self.n = nx, layer.n
        G = nx.Graph()
        G.add_nodes_from(range(layer.n))
        data = ({"distance": d, "abs_weight": a}
                for d, a in zip(layer.dist.tolist(), layer.aw.tolist()))
        G.add_edges_from(zip(layer.src.tolist(), layer.dst.tolist(), data))
        self.G = G

    def _vec(self, values: dict, nodes=None):
        nodes = range(self.n) if nodes is None else nodes
        return np.array([values[v] for v in nodes], dtype=float)

    def betweenness_raw(self, sources):
        nx = self.nx
        if sources is None:
            b = nx.betweenness_centrality(self.G, weight="distance", normalized=False)
        else:
            b = nx.betweenness_centrality_subset(
                self.G, sources=sources.tolist(), targets=list(self.G), weight="distance",
                normalized=False,
            )
        return self._vec(b)

    def distances(self, sources):
        D = np.full((len(sources), self.n), np.inf)
        for r, s in enumerate(sources.tolist()):
            lengths = self.nx.single_source_dijkstra_path_length(self.G, s, weight="distance")
            D[r, list(lengths)] = list(lengths.values())
        return D

    def closeness(self, sizes_of_node):
        c = self.nx.closeness_centrality(self.G, distance="distance", wf_improved=True)
        return self._vec(c)

    def eigenvector(self, nodes):
        if len(nodes) <= 2:  # one edge (ARPACK needs 3 nodes): both ends alike
            return np.ones(len(nodes))
        sub = self.G.subgraph(nodes.tolist())
        e = self.nx.eigenvector_centrality_numpy(sub, weight="abs_weight")
        return self._vec(e, nodes.tolist())

    def pagerank(self):
        pr = self.nx.pagerank(self.G, alpha=DAMPING, weight="abs_weight", tol=1e-13, max_iter=2000)
        return self._vec(pr)


def _path_centralities(impl, labels: np.ndarray, sources: np.ndarray | None):
    """Betweenness, closeness and farness; exact when ``sources`` is None, else estimated."""
    n = len(labels)
    sizes = np.bincount(labels)
    r = sizes[labels]
    pairs = (n - 1) * (n - 2) / 2
    if sources is None:
        bw = impl.betweenness_raw(None)
        close = impl.closeness(r)
        far = np.where(close > 0, (r - 1.0) ** 2 / ((n - 1) * np.where(close > 0, close, 1.0)), 0.0)
        return (bw / pairs if n > 2 else np.zeros(n)), close, far
    hits = np.bincount(labels[sources], minlength=len(sizes))
    missed = np.flatnonzero((hits == 0) & (sizes > 1))  # components without a source: exact
    extra = np.flatnonzero(np.isin(labels, missed))
    rows = np.union1d(sources, extra)
    # betweenness: only sources in C(v) contribute to v; rescale each component by |C|/m_C
    scale = np.where(hits[labels] > 0, sizes[labels] / np.maximum(hits[labels], 1), 1.0)
    bw = impl.betweenness_raw(rows) * scale
    # farness: own row for every row node, mean over the component's sources for the others
    D = impl.distances(rows)
    finite = np.isfinite(D)
    Dz = np.where(finite, D, 0.0)
    far = np.empty(n)
    far[rows] = Dz.sum(axis=1)
    others = np.setdiff1d(np.arange(n), rows)
    in_s = np.isin(rows, sources)
    cnt = finite[in_s][:, others].sum(axis=0)
    tot = Dz[in_s][:, others].sum(axis=0)
    far[others] = (r[others] - 1) * tot / np.maximum(cnt, 1)
    far[r == 1] = 0.0
    close = np.where(far > 0, (r - 1.0) ** 2 / ((n - 1) * np.where(far > 0, far, 1.0)), 0.0)
    return (bw / pairs if n > 2 else np.zeros(n)), close, far


def _perron(B) -> tuple[np.ndarray, float, np.ndarray]:
    """Leading singular triplet ``(u, s, v)`` of a non-negative sparse block, signs made >= 0."""
    p, q = B.shape
    if min(p, q) <= 32:
        U, S, Vt = np.linalg.svd(B.toarray() if hasattr(B, "toarray") else B, full_matrices=False)
        u, s, v = U[:, 0], S[0], Vt[0]
    else:
        from scipy.sparse.linalg import svds

        u, S, vt = svds(B, k=1, v0=np.ones(min(p, q)), solver="arpack")
        u, s, v = u[:, 0], S[0], vt[0]
    return np.abs(u), float(s), np.abs(v)


def _eigenvector(impl, layer: _Layer, labels: np.ndarray) -> np.ndarray:
    """Eigenvector centrality, max 1, on the component with the largest spectral radius."""
    n_in = layer.n_in
    sizes = np.bincount(labels)
    comps = np.flatnonzero(sizes > 1)
    out = np.zeros(layer.n)
    if len(comps) == 0:
        return out
    B = layer.biadjacency(layer.aw)
    best = None
    for c in comps:  # A = [[0, B^T], [B, 0]]: eigenvector (v, u) for B = s u v^T + ...
        cols = np.flatnonzero(labels[:n_in] == c)
        rows = np.flatnonzero(labels[n_in:] == c)
        block = B if len(cols) + len(rows) == layer.n else B[rows][:, cols]
        u, s, v = _perron(block)
        if best is None or s > best[0]:
            best = (s, c, cols, rows, u, v)
    _, c, cols, rows, u, v = best
    if impl.eigenvector is None:
        out[cols], out[n_in + rows] = v, u
    else:
        nodes = np.flatnonzero(labels == c)
        out[nodes] = np.abs(impl.eigenvector(nodes))
    return out / out.max()


#: A mostly dense layer (every neuron linked to more than half the other side) of more nodes than
#: this takes the dense path (:class:`_Dense`) with the igraph backend and sampled sources.
DENSE_MIN_NODES = EXACT_MAX_NODES
_CHUNK = 64  # settled nodes relaxed per dense block
_TIE = 1e-9  # relative gap under which two path lengths count as a tie (igraph's is 1e-10)


class _Tie(Exception):
    """Two shortest paths of (nearly) equal length: the dense path hands over to igraph."""


class _Dense:
    """Shortest paths of a mostly dense layer by dense, vectorised relaxations (a zero weight is
    an edge of infinite length, i.e. none).

    Dijkstra's order is kept in rounds: with ``mu`` the smallest tentative distance and
    ``l_min = 1 / max|w|`` the shortest edge, every unsettled node whose tentative distance is
    below ``mu + l_min`` is final (a path through another unsettled node is at least
    ``mu + l_min`` long), so a round settles all of them and relaxes their edges as dense blocks
    of ``1/|w|`` in float64: the same sums ``d(u) + 1/|w_uv|`` Dijkstra forms, hence the same
    distances. A layer of Gaussian-like weights takes 10 to 30 rounds.

    Shortest paths must be unique (ties have probability 0 for continuous weights): a node
    whose shortest path has a rival within :data:`_TIE` (relative; igraph's own tolerance is
    1e-10) raises :class:`_Tie`, and the caller uses igraph instead. With unique paths the shortest-path DAG
    from ``s`` is a tree, ``sigma = 1`` and Brandes' dependency ``delta_s(v)`` is the number of
    descendants of ``v``. ``betweenness_raw`` and ``distances`` have the meaning of the igraph
    backend's, from one pass per source. Memory: a transposed copy of ``W`` and float64 blocks of
    ``_CHUNK`` rows.
    """

    def __init__(self, W: np.ndarray) -> None:
        self.A, self.AT = W, np.ascontiguousarray(W.T)  # signed; |w| is taken block by block
        self.n_out, self.n_in = W.shape
        self.n = self.n_in + self.n_out
        self.l_min = 1.0 / max(float(W.max()), -float(W.min()))
        self._done: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _relax(self, M: np.ndarray, rows: np.ndarray, d_rows: np.ndarray, key: np.ndarray,
               pred: np.ndarray, tie: np.ndarray, open_: np.ndarray, offset: int) -> None:
        """Relax the edges from the settled nodes ``rows`` (rows of ``M``) to the open targets;
        ``tie`` marks targets whose current best length has a rival within :data:`_TIE`."""
        targets = np.flatnonzero(open_)
        if len(targets) == 0:
            return
        subset = len(targets) < M.shape[1]
        cols = np.arange(len(targets))
        for a in range(0, len(rows), _CHUNK):
            r = rows[a:a + _CHUNK]
            T = np.abs(M[r][:, targets] if subset else M[r], dtype=np.float64)
            with np.errstate(divide="ignore"):  # a zero weight: no edge, an infinite length
                np.divide(1.0, T, out=T)
            T += d_rows[a:a + _CHUNK, None]
            best = T.argmin(axis=0)
            cand = T[best, cols]
            rival = np.count_nonzero(T <= cand * (1.0 + _TIE), axis=0) > 1 if len(r) > 1 else False
            old = key[targets]
            better = cand < old * (1.0 - _TIE)
            near = ~better & (cand <= old * (1.0 + _TIE))  # never for old = inf
            key[targets[better]] = cand[better]
            pred[targets[better]] = r[best[better]] + offset
            tie[targets[better]] = rival[better] if len(r) > 1 else False
            tie[targets[near]] = True
            lower = near & (cand < old)
            key[targets[lower]] = cand[lower]
            pred[targets[lower]] = r[best[lower]] + offset

    def _source(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances from ``s`` and the descendants of every node in its shortest-path tree."""
        if s in self._done:
            return self._done[s]
        n, n_in = self.n, self.n_in
        key = np.full(n, np.inf)
        pred = np.full(n, -1, dtype=np.int64)
        tie = np.zeros(n, dtype=bool)
        settled = np.zeros(n, dtype=bool)
        key[s] = 0.0
        order = []
        while True:
            open_key = np.where(settled, np.inf, key)
            mu = open_key.min()
            if not np.isfinite(mu):
                break
            batch = np.flatnonzero(open_key < mu + self.l_min * (1.0 - _TIE))
            settled[batch] = True
            order.append(batch)
            ins, outs = batch[batch < n_in], batch[batch >= n_in]
            if len(ins):  # inputs j relax outputs: rows of A^T
                self._relax(self.AT, ins, key[ins], key[n_in:], pred[n_in:], tie[n_in:], ~settled[n_in:], 0)
            if len(outs):  # outputs i relax inputs: rows of A
                self._relax(self.A, outs - n_in, key[outs], key[:n_in], pred[:n_in], tie[:n_in],
                            ~settled[:n_in], n_in)
        if tie.any():
            raise _Tie
        seq = np.concatenate(order)
        seq = seq[np.argsort(key[seq], kind="stable")][::-1].tolist()
        desc = [0.0] * n
        p = pred.tolist()
        for v in seq:  # farthest first: every node adds itself and its subtree to its parent
            u = p[v]
            if u >= 0:
                desc[u] += desc[v] + 1.0
        desc_arr = np.array(desc)
        desc_arr[s] = 0.0  # the source's own dependency is not counted
        self._done[s] = (key, desc_arr)
        return key, desc_arr

    def betweenness_raw(self, sources: np.ndarray) -> np.ndarray:
        return sum(self._source(int(s))[1] for s in sources) * 0.5

    def distances(self, sources: np.ndarray) -> np.ndarray:
        return np.stack([self._source(int(s))[0] for s in sources])


def _mostly_dense(W: np.ndarray) -> bool:
    """Every output has non-zero weights to more than half the inputs and every input to more
    than half the outputs: then any two neurons on a side share a neighbour, so the layer is
    connected, and its matrix is the natural store of its edges."""
    n_out, n_in = W.shape
    return (2 * int(np.count_nonzero(W, axis=1).min()) > n_in
            and 2 * int(np.count_nonzero(W, axis=0).min()) > n_out)


def _dense_pagerank(A: np.ndarray) -> np.ndarray:
    """PageRank of the undirected layer with weights ``A = |W|`` (no isolated node).

    With strengths ``s_in = A^T 1``, ``s_out = A 1`` and ``c = (1 - alpha)/n``, the outputs'
    ranks are ``x_out = c + alpha A (x_in / s_in)`` and the inputs' solve the ``n_in`` system
    ``(I - alpha^2 A^T D_out^{-1} A D_in^{-1}) x_in = c + alpha A^T (c / s_out)``, solved by
    GMRES to 1e-14 (its matrix is the identity minus ``alpha^2`` times a stochastic one: a few
    iterations of two products each).
    """
    from scipy.sparse.linalg import LinearOperator, gmres

    n_out, n_in = A.shape
    n = n_in + n_out
    s_in, s_out = A.sum(axis=0, dtype=np.float64), A.sum(axis=1, dtype=np.float64)
    c = (1.0 - DAMPING) / n
    op = LinearOperator((n_in, n_in), dtype=np.float64,
                        matvec=lambda x: x - DAMPING**2 * (A.T @ ((A @ (x.ravel() / s_in)) / s_out)))
    rhs = c + DAMPING * (A.T @ (c / s_out))
    x_in, info = gmres(op, rhs, x0=rhs, rtol=1e-14, atol=0.0, restart=50, maxiter=200)
    if info != 0:  # pragma: no cover - GMRES on this well-conditioned system
        raise RuntimeError(f"PageRank: GMRES did not converge (info={info})")
    x_out = c + DAMPING * (A @ (x_in / s_in))
    x = np.concatenate([x_in, x_out])
    return x / x.sum()


def _dense_centralities(W: np.ndarray, sources: np.ndarray):
    """Betweenness, closeness, eigenvector and PageRank of a connected, mostly dense layer
    (:func:`_mostly_dense`), or None when two shortest paths tie (:class:`_Dense`)."""
    dense = _Dense(W)
    try:
        bw, close, _ = _path_centralities(dense, np.zeros(dense.n, dtype=np.int64), sources)
    except _Tie:
        return None
    del dense  # its transposed copy of W
    A = np.abs(W, dtype=np.float64)
    u, _, v = _perron(A)
    eig = np.concatenate([v, u])
    return bw, close, eig / eig.max(), _dense_pagerank(A)


def neuron_centrality(
    W: Any,
    *,
    method: str = "auto",
    k: int = 64,
    rng: RngLike = None,
    backend: str = "igraph",
) -> "pandas.DataFrame":
    """Betweenness, closeness, eigenvector centrality and PageRank of every neuron of a layer.

    Computed on the undirected weighted layer graph, with edge length ``1/|w|`` for paths and
    ``|w|`` for eigenvector and PageRank; definitions, estimators and conventions are in the
    module docstring (:mod:`netinit.metrics.centrality`).

    Parameters
    ----------
    W : array of shape (n_out, n_in), or LayerGraph
        Canonical weight matrix or its graph.
    method : {"auto", "exact", "sampled"}, default "auto"
        ``"auto"`` is exact up to :data:`EXACT_MAX_NODES` nodes, sampled above. ``"sampled"``
        with ``k >= n_nodes`` is exact.
    k : int, default 64
        Number of sampled sources (path centralities only; eigenvector and PageRank are exact).
    rng : None, int or numpy.random.Generator
        Draws the sources (``numpy.random.Generator.choice`` without replacement, one call).
    backend : {"igraph", "networkx"}, default "igraph"

    Returns
    -------
    pandas.DataFrame
        One row per node in node order (inputs first): ``node``, ``side`` (``"in"`` for input
        neurons, ``"out"`` for output neurons), ``neuron`` (index within its side),
        ``betweenness``, ``closeness``, ``eigenvector``, ``pagerank``, ``centrality_method``
        (``"exact"`` or ``"sampled(k=64)"``) and ``distance_transform`` (``"1/|w|"``).
        ``attrs`` holds the backend and damping.

    Raises
    ------
    ValueError
        Unknown ``method`` or ``backend``, or ``k < 1``.
    ShapeError, NonFiniteError, DtypeError
        ``W`` is not a valid weight matrix (see :class:`netinit.graph.LayerGraph`).

    References
    ----------
    U. Brandes, C. Pich, "Centrality estimation in large networks", Int. J. Bifurcation and
    Chaos 17 (2007). D. Eppstein, J. Wang, "Fast approximation of centrality", JGAA 8 (2004).
    S. Wasserman, K. Faust, "Social Network Analysis" (1994).

    Examples
    --------
    >>> import numpy as np
    >>> df = neuron_centrality(np.ones((2, 2)))  # a 4-cycle: all four neurons alike
    >>> cols = ["betweenness", "closeness", "eigenvector", "pagerank"]
    >>> df.loc[0, cols].astype(float).round(4).tolist()
    [0.1667, 0.75, 1.0, 0.25]
    >>> df.loc[0, "centrality_method"], df.loc[0, "distance_transform"]
    ('exact', '1/|w|')
    """
    import pandas as pd

    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    graph = W if isinstance(W, LayerGraph) else LayerGraph(W)
    n, n_in, n_out = graph.n_nodes, graph.n_in, graph.n_out
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_NODES else "sampled"
    sources = None
    label = "exact"
    if method == "sampled" and k < n:
        sources = np.sort(as_generator(rng).choice(n, size=int(k), replace=False))
        label = f"sampled(k={int(k)})"
    dense = None
    if backend == "igraph" and sources is not None and n > DENSE_MIN_NODES and _mostly_dense(graph.W):
        dense = _dense_centralities(graph.W, sources)
    if dense is not None:
        bw, close, eig, pr = dense
    else:
        mask = graph.W != 0
        layer = _Layer(graph.W, mask)
        labels = layer.components()
        impl = (_Igraph if backend == "igraph" else _Networkx)(layer, mask)
        del mask
        bw, close, _ = _path_centralities(impl, labels, sources)
        eig = _eigenvector(impl, layer, labels)
        pr = impl.pagerank()
    df = pd.DataFrame({
        "node": np.arange(n),
        "side": np.array(["in"] * n_in + ["out"] * n_out, dtype=object),
        "neuron": np.concatenate([np.arange(n_in), np.arange(n_out)]),
        "betweenness": bw,
        "closeness": close,
        "eigenvector": eig,
        "pagerank": pr,
        "centrality_method": label,
        "distance_transform": DISTANCE_TRANSFORM,
    })
    df.attrs.update({"backend": backend, "damping": DAMPING})
    return df
