"""CUDA paths: the Triton kernel and the torch kernel against the numpy oracle (need a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netinit.rewire import pa_pass, pa_rewire_, rewire_model_
from netinit.rewire.kernels import pa_pass_torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

SHAPES = [(1, 5), (2, 2), (7, 1), (33, 17), (64, 100), (130, 257), (600, 1024), (40, 4096)]


def _triton():
    return pytest.importorskip("netinit.rewire._triton", reason="needs triton")


def _pair(shape, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    M = torch.randn(shape, device="cuda", generator=g).to(dtype)
    E = torch.empty(shape, dtype=torch.float64, device="cuda").exponential_(generator=g)
    return M, E


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES)
def test_triton_kernel_equals_numpy(shape, dtype):
    M, E = _pair(shape, dtype)
    out = _triton().pa_pass_triton(M, E)
    assert out.dtype == dtype and out.device == M.device
    expected = pa_pass(M.cpu().double().numpy(), E.cpu().numpy())
    np.testing.assert_array_equal(out.cpu().double().numpy(), expected)


@pytest.mark.parametrize("mode, ctas", [("loop", None), ("loop", 3), ("graph", 8), ("graph", 1), ("single", None)])
@pytest.mark.parametrize("shape", [(70, 50), (300, 40), (200, 3000)])
def test_triton_launch_modes_and_grids(shape, mode, ctas):
    M, E = _pair(shape, torch.float32, seed=3)
    out = _triton().pa_pass_triton(M, E, mode=mode, ctas=ctas)
    np.testing.assert_array_equal(out.cpu().numpy(), pa_pass(M.cpu().numpy(), E.cpu().numpy()))


@pytest.mark.parametrize("shape", [(2, 2), (33, 17), (64, 300)])
def test_torch_kernel_on_cuda_equals_numpy(shape):
    M, E = _pair(shape, torch.float32, seed=1)
    out = pa_pass_torch(M, E)
    np.testing.assert_array_equal(out.cpu().numpy(), pa_pass(M.cpu().numpy(), E.cpu().numpy()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_pa_rewire_cuda_in_place(dtype):
    w = torch.nn.Linear(300, 200).to("cuda", dtype).weight
    before = w.detach().clone()
    out = pa_rewire_(w, generator=torch.Generator(device="cuda").manual_seed(0))
    assert out is w and w.dtype == dtype and w.requires_grad and w.is_cuda
    assert torch.equal(w.detach().flatten().sort().values, before.flatten().sort().values)
    again = before.clone()
    pa_rewire_(again, generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(again, w.detach())
    other = before.clone()
    pa_rewire_(other, generator=torch.Generator(device="cuda").manual_seed(1))
    assert not torch.equal(other, w.detach())


def test_pa_rewire_cuda_is_the_kernel_twice():
    w = torch.randn(50, 8, 3, 3, device="cuda", generator=torch.Generator(device="cuda").manual_seed(2))
    W = w.clone().reshape(50, 72)
    pa_rewire_(w, generator=torch.Generator(device="cuda").manual_seed(7))
    g = torch.Generator(device="cuda").manual_seed(7)
    E_rows = torch.empty(50, 72, dtype=torch.float64, device="cuda").exponential_(generator=g)
    E_cols = torch.empty(72, 50, dtype=torch.float64, device="cuda").exponential_(generator=g)
    expected = pa_pass(pa_pass(W.cpu().numpy(), E_rows.cpu().numpy()).T, E_cols.cpu().numpy()).T
    np.testing.assert_array_equal(w.reshape(50, 72).cpu().numpy(), expected)


def test_rewire_model_on_cuda():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 10)
    ).cuda()
    before = [p.detach().clone() for p in net.parameters()]
    table = rewire_model_(net, seed=0)
    assert list(table["layer"]) == ["0.weight", "3.weight"]
    assert (table["ratio_in"] < 1).all()
    for old, new in zip(before, net.parameters()):
        assert torch.equal(old.flatten().sort().values, new.detach().flatten().sort().values)
