"""GPTQ and AWQ packed integer weights: files packed here from the format definitions (no packer
installs on a CPU-only machine), dequantised by netinit, checked against the integer codes they
were packed from and against the float weights within the quantisation error."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

import netinit
from netinit.cli import main
from netinit.errors import CorruptFileError, DtypeError, ShapeError
from netinit.formats import load_checkpoint

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def _pack(codes: np.ndarray, bits: int, axis: int, order=None) -> np.ndarray:
    """int32 words of unsigned ``bits``-bit codes, lowest bits first, ``32 / bits`` consecutive codes
    along ``axis`` a word (``order[k]``: which of them goes into slot ``k``)."""
    p = 32 // bits
    c = codes.astype(np.uint64)
    c = c.reshape(c.shape[0] // p, p, c.shape[1]).transpose(0, 2, 1) if axis == 0 else c.reshape(c.shape[0], -1, p)
    if order is not None:
        c = c[..., order]
    words = sum(c[..., k] << np.uint64(k * bits) for k in range(p))
    return np.ascontiguousarray(words.astype(np.uint32)).view(np.int32)


def _quantise(W: np.ndarray, groups: np.ndarray, bits: int, *, sym: bool):
    """Asymmetric (or symmetric) min-max quantisation of ``W`` ``(out, in)`` by input groups
    (``groups[j]`` the group of input ``j``): codes ``(out, in)``, zeros and float16 scales ``(G, out)``."""
    maxq = 2 ** bits - 1
    G = int(groups.max()) + 1
    scales = np.empty((G, W.shape[0]), np.float16)
    zeros = np.empty((G, W.shape[0]), np.int64)
    for g in range(G):
        block = W[:, groups == g]
        lo, hi = np.minimum(block.min(1), 0), np.maximum(block.max(1), 0)
        if sym:
            hi = np.maximum(-lo, hi)
            lo = -hi
        scales[g] = ((hi - lo) / maxq).astype(np.float16)
        zeros[g] = (2 ** (bits - 1) if sym else np.round(-lo / scales[g].astype(np.float32)))
    s, z = scales.astype(np.float32)[groups].T, zeros[groups].T
    codes = np.clip(np.round(W / s) + z, 0, maxq).astype(np.int64)
    return codes, zeros, scales


def _oracle(codes, zeros, scales, groups):
    """``W[o, j] = scales[g, o] * (q[o, j] - z[g, o])``, ``g = groups[j]``, computed in float64 and
    rounded to float16 as the model computes it."""
    s, z = scales.astype(np.float64)[groups].T, zeros[groups].T
    return (s * (codes - z)).astype(np.float16).astype(np.float32)


def _folder(path, tensors, qconfig):
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": qconfig}))
    return path


def _gptq(rng, out, inn, bits, group_size, *, v1=True, act_order=False, sym=False):
    W = rng.standard_normal((out, inn)).astype(np.float32)
    gs = inn if group_size == -1 else group_size
    groups = np.arange(inn) // gs
    if act_order:
        groups = groups[rng.permutation(inn)]
    codes, zeros, scales = _quantise(W, groups, bits, sym=sym)
    stored_zeros = (zeros - 1) % 2 ** bits if v1 else zeros
    t = {"qweight": _pack(codes.T, bits, axis=0), "qzeros": _pack(stored_zeros, bits, axis=1), "scales": scales,
         "g_idx": groups.astype(np.int32), "bias": np.zeros(out, np.float16)}
    return W, t, _oracle(codes, zeros, scales, groups), scales.astype(np.float32)[groups].T


@pytest.mark.parametrize("bits, group_size, v1, act_order, sym", [
    (4, 32, True, False, False), (4, 32, False, False, False), (4, 32, True, True, False), (8, -1, True, False, True),
    (2, 16, True, False, False), (4, 64, True, False, True)])
def test_gptq_matches_the_codes_it_was_packed_from(tmp_path, bits, group_size, v1, act_order, sym):
    rng = np.random.default_rng(1)
    layers = {"model.layers.0.self_attn.q_proj": (64, 96), "model.layers.0.mlp.down_proj": (32, 64)}
    tensors, want, scale = {}, {}, {}
    for stem, (out, inn) in layers.items():
        W, t, oracle, s = _gptq(rng, out, inn, bits, group_size, v1=v1, act_order=act_order, sym=sym)
        tensors.update({f"{stem}.{k}": v for k, v in t.items()})
        want[f"{stem}.qweight"], scale[f"{stem}.qweight"] = (W, oracle), s
    qconfig = {"quant_method": "gptq", "bits": bits, "group_size": group_size, "desc_act": act_order, "sym": sym,
               "checkpoint_format": "gptq" if v1 else "gptq_v2"}
    found, skipped = netinit.find_layers(load_checkpoint(_folder(tmp_path / "m", tensors, qconfig)))
    assert sorted(la.name for la in found) == sorted(want)
    assert {s.reason for s in skipped} == {"bias", "GPTQ/AWQ quantisation parameter (quantisation parameter, not a weight)"}
    for la in found:
        W, oracle = want[la.name]
        m = la.matrix()
        assert m.shape == W.shape == la.matrix_shape and la.dtype == f"int{bits}"
        np.testing.assert_array_equal(m, oracle)
        assert np.all(np.abs(m - W) <= scale[la.name] * 0.5 + 2e-3 * np.abs(W) + 1e-6)  # rounding + float16
    grouping = "per channel" if group_size == -1 else f"group {group_size}"
    scheme = f"GPTQ int{bits} {grouping}" + (" act-order" if act_order else "") + ("" if v1 else " v2")
    assert {la.quant.scheme for la in found} == {scheme}
    assert {la.name: (la.block, la.role) for la in found} == {"model.layers.0.self_attn.q_proj.qweight": (0, "attn_q"),
                                                             "model.layers.0.mlp.down_proj.qweight": (0, "mlp_down")}


def test_gptq_v1_zero_of_zero_reads_as_zero(tmp_path):
    """v1 stores z - 1: an asymmetric zero point of 0 is stored as 2**bits - 1 and read back as 0."""
    codes = np.tile(np.arange(16), (8, 2))  # (out 8, in 32)
    scales = np.full((1, 8), 0.5, np.float16)
    t = {"l.qweight": _pack(codes.T, 4, axis=0), "l.qzeros": _pack(np.full((1, 8), 15), 4, axis=1),
         "l.scales": scales, "l.g_idx": np.zeros(32, np.int32)}
    path = _folder(tmp_path / "m", t, {"quant_method": "gptq", "bits": 4, "group_size": -1})
    (la,), _ = netinit.find_layers(load_checkpoint(path))
    np.testing.assert_array_equal(la.matrix(), codes * 0.5)


def _awq(rng, out, inn, group_size):
    W = rng.standard_normal((out, inn)).astype(np.float32)
    groups = np.arange(inn) // group_size
    codes, zeros, scales = _quantise(W, groups, 4, sym=False)
    t = {"qweight": _pack(codes.T, 4, axis=1, order=AWQ_ORDER), "qzeros": _pack(zeros, 4, axis=1, order=AWQ_ORDER),
         "scales": scales}
    return W, t, _oracle(codes, zeros, scales, groups), scales.astype(np.float32)[groups].T


def test_awq_gemm_matches_the_codes_it_was_packed_from(tmp_path):
    rng = np.random.default_rng(2)
    W, t, oracle, s = _awq(rng, 48, 128, 64)
    path = _folder(tmp_path / "m", {f"model.layers.1.mlp.up_proj.{k}": v for k, v in t.items()},
                   {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True, "version": "gemm"})
    (la,), skipped = netinit.find_layers(load_checkpoint(path))
    assert (la.name, la.quant.scheme, la.matrix_shape, la.role) == ("model.layers.1.mlp.up_proj.qweight",
                                                                    "AWQ int4 group 64", (48, 128), "mlp_up")
    np.testing.assert_array_equal(la.matrix(), oracle)
    assert np.all(np.abs(la.matrix() - W) <= s * 0.5 + 2e-3 * np.abs(W) + 1e-6)
    # the interleaved order matters: read in plain order the columns would be permuted
    assert not np.array_equal(_pack(np.arange(8)[None], 4, axis=1, order=AWQ_ORDER), _pack(np.arange(8)[None], 4, axis=1))


def _side_folder(path, tensors, fname, settings, config=None):
    """A folder whose quantiser wrote its settings to ``fname`` beside the weights (AutoGPTQ and
    GPTQModel: quantize_config.json; AutoAWQ: quant_config.json), config.json without them."""
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(config if config is not None else {"model_type": "llama"}))
    (path / fname).write_text(json.dumps(settings))
    return path


@pytest.mark.parametrize("settings", [
    # AutoGPTQ 0.7 (no quant_method: the file name says GPTQ)
    {"bits": 4, "group_size": 32, "damp_percent": 0.01, "desc_act": True, "static_groups": False, "sym": False,
     "true_sequential": True, "model_name_or_path": None, "model_file_base_name": None},
    # GPTQModel: quant_method and format written out
    {"bits": 4, "group_size": 32, "desc_act": True, "sym": False, "quant_method": "gptq", "checkpoint_format": "gptq",
     "meta": {"quantizer": ["gptqmodel:2.2.0"]}},
])
def test_gptq_settings_in_quantize_config_json(tmp_path, settings):
    rng = np.random.default_rng(5)
    W, t, oracle, _ = _gptq(rng, 24, 64, 4, 32, act_order=True)
    path = _side_folder(tmp_path / "m", {f"model.layers.0.mlp.up_proj.{k}": v for k, v in t.items()},
                        "quantize_config.json", settings)
    ckpt = load_checkpoint(path)
    assert ckpt.model["quantization"] == "gptq"
    assert ckpt.model["quantization_config"]["source"] == "quantize_config.json"
    (la,), _ = netinit.find_layers(ckpt)
    assert la.quant.scheme == "GPTQ int4 group 32 act-order"
    np.testing.assert_array_equal(la.matrix(), oracle)


def test_awq_settings_in_quant_config_json(tmp_path):
    rng = np.random.default_rng(6)
    _, t, oracle, _ = _awq(rng, 16, 128, 64)
    path = _side_folder(tmp_path / "m", {f"model.layers.0.mlp.up_proj.{k}": v for k, v in t.items()},
                        "quant_config.json", {"zero_point": True, "q_group_size": 64, "w_bit": 4, "version": "GEMM"})
    (la,), _ = netinit.find_layers(load_checkpoint(path))
    assert la.quant.scheme == "AWQ int4 group 64"
    np.testing.assert_array_equal(la.matrix(), oracle)


def test_config_json_settings_win_over_a_side_file(tmp_path):
    """config.json's quantization_config is what transformers loads by; a stale side file is ignored."""
    _, t, oracle, _ = _gptq(np.random.default_rng(7), 16, 64, 4, 32)
    path = _side_folder(tmp_path / "m", {f"l.{k}": v for k, v in t.items()}, "quantize_config.json",
                        {"bits": 8, "group_size": 16},
                        config={"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32}})
    (la,), _ = netinit.find_layers(load_checkpoint(path))
    assert la.quant.scheme == "GPTQ int4 group 32"
    np.testing.assert_array_equal(la.matrix(), oracle)


@pytest.mark.parametrize("text, match", [(b"{bits: 4", "malformed JSON"), (b"[4]", "not a JSON object"),
                                         (b"\xff\xfe", "malformed JSON")])
def test_bad_quantize_config_json_is_a_one_line_error(tmp_path, text, match):
    _, t, _, _ = _gptq(np.random.default_rng(8), 16, 64, 4, 32)
    path = _side_folder(tmp_path / "m", {f"l.{k}": v for k, v in t.items()}, "quantize_config.json", {})
    (path / "quantize_config.json").write_bytes(text)
    with pytest.raises(CorruptFileError, match=f"quantize_config.json: {match}") as exc:
        load_checkpoint(path)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("qconfig, reason", [
    ({"quant_method": "awq", "bits": 4, "group_size": 64, "version": "gemv"}, "quantised (AWQ gemv): not supported"),
    ({"quant_method": "awq", "bits": 4, "group_size": 64, "version": "gemm", "zero_point": False},
     "quantised (AWQ without zero points): not supported"),
    ({"quant_method": "gptq", "bits": 3, "group_size": 64}, "quantised (GPTQ int3): not supported"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 64, "checkpoint_format": "marlin"},
     "quantised (GPTQ marlin): not supported"),
    (None, "quantised (GPTQ/AWQ, no quantization_config in config.json or quantize_config.json): not supported"),
])
def test_schemes_netinit_cannot_read_are_skipped_by_name(tmp_path, qconfig, reason):
    _, t, _, _ = _awq(np.random.default_rng(3), 16, 64, 64)
    tensors = {f"l.{k}": v for k, v in t.items()} | {"fc.weight": np.ones((3, 4), np.float32)}
    if qconfig is None:
        save_file(tensors, str(tmp_path / "q.safetensors"))
        path = tmp_path / "q.safetensors"
    else:
        path = _folder(tmp_path / "m", tensors, qconfig)
    found, skipped = netinit.find_layers(load_checkpoint(path))
    assert [la.name for la in found] == ["fc.weight"]
    assert {s.name: s.reason for s in skipped}["l.qweight"] == reason


def _gptq_folder(tmp_path, **change):
    _, t, _, _ = _gptq(np.random.default_rng(4), 16, 64, 4, 32)
    t.update(change)
    return _folder(tmp_path / "m", {f"model.layers.0.mlp.gate_proj.{k}": v for k, v in t.items()},
                   {"quant_method": "gptq", "bits": 4, "group_size": 32})


@pytest.mark.parametrize("change, match", [
    ({"scales": np.ones((3, 16), np.float16)}, r"'model\.layers\.0\.mlp\.gate_proj\.scales' of shape \(3, 16\) does not fit "
     r"GPTQ weight 'model\.layers\.0\.mlp\.gate_proj\.qweight' of shape \(8, 16\) \(expected \(2, 16\)"),
    ({"qzeros": np.zeros((2, 3), np.int32)}, r"'model\.layers\.0\.mlp\.gate_proj\.qzeros' of shape \(2, 3\) does not fit "
     r"GPTQ weight 'model\.layers\.0\.mlp\.gate_proj\.qweight'"),
    ({"g_idx": np.zeros(60, np.int32)}, r"'model\.layers\.0\.mlp\.gate_proj\.g_idx' of shape \(60,\) does not fit"),
    ({"qweight": np.zeros((7, 16), np.int32)}, r"'model\.layers\.0\.mlp\.gate_proj\.g_idx' of shape \(64,\) does not fit GPTQ "
     r"weight 'model\.layers\.0\.mlp\.gate_proj\.qweight' of shape \(7, 16\) \(expected \(56,\)"),
])
def test_a_companion_that_does_not_fit_is_one_line_naming_the_file_and_both(tmp_path, change, match):
    path = _gptq_folder(tmp_path, **change)
    with pytest.raises(ShapeError, match=rf"^{re.escape(str(tmp_path / 'm'))}: {match}") as info:
        netinit.find_layers(load_checkpoint(path))
    assert "\n" not in str(info.value)


def test_a_group_index_out_of_range_is_one_line(tmp_path):
    path = _gptq_folder(tmp_path, g_idx=np.full(64, 5, np.int32))
    (la,), _ = netinit.find_layers(load_checkpoint(path))
    with pytest.raises(CorruptFileError, match=r"m: layer 'model\.layers\.0\.mlp\.gate_proj\.qweight': group index "
                                               r"'model\.layers\.0\.mlp\.gate_proj\.g_idx' holds 5\.\.5; valid groups are 0\.\.1"):
        la.matrix()


def test_fuzzed_shapes_give_one_line_errors_or_layers(tmp_path):
    """Random shapes of each tensor: a layer whose matrix reads, a skip, or a one-line ShapeError; no crash."""
    rng = np.random.default_rng(5)
    for i in range(40):
        shapes = {k: tuple(int(d) for d in rng.integers(1, 9, size=n)) for k, n in
                  (("qweight", 2), ("qzeros", 2), ("scales", 2), ("g_idx", 1))}
        t = {k: rng.integers(-2**31, 2**31, size=s, dtype=np.int64).astype(np.int32) for k, s in shapes.items()}
        t["scales"] = np.ones(shapes["scales"], np.float16)
        method = ["gptq", "awq"][i % 2]
        path = _folder(tmp_path / f"m{i}", {f"l.{k}": v for k, v in t.items()} | {"fc.weight": np.ones((2, 2), np.float32)},
                       {"quant_method": method, "bits": 4, "group_size": int(rng.integers(1, 9))})
        try:
            found, _ = netinit.find_layers(load_checkpoint(path))
        except ShapeError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
            continue
        for la in found:
            try:
                assert la.matrix(check_finite=False).shape == la.matrix_shape
            except CorruptFileError as exc:  # a g_idx naming groups that do not exist
                assert "\n" not in str(exc)


def test_rewiring_a_gptq_folder_is_refused_in_one_line(tmp_path, capsys):
    path = _gptq_folder(tmp_path)
    with pytest.raises(DtypeError, match=r"layer 'model\.layers\.0\.mlp\.gate_proj\.qweight' is quantised "
                                         r"\(GPTQ int4 group 32\); rewire the full-precision checkpoint"):
        netinit.rewire_checkpoint(path, tmp_path / "out")
    assert main(["rewire", str(path), "-o", str(tmp_path / "out2"), "--seed", "0"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "quantised (GPTQ int4 group 32); rewire the full-precision" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_analyze_reports_the_scheme(tmp_path):
    path = _gptq_folder(tmp_path)
    table = netinit.analyze(path).layers
    assert table[["layer", "quantization", "dtype"]].values.tolist() == [
        ["model.layers.0.mlp.gate_proj.qweight", "GPTQ int4 group 32", "int4"]]


def test_fuzzed_settings_files_give_layers_skips_or_one_line_errors(tmp_path):
    """Seeded random values of every key a GPTQ/AWQ settings file may hold: a layer whose matrix
    reads, a skip, or a one-line netinit error; never another exception."""
    import random

    from netinit.errors import NetinitError

    values = [None, True, False, 0, -1, 1, 3, 4, 8, 32, 128, 10**12, 1.5, "4", "gptq", "gptq_v2", "marlin",
              "GEMM", "gemv", [], {}, [4], ""]
    keys = ["bits", "w_bit", "group_size", "q_group_size", "desc_act", "sym", "checkpoint_format", "format",
            "quant_method", "version", "zero_point"]
    draw = random.Random(11)
    outcomes = set()
    for i in range(40):
        rng = np.random.default_rng(i)
        gptq = i % 2 == 1
        t = (_gptq(rng, 16, 64, 4, 32) if gptq else _awq(rng, 16, 64, 32))[1]
        settings = {k: draw.choice(values) for k in draw.sample(keys, draw.randint(0, 6))}
        path = _side_folder(tmp_path / f"m{i}", {f"model.layers.0.mlp.up_proj.{k}": v for k, v in t.items()}
                            | {"lm_head.weight": np.ones((4, 16), np.float32)},
                            "quantize_config.json" if gptq else "quant_config.json", settings)
        try:
            found, skipped = netinit.find_layers(load_checkpoint(path))
        except NetinitError as exc:
            assert "\n" not in str(exc)
            outcomes.add("error")
            continue
        for la in found:
            assert la.matrix().shape == la.matrix_shape
        outcomes.add("read" if len(found) > 1 else "skipped")
    assert outcomes >= {"read", "skipped", "error"}  # the draws reach every outcome
