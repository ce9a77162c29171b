"""netinit.metrics.null: shuffles keep what they must, the fast path equals the generic one,
z-scores of iid layers are standard, structured layers stand out."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from netinit.errors import NonFiniteError, ShapeError
from netinit.metrics.correlation import correlation_summary
from netinit.metrics.null import (
    NULL_MODELS,
    SUMMARY_STATS,
    _copies,
    null_chain_correlation,
    null_model,
    null_summary,
    shuffle_weights,
)
from netinit.metrics.tables import layer_summary


@pytest.fixture
def W() -> np.ndarray:
    W = np.random.default_rng(1).normal(size=(9, 13)).astype(np.float32)
    W[0, :3] = 0.0
    W[4] = 0.25  # a constant row
    return W


def summary(X: np.ndarray) -> dict:
    return layer_summary(X, layer="fc", kind="linear")


# -- the shuffles ---------------------------------------------------------------------------

@pytest.mark.parametrize("model", NULL_MODELS)
def test_every_copy_keeps_the_multisets(W, model):
    copies = np.concatenate(list(_copies(W, 30, model, np.random.default_rng(0))))
    assert copies.shape == (30, *W.shape) and copies.dtype == W.dtype
    for S in copies:
        np.testing.assert_array_equal(np.sort(S, axis=None), np.sort(W, axis=None))
        if model == "rows":
            np.testing.assert_array_equal(np.sort(S, axis=1), np.sort(W, axis=1))
        if model == "columns":
            np.testing.assert_array_equal(np.sort(S, axis=0), np.sort(W, axis=0))
    assert len({S.tobytes() for S in copies}) == 30  # independent copies, none repeated
    S = shuffle_weights(W, model=model, rng=3)
    np.testing.assert_array_equal(np.sort(S, axis=None), np.sort(W, axis=None))
    np.testing.assert_array_equal(S, shuffle_weights(W, model=model, rng=3))


@pytest.mark.parametrize("model, shape, n_patterns", [("matrix", (2, 2), 24),
                                                      ("rows", (2, 3), 36),
                                                      ("columns", (3, 2), 36)])
def test_shuffles_are_uniform_chi_square(model, shape, n_patterns):
    """Every arrangement the model allows is equally likely (chi-square, 100 draws each)."""
    W = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    k = 100 * n_patterns
    copies = np.concatenate(list(_copies(W, k, model, np.random.default_rng(11))))
    counts = Counter(S.tobytes() for S in copies)
    assert len(counts) == n_patterns
    assert stats.chisquare(list(counts.values())).pvalue > 1e-4


# -- null_model and the fast path -----------------------------------------------------------

@pytest.mark.parametrize("model", NULL_MODELS)
def test_fast_path_equals_generic_layer_summary(W, model):
    fast = null_summary(W, shuffles=20, model=model, rng=5, corr_sample=None)
    slow = null_model(W, summary, shuffles=20, model=model, rng=5)
    obs = summary(W)
    assert fast["null_model"] == slow["null_model"] == model
    assert fast["null_shuffles"] == 20 and fast["null_corr_rows"] == 9 and fast["null_corr_cols"] == 13
    for s in SUMMARY_STATS:
        assert fast[f"{s}_null_observed"] == pytest.approx(obs[s], rel=1e-10, abs=1e-14), s
        assert fast[f"{s}_null_mean"] == pytest.approx(slow[f"{s}_null_mean"], rel=1e-10,
                                                       abs=1e-14), s
        assert fast[f"{s}_null_sd"] == pytest.approx(slow[f"{s}_null_sd"], rel=1e-8,
                                                     abs=1e-12), s
        assert math.isnan(fast[f"{s}_z"]) == math.isnan(slow[f"{s}_z"]), s
    kept = {"rows": "in", "columns": "out"}.get(model)
    for s in SUMMARY_STATS:
        if kept and s in (f"{kept}_strength_var", f"{kept}_strength_abs_var",
                          f"corr_{kept}_n_constant"):
            assert fast[f"{s}_null_sd"] == 0.0 and math.isnan(fast[f"{s}_z"]), s
    assert fast["corr_in_n_constant_null_observed"] == 1.0  # the constant row


def test_threads_and_batches_give_the_same_copies(W, monkeypatch):
    import netinit.metrics.null as null

    serial = null_summary(W, shuffles=12, model="matrix", rng=8)
    monkeypatch.setattr(null, "_THREAD_ELEMENTS", 1)  # every layer on threads
    threaded = null_summary(W, shuffles=12, model="matrix", rng=8)
    monkeypatch.setattr(null, "_BATCH_ELEMENTS", 2 * W.size)  # serial, batches of 2 copies
    monkeypatch.setattr(null, "_THREAD_ELEMENTS", 1 << 40)
    batched = null_summary(W, shuffles=12, model="matrix", rng=8)
    for key, v in serial.items():
        for other in (threaded, batched):
            assert other[key] == v or (v != v and other[key] != other[key]), key


def test_z_definition_and_degenerate_rule(W):
    def stat(X):
        return {"first_row_sum": float(X[0].sum()), "corner": float(X[0, 0]), "name": "fc",
                "flag": True}

    r = null_model(W, stat, shuffles=50, model="rows", rng=0)
    assert "name_z" not in r and "flag_z" not in r
    assert r["first_row_sum_null_sd"] < 1e-6 and math.isnan(r["first_row_sum_z"])
    obs, mean, sd = W[0, 0], r["corner_null_mean"], r["corner_null_sd"]
    assert r["corner_z"] == pytest.approx((obs - mean) / sd)
    assert r["corner_null_observed"] == pytest.approx(float(W[0, 0]))


def test_sampled_correlation_uses_the_documented_sample():
    W = np.random.default_rng(2).normal(size=(40, 30))
    r = null_summary(W, shuffles=10, model="matrix", rng=3, corr_sample=8)
    assert (r["null_corr_rows"], r["null_corr_cols"]) == (8, 8)
    sample = np.random.default_rng(3).spawn(2)[1]
    rows = np.sort(sample.choice(40, size=8, replace=False))
    cols = np.sort(sample.choice(30, size=8, replace=False))
    for side, X in (("in", W[rows]), ("out", W[:, cols].T)):
        ref = correlation_summary(X)
        for key in ("mean_abs", "max_abs", "share_above", "mean_sq"):
            assert r[f"corr_{side}_{key}_null_observed"] == pytest.approx(ref[key], rel=1e-12)
        assert r[f"effective_n_{side}_null_observed"] == pytest.approx(ref["effective_n"])
    assert r["in_strength_var_null_observed"] == pytest.approx(summary(W)["in_strength_var"])


def test_deterministic_and_seed_dependent(W):
    a = null_summary(W, shuffles=10, rng=np.random.default_rng(4))
    b = null_summary(W, shuffles=10, rng=4)
    c = null_summary(W, shuffles=10, rng=5)
    assert a == b or all(a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]) for key in a)
    assert a["corr_in_mean_abs_null_mean"] != c["corr_in_mean_abs_null_mean"]


def test_one_feature_side_follows_layer_summary():
    W = np.random.default_rng(0).normal(size=(5, 1))
    r = null_summary(W, shuffles=5, model="matrix", rng=0)
    obs = summary(W)
    for s in ("corr_in_mean_abs", "effective_n_in", "corr_in_n_constant"):
        assert r[f"{s}_null_observed"] == obs[s]
        assert math.isnan(r[f"{s}_z"])


# -- statistics: iid layers give standard z-scores, low-rank layers do not -------------------

# Continuous statistics (share_above and n_constant take few values on small layers).
_CONTINUOUS = ("in_strength_var", "out_strength_var", "in_strength_abs_var",
               "out_strength_abs_var", "corr_in_mean_abs", "corr_in_max_abs",
               "corr_in_mean_sq", "effective_n_in", "corr_out_mean_abs", "corr_out_max_abs",
               "corr_out_mean_sq", "effective_n_out")
N_SEEDS, K = 400, 40


@pytest.mark.parametrize("model, corr_sample", [("matrix", None), ("rows", None),
                                                ("columns", None), ("rows", 8)])
def test_z_of_gaussian_layers_is_standard(model, corr_sample):
    """Over N_SEEDS iid Gaussian 12x16 layers the z of every statistic has mean 0 and SD ~1.

    The observed layer and its K copies are exchangeable, so z is approximately a t variable
    on K-1 degrees of freedom scaled by sqrt((K+1)/K): SD
    ``sqrt((K+1)/K * (K-1)/(K-3)) = 1.039`` for K=40. Tolerances are 4 standard errors over
    N_SEEDS independent layers: ``4 / sqrt(N_SEEDS) = 0.2`` for the mean and
    ``4 * sqrt((kurtosis - 1) / (4 N_SEEDS))`` for the SD, about ``0.15`` for kurtosis <= 4
    (the max |r| statistics are skewed, hence the allowance above the normal's 3).
    """
    z = {s: [] for s in _CONTINUOUS}
    for seed in range(N_SEEDS):
        W = np.random.default_rng(seed).normal(size=(12, 16))
        r = null_summary(W, shuffles=K, model=model, rng=seed + 10_000, corr_sample=corr_sample)
        for s in _CONTINUOUS:
            z[s].append(r[f"{s}_z"])
    expected_sd = math.sqrt((K + 1) / K * (K - 1) / (K - 3))
    mean_tol = 4.0 / math.sqrt(N_SEEDS)
    sd_tol = 4.0 * math.sqrt(3.0 / (4 * N_SEEDS))
    tested = 0
    for s, values in z.items():
        v = np.asarray(values)
        if np.isnan(v).all():  # a statistic the model keeps
            assert (model, s.split("_")[0]) in {("rows", "in"), ("columns", "out")}
            continue
        assert not np.isnan(v).any(), s
        assert abs(v.mean()) < mean_tol, (s, v.mean())
        assert abs(v.std(ddof=1) - expected_sd) < sd_tol, (s, v.std(ddof=1))
        tested += 1
    assert tested >= 10


@pytest.mark.parametrize("model", NULL_MODELS)
def test_low_rank_layer_has_large_correlation_z(model):
    g = np.random.default_rng(0)
    W = g.normal(size=(40, 2)) @ g.normal(size=(2, 50))
    r = null_summary(W, shuffles=30, model=model, rng=1)
    for side in ("in", "out"):
        assert r[f"corr_{side}_mean_abs_z"] > 10, side
        assert r[f"corr_{side}_mean_sq_z"] > 10, side
        assert r[f"effective_n_{side}_z"] < -10, side


# -- validation -----------------------------------------------------------------------------

def test_errors(W):
    with pytest.raises(ValueError, match=r"model must be one of \('matrix', 'rows', 'columns'\), got 'cols'"):
        null_summary(W, model="cols")
    with pytest.raises(ValueError, match=r"shuffles must be an integer >= 2 .* got 1"):
        null_model(W, summary, shuffles=1)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\], got 2"):
        null_summary(W, threshold=2)
    with pytest.raises(ValueError, match=r"corr_sample must be None or an integer >= 2, got 1"):
        null_summary(W, corr_sample=1)
    with pytest.raises(ValueError, match=r"model must be one of"):
        shuffle_weights(W, model="all")
    with pytest.raises(ShapeError, match=r"expected a 2-D weight matrix \(n_out, n_in\), got shape \(2, 3, 4\)"):
        null_summary(np.ones((2, 3, 4)))
    with pytest.raises(NonFiniteError, match=r"holds 1 non-finite value\(s\) \(NaN or inf\)"):
        null_model(np.array([[1.0, np.inf]]), summary)
    with pytest.raises(ValueError, match=r"statistic returned no 'x' for shuffled copy 0"):
        calls = iter(range(100))
        null_model(W, lambda X: {"x": 1.0} if next(calls) == 0 else {}, shuffles=2)


# -- strengths of the copies and the chain correlation's null ---------------------------------

@pytest.mark.parametrize("model", NULL_MODELS)
def test_strengths_are_the_sums_of_the_copies(W, model):
    """``strengths=True`` returns each copy's row and column sums: their variances are the null
    values of the strength variances, each copy keeps the total, the kept side is the observed
    one, and nothing else of the result changes."""
    plain = null_summary(W, shuffles=15, model=model, rng=2)
    r = null_summary(W, shuffles=15, model=model, rng=2, strengths=True)
    S_in, S_out = r.pop("null_in_strengths"), r.pop("null_out_strengths")
    assert r.keys() == plain.keys()
    for key, v in plain.items():
        assert r[key] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(r[key])), key
    assert S_in.shape == (15, W.shape[0]) and S_out.shape == (15, W.shape[1])
    np.testing.assert_allclose(S_in.sum(axis=1), W.sum(dtype=np.float64), rtol=1e-10)
    np.testing.assert_allclose(S_out.sum(axis=1), W.sum(dtype=np.float64), rtol=1e-10)
    if model != "rows":
        np.testing.assert_allclose(S_in.var(axis=1).mean(), r["in_strength_var_null_mean"], rtol=1e-10)
    if model != "columns":
        np.testing.assert_allclose(S_out.var(axis=1).mean(), r["out_strength_var_null_mean"], rtol=1e-10)
    if model == "rows":
        np.testing.assert_allclose(S_in, np.broadcast_to(W.sum(axis=1, dtype=np.float64), S_in.shape), rtol=1e-12)
    if model == "columns":
        np.testing.assert_allclose(S_out, np.broadcast_to(W.sum(axis=0, dtype=np.float64), S_out.shape), rtol=1e-12)


def _chain_z(Wa, Wb, model, seed, shuffles):
    from netinit.metrics import chain_strength_correlation

    a = null_summary(Wa, shuffles=shuffles, model=model, rng=seed, strengths=True)
    b = null_summary(Wb, shuffles=shuffles, model=model, rng=seed + 1, strengths=True)
    obs = chain_strength_correlation(Wa, Wb)
    return null_chain_correlation(a["null_in_strengths"], b["null_out_strengths"], obs, model=model)


@pytest.mark.parametrize("model", NULL_MODELS)
def test_chain_z_of_gaussian_layers_is_standard(model):
    """Independent Gaussian layers a (20x12) -> b (9x20): the chain correlation's z over
    N_CHAIN seeds has mean 0 and SD near the t-based 1.039 (K=40); tolerances 4 standard errors
    (``4 / sqrt(N_CHAIN)`` for the mean, ``4 sqrt(2 / (4 N_CHAIN))`` for the SD)."""
    n_chain = 150
    z = []
    for seed in range(n_chain):
        g = np.random.default_rng(seed)
        z.append(_chain_z(g.normal(size=(20, 12)), g.normal(size=(9, 20)), model, 1000 + 2 * seed, K)
                 ["strength_correlation_z"])
    z = np.asarray(z)
    assert not np.isnan(z).any()
    expected_sd = math.sqrt((K + 1) / K * (K - 1) / (K - 3))
    assert abs(z.mean()) < 4.0 / math.sqrt(n_chain), z.mean()
    assert abs(z.std(ddof=1) - expected_sd) < 4.0 * math.sqrt(2.0 / (4 * n_chain)), z.std(ddof=1)


def test_chain_z_is_large_for_neurons_strong_on_both_sides():
    """Neurons whose incoming and outgoing weights share a scale (positive weights) have
    correlated in- and out-strengths: a large z under every model."""
    g = np.random.default_rng(0)
    scale = g.uniform(0.2, 3.0, size=200)
    Wa = scale[:, None] * g.uniform(0.5, 1.0, size=(200, 16))
    Wb = scale[None, :] * g.uniform(0.5, 1.0, size=(8, 200))
    for model in NULL_MODELS:
        r = _chain_z(Wa, Wb, model, 5, 30)
        assert r["strength_correlation_z"] > 8, (model, r)


def test_chain_null_errors_and_undefined_values():
    with pytest.raises(ValueError, match=r"one shape \(shuffles >= 2, n_mid\), got \(5, 3\) and \(5, 4\)"):
        null_chain_correlation(np.ones((5, 3)), np.ones((5, 4)), 0.5)
    with pytest.raises(ValueError, match=r"model must be one of"):
        null_chain_correlation(np.ones((5, 3)), np.ones((5, 3)), 0.5, model="both")
    r = null_chain_correlation(np.ones((5, 3)), np.arange(15.0).reshape(5, 3), 0.5)  # constant: no r
    assert math.isnan(r["strength_correlation_z"]) and math.isnan(r["strength_correlation_null_sd"])
    g = np.random.default_rng(1)
    r = null_chain_correlation(g.normal(size=(6, 4)), g.normal(size=(6, 4)), float("nan"))
    assert math.isnan(r["strength_correlation_z"]) and np.isfinite(r["strength_correlation_null_mean"])
