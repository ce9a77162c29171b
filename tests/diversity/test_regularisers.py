"""Decorrelation penalties, schedules and the scheduled Decorrelation regulariser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from netinit.diversity import (
    ActivationCorrelation,
    Decorrelation,
    DeCov,
    Orthogonality,
    Schedule,
    WeightCorrelation,
)
from netinit.errors import DataError, NoLayersError, ShapeError

ACT = [ActivationCorrelation, DeCov]
WEIGHT = [WeightCorrelation, Orthogonality]


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp(seed: int = 0, hidden: int = 8) -> nn.Module:
    model = nn.Sequential(nn.Linear(5, hidden), nn.ReLU(), nn.Linear(hidden, 6), nn.ReLU(), nn.Linear(6, 3))
    g = _gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5, generator=g)
    return model


def _uncorrelated(n_samples: int, n: int, seed: int) -> torch.Tensor:
    """Columns with exactly zero sample correlation (centred, mutually orthogonal)."""
    X = torch.randn(n_samples, n, generator=_gen(seed), dtype=torch.float64)
    X = X - X.mean(0)
    Q = torch.linalg.qr(torch.cat([torch.ones(n_samples, 1, dtype=torch.float64), X], 1))[0][:, 1:]
    return Q * torch.arange(1, n + 1, dtype=torch.float64) + 3.0  # scaled and shifted: still r = 0


@pytest.mark.parametrize("cls", ACT)
@pytest.mark.parametrize("seed", [0, 1])
def test_activation_penalties_pass_gradcheck(cls, seed):
    H = torch.randn(12, 5, generator=_gen(seed), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cls(0.7), (H,))


@pytest.mark.parametrize("cls", WEIGHT)
@pytest.mark.parametrize("shape", [(4, 6), (6, 3), (3, 2, 2)])
def test_weight_penalties_pass_gradcheck(cls, shape):
    W = torch.randn(*shape, generator=_gen(1), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cls(0.7), (W,))
    if cls is WeightCorrelation:
        assert torch.autograd.gradcheck(cls(centre=True), (W,))
    else:
        assert torch.autograd.gradcheck(cls(normalise=False), (W,))


@pytest.mark.parametrize("cls", ACT)
def test_activation_penalties_are_zero_on_uncorrelated_and_positive_on_redundant(cls):
    H = _uncorrelated(40, 6, seed=2)
    assert _f(cls()(H)) == pytest.approx(0.0, abs=1e-12)
    redundant = torch.cat([H, 2.0 * H[:, :1]], dim=1)
    assert _f(cls()(redundant)) > 1e-3


def test_activation_correlation_matches_numpy_and_ignores_dead_columns():
    H = torch.randn(30, 4, generator=_gen(3), dtype=torch.float64)
    H[:, 1] += H[:, 0]
    R = np.corrcoef(H.numpy().T)
    expected = (R[~np.eye(4, dtype=bool)] ** 2).mean()
    assert _f(ActivationCorrelation()(H)) == pytest.approx(expected, rel=1e-12)
    dead = torch.cat([H, torch.zeros(30, 2, dtype=torch.float64)], dim=1)
    assert _f(ActivationCorrelation()(dead)) == pytest.approx(expected, rel=1e-12)
    assert _f(ActivationCorrelation(coef=2.0)(H)) == pytest.approx(2 * expected, rel=1e-12)


def test_decov_matches_cogswell_formula():
    H = torch.randn(20, 5, generator=_gen(4), dtype=torch.float64)
    C = np.cov(H.numpy().T, bias=True)
    expected = 0.5 * ((C**2).sum() - (np.diag(C) ** 2).sum())
    assert _f(DeCov()(H)) == pytest.approx(expected, rel=1e-12)


def test_activation_penalties_conv_and_short_batches():
    H = torch.randn(8, 3, 4, 4, generator=_gen(5), dtype=torch.float64)
    for cls in ACT:
        assert _f(cls()(H)) == pytest.approx(_f(cls()(H.mean(dim=(2, 3)))), rel=1e-12)
        one = torch.randn(1, 4, requires_grad=True)
        out = cls()(one)
        assert _f(out) == 0.0 and out.requires_grad
    with pytest.raises(ShapeError, match=r"needs H of shape \(samples, n\)"):
        DeCov()(torch.ones(4))


def test_weight_penalties_zero_on_orthogonal_rows_and_bounded_when_overcomplete():
    Q = torch.linalg.qr(torch.randn(7, 4, generator=_gen(6), dtype=torch.float64))[0].T  # (4, 7)
    scaled = Q * torch.tensor([[0.1], [2.0], [3.0], [0.5]], dtype=torch.float64)
    for P in (WeightCorrelation(), Orthogonality()):
        assert _f(P(scaled)) == pytest.approx(0.0, abs=1e-12)
    assert _f(Orthogonality(normalise=False)(Q)) == pytest.approx(0.0, abs=1e-12)
    assert _f(Orthogonality(normalise=False)(scaled)) > 1.0
    W = torch.randn(10, 4, generator=_gen(7), dtype=torch.float64)
    assert _f(Orthogonality()(W)) >= 10 * (10 - 4) / 4 - 1e-9
    assert 0.0 < _f(WeightCorrelation()(W)) <= 1.0


def test_normalised_orthogonality_is_weight_correlation_times_pairs():
    """With unit rows the Gram diagonal is 1, so ||W'W'^T - I||^2 sums the n(n-1) squared cosines that
    WeightCorrelation averages: the two differ only in scale (normalise=False is the distinct penalty)."""
    W = torch.randn(32, 64, generator=_gen(8), dtype=torch.float64)
    n = W.shape[0]
    assert _f(Orthogonality()(W)) == pytest.approx(n * (n - 1) * _f(WeightCorrelation()(W)), rel=1e-12)
    assert _f(Orthogonality(normalise=False)(W)) != pytest.approx(n * (n - 1) * _f(WeightCorrelation()(W)), rel=1e-3)


@pytest.mark.parametrize(
    "kind,epochs,expected",
    [
        ("constant", 3, [1, 1, 1, 1, 1]),
        ("first_epochs", 2, [1, 1, 0, 0, 0]),
        ("linear", 4, [1, 0.75, 0.5, 0.25, 0]),
        ("cosine", 2, [1, 0.5, 0, 0, 0]),
        ("adaptive", 2, [1, 1, 1, 1, 1]),
    ],
)
def test_schedule_factors(kind, epochs, expected):
    s = Schedule(kind, epochs=epochs)
    assert [s.factor(e) for e in range(5)] == pytest.approx(expected, abs=1e-12)


def test_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match="schedule must be one of constant, first_epochs"):
        Schedule("exponential")
    with pytest.raises(ValueError, match="epochs must be a positive number, got 0"):
        Schedule("linear", epochs=0)
    with pytest.raises(ValueError, match=r"target must lie in \(0, 1\], got 1.5"):
        Schedule("adaptive", target=1.5)
    with pytest.raises(ValueError, match="epoch must be a non-negative number, got -1"):
        Schedule().factor(-1)


def _hidden_acts(model, x):
    return [model[1](model[0](x)), model[3](model[2](model[1](model[0](x))))]


def test_decorrelation_value_hooks_and_remove():
    model = _mlp()
    x = torch.randn(16, 5, generator=_gen(8))
    reg = Decorrelation(model, kind="activation_correlation", schedule="constant", coef=0.3, activation="relu")
    assert reg.layers == ["0", "2"]
    assert len(model[0]._forward_hooks) == 1 and len(model[4]._forward_hooks) == 0
    with pytest.raises(DataError, match="call the model on a batch before the regulariser"):
        reg()
    model(x)
    h1 = torch.relu(model[0](x))
    h2 = torch.relu(model[2](h1))
    P = ActivationCorrelation()
    assert _f(reg()) == pytest.approx(0.3 * _f(P(h1) + P(h2)), rel=1e-6)
    reg.remove()
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(DataError, match="do not call remove"):
        reg()


def test_decorrelation_gradient_reaches_hidden_weights_only_through_the_penalty():
    model = _mlp()
    x = torch.randn(16, 5, generator=_gen(9))
    with Decorrelation(model, kind="decov", schedule="constant", coef=1.0) as reg:
        model(x)
        reg().backward()
    assert model[0].weight.grad is not None and _f(model[0].weight.grad.abs().sum()) > 0
    assert model[4].weight.grad is None  # the output layer is not regularised
    assert all(not m._forward_hooks for m in model.modules())


def test_decorrelation_schedule_switches_off_and_epoch_is_settable():
    model = _mlp()
    x = torch.randn(16, 5, generator=_gen(10))
    reg = Decorrelation(model, kind="decov", schedule="first_epochs", epochs=2, coef=0.1)
    model(x)
    on = _f(reg())
    assert on > 0
    reg.step_epoch()
    assert _f(reg()) == pytest.approx(on)
    reg.step_epoch()
    assert _f(reg()) == 0.0 and reg.factor == 0.0
    lin = Decorrelation(model, kind="decov", schedule="linear", epochs=4, coef=0.1)
    model(x)
    lin.epoch = 1.5
    assert lin.factor == pytest.approx(0.1 * (1 - 1.5 / 4))
    assert _f(lin()) == pytest.approx(on * (1 - 1.5 / 4), rel=1e-6)
    with pytest.raises(ValueError, match="epoch must be a non-negative number"):
        lin.epoch = -2
    reg.remove()
    lin.remove()


def test_decorrelation_adaptive_gate_follows_measured_diversity():
    model = _mlp()
    x = torch.randn(32, 5, generator=_gen(11))
    always = Decorrelation(model, kind="activation_correlation", schedule=Schedule("adaptive", target=1.0))
    never = Decorrelation(model, kind="activation_correlation", schedule=Schedule("adaptive", target=1e-9))
    model(x)
    assert _f(always()) > 0 and all(_f(g) == 1.0 for g in always.last_gates.values())
    assert _f(never()) == 0.0 and all(_f(g) == 0.0 for g in never.last_gates.values())
    w = Decorrelation(model, kind="weight_correlation", schedule="adaptive")
    assert w.last_gates == {} and _f(w()) >= 0.0
    assert set(w.last_gates) == {"0", "2"}
    always.remove()
    never.remove()


def test_decorrelation_weight_kinds_need_no_forward():
    model = _mlp()
    reg = Decorrelation(model, kind="orthogonality", schedule="constant", coef=2.0, layers=["0", "4"])
    assert all(not m._forward_hooks for m in model.modules())
    expected = 2.0 * _f(Orthogonality()(model[0].weight) + Orthogonality()(model[4].weight))
    assert _f(reg()) == pytest.approx(expected, rel=1e-6)


def test_decorrelation_bad_arguments():
    model = _mlp()
    with pytest.raises(ValueError, match="kind must be one of activation_correlation, decov"):
        Decorrelation(model, kind="dropout")
    with pytest.raises(ValueError, match="schedule must be one of"):
        Decorrelation(model, schedule="step")
    with pytest.raises(ValueError, match="coef must be a non-negative number, got -1"):
        Decorrelation(model, coef=-1)
    with pytest.raises(NoLayersError, match="no weight layer matches the layer regex 'head'"):
        Decorrelation(model, layers="head")
    with pytest.raises(NoLayersError, match="no hidden layer"):
        Decorrelation(nn.Linear(3, 2))


def test_decorrelation_trains_towards_lower_correlation():
    model = _mlp(seed=12, hidden=10)
    x = torch.randn(64, 5, generator=_gen(12))
    reg = Decorrelation(model, kind="activation_correlation", schedule="constant", coef=1.0, layers="0")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model(x)
    start = _f(reg())
    for _ in range(30):
        opt.zero_grad()
        model(x)
        reg().backward()
        opt.step()
    model(x)
    assert _f(reg()) < 0.75 * start
    assert math.isfinite(start)
