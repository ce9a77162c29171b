from __future__ import annotations

import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from netinit.errors import CorruptFileError, FormatError, ShapeError  # noqa: E402
from netinit.formats import detect_format, load_checkpoint, save_checkpoint  # noqa: E402
from netinit.formats.safetensors import float32_to_bf16_bits  # noqa: E402
from netinit.layers import find_layers  # noqa: E402

OPSET = [helper.make_opsetid("", 17)]


def _f32(rng, *shape):
    return rng.normal(size=shape).astype(np.float32)


def _model(nodes, inputs, outputs, inits, **kw):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=OPSET, producer_name="netinit-tests", **kw)
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _vi(name, *shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


@pytest.fixture
def mlp(tmp_path, rng):
    """x(2,4) -> Gemm transB=0 -> Relu -> Gemm transB=1 -> Relu -> MatMul (square) -> y(2,5)."""
    w = {"W1": _f32(rng, 4, 6), "b1": _f32(rng, 6), "W2": _f32(rng, 5, 6), "b2": _f32(rng, 5),
         "W3": _f32(rng, 5, 5)}
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["g1"], transB=0, name="fc1"),
        helper.make_node("Relu", ["g1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "W2", "b2"], ["g2"], transB=1, name="fc2"),
        helper.make_node("Relu", ["g2"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W3"], ["y"], name="fc3"),
    ]
    m = _model(nodes, [_vi("x", 2, 4)], [_vi("y", 2, 5)],
               [numpy_helper.from_array(v, k) for k, v in w.items()])
    m.metadata_props.add(key="author", value="tests")
    p = tmp_path / "mlp.onnx"
    onnx.save(m, str(p))
    return p, w


def _mlp_by_hand(ckpt_or_dict, x):
    get = ckpt_or_dict.load if hasattr(ckpt_or_dict, "load") else ckpt_or_dict.__getitem__
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    h1 = relu(x @ get("W1").T + get("b1"))  # canonical (out, in): y = x W^T + b
    h2 = relu(h1 @ get("W2").T + get("b2"))
    return h2 @ get("W3").T


def _run(path, **feeds):
    return ReferenceEvaluator(str(path)).run(None, feeds)[0]


def test_detected_and_oriented(mlp, rng):
    p, w = mlp
    assert detect_format(p).name == "onnx"
    ckpt = load_checkpoint(p)
    assert ckpt.names() == ["W1", "b1", "W2", "b2", "W3"]
    assert ckpt.info("W1").shape == (6, 4)  # Gemm transB=0 stores (in, out)
    assert ckpt.info("W2").shape == (5, 6)  # transB=1 stores (out, in)
    np.testing.assert_array_equal(ckpt.load("W1"), w["W1"].T)
    np.testing.assert_array_equal(ckpt.load("W2"), w["W2"])
    np.testing.assert_array_equal(ckpt.load("W3"), w["W3"].T)
    assert set(ckpt.converted) == {"W1", "W3"} and ckpt.unmapped == {}
    assert ckpt.metadata["author"] == "tests" and ckpt.metadata["onnx.opset_import"] == "ai.onnx:17"
    x = _f32(rng, 2, 4)
    np.testing.assert_allclose(_mlp_by_hand(ckpt, x), _run(p, x=x), rtol=1e-5, atol=1e-6)
    layers, _ = find_layers(ckpt)
    assert [(lay.name, lay.matrix_shape) for lay in layers] == [("W1", (6, 4)), ("W2", (5, 6)), ("W3", (5, 5))]


def test_rewritten_model_computes_what_the_new_weights_imply(mlp, tmp_path, rng):
    p, w = mlp
    ckpt = load_checkpoint(p)
    new = {"W1": _f32(rng, 6, 4), "W2": _f32(rng, 5, 6), "W3": _f32(rng, 5, 5)}
    out = save_checkpoint(ckpt, tmp_path / "new.onnx", new)
    onnx.checker.check_model(str(out))
    x = _f32(rng, 2, 4)
    want = _mlp_by_hand({**new, "b1": w["b1"], "b2": w["b2"]}, x)
    np.testing.assert_allclose(_run(out, x=x), want, rtol=1e-5, atol=1e-6)
    # stored back in the ONNX layout; everything else kept
    m0, m1 = onnx.load(str(p)), onnx.load(str(out))
    arrays = {t.name: numpy_helper.to_array(t) for t in m1.graph.initializer}
    np.testing.assert_array_equal(arrays["W1"], new["W1"].T)
    np.testing.assert_array_equal(arrays["W3"], new["W3"].T)
    np.testing.assert_array_equal(arrays["W2"], new["W2"])
    for keep in ("b1", "b2"):
        a = next(t for t in m0.graph.initializer if t.name == keep)
        b = next(t for t in m1.graph.initializer if t.name == keep)
        assert a.SerializeToString() == b.SerializeToString()
    assert m1.opset_import == m0.opset_import and m1.metadata_props == m0.metadata_props
    assert m1.graph.node == m0.graph.node and m1.producer_name == "netinit-tests"


def test_round_trip_without_changes_is_byte_identical(mlp, tmp_path):
    p, _ = mlp
    out = save_checkpoint(load_checkpoint(p), tmp_path / "copy.onnx", {})
    assert out.read_bytes() == p.read_bytes()


def test_replacement_of_wrong_shape_is_refused(mlp, tmp_path):
    p, _ = mlp
    with pytest.raises(ShapeError, match=r"'W1' replacement has shape \(4, 6\), expected \(6, 4\)"):
        save_checkpoint(load_checkpoint(p), tmp_path / "x.onnx", {"W1": np.zeros((4, 6))})
    assert sorted(f.name for f in tmp_path.iterdir()) == ["mlp.onnx"]


def _conv_by_hand(x, matrix, k):
    """Correlation of x (C, H, W) with the canonical (out, C*k*k) matrix: im2col, then a product."""
    patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # (C, H', W', k, k)
    cols = patches.transpose(1, 2, 0, 3, 4).reshape(-1, x.shape[0] * k * k)  # (H'W', C*k*k)
    return (cols @ matrix.T).T.reshape(matrix.shape[0], patches.shape[1], patches.shape[2])


def test_conv_and_conv_transpose(tmp_path, rng):
    torch = pytest.importorskip("torch")
    wc, bc, wt = _f32(rng, 3, 2, 3, 3), _f32(rng, 3), _f32(rng, 3, 2, 2, 2)  # ConvTranspose: (in, out, k, k)
    nodes = [helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv"),
             helper.make_node("ConvTranspose", ["c", "up"], ["y"], name="up")]  # a name that says nothing
    m = _model(nodes, [_vi("x", 1, 2, 6, 6)], [_vi("y", 1, 2, 5, 5)],
               [numpy_helper.from_array(wc, "conv.weight"), numpy_helper.from_array(bc, "conv.bias"),
                numpy_helper.from_array(wt, "up")])
    p = tmp_path / "cnn.onnx"
    onnx.save(m, str(p))
    ckpt = load_checkpoint(p)
    assert ckpt.info("conv.weight").shape == (3, 2, 3, 3) and ckpt.converted == {}
    layers = {lay.name: lay for lay in find_layers(ckpt)[0]}
    assert layers["up"].kind == "conv_transpose2d" and layers["conv.weight"].kind == "conv2d"
    x = _f32(rng, 1, 2, 6, 6)
    c = _conv_by_hand(x[0], layers["conv.weight"].matrix(), 3) + bc[:, None, None]
    np.testing.assert_allclose(_run(p, x=x)[0], torch.nn.functional.conv_transpose2d(
        torch.from_numpy(c[None]), torch.from_numpy(ckpt.load("up"))).numpy()[0], rtol=1e-5, atol=1e-5)
    new_c = _f32(rng, 3, 18)
    out = save_checkpoint(ckpt, tmp_path / "cnn2.onnx", {"conv.weight": layers["conv.weight"].from_matrix(new_c)})
    c2 = _conv_by_hand(x[0], new_c, 3) + bc[:, None, None]
    np.testing.assert_allclose(_run(out, x=x)[0], torch.nn.functional.conv_transpose2d(
        torch.from_numpy(c2[None]), torch.from_numpy(wt)).numpy()[0], rtol=1e-5, atol=1e-5)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_lstm_gates_are_separate_matrices(tmp_path, rng, direction):
    n_in, h = 3, 4
    dirs = 2 if direction == "bidirectional" else 1
    W, R, B = _f32(rng, dirs, 4 * h, n_in), _f32(rng, dirs, 4 * h, h), _f32(rng, dirs, 8 * h)
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y"], hidden_size=h, direction=direction, name="lstm")
    m = _model([node], [_vi("x", 1, 2, n_in)], [_vi("Y", 1, dirs, 2, h)],
               [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(B, "B")])
    p = tmp_path / "lstm.onnx"
    onnx.save(m, str(p))
    ckpt = load_checkpoint(p)
    pre = "W.forward." if dirs == 2 else "W."
    assert [n for n in ckpt.names() if n.startswith(pre)] == [pre + f"gate_{g}" for g in "iofc"]
    assert ckpt.info(pre + "gate_f").shape == (h, n_in)
    assert ckpt.info("B" + (".forward" if dirs == 2 else "")).shape == (8 * h,)
    assert len(ckpt.names()) == dirs * (4 + 4 + 1)

    def one_step(get, x):  # seq_len 1, zero initial state, direction 0
        pre_b = get("B" + (".forward" if dirs == 2 else ""))
        gates = {}
        for k, g in enumerate("iofc"):
            gates[g] = x @ get(pre + f"gate_{g}").T + pre_b[k * h:(k + 1) * h] + pre_b[(4 + k) * h:(5 + k) * h]
        c = _sigmoid(gates["i"]) * np.tanh(gates["c"])
        return _sigmoid(gates["o"]) * np.tanh(c)

    x = _f32(rng, 1, 2, n_in)
    np.testing.assert_allclose(_run(p, x=x)[0, 0], one_step(ckpt.load, x[0]), rtol=1e-5, atol=1e-6)
    new = {pre + "gate_c": _f32(rng, h, n_in), pre + "gate_o": _f32(rng, h, n_in)}
    out = save_checkpoint(ckpt, tmp_path / "lstm2.onnx", new)
    again = load_checkpoint(out)
    np.testing.assert_allclose(_run(out, x=x)[0, 0], one_step(lambda n: new.get(n, ckpt.load(n)), x[0]),
                               rtol=1e-5, atol=1e-6)
    for name in ckpt.names():
        np.testing.assert_array_equal(again.load(name), new.get(name, ckpt.load(name)))


def test_external_data_read_lazily_and_layout_kept(tmp_path, rng, mlp):
    p, w = mlp
    m = onnx.load(str(p))
    ext = tmp_path / "ext"
    ext.mkdir()
    onnx.save(m, str(ext / "m.onnx"), save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    ckpt = load_checkpoint(ext / "m.onnx")
    np.testing.assert_array_equal(ckpt.load("W1"), w["W1"].T)
    before = (ext / "m.onnx.data").read_bytes()
    new = _f32(rng, 5, 6)
    out = save_checkpoint(ckpt, tmp_path / "new.onnx", {"W2": new})
    data = tmp_path / "new.onnx.data"
    assert data.stat().st_size == len(before) and (ext / "m.onnx.data").read_bytes() == before
    proto = onnx.load(str(out), load_external_data=False)
    locs = {t.name: {e.key: e.value for e in t.external_data} for t in proto.graph.initializer}
    orig = {t.name: {e.key: e.value for e in t.external_data}
            for t in onnx.load(str(ext / "m.onnx"), load_external_data=False).graph.initializer}
    for name, loc in locs.items():
        assert loc["location"] == "new.onnx.data"
        assert (loc["offset"], loc["length"]) == (orig[name]["offset"], orig[name]["length"])
    x = _f32(rng, 2, 4)
    np.testing.assert_allclose(_run(out, x=x), _mlp_by_hand({**w, "W1": w["W1"].T, "W3": w["W3"].T, "W2": new}, x),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(load_checkpoint(out).load("W1"), w["W1"].T)


def test_missing_external_data_file(tmp_path, mlp):
    p, _ = mlp
    onnx.save(onnx.load(str(p)), str(tmp_path / "e.onnx"), save_as_external_data=True, location="e.bin",
              size_threshold=0)
    (tmp_path / "e.bin").unlink()
    with pytest.raises(CorruptFileError, match=r"e\.onnx: external data file 'e\.bin' of tensor 'W1' is missing"):
        load_checkpoint(tmp_path / "e.onnx")


def test_constant_node_weights_are_found(tmp_path, rng):
    w = _f32(rng, 3, 4)  # Gemm transB=0: (in=3, out=4)
    shape = numpy_helper.from_array(np.array([2, 4], dtype=np.int64), "shape")
    nodes = [helper.make_node("Constant", [], ["Wc"], value=numpy_helper.from_array(w, "Wc")),
             helper.make_node("Gemm", ["x", "Wc"], ["g"], name="fc"),
             helper.make_node("Constant", [], ["shape"], value=shape),  # not a weight: not shown
             helper.make_node("Reshape", ["g", "shape"], ["y"])]
    p = tmp_path / "c.onnx"
    onnx.save(_model(nodes, [_vi("x", 2, 3)], [_vi("y", 2, 4)], []), str(p))
    ckpt = load_checkpoint(p)
    assert ckpt.names() == ["Wc"]
    np.testing.assert_array_equal(ckpt.load("Wc"), w.T)
    new = _f32(rng, 4, 3)
    out = save_checkpoint(ckpt, tmp_path / "c2.onnx", {"Wc": new})
    x = _f32(rng, 2, 3)
    np.testing.assert_allclose(_run(out, x=x), x @ new.T, rtol=1e-5, atol=1e-6)


def test_weights_computed_by_nodes_are_listed_as_unmapped(tmp_path, rng):
    w, s = _f32(rng, 4, 3), np.array(0.5, dtype=np.float32)
    nodes = [helper.make_node("Mul", ["Wraw", "scale"], ["Wq"], name="dequant"),
             helper.make_node("Gemm", ["x", "Wq"], ["h"], transB=1, name="fc1"),
             helper.make_node("Transpose", ["Wt"], ["WtT"], name="tr"),
             helper.make_node("MatMul", ["h", "WtT"], ["h2"], name="fc2"),
             helper.make_node("MatMul", ["h2", "other"], ["y"], name="scores"),  # activation x activation
             helper.make_node("Conv", ["img", "K"], ["z"], name="conv")]
    wt = _f32(rng, 2, 4)  # Transpose -> (4, 2) = (in, out) for MatMul: stored (out, in)
    m = _model(nodes, [_vi("x", 2, 3), _vi("other", 2, 2), _vi("img", 1, 1, 3, 3), _vi("K", 1, 1, 2, 2)],
               [_vi("y", 2, 2), _vi("z", 1, 1, 2, 2)],
               [numpy_helper.from_array(w, "Wraw"), numpy_helper.from_array(s, "scale"),
                numpy_helper.from_array(wt, "Wt")])
    p = tmp_path / "q.onnx"
    onnx.save(m, str(p))
    ckpt = load_checkpoint(p)
    assert ckpt.unmapped == {
        "Wq": "weight input 1 of Gemm node 'fc1' is computed by Mul node 'dequant', not stored",
        "K": "weight input 1 of Conv node 'conv' is a graph input (fed at run time, not stored)",
        "Wraw": "not the weight of a layer node (used by Mul); shown as stored",
    }
    assert ckpt.names() == ["Wraw", "scale", "Wt"] and "Wt" not in ckpt.converted
    np.testing.assert_array_equal(ckpt.load("Wt"), wt)  # through the Transpose: stored (out, in)


@pytest.mark.parametrize("kind,make", [
    ("float16", lambda a: numpy_helper.from_array(a.astype(np.float16), "W")),
    ("float64", lambda a: numpy_helper.from_array(a.astype(np.float64), "W")),
    ("bfloat16", lambda a: helper.make_tensor("W", TensorProto.BFLOAT16, a.shape,
                                              float32_to_bf16_bits(a).tobytes(), raw=True)),
])
def test_half_and_double_precision_keep_their_dtype(tmp_path, rng, kind, make):
    a = _f32(rng, 3, 2)  # MatMul weight (in=3, out=2)
    elem = {"float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE, "bfloat16": TensorProto.BFLOAT16}[kind]
    xi = helper.make_tensor_value_info("x", elem, [1, 3])
    yo = helper.make_tensor_value_info("y", elem, [1, 2])
    p = tmp_path / "h.onnx"
    onnx.save(_model([helper.make_node("MatMul", ["x", "W"], ["y"])], [xi], [yo], [make(a)]), str(p))
    ckpt = load_checkpoint(p)
    assert ckpt.info("W").dtype == kind and ckpt.info("W").shape == (2, 3)
    vals = ckpt.load("W")
    assert vals.dtype == (np.float32 if kind == "bfloat16" else np.dtype(kind))
    out = save_checkpoint(ckpt, tmp_path / "h2.onnx", {"W": vals[::-1].copy()})
    again = load_checkpoint(out)
    assert again.info("W").dtype == kind
    np.testing.assert_array_equal(again.load("W"), vals[::-1])
    t = onnx.load(str(out)).graph.initializer[0]
    assert t.data_type == elem


@pytest.mark.parametrize("cut", [30, 0.5, -3])
def test_truncated_model(mlp, tmp_path, cut):
    p, _ = mlp
    data = p.read_bytes()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data[: int(len(data) * cut) if isinstance(cut, float) else cut])
    with pytest.raises(CorruptFileError, match=r"bad\.onnx: truncated or corrupt ONNX model"):
        load_checkpoint(bad)


def test_garbage_with_onnx_suffix(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07:" + b"\xff" * 50)
    with pytest.raises(CorruptFileError, match=r"model\.onnx: truncated or corrupt ONNX model"):
        load_checkpoint(bad)


def test_missing_onnx_package_says_what_to_install(mlp, monkeypatch):
    p, _ = mlp
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(FormatError, match=r"mlp\.onnx: reading ONNX models needs the onnx package: pip install onnx"):
        load_checkpoint(p)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_model_exported_by_torch(tmp_path, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()
    p = tmp_path / "exported.bin"  # the content, not the suffix, says ONNX
    torch.onnx.export(model, (torch.randn(1, 6),), str(p), dynamo=False, input_names=["x"])
    ckpt = load_checkpoint(p)
    assert ckpt.format == "onnx"
    sd = model.state_dict()
    assert set(ckpt.names()) == set(sd)
    for name, t in sd.items():
        np.testing.assert_array_equal(ckpt.load(name), t.numpy())
    new = {lay.name: rng.normal(size=lay.shape).astype(np.float32) for lay in find_layers(ckpt)[0]}
    out = save_checkpoint(ckpt, tmp_path / "rewired.onnx", new)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in new.items()}, strict=False)
    x = _f32(rng, 1, 6)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(out, x=x), want, rtol=1e-5, atol=1e-6)


def test_damaged_files_raise_netinit_errors(mlp, damaged):
    """Includes tensor names that are not UTF-8 (protobuf hands them back as bytes)."""
    p, _ = mlp
    counts = damaged(p, n=90, seed=3)
    assert sum(r for r, _ in counts.values()) > 0
