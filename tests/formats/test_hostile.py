"""Hostile files, one test per way a reader was broken: each is refused with a one-line
CorruptFileError naming the file, or read with the right values; no view outside the data, no
unbounded allocation, no hang.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
import torch

from netinit.errors import CorruptFileError
from netinit.formats import load_checkpoint, save_checkpoint
from netinit.formats.limits import current_limits, limits
from tests.formats.hostile import patch_central, recompressed, safetensors_file, tensor_pickle, torchscript_file


def _read_all(path):
    with load_checkpoint(path) as ckpt:
        return {n: ckpt.load(n) for n in ckpt.names()}


def _one_line(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


# ---- TorchScript: storage records and the pickle ------------------------------------------------

STORAGE = np.arange(10, dtype=np.float32)


@pytest.mark.parametrize("offset, size, stride, why", [
    (-4, (2, 3), (3, 1), "negative offset"),          # counted from the end by slicing
    (-10**6, (2, 3), (3, 1), "negative offset"),      # as_strided far before the buffer
    (5, (2, 3), (3, 1), "reach past"),                # last element 5 + 5 = 10: one past the end
    (0, (2, 3), (-3, 1), "negative offset"),          # a negative stride walks before the buffer
    (0, (2, 3), (3,), "different lengths"),
    (0, (-2, 3), (3, 1), "negative offset"),
])
def test_torchscript_refuses_a_tensor_outside_its_storage(tmp_path, offset, size, stride, why):
    p = torchscript_file(tmp_path / "m.jit", tensor_pickle({"w": ("0", 10, offset, size, stride)}), {"0": STORAGE})
    with pytest.raises(CorruptFileError, match=rf"m\.jit: tensor 'w' does not fit its storage record.*{why}"):
        _read_all(p)


def test_torchscript_reads_and_writes_an_offset_view_exactly(tmp_path):
    p = torchscript_file(tmp_path / "m.jit", tensor_pickle({"w": ("0", 10, 4, (2, 3), (3, 1))}), {"0": STORAGE})
    np.testing.assert_array_equal(_read_all(p)["w"], STORAGE[4:10].reshape(2, 3))
    with load_checkpoint(p) as ckpt:
        save_checkpoint(ckpt, tmp_path / "out.jit", {"w": -np.ones((2, 3), np.float32)})
    with zipfile.ZipFile(tmp_path / "out.jit") as z:
        raw = np.frombuffer(z.read("archive/data/0"), "<f4")
    np.testing.assert_array_equal(raw, np.r_[STORAGE[:4], -np.ones(6, np.float32)])


def test_torchscript_writer_checks_the_view_itself(tmp_path):
    """The writer makes its writeable view through the same checked helper: a reference damaged
    after opening is refused, not written through (as_strided(..., writeable=True))."""
    import dataclasses

    p = torchscript_file(tmp_path / "m.jit", tensor_pickle({"w": ("0", 10, 0, (2, 3), (3, 1))}), {"0": STORAGE})
    with load_checkpoint(p) as ckpt:
        ckpt._refs["w"] = dataclasses.replace(ckpt._refs["w"], offset=-6)
        with pytest.raises(CorruptFileError, match=r"m\.jit: storage '0' does not hold its tensor \(a negative offset"):
            save_checkpoint(ckpt, tmp_path / "out.jit", {"w": np.zeros((2, 3), np.float32)})
    assert not (tmp_path / "out.jit").exists()


def test_torchscript_storage_record_of_the_wrong_size(tmp_path):
    p = torchscript_file(tmp_path / "m.jit", tensor_pickle({"w": ("0", 12, 0, (2, 3), (3, 1))}), {"0": STORAGE})
    with pytest.raises(CorruptFileError, match=r"m\.jit: tensor 'w' has a storage of 12 elements"):
        _read_all(p)


def test_torchscript_expanded_view_bounded_by_its_storage(tmp_path):
    """stride 0 repeats one element: allowed, but not into a 2**31-element array."""
    big = (2**15, 2**16)
    p = torchscript_file(tmp_path / "m.jit", tensor_pickle({"w": ("0", 10, 0, big, (0, 0))}), {"0": STORAGE})
    with pytest.raises(CorruptFileError, match=r"repeats its storage .* max_inflation=100"):
        _read_all(p)
    p = torchscript_file(tmp_path / "ok.jit", tensor_pickle({"w": ("0", 10, 9, (3, 2), (0, 0))}), {"0": STORAGE})
    np.testing.assert_array_equal(_read_all(p)["w"], np.full((3, 2), 9, np.float32))


@pytest.mark.parametrize("index", [2**32 - 1, 2**20])
def test_torchscript_memo_index_beyond_the_pickle(tmp_path, index):
    """A LONG_BINPUT index makes the C unpickler grow its memo to that size (2**32 - 1: 32 GiB)."""
    pkl = tensor_pickle({"w": ("0", 10, 0, (10,), (1,))}, memo_index=index)
    p = torchscript_file(tmp_path / "m.jit", pkl, {"0": STORAGE})
    with pytest.raises(CorruptFileError, match=rf"m\.jit: corrupt data\.pkl .*LONG_BINPUT memo index {index} at byte 3"):
        _read_all(p)


def test_torchscript_truncated_pickle(tmp_path):
    pkl = tensor_pickle({"w": ("0", 10, 0, (10,), (1,))})
    p = torchscript_file(tmp_path / "m.jit", pkl[:-20], {"0": STORAGE})
    with pytest.raises(CorruptFileError, match=r"m\.jit: corrupt data\.pkl in TorchScript archive") as exc:
        _read_all(p)
    _one_line(exc, p)


# ---- PyTorch zip: compressed records ------------------------------------------------------------

def _state_dict():
    g = torch.Generator().manual_seed(0)
    return {"fc.weight": torch.randn(64, 32, generator=g), "fc.bias": torch.randn(64, generator=g)}


def test_deflated_pt_reads_the_right_values(tmp_path):
    """torch.load(mmap=True) would map the deflated bytes of each record as the tensor."""
    sd = _state_dict()
    torch.save(sd, tmp_path / "m.pt")
    p = recompressed(tmp_path / "m.pt", tmp_path / "deflated.pt")
    with zipfile.ZipFile(p) as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    got = _read_all(p)
    for k, v in sd.items():
        np.testing.assert_array_equal(got[k], v.numpy())
    with load_checkpoint(p) as ckpt:
        new = {"fc.weight": np.ones((64, 32), np.float32)}
        save_checkpoint(ckpt, tmp_path / "out.pt", new)
    back = torch.load(tmp_path / "out.pt", weights_only=True)
    np.testing.assert_array_equal(back["fc.weight"].numpy(), new["fc.weight"])
    np.testing.assert_array_equal(back["fc.bias"].numpy(), sd["fc.bias"].numpy())


def test_pt_rewrite_is_byte_reproducible(tmp_path):
    """torch.save names the archive's folder after a path's file name; the writer gives it none."""
    torch.save(_state_dict(), tmp_path / "m.pt")
    new = {"fc.weight": np.full((64, 32), 0.5, np.float32)}
    outs = []
    for name in ("a.pt", "b.pt"):
        with load_checkpoint(tmp_path / "m.pt") as ckpt:
            outs.append(save_checkpoint(ckpt, tmp_path / name, new).read_bytes())
    assert outs[0] == outs[1]


# ---- safetensors: headers --------------------------------------------------------------------

def _f32(n):
    return np.arange(n, dtype="<f4").tobytes()


def test_safetensors_overlapping_tensors_refused(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
              "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
    p = safetensors_file(tmp_path / "m.safetensors", header, _f32(6))
    with pytest.raises(CorruptFileError, match=r"m\.safetensors: tensors 'a' and 'b' share bytes"):
        load_checkpoint(p)


def test_safetensors_overlap_past_an_empty_tensor(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
              "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
    p = safetensors_file(tmp_path / "m.safetensors", header, _f32(4))
    with pytest.raises(CorruptFileError, match=r"tensors 'a' and 'b' share bytes"):
        load_checkpoint(p)


@pytest.mark.parametrize("entry, match", [
    ({"dtype": "F32", "shape": [2], "data_offsets": [[0], [8]]}, r"data_offsets \[\[0\], \[8\]\], not two integers"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16]}, r"not two integers"),
    ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, r"not a non-negative integer"),
    ({"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}, r"too large for any array"),
    ({"dtype": "F32", "shape": [2**32, 2**31, 0], "data_offsets": [0, 0]}, r"too large for any array"),
    ({"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}, r"not a non-negative integer"),
    ({"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}, r"unknown dtype"),
    ({"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}, r"is not a list"),
    ([1, 2], r"corrupt safetensors entry for tensor 'w'"),
])
def test_safetensors_malformed_entries(tmp_path, entry, match):
    p = safetensors_file(tmp_path / "m.safetensors", {"w": entry}, _f32(2))
    with pytest.raises(CorruptFileError, match=r"m\.safetensors: .*" + match) as exc:
        load_checkpoint(p)
    _one_line(exc, p)


def test_safetensors_header_entries_bounded(tmp_path):
    header = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(50)}
    p = safetensors_file(tmp_path / "m.safetensors", header, b"")
    with limits(max_tensors=10):
        with pytest.raises(CorruptFileError, match=r"more than max_tensors=10 entries .*NETINIT_MAX_TENSORS"):
            load_checkpoint(p)
    assert len(load_checkpoint(p).names()) == 50  # the default limit takes it
    with limits(max_header_bytes=100):
        with pytest.raises(CorruptFileError, match=r"over max_header_bytes=100 .*NETINIT_MAX_HEADER_BYTES"):
            load_checkpoint(p)


def test_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("NETINIT_MAX_TENSORS", "7")
    assert current_limits().max_tensors == 7
    with limits(max_tensors=9):
        assert current_limits().max_tensors == 9
    with pytest.raises(TypeError, match=r"unknown limit 'max_tensor'"):
        with limits(max_tensor=1):
            pass


# ---- npz: members --------------------------------------------------------------------------

def test_npz_member_inflating_beyond_the_limit(tmp_path):
    p = tmp_path / "m.npz"
    np.savez_compressed(p, w=np.zeros(1 << 18, np.float32))  # 1 MiB of zeros: about 1000 times smaller
    with limits(inflation_floor=1 << 16):
        with pytest.raises(CorruptFileError, match=r"m\.npz: member 'w\.npy' inflates .* more than max_inflation=100"):
            load_checkpoint(p)
        with limits(max_inflation=5000):
            assert _read_all(p)["w"].shape == (1 << 18,)
    assert _read_all(p)["w"].shape == (1 << 18,)  # under the default floor of 64 MiB


def test_npz_header_declaring_more_than_the_member_holds(tmp_path):
    """Refused before numpy allocates what the header declares (here 8 TB)."""
    b = io.BytesIO()
    np.lib.format.write_array(b, np.zeros(4, np.float64))
    data = b.getvalue().replace(b"(4,)", b"(10**12,)".replace(b"10**12", str(10**12).encode()))
    with zipfile.ZipFile(tmp_path / "m.npz", "w") as z:
        z.writestr("w.npy", data)
    with pytest.raises(CorruptFileError, match=r"m\.npz: member 'w\.npy' is corrupt \(its header declares shape "
                                               r"\(1000000000000,\)"):
        load_checkpoint(tmp_path / "m.npz")


# ---- Flax msgpack ----------------------------------------------------------------------------

def _flax(path, shape, dtype, data):
    msgpack = pytest.importorskip("msgpack")
    leaf = msgpack.ExtType(1, msgpack.packb([list(shape), dtype, data]))
    path.write_bytes(msgpack.packb({"params": {"Dense_0": {"kernel": leaf}}}))
    return path


@pytest.mark.parametrize("shape, dtype, nbytes, match", [
    ((2, 3), ",", 24, None),                                   # np.dtype(",") raised SyntaxError
    ((2, 3), "(1000000,)f4", 24, None),                        # a sub-array dtype
    ((2**32, 2**32), "float32", 0, r"too large for any array"),  # int64 product wrapped to 0
    ((2**62, 4), "float32", 0, r"too large for any array"),
])
def test_flax_hostile_dtype_and_shape(tmp_path, shape, dtype, nbytes, match):
    p = _flax(tmp_path / "m.msgpack", shape, dtype, bytes(nbytes))
    if match is None:  # an unknown dtype: listed, not loadable, never parsed by numpy
        with load_checkpoint(p, format="flax") as ckpt:
            assert ckpt.info("params.Dense_0.kernel").dtype == dtype
            with pytest.raises(Exception, match=r"m\.msgpack: tensor .* has dtype"):
                ckpt.load("params.Dense_0.kernel")
        return
    with pytest.raises(CorruptFileError, match=r"m\.msgpack: .*" + match) as exc:
        load_checkpoint(p, format="flax")
    _one_line(exc, p)


# ---- ONNX --------------------------------------------------------------------------------

def _onnx_model(path, *, outputs=("y",), data=True):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "w")
    if not data:
        w.ClearField("raw_data")
    node = helper.make_node("MatMul", ["x", "w"], list(outputs), name="")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=[w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_onnx_matmul_without_outputs(tmp_path):
    p = _onnx_model(tmp_path / "m.onnx", outputs=())
    ckpt = load_checkpoint(p)  # named by '(no output)' in messages; the weight is still read
    np.testing.assert_array_equal(ckpt.load("w"), np.arange(6, dtype=np.float32).reshape(3, 2).T)


def test_onnx_initializer_without_data(tmp_path):
    p = _onnx_model(tmp_path / "m.onnx", data=False)
    with pytest.raises(CorruptFileError, match=r"m\.onnx: tensor 'w' of shape \(3, 2\) holds 0 values in float_data"):
        load_checkpoint(p)


# ---- Keras / HDF5 --------------------------------------------------------------------------

def _keras3_weights(path, layer_name="sequential"):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        g = f.create_group("layers/dense/vars")
        g.attrs["name"] = layer_name  # a variable-length string: stored in a global-heap collection
        g.create_dataset("0", data=np.arange(12, dtype=np.float32).reshape(3, 4))
    return path


@pytest.fixture
def hdf5_loop(tmp_path):
    """One changed byte (the size of a global-heap object, 10 -> 1) that sends HDF5's attribute
    read into an endless loop."""
    p = _keras3_weights(tmp_path / "m.weights.h5")
    assert _read_all(p)["sequential.kernel"].shape == (4, 3)
    data = bytearray(p.read_bytes())
    gcol = data.index(b"GCOL")
    assert struct.unpack_from("<HH4xQ", data, gcol + 16) == (1, 0, 10)  # object 1, "sequential"
    struct.pack_into("<Q", data, gcol + 24, 1)
    bad = tmp_path / "hang.weights.h5"
    bad.write_bytes(bytes(data))
    return bad


def test_keras_global_heap_loop_refused_before_hdf5_runs(hdf5_loop):
    with pytest.raises(CorruptFileError, match=r"hang\.weights\.h5: corrupt HDF5 global heap at byte \d+ "
                                               r"\(object 0 of 0 bytes at byte \d+ never ends\)"):
        load_checkpoint(hdf5_loop)


def test_keras_hdf5_walk_stopped_by_the_time_bound(hdf5_loop, monkeypatch):
    """The same loop, the structure check left out: the child running HDF5 is killed."""
    import netinit.formats.keras as keras_reader

    monkeypatch.setattr(keras_reader, "check_global_heaps", lambda *a, **k: None)
    with limits(h5_timeout=2):
        with pytest.raises(CorruptFileError, match=r"hang\.weights\.h5: reading the HDF5 structure did not "
                                                   r"finish in 2 s .*NETINIT_H5_TIMEOUT"):
            load_checkpoint(hdf5_loop)


def test_bounded_call_results_errors_and_crashes(tmp_path):
    import os
    import time

    from netinit.formats._bounded import bounded_call

    kw = dict(timeout=30, what="parsing", variable="X")
    assert bounded_call(lambda: {"a": [1, 2]}, tmp_path, **kw) == {"a": [1, 2]}
    with pytest.raises(CorruptFileError, match=r"parsing \(ZeroDivisionError: division by zero\)"):
        bounded_call(lambda: 1 / 0, tmp_path, **kw)
    with pytest.raises(CorruptFileError, match=r"parsing failed: the parser crashed \(signal 9\), in a child process"):
        bounded_call(lambda: os.kill(os.getpid(), 9), tmp_path, **kw)
    with pytest.raises(CorruptFileError, match=r"parsing did not finish in 1 s"):
        bounded_call(lambda: time.sleep(60), tmp_path, **dict(kw, timeout=1))


def test_keras_non_utf8_group_name(tmp_path):
    h5py = pytest.importorskip("h5py")
    p = _keras3_weights(tmp_path / "m.weights.h5")
    with h5py.File(p, "a") as f:
        f.create_group(b"layers/\xff\xfe")
    with pytest.raises(CorruptFileError, match=r"m\.weights\.h5: corrupt HDF5 structure") as exc:
        load_checkpoint(p)
    _one_line(exc, p)


@pytest.fixture
def keras_archive(tmp_path):
    """A .keras-like archive: config, metadata and a weights file, stored."""
    w = _keras3_weights(tmp_path / "w.h5")
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("metadata.json", '{"keras_version": "3"}')
        z.writestr("config.json", "{}")
        z.write(w, "model.weights.h5")
    return p


@pytest.mark.parametrize("damage, match", [
    ({"method": 99}, r"NotImplementedError"),    # an unsupported compression method
    ({"flag": 1}, r"RuntimeError"),               # an encrypted member
])
def test_keras_archive_members_zipfile_cannot_open(keras_archive, damage, match):
    patch_central(keras_archive, "model.weights.h5", **damage)
    with pytest.raises(CorruptFileError, match=r"m\.keras: model\.weights\.h5 in the archive is truncated or corrupt "
                                               r"\(" + match):
        load_checkpoint(keras_archive)


def test_keras_archive_bad_deflate_stream(keras_archive, tmp_path):
    p = recompressed(keras_archive, tmp_path / "d.keras")
    assert _read_all(p)["sequential.kernel"].shape == (4, 3)
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("model.weights.h5")
    data = bytearray(p.read_bytes())
    start = info.header_offset + 30 + len(info.filename)
    data[start + 20:start + 60] = b"\xff" * 40
    p.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"d\.keras: .*(zlib|Error|corrupt)") as exc:
        _read_all(p)
    _one_line(exc, p)
