from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from netinit.errors import CorruptFileError, ShapeError
from netinit.formats import load_checkpoint, save_checkpoint
from netinit.formats.safetensors import bf16_bits_to_float32, float32_to_bf16_bits

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int8, torch.uint8]


@pytest.fixture
def st_file(tmp_path):
    g = torch.Generator().manual_seed(7)
    tensors = {f"t_{str(d).split('.')[-1]}": (torch.randn(5, 3, generator=g) * 10).to(d) for d in DTYPES}
    tensors["scalar"] = torch.tensor(2.5)
    p = tmp_path / "m.safetensors"
    save_file(tensors, str(p), metadata={"format": "pt", "note": "hello"})
    return p, tensors


def test_reads_every_dtype_and_metadata(st_file):
    p, tensors = st_file
    ckpt = load_checkpoint(p)
    assert ckpt.format == "safetensors"
    assert ckpt.metadata == {"format": "pt", "note": "hello"}
    assert set(ckpt.names()) == set(tensors)
    for name, t in tensors.items():
        info = ckpt.info(name)
        assert info.shape == tuple(t.shape)
        assert info.dtype == str(t.dtype).split(".")[-1]
        got = ckpt.load(name)
        want = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        np.testing.assert_array_equal(got, want)


def test_round_trip_without_changes_is_byte_identical(st_file, tmp_path):
    p, _ = st_file
    out = save_checkpoint(load_checkpoint(p), tmp_path / "copy.safetensors", {})
    assert out.read_bytes() == p.read_bytes()


def test_replacement_changes_only_its_bytes(st_file, tmp_path):
    p, tensors = st_file
    ckpt = load_checkpoint(p)
    new = ckpt.load("t_bfloat16")[::-1].copy()
    out = save_checkpoint(ckpt, tmp_path / "new.safetensors", {"t_bfloat16": new})
    reread = load_file(str(out))
    assert reread["t_bfloat16"].dtype == torch.bfloat16
    np.testing.assert_array_equal(reread["t_bfloat16"].float().numpy(), new)
    for name, t in tensors.items():
        if name != "t_bfloat16":
            assert torch.equal(reread[name], t)
    a, b = p.read_bytes(), out.read_bytes()
    start, stop = ckpt.byte_range("t_bfloat16")
    assert a[:start] == b[:start] and a[stop:] == b[stop:]
    assert load_file(str(out))["t_float32"].dtype == torch.float32


def test_replacement_of_wrong_shape_is_refused(st_file, tmp_path):
    p, _ = st_file
    with pytest.raises(ShapeError, match=r"replacement has shape \(3, 5\), stored \(5, 3\)"):
        save_checkpoint(load_checkpoint(p), tmp_path / "x.safetensors", {"t_float32": np.zeros((3, 5))})
    assert not (tmp_path / "x.safetensors").exists()
    assert [f.name for f in tmp_path.iterdir()] == ["m.safetensors"]


@pytest.mark.parametrize("cut", [4, 20, -7])
def test_truncated_file(st_file, tmp_path, cut):
    p, _ = st_file
    data = p.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[:cut])
    with pytest.raises(CorruptFileError, match=r"bad\.safetensors: .*(truncated|corrupt)"):
        load_checkpoint(bad)


def test_corrupt_header_json(tmp_path):
    bad = tmp_path / "bad.safetensors"
    body = b"{not json!!"
    bad.write_bytes(struct.pack("<Q", len(body)) + body)
    with pytest.raises(CorruptFileError, match="corrupt safetensors header"):
        load_checkpoint(bad)


def test_inconsistent_offsets(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}).encode()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(CorruptFileError, match="'w' has inconsistent data offsets"):
        load_checkpoint(bad)


def test_bf16_conversion_rounds_to_nearest_even():
    x = np.array([1.0, 1.00390625, 1.01171875, -2.5, np.inf], dtype=np.float32)
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(float32_to_bf16_bits(x), want)
    np.testing.assert_array_equal(bf16_bits_to_float32(want), torch.from_numpy(x).to(torch.bfloat16).float().numpy())
