"""netinit.quant: FP8 and MXFP4 weights dequantised for analysis, scales never layers, unsupported schemes named
(GPTQ/AWQ: test_quant_gptq_awq.py; bitsandbytes: test_quant_bnb.py; compressed-tensors: test_quant_compressed.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import netinit
from netinit.errors import DtypeError, ShapeError
from netinit.formats import load_checkpoint
from netinit.quant import fp8_to_float32


def _e4m3fn_oracle(code: int) -> float:
    """float8_e4m3fn from its definition: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities,
    S.1111.111 is NaN."""
    sign = -1.0 if code & 0x80 else 1.0
    exp, man = (code >> 3) & 0xF, code & 0x7
    if exp == 0xF and man == 0x7:
        return float("nan")
    if exp == 0:
        return sign * (man / 8) * 2.0 ** -6
    return sign * (1 + man / 8) * 2.0 ** (exp - 7)


def _e5m2_oracle(code: int) -> float:
    """float8_e5m2: 1 sign, 5 exponent (bias 15), 2 mantissa bits, IEEE infinities and NaNs."""
    sign = -1.0 if code & 0x80 else 1.0
    exp, man = (code >> 2) & 0x1F, code & 0x3
    if exp == 0x1F:
        return sign * float("inf") if man == 0 else float("nan")
    if exp == 0:
        return sign * (man / 4) * 2.0 ** -14
    return sign * (1 + man / 4) * 2.0 ** (exp - 15)


@pytest.mark.parametrize("dtype, oracle", [("float8_e4m3fn", _e4m3fn_oracle), ("float8_e5m2", _e5m2_oracle)])
def test_fp8_decoding_matches_the_format_definition(dtype, oracle):
    got = fp8_to_float32(np.arange(256, dtype=np.uint8), dtype)
    want = np.array([oracle(c) for c in range(256)], dtype=np.float32)
    np.testing.assert_array_equal(got, want)


def _block_fp8(W: torch.Tensor, b: int = 128):
    """DeepSeek-V3 / transformers fine-grained FP8: q = W / s per (b x b) block, s = amax / 448."""
    out, inn = W.shape
    so, si = -(-out // b), -(-inn // b)
    s = torch.empty(so, si)
    q = torch.empty(out, inn, dtype=torch.float8_e4m3fn)
    for i in range(so):
        for j in range(si):
            blk = W[i * b:(i + 1) * b, j * b:(j + 1) * b]
            s[i, j] = blk.abs().max() / 448
            q[i * b:(i + 1) * b, j * b:(j + 1) * b] = (blk / s[i, j]).to(torch.float8_e4m3fn)
    return q, s


@pytest.fixture
def fp8_file(tmp_path):
    gen = torch.Generator().manual_seed(3)
    W1, W2, W3 = (torch.randn(s, generator=gen) for s in ((200, 300), (40, 200), (10, 40)))
    q1, s1 = _block_fp8(W1)
    q2 = (W2 / W2.abs().amax(1, keepdim=True) * 448).to(torch.float8_e4m3fn)
    s2 = (W2.abs().amax(1, keepdim=True) / 448)
    s3 = W3.abs().max() / 57344
    q3 = (W3 / s3).to(torch.float8_e5m2)
    tensors = {"l.0.fc1.weight": q1, "l.0.fc1.weight_scale_inv": s1, "l.0.fc2.weight": q2,
               "l.0.fc2.weight_scale": s2, "l.0.fc3.weight": q3, "l.0.fc3.weight_scale": s3.reshape(()),
               "l.0.fc3.input_scale": torch.tensor(1.0)}
    save_file(tensors, str(tmp_path / "fp8.safetensors"))
    oracle = {"l.0.fc1.weight": q1.float() * s1.repeat_interleave(128, 0).repeat_interleave(128, 1)[:200, :300],
              "l.0.fc2.weight": q2.float() * s2, "l.0.fc3.weight": q3.float() * s3}
    return tmp_path / "fp8.safetensors", oracle


def test_fp8_layers_are_dequantised_and_scales_are_not_layers(fp8_file):
    path, oracle = fp8_file
    found, skipped = netinit.find_layers(load_checkpoint(path))
    assert [layer.name for layer in found] == list(oracle)
    for layer in found:
        np.testing.assert_allclose(layer.matrix(), oracle[layer.name].numpy(), rtol=1e-6, atol=0)
    assert [layer.quant.scheme for layer in found] == ["float8_e4m3fn block 128x128", "float8_e4m3fn per channel",
                                                        "float8_e5m2 per tensor"]
    assert [layer.dtype for layer in found] == ["float8_e4m3fn", "float8_e4m3fn", "float8_e5m2"]
    assert {s.reason for s in skipped} == {"FP8 block scale (quantisation parameter, not a weight)",
                                           "weight scale (quantisation parameter, not a weight)",
                                           "FP8 activation scale (quantisation parameter, not a weight)"}
    table = netinit.analyze(path).layers
    assert table["layer"].tolist() == list(oracle)


def test_fp8_group_and_block_weight_scales(tmp_path):
    """compressed-tensors' float-quantized "group" (out, in / g) and "block" scales beside FP8 weights."""
    gen = torch.Generator().manual_seed(5)
    W1, W2 = torch.randn(24, 64, generator=gen), torch.randn(200, 300, generator=gen)
    s1 = W1.reshape(24, 4, 16).abs().amax(-1) / 448  # groups of 16 inputs
    q1 = (W1 / s1.repeat_interleave(16, 1)).to(torch.float8_e4m3fn)
    q2, s2 = _block_fp8(W2)
    save_file({"a.weight": q1, "a.weight_scale": s1, "b.weight": q2, "b.weight_scale": s2},
              str(tmp_path / "g.safetensors"))
    found, skipped = netinit.find_layers(load_checkpoint(tmp_path / "g.safetensors"))
    assert [(layer.name, layer.quant.scheme) for layer in found] == [("a.weight", "float8_e4m3fn group 16"),
                                                                    ("b.weight", "float8_e4m3fn block 128x128")]
    oracle1 = np.array([[float(q1[o, j]) * float(s1[o, j // 16]) for j in range(64)] for o in range(24)])
    np.testing.assert_allclose(found[0].matrix(), oracle1, rtol=1e-6, atol=0)
    oracle2 = (q2.float() * s2.repeat_interleave(128, 0).repeat_interleave(128, 1)[:200, :300]).numpy()
    np.testing.assert_allclose(found[1].matrix(), oracle2, rtol=1e-6, atol=0)
    np.testing.assert_allclose(found[0].matrix(), W1.numpy(), rtol=0.07, atol=1e-3)  # within e4m3's precision
    assert {s.name for s in skipped} == {"a.weight_scale", "b.weight_scale"}


def test_fp8_block_size_from_a_compressed_tensors_config(tmp_path):
    import json

    W = torch.randn(200, 300, generator=torch.Generator().manual_seed(6))
    s = torch.stack([torch.stack([W[i:i + 100, j:j + 100].abs().max() / 448 for j in range(0, 300, 100)])
                     for i in range(0, 200, 100)])
    q = (W / s.repeat_interleave(100, 0).repeat_interleave(100, 1)).to(torch.float8_e4m3fn)
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({"b.weight": q, "b.weight_scale": s}, str(folder / "model.safetensors"))
    group = {"weights": {"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [100, 100]},
             "targets": ["Linear"]}
    (folder / "config.json").write_text(json.dumps({"quantization_config": {
        "quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {"group_0": group}}}))
    (layer,), _ = netinit.find_layers(load_checkpoint(folder))
    assert layer.quant.scheme == "float8_e4m3fn block 100x100"
    np.testing.assert_allclose(layer.matrix(), (q.float() * s.repeat_interleave(100, 0).repeat_interleave(100, 1)).numpy(),
                               rtol=1e-6, atol=0)


def test_rewiring_a_quantised_layer_is_refused(fp8_file, tmp_path):
    path, _ = fp8_file
    with pytest.raises(DtypeError, match=r"layer 'l\.0\.fc1\.weight' is quantised \(float8_e4m3fn block 128x128\); "
                                         r"rewire the full-precision checkpoint and quantise after"):
        netinit.rewire_checkpoint(path, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_a_scale_that_does_not_fit_its_weight(tmp_path):
    save_file({"fc.weight": torch.zeros(200, 300, dtype=torch.float8_e4m3fn), "fc.weight_scale_inv": torch.ones(3, 3)},
              str(tmp_path / "bad.safetensors"))
    with pytest.raises(ShapeError, match=r"bad\.safetensors: scale 'fc\.weight_scale_inv' of shape \(3, 3\) does not fit "
                                         r"FP8 weight 'fc\.weight' of shape \(200, 300\)"):
        netinit.find_layers(load_checkpoint(tmp_path / "bad.safetensors"))


def test_unsupported_schemes_are_skipped_with_their_name(tmp_path):
    save_file({"l.q_proj.qweight": torch.zeros(4, 32, dtype=torch.int32), "l.q_proj.qzeros": torch.zeros(1, 4, dtype=torch.int32),
               "l.q_proj.scales": torch.ones(1, 32, dtype=torch.float16), "l.q_proj.g_idx": torch.zeros(32, dtype=torch.int32),
               "e.gate_up_proj_blocks": torch.zeros(2, 8, 1, 16, dtype=torch.uint8),
               "e.gate_up_proj_scales": torch.zeros(2, 8, dtype=torch.uint8),  # not gpt-oss's layout
               "fc.weight": torch.ones(3, 4)}, str(tmp_path / "q.safetensors"))
    found, skipped = netinit.find_layers(load_checkpoint(tmp_path / "q.safetensors"))
    assert [layer.name for layer in found] == ["fc.weight"]
    reasons = {s.name: s.reason for s in skipped}
    assert reasons["l.q_proj.qweight"] == \
        "quantised (GPTQ/AWQ, no quantization_config in config.json or quantize_config.json): not supported"
    assert reasons["e.gate_up_proj_blocks"] == "quantised (MXFP4): not supported"
    assert reasons["l.q_proj.scales"] == "GPTQ/AWQ quantisation parameter (quantisation parameter, not a weight)"
    assert reasons["e.gate_up_proj_scales"] == "MXFP4 scale (quantisation parameter, not a weight)"


def test_mxfp4_experts_match_transformers_dequantisation(tmp_path):
    """gpt-oss's MXFP4 experts: each expert's (out, in) matrix is what transformers' own conversion
    gives (transposed back from its (in, out) forward layout)."""
    mxfp4 = pytest.importorskip("transformers.integrations.mxfp4")
    gen = torch.Generator().manual_seed(5)
    blocks = torch.randint(0, 256, (3, 8, 2, 16), generator=gen, dtype=torch.int32).to(torch.uint8)
    scales = torch.randint(120, 134, (3, 8, 2), generator=gen, dtype=torch.int32).to(torch.uint8)
    save_file({"model.layers.0.mlp.experts.gate_up_proj_blocks": blocks,
               "model.layers.0.mlp.experts.gate_up_proj_scales": scales}, str(tmp_path / "mx.safetensors"))
    found, skipped = netinit.find_layers(load_checkpoint(tmp_path / "mx.safetensors"))
    assert [(la.name, la.expert, la.role, la.matrix_shape) for la in found] == [
        (f"model.layers.0.mlp.experts.{e}.gate_up_proj", e, "mlp_gate_up", (8, 64)) for e in range(3)]
    assert [s.reason for s in skipped] == ["MXFP4 scale (quantisation parameter, not a weight)"]
    ref = mxfp4.convert_moe_packed_tensors(blocks, scales, dtype=torch.float32)  # (experts, in, out)
    for la in found:
        np.testing.assert_array_equal(la.matrix(), ref[la.index].T.numpy())
