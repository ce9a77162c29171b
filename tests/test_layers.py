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
    with pytest.raises(NonFiniteError, match=r"n\.safetensors: layer 'fc\.weight' holds 1 non-finite value"):
        layer.matrix()


def test_regex_selecting_integer_tensor(tmp_path):
    p = tmp_path / "q.safetensors"
    save_file({"q.weight": torch.ones(3, 3, dtype=torch.int8), "fc.weight": torch.ones(2, 3)}, str(p))
    with pytest.raises(NoLayersError, match=r"matches only tensors that are not weight layers .*'q\.weight': unsupported dtype int8"):
        find_layers(load_checkpoint(p), layers=r"^q\.")


# ------------------------------------------------------------------ torch modules and checkpoints alike
class _Zoo(torch.nn.Module):
    """Every kind of weight layer, with names a checkpoint reader classifies as the module does."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.fc = torch.nn.Linear(12, 9)
        self.conv1 = torch.nn.Conv1d(4, 6, 3)
        self.conv2 = torch.nn.Conv2d(4, 6, (3, 2))
        self.conv3 = torch.nn.Conv3d(2, 4, 2)
        self.grouped = torch.nn.Conv2d(6, 9, 3, groups=3)
        self.dw = torch.nn.Conv2d(6, 6, 3, groups=6)
        self.deconv = torch.nn.ConvTranspose2d(6, 4, 3)
        self.deconv1d = torch.nn.ConvTranspose1d(3, 5, 2)
        self.attn = torch.nn.MultiheadAttention(8, 2)
        self.cross = torch.nn.MultiheadAttention(8, 2, kdim=5, vdim=3)  # q/k/v_proj_weight
        self.bn = torch.nn.BatchNorm1d(9)
        self.head = torch.nn.Linear(9, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_module_and_its_saved_state_dict_have_the_same_layers(tmp_path, fmt):
    model = _Zoo()
    path = tmp_path / f"zoo.{fmt}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path)) if fmt == "safetensors" else torch.save(state, path)
    from_module, skipped_module = find_layers(model)
    from_file, skipped_file = find_layers(load_checkpoint(path))
    assert sorted(a.name for a in from_module) == sorted(b.name for b in from_file)
    assert len(from_module) == 15
    by_name = {b.name: b for b in from_file}
    for a in from_module:
        b = by_name[a.name]
        assert (a.shape, a.matrix_shape, a.block, a.role) == (b.shape, b.matrix_shape, b.block, b.role), a.name
        np.testing.assert_array_equal(a.matrix(), b.matrix(), err_msg=a.name)
    assert {s.name for s in skipped_module} == {s.name for s in skipped_file}
    if fmt == "pt":  # a state dict keeps the module's order
        assert [a.name for a in from_module] == [b.name for b in from_file]


def test_grouped_transposed_convolution_is_known_only_to_the_module(tmp_path):
    """A file does not record ``groups``: its grouped transposed convolution is read with one group."""
    model = torch.nn.Sequential(torch.nn.ConvTranspose2d(6, 8, 2, groups=2))
    (mod,), _ = find_layers(model)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "up.safetensors"))
    (fil,), _ = find_layers(load_checkpoint(tmp_path / "up.safetensors"), transposed=r"^0\.")
    assert (mod.groups, mod.matrix_shape) == (2, (8, 12)) and (fil.groups, fil.matrix_shape) == (1, (4, 24))
    w = model[0].weight.detach()
    for o in range(8):  # the module's row o: the weights from the inputs of o's group to o
        g, oo = divmod(o, 4)
        np.testing.assert_array_equal(mod.matrix()[o], w[3 * g:3 * g + 3, oo].reshape(-1).numpy())


def test_module_layer_write_back_round_trips_every_layout():
    model = _Zoo()
    for layer in find_layers(model)[0]:
        before = layer.param.detach().clone()
        M = layer.canonical(layer.param.detach()).clone()
        layer.write_(M.flip(0))
        assert not torch.equal(layer.param, before) or M.shape[0] == 1
        layer.write_(M)
        assert torch.equal(layer.param.detach(), before), layer.name


def test_transformers_conv1d_is_read_in_out():
    class Conv1D(torch.nn.Module):  # the layout of transformers.pytorch_utils.Conv1D
        def __init__(self, nf: int, nx: int) -> None:
            super().__init__()
            self.nf, self.nx = nf, nx
            self.weight = torch.nn.Parameter(torch.arange(nx * nf, dtype=torch.float32).reshape(nx, nf))
            self.bias = torch.nn.Parameter(torch.zeros(nf))

    block = torch.nn.Module()
    block.c_attn = Conv1D(6, 4)
    (layer,), _ = find_layers(block)
    assert (layer.layout, layer.kind, layer.role, layer.matrix_shape) == ("in_out", "attention", "attn_qkv", (6, 4))
    np.testing.assert_array_equal(layer.matrix(), block.c_attn.weight.detach().numpy().T)


def test_one_meaning_of_layers_for_modules_and_files(tmp_path):
    model = _Zoo()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "z.safetensors"))
    ckpt = load_checkpoint(tmp_path / "z.safetensors")
    for sel in (r"^conv\d", ["fc", "head.weight"], ["attn"]):
        names_module = [layer.name for layer in find_layers(model, layers=sel)[0]]
        assert sorted(names_module) == sorted(layer.name for layer in find_layers(ckpt, layers=sel)[0])
    assert [layer.name for layer in find_layers(model, layers=["fc", "head.weight"])[0]] == ["fc.weight", "head.weight"]
    assert [layer.name for layer in find_layers(model, layers=["attn"])[0]] == ["attn.in_proj_weight"]
    with pytest.raises(LayerError, match=r"not weight layers: 'bn' \(norm\), 'nope' \(no such tensor or module\)"):
        find_layers(model, layers=["fc", "bn", "nope"])
    with pytest.raises(TypeError, match="find_layers takes a Checkpoint"):
        find_layers({"fc.weight": np.ones((2, 2))})


def test_lazy_module_is_refused():
    with pytest.raises(LayerError, match="lazy module whose weight is not initialised yet"):
        find_layers(torch.nn.Sequential(torch.nn.LazyLinear(3)))


def test_tied_weights_are_one_layer():
    emb = torch.nn.Embedding(10, 4)
    model = torch.nn.Module()
    model.emb, model.lm_head = emb, torch.nn.Linear(4, 10, bias=False)
    model.lm_head.weight = emb.weight
    found, skipped = find_layers(model, embeddings=True)
    assert [layer.name for layer in found] == ["emb.weight"]
    assert [s.reason for s in skipped] == ["the same parameter as 'emb.weight' (tied weights)"]


def test_safetensors_layers_come_in_model_order(tmp_path):
    names = ["lm_head.weight", "model.embed_tokens.weight"] + [
        f"model.layers.{b}.{part}.weight" for b in (0, 2, 10) for part in
        ("mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.k_proj", "self_attn.o_proj", "self_attn.q_proj",
         "self_attn.v_proj")]
    save_file({n: torch.ones(4, 4) for n in names}, str(tmp_path / "m.safetensors"))
    found, _ = find_layers(load_checkpoint(tmp_path / "m.safetensors"), embeddings=True)
    got = [(layer.block, layer.role) for layer in found]
    roles = ["attn_q", "attn_k", "attn_v", "attn_o", "mlp_gate", "mlp_up", "mlp_down"]
    assert got == [(None, "embedding")] + [(b, r) for b in (0, 2, 10) for r in roles] + [(None, "head")]


def test_gguf_layers_blocks_roles_and_stacked_experts(tmp_path):
    import gguf

    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((16, 32)).astype(np.float32))
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((32, 32)).astype(np.float32))
    q8 = gguf.quants.quantize(rng.standard_normal((48, 32)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_up.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    stack = rng.standard_normal((3, 48, 32)).astype(np.float32)  # (experts, out, in) as GGUF lists ne reversed
    w.add_tensor("blk.0.ffn_gate_exps.weight", stack)
    w.add_tensor("output.weight", rng.standard_normal((16, 32)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    found, skipped = find_layers(load_checkpoint(path))
    got = [(la.name, la.block, la.role, la.expert) for la in found]
    assert got == [("blk.0.attn_q.weight", 0, "attn_q", None), ("blk.0.ffn_up.weight", 0, "mlp_up", None)] + [
        (f"blk.0.ffn_gate_exps.{e}.weight", 0, "mlp_gate", e) for e in range(3)] + [("output.weight", None, "head", None)]
    assert [s.reason for s in skipped] == ["embedding (not asked for)"]
    assert found[1].quant.scheme == "GGUF Q8_0" and found[0].quant is None
    for e in range(3):
        np.testing.assert_array_equal(found[2 + e].matrix(), stack[e])


def test_coverage_counts_layers_tensors_parameters_and_reasons(tmp_path):
    save_file({"fc1.weight": torch.ones(4, 3), "fc1.bias": torch.ones(4), "fc2.weight": torch.ones(2, 4),
               "fc2.bias": torch.ones(2), "bn.running_mean": torch.ones(4)}, str(tmp_path / "c.safetensors"))
    from netinit.layers import coverage

    c = coverage(*find_layers(load_checkpoint(tmp_path / "c.safetensors")))
    assert (c.layers, c.tensors, c.tensors_total, c.parameters, c.parameters_total) == (2, 2, 5, 20, 30)
    assert c.text() == ("analysed 2 layers in 2 of 5 tensors (66.7% of the parameters); skipped: 2 bias, "
                        "1 buffer (running statistics, masks, ids)")
    assert c.as_dict()["parameter_share"] == pytest.approx(2 / 3)
