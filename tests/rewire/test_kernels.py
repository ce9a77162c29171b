"""The deterministic pass kernel: backends against the numpy oracle, and its distribution."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

import netinit.rewire._cpu as cpu
from netinit.errors import DtypeError, ShapeError
from netinit.rewire import pa_pass, pa_rewire
from netinit.rewire.kernels import index_bits


def _weights(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("n_cols, bits", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (1024, 10), (1025, 11)])
def test_index_bits(n_cols, bits):
    assert index_bits(n_cols) == bits


@pytest.mark.parametrize("shape", [(2, 3), (17, 5), (64, 100), (50, 1)])
def test_pass_keeps_each_row(shape, seed):
    M = _weights(shape, seed=seed)
    E = np.random.default_rng(seed).standard_exponential(shape)
    out = pa_pass(M, E)
    assert out.dtype == M.dtype and out.shape == M.shape
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(M, axis=1))
    np.testing.assert_array_equal(out[0], M[0])  # row 0 keeps its order


def test_pass_order_is_stable_argsort_of_keys():
    """Without near-ties the packed integer sort is the argsort of the float64 keys."""
    rng = np.random.default_rng(3)
    M = rng.standard_normal((6, 40))
    E = rng.standard_exponential(M.shape)
    out = pa_pass(M, E)
    s = np.zeros(40)
    for i in range(1, 6):
        s += out[i - 1]
        order = np.argsort(E[i] / (s + abs(s.min()) + 1.0), kind="stable")
        expected = np.empty(40)
        expected[order] = np.sort(M[i])
        np.testing.assert_array_equal(out[i], expected)


def test_pass_ties_broken_by_column_index():
    M = np.array([[0.0, 0.0, 0.0, 0.0], [4.0, 3.0, 2.0, 1.0]])
    E = np.ones_like(M)  # all keys equal: the order is 0, 1, 2, 3
    np.testing.assert_array_equal(pa_pass(M, E)[1], [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(2, 2), (33, 17), (40, 300)])
def test_torch_kernel_equals_numpy(shape, dtype, seed):
    M = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    E = torch.empty(shape, dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(seed + 1))
    out_t = pa_pass(M, E)
    out_n = pa_pass(M.numpy(), E.numpy())
    assert out_t.dtype == dtype
    np.testing.assert_array_equal(out_t.numpy(), out_n)


def test_torch_kernel_bfloat16_keeps_rows():
    M = torch.randn(20, 30, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    E = torch.empty(20, 30, dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(1))
    out = pa_pass(M, E)
    assert out.dtype == torch.bfloat16
    np.testing.assert_array_equal(pa_pass(M.float(), E).numpy(), out.float().numpy())


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 9), (9, 1), (2, 2), (37, 23), (130, 70)])
def test_engine_equals_kernel(shape, dtype, threads, seed, monkeypatch, spawned_draws):
    """The blocked, threaded CPU engine computes exactly the kernel's result (many small blocks)."""
    monkeypatch.setattr(cpu, "_BLOCK_ELEMENTS", 64)
    W = _weights(shape, dtype, seed)
    E_rows, E_cols = spawned_draws(seed, shape)
    expected = pa_pass(pa_pass(W, E_rows).T, E_cols).T
    g_rows, g_cols = np.random.default_rng(seed).spawn(2)
    A = W.copy()
    cpu.rewire_inplace(
        A, "both", lambda o: g_rows.standard_exponential(out=o),
        lambda o: g_cols.standard_exponential(out=o), threads=threads,
    )
    np.testing.assert_array_equal(A, expected)


def _draw_pair(seed):
    g_rows, g_cols = np.random.default_rng(seed).spawn(2)
    return (lambda o: g_rows.standard_exponential(out=o)), (lambda o: g_cols.standard_exponential(out=o))


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("passes", ["both", "rows", "cols"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k", [((37, 23), 3), ((9, 1), 2), ((2, 130), 4), ((130, 70), 2)])
def test_stack_equals_each_matrix_alone(shape, k, dtype, passes, threads, monkeypatch):
    """A stack of k matrices gives each exactly its own result (many small blocks)."""
    monkeypatch.setattr(cpu, "_BLOCK_ELEMENTS", 256)
    mats = [_weights(shape, dtype, 100 + i) for i in range(k)]
    alone = [m.copy() for m in mats]
    for i, A in enumerate(alone):
        cpu.rewire_inplace(A, passes, *_draw_pair(i), threads=False)
    pairs = [_draw_pair(i) for i in range(k)]
    stacked = [m.copy() for m in mats]
    cpu.rewire_stack_inplace(stacked, passes, [p[0] for p in pairs], [p[1] for p in pairs], threads=threads)
    for i in range(k):
        np.testing.assert_array_equal(stacked[i], alone[i])
    if min(shape) > 1:  # a single row or column has nothing to move
        assert not np.array_equal(stacked[0], mats[0])


def test_stack_refuses_mixed_shapes_or_dtypes():
    d = _draw_pair(0)
    with pytest.raises(ValueError, match="one shape and dtype"):
        cpu.rewire_stack_inplace([np.zeros((3, 4)), np.zeros((4, 3))], "both", [d[0]] * 2, [d[1]] * 2)
    with pytest.raises(ValueError, match="one shape and dtype"):
        cpu.rewire_stack_inplace([np.zeros((3, 4)), np.zeros((3, 4), np.float32)], "both", [d[0]] * 2, [d[1]] * 2)


def test_pa_rewire_is_the_kernel_on_spawned_draws(seed, spawned_draws):
    W = _weights((300, 1000), np.float32, seed)  # several default-size blocks, helper thread on
    E_rows, E_cols = spawned_draws(seed, W.shape)
    np.testing.assert_array_equal(pa_rewire(W, rng=seed), pa_pass(pa_pass(W, E_rows).T, E_cols).T)


def test_pass_bad_input():
    with pytest.raises(ShapeError, match=r"E must have the shape of M \(2, 3\); got \(3, 2\)"):
        pa_pass(np.zeros((2, 3)), np.ones((3, 2)))
    with pytest.raises(ShapeError, match=r"2-D matrix M; got shape \(2, 3, 4\)"):
        pa_pass(np.zeros((2, 3, 4)), np.ones((2, 3, 4)))
    with pytest.raises(DtypeError, match="floating point; got dtype int64"):
        pa_pass(np.zeros((2, 3), dtype=np.int64), np.ones((2, 3)))


# --- exact distribution -------------------------------------------------------------------


def _order_probability(p: np.ndarray, order: tuple[int, ...]) -> float:
    """Probability of drawing the columns in ``order``, successively, without replacement."""
    prob = 1.0
    remaining = float(np.sum(p))
    for j in order:
        prob *= p[j] / remaining
        remaining -= p[j]
    return prob


def _exact_pass(M: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Every outcome of a rows pass on ``M`` (distinct values per row) with its probability."""
    outcomes = [(M[:1].copy(), 1.0)]
    for i in range(1, M.shape[0]):
        nxt = []
        for done, prob in outcomes:
            s = done.sum(axis=0)
            p = s + abs(s.min()) + 1.0
            for order in itertools.permutations(range(M.shape[1])):
                row = np.empty(M.shape[1])
                row[list(order)] = np.sort(M[i])
                nxt.append((np.vstack([done, row]), prob * _order_probability(p, order)))
        outcomes = nxt
    return outcomes


def _exact_both(W: np.ndarray) -> dict[bytes, float]:
    table: dict[bytes, float] = {}
    for R, pr in _exact_pass(W):
        for C, pc in _exact_pass(R.T):
            key = np.ascontiguousarray(C.T).tobytes()
            table[key] = table.get(key, 0.0) + pr * pc
    return table


@pytest.mark.parametrize(
    "W, passes",
    [
        (np.array([[-1.0, 0.2, 0.9], [0.5, -0.3, 1.4], [-0.8, 0.1, 0.6]]), "rows"),
        (np.array([[-1.0, 0.3, 1.1], [0.4, -0.6, 0.2]]), "both"),
    ],
    ids=["3x3-rows", "2x3-both"],
)
def test_outcome_frequencies_match_exact_probabilities(W, passes):
    """Chi-square of observed outcomes against the product formula of successive draws."""
    exact = _exact_both(W) if passes == "both" else {R.tobytes(): p for R, p in _exact_pass(W)}
    assert abs(sum(exact.values()) - 1.0) < 1e-12
    n = 20000
    rng = np.random.default_rng(20240607)
    counts: dict[bytes, int] = {}
    for _ in range(n):
        key = pa_rewire(W, rng=rng, passes=passes).tobytes()
        counts[key] = counts.get(key, 0) + 1
    assert set(counts) <= set(exact)
    keys = sorted(exact)
    observed = np.array([counts.get(k, 0) for k in keys])
    expected = np.array([exact[k] for k in keys]) * n
    assert expected.min() > 5  # the chi-square approximation holds
    assert chisquare(observed, expected).pvalue > 0.001


def test_engine_on_weights_of_extreme_magnitude(spawned_draws):
    """|min s| beyond 2**53 makes p round to 0 at the weakest column: key inf, no warning, and
    still exactly the kernel's result with the multiset kept."""
    import warnings

    W = _weights((40, 30), np.float64, 5) * 1e300
    E_rows, E_cols = spawned_draws(5, W.shape)
    with np.errstate(divide="ignore"):
        expected = pa_pass(pa_pass(W, E_rows).T, E_cols).T
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = pa_rewire(W, rng=5)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.sort(got, axis=None), np.sort(W, axis=None))
