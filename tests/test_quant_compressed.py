"""compressed-tensors integer weights (pack-quantized and int-quantized; group, channel and tensor
strategies, symmetric and asymmetric), compressed by the library's own compressors into a model
folder with the config it writes; netinit's values equal the library's decompression exactly and a
numpy oracle from the integers the library stored."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import netinit
from netinit.errors import ShapeError
from netinit.formats import load_checkpoint

ct = pytest.importorskip("compressed_tensors")
from compressed_tensors.compressors.naive_quantized.base import IntQuantizationCompressor  # noqa: E402
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor  # noqa: E402
from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig, QuantizationScheme  # noqa: E402
from compressed_tensors.quantization.utils import calculate_qparams  # noqa: E402

LAYERS = {"model.layers.0.self_attn.q_proj": (48, 96), "model.layers.0.mlp.down_proj": (32, 64)}


def _qparams(W, args):
    if args.strategy == "group":
        blocks = W.float().reshape(W.shape[0], -1, args.group_size)
        lo, hi = blocks.amin(-1), blocks.amax(-1)
    elif args.strategy == "channel":
        lo, hi = W.float().amin(1, keepdim=True), W.float().amax(1, keepdim=True)
    else:
        lo, hi = W.float().min(), W.float().max()
    return calculate_qparams(lo.to(W.dtype), hi.to(W.dtype), args)


def _folder(path, tensors, qconfig):
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": qconfig}))
    return path


@pytest.mark.parametrize("fmt, bits", [("pack-quantized", 4), ("pack-quantized", 8), ("pack-quantized", 2),
                                       ("int-quantized", 8)])
@pytest.mark.parametrize("strategy, symmetric, dtype", [("group", True, torch.bfloat16), ("group", False, torch.float16),
                                                        ("channel", False, torch.bfloat16), ("channel", True, torch.float32),
                                                        ("tensor", True, torch.bfloat16)])
def test_compressed_weights_match_the_library(tmp_path, fmt, bits, strategy, symmetric, dtype):
    gen = torch.Generator().manual_seed(bits)
    args = QuantizationArgs(num_bits=bits, type="int", symmetric=symmetric, strategy=strategy,
                            group_size=32 if strategy == "group" else None)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    compressor = PackedQuantizationCompressor if fmt == "pack-quantized" else IntQuantizationCompressor
    tensors, want, oracle, floats = {}, {}, {}, {}
    for stem, shape in LAYERS.items():
        W = torch.randn(shape, generator=gen).to(dtype)
        s, z = _qparams(W, args)
        state = {"weight": W, "weight_scale": s, "weight_zero_point": z}
        stored = compressor.compress(state, scheme)
        ints = IntQuantizationCompressor.compress(state, scheme)  # the same integers, unpacked (int8)
        tensors.update({f"{stem}.{k}": v for k, v in stored.items()})
        name = f"{stem}.weight_packed" if fmt == "pack-quantized" else f"{stem}.weight"
        want[name] = compressor.decompress(stored, scheme)["weight"].float().numpy()
        q = ints["weight"].numpy().astype(np.float64)
        zero = ints.get("weight_zero_point", torch.zeros(1)).float().numpy().astype(np.float64)
        scale = s.float().numpy().astype(np.float64)
        if strategy == "group":
            scale, zero = np.repeat(scale, 32, 1), (np.repeat(zero, 32, 1) if zero.size > 1 else zero)
        zero = zero.reshape(scale.shape[0], -1) if zero.size > 1 else zero.reshape(1, 1)
        oracle[name] = torch.from_numpy(scale * (q - zero)).to(dtype).float().numpy()
        floats[name] = (W.float().numpy(), scale)
    tensors["lm_head.weight"] = torch.randn(8, 64, generator=gen)
    qconfig = QuantizationConfig(config_groups={"group_0": scheme}, format=fmt, quantization_status="compressed",
                                 ignore=["lm_head"]).to_dict()
    found, skipped = netinit.find_layers(load_checkpoint(_folder(tmp_path / "m", tensors, qconfig)))
    assert sorted(la.name for la in found) == sorted([*want, "lm_head.weight"])
    assert {s.reason for s in skipped} <= {"weight scale (quantisation parameter, not a weight)",
                                           "compressed-tensors quantisation parameter (quantisation parameter, not a weight)"}
    grouping = {"group": "group 32", "channel": "per channel", "tensor": "per tensor"}[strategy]
    for la in found:
        if la.name == "lm_head.weight":
            assert la.quant is None
            continue
        assert la.quant.scheme == f"compressed-tensors int{bits} {grouping}" + ("" if symmetric else " asymmetric")
        assert (la.dtype, la.matrix_shape) == (f"int{bits}", want[la.name].shape)
        m = la.matrix()
        np.testing.assert_array_equal(m, want[la.name])
        np.testing.assert_array_equal(m, oracle[la.name])
        W, scale = floats[la.name]
        step = 0.51 if symmetric else 1.01  # half a step; a rounded zero point may clip the range's far end by a step
        assert np.all(np.abs(m - W) <= scale * step + 1e-2 * np.abs(W) + 1e-6)  # and the rounding to dtype


def test_act_order_group_index(tmp_path):
    """``weight_g_idx`` assigns each input its group: ``W[o, j] = s[o, g_idx[j]] * q[o, j]``."""
    rng = np.random.default_rng(0)
    q = torch.from_numpy(rng.integers(-128, 128, (6, 64)).astype(np.int8))
    s = torch.from_numpy(rng.uniform(0.01, 0.1, (6, 2)).astype(np.float32))
    g = torch.from_numpy(rng.permutation(np.repeat([0, 1], 32)).astype(np.int32))
    args = {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "group", "group_size": 32, "actorder": "group"}
    path = _folder(tmp_path / "m", {"fc.weight": q, "fc.weight_scale": s, "fc.weight_g_idx": g},
                   {"quant_method": "compressed-tensors", "format": "int-quantized",
                    "config_groups": {"group_0": {"targets": ["Linear"], "weights": args}}})
    (la,), _ = netinit.find_layers(load_checkpoint(path))
    assert la.quant.scheme == "compressed-tensors int8 group 32 act-order"
    np.testing.assert_array_equal(la.matrix(), q.numpy() * s.numpy()[:, g.numpy()])


def _packed_folder(tmp_path, change=None, fmt="pack-quantized"):
    args = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=32)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    W = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    s, z = _qparams(W, args)
    stored = PackedQuantizationCompressor.compress({"weight": W, "weight_scale": s, "weight_zero_point": z}, scheme)
    tensors = {f"fc.{k}": v for k, v in stored.items()} | {f"fc.{k}": v for k, v in (change or {}).items()}
    qconfig = QuantizationConfig(config_groups={"group_0": scheme}, format=fmt).to_dict()
    return _folder(tmp_path / "m", tensors, qconfig)


@pytest.mark.parametrize("change, match", [
    ({"weight_scale": torch.ones(16, 3)}, r"compressed-tensors weight 'fc\.weight_packed' of shape \(16, 8\) with "
     r"'fc\.weight_scale' of shape \(16, 3\) fits none of config\.json's config_groups"),
    ({"weight_shape": torch.tensor([16, 80])}, r"compressed-tensors weight 'fc\.weight_packed' of shape \(16, 8\) with "
     r"'fc\.weight_scale' of shape \(16, 2\) fits none"),
    ({"weight_shape": torch.tensor([15, 64])}, r"'fc\.weight_shape' holds \[15, 64\], which is no \(n_out, n_in\) for "
     r"packed weight 'fc\.weight_packed' of shape \(16, 8\)"),
])
def test_a_companion_that_does_not_fit_is_one_line(tmp_path, change, match):
    path = _packed_folder(tmp_path, change)
    with pytest.raises(ShapeError, match=rf"^{re.escape(str(path))}: {match}") as info:
        netinit.find_layers(load_checkpoint(path))
    assert "\n" not in str(info.value)


def test_formats_netinit_does_not_read_are_skipped_by_name(tmp_path):
    path = _packed_folder(tmp_path, {"weight_packed": torch.zeros(16, 32, dtype=torch.uint8), "proj.weight": torch.ones(2, 2)},
                          fmt="nvfp4-pack-quantized")
    _, skipped = netinit.find_layers(load_checkpoint(path / "model.safetensors"))
    assert {s.name: s.reason for s in skipped}["fc.weight_packed"] == \
        "quantised (compressed-tensors, no quantization_config in config.json): not supported"
    _, skipped = netinit.find_layers(load_checkpoint(path))
    assert {s.name: s.reason for s in skipped}["fc.weight_packed"] == \
        "quantised (compressed-tensors nvfp4-pack-quantized, weight_packed of uint8): not supported"
