"""Fuzzed layouts of every packed quantisation scheme: a layer whose matrix reads, a skip, or a
one-line netinit error naming the folder; never another exception."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

import netinit
from netinit.errors import NetinitError
from netinit.formats import load_checkpoint

KINDS = ("ct_packed", "ct_int", "bnb4", "bnb8", "gptq", "awq")


def _random(rng, ndim: int, dtype) -> np.ndarray:
    shape = tuple(int(d) for d in rng.integers(0, 9, size=ndim))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=np.int64).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _layout(rng, kind: str) -> tuple[dict[str, np.ndarray], dict | None]:
    t: dict[str, np.ndarray] = {}
    if kind in ("ct_packed", "ct_int"):
        packed = kind == "ct_packed"
        if packed:
            t["fc.weight_packed"] = _random(rng, 2, np.int32)
            t["fc.weight_shape"] = rng.integers(-2, 70, size=int(rng.integers(1, 4))).astype(np.int64)
        else:
            t["fc.weight"] = _random(rng, 2, np.int8)
        t["fc.weight_scale"] = _random(rng, int(rng.integers(0, 3)), np.float32)
        if rng.random() < 0.5:
            t["fc.weight_zero_point"] = _random(rng, 2, np.int32 if packed else np.int8)
        if rng.random() < 0.3:
            t["fc.weight_g_idx"] = _random(rng, 1, np.int32)
        args = {"num_bits": int(rng.choice([2, 4, 8])) if packed else 8, "type": "int",
                "symmetric": bool(rng.random() < 0.5), "strategy": str(rng.choice(["group", "channel", "tensor"])),
                "group_size": int(rng.integers(1, 9))}
        return t, {"quant_method": "compressed-tensors", "format": "pack-quantized" if packed else "int-quantized",
                   "config_groups": {"g": {"weights": args}}}
    if kind == "bnb4":
        state = {"quant_type": str(rng.choice(["nf4", "fp4"])), "blocksize": int(rng.integers(1, 70)),
                 "dtype": "float16", "shape": [int(d) for d in rng.integers(0, 9, size=int(rng.integers(1, 3)))]}
        if rng.random() < 0.5:
            state.update(nested_blocksize=int(rng.integers(1, 5)), nested_offset=0.5)
        t = {"fc.weight": _random(rng, 2, np.uint8),
             "fc.weight.absmax": _random(rng, 1, np.float32 if rng.random() < 0.5 else np.uint8),
             "fc.weight.quant_map": _random(rng, 1, np.float32), "fc.weight.nested_absmax": _random(rng, 1, np.float32),
             "fc.weight.nested_quant_map": _random(rng, 1, np.float32),
             f"fc.weight.quant_state.bitsandbytes__{state['quant_type']}":
                 np.frombuffer(json.dumps(state).encode(), np.uint8).copy()}
        return t, None
    if kind == "bnb8":
        return {"fc.weight": _random(rng, int(rng.integers(1, 4)), np.int8),
                "fc.SCB": _random(rng, int(rng.integers(0, 3)), np.float32)}, None
    t = {"fc.qweight": _random(rng, 2, np.int32), "fc.qzeros": _random(rng, 2, np.int32),
         "fc.scales": _random(rng, 2, np.float16), "fc.g_idx": _random(rng, 1, np.int32)}
    cfg = {"quant_method": kind, "bits": int(rng.choice([2, 4, 8])), "group_size": int(rng.integers(-1, 9)),
           "desc_act": bool(rng.random() < 0.3)}
    return t, cfg


@pytest.mark.parametrize("kind", KINDS)
def test_fuzzed_quantised_layouts_read_skip_or_fail_in_one_line(tmp_path, kind):
    rng = np.random.default_rng(KINDS.index(kind))
    outcomes = set()
    for i in range(60):
        tensors, cfg = _layout(rng, kind)
        folder = tmp_path / f"m{i}"
        folder.mkdir()
        save_file({"proj.weight": np.ones((2, 2), np.float32), **tensors}, str(folder / "model.safetensors"))
        if cfg is not None:
            (folder / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": cfg}))
        try:
            found, _ = netinit.find_layers(load_checkpoint(folder))
            for layer in found:
                assert layer.matrix(check_finite=False).shape == layer.matrix_shape
            outcomes.add("read" if any(layer.quant for layer in found) else "skipped")
        except NetinitError as exc:
            assert "\n" not in str(exc) and str(folder) in str(exc), str(exc)
            outcomes.add("error")
    assert "error" in outcomes or "skipped" in outcomes  # the draws reach the checks of bad layouts
