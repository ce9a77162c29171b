"""LayerGraph and NetworkGraph: node numbering, edge arrays, bulk exports, validation."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from netinit.errors import DtypeError, LayerError, NoLayersError, NonFiniteError, ShapeError
from netinit.graph import DISTANCE_TRANSFORM, LayerGraph, NetworkGraph

# 2 outputs x 3 inputs, one pruned weight
W_SMALL = np.array([[1.0, 0.0, -2.0], [0.5, 0.25, 4.0]])


@pytest.fixture
def g() -> LayerGraph:
    return LayerGraph(W_SMALL, name="fc")


def test_sizes_and_nodes(g):
    assert (g.n_in, g.n_out, g.n_nodes, g.n_edges) == (3, 2, 5, 5)
    assert g.input_nodes.tolist() == [0, 1, 2]
    assert g.output_nodes.tolist() == [3, 4]
    assert "fc" in repr(g)


def test_edges_follow_the_convention(g):
    src, dst, w = g.edges()
    assert src.tolist() == [0, 2, 0, 1, 2]  # input j
    assert dst.tolist() == [3, 3, 4, 4, 4]  # n_in + output i
    assert w.tolist() == [1.0, -2.0, 0.5, 0.25, 4.0]
    assert w.dtype == np.float64
    np.testing.assert_array_equal(w, W_SMALL[dst - g.n_in, src])


def test_is_a_view_not_a_copy():
    W = np.array(W_SMALL)
    g = LayerGraph(W)
    assert np.shares_memory(g.W, W)
    W[0, 1] = 3.0  # in-place change shows through
    assert g.n_edges == 6


def test_float32_weights_exported_as_float64():
    W = np.array(W_SMALL, dtype=np.float32)
    g = LayerGraph(W)
    assert np.shares_memory(g.W, W)
    assert g.edges()[2].dtype == np.float64


@pytest.mark.parametrize("directed", [True, False])
def test_to_networkx(g, directed):
    G = g.to_networkx(directed=directed)
    assert G.is_directed() == directed
    assert sorted(G.nodes) == list(range(5))
    assert [G.nodes[v]["bipartite"] for v in range(5)] == [0, 0, 0, 1, 1]
    assert G.number_of_edges() == 5
    assert G.graph["distance_transform"] == DISTANCE_TRANSFORM
    assert G.graph["name"] == "fc"
    assert nx.bipartite.is_bipartite(G)
    for j, i in [(0, 0), (2, 0), (0, 1), (1, 1), (2, 1)]:
        data = G.edges[j, 3 + i]
        assert data["weight"] == W_SMALL[i, j]
        assert data["distance"] == pytest.approx(1.0 / abs(W_SMALL[i, j]))
    if directed:
        assert not G.has_edge(3, 0)  # input -> output only


def test_to_networkx_without_distance(g):
    G = g.to_networkx(distance=False)
    assert all(set(d) == {"weight"} for _, _, d in G.edges(data=True))
    assert "distance_transform" not in G.graph


@pytest.mark.parametrize("directed", [True, False])
def test_to_igraph(g, directed):
    ig_g = g.to_igraph(directed=directed)
    assert ig_g.is_directed() == directed
    assert (ig_g.vcount(), ig_g.ecount()) == (5, 5)
    assert ig_g.vs["bipartite"] == [0, 0, 0, 1, 1]
    assert ig_g.vs["type"] == [False, False, False, True, True]
    src, dst, w = g.edges()
    assert [e.tuple for e in ig_g.es] == list(zip(src.tolist(), dst.tolist()))
    assert ig_g.es["weight"] == w.tolist()
    np.testing.assert_allclose(ig_g.es["distance"], 1.0 / np.abs(w))
    assert ig_g["name"] == "fc" and ig_g["distance_transform"] == DISTANCE_TRANSFORM


def test_networkx_and_igraph_agree_on_a_random_layer():
    W = np.random.default_rng(3).normal(size=(6, 9))
    W[W < -0.5] = 0.0
    g = LayerGraph(W)
    G, H = g.to_networkx(), g.to_igraph()
    assert set(G.edges) == {e.tuple for e in H.es}
    assert {(u, v): d["weight"] for u, v, d in G.edges(data=True)} == {
        e.tuple: e["weight"] for e in H.es
    }


def test_torch_cpu_tensor_is_viewed():
    torch = pytest.importorskip("torch")
    T = torch.tensor(W_SMALL)
    g = LayerGraph(T)
    assert isinstance(g.W, np.ndarray)
    np.testing.assert_array_equal(g.W, W_SMALL)
    T[0, 1] = 7.0
    assert g.n_edges == 6


def test_torch_bfloat16_is_copied_to_float32():
    torch = pytest.importorskip("torch")
    g = LayerGraph(torch.tensor(W_SMALL, dtype=torch.bfloat16))
    assert g.W.dtype == np.float32
    np.testing.assert_array_equal(g.W, W_SMALL)  # these values are exact in bfloat16


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (np.array([[1.0, np.nan]]), NonFiniteError, r"fc holds 1 non-finite value\(s\) \(NaN or inf\), the first at index \(0, 1\)"),
        (np.array([[np.inf, 1.0]]), NonFiniteError, r"fc holds 1 non-finite value.*: inf"),
        (np.ones(3), ShapeError, r"expected a 2-D weight matrix .* got shape \(3,\)"),
        (np.ones((2, 3, 3)), ShapeError, r"got shape \(2, 3, 3\)"),
        (np.ones((0, 3)), ShapeError, r"non-empty .* got shape \(0, 3\)"),
        (np.ones((2, 0)), ShapeError, r"non-empty"),
        (np.ones((2, 2), dtype=complex), DtypeError, "complex"),
        (np.ones((2, 2), dtype=bool), DtypeError, "bool"),
    ],
)
def test_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        LayerGraph(bad, name="fc")


# ---------------------------------------------------------------- NetworkGraph

def _chain():
    rng = np.random.default_rng(0)
    return [("fc1", rng.normal(size=(3, 4))), ("fc2", rng.normal(size=(2, 3))),
            ("fc3", rng.normal(size=(5, 2)))]


def test_network_numbering():
    net = NetworkGraph(_chain())
    assert net.partition_sizes == (4, 3, 2, 5)
    assert net.offsets == (0, 4, 7, 9, 14)
    assert net.n_nodes == 14 and net.n_edges == 12 + 6 + 10
    assert net.layer_names == ["fc1", "fc2", "fc3"]
    assert net.partition_nodes(2).tolist() == [7, 8]
    with pytest.raises(ValueError, match="partition must lie in \\[0, 3\\], got 4"):
        net.partition_nodes(4)


def test_network_edges_chain_the_layers():
    layers = _chain()
    net = NetworkGraph(layers)
    src, dst, w = net.edges()
    for k, (_, W) in enumerate(layers):
        m = (src >= net.offsets[k]) & (src < net.offsets[k + 1])
        i = dst[m] - net.offsets[k + 1]
        j = src[m] - net.offsets[k]
        assert ((i >= 0) & (i < W.shape[0])).all()
        np.testing.assert_array_equal(w[m], W[i, j])
        assert m.sum() == W.size


def test_network_exports():
    net = NetworkGraph(dict(_chain()))  # a mapping works too
    G = net.to_networkx()
    H = net.to_igraph()
    part = [G.nodes[v]["partition"] for v in range(net.n_nodes)]
    assert part == [0] * 4 + [1] * 3 + [2] * 2 + [3] * 5
    assert [G.nodes[v]["layer"] for v in (0, 4, 7, 9)] == ["input", "fc1", "fc2", "fc3"]
    assert H.vs["partition"] == part and H.vs["layer"] == [G.nodes[v]["layer"] for v in G]
    assert G.number_of_edges() == H.ecount() == net.n_edges
    assert G.edges[4, 7]["layer"] == "fc2"
    assert G.edges[4, 7]["weight"] == dict(_chain())["fc2"][0, 0]
    assert nx.is_directed_acyclic_graph(G)
    assert H.es["layer"][0] == "fc1" and H.es["layer"][-1] == "fc3"
    pos = nx.multipartite_layout(G, subset_key="partition")
    assert len(pos) == net.n_nodes


def test_network_shape_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ShapeError, match=r"'fc1' has shape \(3, 4\).*'fc2' has shape \(2, 5\)"):
        NetworkGraph([("fc1", rng.normal(size=(3, 4))), ("fc2", rng.normal(size=(2, 5)))])
    with pytest.raises(NoLayersError, match="at least one"):
        NetworkGraph([])
    with pytest.raises(LayerError, match=r"duplicates \['fc'\]"):
        NetworkGraph([("fc", np.ones((3, 3))), ("fc", np.ones((3, 3)))])
    with pytest.raises(NonFiniteError, match="fc2 holds 9 non-finite value"):
        NetworkGraph([("fc1", np.ones((3, 3))), ("fc2", np.full((3, 3), np.nan))])
