"""bitsandbytes 4-bit (NF4, FP4, with and without double quantisation) and 8-bit weights, made by
bitsandbytes itself on the CPU and by transformers' save_pretrained of a quantised tiny Llama;
netinit's values equal bitsandbytes' own dequantisation exactly, a numpy oracle written from the
definitions, and the float weights within the quantisation error."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file

import netinit
from netinit.cli import main
from netinit.errors import CorruptFileError, DtypeError, ShapeError
from netinit.formats import load_checkpoint

#: NF4 (Dettmers et al. 2023, QLoRA, appendix E): the 16 quantiles of N(0, 1) normalised to [-1, 1]
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]
#: bitsandbytes FP4: sign bit 3, then codes of 0, 1/16, 8, 12, 4, 6, 2, 3, normalised by 12
FP4 = [v / 12 for v in (0, 0.0625, 8, 12, 4, 6, 2, 3)] + [-v / 12 for v in (0, 0.0625, 8, 12, 4, 6, 2, 3)]
MAX_GAP = {"nf4": 1 - NF4[-2], "fp4": 4 / 12}


@pytest.fixture(scope="module")
def bnb():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # bitsandbytes asks the Hub for an optional CPU kernel on import
        return pytest.importorskip("bitsandbytes")


def _oracle4(packed, absmax_codes, state, tensors, n):
    """4-bit dequantisation from the definition, in float64: high nibble first, code table by quant type,
    absmax per block (itself blockwise-dequantised when nested)."""
    codes = np.stack([packed.reshape(-1) >> 4, packed.reshape(-1) & 15], 1).reshape(-1)[:n]
    table = np.array(NF4 if state["quant_type"] == "nf4" else FP4)
    if "nested_blocksize" in state:
        nmap, nabs = tensors["nested_quant_map"].astype(np.float64), tensors["nested_absmax"].astype(np.float64)
        idx = np.arange(absmax_codes.size) // state["nested_blocksize"]
        absmax = nmap[absmax_codes] * nabs[idx] + state["nested_offset"]
    else:
        absmax = absmax_codes.astype(np.float64)
    return table[codes] * absmax[np.arange(n) // state["blocksize"]]


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("dtype, blocksize", [(torch.float32, 64), (torch.float16, 128), (torch.bfloat16, 64)])
def test_4bit_matches_bitsandbytes_and_the_definition(bnb, tmp_path, quant_type, nested, dtype, blocksize):
    F = bnb.functional
    W = torch.randn(50, 70, generator=torch.Generator().manual_seed(7)).to(dtype)  # 3500 values: a partial last block
    q, state = F.quantize_4bit(W, quant_type=quant_type, blocksize=blocksize, compress_statistics=nested)
    stored = state.as_dict(packed=True)
    save_file({"model.layers.2.mlp.up_proj.weight": q, "model.layers.2.mlp.up_proj.bias": torch.zeros(50),
               **{f"model.layers.2.mlp.up_proj.weight.{k}": v for k, v in stored.items()}}, str(tmp_path / "b.safetensors"))
    (la,), skipped = netinit.find_layers(load_checkpoint(tmp_path / "b.safetensors"))
    assert (la.name, la.matrix_shape, la.dtype, la.role, la.block) == ("model.layers.2.mlp.up_proj.weight", (50, 70),
                                                                         quant_type, "mlp_up", 2)
    assert la.quant.scheme == f"bitsandbytes {quant_type} block {blocksize}" + (" double-quantised" if nested else "")
    assert {s.reason for s in skipped} == {"bias", "bitsandbytes quantisation state (quantisation parameter, not a weight)"}
    m = la.matrix()
    np.testing.assert_array_equal(m, F.dequantize_4bit(q, state).float().numpy())
    key = f"quant_state.bitsandbytes__{quant_type}"
    doc = json.loads(bytes(stored[key].tolist()))
    oracle = _oracle4(q.numpy(), stored["absmax"].numpy(), doc, {k: v.numpy() for k, v in stored.items()}, 3500)
    np.testing.assert_allclose(m, torch.from_numpy(oracle).to(dtype).float().numpy().reshape(50, 70), rtol=1e-6, atol=0)
    true_absmax = np.abs(np.pad(W.float().numpy().reshape(-1), (0, -3500 % blocksize))).reshape(-1, blocksize).max(1)
    bound = np.repeat(true_absmax, blocksize)[:3500].reshape(50, 70) * (MAX_GAP[quant_type] / 2 + 0.02)
    assert np.all(np.abs(m - W.float().numpy()) <= bound + 1e-2 * np.abs(W.float().numpy()))


def test_8bit_matches_bitsandbytes_and_the_definition(bnb, tmp_path):
    F = bnb.functional
    W = torch.randn(40, 24, generator=torch.Generator().manual_seed(8)).half()
    q, scb, _ = F.int8_vectorwise_quant(W)
    save_file({"enc.fc.weight": q, "enc.fc.SCB": scb, "enc.fc.weight_format": torch.tensor(0, dtype=torch.uint8)},
              str(tmp_path / "i8.safetensors"))
    (la,), _ = netinit.find_layers(load_checkpoint(tmp_path / "i8.safetensors"))
    assert (la.quant.scheme, la.dtype, la.matrix_shape) == ("bitsandbytes int8 per channel", "int8", (40, 24))
    m = la.matrix()
    np.testing.assert_array_equal(m, F.int8_vectorwise_dequant(q, scb).numpy())
    oracle = q.numpy().astype(np.float64) * scb.numpy()[:, None].astype(np.float64) / 127
    np.testing.assert_allclose(m, oracle, rtol=1e-6, atol=0)
    assert np.all(np.abs(m - W.float().numpy()) <= scb.numpy()[:, None] / 127 / 2 + 1e-3 * np.abs(W.float().numpy()))


@pytest.fixture(scope="module")
def saved(bnb, tmp_path_factory):
    """A tiny Llama saved full-precision, and loaded with bitsandbytes quantisation and saved again."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    root = tmp_path_factory.mktemp("bnb")
    state = torch.random.get_rng_state()
    torch.manual_seed(0)  # transformers initialises from the global generator; restored below
    cfg = transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   vocab_size=64, intermediate_size=128)
    transformers.LlamaForCausalLM(cfg).save_pretrained(root / "float")
    torch.random.set_rng_state(state)
    out = {}
    for name, q in {"nf4": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32),
                    "fp4": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float32),
                    "int8": dict(load_in_8bit=True)}.items():
        model = transformers.LlamaForCausalLM.from_pretrained(
            root / "float", quantization_config=transformers.BitsAndBytesConfig(**q), dtype=torch.float32, device_map="cpu")
        model.save_pretrained(root / name)
        out[name] = (root / name, model)
    return root / "float", out


@pytest.mark.parametrize("kind, scheme", [("nf4", "bitsandbytes nf4 block 64 double-quantised"),
                                          ("fp4", "bitsandbytes fp4 block 64"), ("int8", "bitsandbytes int8 per channel")])
def test_a_save_pretrained_folder_reads_as_bitsandbytes_dequantises_it(bnb, saved, kind, scheme):
    float_folder, out = saved
    folder, model = out[kind]
    found, _ = netinit.find_layers(load_checkpoint(folder))
    quantised = [la for la in found if la.quant is not None]
    assert len(quantised) == 14 and {la.quant.scheme for la in quantised} == {scheme}  # 7 projections x 2 blocks
    originals = {la.name: la for la in netinit.find_layers(load_checkpoint(float_folder))[0]}
    for la in quantised:
        param = model.get_submodule(la.name[: -len(".weight")]).weight
        if kind == "int8":
            want = bnb.functional.int8_vectorwise_dequant(param.data, param.SCB)
        else:
            want = bnb.functional.dequantize_4bit(param.data, param.quant_state)
        np.testing.assert_array_equal(la.matrix(), want.float().numpy())
        W = originals[la.name].matrix()
        step = np.abs(W).max() * (1 / 127 if kind == "int8" else MAX_GAP[kind])  # largest step anywhere in the layer
        assert np.abs(la.matrix() - W).max() <= step / 2 * 1.05


def _bnb4_file(bnb, tmp_path, **change):
    q, state = bnb.functional.quantize_4bit(torch.randn(8, 16, generator=torch.Generator().manual_seed(9)), blocksize=64,
                                            quant_type="nf4", compress_statistics=True)
    tensors = {"fc.weight": q, **{f"fc.weight.{k}": v for k, v in state.as_dict(packed=True).items()}}
    tensors.update(change)
    save_file(tensors, str(tmp_path / "b.safetensors"))
    return tmp_path / "b.safetensors"


@pytest.mark.parametrize("change, error, match", [
    ({"fc.weight.quant_state.bitsandbytes__nf4": torch.tensor(list(b"{not json"), dtype=torch.uint8)}, CorruptFileError,
     r"bitsandbytes quant state 'fc\.weight\.quant_state\.bitsandbytes__nf4' is not JSON"),
    ({"fc.weight.quant_state.bitsandbytes__nf4": torch.tensor(list(b'{"quant_type": "nf4", "blocksize": 64}'),
                                                              dtype=torch.uint8)}, CorruptFileError,
     r"bitsandbytes quant state 'fc\.weight\.quant_state\.bitsandbytes__nf4' lacks a valid quant_type, blocksize, dtype "
     r"or shape"),
    ({"fc.weight.absmax": torch.zeros(3, dtype=torch.uint8)}, ShapeError,
     r"'fc\.weight\.absmax' \(uint8 \(3,\)\) does not fit bitsandbytes 4-bit weight 'fc\.weight' of shape \(8, 16\) "
     r"\(expected 2 values of uint8\)"),
    ({"fc.weight": torch.zeros(65, 1, dtype=torch.uint8)}, ShapeError,
     r"bitsandbytes 4-bit weight 'fc\.weight' holds 65 bytes, but 'fc\.weight\.quant_state\.bitsandbytes__nf4' says "
     r"shape \(8, 16\) \(64 bytes\)"),
])
def test_a_bad_quant_state_is_one_line_naming_the_file_and_tensors(bnb, tmp_path, change, error, match):
    path = _bnb4_file(bnb, tmp_path, **change)
    with pytest.raises(error, match=rf"^{re.escape(str(path))}: {match}") as info:
        netinit.find_layers(load_checkpoint(path))
    assert "\n" not in str(info.value)


def test_an_scb_that_does_not_fit_is_one_line(tmp_path):
    save_numpy({"fc.weight": np.ones((4, 6), np.int8), "fc.SCB": np.ones(6, np.float32)}, str(tmp_path / "i8.safetensors"))
    with pytest.raises(ShapeError, match=r"i8\.safetensors: 'fc\.SCB' \(float32 \(6,\)\) does not fit bitsandbytes 8-bit "
                                         r"weight 'fc\.weight' of shape \(4, 6\) \(expected one float per output row, 4\)"):
        netinit.find_layers(load_checkpoint(tmp_path / "i8.safetensors"))


def test_rewiring_a_bitsandbytes_file_is_refused_in_one_line(bnb, tmp_path, capsys):
    path = _bnb4_file(bnb, tmp_path)
    assert main(["rewire", str(path), "-o", str(tmp_path / "out.safetensors"), "--seed", "0"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "layer 'fc.weight' is quantised (bitsandbytes nf4 block 64 double-quantised); rewire the full-precision" in err
    with pytest.raises(DtypeError, match=r"is quantised \(bitsandbytes nf4"):
        netinit.rewire_checkpoint(path, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
