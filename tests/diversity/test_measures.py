"""Diversity measures: weight space, activation space, the per-layer table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from netinit.diversity import activation_diversity, diversity, weight_diversity
from netinit.errors import DataError, LayerError, NoLayersError, NonFiniteError, ShapeError


def _seeded(model: nn.Module, seed: int) -> nn.Module:
    """Re-draw every parameter from a seeded generator (no global RNG state)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5, generator=g)
    return model


def _mlp(seed: int = 0) -> nn.Module:
    return _seeded(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3)), seed)


def _oracle(X: np.ndarray) -> tuple[float, float, float, float]:
    """mean |r|, max |r|, share |r| > 0.5, effective n of the rows of X by np.corrcoef."""
    R = np.corrcoef(X)
    n = len(R)
    off = np.abs(R[~np.eye(n, dtype=bool)])
    return off.mean(), off.max(), (off > 0.5).mean(), n * n / (R * R).sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weight_diversity_matches_numpy_oracle_for_both_backends(seed):
    W = np.random.default_rng(seed).normal(size=(7, 5))
    expected = _oracle(W)
    for backend in (W, torch.tensor(W)):
        d = weight_diversity(backend)
        got = (d["mean_abs_r"], d["max_abs_r"], d["redundant_share"], d["effective_n"])
        np.testing.assert_allclose(got, expected, rtol=1e-10)
        assert d["n_neurons"] == 7.0 and d["constant_neurons"] == 0.0


def test_weight_diversity_extremes():
    rng = np.random.default_rng(0)
    C = rng.normal(size=(4, 9))
    C -= C.mean(axis=1, keepdims=True)
    Q = np.linalg.qr(C.T)[0].T  # 4 centred, mutually orthogonal rows
    d = weight_diversity(Q)
    assert d["max_abs_r"] < 1e-12 and d["effective_n"] == pytest.approx(4.0)
    same = np.tile(rng.normal(size=(1, 9)), (5, 1)) * np.arange(1, 6)[:, None]
    d = weight_diversity(same)
    assert d["max_abs_r"] == pytest.approx(1.0) and d["redundant_share"] == 1.0
    assert d["effective_n"] == pytest.approx(1.0)


def test_weight_diversity_conv_kernel_is_flattened():
    g = torch.Generator().manual_seed(3)
    K = torch.randn(6, 2, 3, 3, generator=g)
    assert weight_diversity(K) == weight_diversity(K.reshape(6, 18))


def test_weight_diversity_one_input_and_one_neuron_have_documented_values():
    d = weight_diversity(np.ones((4, 1)) * np.arange(1, 5)[:, None])
    assert d["constant_neurons"] == 4.0 and d["mean_abs_r"] == 0.0 and d["effective_n"] == 0.0
    d = weight_diversity(np.array([[1.0, 2.0, 3.0]]))
    assert (d["mean_abs_r"], d["max_abs_r"], d["redundant_share"], d["effective_n"]) == (0.0, 0.0, 0.0, 1.0)


def test_weight_diversity_rejects_bad_input():
    with pytest.raises(ShapeError, match=r"expected a weight of shape \(n_out, n_in, \.\.\.\), got \(5,\)"):
        weight_diversity(np.ones(5))
    with pytest.raises(NonFiniteError, match=r"W holds \d+ non-finite value"):
        weight_diversity(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_activation_diversity_dead_neurons_left_out():
    rng = np.random.default_rng(1)
    H = rng.normal(size=(200, 4))
    H_dead = np.concatenate([H, np.zeros((200, 2))], axis=1)
    d, d_dead = activation_diversity(H), activation_diversity(H_dead)
    assert d_dead["dead_neurons"] == 2.0 and d_dead["n_neurons"] == 6.0
    for k in ("mean_abs_r", "max_abs_r", "redundant_share", "effective_n"):
        assert d_dead[k] == pytest.approx(d[k]) and np.isfinite(d_dead[k])
    np.testing.assert_allclose(d["mean_abs_r"], _oracle(H.T)[0], rtol=1e-10)


def test_activation_diversity_conv_is_averaged_over_positions():
    H = torch.randn(10, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert activation_diversity(H) == activation_diversity(H.mean(dim=(2, 3)))
    assert activation_diversity(H) == pytest.approx(activation_diversity(H.numpy()), rel=1e-6)


def test_activation_diversity_all_dead_or_one_neuron_is_never_nan():
    d = activation_diversity(np.zeros((5, 3)))
    assert d["dead_neurons"] == 3.0 and d["effective_n"] == 0.0 and d["mean_abs_r"] == 0.0
    d = activation_diversity(np.arange(10.0)[:, None])
    assert d["effective_n"] == 1.0 and d["max_abs_r"] == 0.0


def test_activation_diversity_rejects_bad_input():
    with pytest.raises(DataError, match="at least 2 samples, got 1"):
        activation_diversity(np.ones((1, 4)))
    with pytest.raises(NonFiniteError, match=r"H holds \d+ non-finite value"):
        activation_diversity(np.array([[1.0, np.nan], [0.0, 1.0], [2.0, 2.0]]))
    with pytest.raises(ShapeError, match=r"expected activations \(samples, neurons\)"):
        activation_diversity(np.ones(4))


def test_diversity_table_rows_columns_and_oracle():
    model = _mlp()
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(1))
    df = diversity(model, x)
    assert list(df["layer"]) == ["0", "2", "4"]
    assert list(df["n_neurons"]) == [8, 5, 3]
    assert not df.drop(columns=["layer", "type"]).isna().any().any()
    with torch.no_grad():
        H = model[0](x).numpy()
    np.testing.assert_allclose(df["act_mean_abs_r"].iloc[0], _oracle(H.T)[0], rtol=1e-6)
    np.testing.assert_allclose(df["weight_max_abs_r"].iloc[1], _oracle(model[2].weight.detach().numpy())[1],
                               rtol=1e-6)
    w_only = diversity(model)
    assert "act_mean_abs_r" not in w_only and "dead_neurons" not in w_only
    pd_tuple = diversity(model, (x, torch.zeros(50)), layers=["2"])
    assert list(pd_tuple["layer"]) == ["2"]


def test_diversity_relu_option_counts_dead_relus():
    lin = nn.Linear(3, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]))
        lin.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -100.0]))  # neuron 3: W x + b < 0 always
    model = nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    pre = diversity(model, x, layers="0")
    assert pre["dead_neurons"].item() == 0 and pre["act_max_abs_r"].item() == pytest.approx(1.0)
    post = diversity(model, x, layers="0", activation="relu")
    assert post["dead_neurons"].item() == 1 and post["act_max_abs_r"].item() < 1.0
    assert diversity(model, x, layers="0", activation=torch.relu).equals(post)


def test_diversity_conv_model():
    model = _seeded(nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)), 0)
    x = torch.randn(12, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    df = diversity(model, x)
    assert list(df["type"]) == ["Conv2d", "Linear"] and list(df["n_samples"]) == [12, 12]


def test_diversity_restores_modes_leaves_no_hooks_and_no_grad():
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.BatchNorm1d(6), nn.Linear(6, 2))
    model.train()
    model[2].eval()
    before = [m.training for m in model.modules()]
    running = model[2].running_mean.clone()
    diversity(model, torch.randn(16, 4, generator=torch.Generator().manual_seed(0)))
    assert [m.training for m in model.modules()] == before
    assert torch.equal(model[2].running_mean, running)
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_diversity_bad_input():
    model = _mlp()
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    with pytest.raises(DataError, match="at least 2 samples in the batch, got 1"):
        diversity(model, x[:1])
    with pytest.raises(LayerError, match=r"'fc9' \(no such tensor or module\); the weight layers are '0.weight', '2.weight', "
                                         r"'4.weight'"):
        diversity(model, x, layers=["0", "fc9"])
    with pytest.raises(LayerError, match=r"'1' \(no such tensor or module\)"):
        diversity(model, x, layers=["1"])  # a ReLU holds no weights
    with pytest.raises(NoLayersError, match=r"no weight layer matches the layer regex '\^1'"):
        diversity(model, x, layers="^1")
    with pytest.raises(NoLayersError, match="no Linear or Conv layer"):
        diversity(nn.Sequential(nn.ReLU()), x)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="activations of layer '0'"):
        diversity(model, bad)
    with pytest.raises(ValueError, match="activation must be None, a callable or one of relu"):
        diversity(model, x, activation="swish")
    with pytest.raises(TypeError, match="batch must be a torch.Tensor"):
        diversity(model, np.ones((4, 6)))


def test_diversity_layer_not_called_is_an_error():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.unused = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x)

    with pytest.raises(LayerError, match=r"layers \['unused'\] were not called"):
        diversity(Two(), torch.ones(4, 3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_diversity_on_cuda_matches_cpu():
    model = _mlp()
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(0))
    cpu = diversity(model, x)
    gpu = diversity(model.cuda(), x)
    assert next(model.parameters()).is_cuda
    num = cpu.columns.drop(["layer", "type"])
    np.testing.assert_allclose(gpu[num].to_numpy(float), cpu[num].to_numpy(float), rtol=1e-4, atol=1e-6)


def test_importing_the_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, netinit.diversity as d; assert 'torch' not in sys.modules; print(d.__all__[0])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "weight_diversity"


def test_weight_diversity_single_input_still_checks_finiteness():
    with pytest.raises(NonFiniteError, match=r"W holds \d+ non-finite value\(s\) \(NaN or inf\)"):
        weight_diversity(np.array([[1.0], [np.inf]]))
