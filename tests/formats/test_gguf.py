"""GGUF reader/writer, on files made by the gguf package's own GGUFWriter."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from gguf import GGMLQuantizationType as Q  # noqa: E402

from netinit.cli import main  # noqa: E402
from netinit.errors import CorruptFileError, DtypeError, NetinitError  # noqa: E402
from netinit.formats import detect_format, limits, load_checkpoint, save_checkpoint  # noqa: E402

N_EMBD, N_FF, N_VOCAB, N_EXP = 64, 256, 32, 3


def _kquant_bytes(rng: np.random.Generator, rows: int, cols: int, qtype: Q) -> np.ndarray:
    """Random blocks of a k-quant (the gguf package cannot quantise to them) with finite scales."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    scale = (rng.uniform(0.001, 0.01, size=(rows, cols // block, 1)).astype(np.float16)).view(np.uint8)
    if qtype == Q.Q4_K:  # d, dmin, scales[12], qs[128]
        raw[..., 0:2] = scale
        raw[..., 2:4] = scale
    else:  # Q6_K: ql[128], qh[64], scales[16], d
        raw[..., -2:] = scale
    return raw.reshape(rows, cols // block * size)


def _tensors(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, Q]]:
    """A tiny llama-like tensor set: name -> (float values in canonical layout, stored type)."""
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32) * 0.1  # noqa: E731
    return {
        "token_embd.weight": (f(N_VOCAB, N_EMBD), Q.F16),
        "blk.0.attn_norm.weight": (f(N_EMBD), Q.F32),
        "blk.0.attn_q.weight": (f(N_EMBD, N_EMBD), Q.F32),
        "blk.0.attn_k.weight": (f(N_EMBD, N_EMBD), Q.BF16),
        "blk.0.ffn_gate.weight": (f(N_FF, N_EMBD), Q.Q8_0),
        "blk.0.ffn_down.weight": (f(N_EMBD, N_FF), Q.Q4_K),
        "blk.0.ffn_gate_exps.weight": (f(N_EXP, N_FF, N_EMBD), Q.F32),
        "blk.1.attn_norm.weight": (f(N_EMBD), Q.F32),
        "blk.1.attn_q.weight": (f(N_EMBD, N_EMBD), Q.Q4_0),
        "blk.1.ffn_up.weight": (f(N_FF, N_EMBD), Q.F16),
        "blk.1.ffn_down.weight": (f(N_EMBD, N_FF), Q.Q6_K),
        "output.weight": (f(N_VOCAB, N_EMBD), Q.F32),
    }


def write_gguf(path, tensors, rng=None, *, arch="llama", vocab=200):
    """Write ``tensors`` with GGUFWriter; return {name: stored bytes as numpy (what the file holds)}."""
    rng = rng or np.random.default_rng(1)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(2)
    w.add_expert_count(N_EXP)
    w.add_expert_used_count(2)
    w.add_context_length(128)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_name("tiny")
    w.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(vocab)])
    w.add_array("tokenizer.ggml.scores", [float(i) for i in range(vocab)])
    w.add_array("tokenizer.ggml.merges", ["a b"] * vocab)
    w.add_array(f"{arch}.small", [1, 2, 3])
    stored = {}
    for name, (value, qtype) in tensors.items():
        if qtype in (Q.Q4_K, Q.Q6_K):
            raw = _kquant_bytes(rng, *value.shape, qtype)
        else:
            raw = gguf.quants.quantize(value, qtype)
        if qtype in (Q.F32, Q.F16):
            w.add_tensor(name, raw)
        else:
            w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        stored[name] = raw
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return stored


@pytest.fixture
def llama(tmp_path):
    rng = np.random.default_rng(0)
    tensors = _tensors(rng)
    p = tmp_path / "tiny.gguf"
    stored = write_gguf(p, tensors, rng)
    return p, tensors, stored


@pytest.fixture
def f32_llama(tmp_path):
    rng = np.random.default_rng(3)
    tensors = {k: (v, Q.F32) for k, (v, _) in _tensors(rng).items()}
    p = tmp_path / "tiny_f32.gguf"
    write_gguf(p, tensors, rng)
    return p, tensors


def q8_0_oracle(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Q8_0 by its definition: blocks of 34 bytes, a float16 scale d then 32 int8 q; x = d * q."""
    blocks = np.ascontiguousarray(raw).reshape(-1, 34)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(shape)


# --- reading ------------------------------------------------------------------------------------


def test_detected_by_magic_and_suffix(llama, tmp_path):
    p, _, _ = llama
    assert detect_format(p).name == "gguf"
    other = tmp_path / "model.bin"
    other.write_bytes(p.read_bytes())
    assert detect_format(other).name == "gguf"


def test_names_shapes_dtypes_and_quantization(llama):
    p, tensors, _ = llama
    ckpt = load_checkpoint(p)
    assert ckpt.format == "gguf" and ckpt.names() == list(tensors)
    plain = {Q.F32: "float32", Q.F16: "float16", Q.BF16: "bfloat16"}
    for name, (value, qtype) in tensors.items():
        info = ckpt.info(name)
        assert info.shape == value.shape, name  # canonical order: ne reversed
        assert info.dtype == plain.get(qtype, "float32") and info.is_float
        assert ckpt.quantization(name) == (None if qtype in plain else qtype.name)
    assert ckpt.info("blk.0.ffn_gate_exps.weight").shape == (N_EXP, N_FF, N_EMBD)
    assert ckpt.info("blk.0.ffn_down.weight").shape == (N_EMBD, N_FF)


def test_float_values_exact(llama):
    p, tensors, _ = llama
    ckpt = load_checkpoint(p)
    for name in ("blk.0.attn_q.weight", "blk.0.ffn_gate_exps.weight", "output.weight", "blk.0.attn_norm.weight"):
        got = ckpt.load(name)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, tensors[name][0])
    got = ckpt.load("token_embd.weight")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, tensors["token_embd.weight"][0].astype(np.float16).astype(np.float32))
    bits = tensors["blk.0.attn_k.weight"][0].view(np.uint32)  # bfloat16 by rounding to nearest even
    want = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).view(np.float32)
    np.testing.assert_array_equal(ckpt.load("blk.0.attn_k.weight"), want)


def test_q8_0_against_independent_oracle(llama):
    p, tensors, stored = llama
    name = "blk.0.ffn_gate.weight"
    got = load_checkpoint(p).load(name)
    want = q8_0_oracle(stored[name], tensors[name][0].shape)
    assert got.dtype == np.float32 and got.shape == (N_FF, N_EMBD)
    np.testing.assert_array_equal(got, want)
    assert np.abs(got - tensors[name][0]).max() <= np.abs(tensors[name][0]).max() / 127  # it is the quantised value


@pytest.mark.parametrize("name", ["blk.0.ffn_down.weight", "blk.1.ffn_down.weight", "blk.1.attn_q.weight"])
def test_k_quants_and_q4_0_against_gguf_dequantize(llama, name):
    p, tensors, stored = llama
    qtype = tensors[name][1]
    got = load_checkpoint(p).load(name)
    want = gguf.quants.dequantize(stored[name], qtype)
    assert got.shape == tensors[name][0].shape == want.shape
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, want)


def test_q4_k_against_block_definition(llama):
    """Q4_K by its block layout (d, dmin, 12 packed 6-bit scales and mins, 256 4-bit values)."""
    p, _, stored = llama
    blocks = stored["blk.0.ffn_down.weight"].reshape(-1, 144)
    d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
    dmin = blocks[:, 2:4].copy().view("<f2").astype(np.float32)
    s = blocks[:, 4:16].astype(np.int32)
    sc = np.zeros((len(blocks), 8), np.int32)
    mn = np.zeros((len(blocks), 8), np.int32)
    for j in range(8):
        if j < 4:
            sc[:, j], mn[:, j] = s[:, j] & 63, s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4)
            mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    qs = blocks[:, 16:].astype(np.int32).reshape(-1, 4, 32)
    q = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(-1, 8, 32)
    want = (d[:, :, None] * sc[:, :, None] * q - dmin[:, :, None] * mn[:, :, None]).reshape(N_EMBD, N_FF)
    np.testing.assert_allclose(load_checkpoint(p).load("blk.0.ffn_down.weight"), want, rtol=1e-6, atol=1e-7)


def test_metadata(llama):
    ckpt = load_checkpoint(llama[0])
    assert ckpt.architecture == "llama"
    assert ckpt.metadata["general.architecture"] == "llama"
    assert ckpt.metadata["llama.block_count"] == "2"
    assert ckpt.metadata["llama.expert_count"] == str(N_EXP)
    assert ckpt.metadata["general.file_type_name"] == "MOSTLY_Q8_0"
    meta = ckpt.gguf_metadata
    assert meta["llama.block_count"] == 2 and meta["general.name"] == "tiny" and meta["llama.small"] == [1, 2, 3]
    assert isinstance(meta["llama.expert_used_count"], int)
    assert "tokenizer.ggml.tokens" not in meta
    assert ckpt.gguf_array_lengths == {"tokenizer.ggml.tokens": 200, "tokenizer.ggml.scores": 200,
                                       "tokenizer.ggml.merges": 200}


def test_long_arrays_are_not_parsed_item_by_item(tmp_path, monkeypatch):
    """GGUFReader would make a numpy view per array item (hundreds of bytes for a 4-byte score)."""
    p = tmp_path / "vocab.gguf"
    write_gguf(p, {"output.weight": (np.ones((4, 32), np.float32), Q.F32)}, vocab=5000)
    calls = []
    real = gguf.GGUFReader._get_field_parts
    monkeypatch.setattr(gguf.GGUFReader, "_get_field_parts", lambda self, *a: calls.append(a) or real(self, *a))
    ckpt = load_checkpoint(p)
    assert ckpt.gguf_array_lengths["tokenizer.ggml.scores"] == 5000
    assert len(calls) < 5
    np.testing.assert_array_equal(ckpt.load("output.weight"), np.ones((4, 32), np.float32))


def test_type_the_package_cannot_dequantise_is_not_a_float(tmp_path):
    p = tmp_path / "q8k.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((4, 292), np.uint8), raw_shape=(4, 292), raw_dtype=Q.Q8_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ckpt = load_checkpoint(p)
    info = ckpt.info("blk.0.ffn_up.weight")
    assert info.shape == (4, 256) and info.dtype == "gguf_q8_k" and not info.is_float
    with pytest.raises(DtypeError, match=r"quantised \(Q8_K\), which the gguf package cannot dequantise"):
        ckpt.load("blk.0.ffn_up.weight")


# --- writing ------------------------------------------------------------------------------------


def test_rewrite_without_changes_is_byte_identical(llama, tmp_path):
    p, _, _ = llama
    out = save_checkpoint(load_checkpoint(p), tmp_path / "copy.gguf", {})
    assert out.read_bytes() == p.read_bytes()


def test_rewrite_replaces_f32_f16_bf16_and_keeps_every_other_byte(llama, tmp_path):
    p, tensors, _ = llama
    ckpt = load_checkpoint(p)
    rng = np.random.default_rng(5)
    names = ["blk.0.attn_q.weight", "token_embd.weight", "blk.0.attn_k.weight", "blk.0.ffn_gate_exps.weight"]
    new = {n: (rng.standard_normal(ckpt.info(n).shape) * 0.1).astype(np.float32) for n in names}
    out = save_checkpoint(ckpt, tmp_path / "new.gguf", new)
    back = load_checkpoint(out)
    np.testing.assert_array_equal(back.load(names[0]), new[names[0]])
    np.testing.assert_array_equal(back.load(names[1]), new[names[1]].astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(back.load(names[2]), new[names[2]], rtol=2**-8)
    np.testing.assert_array_equal(back.load(names[3]), new[names[3]])
    a, b = bytearray(p.read_bytes()), bytearray(out.read_bytes())
    assert len(a) == len(b)
    for n in names:
        start, stop = ckpt.byte_range(n)
        assert a[start:stop] != b[start:stop]
        a[start:stop] = b[start:stop] = bytes(stop - start)
    assert a == b  # nothing outside the replaced ranges moved
    reader = gguf.GGUFReader(str(out))  # the package itself reads the new values
    t = {t.name: t for t in reader.tensors}[names[0]]
    np.testing.assert_array_equal(np.asarray(t.data), new[names[0]])
    for n in tensors:
        if n not in names:
            np.testing.assert_array_equal(back.load(n), ckpt.load(n))


@pytest.mark.parametrize("name, qtype", [("blk.0.ffn_gate.weight", "Q8_0"), ("blk.0.ffn_down.weight", "Q4_K")])
def test_quantised_replacement_refused_nothing_written(llama, tmp_path, name, qtype):
    p, _, _ = llama
    ckpt = load_checkpoint(p)
    msg = rf"{re.escape(name)}' is quantised \({qtype}\): rewire the full-precision checkpoint and quantise after"
    with pytest.raises(DtypeError, match=msg):
        save_checkpoint(ckpt, tmp_path / "out.gguf", {"blk.0.attn_q.weight": ckpt.load("blk.0.attn_q.weight"),
                                                      name: ckpt.load(name)})
    assert not (tmp_path / "out.gguf").exists()
    assert [x.name for x in tmp_path.iterdir()] == ["tiny.gguf"]


def test_replacement_of_wrong_shape_refused(llama, tmp_path):
    ckpt = load_checkpoint(llama[0])
    with pytest.raises(NetinitError, match=r"replacement has shape \(64, 63\), expected \(64, 64\)"):
        save_checkpoint(ckpt, tmp_path / "out.gguf", {"blk.0.attn_q.weight": np.zeros((64, 63), np.float32)})
    assert not (tmp_path / "out.gguf").exists()


# --- the command line ---------------------------------------------------------------------------


def test_cli_analyze_and_rewire_f32_file(f32_llama, tmp_path):
    p, tensors = f32_llama
    assert main(["analyze", str(p), "-o", str(tmp_path / "an"), "-q"]) == 0
    assert (tmp_path / "an").is_dir() and any((tmp_path / "an").iterdir())
    out = tmp_path / "rewired.gguf"
    assert main(["rewire", str(p), "-o", str(out), "--seed", "0", "-q"]) == 0
    before, after = load_checkpoint(p), load_checkpoint(out)
    assert after.names() == before.names() and after.gguf_metadata == before.gguf_metadata
    changed = [n for n in tensors if not np.array_equal(after.load(n), before.load(n))]
    assert changed  # some layer was rewired
    for n in changed:  # rewiring moves weights within a layer: the values are kept
        np.testing.assert_array_equal(np.sort(after.load(n), axis=None), np.sort(before.load(n), axis=None))


def test_cli_rewire_of_quantised_file_refused(llama, tmp_path, capsys):
    p, _, _ = llama
    out = tmp_path / "rewired.gguf"
    assert main(["rewire", str(p), "-o", str(out), "--seed", "0", "-q"]) != 0
    assert "rewire the full-precision checkpoint and quantise after" in capsys.readouterr().err
    assert not out.exists()


# --- damaged and hostile files ------------------------------------------------------------------


def _record(data: bytes, name: str) -> int:
    """Offset of the dimension count in the header record of tensor ``name``."""
    key = struct.pack("<Q", len(name)) + name.encode()
    return data.rindex(key) + len(key)


def _key_value(data: bytes, key: str) -> int:
    """Offset of the value type of key ``key``."""
    k = struct.pack("<Q", len(key)) + key.encode()
    return data.index(k) + len(k)


def _expect_corrupt(p, pattern):
    with pytest.raises(CorruptFileError, match=re.escape(str(p)) + r": .*" + pattern):
        with load_checkpoint(p) as ckpt:
            for n in ckpt.names():
                ckpt.load(n)


def test_truncated_anywhere_is_refused(llama, tmp_path):
    p, _, _ = llama
    data = p.read_bytes()
    end = max(load_checkpoint(p).byte_range(n)[1] for n in load_checkpoint(p).names())
    cuts = sorted(set(range(1, 700, 7)) | set(np.linspace(700, end - 1, 60).astype(int).tolist()))
    for cut in cuts:
        q = tmp_path / "cut.gguf"
        q.write_bytes(data[:cut])
        _expect_corrupt(q, r"(truncated|too short|wrong magic)")


@pytest.mark.parametrize("patch, pattern", [
    (lambda d: (0, b"GGUG"), r"wrong magic, not GGUF"),
    (lambda d: (4, struct.pack("<I", 99)), r"GGUF version 99 is not supported"),
    (lambda d: (8, struct.pack("<Q", 2**40)), r"more than max_tensors=100000"),
    (lambda d: (16, struct.pack("<Q", 2**50)), r"truncated GGUF file \(.*key-value fields"),
    (lambda d: (_record(d, "output.weight"), struct.pack("<I", 7)), r"'output.weight' has 7 dimensions, more than GGUF's 4"),
    (lambda d: (_record(d, "output.weight") + 20, struct.pack("<I", 99)), r"'output.weight' has unknown tensor type 99"),
    (lambda d: (_record(d, "output.weight") + 20, struct.pack("<I", 4)), r"'output.weight' has unknown tensor type 4"),
    (lambda d: (_record(d, "output.weight") + 24, struct.pack("<Q", 2**40)), r"truncated GGUF file \(tensor 'output.weight'"),
    (lambda d: (_record(d, "output.weight") + 24, struct.pack("<Q", 2**64 - 32)), r"truncated GGUF file \(tensor 'output.weight'"),
    (lambda d: (_record(d, "output.weight") + 24, struct.pack("<Q", 8)), r"not a multiple of the alignment 32"),
    (lambda d: (_record(d, "output.weight") + 24, struct.pack("<Q", 0)), r"share bytes"),
    (lambda d: (_record(d, "output.weight") + 4, struct.pack("<QQ", 2**20, 2**20)), r"truncated GGUF file \(tensor 'output.weight'"),
    (lambda d: (_record(d, "output.weight") + 4, struct.pack("<QQ", 2**62, 2**62)), r"too large for any array"),
    (lambda d: (_record(d, "blk.0.ffn_gate.weight") + 4, struct.pack("<Q", 33)), r"not a multiple of the Q8_0 block \(32\)"),
    (lambda d: (_record(d, "blk.0.attn_q.weight") - 19, b"blk.1"), r"'blk.1.attn_q.weight' appears twice"),
    (lambda d: (_key_value(d, "tokenizer.ggml.scores") + 8, struct.pack("<Q", 2**61)), r"truncated GGUF file \(.*tokenizer.ggml.scores"),
    (lambda d: (_key_value(d, "tokenizer.ggml.tokens") + 8, struct.pack("<Q", 2**60)), r"truncated GGUF file \(.*tokenizer.ggml.tokens"),
    (lambda d: (_key_value(d, "tokenizer.ggml.scores") + 4, struct.pack("<I", 77)), r"array of unknown value type 77"),
    (lambda d: (_key_value(d, "general.name"), struct.pack("<I", 13)), r"'general.name' has unknown value type 13"),
    (lambda d: (_key_value(d, "general.name") + 4, struct.pack("<Q", 2**63)), r"truncated GGUF file"),
    (lambda d: (_key_value(d, "general.name") - 4, b"\xff\xfe"), r"is not UTF-8"),
])
def test_damaged_header_gives_one_line(llama, tmp_path, patch, pattern):
    p, _, _ = llama
    data = bytearray(p.read_bytes())
    at, raw = patch(bytes(data))
    data[at:at + len(raw)] = raw
    q = tmp_path / "bad.gguf"
    q.write_bytes(bytes(data))
    _expect_corrupt(q, pattern)
    with pytest.raises(CorruptFileError) as info:
        load_checkpoint(q)
    assert "\n" not in str(info.value)


def test_bad_alignment_refused(tmp_path):
    p = tmp_path / "align.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_custom_alignment(64)
    w.add_tensor("output.weight", np.ones((4, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert load_checkpoint(p).alignment == 64
    data = bytearray(p.read_bytes())
    at = _key_value(bytes(data), "general.alignment") + 4
    data[at:at + 4] = struct.pack("<I", 48)
    p.write_bytes(bytes(data))
    _expect_corrupt(p, r"general.alignment 48 is not a power of two")


def test_tensor_count_bounded_by_limit(llama):
    with limits(max_tensors=5):
        _expect_corrupt(llama[0], r"declares 12 tensors, more than max_tensors=5 \(raise it with NETINIT_MAX_TENSORS=N\)")
    with limits(max_header_bytes=100):
        _expect_corrupt(llama[0], r"larger than max_header_bytes=100")


def test_random_damage_raises_only_netinit_errors(llama, damaged):
    counts = damaged(llama[0], n=45, seed=0)
    assert counts["truncate"][0] == counts["truncate"][1]


def test_header_flips_raise_only_netinit_errors(llama, tmp_path):
    p, _, _ = llama
    ckpt = load_checkpoint(p)
    header_end = ckpt.data_start
    data = p.read_bytes()
    rng = np.random.default_rng(11)
    for i in range(150):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(header_end))] = int(rng.integers(256))
        q = tmp_path / f"flip{i}.gguf"
        q.write_bytes(bytes(b))
        try:
            with load_checkpoint(q) as c:
                for n in c.names():
                    c.load(n)
        except NetinitError as exc:
            assert "\n" not in str(exc) and str(q) in str(exc)


def test_missing_package_is_one_line(llama, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "gguf" or name.startswith("gguf."):
            raise ImportError("no gguf")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    from netinit.errors import FormatError

    with pytest.raises(FormatError, match=r"needs the gguf package: pip install gguf"):
        load_checkpoint(llama[0])
