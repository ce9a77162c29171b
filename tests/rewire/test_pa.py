"""pa_rewire (numpy) and pa_rewire_ (torch): invariants, streams, dtypes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netinit.errors import DtypeError, NetinitError, NonFiniteError, ShapeError
from netinit.rewire import pa_pass, pa_rewire, pa_rewire_, strength_variances


def _kaiming(shape, seed=0, dtype=np.float32):
    fan_in = int(np.prod(shape[1:]))
    return (np.random.default_rng(seed).standard_normal(shape) * np.sqrt(2 / fan_in)).astype(dtype)


@pytest.mark.parametrize("shape", [(64, 64), (40, 90), (16, 8, 3, 3), (4, 3, 2, 2, 2)])
def test_multiset_kept_exactly(shape, seed):
    W = _kaiming(shape, seed)
    V = pa_rewire(W, rng=seed)
    assert V.shape == W.shape and V.dtype == W.dtype and V is not W
    np.testing.assert_array_equal(np.sort(V, axis=None), np.sort(W, axis=None))


def test_rows_pass_keeps_rows_and_cols_pass_keeps_columns(seed):
    W = _kaiming((30, 50), seed)
    R = pa_rewire(W, rng=seed, passes="rows")
    np.testing.assert_array_equal(np.sort(R, axis=1), np.sort(W, axis=1))
    B = pa_rewire(W, rng=seed, passes="both")
    np.testing.assert_array_equal(np.sort(B, axis=0), np.sort(R, axis=0))
    C = pa_rewire(W, rng=seed, passes="cols")
    np.testing.assert_array_equal(np.sort(C, axis=0), np.sort(W, axis=0))


def test_both_is_rows_then_cols_with_the_same_seed(seed):
    W = _kaiming((30, 50), seed)
    two_steps = pa_rewire(pa_rewire(W, rng=seed, passes="rows"), rng=seed, passes="cols")
    np.testing.assert_array_equal(pa_rewire(W, rng=seed), two_steps)


def test_conv_kernel_is_rewired_as_its_matrix(seed):
    W = _kaiming((8, 4, 3, 3), seed)
    np.testing.assert_array_equal(pa_rewire(W, rng=seed), pa_rewire(W.reshape(8, 36), rng=seed).reshape(W.shape))


def test_deterministic_and_seed_dependent():
    W = _kaiming((32, 48))
    np.testing.assert_array_equal(pa_rewire(W, rng=7), pa_rewire(W, rng=7))
    np.testing.assert_array_equal(pa_rewire(W, rng=0), pa_rewire(W, rng=np.random.default_rng(0)))
    assert not np.array_equal(pa_rewire(W, rng=7), pa_rewire(W, rng=8))
    assert not np.array_equal(pa_rewire(W, rng=0), pa_rewire(W, rng=1))  # 0 is a seed
    assert not np.array_equal(pa_rewire(W, rng=0), W)


def test_passes_use_independent_streams():
    """The column pass does not re-use the row pass's draws (square matrix, same shape)."""
    W = _kaiming((20, 20))
    g_rows, g_cols = np.random.default_rng(5).spawn(2)
    assert not np.array_equal(g_rows.standard_exponential(5), g_cols.standard_exponential(5))
    R = pa_rewire(W, rng=5, passes="rows")
    C = pa_rewire(W.T.copy(), rng=5, passes="cols").T
    assert not np.array_equal(R, C)


def test_strength_variance_falls(seed):
    W = _kaiming((128, 256), seed)
    v_in, v_out = strength_variances(W)
    w_in, w_out = strength_variances(pa_rewire(W, rng=seed))
    assert w_in < 0.3 * v_in and w_out < 0.3 * v_out


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes(dtype, seed):
    W = _kaiming((24, 40), seed, dtype)
    V = pa_rewire(W, rng=seed)
    assert V.dtype == dtype
    np.testing.assert_array_equal(np.sort(V, axis=None), np.sort(W, axis=None))
    # float16 is rewired through an exact float32 copy: same placement as the float32 values
    np.testing.assert_array_equal(V.astype(np.float64), pa_rewire(W.astype(np.float64), rng=seed))


def test_non_contiguous_input_and_input_untouched():
    W = _kaiming((40, 30)).T  # Fortran-ordered view
    before = W.copy()
    V = pa_rewire(W, rng=3)
    np.testing.assert_array_equal(W, before)
    np.testing.assert_array_equal(V, pa_rewire(np.ascontiguousarray(W), rng=3))


def test_all_equal_layer_is_a_documented_no_op():
    W = np.full((5, 7), 0.25, dtype=np.float32)
    V = pa_rewire(W, rng=0)
    assert V is not W
    np.testing.assert_array_equal(V, W)


def test_single_row_or_column_is_unchanged():
    W = _kaiming((1, 9))
    np.testing.assert_array_equal(pa_rewire(W, rng=0), W)
    np.testing.assert_array_equal(pa_rewire(W.T.copy(), rng=0), W.T)


@pytest.mark.parametrize(
    "W, error, match",
    [
        (np.ones(5), ShapeError, r"at least 2 dimensions .* got shape \(5,\)"),
        (np.float64(1.0), ShapeError, r"got shape \(\)"),
        (np.ones((0, 4)), ShapeError, r"W is empty \(shape \(0, 4\)\)"),
        (np.ones((3, 0, 2)), ShapeError, r"W is empty"),
        (np.array([[1.0, np.nan], [0.0, 2.0]]), NonFiniteError, r"1 non-finite value.* index \(0, 1\): nan"),
        (np.array([[1.0, 2.0], [-np.inf, 0.0]]), NonFiniteError, r"index \(1, 0\): -inf"),
        (np.ones((2, 2), dtype=np.int32), DtypeError, "floating-point weights .* got dtype int32"),
        (np.ones((2, 2), dtype=bool), DtypeError, "got dtype bool"),
        (np.ones((2, 2), dtype=np.complex64), DtypeError, "got dtype complex64"),
    ],
)
def test_bad_input(W, error, match):
    with pytest.raises(error, match=match) as info:
        pa_rewire(W, rng=0)
    assert isinstance(info.value, NetinitError)


@pytest.mark.parametrize("passes", ["all", "row", None, 2])
def test_bad_passes_names_the_options(passes):
    with pytest.raises(ValueError, match=r"passes must be one of 'both', 'rows', 'cols'; got"):
        pa_rewire(np.eye(3), rng=0, passes=passes)


def test_bad_rng():
    with pytest.raises(ValueError, match="non-negative integer, got -1"):
        pa_rewire(np.eye(3), rng=-1)


# --- torch, in place ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_in_place_keeps_tensor_dtype_and_grad(dtype):
    w = torch.nn.Linear(40, 24).weight.to(dtype).detach().requires_grad_(True)
    before = w.detach().clone()
    version = w._version
    g = torch.Generator().manual_seed(0)
    assert pa_rewire_(w, generator=g) is w
    assert w.dtype == dtype and w.requires_grad and w.grad_fn is None
    assert w._version > version
    assert not torch.equal(w.detach(), before)
    torch.testing.assert_close(w.detach().flatten().sort().values, before.flatten().sort().values, rtol=0, atol=0)


def test_torch_matches_numpy_engine_given_the_derived_stream():
    """On the CPU the generator seeds a numpy stream; the rest is pa_rewire's."""
    w = torch.randn(30, 20, generator=torch.Generator().manual_seed(1))
    W = w.numpy().copy()
    g = torch.Generator().manual_seed(9)
    entropy = torch.randint(0, 2**62, (4,), generator=torch.Generator().manual_seed(9), dtype=torch.int64).tolist()
    pa_rewire_(w, generator=g)
    expected = pa_rewire(W, rng=np.random.default_rng(np.random.SeedSequence(entropy)))
    np.testing.assert_array_equal(w.numpy(), expected)


def test_torch_generator_determinism_and_conv():
    w1 = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    w2, w3 = w1.clone(), w1.clone()
    pa_rewire_(w1, generator=torch.Generator().manual_seed(0))
    pa_rewire_(w2, generator=torch.Generator().manual_seed(0))
    pa_rewire_(w3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(w1, w2) and not torch.equal(w1, w3)


def test_torch_non_contiguous_tensor():
    base = torch.randn(20, 30, generator=torch.Generator().manual_seed(1))
    w = base.t()  # a non-contiguous view is rewired in place
    before = w.clone()
    pa_rewire_(w, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(base.t(), before)  # written through the view into base
    torch.testing.assert_close(w.flatten().sort().values, before.flatten().sort().values, rtol=0, atol=0)


@pytest.mark.parametrize(
    "t, error, match",
    [
        (torch.ones(4), ShapeError, r"tensor must have at least 2 dimensions"),
        (torch.ones(0, 3), ShapeError, "tensor is empty"),
        (torch.ones(2, 2, dtype=torch.int64), DtypeError, "got int64"),
        (torch.ones(2, 2, dtype=torch.complex64), DtypeError, "got complex64"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), NonFiniteError, r"index \(0, 1\): nan"),
    ],
)
def test_torch_bad_input(t, error, match):
    with pytest.raises(error, match=match):
        pa_rewire_(t)


def test_torch_bad_passes_and_type():
    with pytest.raises(ValueError, match="passes must be one of"):
        pa_rewire_(torch.eye(3), passes="columns")
    with pytest.raises(TypeError, match="must be a torch.Tensor; got ndarray"):
        pa_rewire_(np.eye(3))


def test_torch_all_equal_is_a_no_op():
    w = torch.full((4, 6), 0.5)
    assert torch.equal(pa_rewire_(w, generator=torch.Generator().manual_seed(0)), torch.full((4, 6), 0.5))


# --- the device path's orchestration, run on the CPU with the torch kernel ------------------


def test_device_path_orchestration_matches_the_kernels(monkeypatch):
    """_device_inplace (draws, passes, transposes) checked on CPU tensors with the torch kernel."""
    import netinit.rewire.pa as pa
    from netinit.rewire.kernels import pa_pass_torch

    monkeypatch.setattr(pa, "_device_kernel", lambda n_cols: pa_pass_torch)
    w = torch.randn(12, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    W = w.clone().reshape(12, 12)
    pa._device_inplace(w, torch.Generator().manual_seed(5), "both", 12, 12)
    g = torch.Generator().manual_seed(5)
    E_rows = torch.empty(12, 12, dtype=torch.float64).exponential_(generator=g)
    E_cols = torch.empty(12, 12, dtype=torch.float64).exponential_(generator=g)
    expected = pa_pass(pa_pass(W.numpy(), E_rows.numpy()).T, E_cols.numpy()).T
    np.testing.assert_array_equal(w.reshape(12, 12).numpy(), expected)


def test_device_kernel_falls_back_without_triton(monkeypatch):
    import sys

    import netinit.rewire.pa as pa
    from netinit.rewire.kernels import pa_pass_torch

    monkeypatch.setitem(sys.modules, "netinit.rewire._triton", None)  # import raises ImportError
    assert pa._device_kernel(64) is pa_pass_torch


# --- stacks: several same-shaped CPU tensors rewired together --------------------------------


def _gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_stack_gives_each_tensor_its_pa_rewire_result(dtype):
    from netinit.rewire.pa import rewire_stack_

    base = [torch.randn(24, 3, 3, 3, generator=g).to(dtype) for g in _gens(range(4))]
    base[2] = torch.full((24, 3, 3, 3), 0.25, dtype=dtype)  # all equal: left alone, like pa_rewire_
    alone = [t.clone() for t in base]
    for t, g in zip(alone, _gens(range(10, 14))):
        pa_rewire_(t, generator=g)
    stacked = [t.clone() for t in base]
    rewire_stack_(stacked, _gens(range(10, 14)))
    for a, b in zip(alone, stacked):
        assert a.dtype == b.dtype == dtype
        assert torch.equal(a, b)
    assert not torch.equal(stacked[0], base[0]) and torch.equal(stacked[2], base[2])


def test_stack_validates_every_tensor_before_changing_any():
    from netinit.rewire.pa import rewire_stack_

    good = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    bad = good.clone()
    bad[3, 4] = float("inf")
    kept = good.clone()
    with pytest.raises(NonFiniteError, match=r"tensors\[1\] holds 1 non-finite value"):
        rewire_stack_([good, bad], _gens([0, 1]))
    assert torch.equal(good, kept)
    with pytest.raises(ValueError, match=r"share one \(n_rows, n_cols\) shape"):
        rewire_stack_([good, torch.randn(6, 5)], _gens([0, 1]))
    with pytest.raises(ValueError, match="2 tensors but 1 generators"):
        rewire_stack_([good, good.clone()], _gens([0]))
    with pytest.raises(ValueError, match="passes must be one of"):
        rewire_stack_([good], _gens([0]), passes="all")
    assert torch.equal(good, kept)
