"""stabilize_ (torch) and stabilize (numpy): the best of k draws by strength variance."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from netinit.errors import DtypeError, ShapeError
from netinit.rewire import stabilize, stabilize_, strength_variances


def _score(t):
    return sum(strength_variances(t)) / 2


def test_strength_variances_definition():
    M = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    v_in, v_out = strength_variances(M)
    assert v_in == np.var([6.0, 6.0]) == 0.0
    assert v_out == pytest.approx(np.var([1.0, 2.0, 9.0]))
    assert strength_variances(torch.tensor(M)) == (v_in, v_out)
    conv = np.arange(24.0).reshape(2, 3, 2, 2)
    assert strength_variances(conv) == strength_variances(conv.reshape(2, 12))


def test_stabilize_keeps_the_best_draw():
    k = 6
    w = torch.empty(32, 48)
    out = stabilize_(w, torch.nn.init.kaiming_normal_, k, generator=torch.Generator().manual_seed(4))
    assert out is w
    g = torch.Generator().manual_seed(4)
    draws = [torch.nn.init.kaiming_normal_(torch.empty(32, 48), generator=g) for _ in range(k)]
    best = min(draws, key=_score)
    assert torch.equal(w, best)


@pytest.mark.parametrize("name", ["kaiming_normal", "kaiming_normal_"])
def test_initializer_by_name(name):
    a, b = torch.empty(16, 16), torch.empty(16, 16)
    stabilize_(a, name, 3, generator=torch.Generator().manual_seed(0))
    stabilize_(b, torch.nn.init.kaiming_normal_, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_partial_initializer_and_lower_variance():
    init = functools.partial(torch.nn.init.kaiming_normal_, nonlinearity="relu")
    one = stabilize_(torch.empty(64, 64), init, 1, generator=torch.Generator().manual_seed(1))
    many = stabilize_(torch.empty(64, 64), init, 50, generator=torch.Generator().manual_seed(1))
    assert _score(many) <= _score(one)


def test_k_zero_is_off():
    w = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    before = w.clone()
    assert stabilize_(w, "orthogonal", 0) is w
    assert torch.equal(w, before)


def test_stabilize_bad_arguments():
    with pytest.raises(ValueError, match=r"initializer must be a callable or one of 'uniform', .* got 'he'"):
        stabilize_(torch.empty(3, 3), "he", 2)
    with pytest.raises(ValueError, match=r"non-negative integer; got -1"):
        stabilize_(torch.empty(3, 3), "normal", -1)
    with pytest.raises(ValueError, match=r"non-negative integer; got 2.5"):
        stabilize_(torch.empty(3, 3), "normal", 2.5)
    with pytest.raises(TypeError, match="takes no 'generator' argument"):
        stabilize_(torch.empty(3, 3), lambda t: t.normal_(), 2)
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        stabilize_(torch.empty(3), "normal", 2)
    with pytest.raises(DtypeError, match="got int32"):
        stabilize_(torch.empty(3, 3, dtype=torch.int32), "normal", 2)


def test_numpy_stabilize():
    def draw(g):
        return g.standard_normal((20, 30))

    W = stabilize(draw, 8, rng=0)
    g = np.random.default_rng(0)
    draws = [draw(g) for _ in range(8)]
    np.testing.assert_array_equal(W, min(draws, key=_score))
    np.testing.assert_array_equal(stabilize(draw, 0, rng=0), draws[0])
    assert not np.array_equal(stabilize(draw, 8, rng=1), W)


def test_numpy_stabilize_bad_draw():
    with pytest.raises(ShapeError, match=r"draw\(rng\) must have at least 2 dimensions"):
        stabilize(lambda g: g.standard_normal(5), 2, rng=0)
    with pytest.raises(ValueError, match="non-negative integer; got -3"):
        stabilize(lambda g: g.standard_normal((2, 2)), -3, rng=0)
