"""Sharded PyTorch checkpoints: ``pytorch_model.bin.index.json`` beside ``torch.save`` shards."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from netinit.cli import main
from netinit.errors import CorruptFileError, FormatError, OutputError, ShapeError, UnsafeCheckpointError
from netinit.formats import detect_format, load_checkpoint, save_checkpoint
from netinit.formats.sharded import ShardedCheckpoint

SHARD = "pytorch_model-{:05d}-of-{:05d}.bin"


def _write_bin_sharded(folder, shards: list[dict[str, torch.Tensor]], stem="pytorch_model", metadata=None,
                       extra: dict | None = None, legacy=False):
    """Shards as ``transformers`` writes them; ``extra`` tensors are stored but not in the index."""
    folder.mkdir(exist_ok=True)
    n = len(shards)
    weight_map = {}
    for i, tensors in enumerate(shards):
        fname = f"{stem}-{i + 1:05d}-of-{n:05d}.bin"
        stored = dict(tensors, **(extra or {}).get(i, {}))
        torch.save(stored, folder / fname, _use_new_zipfile_serialization=not legacy)
        weight_map.update({k: fname for k in tensors})
    index = {"metadata": metadata or {"total_size": 123}, "weight_map": dict(sorted(weight_map.items()))}
    p = folder / f"{stem}.bin.index.json"
    p.write_text(json.dumps(index, indent=2))
    return p


def _shards(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        {"emb.weight": torch.randn(10, 4, generator=g), "l0.weight": torch.randn(6, 4, generator=g),
         "l0.bias": torch.randn(6, generator=g)},
        {"l1.weight": torch.randn(3, 6, generator=g).to(torch.bfloat16), "l1.bias": torch.zeros(3)},
        {"head.weight": torch.randn(2, 3, generator=g).to(torch.float16), "steps": torch.tensor([5])},
    ]


@pytest.fixture
def sharded(tmp_path):
    shards = _shards()
    index = _write_bin_sharded(tmp_path / "ckpt", shards, extra={1: {"unlisted": torch.arange(4)}})
    return index, {k: v for s in shards for k, v in s.items()}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


def _load_shard(path) -> dict:
    return torch.load(path, weights_only=True)


def test_index_or_folder(sharded):
    index, tensors = sharded
    for source in (index, index.parent):
        assert detect_format(source).name == "sharded"
        ckpt = load_checkpoint(source)
        assert isinstance(ckpt, ShardedCheckpoint) and ckpt.kind.name == "torch"
        assert ckpt.path == index and ckpt.format == "sharded"
        assert ckpt.names() == sorted(tensors) and ckpt.metadata == {"total_size": "123"}
        for name, t in tensors.items():
            assert ckpt.info(name).shape == tuple(t.shape)
            assert ckpt.info(name).dtype == str(t.dtype).removeprefix("torch.")
            np.testing.assert_array_equal(ckpt.load(name), _np(t))


def test_shards_open_lazily_one_at_a_time(sharded):
    index, _ = sharded
    ckpt = load_checkpoint(index)
    assert len(ckpt) == 7 and ckpt._open == {}
    ckpt.load("l1.weight")
    assert list(ckpt._open) == ["pytorch_model-00002-of-00003.bin"]
    ckpt.load("emb.weight")  # opening another shard closes the first
    assert list(ckpt._open) == ["pytorch_model-00001-of-00003.bin"]
    assert ckpt.info("l1.weight").shape == (3, 6)  # recorded when its shard was open: not reopened
    assert list(ckpt._open) == ["pytorch_model-00001-of-00003.bin"]
    assert "unlisted" not in ckpt.names()


def test_round_trip_with_replacements(sharded, tmp_path):
    index, tensors = sharded
    ckpt = load_checkpoint(index)
    new = {"l1.weight": -ckpt.load("l1.weight"), "head.weight": np.ones((2, 3)), "l0.weight": np.full((6, 4), 0.5)}
    out = save_checkpoint(ckpt, tmp_path / "rewired.bin.index.json", new)
    written = json.loads(out.read_text())
    assert written["metadata"] == {"total_size": 123}
    assert set(written["weight_map"]) == set(tensors)
    assert set(written["weight_map"].values()) == {f"rewired-0000{i}-of-00003.bin" for i in (1, 2, 3)}
    again = load_checkpoint(out)
    assert again.kind.name == "torch" and again.names() == ckpt.names()
    for name, t in tensors.items():
        stored = _load_shard(out.parent / written["weight_map"][name])[name]
        assert stored.dtype == t.dtype and stored.shape == t.shape
        if name not in new:
            assert torch.equal(stored, t)  # bit-identical
            np.testing.assert_array_equal(again.load(name), _np(t))
    shard2 = _load_shard(tmp_path / "rewired-00002-of-00003.bin")
    assert torch.equal(shard2["l1.weight"], -tensors["l1.weight"])
    assert torch.equal(shard2["unlisted"], torch.arange(4))  # a tensor the index does not name is kept
    np.testing.assert_array_equal(again.load("head.weight"), np.ones((2, 3), dtype=np.float16))
    np.testing.assert_array_equal(again.load("l0.weight"), np.full((6, 4), 0.5, dtype=np.float32))


def test_rewrite_into_a_folder_keeps_names(sharded, tmp_path):
    index, tensors = sharded
    out = save_checkpoint(load_checkpoint(index.parent), tmp_path / "out", {"l0.weight": np.zeros((6, 4))})
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in index.parent.iterdir())
    assert json.loads((out / index.name).read_text()) == json.loads(index.read_text())
    again = load_checkpoint(out)
    assert again.path == out / index.name
    for name, t in tensors.items():
        want = np.zeros((6, 4), dtype=np.float32) if name == "l0.weight" else _np(t)
        np.testing.assert_array_equal(again.load(name), want)


def test_legacy_shards_are_written_legacy(tmp_path):
    index = _write_bin_sharded(tmp_path / "old", _shards(), legacy=True)
    ckpt = load_checkpoint(index)
    out = save_checkpoint(ckpt, tmp_path / "new", {"l1.weight": np.zeros((3, 6))})
    shard = out / "pytorch_model-00002-of-00003.bin"
    assert shard.read_bytes()[:1] == b"\x80"  # a pickle, not a zip archive
    np.testing.assert_array_equal(load_checkpoint(out).load("l1.weight"), np.zeros((3, 6), dtype=np.float32))


def test_names_are_taken_as_stored(tmp_path):
    # every name of a shard starting with module. (a DDP model saved unwrapped): the index names them so
    g = torch.Generator().manual_seed(1)
    shards = [{"module.a.weight": torch.randn(3, 2, generator=g)}, {"module.b.weight": torch.randn(2, 3, generator=g),
                                                                   "lr_scale": torch.ones(1)}]
    ckpt = load_checkpoint(_write_bin_sharded(tmp_path / "m", shards))
    assert ckpt.names() == ["lr_scale", "module.a.weight", "module.b.weight"]
    np.testing.assert_array_equal(ckpt.load("module.a.weight"), shards[0]["module.a.weight"].numpy())
    np.testing.assert_array_equal(ckpt.load("lr_scale"), np.ones(1, dtype=np.float32))


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
        save_checkpoint(load_checkpoint(index), tmp_path / "x.bin.index.json",
                        {"l0.weight": np.zeros((6, 4)), "head.weight": np.zeros((3, 2))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_error_while_writing_removes_written_shards(sharded, tmp_path):
    index, _ = sharded
    ckpt = load_checkpoint(index)
    (index.parent / "pytorch_model-00003-of-00003.bin").write_bytes(b"garbage")  # fails when its turn comes
    with pytest.raises(CorruptFileError, match=r"pytorch_model-00003-of-00003\.bin: not a PyTorch checkpoint"):
        save_checkpoint(ckpt, tmp_path / "y.bin.index.json", {"l0.weight": np.zeros((6, 4))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_missing_shard(sharded):
    index, _ = sharded
    (index.parent / "pytorch_model-00002-of-00003.bin").unlink()
    with pytest.raises(CorruptFileError, match=r"pytorch_model\.bin\.index\.json: shard "
                                               r"'pytorch_model-00002-of-00003\.bin' named by the index is missing"):
        load_checkpoint(index)


def test_shard_that_is_not_a_torch_file(sharded):
    index, _ = sharded
    shard = index.parent / "pytorch_model-00002-of-00003.bin"
    save_file({"l1.weight": torch.zeros(3, 6), "l1.bias": torch.zeros(3)}, str(shard))  # safetensors bytes
    ckpt = load_checkpoint(index)
    ckpt.load("emb.weight")  # the other shards still read
    with pytest.raises(CorruptFileError, match=r"pytorch_model-00002-of-00003\.bin: not a PyTorch checkpoint "
                                               r"\(its bytes are a safetensors file\)"):
        ckpt.info("l1.weight")
    shard.write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(CorruptFileError, match=r"pytorch_model-00002-of-00003\.bin: not a PyTorch checkpoint "
                                               r"\(neither a zip archive nor a pickle\)"):
        ckpt.load("l1.bias")


class _Payload:  # a class torch.load(weights_only=True) refuses to build
    pass


def test_shard_holding_pickled_code_is_refused(sharded):
    index, _ = sharded
    shard = index.parent / "pytorch_model-00001-of-00003.bin"
    torch.save({"emb.weight": torch.zeros(10, 4), "l0.weight": torch.zeros(6, 4), "l0.bias": torch.zeros(6),
                "payload": _Payload()}, shard)
    ckpt = load_checkpoint(index)
    with pytest.raises(UnsafeCheckpointError, match=r"pytorch_model-00001-of-00003\.bin: the checkpoint holds "
                                                    r"pickled Python objects"):
        ckpt.load("l0.weight")


def test_index_naming_a_tensor_its_shard_lacks(sharded):
    index, _ = sharded
    data = json.loads(index.read_text())
    data["weight_map"]["ghost.weight"] = "pytorch_model-00001-of-00003.bin"
    index.write_text(json.dumps(data))
    ckpt = load_checkpoint(index)
    with pytest.raises(CorruptFileError, match=r"pytorch_model\.bin\.index\.json: the index puts 'ghost\.weight' "
                                               r"in shard 'pytorch_model-00001-of-00003\.bin', which does not hold it"):
        ckpt.info("ghost.weight")


@pytest.mark.parametrize("text,msg", [
    ('{"weight_map": {"a": "x.bin"', "malformed shard index JSON"),
    ('[1, 2]', "no \"weight_map\" object"),
    ('{"weight_map": {"a": null}}', "tensor 'a' maps to None"),
    ('{"weight_map": {"a": "/tmp/x.bin"}}', "outside the index's folder"),
    ('{"weight_map": {}, "metadata": 3}', "\"metadata\" is not an object"),
])
def test_malformed_index(tmp_path, text, msg):
    p = tmp_path / "pytorch_model.bin.index.json"
    p.write_text(text)
    with pytest.raises(CorruptFileError, match=rf"pytorch_model\.bin\.index\.json: .*{msg}"):
        load_checkpoint(p)


def test_shards_of_unknown_or_mixed_kinds(tmp_path):
    p = tmp_path / "pytorch_model.bin.index.json"
    p.write_text('{"weight_map": {"a": "model-00001-of-00001.h5"}}')
    with pytest.raises(FormatError, match=r"shard 'model-00001-of-00001\.h5' is neither a safetensors nor a "
                                          r"PyTorch file"):
        load_checkpoint(p)
    p.write_text('{"weight_map": {"a": "x.safetensors", "b": "y.bin"}}')
    with pytest.raises(FormatError, match=r"mixes safetensors and PyTorch shards \('x\.safetensors', 'y\.bin'\)"):
        load_checkpoint(p)


def test_folder_with_both_kinds_of_index(sharded):
    index, _ = sharded
    other = index.parent / "model.safetensors.index.json"
    other.write_text('{"weight_map": {}}')
    with pytest.raises(FormatError, match=r"holds a sharded safetensors index \(model\.safetensors\.index\.json\) "
                                          r"and a sharded PyTorch index \(pytorch_model\.bin\.index\.json\); "
                                          r"pass the index file"):
        load_checkpoint(index.parent)
    assert load_checkpoint(index).kind.name == "torch"  # the index itself still reads


def test_folder_with_several_bin_indexes_or_none(sharded, tmp_path):
    index, _ = sharded
    (index.parent / "other.bin.index.json").write_text(index.read_text())
    with pytest.raises(FormatError, match="holds several shard indexes"):
        load_checkpoint(index.parent)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FormatError, match=r"empty: no shard index in the folder \(\*\.safetensors\.index\.json "
                                          r"or \*\.bin\.index\.json\)"):
        ShardedCheckpoint(empty)


def test_gpt2_conv1d_across_shards(tmp_path, rng):
    w = rng.normal(size=(4, 12)).astype(np.float32)  # Conv1D (in=4, out=12), bias in another shard
    index = _write_bin_sharded(tmp_path / "g", [{"h.0.attn.c_attn.weight": torch.from_numpy(w)},
                                                {"h.0.attn.c_attn.bias": torch.zeros(12)}])
    ckpt = load_checkpoint(index)
    assert ckpt.info("h.0.attn.c_attn.weight").shape == (12, 4)
    np.testing.assert_array_equal(ckpt.load("h.0.attn.c_attn.weight"), w.T)
    new = rng.normal(size=(12, 4)).astype(np.float32)
    out = save_checkpoint(ckpt, tmp_path / "n.bin.index.json", {"h.0.attn.c_attn.weight": new})
    stored = _load_shard(tmp_path / "n-00001-of-00002.bin")["h.0.attn.c_attn.weight"]
    np.testing.assert_array_equal(stored.numpy(), new.T)
    assert load_checkpoint(out).converted == {"h.0.attn.c_attn.weight": "in_out (GPT-2 Conv1D)"}


def _mlp_shards(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        {"fc1.weight": torch.randn(16, 12, generator=g), "fc1.bias": torch.randn(16, generator=g)},
        {"fc2.weight": torch.randn(8, 16, generator=g).to(torch.bfloat16), "fc2.bias": torch.randn(8, generator=g)},
        {"fc3.weight": torch.randn(4, 8, generator=g).to(torch.float16), "fc3.bias": torch.randn(4, generator=g)},
    ]


@pytest.mark.parametrize("target", ["folder", "index"])
def test_cli_rewire_sharded_bin(tmp_path, capsys, target):
    shards = _mlp_shards()
    index = _write_bin_sharded(tmp_path / "in", shards)
    tensors = {k: v for s in shards for k, v in s.items()}
    out = tmp_path / "out" if target == "folder" else tmp_path / "rewired.bin.index.json"
    report = tmp_path / "report.csv"
    assert main(["rewire", str(index.parent if target == "folder" else index), "-o", str(out), "--seed", "0",
                 "--report", str(report), "-q"]) == 0
    out_index = out / "pytorch_model.bin.index.json" if target == "folder" else out
    ckpt = load_checkpoint(out_index if target == "index" else out)
    assert ckpt.kind.name == "torch" and sorted(ckpt.names()) == sorted(tensors)
    weight_map = json.loads(out_index.read_text())["weight_map"]
    rewired = [line.split(",")[0] for line in report.read_text().splitlines()[1:]]
    assert rewired == ["fc1.weight", "fc2.weight", "fc3.weight"]
    for name, t in tensors.items():
        got = _load_shard(out_index.parent / weight_map[name])[name]
        assert got.dtype == t.dtype and got.shape == t.shape
        if name in rewired:
            assert not torch.equal(got, t)
            np.testing.assert_array_equal(np.sort(_np(got).ravel()), np.sort(_np(t).ravel()))  # same multiset
        else:
            assert torch.equal(got, t)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", ["foo.json", "model.safetensors.index.json", "pytorch_model.index.json",
                                  ".bin.index.json"])
def test_index_name_must_end_with_the_bin_index_suffix(sharded, tmp_path, name):
    index, _ = sharded
    with pytest.raises(OutputError, match=rf"{re.escape(name)}: the index of a sharded PyTorch checkpoint "
                                          r"must be named NAME\.bin\.index\.json"):
        save_checkpoint(load_checkpoint(index), tmp_path / name, {"l0.weight": np.zeros((6, 4))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # nothing written


@pytest.mark.parametrize("name", ["model.safetensors.index.json", "foo.json"])
def test_rewire_refuses_a_wrong_index_name_before_rewiring(sharded, tmp_path, monkeypatch, capsys, name):
    from netinit.rewire import checkpoint as rewire_mod

    index, _ = sharded
    out = tmp_path / "out"
    out.mkdir()

    def no_rewiring(*args, **kwargs):
        raise AssertionError("layers rewired before the output name was checked")

    monkeypatch.setattr(rewire_mod, "find_layers", no_rewiring)
    with pytest.raises(OutputError, match=r"must be named NAME\.bin\.index\.json"):
        rewire_mod.rewire_checkpoint(index, out / name)
    assert main(["rewire", str(index.parent), "-o", str(out / name), "-q"]) != 0
    assert "must be named NAME.bin.index.json" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_index_output_is_found_by_its_folder(sharded, tmp_path):
    index, tensors = sharded
    (tmp_path / "out").mkdir()
    out = save_checkpoint(load_checkpoint(index), tmp_path / "out" / "model.bin.index.json", {})
    again = load_checkpoint(tmp_path / "out")
    assert again.path == out and again.kind.name == "torch" and sorted(again.names()) == sorted(tensors)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["model-00001-of-00003.bin", "model-00002-of-00003.bin", "model-00003-of-00003.bin", "model.bin.index.json"]
