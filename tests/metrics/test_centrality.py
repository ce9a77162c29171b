"""Centralities: igraph against networkx, closed forms, and the sampled estimators."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from netinit.errors import NonFiniteError, ShapeError
from netinit.graph import LayerGraph
from netinit.metrics.centrality import (
    EXACT_MAX_NODES,
    _Igraph,
    _Layer,
    _Networkx,
    _path_centralities,
    neuron_centrality,
)

COLS = ["betweenness", "closeness", "eigenvector", "pagerank"]


def random_layer(seed, shape=(7, 9), prune=0.3, isolate=True):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=shape)
    W[rng.random(shape) < prune] = 0.0
    if isolate:
        W[0] = 0.0  # an isolated output neuron
        W[:, 1] = 0.0  # an isolated input neuron
    return W


def impl_for(W, backend=_Igraph):
    layer = _Layer(W, W != 0)
    return backend(layer, W != 0), layer.components()


@pytest.mark.parametrize("seed", [0, 1])
def test_igraph_graph_has_the_layer_edge_order(seed):
    W = random_layer(seed, shape=(9, 13), prune=0.5)
    layer = _Layer(W, W != 0)
    g = _Igraph(layer, W != 0).g
    src, dst, w = LayerGraph(W).edges()
    assert g.get_edgelist() == list(zip(src.tolist(), dst.tolist()))
    np.testing.assert_array_equal(layer.aw, np.abs(w))
    np.testing.assert_array_equal(layer.biadjacency(layer.aw).toarray(), np.abs(W))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_igraph_and_networkx_agree_exact(seed):
    W = random_layer(seed)
    a = neuron_centrality(W, method="exact", backend="igraph")
    b = neuron_centrality(W, method="exact", backend="networkx")
    np.testing.assert_allclose(a[COLS].to_numpy(), b[COLS].to_numpy(), rtol=1e-8, atol=1e-12)
    assert (a["centrality_method"] == "exact").all()
    assert (a["distance_transform"] == "1/|w|").all()


@pytest.mark.parametrize("seed", [0, 1])
def test_igraph_and_networkx_agree_sampled(seed):
    W = random_layer(seed, shape=(12, 10))
    a = neuron_centrality(W, method="sampled", k=6, rng=seed, backend="igraph")
    b = neuron_centrality(W, method="sampled", k=6, rng=seed, backend="networkx")
    np.testing.assert_allclose(a[COLS].to_numpy(), b[COLS].to_numpy(), rtol=1e-8, atol=1e-12)
    assert (a["centrality_method"] == "sampled(k=6)").all()


def test_frame_layout():
    df = neuron_centrality(random_layer(0))
    assert list(df.columns) == ["node", "side", "neuron", *COLS, "centrality_method",
                                "distance_transform"]
    assert df["node"].tolist() == list(range(16))
    assert df["side"].tolist() == ["in"] * 9 + ["out"] * 7
    assert df["neuron"].tolist() == list(range(9)) + list(range(7))
    assert df.attrs["backend"] == "igraph"


def test_exact_against_independent_oracles():
    W = random_layer(3, shape=(6, 8), isolate=False)
    df = neuron_centrality(W, method="exact")
    n = 14
    # closeness: all-pairs Dijkstra on the undirected graph with lengths 1/|w|
    g = LayerGraph(W)
    src, dst, w = g.edges()
    D = dijkstra(csr_matrix((1 / np.abs(w), (src, dst)), shape=(n, n)), directed=False)
    assert np.isfinite(D).all()  # connected
    np.testing.assert_allclose(df["closeness"], (n - 1) / D.sum(axis=1), rtol=1e-12)
    # eigenvector: leading singular vectors of |W| (inputs: right, outputs: left), max 1
    U, _, Vt = np.linalg.svd(np.abs(W))
    x = np.abs(np.concatenate([Vt[0], U[:, 0]]))
    np.testing.assert_allclose(df["eigenvector"], x / x.max(), rtol=1e-6)
    assert df["pagerank"].sum() == pytest.approx(1.0)
    assert df["betweenness"].between(0, 1).all()


def test_eigenvector_equals_igraph_and_networkx_on_a_larger_layer():
    W = random_layer(6, shape=(40, 36), prune=0.6, isolate=False)  # ARPACK path (sides > 32)
    df = neuron_centrality(W, method="exact")
    H = LayerGraph(W).to_igraph(directed=False)
    ig_eig = np.asarray(H.eigenvector_centrality(weights=np.abs(H.es["weight"])))
    np.testing.assert_allclose(df["eigenvector"], ig_eig, rtol=1e-8, atol=1e-12)
    ref = neuron_centrality(W, method="exact", backend="networkx")
    np.testing.assert_allclose(df[COLS].to_numpy(), ref[COLS].to_numpy(), rtol=1e-8, atol=1e-12)


def test_closed_form_on_a_complete_bipartite_layer():
    m, c = 5, 0.5  # K_{m,m}, every weight c: all neurons are equivalent
    df = neuron_centrality(np.full((m, m), c), method="exact")
    n, d = 2 * m, 1 / c
    # each neuron is one of m middles of the shortest paths between C(m, 2) pairs on the other side
    assert np.allclose(df["betweenness"], (m - 1) / 2 / ((n - 1) * (n - 2) / 2))
    assert np.allclose(df["closeness"], (n - 1) / (m * d + (m - 1) * 2 * d))
    assert np.allclose(df["eigenvector"], 1.0)
    assert np.allclose(df["pagerank"], 1 / n)
    # the sign of the weights does not matter
    assert np.allclose(neuron_centrality(-np.full((m, m), c))[COLS], df[COLS])


def test_disconnected_layer():
    W = np.zeros((4, 5))
    W[:2, :2] = [[1.0, 2.0], [0.5, 1.0]]  # component A
    W[2:, 2:4] = 3.0 * np.array([[1.0, 2.0], [0.5, 1.0]])  # component B: same shape, 3x stronger
    df = neuron_centrality(W, method="exact")
    iso = 4  # input 4 is isolated
    assert df.loc[iso, ["betweenness", "closeness", "eigenvector"]].tolist() == [0, 0, 0]
    a_nodes, b_nodes = [0, 1, 5, 6], [2, 3, 7, 8]
    assert (df.loc[a_nodes, "eigenvector"] == 0).all()  # B has the larger spectral radius
    assert df.loc[b_nodes, "eigenvector"].max() == pytest.approx(1.0)
    # closeness is Wasserman-Faust: scaled by (r - 1) / (n - 1)
    ref = neuron_centrality(W[2:, 2:4], method="exact")
    np.testing.assert_allclose(df.loc[b_nodes, "closeness"], ref["closeness"] * 3 / 8)
    nx_df = neuron_centrality(W, method="exact", backend="networkx")
    np.testing.assert_allclose(df[COLS].to_numpy(), nx_df[COLS].to_numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (2, 1)])
@pytest.mark.parametrize("method", ["exact", "sampled"])
def test_tiny_layers_agree(shape, method):
    W = np.arange(1.0, np.prod(shape) + 1).reshape(shape)
    a = neuron_centrality(W, method=method, k=2, rng=0)
    b = neuron_centrality(W, method=method, k=2, rng=0, backend="networkx")
    np.testing.assert_allclose(a[COLS].to_numpy(), b[COLS].to_numpy(), rtol=1e-8, atol=1e-12)
    assert a["eigenvector"].max() == 1.0


def test_empty_layer():
    df = neuron_centrality(np.zeros((3, 2)))
    assert (df[["betweenness", "closeness", "eigenvector"]] == 0).all().all()
    np.testing.assert_allclose(df["pagerank"], 1 / 5)


@pytest.mark.parametrize(
    "W",
    [random_layer(0, shape=(4, 3), prune=0.0, isolate=False),  # connected
     random_layer(1, shape=(4, 4), prune=0.4)],  # isolated neurons and maybe fragments
)
def test_sampled_estimators_are_unbiased_exhaustively(W):
    """Averaged over every k-subset of sources, betweenness and farness are exact."""
    impl, labels = impl_for(W)
    n = len(labels)
    b_exact, _, f_exact = _path_centralities(impl, labels, None)
    for k in (1, 3):
        est = [_path_centralities(impl, labels, np.array(S)) for S in combinations(range(n), k)]
        np.testing.assert_allclose(np.mean([e[0] for e in est], axis=0), b_exact, atol=1e-12)
        np.testing.assert_allclose(np.mean([e[2] for e in est], axis=0), f_exact, rtol=1e-12)


def test_post_stratified_estimator_on_two_components():
    W = np.zeros((4, 4))
    W[:2, :2] = [[1.0, 2.0], [0.5, 1.0]]
    W[2:, 2:] = [[1.0, 0.3], [0.5, 2.0]]
    impl, labels = impl_for(W)
    b_exact, _, f_exact = _path_centralities(impl, labels, None)
    est = [_path_centralities(impl, labels, np.array(S)) for S in combinations(range(8), 2)]
    np.testing.assert_allclose(np.mean([e[0] for e in est], axis=0), b_exact, atol=1e-12)
    np.testing.assert_allclose(np.mean([e[2] for e in est], axis=0), f_exact, rtol=1e-12)
    # a component without any source is computed exactly
    b, _, f = _path_centralities(impl, labels, np.array([0]))
    np.testing.assert_allclose(b[labels != labels[0]], b_exact[labels != labels[0]])
    np.testing.assert_allclose(f[labels != labels[0]], f_exact[labels != labels[0]])


def test_networkx_estimator_matches_igraph_for_given_sources():
    W = random_layer(4, shape=(5, 6))
    (ig_impl, labels), (nx_impl, _) = impl_for(W, _Igraph), impl_for(W, _Networkx)
    for S in ([0, 3, 9], [2, 7]):
        a = _path_centralities(ig_impl, labels, np.array(S))
        b = _path_centralities(nx_impl, labels, np.array(S))
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


def test_sampled_error_is_bounded_on_a_40x40_layer():
    W = np.random.default_rng(7).normal(size=(40, 40))
    exact = neuron_centrality(W, method="exact")
    est = neuron_centrality(W, method="sampled", k=32, rng=0)
    rel = np.abs(est["closeness"] / exact["closeness"] - 1)
    assert rel.max() < 0.15 and rel.median() < 0.02  # measured 0.074 and 0.006
    l1 = np.abs(est["betweenness"] - exact["betweenness"]).sum() / exact["betweenness"].sum()
    assert l1 < 0.4  # measured 0.27
    assert np.corrcoef(est["betweenness"], exact["betweenness"])[0, 1] > 0.85  # measured 0.92
    # eigenvector and PageRank are never sampled
    np.testing.assert_allclose(est[["eigenvector", "pagerank"]], exact[["eigenvector", "pagerank"]])


def test_mean_over_seeds_approaches_exact():
    W = random_layer(5, shape=(6, 7), prune=0.2, isolate=False)
    exact = neuron_centrality(W, method="exact")
    runs = [neuron_centrality(W, method="sampled", k=4, rng=seed) for seed in range(300)]
    b = np.array([r["betweenness"] for r in runs])
    far = np.array([1 / r["closeness"] for r in runs])  # (n-1)/F: unbiased farness, rescaled
    for est, target in ((b, exact["betweenness"]), (far, 1 / exact["closeness"])):
        se = est.std(axis=0) / np.sqrt(len(est)) + 1e-12
        assert (np.abs(est.mean(axis=0) - target) < 4.5 * se + 1e-9).all()


def test_method_selection_and_determinism():
    small = random_layer(0)
    assert neuron_centrality(small)["centrality_method"][0] == "exact"
    assert neuron_centrality(small, method="sampled", k=16)["centrality_method"][0] == "exact"
    big = np.random.default_rng(0).normal(size=(EXACT_MAX_NODES // 2 + 1, EXACT_MAX_NODES // 2))
    big[np.abs(big) < 1.5] = 0.0  # sparse: quick
    a = neuron_centrality(big, k=8, rng=1)
    assert a["centrality_method"][0] == "sampled(k=8)"
    b = neuron_centrality(big, k=8, rng=np.random.default_rng(1))
    # bitwise reproducible but PageRank (PRPACK's sums are not ordered): equal to rounding
    np.testing.assert_array_equal(a[COLS[:3]], b[COLS[:3]])
    np.testing.assert_allclose(a["pagerank"], b["pagerank"], rtol=1e-12)
    c = neuron_centrality(big, k=8, rng=2)
    assert not np.array_equal(a["betweenness"], c["betweenness"])


def test_bad_arguments():
    W = np.ones((3, 3))
    with pytest.raises(ValueError, match=r"method must be one of .* got 'fast'"):
        neuron_centrality(W, method="fast")
    with pytest.raises(ValueError, match=r"backend must be one of .* got 'graph-tool'"):
        neuron_centrality(W, backend="graph-tool")
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        neuron_centrality(W, k=0)
    with pytest.raises(NonFiniteError, match="non-finite value"):
        neuron_centrality(np.array([[np.nan, 1.0]]))
    with pytest.raises(ShapeError, match="2-D"):
        neuron_centrality(np.ones(4))
    with pytest.raises(ShapeError, match="non-empty"):
        neuron_centrality(np.ones((0, 4)))


# -- the dense path of complete layers ---------------------------------------------------------

def _both_paths(W, monkeypatch, **kw):
    import netinit.metrics.centrality as cm

    monkeypatch.setattr(cm, "DENSE_MIN_NODES", float("inf"))
    old = neuron_centrality(W, **kw)
    monkeypatch.setattr(cm, "DENSE_MIN_NODES", 0)
    return old, neuron_centrality(W, **kw)


@pytest.mark.parametrize(("shape", "k", "seed", "prune"), [((7, 9), 5, 0, 0.0), ((30, 20), 12, 1, 0.0),
                                                            ((200, 150), 16, 2, 0.0), ((150, 200), 16, 3, 0.0),
                                                            ((120, 90), 16, 4, 0.3)])
def test_dense_path_equals_igraph(shape, k, seed, prune, monkeypatch):
    import netinit.metrics.centrality as cm

    calls, real = [], cm._Dense

    class Spy(real):
        def __init__(self, W):
            calls.append(W.shape)
            super().__init__(W)

    monkeypatch.setattr(cm, "_Dense", Spy)
    rng = np.random.default_rng(seed)
    W = rng.normal(size=shape)
    W[rng.random(shape) < prune] = 0.0  # pruned weights: missing edges
    old, new = _both_paths(W, monkeypatch, method="sampled", k=k, rng=seed)
    assert calls == [shape]  # the dense path ran (once)
    # path centralities: the same sums in the same order, bit for bit
    np.testing.assert_array_equal(new[["betweenness", "closeness"]], old[["betweenness", "closeness"]])
    np.testing.assert_allclose(new["eigenvector"], old["eigenvector"], rtol=1e-10)
    np.testing.assert_allclose(new["pagerank"], old["pagerank"], rtol=1e-9)
    assert (new["centrality_method"] == f"sampled(k={k})").all()


def test_dense_path_against_networkx(monkeypatch):
    import netinit.metrics.centrality as cm

    W = np.random.default_rng(5).normal(size=(12, 16)).astype(np.float32)
    monkeypatch.setattr(cm, "DENSE_MIN_NODES", 0)
    a = neuron_centrality(W, method="sampled", k=10, rng=4)
    b = neuron_centrality(W, method="sampled", k=10, rng=4, backend="networkx")
    np.testing.assert_allclose(a[COLS].to_numpy(), b[COLS].to_numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("W", [np.ones((30, 40)), np.tile([1.0, -2.0, 0.5, 1.0], (25, 10))])
def test_dense_path_hands_ties_to_igraph(W, monkeypatch):
    import netinit.metrics.centrality as cm

    assert cm._dense_centralities(W, np.arange(0, 60, 7)) is None  # equal paths: not a tree
    old, new = _both_paths(W, monkeypatch, method="sampled", k=9, rng=0)
    np.testing.assert_array_equal(new[COLS], old[COLS])


def test_sparse_layers_keep_the_igraph_path(monkeypatch):
    import netinit.metrics.centrality as cm

    W = random_layer(0, shape=(40, 30), prune=0.3)  # isolated neurons: not mostly dense
    assert not cm._mostly_dense(W)
    monkeypatch.setattr(cm, "_Dense", None)  # would fail if called
    monkeypatch.setattr(cm, "DENSE_MIN_NODES", 0)
    assert len(neuron_centrality(W, method="sampled", k=8, rng=0)) == 70


def test_dense_path_memory(monkeypatch):
    import tracemalloc

    import netinit.metrics.centrality as cm

    W = np.random.default_rng(6).normal(size=(700, 600)).astype(np.float32)
    monkeypatch.setattr(cm, "DENSE_MIN_NODES", 0)
    tracemalloc.start()
    neuron_centrality(W, method="sampled", k=8, rng=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= 4 * W.nbytes
