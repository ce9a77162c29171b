"""Strength, degree and their summaries: hand values, graph libraries, torch against numpy."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import netinit.metrics.strength as strength_mod
from netinit.errors import DtypeError, NonFiniteError, ShapeError
from netinit.graph import LayerGraph
from netinit.metrics.strength import (
    chain_strength_correlation,
    degree,
    in_strength,
    out_strength,
    strength_stats,
)

# rows = output neurons; one pruned weight
W = np.array([[1.0, -2.0, 0.0], [3.0, 4.0, 0.5]])


def as_backend(X, backend):
    if backend == "numpy":
        return X
    torch = pytest.importorskip("torch")
    return torch.as_tensor(X)


def to_np(x):
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)


def test_hand_values():
    assert in_strength(W).tolist() == [-1.0, 7.5]
    assert in_strength(W, abs=True).tolist() == [3.0, 7.5]
    assert out_strength(W).tolist() == [4.0, 2.0, 0.5]
    assert out_strength(W, abs=True).tolist() == [4.0, 6.0, 0.5]
    k_in, k_out = degree(W)
    assert k_in.tolist() == [2, 3] and k_out.tolist() == [2, 2, 1]
    assert in_strength(W).dtype == np.float64 and k_in.dtype == np.int64


def test_stats_hand_values():
    s = strength_stats(W)
    # in-strengths -1, 7.5: mean 3.25, population var 4.25^2; out-strengths 4, 2, 0.5
    assert s["in_strength_mean"] == pytest.approx(3.25)
    assert s["in_strength_var"] == pytest.approx(4.25**2)
    assert s["out_strength_mean"] == pytest.approx(6.5 / 3)
    assert s["out_strength_var"] == pytest.approx(np.mean((np.array([4, 2, 0.5]) - 6.5 / 3) ** 2))
    assert s["in_strength_abs_mean"] == pytest.approx(5.25)
    assert s["in_strength_abs_var"] == pytest.approx(2.25**2)
    assert s["out_strength_abs_mean"] == pytest.approx(10.5 / 3)
    assert s["weight_mean"] == pytest.approx(6.5 / 6)
    assert s["weight_std"] == pytest.approx(np.std(W))  # ddof = 0
    assert (s["n_weights"], s["n_zero"], s["density"]) == (6, 1, pytest.approx(5 / 6))


def test_stats_population_variance_on_several_blocks(monkeypatch):
    monkeypatch.setattr(strength_mod, "_BLOCK_ELEMENTS", 64)  # 64 // 9 = 7 rows a block
    X = np.random.default_rng(0).normal(size=(50, 9)).astype(np.float32)
    X[X > 1.5] = 0.0
    s = strength_stats(X)
    X64 = X.astype(np.float64)
    assert s["in_strength_var"] == pytest.approx(np.var(X64.sum(1)), rel=1e-12)
    assert s["out_strength_var"] == pytest.approx(np.var(X64.sum(0)), rel=1e-12)
    assert s["in_strength_abs_var"] == pytest.approx(np.var(np.abs(X64).sum(1)), rel=1e-12)
    assert s["out_strength_abs_mean"] == pytest.approx(np.abs(X64).sum(0).mean(), rel=1e-12)
    assert s["weight_std"] == pytest.approx(X64.std(), rel=1e-12)
    assert s["n_zero"] == int((X == 0).sum())


def test_float32_accumulates_in_float64():
    X = np.full((2, 4097), 0.1, dtype=np.float32)
    X[:, 0] = 1e8
    exact = 1e8 + 4096 * np.float64(np.float32(0.1))
    assert in_strength(X)[0] == pytest.approx(exact, rel=1e-13)
    assert in_strength(X)[0] != X.sum(axis=1)[0]  # float32 accumulation would lose the 0.1s


def test_strength_equals_weighted_degree_of_the_graph_libraries():
    X = np.random.default_rng(1).normal(size=(7, 11))
    X[X < -1] = 0.0
    g = LayerGraph(X)
    G = g.to_networkx()
    nx_in = [G.in_degree(v, weight="weight") for v in g.output_nodes]
    nx_out = [G.out_degree(v, weight="weight") for v in g.input_nodes]
    np.testing.assert_allclose(in_strength(X), nx_in, rtol=1e-12)
    np.testing.assert_allclose(out_strength(X), nx_out, rtol=1e-12)
    H = g.to_igraph()
    np.testing.assert_allclose(in_strength(X), H.strength(g.output_nodes.tolist(), mode="in",
                                                         weights="weight"), rtol=1e-12)
    np.testing.assert_allclose(out_strength(X), H.strength(g.input_nodes.tolist(), mode="out",
                                                          weights="weight"), rtol=1e-12)
    H.es["aw"] = np.abs(H.es["weight"]).tolist()
    np.testing.assert_allclose(in_strength(X, abs=True),
                               H.strength(g.output_nodes.tolist(), mode="in", weights="aw"))
    k_in, k_out = degree(X)
    assert k_in.tolist() == [G.in_degree(v) for v in g.output_nodes]
    assert k_out.tolist() == [G.out_degree(v) for v in g.input_nodes]
    assert nx.bipartite.is_bipartite(G)


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_matches_numpy_oracle(seed):
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(seed).normal(size=(13, 17)).astype(np.float32)
    X[X > 1.2] = 0.0
    T = torch.from_numpy(X)
    for f in (in_strength, out_strength):
        for use_abs in (False, True):
            out = f(T, abs=use_abs)
            assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
            np.testing.assert_allclose(out.numpy(), f(X, abs=use_abs), rtol=1e-12)
    for a, b in zip(degree(T), degree(X)):
        assert isinstance(a, torch.Tensor)
        np.testing.assert_array_equal(a.numpy(), b)
    st, sn = strength_stats(T), strength_stats(X)
    assert st.keys() == sn.keys()
    for key in sn:
        assert st[key] == pytest.approx(sn[key], rel=1e-10, abs=1e-12), key
    assert chain_strength_correlation(T, torch.from_numpy(X.T.copy())) == pytest.approx(
        chain_strength_correlation(X, X.T.copy()), rel=1e-10)


def test_chain_strength_correlation_against_corrcoef():
    rng = np.random.default_rng(5)
    W1, W2 = rng.normal(size=(20, 8)), rng.normal(size=(6, 20))
    expected = np.corrcoef(W1.sum(axis=1), W2.sum(axis=0))[0, 1]
    assert chain_strength_correlation(W1, W2) == pytest.approx(expected, rel=1e-12)
    expected_abs = np.corrcoef(np.abs(W1).sum(axis=1), np.abs(W2).sum(axis=0))[0, 1]
    assert chain_strength_correlation(W1, W2, abs=True) == pytest.approx(expected_abs, rel=1e-12)


def test_chain_strength_correlation_perfect_and_undefined():
    W1 = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 4.0]])  # in-strengths 1, 3, 4
    W2 = np.array([[2.0, 6.0, 8.0]])  # out-strengths 2, 6, 8 = 2 x
    assert chain_strength_correlation(W1, W2) == pytest.approx(1.0)
    assert chain_strength_correlation(W1, -W2) == pytest.approx(-1.0)
    assert np.isnan(chain_strength_correlation(W1, np.ones((2, 3))))  # constant out-strength
    assert np.isnan(chain_strength_correlation(np.ones((1, 3)), np.ones((2, 1))))  # n_mid = 1


def test_chain_shape_error_names_both():
    with pytest.raises(ShapeError, match=r"W_prev has shape \(5, 3\).*W_next has shape \(2, 4\)"):
        chain_strength_correlation(np.ones((5, 3)), np.ones((2, 4)))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("f", [in_strength, out_strength, degree, strength_stats])
def test_bad_input(f, backend):
    msg = r"W holds 1 non-finite value\(s\) \(NaN or inf\), the first at index \(1, 0\): nan"
    with pytest.raises(NonFiniteError, match=msg):
        f(as_backend(np.array([[1.0, 2.0], [np.nan, 0.0]]), backend))
    with pytest.raises(ShapeError, match=r"2-D .* got shape \(3,\)"):
        f(as_backend(np.ones(3), backend))
    with pytest.raises(ShapeError, match=r"non-empty .* got shape \(0, 4\)"):
        f(as_backend(np.ones((0, 4)), backend))
    with pytest.raises(DtypeError, match="got dtype"):
        f(as_backend(np.ones((2, 2), dtype=bool), backend))


# -- layer_sums: one pass for both tables -------------------------------------------------------
def _old_sums(X):
    """The separate passes of earlier releases (numpy's float64 reductions)."""
    return (X.sum(axis=1, dtype=np.float64), X.sum(axis=0, dtype=np.float64),
            np.abs(X).sum(axis=1, dtype=np.float64), np.abs(X).sum(axis=0, dtype=np.float64),
            np.count_nonzero(X, axis=1), np.count_nonzero(X, axis=0))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("seed", range(4))
def test_layer_sums_one_block_equals_the_separate_passes(dtype, seed):
    """Up to _BLOCK_ELEMENTS weights: the strengths, degrees and strength_stats of earlier
    releases, bit for bit (the regression fixture relies on it)."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=tuple(rng.integers(1, 90, size=2))) * 5).astype(dtype)
    X[rng.random(X.shape) < 0.3] = 0
    s = strength_mod.layer_sums(X)
    for new, old in zip((s.in_strength, s.out_strength, s.in_abs, s.out_abs, s.in_degree, s.out_degree),
                        _old_sums(X)):
        np.testing.assert_array_equal(new, old)
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(s.in_sq, (X64**2).sum(1), rtol=1e-13)
    np.testing.assert_allclose(s.out_sq, (X64**2).sum(0), rtol=1e-13)
    assert s.sq_dev == float(np.einsum("ij,ij->", X64 - X64.sum(1).sum() / X.size, X64 - X64.sum(1).sum() / X.size))


@pytest.mark.parametrize("shift", [0.0, 3.0, 1e4])
def test_layer_sums_blocks_within_the_stated_bound(monkeypatch, shift):
    """Above one block: float64 sums in another order (within gamma_n sum|w|), and the one-pass
    squared deviation within 16 gamma_N of the two-pass one, or the two-pass itself where the mean
    dominates."""
    monkeypatch.setattr(strength_mod, "_BLOCK_ELEMENTS", 4096)
    monkeypatch.setattr(strength_mod, "_PASS_ELEMENTS", 512)
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(301, 97)) + shift).astype(np.float32)
    X[5, :4] = 0.0
    X[:, 7] = 0.0
    s = strength_mod.layer_sums(X)
    X64 = X.astype(np.float64)
    gamma = lambda n: n * 2.0**-53 / (1 - n * 2.0**-53)
    for new, exact, n in ((s.in_strength, X64.sum(1), 97), (s.out_strength, X64.sum(0), 301),
                          (s.out_abs, np.abs(X64).sum(0), 301)):
        assert (np.abs(new - exact) <= gamma(n) * np.abs(X64).sum(axis=0 if len(new) == 97 else 1) + 1e-300).all()
    np.testing.assert_array_equal(s.in_degree, np.count_nonzero(X, axis=1))
    np.testing.assert_array_equal(s.out_degree, np.count_nonzero(X, axis=0))
    two_pass = float(((X64 - X64.mean()) ** 2).sum())
    assert abs(s.sq_dev - two_pass) <= 16 * gamma(X.size) * two_pass
    st = strength_stats(X)
    assert st["weight_std"] == pytest.approx(X64.std(), rel=1e-12)
    assert st["n_zero"] == int((X == 0).sum())


def test_stats_from_sums_is_strength_stats():
    X = np.random.default_rng(2).normal(size=(40, 30))
    assert strength_mod.stats_from_sums(strength_mod.layer_sums(X)) == strength_stats(X)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_torch_stats_in_blocks_match_numpy_and_leave_the_input(monkeypatch, dtype):
    """The torch path sums float64 row blocks (no float64 copy of the whole matrix): the numpy
    values to rounding, several blocks or one, and the tensor unchanged (a float64 one too)."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(strength_mod, "_BLOCK_ELEMENTS", 100)  # 100 // 13 = 7 rows a block
    T = torch.randn(40, 13, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(getattr(torch, dtype))
    T[3, :5] = 0
    before = T.clone()
    st = strength_stats(T)
    sn = strength_stats(T.double().numpy())
    assert torch.equal(T, before)
    for key, value in sn.items():
        assert st[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
