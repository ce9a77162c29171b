"""netinit.metrics.network against networkx, igraph, scipy and the published definitions."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest
import scipy.linalg

from netinit.errors import DtypeError, NonFiniteError, ShapeError
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


def layer_graph(W: np.ndarray, *, zeros: bool = False) -> nx.Graph:
    """The undirected bipartite graph of W: inputs 0..n_in-1, outputs n_in.., weight |w|."""
    n_out, n_in = W.shape
    G = nx.Graph()
    G.add_nodes_from(range(n_in), bipartite=0)
    G.add_nodes_from(range(n_in, n_in + n_out), bipartite=1)
    for i in range(n_out):
        for j in range(n_in):
            if zeros or W[i, j] != 0:
                a = abs(float(W[i, j]))
                G.add_edge(j, n_in + i, weight=a, distance=1.0 / a if a else np.inf)
    return G


def as_array(d: dict, n: int) -> np.ndarray:
    return np.array([d[v] for v in range(n)])


@pytest.fixture(params=[0, 1, 2])
def small(request) -> np.ndarray:
    """A 5x7 Gaussian layer with a few pruned weights (still connected)."""
    g = np.random.default_rng(request.param)
    W = g.normal(size=(5, 7))
    W[g.random(W.shape) < 0.2] = 0.0
    W[:, 0] = g.normal(size=5) + 3.0  # input 0 reaches every output: connected
    return W


def adjacency(W: np.ndarray) -> np.ndarray:
    n_out, n_in = W.shape
    A = np.zeros((n_in + n_out,) * 2)
    A[n_in:, :n_in] = np.abs(W)
    A[:n_in, n_in:] = np.abs(W).T
    return A


# -- clustering -----------------------------------------------------------------------------

def weighted_latapy_oracle(W: np.ndarray) -> np.ndarray:
    """Latapy's cc_dot with the weighted Jaccard, node by node from the definition."""
    A = adjacency(W)
    n = A.shape[0]
    out = np.zeros(n)
    for u in range(n):
        nbrs2 = {v for k in np.flatnonzero(A[u]) for v in np.flatnonzero(A[k])} - {u}
        if nbrs2:
            out[u] = np.mean([np.minimum(A[u], A[v]).sum() / np.maximum(A[u], A[v]).sum()
                              for v in nbrs2])
    return out


def test_clustering_binary_equals_networkx_latapy_dot():
    g = np.random.default_rng(3)
    W = (g.random((6, 8)) < 0.35).astype(float) * g.choice([-1.0, 1.0], size=(6, 8))
    n = 14
    ref = nx.bipartite.clustering(layer_graph(W), mode="dot")
    np.testing.assert_allclose(bipartite_clustering(W), as_array(ref, n), rtol=1e-12)


def test_clustering_weighted_matches_definition(small):
    np.testing.assert_allclose(bipartite_clustering(small), weighted_latapy_oracle(small),
                               rtol=1e-12)


def test_clustering_dense_binary_is_one_and_weighted_is_below():
    W = np.random.default_rng(0).normal(size=(4, 6))
    assert np.allclose(bipartite_clustering(np.sign(W)), 1.0)
    c = bipartite_clustering(W)
    assert np.all((c > 0) & (c < 1))


# -- harmonic and current-flow closeness ----------------------------------------------------

def test_harmonic_matches_networkx(small):
    n = sum(small.shape)
    ref = nx.harmonic_centrality(layer_graph(small), distance="distance")
    np.testing.assert_allclose(harmonic_centrality(small), as_array(ref, n), rtol=1e-10)


def test_harmonic_disconnected_counts_reachable_only():
    W = np.array([[1.0, 0.0], [0.0, 2.0]])  # two separate edges
    np.testing.assert_allclose(harmonic_centrality(W), [1.0, 2.0, 1.0, 2.0])


def test_current_flow_closeness_matches_networkx(small):
    n = sum(small.shape)
    ref = nx.current_flow_closeness_centrality(layer_graph(small), weight="weight")
    np.testing.assert_allclose(current_flow_closeness(small), as_array(ref, n), rtol=1e-9)


def test_current_flow_closeness_disconnected_is_nan():
    assert np.isnan(current_flow_closeness(np.array([[1.0, 0.0], [0.0, 2.0]]))).all()


# -- subgraph centrality --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 7), (7, 5), (1, 4), (6, 6)])
def test_subgraph_centrality_matches_expm_of_weighted_adjacency(shape):
    W = np.random.default_rng(sum(shape)).normal(size=shape)
    W[0, 0] = 0.0
    ref = np.diag(scipy.linalg.expm(adjacency(W)))
    np.testing.assert_allclose(subgraph_centrality(W), ref, rtol=1e-10)
    np.testing.assert_allclose(subgraph_centrality(W, log=True), np.log(ref), rtol=1e-10)


def test_subgraph_centrality_binary_equals_networkx():
    g = np.random.default_rng(5)
    W = (g.random((5, 6)) < 0.5) * 1.0
    ref = nx.subgraph_centrality(layer_graph(W))  # networkx uses the 0/1 adjacency
    np.testing.assert_allclose(subgraph_centrality(W), as_array(ref, 11), rtol=1e-10)
    # networkx ignores the weights: scaling them changes ours, not its
    ref2 = nx.subgraph_centrality(layer_graph(3.0 * W))
    np.testing.assert_allclose(as_array(ref2, 11), as_array(ref, 11))
    assert not np.allclose(subgraph_centrality(3.0 * W), subgraph_centrality(W))


def test_subgraph_centrality_log_space_where_plain_overflows():
    c, n_out, n_in = 40.0, 48, 32
    W = np.full((n_out, n_in), c)  # rank 1: sigma = c sqrt(n_out n_in) ~ 1568
    sigma = c * np.sqrt(n_out * n_in)
    logsc = subgraph_centrality(W, log=True)
    # SC(input) = 1 + (cosh(sigma) - 1) / n_in ; log = sigma - log 2 - log n_in (+ e^-sigma)
    np.testing.assert_allclose(logsc[:n_in], sigma - np.log(2 * n_in), rtol=1e-12)
    np.testing.assert_allclose(logsc[n_in:], sigma - np.log(2 * n_out), rtol=1e-12)
    assert np.isposinf(subgraph_centrality(W)).all()


# -- neural persistence ---------------------------------------------------------------------

def persistence_oracle(W: np.ndarray, w_max: float) -> float:
    G = layer_graph(np.abs(W) / w_max, zeros=True)
    T = nx.maximum_spanning_tree(G, weight="weight")
    return float(np.sqrt(sum((1.0 - d["weight"]) ** 2 for *_, d in T.edges(data=True))))


@pytest.mark.parametrize("seed", range(4))
def test_neural_persistence_matches_networkx_maximum_spanning_tree(seed):
    g = np.random.default_rng(seed)
    W = g.normal(size=(4 + seed, 6))
    W[g.random(W.shape) < 0.3] = 0.0  # zero weights stay edges of the complete graph
    r = neural_persistence(W)
    ref = persistence_oracle(W, np.abs(W).max())
    assert r["neural_persistence"] == pytest.approx(ref, rel=1e-12)
    n = sum(W.shape)
    assert r["neural_persistence_normalized"] == pytest.approx(ref / np.sqrt(n - 1), rel=1e-12)
    w_max = 2.5 * np.abs(W).max()  # a network-wide normaliser
    assert neural_persistence(W, w_max=w_max)["neural_persistence"] == pytest.approx(
        persistence_oracle(W, w_max), rel=1e-12)


def test_neural_persistence_bounds_and_ties():
    assert neural_persistence(np.ones((3, 4)))["neural_persistence"] == 0.0
    z = neural_persistence(np.zeros((3, 4)))
    assert z["neural_persistence_normalized"] == pytest.approx(1.0)
    assert neural_persistence(np.array([[0.5]]))["neural_persistence"] == pytest.approx(0.0)


def test_neural_persistence_rejects_small_w_max():
    with pytest.raises(ValueError, match=r"w_max must be finite and at least"):
        neural_persistence(np.array([[1.0, 2.0]]), w_max=1.0)


# -- communities ----------------------------------------------------------------------------

def test_leiden_finds_blocks_and_modularity_matches_networkx():
    g = np.random.default_rng(0)
    W = np.kron(np.eye(3), np.ones((4, 5))) * (1.0 + g.random((12, 15)))
    W += 0.01 * g.random(W.shape)  # weak links between blocks
    labels, q = leiden_communities(W, rng=1)
    n_in = 15
    expected = np.concatenate([np.repeat(np.arange(3), 5), np.repeat(np.arange(3), 4)])
    assert labels.tolist() == expected.tolist()
    G = layer_graph(W)
    parts = [set(np.flatnonzero(labels == c)) for c in range(labels.max() + 1)]
    assert q == pytest.approx(nx.community.modularity(G, parts, weight="weight"), rel=1e-10)
    assert labels[:n_in].max() == 2


def test_leiden_is_seeded_and_leaves_random_alone():
    W = np.random.default_rng(0).normal(size=(20, 30))
    state = random.getstate()
    a = leiden_communities(W, rng=7)
    b = leiden_communities(W, rng=np.random.default_rng(7))
    assert random.getstate() == state
    assert a[0].tolist() == b[0].tolist() and a[1] == b[1]
    assert a[0][0] == 0 and set(a[0].tolist()) == set(range(a[0].max() + 1))


def test_leiden_all_zero_and_bad_resolution():
    labels, q = leiden_communities(np.zeros((2, 3)))
    assert labels.tolist() == [0, 1, 2, 3, 4] and np.isnan(q)
    with pytest.raises(ValueError, match=r"resolution must be a positive finite number"):
        leiden_communities(np.ones((2, 2)), resolution=0.0)


# -- the gathering function and validation --------------------------------------------------

def test_network_measures_columns(small):
    row, df = network_measures(small, layer="fc1", rng=0)
    n = sum(small.shape)
    assert list(df.columns) == ["layer", "node", "side", "neuron", "clustering", "harmonic",
                                "current_flow_closeness", "subgraph_centrality",
                                "subgraph_centrality_log", "community"]
    assert len(df) == n and (df["layer"] == "fc1").all()
    assert row["weight_transform"] == "|w|" and row["distance_transform"] == "1/|w|"
    for key in ("clustering_mean", "harmonic_mean", "current_flow_closeness_mean",
                "subgraph_centrality_log_mean", "log_estrada_index", "neural_persistence",
                "neural_persistence_normalized", "modularity", "n_communities"):
        assert np.isfinite(row[key]), key
    np.testing.assert_allclose(df["harmonic"], harmonic_centrality(small))
    est = np.trace(scipy.linalg.expm(adjacency(small)))
    assert row["log_estrada_index"] == pytest.approx(np.log(est), rel=1e-10)
    again, df2 = network_measures(small, layer="fc1", rng=0)
    assert df2["community"].tolist() == df["community"].tolist()


def test_network_measures_subset_and_unknown():
    row, df = network_measures(np.ones((2, 3)), measures=["subgraph"])
    assert "clustering" not in df and "subgraph_centrality_log" in df
    assert set(MEASURES) >= {"clustering", "communities"}
    with pytest.raises(ValueError, match=r"unknown measure\(s\) \['pagerank'\]"):
        network_measures(np.ones((2, 3)), measures=["pagerank"])


@pytest.mark.parametrize("fn", [bipartite_clustering, harmonic_centrality,
                                current_flow_closeness, subgraph_centrality])
def test_validation(fn):
    with pytest.raises(ShapeError, match=r"W: expected a 2-D weight matrix \(n_out, n_in\), got shape \(3,\)"):
        fn(np.ones(3))
    with pytest.raises(ShapeError, match=r"got shape \(0, 3\)"):
        fn(np.ones((0, 3)))
    with pytest.raises(NonFiniteError, match=r"W holds 1 non-finite value\(s\) \(NaN or inf\), the first at index \(0, 1\)"):
        fn(np.array([[1.0, np.nan]]))
    with pytest.raises(DtypeError, match=r"W: weights must be real floats or integers, got dtype complex128"):
        fn(np.ones((2, 2), dtype=complex))
