from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from netinit.errors import CorruptFileError, FormatError, OutputError, UnknownFormatError
from netinit.formats import detect_format, get_format, load_checkpoint, save_checkpoint


def test_wrong_suffix_still_reads(tmp_path, state_dict):
    st = tmp_path / "model.bin"
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(st))
    assert detect_format(st).name == "safetensors"
    pt = tmp_path / "model.safetensors"
    torch.save(state_dict, pt)
    assert detect_format(pt).name == "torch"
    nz = tmp_path / "weights.pt"
    with open(nz, "wb") as f:
        np.savez(f, w=np.ones((2, 2)))
    assert load_checkpoint(nz).format == "npz"


def test_unknown_format_names_file_and_options(tmp_path):
    p = tmp_path / "model.xyz"
    p.write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(UnknownFormatError, match=r"model\.xyz: unknown checkpoint format .*\.safetensors"):
        load_checkpoint(p)


def test_known_suffix_with_garbage_is_corrupt(tmp_path):
    p = tmp_path / "model.pt"
    p.write_bytes(b"garbage" * 20)
    with pytest.raises(CorruptFileError, match=r"model\.pt: "):
        load_checkpoint(p)


def test_empty_and_missing_files(tmp_path):
    p = tmp_path / "e.safetensors"
    p.write_bytes(b"")
    with pytest.raises(CorruptFileError, match="the file is empty"):
        load_checkpoint(p)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(UnknownFormatError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_unknown_format_name():
    valid = r"(\w+, )*npz, onnx, safetensors, sharded, torch, torchscript$"  # other formats may come first
    with pytest.raises(UnknownFormatError, match=r"unknown format 'onnx2'; valid: " + valid):
        get_format("onnx2")


def test_refuses_to_overwrite_input(tmp_path, state_dict):
    p = tmp_path / "m.pt"
    torch.save(state_dict, p)
    before = p.read_bytes()
    ckpt = load_checkpoint(p)
    with pytest.raises(OutputError, match="is the input file"):
        save_checkpoint(ckpt, p, {"fc1.weight": np.zeros((16, 12))})
    link = tmp_path / "link.pt"
    link.symlink_to(p)
    with pytest.raises(OutputError, match="is the input file"):
        save_checkpoint(ckpt, link, {})
    assert p.read_bytes() == before


def test_missing_output_folder(tmp_path, state_dict):
    p = tmp_path / "m.pt"
    torch.save(state_dict, p)
    with pytest.raises(OutputError, match="does not exist"):
        save_checkpoint(load_checkpoint(p), tmp_path / "nope" / "o.pt", {})


def test_new_formats_registered_with_their_needs():
    assert get_format("onnx").requires == "onnx" and get_format("onnx").suffixes == (".onnx",)
    assert get_format("torchscript").requires == "" and get_format("sharded").requires == ""
    assert "layout" in get_format("safetensors").options and "key" in get_format("torch").options


def test_option_the_format_does_not_take(tmp_path):
    p = tmp_path / "w.npz"
    np.savez(p, w=np.ones((2, 2)))
    with pytest.raises(FormatError, match=r"w\.npz: key= applies to torch checkpoints, not npz"):
        load_checkpoint(p, key="model")
