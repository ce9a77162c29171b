"""correlation_summary / correlation_matrix against np.corrcoef (numpy oracle for torch); the
float32 products against the float64 ones within the stated bound; the sampled estimates'
standard errors by their coverage over many seeds."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import netinit.metrics.correlation as corr_mod
from netinit.errors import NonFiniteError, ShapeError
from netinit.metrics.correlation import correlation_matrix, correlation_summary, float32_error_bound

STATS = ("mean_abs", "max_abs", "share_above", "mean_sq", "effective_n")
ESTIMATED = ("mean_abs", "share_above", "mean_sq", "effective_n")


def oracle(X, threshold=0.5):
    R = np.corrcoef(X)
    off = R[~np.eye(len(R), dtype=bool)]
    lam = np.linalg.eigvalsh(R)
    return {
        "mean_abs": np.abs(off).mean(),
        "max_abs": np.abs(off).max(),
        "share_above": (np.abs(off) > threshold).mean(),
        "mean_sq": (off**2).mean(),
        "effective_n": lam.sum() ** 2 / (lam**2).sum(),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_against_corrcoef(seed, monkeypatch):
    monkeypatch.setattr(corr_mod, "_BLOCK", 7)  # several blocks on a small matrix
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 12)) + rng.normal(size=(1, 12))  # correlated rows
    s = correlation_summary(X, threshold=0.3)
    for key, value in oracle(X, threshold=0.3).items():
        assert s[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key
    assert s["n_pairs"] == 30 * 29 / 2 and s["n_constant"] == 0


def test_matrix_against_corrcoef_and_constant_rows():
    X = np.random.default_rng(4).normal(size=(6, 5))
    X[2] = 3.0  # constant neuron: no correlation
    R = correlation_matrix(X)
    keep = [0, 1, 3, 4, 5]
    np.testing.assert_allclose(R[np.ix_(keep, keep)], np.corrcoef(X[keep]), atol=1e-12)
    assert np.isnan(R[2]).all() and np.isnan(R[:, 2]).all()
    s = correlation_summary(X)
    assert s["n_constant"] == 1
    assert s["mean_abs"] == pytest.approx(oracle(X[keep])["mean_abs"], rel=1e-12)


@pytest.fixture(params=["numpy kernels", "torch kernels"])
def torch_kernels(request, monkeypatch):
    """CPU tensors through the numpy kernels (the default), or through the torch kernels that
    other devices use."""
    monkeypatch.setattr(corr_mod, "_CPU_TENSORS_AS_NUMPY", request.param == "numpy kernels")
    return request.param


def test_torch_matches_numpy(torch_kernels):
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(8).normal(size=(9, 14)).astype(np.float32)
    a, b = correlation_summary(torch.from_numpy(X)), correlation_summary(X)
    for key in b:
        if isinstance(b[key], (str, bool)):
            assert a[key] == b[key], key
        else:
            assert a[key] == pytest.approx(b[key], rel=1e-10, abs=1e-12), key


def factor_rows(seed, m, d):
    """Rows with heterogeneous correlation: three shared factors with row-dependent loadings."""
    rng = np.random.default_rng(seed)
    load = rng.normal(size=(m, 3)) * rng.uniform(0.0, 1.5, size=(m, 1))
    return load @ rng.normal(size=(3, d)) + rng.normal(size=(m, d))


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_products_within_the_bound(seed, monkeypatch):
    X = factor_rows(seed, 700, 300)
    monkeypatch.setattr(corr_mod, "_TILE", 256)  # several tiles
    monkeypatch.setattr(corr_mod, "_TILE_ELEMENTS", 0)
    fast = correlation_summary(X, threshold=0.3)  # 700 rows > FLOAT64_MAX_NEURONS: float32
    monkeypatch.setattr(corr_mod, "FLOAT64_MAX_NEURONS", 10_000)
    ref = correlation_summary(X, threshold=0.3)
    eps = float32_error_bound(300)
    assert eps < 2e-5
    R = np.abs(np.corrcoef(X)[np.triu_indices(700, 1)])
    near = np.count_nonzero(np.abs(R - 0.3) <= eps) / len(R)
    assert abs(fast["mean_abs"] - ref["mean_abs"]) <= eps
    assert abs(fast["max_abs"] - ref["max_abs"]) <= eps
    assert abs(fast["mean_sq"] - ref["mean_sq"]) <= 2 * eps * ref["mean_abs"] + eps**2
    assert abs(fast["share_above"] - ref["share_above"]) <= near + 1e-15
    m = 700  # effective_n = m / (1 + (m - 1) mean_sq): |d eff / d mean_sq| <= m (m - 1)
    bound = m * (m - 1) * (2 * eps * ref["mean_abs"] + eps**2)
    assert abs(fast["effective_n"] - ref["effective_n"]) <= bound
    # and the bound is loose: BLAS's blocked sums are much closer in practice
    assert abs(fast["mean_abs"] - ref["mean_abs"]) <= eps / 10


def test_float32_path_torch_matches_numpy(torch_kernels):
    torch = pytest.importorskip("torch")
    X = factor_rows(3, 600, 50).astype(np.float32)
    a, b = correlation_summary(torch.from_numpy(X)), correlation_summary(X)
    eps = float32_error_bound(50)
    for key in ("mean_abs", "max_abs", "mean_sq"):
        assert a[key] == pytest.approx(b[key], abs=2 * eps), key
    assert a["n_pairs"] == b["n_pairs"] == 600 * 599 / 2
    X[[5, 70]] = 1.5  # constant rows, and the sampled path
    a = correlation_summary(torch.from_numpy(X), method="sampled", sample_size=50, rng=1)
    b = correlation_summary(X, method="sampled", sample_size=50, rng=1)
    assert a["method"] == b["method"] == "sampled(s=50)" and a["n_constant"] == b["n_constant"] == 2
    for key in ("mean_abs", "mean_abs_se", "share_above", "mean_sq"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key


def test_bfloat16_tensor(torch_kernels):
    torch = pytest.importorskip("torch")
    Xb = torch.from_numpy(factor_rows(4, 40, 30)).to(torch.bfloat16)
    a, b = correlation_summary(Xb), correlation_summary(Xb.float().numpy())
    for key in STATS:
        assert a[key] == pytest.approx(b[key], rel=1e-12), key


def test_half_precision_is_never_widened_whole():
    X = np.random.default_rng(2).normal(size=(600, 20_000)).astype(np.float16)
    widened = X.size * 8  # a float64 copy of the whole matrix
    for kw in ({}, {"method": "sampled", "rng": 0, "sample_size": 100}):
        tracemalloc.start()
        correlation_summary(X, **kw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 0.7 * widened, kw


def test_methods_and_auto(monkeypatch):
    X = factor_rows(4, 40, 12)
    exact = correlation_summary(X)
    assert exact["method"] == "exact" and not exact["max_abs_is_lower_bound"]
    assert all(exact[f"{k}_se"] == 0.0 for k in ESTIMATED)
    assert correlation_summary(X, method="auto") == exact
    # a sample as large as the usable rows is the exact summary
    assert correlation_summary(X, method="sampled", sample_size=40, rng=0) == exact
    s = correlation_summary(X, method="sampled", sample_size=10, rng=0)
    assert s["method"] == "sampled(s=10)" and s["max_abs_is_lower_bound"]
    assert s["max_abs"] <= exact["max_abs"] + float32_error_bound(12) and s["n_sampled"] == 10
    assert s["n_pairs"] == exact["n_pairs"] and s["n_constant"] == 0
    assert s == correlation_summary(X, method="sampled", sample_size=10, rng=0)  # seeded
    assert s != correlation_summary(X, method="sampled", sample_size=10, rng=1)
    monkeypatch.setattr(corr_mod, "EXACT_MAX_NEURONS", 39)
    assert correlation_summary(X, method="auto", sample_size=10, rng=0) == s


def test_sampled_skips_constant_rows_like_exact():
    X = factor_rows(5, 60, 20)
    X[[3, 17, 40]] = 2.5  # constant neurons
    X[8] = 1e-30 * np.arange(20)  # almost constant: decided by the float64 test
    exact = correlation_summary(X)
    s = correlation_summary(X, method="sampled", sample_size=20, rng=0)
    assert s["n_constant"] == exact["n_constant"] == 4
    assert s["n_pairs"] == exact["n_pairs"] == 56 * 55 / 2


def test_sampled_mean_sq_exact_from_the_small_gram():
    X = factor_rows(6, 400, 10)  # m d = 4000 <= 4 s^2: ||Z^T Z||_F, exact
    exact = correlation_summary(X)
    s = correlation_summary(X, method="sampled", sample_size=50, rng=0)
    assert s["mean_sq"] == pytest.approx(exact["mean_sq"], rel=1e-10)
    assert s["effective_n"] == pytest.approx(exact["effective_n"], rel=1e-10)
    assert s["mean_sq_se"] == s["effective_n_se"] == 0.0
    assert s["mean_abs_se"] > 0


def test_sampled_coverage():
    """The stated ~95% intervals cover the exact value at the nominal rate.

    300 seeds: the number of covering intervals is Binomial(300, 0.95) when the standard error is
    right, SD sqrt(300 * 0.95 * 0.05) = 3.8 intervals; we allow 3.5 SD either side (the jackknife
    is known to be slightly conservative, and the four statistics share samples).
    """
    X = factor_rows(123, 300, 64)  # m d = 19200 > 4 s^2: every statistic is estimated
    exact = correlation_summary(X, threshold=0.3)
    seeds = 300
    hits = {k: 0 for k in ESTIMATED}
    for seed in range(seeds):
        s = correlation_summary(X, threshold=0.3, method="sampled", sample_size=60, rng=seed)
        for k in ESTIMATED:
            hits[k] += abs(s[k] - exact[k]) <= 1.96 * s[f"{k}_se"]
    sd = math.sqrt(seeds * 0.95 * 0.05)
    for k, h in hits.items():
        assert abs(h - 0.95 * seeds) <= 3.5 * sd, (k, h / seeds)


def test_errors():
    with pytest.raises(ShapeError, match=r"X: expected a 2-D .* got shape \(4,\)"):
        correlation_summary(np.ones(4))
    with pytest.raises(ShapeError, match="at least 2 features"):
        correlation_summary(np.ones((4, 1)))
    with pytest.raises(NonFiniteError, match=r"X holds \d+ non-finite value"):
        correlation_summary(np.array([[1.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="threshold must lie in \\[0, 1\\], got 1.5"):
        correlation_summary(np.ones((3, 3)), threshold=1.5)
    with pytest.raises(ValueError, match="method must be one of .* got 'fast'"):
        correlation_summary(np.ones((3, 3)), method="fast")
    with pytest.raises(ValueError, match="sample_size must be an integer of at least 3, got 2"):
        correlation_summary(np.ones((3, 3)), method="sampled", sample_size=2)


# -- the usable rows from a layer's sums, and the gathered columns -------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_usable_from_moments_is_the_standardisation_mask(seed):
    """Constant rows, nearly constant ones (relative spread 1e-13, 1e-9), zero rows, huge and tiny
    scales: the mask equals the one the float64 standardisation gives."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 33))
    X[1] = 7.0
    X[2] = 0.0
    X[3] = 1e6 + 1e-7 * rng.normal(size=33)
    X[4] = 1.0 + 1e-13 * rng.normal(size=33)
    X[5] *= 1e-12
    X[6] *= 1e150
    X[7] = 1e-300 * rng.normal(size=33)
    s, q = X.sum(axis=1), np.einsum("ij,ij->i", X, X)
    ok = corr_mod.usable_from_moments(s, q, X.shape[1], X)
    np.testing.assert_array_equal(ok, corr_mod._standardise(X, True)[1])
    assert not ok[1] and not ok[2] and ok[0]


def test_sampled_summary_with_given_usable_rows_is_unchanged():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(700, 1500)).astype(np.float32)
    W[:, 3] = 0.25  # a constant column: an unusable row of W.T
    for X in (W, W.T):
        X64 = np.asarray(X, dtype=np.float64)
        ok = corr_mod.usable_from_moments(X64.sum(1), np.einsum("ij,ij->i", X64, X64), X.shape[1], X)
        a = correlation_summary(X, method="sampled", rng=1, sample_size=64)
        b = correlation_summary(X, method="sampled", rng=1, sample_size=64, usable=ok)
        assert a == b


def test_gather_rows_of_a_transposed_view():
    W = np.random.default_rng(5).normal(size=(300, 200)).astype(np.float32)
    idx = np.array([0, 3, 64, 65, 127, 128, 199])
    np.testing.assert_array_equal(corr_mod._gather_rows(W.T, idx), W.T[idx])
    np.testing.assert_array_equal(corr_mod._gather_rows(W, idx), W[idx])
    assert corr_mod._gather_rows(W.T, idx).flags.c_contiguous


def test_rows_of_a_transposed_view_read_in_blocks():
    W = np.random.default_rng(6).normal(size=(300, 70)).astype(np.float16)
    for X in (W, W.T, np.asfortranarray(W)):
        for a, b in ((0, 70), (3, 41), (60, 500)):
            got = corr_mod._rows_f64(X, a, b)
            np.testing.assert_array_equal(got, np.asarray(X[a:b], dtype=np.float64))
            assert got.flags.c_contiguous and got.dtype == np.float64
    exact = correlation_summary(W.T.astype(np.float32), method="exact")
    assert correlation_summary(np.ascontiguousarray(W.T).astype(np.float32), method="exact") == exact
