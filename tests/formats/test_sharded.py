from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from netinit.errors import CorruptFileError, FormatError, OutputError, ShapeError
from netinit.formats import detect_format, load_checkpoint, save_checkpoint
from netinit.formats.sharded import ShardedCheckpoint


def _write_sharded(folder, shards: list[dict[str, torch.Tensor]], stem="model", metadata=None):
    folder.mkdir(exist_ok=True)
    n = len(shards)
    weight_map = {}
    for i, tensors in enumerate(shards):
        fname = f"{stem}-{i + 1:05d}-of-{n:05d}.safetensors"
        save_file(tensors, str(folder / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in tensors})
    index = {"metadata": metadata or {"total_size": 123}, "weight_map": dict(sorted(weight_map.items()))}
    p = folder / f"{stem}.safetensors.index.json"
    p.write_text(json.dumps(index, indent=2))
    return p


@pytest.fixture
def sharded(tmp_path):
    g = torch.Generator().manual_seed(0)
    shards = [
        {"emb.weight": torch.randn(10, 4, generator=g), "l0.weight": torch.randn(6, 4, generator=g),
         "l0.bias": torch.randn(6, generator=g)},
        {"l1.weight": torch.randn(3, 6, generator=g).to(torch.bfloat16), "l1.bias": torch.zeros(3)},
        {"head.weight": torch.randn(2, 3, generator=g).to(torch.float16), "steps": torch.tensor([5])},
    ]
    return _write_sharded(tmp_path / "ckpt", shards), {k: v for s in shards for k, v in s.items()}


def test_index_or_folder(sharded):
    index, tensors = sharded
    for source in (index, index.parent):
        assert detect_format(source).name == "sharded"
        ckpt = load_checkpoint(source)
        assert ckpt.path == index and ckpt.format == "sharded"
        assert ckpt.names() == sorted(tensors) and ckpt.metadata == {"total_size": "123"}
        for name, t in tensors.items():
            assert ckpt.info(name).shape == tuple(t.shape)
            want = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
            np.testing.assert_array_equal(ckpt.load(name), want)


def test_reading_one_tensor_opens_only_its_shard(sharded):
    index, _ = sharded
    ckpt = load_checkpoint(index)
    assert isinstance(ckpt, ShardedCheckpoint)
    assert len(ckpt) == 7 and ckpt._open == {}
    ckpt.load("l1.weight")
    assert list(ckpt._open) == ["model-00002-of-00003.safetensors"]


def test_rewrite_to_a_new_index(sharded, tmp_path):
    index, tensors = sharded
    ckpt = load_checkpoint(index)
    new = {"l1.weight": -ckpt.load("l1.weight"), "head.weight": np.ones((2, 3))}
    out = save_checkpoint(ckpt, tmp_path / "rewired.safetensors.index.json", new)
    written = json.loads(out.read_text())
    assert written["metadata"] == {"total_size": 123}
    assert set(written["weight_map"].values()) == {f"rewired-0000{i}-of-00003.safetensors" for i in (1, 2, 3)}
    again = load_checkpoint(out)
    for name, t in tensors.items():
        if name not in new:
            assert torch.equal(load_file(str(out.parent / written["weight_map"][name]))[name], t)
    reread = load_file(str(tmp_path / "rewired-00002-of-00003.safetensors"))
    assert reread["l1.weight"].dtype == torch.bfloat16 and torch.equal(reread["l1.weight"], -tensors["l1.weight"])
    np.testing.assert_array_equal(again.load("head.weight"), np.ones((2, 3), dtype=np.float16))
    # untouched shard: byte-identical copy (header and metadata included)
    assert (tmp_path / "rewired-00001-of-00003.safetensors").read_bytes() == \
        (index.parent / "model-00001-of-00003.safetensors").read_bytes()


def test_rewrite_into_a_folder_keeps_names(sharded, tmp_path):
    index, tensors = sharded
    out = save_checkpoint(load_checkpoint(index.parent), tmp_path / "out", {})
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in index.parent.iterdir())
    for p in index.parent.iterdir():
        assert (out / p.name).read_bytes() == p.read_bytes() or p.suffix == ".json"
    assert json.loads((out / index.name).read_text()) == json.loads(index.read_text())


def test_refuses_to_write_over_input_shards(sharded):
    index, _ = sharded
    ckpt = load_checkpoint(index)
    before = {p.name: p.read_bytes() for p in index.parent.iterdir()}
    with pytest.raises(OutputError, match="is the input file"):
        save_checkpoint(ckpt, index.parent, {})
    with pytest.raises(OutputError, match="is the input file"):  # the index itself
        save_checkpoint(ckpt, index, {})
    assert {p.name: p.read_bytes() for p in index.parent.iterdir()} == before


def test_bad_replacement_writes_nothing(sharded, tmp_path):
    index, _ = sharded
    with pytest.raises(ShapeError, match=r"'head\.weight' replacement has shape \(3, 2\), stored \(2, 3\)"):
        save_checkpoint(load_checkpoint(index), tmp_path / "x.safetensors.index.json",
                        {"l0.weight": np.zeros((6, 4)), "head.weight": np.zeros((3, 2))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_missing_shard(sharded):
    index, _ = sharded
    (index.parent / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(CorruptFileError, match=r"index\.json: shard 'model-00002-of-00003\.safetensors' "
                                               r"named by the index is missing"):
        load_checkpoint(index)


def test_index_naming_a_tensor_its_shard_lacks(sharded):
    index, _ = sharded
    data = json.loads(index.read_text())
    data["weight_map"]["ghost.weight"] = "model-00001-of-00003.safetensors"
    index.write_text(json.dumps(data))
    ckpt = load_checkpoint(index)
    with pytest.raises(CorruptFileError, match=r"puts 'ghost\.weight' in shard 'model-00001-of-00003\.safetensors', "
                                               r"which does not hold it"):
        ckpt.info("ghost.weight")


@pytest.mark.parametrize("text,msg", [
    ('{"weight_map": {"a": "x.safetensors"', "malformed shard index JSON"),
    ('{"metadata": {}}', "no \"weight_map\" object"),
    ('{"weight_map": {"a": 3}}', "tensor 'a' maps to 3"),
    ('{"weight_map": {"a": "../x.safetensors"}}', "outside the index's folder"),
])
def test_malformed_index(tmp_path, text, msg):
    p = tmp_path / "m.safetensors.index.json"
    p.write_text(text)
    with pytest.raises(CorruptFileError, match=rf"m\.safetensors\.index\.json: .*{msg}"):
        load_checkpoint(p)


def test_shard_of_unknown_kind_is_refused(tmp_path):  # sharded .bin: tests/formats/test_sharded_torch.py
    p = tmp_path / "model.safetensors.index.json"
    p.write_text('{"weight_map": {"a": "model-00001-of-00001.npz"}}')
    with pytest.raises(FormatError, match=r"shard 'model-00001-of-00001\.npz' is neither a safetensors nor a "
                                          r"PyTorch file"):
        load_checkpoint(p)


def test_folder_with_several_indexes(sharded):
    index, _ = sharded
    (index.parent / "other.safetensors.index.json").write_text(index.read_text())
    with pytest.raises(FormatError, match="holds several shard indexes"):
        load_checkpoint(index.parent)


def test_gpt2_conv1d_across_shards(tmp_path, rng):
    w = rng.normal(size=(4, 12)).astype(np.float32)  # Conv1D (in=4, out=12), bias in another shard
    index = _write_sharded(tmp_path / "g", [{"h.0.attn.c_attn.weight": torch.from_numpy(w)},
                                            {"h.0.attn.c_attn.bias": torch.zeros(12)}])
    ckpt = load_checkpoint(index)
    assert ckpt.info("h.0.attn.c_attn.weight").shape == (12, 4)
    np.testing.assert_array_equal(ckpt.load("h.0.attn.c_attn.weight"), w.T)
    new = rng.normal(size=(12, 4)).astype(np.float32)
    out = save_checkpoint(ckpt, tmp_path / "n.safetensors.index.json", {"h.0.attn.c_attn.weight": new})
    stored = load_file(str(tmp_path / "n-00001-of-00002.safetensors"))["h.0.attn.c_attn.weight"]
    np.testing.assert_array_equal(stored.numpy(), new.T)
    assert load_checkpoint(out).converted == {"h.0.attn.c_attn.weight": "in_out (GPT-2 Conv1D)"}


@pytest.mark.parametrize("name", ["foo.json", "model.bin.index.json", "model.index.json", ".safetensors.index.json",
                                  "model.safetensors.index.JSON"])
def test_index_name_must_end_with_the_safetensors_index_suffix(sharded, tmp_path, name):
    index, _ = sharded
    with pytest.raises(OutputError, match=rf"{re.escape(name)}: the index of a sharded safetensors checkpoint "
                                          r"must be named NAME\.safetensors\.index\.json"):
        save_checkpoint(load_checkpoint(index), tmp_path / name, {"l0.weight": np.zeros((6, 4))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # nothing written


def test_index_output_is_found_by_its_folder(sharded, tmp_path):
    index, tensors = sharded
    (tmp_path / "out").mkdir()
    out = save_checkpoint(load_checkpoint(index), tmp_path / "out" / "new.safetensors.index.json", {})
    again = load_checkpoint(tmp_path / "out")
    assert again.path == out and sorted(again.names()) == sorted(tensors)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["new-00001-of-00003.safetensors", "new-00002-of-00003.safetensors", "new-00003-of-00003.safetensors",
         "new.safetensors.index.json"]
