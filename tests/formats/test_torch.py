from __future__ import annotations

import collections
import os

import numpy as np
import pytest
import torch

from netinit.errors import CorruptFileError, FormatError, UnsafeCheckpointError
from netinit.formats import load_checkpoint, save_checkpoint


class Custom:  # a class a weights-only load must refuse
    def __init__(self) -> None:
        self.x = 1


def _save(obj, path, **kw):
    torch.save(obj, path, **kw)
    return path


def test_flat_state_dict(tmp_path, state_dict):
    p = _save(state_dict, tmp_path / "m.pt")
    ckpt = load_checkpoint(p)
    assert ckpt.format == "torch" and ckpt.container is None
    assert ckpt.names() == list(state_dict)
    for name, t in state_dict.items():
        np.testing.assert_array_equal(ckpt.load(name), t.numpy())
        assert ckpt.info(name).shape == tuple(t.shape)
    assert ckpt.info("bn.num_batches_tracked").dtype == "int64"


def test_legacy_serialisation(tmp_path, state_dict):
    p = _save(state_dict, tmp_path / "m.pth", _use_new_zipfile_serialization=False)
    ckpt = load_checkpoint(p)
    np.testing.assert_array_equal(ckpt.load("fc1.weight"), state_dict["fc1.weight"].numpy())
    out = save_checkpoint(ckpt, tmp_path / "out.pth", {"fc1.weight": np.zeros((16, 12))})
    again = torch.load(out, weights_only=True)
    assert torch.equal(again["fc1.weight"], torch.zeros(16, 12))
    assert torch.equal(again["fc2.weight"], state_dict["fc2.weight"])


def test_whole_model_pickle_is_refused(tmp_path):
    p = _save(torch.nn.Linear(3, 2), tmp_path / "model.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"model\.pt: .*pickled Python objects.*state_dict\(\)"):
        load_checkpoint(p)


def test_custom_class_is_refused_and_not_run(tmp_path):
    p = _save({"w": torch.ones(2, 2), "extra": Custom()}, tmp_path / "c.pt")
    with pytest.raises(UnsafeCheckpointError, match="Custom"):
        load_checkpoint(p)


def test_torchscript_archive_goes_to_its_own_reader(tmp_path):
    p = tmp_path / "s.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(p))
    assert load_checkpoint(p).format == "torchscript"
    with pytest.raises(UnsafeCheckpointError, match=r"s\.pt: is a TorchScript archive.*format 'torchscript'"):
        load_checkpoint(p, format="torch")


@pytest.mark.parametrize("cut", [10, 300, -50])
def test_truncated(tmp_path, state_dict, cut):
    p = _save(state_dict, tmp_path / "m.pt")
    data = p.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[:cut])
    with pytest.raises(CorruptFileError, match=r"bad\.pt: "):
        load_checkpoint(bad)


def test_lightning_container_and_optimizer_ignored(tmp_path, state_dict):
    obj = {"epoch": 3, "state_dict": state_dict,
           "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(16, 12)}}}],
           "hyper_parameters": {"lr": 0.1}}
    p = _save(obj, tmp_path / "l.ckpt")
    ckpt = load_checkpoint(p)
    assert ckpt.container == "state_dict"
    assert ckpt.names() == list(state_dict)
    out = save_checkpoint(ckpt, tmp_path / "l2.ckpt", {"fc2.weight": -state_dict["fc2.weight"].numpy()})
    again = torch.load(out, weights_only=True)
    assert again["epoch"] == 3 and again["hyper_parameters"] == {"lr": 0.1}
    assert torch.equal(again["optimizer_states"][0]["state"][0]["exp_avg"], torch.ones(16, 12))
    assert torch.equal(again["state_dict"]["fc2.weight"], -state_dict["fc2.weight"])
    assert torch.equal(again["state_dict"]["fc1.weight"], state_dict["fc1.weight"])
    # the loaded object was not mutated
    assert torch.equal(torch.load(p, weights_only=True)["state_dict"]["fc2.weight"], state_dict["fc2.weight"])


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_wrapper_prefixes_removed(tmp_path, state_dict, prefix):
    p = _save({prefix + k: v for k, v in state_dict.items()}, tmp_path / "m.pt")
    ckpt = load_checkpoint(p)
    assert ckpt.names() == list(state_dict)
    assert ckpt.metadata["prefix_removed"] == prefix
    out = save_checkpoint(ckpt, tmp_path / "o.pt", {"fc1.weight": np.ones((16, 12), dtype=np.float32)})
    assert torch.equal(torch.load(out, weights_only=True)[prefix + "fc1.weight"], torch.ones(16, 12))


def test_several_weight_sets_need_a_key(tmp_path, state_dict):
    p = _save({"model": state_dict, "ema": {k: v * 2 for k, v in state_dict.items()}}, tmp_path / "m.pt")
    with pytest.raises(FormatError, match=r"several weight sets \(model, ema\).*--key"):
        load_checkpoint(p)
    ema = load_checkpoint(p, key="ema")
    np.testing.assert_array_equal(ema.load("fc1.weight"), 2 * state_dict["fc1.weight"].numpy())
    with pytest.raises(FormatError, match="no key 'nope'"):
        load_checkpoint(p, key="nope")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_half_precision_round_trip_keeps_dtype(tmp_path, dtype):
    g = torch.Generator().manual_seed(3)
    w = torch.randn(6, 5, generator=g).to(dtype)
    p = _save(collections.OrderedDict(w=w), tmp_path / "h.pt")
    ckpt = load_checkpoint(p)
    assert ckpt.info("w").dtype == str(dtype).split(".")[-1]
    values = ckpt.load("w")
    out = save_checkpoint(ckpt, tmp_path / "h2.pt", {"w": values[:, ::-1].copy()})
    again = torch.load(out, weights_only=True)["w"]
    assert again.dtype == dtype
    assert torch.equal(again, w.flip(1))


def test_nested_dicts_are_flattened(tmp_path):
    obj = {"encoder": {"fc": {"weight": torch.ones(3, 2)}}, "head": {"weight": torch.zeros(1, 3)}}
    ckpt = load_checkpoint(_save(obj, tmp_path / "n.pt"))
    assert ckpt.names() == ["encoder.fc.weight", "head.weight"]


def test_input_never_modified(tmp_path, state_dict):
    p = _save(state_dict, tmp_path / "m.pt")
    before = p.read_bytes()
    mtime = os.stat(p).st_mtime_ns
    save_checkpoint(load_checkpoint(p), tmp_path / "o.pt", {"fc1.weight": np.zeros((16, 12))})
    assert p.read_bytes() == before and os.stat(p).st_mtime_ns == mtime


def _read_back(path):
    """A ``torch.save`` file read with torch directly, from an open file (torch dispatches on names)."""
    with open(path, "rb") as f:
        return torch.load(f, weights_only=True)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", ["m.safetensors", "m.npz", "m.onnx", "m", "m.SAFETENSORS", "m.pt.safetensors"])
def test_misleading_suffix_is_read_as_torch(tmp_path, state_dict, name, legacy):
    """torch.load sends a path ending in .safetensors to the safetensors reader; netinit reads the bytes."""
    p = _save(state_dict, tmp_path / name, _use_new_zipfile_serialization=not legacy)
    ckpt = load_checkpoint(p)
    assert ckpt.format == "torch" and ckpt.names() == list(state_dict)
    for n, t in state_dict.items():
        np.testing.assert_array_equal(ckpt.load(n), t.numpy())
    # the writer writes a torch file under the same misleading name, and it reads back
    out = save_checkpoint(ckpt, tmp_path / f"out_{name}", {"fc1.weight": np.zeros((16, 12))})
    again = load_checkpoint(out)
    assert again.format == "torch"
    np.testing.assert_array_equal(again.load("fc1.weight"), np.zeros((16, 12), dtype=np.float32))
    np.testing.assert_array_equal(again.load("fc2.weight"), state_dict["fc2.weight"].numpy())
    raw = _read_back(out)
    assert torch.equal(raw["fc1.weight"], torch.zeros(16, 12)) and torch.equal(raw["conv.bias"], state_dict["conv.bias"])
    assert (out.read_bytes()[:2] == b"PK") != legacy  # the input's serialisation is kept


def test_misleading_suffix_still_refuses_pickled_code(tmp_path):
    p = _save({"w": torch.zeros(2), "c": Custom()}, tmp_path / "m.safetensors")
    with pytest.raises(UnsafeCheckpointError, match=r"m\.safetensors: the checkpoint holds pickled Python objects"):
        load_checkpoint(p)


def test_mmap_kept_where_the_name_does_not_mislead(tmp_path, state_dict, monkeypatch):
    calls = []
    real = torch.load

    def spy(f, *args, **kw):
        calls.append((isinstance(f, (str, os.PathLike)), kw.get("mmap"), kw.get("weights_only")))
        return real(f, *args, **kw)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(_save(state_dict, tmp_path / "m.pt"))
    assert calls == [(True, True, True)]  # the path itself, memory-mapped
    calls.clear()
    load_checkpoint(_save(state_dict, tmp_path / "m.safetensors"))
    assert calls == [(False, None, True)]  # an open file object, still weights-only
