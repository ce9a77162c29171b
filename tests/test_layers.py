from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from netinit.errors import LayerError, NoLayersError, NonFiniteError, ShapeError
from netinit.formats import TensorInfo, load_checkpoint
from netinit.layers import Layer, classify, find_layers


@pytest.mark.parametrize(
    "name, shape, dtype, kind, reason",
    [
        ("fc.weight", (4, 3), "float32", "linear", ""),
        ("encoder.layer.0.attention.self.query.weight", (8, 8), "float16", "attention", ""),
        ("blocks.0.attn.c_attn.weight", (8, 24), "bfloat16", "attention", ""),
        ("layers.0.self_attn.q_proj.weight", (8, 8), "float32", "attention", ""),
        ("conv.weight", (8, 3, 5), "float32", "conv1d", ""),
        ("conv.weight", (8, 3, 3, 3), "float32", "conv2d", ""),
        ("dw.weight", (8, 1, 3, 3), "float32", "conv2d_depthwise", ""),
        ("stem.weight", (8, 1, 3, 3), "float32", "conv2d", ""),
        ("c3.weight", (8, 3, 3, 3, 3), "float64", "conv3d", ""),
        ("up.deconv.weight", (8, 3, 3, 3), "float32", "conv_transpose2d", ""),
        ("wte.weight", (100, 8), "float32", None, "embedding (not asked for)"),
        ("emb.weight", (100, 8), "float32", None, "embedding (not asked for)"),
        ("gpt.tok_emb.weight", (100, 8), "float32", None, "embedding (not asked for)"),
        ("time_emb_proj.weight", (16, 8), "float32", "linear", ""),  # a Linear beside an embedding
        ("emb_layers.1.weight", (16, 8), "float32", "linear", ""),
        ("fc.bias", (4,), "float32", None, "bias"),
        ("bn.weight", (4,), "float32", None, "norm"),
        ("bn.running_var", (4,), "float32", None, "buffer (running statistics, masks, ids)"),
        ("scale", (), "float32", None, "scalar"),
        ("q.weight", (4, 3), "int8", None, "unsupported dtype int8 (integer or quantised)"),
        ("x", (2, 2, 2, 2, 2, 2), "float32", None, "6-D tensor (more dimensions than a convolution)"),
    ],
)
def test_classify(name, shape, dtype, kind, reason):
    assert classify(TensorInfo(name, shape, dtype)) == (kind, reason)


def test_embeddings_on_request():
    assert classify(TensorInfo("wte.weight", (100, 8), "float32"), embeddings=True) == ("embedding", "")


def _layer(shape, kind):
    return Layer("w", kind, shape, "float32")


@pytest.mark.parametrize("shape, kind, mshape", [
    ((5, 4), "linear", (5, 4)), ((6, 2, 3), "conv1d", (6, 6)), ((6, 2, 3, 3), "conv2d", (6, 18)),
    ((6, 2, 3, 3), "conv_transpose2d", (2, 54)), ((4, 3, 2, 2, 2), "conv_transpose3d", (3, 32)),
])
def test_matrix_round_trip(shape, kind, mshape, rng):
    layer = _layer(shape, kind)
    t = rng.normal(size=shape)
    m = layer.matrix(t)
    assert m.shape == mshape == layer.matrix_shape
    np.testing.assert_array_equal(layer.from_matrix(m), t)
    with pytest.raises(ShapeError, match=r"matrix of shape \(1, 1\), expected"):
        layer.from_matrix(np.zeros((1, 1)))


def test_conv_matrix_orientation_matches_torch():
    """Each canonical row is an output channel: conv output = row . input patch."""
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, bias=False)
    torch.nn.init.normal_(conv.weight, generator=g)
    x = torch.randn(1, 3, 3, 3, generator=g)
    layer = _layer(tuple(conv.weight.shape), "conv2d")
    W = layer.matrix(conv.weight.detach().numpy())
    np.testing.assert_allclose(W @ x.reshape(-1).numpy(), conv(x).reshape(-1).detach().numpy(), rtol=1e-5)


def test_conv_transpose_orientation_matches_torch():
    """Canonical row o of a transposed conv sums to output channel o's response to all-ones input."""
    g = torch.Generator().manual_seed(1)
    conv = torch.nn.ConvTranspose2d(4, 3, 3, bias=False)
    torch.nn.init.normal_(conv.weight, generator=g)
    layer = _layer(tuple(conv.weight.shape), "conv_transpose2d")
    W = layer.matrix(conv.weight.detach().numpy())
    y = conv(torch.ones(1, 4, 5, 5)).detach()[0, :, 3, 3].numpy()  # an interior position sees every tap
    np.testing.assert_allclose(W.sum(axis=1), y, rtol=1e-5)


def test_linear_orientation_matches_torch():
    lin = torch.nn.Linear(4, 3)
    layer = _layer(tuple(lin.weight.shape), "linear")
    x = torch.arange(4.0)
    W = layer.matrix(lin.weight.detach().numpy())
    np.testing.assert_allclose(W @ x.numpy() + lin.bias.detach().numpy(), lin(x).detach().numpy(), rtol=1e-6)


@pytest.fixture
def ckpt(tmp_path, state_dict):
    p = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(p))
    return load_checkpoint(p)


def test_find_layers_covers_every_tensor(ckpt):
    layers, skipped = find_layers(ckpt)
    assert [layer.name for layer in layers] == ["conv.weight", "fc1.weight", "fc2.weight"]
    assert {s.name for s in skipped} | {layer.name for layer in layers} == set(ckpt.names())
    assert len(skipped) + len(layers) == len(ckpt.names())
    np.testing.assert_array_equal(layers[0].matrix(), ckpt.load("conv.weight").reshape(8, 27))


def test_layer_regex(ckpt):
    layers, skipped = find_layers(ckpt, layers=r"^fc")
    assert [layer.name for layer in layers] == ["fc1.weight", "fc2.weight"]
    assert ("conv.weight", "excluded by the layer regex '^fc'") in {(s.name, s.reason) for s in skipped}
    with pytest.raises(NoLayersError, match="no weight layer matches the layer regex 'nothing'"):
        find_layers(ckpt, layers="nothing")
    with pytest.raises(ShapeError, match=r"selects only tensors of fewer than 2 dimensions .*'bn\.weight'"):
        find_layers(ckpt, layers=r"^bn\.weight$")
    with pytest.raises(LayerError, match="invalid layer regex"):
        find_layers(ckpt, layers="(")


def test_no_layers_and_empty(tmp_path):
    p = tmp_path / "b.safetensors"
    save_file({"a.bias": torch.zeros(3), "n": torch.tensor(1.0)}, str(p))
    with pytest.raises(NoLayersError, match=r"no weight layers among 2 tensors \(skipped: bias; scalar"):
        find_layers(load_checkpoint(p))
    e = tmp_path / "e.safetensors"
    save_file({}, str(e))
    with pytest.raises(NoLayersError, match="holds no tensors"):
        find_layers(load_checkpoint(e))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights(tmp_path, bad):
    w = torch.ones(3, 3)
    w[1, 2] = bad
    p = tmp_path / "n.safetensors"
    save_file({"fc.weight": w}, str(p))
    (layer,), _ = find_layers(load_checkpoint(p))
    with pytest.raises(NonFiniteError, match=r"n\.safetensors: layer 'fc\.weight' holds 1 NaN or infinite"):
        layer.matrix()


def test_regex_selecting_integer_tensor(tmp_path):
    p = tmp_path / "q.safetensors"
    save_file({"q.weight": torch.ones(3, 3, dtype=torch.int8), "fc.weight": torch.ones(2, 3)}, str(p))
    with pytest.raises(NoLayersError, match=r"matches only tensors that are not weight layers .*'q\.weight': unsupported dtype int8"):
        find_layers(load_checkpoint(p), layers=r"^q\.")
