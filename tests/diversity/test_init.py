"""Decorrelated initialisation: decorrelate (numpy/torch kernels) and decorrelated_ (torch.nn.init style)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from netinit.diversity import decorrelate, decorrelated_, weight_diversity
from netinit.errors import DtypeError, NonFiniteError, ShapeError

SEEDS = [0, 1, 2]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _base(shape, seed, base="kaiming_uniform", **kw) -> torch.Tensor:
    t = torch.empty(*shape)
    getattr(torch.nn.init, base + "_")(t, generator=_gen(seed), **kw)
    return t


def _rows(t) -> np.ndarray:
    t = t.detach().numpy() if isinstance(t, torch.Tensor) else t
    return t.reshape(t.shape[0], -1).astype(np.float64)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(16, 32), (31, 32), (8, 3, 3, 3)])
def test_symmetric_zero_correlation_with_base_means_and_norms(seed, shape):
    w = torch.empty(*shape)
    out = decorrelated_(w, generator=_gen(seed))
    assert out is w
    base = _rows(_base(shape, seed))
    got = _rows(w)
    assert weight_diversity(w)["max_abs_r"] < 1e-5
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(base, axis=1), rtol=1e-5)
    np.testing.assert_allclose(got.mean(axis=1), base.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("method", ["symmetric", "backprop"])
@pytest.mark.parametrize("seed", SEEDS)
def test_kernels_agree_across_backends_and_reach_zero(method, seed):
    W = np.random.default_rng(seed).uniform(-1, 1, size=(12, 20))
    a, info_a = decorrelate(W, method=method)
    b, info_b = decorrelate(torch.tensor(W), method=method)
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float64
    np.testing.assert_allclose(a, b.numpy(), atol=1e-12)
    assert info_a["exact"] and info_a["after"]["max_abs_r"] < 1e-10
    assert info_a["before"]["max_abs_r"] > 0.2
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(W, axis=1), rtol=1e-12)
    assert info_a["after"] == pytest.approx(info_b["after"], abs=1e-12)


def test_logdet_objective_and_cosine_variant():
    W = np.random.default_rng(3).normal(size=(10, 16))
    out, info = decorrelate(W, method="backprop", objective="logdet")
    assert info["after"]["max_abs_r"] < 1e-8
    cos, info = decorrelate(W, centre=False)
    G = cos @ cos.T / np.outer(np.linalg.norm(cos, axis=1), np.linalg.norm(cos, axis=1))
    np.testing.assert_allclose(G, np.eye(10), atol=1e-12)
    assert info["capacity"] == 16


def test_overcomplete_layer_reports_residual_and_blocks():
    W = np.random.default_rng(4).uniform(-1, 1, size=(50, 10))
    sym, info = decorrelate(W)
    assert not info["exact"] and info["capacity"] == 9 and info["blocks"] == 6
    assert info["after"]["mean_sq_r"] >= info["bound_mean_sq_r"] - 1e-12
    assert info["after"]["max_abs_r"] > 0.1  # impossible to reach 0
    R = np.corrcoef(sym[:9])  # within a block: exact
    np.testing.assert_allclose(R, np.eye(9), atol=1e-10)
    fr, info_fr = decorrelate(W, overcomplete="frame")
    assert info_fr["blocks"] == 1
    assert info_fr["after"]["mean_sq_r"] == pytest.approx(info_fr["bound_mean_sq_r"], rel=0.05)
    np.testing.assert_allclose(np.linalg.norm(fr, axis=1), np.linalg.norm(W, axis=1), rtol=1e-12)
    small, info_small = decorrelate(W[:9], overcomplete="frame")  # not over-complete: same as blocks
    np.testing.assert_allclose(small, decorrelate(W[:9])[0], atol=1e-12)
    bp, info_bp = decorrelate(W, method="backprop", steps=200)
    assert info_bp["after"]["mean_sq_r"] == pytest.approx(info_bp["bound_mean_sq_r"], rel=0.02)
    assert info_bp["after"]["mean_sq_r"] < info_bp["before"]["mean_sq_r"]
    np.testing.assert_allclose(np.linalg.norm(bp, axis=1), np.linalg.norm(W, axis=1), rtol=1e-12)


def test_decorrelate_preserves_type_shape_and_dtype_and_leaves_input():
    W = torch.randn(6, 2, 2, 2, generator=_gen(5))
    before = W.clone()
    out, info = decorrelate(W)
    assert out.shape == W.shape and out.dtype == torch.float32 and torch.equal(W, before)
    assert info["n_features"] == 8 and info["blocks"] == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_backprop_init_keeps_base_norms(seed):
    w = decorrelated_(torch.empty(20, 40), method="backprop", generator=_gen(seed), steps=60)
    base = _rows(_base((20, 40), seed))
    np.testing.assert_allclose(np.linalg.norm(_rows(w), axis=1), np.linalg.norm(base, axis=1), rtol=1e-5)
    assert weight_diversity(w)["max_abs_r"] < 1e-3


def test_greedy_keeps_base_rows_and_lowers_max_correlation():
    improved = []
    for seed in range(5):
        w = decorrelated_(torch.empty(24, 16), method="greedy", candidates=4, generator=_gen(seed))
        g2 = _gen(seed)
        draws = [torch.nn.init.kaiming_uniform_(torch.empty(24, 16), generator=g2) for _ in range(4)]
        pool = torch.cat(draws)
        assert torch.equal(w[0], draws[0][0])  # starts from the first row of the first draw
        for row in w:  # every kept row is one of the candidates, unchanged
            assert bool((pool == row).all(dim=1).any())
        assert len({tuple(r.tolist()) for r in w}) == 24
        improved.append(weight_diversity(w)["max_abs_r"] < weight_diversity(draws[0])["max_abs_r"])
    assert all(improved)


def test_row_norm_distribution_matches_base_over_seeds():
    """KS test: norms of decorrelated rows vs norms of independent base draws (other seeds)."""
    dec = np.concatenate([np.linalg.norm(_rows(decorrelated_(torch.empty(32, 48), generator=_gen(s))), axis=1)
                          for s in range(10)])
    base = np.concatenate([np.linalg.norm(_rows(_base((32, 48), 100 + s)), axis=1) for s in range(10)])
    assert stats.ks_2samp(dec, base).pvalue > 0.01


@pytest.mark.parametrize("method", ["symmetric", "greedy", "backprop"])
def test_determinism_per_generator_and_randomness_across(method):
    a = decorrelated_(torch.empty(10, 12), method=method, generator=_gen(7))
    b = decorrelated_(torch.empty(10, 12), method=method, generator=_gen(7))
    c = decorrelated_(torch.empty(10, 12), method=method, generator=_gen(8))
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("base", ["kaiming_normal", "xavier_uniform_", "normal", "orthogonal"])
def test_bases_by_name_and_callable(base):
    w = decorrelated_(torch.empty(8, 12), base, generator=_gen(9))
    assert weight_diversity(w)["max_abs_r"] < 1e-5
    calls = []

    def mine(t, generator=None, scale=1.0):
        calls.append(generator)
        return t.uniform_(-scale, scale, generator=generator)

    w = decorrelated_(torch.empty(8, 12), mine, generator=_gen(9), base_kwargs={"scale": 3.0})
    assert calls and calls[0] is not None and float(w.abs().max()) > 1.0


def test_pytorch_linear_default_as_base():
    layer = torch.nn.Linear(30, 10)
    decorrelated_(layer.weight, base_kwargs={"a": math.sqrt(5)}, generator=_gen(10))
    assert layer.weight.grad_fn is None and layer.weight.requires_grad
    assert float(layer.weight.detach().abs().max()) <= 1 / math.sqrt(30) * 1.6  # scale of the default draw
    assert weight_diversity(layer.weight)["max_abs_r"] < 1e-5


def test_bad_input():
    with pytest.raises(ShapeError, match=r"needs a weight of shape \(n_out, n_in, \.\.\.\), got shape \(5,\)"):
        decorrelated_(torch.empty(5))
    with pytest.raises(ValueError, match="one of kaiming_uniform, kaiming_normal, xavier_uniform.*got 'he'"):
        decorrelated_(torch.empty(4, 4), "he")
    with pytest.raises(ValueError, match="method must be one of symmetric, greedy, backprop; got 'pca'"):
        decorrelated_(torch.empty(4, 4), method="pca")
    with pytest.raises(DtypeError, match="floating-point tensor, got torch.int64"):
        decorrelated_(torch.zeros(4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="method 'symmetric' takes the options centre, overcomplete; got steps"):
        decorrelated_(torch.empty(4, 4), steps=3)
    with pytest.raises(TypeError, match="takes no generator= argument"):
        decorrelated_(torch.empty(4, 4), lambda t: t.normal_(), generator=_gen(0))
    with pytest.raises(ShapeError, match="single input per neuron.*pass centre=False"):
        decorrelated_(torch.empty(4, 1))
    with pytest.raises(ValueError, match="candidates must be a positive integer, got 0"):
        decorrelated_(torch.empty(4, 4), method="greedy", candidates=0)
    with pytest.raises(NonFiniteError, match="the weight to decorrelate holds 1 non-finite value"):
        decorrelate(np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="greedy draws candidates: use decorrelated_"):
        decorrelate(np.ones((2, 3)), method="greedy")
    with pytest.raises(ValueError, match="overcomplete must be 'blocks' or 'frame'; got 'tile'"):
        decorrelate(np.ones((2, 3)), overcomplete="tile")
    with pytest.raises(ValueError, match="objective must be one of mean_sq, logdet; got 'kl'"):
        decorrelate(np.ones((2, 3)), method="backprop", objective="kl")


def test_single_input_with_cosine_and_single_row_are_fine():
    w = decorrelated_(torch.empty(1, 6), generator=_gen(11))
    np.testing.assert_allclose(_rows(w), _rows(_base((1, 6), 11)), rtol=1e-6)
    w = decorrelated_(torch.empty(3, 1), generator=_gen(11), centre=False)
    assert w.shape == (3, 1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensor_with_cuda_generator():
    w = torch.empty(64, 128, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    decorrelated_(w, generator=g)
    assert w.is_cuda and weight_diversity(w)["max_abs_r"] < 1e-5
    for method in ("greedy", "backprop"):
        decorrelated_(w, generator=g, method=method)
        assert w.is_cuda
    W = torch.randn(40, 60, dtype=torch.float64, generator=_gen(1))
    cpu, _ = decorrelate(W, method="backprop")
    gpu, _ = decorrelate(W.cuda(), method="backprop")
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-9)
