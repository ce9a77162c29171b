"""Keras files made by Keras 3 itself (torch backend): orientation, rewrites Keras loads, bad input."""

from __future__ import annotations

import os
import sys
import zipfile

import numpy as np
import pytest

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "torch"
h5py = pytest.importorskip("h5py")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("keras runs on another backend in this session", allow_module_level=True)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from netinit.errors import CorruptFileError, FormatError, ShapeError  # noqa: E402
from netinit.formats import detect_format, load_checkpoint, save_checkpoint  # noqa: E402
from netinit.layers import find_layers  # noqa: E402

L = keras.layers
pytestmark = [  # keras 3.15 on numpy 2 warns in its own code; an unbuilt model is saved on purpose
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:You are saving a model that has not yet been built:UserWarning"),
]


def _cnn() -> keras.Model:
    inp = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 3, name="c1")(inp)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="spatial")(x)  # names that do not say the kind
    x = L.Conv2DTranspose(5, 2, strides=2, name="up")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(3, name="head")(x))


def _conv13() -> keras.Model:
    inp = keras.Input((5, 4, 4, 2))
    x = L.Conv3D(3, 2, name="v1")(inp)
    x = L.Reshape((4, 27))(x)
    x = L.Conv1D(2, 3, name="t1")(x)
    return keras.Model(inp, L.Flatten()(x))


def _mlp() -> keras.Model:
    sub = keras.Sequential([L.Dense(5, name="hidden"), L.Dense(2, name="out")], name="sub")
    inp = keras.Input((7,))
    return keras.Model(inp, sub(L.Dense(6, name="fc")(inp)))


def _mha() -> keras.Model:
    inp = keras.Input((4, 6))
    return keras.Model(inp, L.MultiHeadAttention(2, 3, name="mha")(inp, inp))


BUILDERS = {"cnn": _cnn, "conv13": _conv13, "mlp": _mlp, "mha": _mha}


def _randomise(model: keras.Model, seed: int) -> keras.Model:
    """Random values everywhere (biases and batch statistics too), so no weight is trivially 0 or 1."""
    rng = np.random.default_rng(seed)
    model.set_weights([(np.abs(rng.normal(size=w.shape)) + 0.5 if w.ndim == 1 else rng.normal(size=w.shape))
                       .astype(w.dtype) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each model saved as ``.keras`` and as a legacy ``.h5``; the CNN also as ``.weights.h5``."""
    d = tmp_path_factory.mktemp("keras")
    out = {}
    for i, (name, build) in enumerate(BUILDERS.items()):
        model = _randomise(build(), i)
        model.save(d / f"{name}.keras")
        model.save(d / f"{name}.h5")
        out[name] = model
    out["cnn"].save_weights(d / "cnn.weights.h5")
    return d, out


def _np(t) -> np.ndarray:
    return keras.ops.convert_to_numpy(t)


def _hand(kind: str, w: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A layer computed from canonical (PyTorch-layout) weights with torch.nn.functional, channels last."""
    t, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    if kind == "dense":
        return x @ w.T + b
    nd = x.ndim - 2
    first = (0, nd + 1) + tuple(range(1, nd + 1))
    last = (0,) + tuple(range(2, nd + 2)) + (1,)
    t = t.permute(first)
    y = {"conv1d": lambda: F.conv1d(t, wt, bt), "conv2d": lambda: F.conv2d(t, wt, bt),
         "conv3d": lambda: F.conv3d(t, wt, bt), "depthwise": lambda: F.conv2d(t, wt, bt, groups=x.shape[-1]),
         "transpose": lambda: F.conv_transpose2d(t, wt, bt, stride=2)}[kind]()
    return y.permute(last).numpy()


LAYERS = [("cnn", "c1", "conv2d"), ("cnn", "spatial", "depthwise"), ("cnn", "up", "transpose"),
          ("cnn", "head", "dense"), ("conv13", "v1", "conv3d"), ("conv13", "t1", "conv1d"),
          ("mlp", "fc", "dense")]


def _input(layer, rng) -> np.ndarray:
    return rng.normal(size=(2,) + tuple(layer.input.shape[1:])).astype(np.float32)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("model_name, layer, kind", LAYERS)
def test_orientation_by_hand(saved, suffix, model_name, layer, kind, rng):
    d, models = saved
    lay = models[model_name].get_layer(layer)
    ckpt = load_checkpoint(d / f"{model_name}{suffix}")
    w, b = ckpt.load(f"{layer}.kernel"), ckpt.load(f"{layer}.bias")
    assert ckpt.info(f"{layer}.kernel").shape == w.shape
    x = _input(lay, rng)
    np.testing.assert_allclose(_hand(kind, w, b, x), _np(lay(x)), rtol=1e-5, atol=1e-5)


def test_names_kinds_and_order(saved):
    d, _ = saved
    ckpt = load_checkpoint(d / "cnn.keras")
    assert ckpt.format == "keras" and ckpt.container == "model.weights.h5"
    assert ckpt.metadata["keras_version"] == keras.__version__
    assert ckpt.names() == ["c1.kernel", "c1.bias", "spatial.kernel", "spatial.bias", "up.kernel", "up.bias",
                            "bn.gamma", "bn.beta", "bn.moving_mean", "bn.moving_variance", "head.kernel", "head.bias"]
    assert ckpt.dataset("spatial.kernel") == "/layers/depthwise_conv2d/vars/0"
    assert ckpt.info("spatial.kernel").shape == (8, 1, 3, 3) and ckpt.stored_shape("spatial.kernel") == (3, 3, 4, 2)
    assert ckpt.info("up.kernel").shape == (8, 5, 2, 2)  # (in, out, kh, kw), as torch ConvTranspose2d
    layers, skipped = find_layers(ckpt)
    assert [(la.name, la.kind) for la in layers] == [
        ("c1.kernel", "conv2d"), ("spatial.kernel", "conv2d_depthwise"), ("up.kernel", "conv_transpose2d"),
        ("head.kernel", "linear")]
    assert len(layers) + len(skipped) == len(ckpt.names())
    assert set(ckpt.converted) == {la.name for la in layers}
    legacy = load_checkpoint(d / "cnn.h5")
    assert legacy.names() == ckpt.names() and legacy.container == "model_weights"
    assert [la.kind for la in find_layers(legacy)[0]] == [la.kind for la in layers]


@pytest.mark.parametrize("model_name", list(BUILDERS))
def test_legacy_and_keras3_files_agree(saved, model_name):
    d, _ = saved
    new, old = load_checkpoint(d / f"{model_name}.keras"), load_checkpoint(d / f"{model_name}.h5")
    assert new.names() == old.names()
    for n in new.names():
        assert new.info(n) == old.info(n) and new.kind_hint(n) == old.kind_hint(n)
        np.testing.assert_array_equal(new.load(n), old.load(n))


def test_nested_models_and_weights_file(saved):
    d, models = saved
    ckpt = load_checkpoint(d / "mlp.keras")
    assert ckpt.names() == ["fc.kernel", "fc.bias", "sub.hidden.kernel", "sub.hidden.bias",
                            "sub.out.kernel", "sub.out.bias"]
    x = np.random.default_rng(1).normal(size=(3, 7)).astype(np.float32)
    y = x
    for layer in ("fc", "sub.hidden", "sub.out"):  # linear activations: the model is three affine maps
        y = y @ ckpt.load(f"{layer}.kernel").T + ckpt.load(f"{layer}.bias")
    np.testing.assert_allclose(y, _np(models["mlp"](x)), rtol=1e-5, atol=1e-5)
    weights = load_checkpoint(d / "cnn.weights.h5")  # no config: classes from the HDF5 paths
    assert weights.container is None
    assert {n: weights.kind_hint(n) for n in ("spatial.kernel", "up.kernel")} == {
        "spatial.kernel": "conv2d_depthwise", "up.kernel": "conv_transpose2d"}
    cnn = load_checkpoint(d / "cnn.keras")
    for name in cnn.names():
        np.testing.assert_array_equal(weights.load(name), cnn.load(name))


def test_keras3_file_without_name_attributes(saved, tmp_path):
    """Keras 3 versions that wrote no ``name`` on the ``vars`` groups: names from the HDF5 path."""
    d, _ = saved
    p = tmp_path / "old.weights.h5"
    p.write_bytes((d / "cnn.weights.h5").read_bytes())
    with h5py.File(p, "r+") as f:
        f.visititems(lambda n, o: o.attrs.__delitem__("name") if "name" in o.attrs else None)
    ckpt = load_checkpoint(p)
    assert [(la.name, la.kind) for la in find_layers(ckpt)[0]] == [
        ("conv2d.kernel", "conv2d"), ("conv2d_transpose.kernel", "conv_transpose2d"), ("dense.kernel", "linear"),
        ("depthwise_conv2d.kernel", "conv2d_depthwise")]
    ref = load_checkpoint(d / "cnn.keras")
    np.testing.assert_array_equal(ckpt.load("depthwise_conv2d.kernel"), ref.load("spatial.kernel"))


def test_multi_head_attention_projections(saved, rng):
    d, models = saved
    mha = models["mha"].get_layer("mha")
    ckpt = load_checkpoint(d / "mha.keras")
    assert [n for n in ckpt.names() if n.endswith("kernel")] == [
        "mha.query.kernel", "mha.key.kernel", "mha.value.kernel", "mha.attention_output.kernel"]
    assert {la.kind for la in find_layers(ckpt)[0]} == {"attention"}
    x = rng.normal(size=(2, 4, 6)).astype(np.float32)
    wq, bq = ckpt.load("mha.query.kernel"), ckpt.load("mha.query.bias")
    assert wq.shape == (6, 6)  # (heads * key_dim, dim)
    np.testing.assert_allclose((x @ wq.T).reshape(2, 4, 2, 3) + bq, _np(mha._query_dense(x)), rtol=1e-5, atol=1e-5)
    z = rng.normal(size=(2, 4, 2, 3)).astype(np.float32)
    wo, bo = ckpt.load("mha.attention_output.kernel"), ckpt.load("mha.attention_output.bias")
    np.testing.assert_allclose(z.reshape(2, 4, 6) @ wo.T + bo, _np(mha._output_dense(z)), rtol=1e-5, atol=1e-5)


def _datasets(path) -> dict[str, tuple[np.ndarray, dict]]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, (o[()], dict(o.attrs))) if isinstance(o, h5py.Dataset) else None)
    return out


def _h5_bytes(path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return z.read("model.weights.h5")
    return open(path, "rb").read()


@pytest.mark.parametrize("fname", ["cnn.keras", "cnn.h5", "cnn.weights.h5", "mha.keras"])
def test_round_trip_without_changes_is_identical(saved, tmp_path, fname):
    d, _ = saved
    out = save_checkpoint(load_checkpoint(d / fname), tmp_path / fname, {})
    if fname.endswith(".keras"):
        with zipfile.ZipFile(d / fname) as a, zipfile.ZipFile(out) as b:
            assert a.namelist() == b.namelist()
            for info in a.infolist():
                assert a.read(info) == b.read(info.filename)
                assert b.getinfo(info.filename).compress_type == info.compress_type
    else:
        assert out.read_bytes() == (d / fname).read_bytes()


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_rewrite_loads_in_keras_and_computes_the_new_weights(saved, tmp_path, suffix, rng):
    d, models = saved
    src = d / f"cnn{suffix}"
    ckpt = load_checkpoint(src)
    new = {n: rng.normal(size=ckpt.info(n).shape).astype(np.float32)
           for n in ("c1.kernel", "spatial.kernel", "up.kernel", "head.kernel", "up.bias")}
    out = save_checkpoint(ckpt, tmp_path / f"new{suffix}", new)
    model = keras.saving.load_model(out)
    for layer, kind in (("c1", "conv2d"), ("spatial", "depthwise"), ("up", "transpose"), ("head", "dense")):
        lay = model.get_layer(layer)
        x = _input(lay, rng)
        b = new.get(f"{layer}.bias", ckpt.load(f"{layer}.bias"))
        np.testing.assert_allclose(_np(lay(x)), _hand(kind, new[f"{layer}.kernel"], b, x), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(_np(model.get_layer("bn").moving_variance),
                                  _np(models["cnn"].get_layer("bn").moving_variance))
    # only the replaced datasets changed, and only their bytes
    before, after = _datasets(_h5_bytes_file(src, tmp_path / "a.h5")), _datasets(_h5_bytes_file(out, tmp_path / "b.h5"))
    changed = {ckpt.dataset(n).lstrip("/") for n in new}
    assert before.keys() == after.keys()
    for k in before:
        assert before[k][1] == after[k][1]
        same = before[k][0].tobytes() == after[k][0].tobytes()
        assert same != (k in changed), k
    a, b = _h5_bytes(src), _h5_bytes(out)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        spans = sorted((f[k].id.get_offset(), f[k].id.get_storage_size()) for k in changed)
    diff = np.flatnonzero(np.frombuffer(a, np.uint8) != np.frombuffer(b, np.uint8))
    assert all(any(s <= i < s + n for s, n in spans) for i in diff)
    if suffix == ".keras":
        with zipfile.ZipFile(src) as za, zipfile.ZipFile(out) as zb:
            for m in ("config.json", "metadata.json"):
                assert za.read(m) == zb.read(m)


def _h5_bytes_file(path, dest):
    dest.write_bytes(_h5_bytes(path))
    return dest


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_dtypes_read_and_written_back(tmp_path, rng, dtype):
    model = _randomise(keras.Sequential([keras.Input((5,)), L.Dense(4, name="a", dtype=dtype)]), 3)
    model.save(tmp_path / "m.keras")
    ckpt = load_checkpoint(tmp_path / "m.keras")
    assert ckpt.info("a.kernel").dtype == dtype and ckpt.info("a.kernel").shape == (4, 5)
    stored = _np(model.get_layer("a").kernel)
    np.testing.assert_array_equal(ckpt.load("a.kernel"), stored.astype(np.float32 if dtype == "bfloat16" else dtype).T)
    new = rng.normal(size=(4, 5))
    out = save_checkpoint(ckpt, tmp_path / "m2.keras", {"a.kernel": new})
    kernel = _np(keras.saving.load_model(out).get_layer("a").kernel)
    assert str(kernel.dtype) == dtype
    torch_dtype = getattr(torch, dtype)
    want = torch.from_numpy(new.T.copy()).to(torch_dtype).double().numpy()
    np.testing.assert_array_equal(kernel.astype(np.float64), want)
    assert load_checkpoint(out).info("a.kernel").dtype == dtype


def test_separable_einsum_embedding_and_recurrent_layers(tmp_path, rng):
    inp = keras.Input((6, 6, 3))
    sep = _randomise(keras.Model(inp, L.SeparableConv2D(4, 3, depth_multiplier=2, name="sep")(inp)), 5)
    inp = keras.Input((5,))
    ein = _randomise(keras.Model(inp, L.EinsumDense("ab,bcd->acd", output_shape=(3, 4), name="ein")(inp)), 6)
    inp = keras.Input((4,), dtype="int32")
    seq = _randomise(keras.Model(inp, L.LSTM(2, name="rnn")(L.Embedding(10, 3, name="tok")(inp))), 7)
    for name, model in (("sep", sep), ("ein", ein), ("seq", seq)):
        model.save(tmp_path / f"{name}.keras")
    ckpt = load_checkpoint(tmp_path / "sep.keras")
    assert ckpt.names() == ["sep.depthwise_kernel", "sep.pointwise_kernel", "sep.bias"]
    wd, wp, b = (ckpt.load(n) for n in ckpt.names())
    assert wd.shape == (6, 1, 3, 3) and wp.shape == (4, 6, 1, 1)
    assert [la.kind for la in find_layers(ckpt)[0]] == ["conv2d_depthwise", "conv2d"]
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    y = F.conv2d(F.conv2d(t, torch.from_numpy(wd), groups=3), torch.from_numpy(wp), torch.from_numpy(b))
    np.testing.assert_allclose(y.permute(0, 2, 3, 1).numpy(), _np(sep.get_layer("sep")(x)), rtol=1e-5, atol=1e-5)
    ckpt = load_checkpoint(tmp_path / "ein.keras")
    w = ckpt.load("ein.kernel")
    assert w.shape == (12, 5) and ckpt.stored_shape("ein.kernel") == (5, 3, 4)
    x = rng.normal(size=(2, 5)).astype(np.float32)
    np.testing.assert_allclose((x @ w.T).reshape(2, 3, 4), _np(ein.get_layer("ein")(x)), rtol=1e-5, atol=1e-5)
    ckpt = load_checkpoint(tmp_path / "seq.keras")
    assert ckpt.names() == ["tok.embeddings", "rnn.lstm_cell.kernel", "rnn.lstm_cell.recurrent_kernel",
                            "rnn.lstm_cell.bias"]
    assert ckpt.info("rnn.lstm_cell.kernel").shape == (8, 3)  # (4 gates * units, in), as torch's weight_ih
    np.testing.assert_array_equal(ckpt.load("tok.embeddings"), _np(seq.get_layer("tok").embeddings))
    assert [la.kind for la in find_layers(ckpt)[0]] == ["linear", "linear"]
    assert [la.kind for la in find_layers(ckpt, embeddings=True)[0]] == ["embedding", "linear", "linear"]


def test_compressed_archive(saved, tmp_path, rng):
    d, models = saved
    p = tmp_path / "deflated.keras"
    with zipfile.ZipFile(d / "cnn.keras") as src, zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    ckpt = load_checkpoint(p)
    ref = load_checkpoint(d / "cnn.keras")
    assert ckpt.names() == ref.names()
    for n in ref.names():
        np.testing.assert_array_equal(ckpt.load(n), ref.load(n))
    new = rng.normal(size=ckpt.info("head.kernel").shape).astype(np.float32)
    out = save_checkpoint(ckpt, tmp_path / "d2.keras", {"head.kernel": new})
    ckpt.close()
    with zipfile.ZipFile(out) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    np.testing.assert_array_equal(_np(keras.saving.load_model(out).get_layer("head").kernel), new.T)


def test_legacy_weights_only_file(tmp_path, rng):
    """Keras 2 ``save_weights("x.h5")``: no config, so the kinds come from Keras' default layer names."""
    from keras.src.legacy.saving import legacy_h5_format

    inp = keras.Input((6, 6, 3))
    x = L.DepthwiseConv2D(3, depth_multiplier=2)(L.Conv2D(4, 3)(inp))
    model = _randomise(keras.Model(inp, L.Dense(3)(L.Flatten()(L.Conv2DTranspose(5, 2, strides=2)(x)))), 4)
    p = tmp_path / "w.h5"
    with h5py.File(p, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    ckpt = load_checkpoint(p)
    assert ckpt.container is None and ckpt.metadata["backend"] == "torch"
    layers = find_layers(ckpt)[0]
    assert [la.kind for la in layers] == ["conv2d", "conv2d_depthwise", "conv_transpose2d", "linear"]
    for la, keras_layer in zip(layers, [lay for lay in model.layers if lay.weights]):
        assert la.name == f"{keras_layer.name}.kernel"
        xin = _input(keras_layer, rng)
        kind = {"conv2d": "conv2d", "conv2d_depthwise": "depthwise", "conv_transpose2d": "transpose",
                "linear": "dense"}[la.kind]
        np.testing.assert_allclose(_hand(kind, ckpt.load(la.name), ckpt.load(la.name[:-6] + "bias"), xin),
                                   _np(keras_layer(xin)), rtol=1e-5, atol=1e-5)
    dense = layers[-1].name
    new = rng.normal(size=ckpt.info(dense).shape).astype(np.float32)
    out = save_checkpoint(ckpt, tmp_path / "w2.h5", {dense: new})
    with h5py.File(out, "r") as f:
        legacy_h5_format.load_weights_from_hdf5_group(f, model)
    np.testing.assert_array_equal(_np(model.layers[-1].kernel), new.T)


def test_chunked_compressed_dataset_is_rewritten_through_h5py(saved, tmp_path, rng):
    d, models = saved
    p = tmp_path / "gz.weights.h5"
    with h5py.File(d / "cnn.weights.h5", "r") as src, h5py.File(p, "w") as dst:
        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                dst.require_group(name).attrs.update(obj.attrs)
            else:
                dst.create_dataset(name, data=obj[()], compression="gzip" if obj.ndim == 4 else None)
        src.visititems(copy)
        dst["vars"].attrs.update(src["vars"].attrs)
    ckpt = load_checkpoint(p)
    new = rng.normal(size=ckpt.info("c1.kernel").shape).astype(np.float32)
    out = save_checkpoint(ckpt, tmp_path / "gz2.weights.h5", {"c1.kernel": new})
    model = _cnn()
    model.load_weights(out)
    np.testing.assert_array_equal(_np(model.get_layer("c1").kernel), new.transpose(2, 3, 1, 0))


def test_replacement_of_wrong_shape_writes_nothing(saved, tmp_path):
    d, _ = saved
    with pytest.raises(ShapeError, match=r"'head.kernel' replacement has shape \(80, 3\), expected \(3, 80\)"):
        save_checkpoint(load_checkpoint(d / "cnn.keras"), tmp_path / "x.keras", {"head.kernel": np.zeros((80, 3))})
    assert list(tmp_path.iterdir()) == []


def test_wrong_suffix_is_sniffed(saved, tmp_path):
    d, _ = saved
    for fname, other in (("cnn.keras", "model.bin"), ("cnn.h5", "model.dat")):
        p = tmp_path / other
        p.write_bytes((d / fname).read_bytes())
        assert detect_format(p).name == "keras"
        assert load_checkpoint(p).names() == load_checkpoint(d / fname).names()


def test_keras_archive_without_weights(saved, tmp_path):
    d, _ = saved
    p = tmp_path / "noweights.keras"
    with zipfile.ZipFile(d / "cnn.keras") as src, zipfile.ZipFile(p, "w") as dst:
        for m in ("metadata.json", "config.json"):
            dst.writestr(m, src.read(m))
    with pytest.raises(FormatError, match=r"noweights\.keras: the \.keras archive holds no weights "
                                          r"\(model\.weights\.h5 missing; it holds only metadata\.json, config"):
        load_checkpoint(p)
    empty = tmp_path / "unbuilt.keras"
    keras.Sequential([L.Dense(2)]).save(empty)
    with pytest.raises(FormatError, match=r"unbuilt\.keras: its model\.weights\.h5 holds no weights"):
        load_checkpoint(empty)


@pytest.mark.parametrize("fname, cut, match", [
    ("cnn.keras", 0.5, r"bad\.keras: truncated or corrupt \.keras archive"),
    ("cnn.keras", -30, r"bad\.keras: truncated or corrupt \.keras archive"),
    ("cnn.h5", 0.5, r"bad\.h5: truncated or corrupt HDF5 file"),
    ("cnn.h5", -100, r"bad\.h5: truncated or corrupt HDF5 file"),
])
def test_truncated(saved, tmp_path, fname, cut, match):
    d, _ = saved
    data = (d / fname).read_bytes()
    bad = tmp_path / ("bad" + os.path.splitext(fname)[1])
    bad.write_bytes(data[: int(len(data) * cut)] if isinstance(cut, float) else data[:cut])
    with pytest.raises(CorruptFileError, match=match):
        load_checkpoint(bad)


def test_corrupt_files(saved, tmp_path):
    d, _ = saved
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a keras file at all" * 10)
    with pytest.raises(CorruptFileError, match=r"garbage\.keras: neither a \.keras archive \(zip\) nor an HDF5"):
        load_checkpoint(garbage)
    mangled = tmp_path / "mangled.keras"  # the weights member's HDF5 superblock overwritten
    with zipfile.ZipFile(d / "cnn.keras") as src, zipfile.ZipFile(mangled, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b"\0" * 64 + data[64:] if info.filename == "model.weights.h5" else data)
    with pytest.raises(CorruptFileError, match=r"mangled\.keras: model\.weights\.h5 in the \.keras archive is "
                                               r"truncated or corrupt"):
        load_checkpoint(mangled)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.ones(3)
    with pytest.raises(FormatError, match=r"other\.h5: an HDF5 file that is not a Keras model or weights file"):
        load_checkpoint(other)


def test_missing_h5py_says_what_to_install(saved, monkeypatch):
    d, _ = saved
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(FormatError, match=r"cnn\.keras: reading Keras files needs h5py; pip install h5py"):
        load_checkpoint(d / "cnn.keras")


@pytest.mark.parametrize("fname", ["cnn.keras", "cnn.h5", "cnn.weights.h5"])
def test_truncated_files_raise_netinit_errors(saved, fname, damaged):
    """Truncations only: flipped bytes inside HDF5 structures can hang libhdf5 itself."""
    d, _ = saved
    rejected, tried = damaged(d / fname, n=30, seed=2, kinds=("truncate",))["truncate"]
    assert rejected == tried


@pytest.mark.parametrize("error", [RuntimeError("Link iteration failed (bad local heap signature)"),
                                   KeyError("Unable to synchronously open object"), OSError("bad object header")])
def test_h5py_errors_while_walking_a_damaged_file(saved, monkeypatch, error):
    import netinit.formats.keras as kf

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(kf, "keras3_variables", broken)
    d, _ = saved
    with pytest.raises(CorruptFileError, match=rf"cnn\.keras: corrupt HDF5 structure \({type(error).__name__}"):
        load_checkpoint(d / "cnn.keras")
