"""Flax msgpack checkpoints made by flax itself: orientation, rewrites flax restores, bad input."""

from __future__ import annotations

import numpy as np
import pytest

flax = pytest.importorskip("flax")
jax = pytest.importorskip("jax")
msgpack = pytest.importorskip("msgpack")

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from flax import serialization  # noqa: E402

from netinit.errors import CorruptFileError, ShapeError  # noqa: E402
from netinit.formats import detect_format, load_checkpoint, save_checkpoint  # noqa: E402
from netinit.formats.base import TensorInfo  # noqa: E402
from netinit.layers import classify, find_layers  # noqa: E402


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        hidden = nn.Dense(6)(x)  # linear: the model is two affine maps
        return nn.Dense(3)(hidden)


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3, 3), padding="VALID")(x)
        x = nn.Conv(8, (3, 3), feature_group_count=4, padding="VALID")(x)
        x = nn.ConvTranspose(5, (2, 2), strides=(2, 2), padding="VALID")(x)
        x = nn.BatchNorm(use_running_average=True)(x)
        return nn.Dense(3)(x.reshape(x.shape[0], -1))


class Seq(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3,), padding="VALID", name="c1d")(x)
        return nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=6, name="attn")(x)


def _init(module, shape, seed, **kw):
    """Variables of ``module`` with every leaf random (biases and batch statistics too)."""
    rng = np.random.default_rng(seed)

    def randomise(tree):  # keeps the dicts' order (jax.tree_util.tree_map would sort the keys)
        if isinstance(tree, dict):
            return {k: randomise(v) for k, v in tree.items()}
        values = np.abs(rng.normal(size=tree.shape)) + 0.5 if tree.ndim == 1 else rng.normal(size=tree.shape)
        return jnp.asarray(values.astype(tree.dtype))

    return randomise(jax.eval_shape(module.init, jax.random.PRNGKey(seed), jnp.ones(shape), **kw))  # shapes only


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("flax")
    out = {}
    for i, (name, module, shape) in enumerate([("mlp", MLP(), (2, 7)), ("cnn", CNN(), (2, 6, 6, 3)),
                                                ("seq", Seq(), (2, 9, 3))]):
        variables = _init(module, shape, i)
        p = d / f"{name}.msgpack"
        p.write_bytes(serialization.to_bytes(variables))
        out[name] = (p, module, variables, shape)
    return out


def _np(a) -> np.ndarray:
    return np.asarray(a)


def _hand(kind: str, w: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A layer computed from canonical (PyTorch-layout) weights with torch.nn.functional, channels last."""
    if kind == "dense":
        return x @ w.T + b
    t, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    nd = x.ndim - 2
    t = t.permute((0, nd + 1) + tuple(range(1, nd + 1)))
    y = {"conv1d": lambda: F.conv1d(t, wt, bt), "conv2d": lambda: F.conv2d(t, wt, bt),
         "grouped": lambda: F.conv2d(t, wt, bt, groups=4),
         "transpose": lambda: F.conv_transpose2d(t, wt, bt, stride=2)}[kind]()
    return y.permute((0,) + tuple(range(2, nd + 2)) + (1,)).numpy()


def _layer_output(module_cls, kw, params, x):
    return _np(module_cls(**kw).apply({"params": params}, jnp.asarray(x)))


CASES = [  # file, module path, flax module and its arguments, how to compute it by hand, input shape
    ("mlp", "Dense_0", nn.Dense, {"features": 6}, "dense", (2, 7)),
    ("cnn", "Conv_0", nn.Conv, {"features": 4, "kernel_size": (3, 3), "padding": "VALID"}, "conv2d", (2, 6, 6, 3)),
    ("cnn", "Conv_1", nn.Conv, {"features": 8, "kernel_size": (3, 3), "feature_group_count": 4,
                                "padding": "VALID"}, "grouped", (2, 4, 4, 4)),
    ("cnn", "ConvTranspose_0", nn.ConvTranspose, {"features": 5, "kernel_size": (2, 2), "strides": (2, 2),
                                                  "padding": "VALID"}, "transpose", (2, 2, 2, 8)),
    ("seq", "c1d", nn.Conv, {"features": 4, "kernel_size": (3,), "padding": "VALID"}, "conv1d", (2, 9, 3)),
]


@pytest.mark.parametrize("fname, module, cls, kw, kind, shape", CASES)
def test_orientation_by_hand(files, fname, module, cls, kw, kind, shape, rng):
    p, _, variables, _ = files[fname]
    ckpt = load_checkpoint(p)
    w, b = ckpt.load(f"params.{module}.kernel"), ckpt.load(f"params.{module}.bias")
    assert ckpt.info(f"params.{module}.kernel").shape == w.shape
    x = rng.normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(_hand(kind, w, b, x), _layer_output(cls, kw, variables["params"][module], x),
                               rtol=1e-5, atol=1e-5)


def test_attention_projections(files, rng):
    p, _, variables, _ = files["seq"]
    ckpt = load_checkpoint(p)
    attn = variables["params"]["attn"]
    x = rng.normal(size=(2, 7, 4)).astype(np.float32)
    wq, bq = ckpt.load("params.attn.query.kernel"), ckpt.load("params.attn.query.bias")
    assert wq.shape == (6, 4)  # (heads * head_dim, in)
    q = _layer_output(nn.DenseGeneral, {"features": (2, 3)}, attn["query"], x)
    np.testing.assert_allclose((x @ wq.T).reshape(2, 7, 2, 3) + bq, q, rtol=1e-5, atol=1e-5)
    z = rng.normal(size=(2, 7, 2, 3)).astype(np.float32)
    wo, bo = ckpt.load("params.attn.out.kernel"), ckpt.load("params.attn.out.bias")
    o = _layer_output(nn.DenseGeneral, {"features": 4, "axis": (-2, -1)}, attn["out"], z)
    np.testing.assert_allclose(z.reshape(2, 7, 6) @ wo.T + bo, o, rtol=1e-5, atol=1e-5)


def test_names_and_kinds(files):
    ckpt = load_checkpoint(files["cnn"][0])
    assert ckpt.format == "flax"
    assert ckpt.names() == [  # file order; jax sorts dict keys, as in any state that went through jit
        "batch_stats.BatchNorm_0.mean", "batch_stats.BatchNorm_0.var", "params.BatchNorm_0.bias",
        "params.BatchNorm_0.scale", "params.ConvTranspose_0.bias", "params.ConvTranspose_0.kernel",
        "params.Conv_0.bias", "params.Conv_0.kernel", "params.Conv_1.bias", "params.Conv_1.kernel",
        "params.Dense_0.bias", "params.Dense_0.kernel"]
    assert ckpt.info("params.ConvTranspose_0.kernel").shape == (8, 5, 2, 2)  # (in, out, kh, kw)
    assert ckpt.stored_shape("params.ConvTranspose_0.kernel") == (2, 2, 8, 5)
    layers, skipped = find_layers(ckpt)
    assert [(la.name, la.kind) for la in layers] == [  # names sorted as strings: shown in model order
        ("params.Conv_0.kernel", "conv2d"), ("params.Conv_1.kernel", "conv2d"),
        ("params.ConvTranspose_0.kernel", "conv_transpose2d"), ("params.Dense_0.kernel", "linear")]
    assert len(layers) + len(skipped) == len(ckpt)
    assert set(ckpt.converted) == {la.name for la in layers}
    seq = load_checkpoint(files["seq"][0])
    assert sorted((la.name, la.kind) for la in find_layers(seq)[0]) == [
        ("params.attn.key.kernel", "attention"), ("params.attn.out.kernel", "attention"),
        ("params.attn.query.kernel", "attention"), ("params.attn.value.kernel", "attention"),
        ("params.c1d.kernel", "conv1d")]


def test_kind_hints_in_classify():
    info = TensorInfo("m.up.kernel", (8, 5, 2, 2), "float32")
    assert classify(info, hint="conv_transpose2d") == ("conv_transpose2d", "")
    assert classify(info, hint="linear") == ("conv2d", "")  # a hint of the wrong rank is ignored
    assert classify(TensorInfo("tok", (9, 4), "float32"), hint="embedding") == (None, "embedding (not asked for)")
    assert classify(TensorInfo("m.bias", (2, 3), "float32"), hint="attention") == (None, "bias")


def test_round_trip_without_changes_is_byte_identical(files, tmp_path):
    for p, *_ in files.values():
        out = save_checkpoint(load_checkpoint(p), tmp_path / p.name, {})
        assert out.read_bytes() == p.read_bytes()


def _flat(tree, prefix=()):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, prefix + (str(key),)).items()}
    return {".".join(prefix): tree}


def test_rewrite_restores_in_flax_and_computes_the_new_weights(files, tmp_path, rng):
    p, module, variables, shape = files["mlp"]
    ckpt = load_checkpoint(p)
    new = {n: rng.normal(size=ckpt.info(n).shape).astype(np.float32)
           for n in ("params.Dense_0.kernel", "params.Dense_1.kernel", "params.Dense_1.bias")}
    out = save_checkpoint(ckpt, tmp_path / "new.msgpack", new)
    restored = serialization.from_bytes(variables, out.read_bytes())
    x = rng.normal(size=shape).astype(np.float32)
    w = {n: new.get(n, ckpt.load(n)) for n in ckpt.names()}
    y = (x @ w["params.Dense_0.kernel"].T + w["params.Dense_0.bias"]) @ w["params.Dense_1.kernel"].T \
        + w["params.Dense_1.bias"]
    np.testing.assert_allclose(_np(module.apply(restored, jnp.asarray(x))), y, rtol=1e-4, atol=1e-4)
    before = _flat(serialization.msgpack_restore(p.read_bytes()))
    after = _flat(serialization.msgpack_restore(out.read_bytes()))
    assert before.keys() == after.keys()
    for k in before:
        assert after[k].dtype == before[k].dtype and after[k].shape == before[k].shape
        assert (after[k].tobytes() == before[k].tobytes()) == (k not in new), k
    spans = [r for n in new for r in ckpt.byte_ranges(n)]
    a, b = np.frombuffer(p.read_bytes(), np.uint8), np.frombuffer(out.read_bytes(), np.uint8)
    assert all(any(s <= i < e for s, e in spans) for i in np.flatnonzero(a != b))


def test_rewrite_of_cnn_and_attention(files, tmp_path, rng):
    for fname in ("cnn", "seq"):
        p, module, variables, shape = files[fname]
        ckpt = load_checkpoint(p)
        new = {la.name: rng.normal(size=la.shape).astype(np.float32) for la in find_layers(ckpt)[0]}
        out = save_checkpoint(ckpt, tmp_path / f"{fname}.msgpack", new)
        restored = serialization.from_bytes(variables, out.read_bytes())
        reread = load_checkpoint(out)
        for n in ckpt.names():
            np.testing.assert_array_equal(reread.load(n), new.get(n, ckpt.load(n)))
        for fname2, module2, cls, kw, kind, xshape in CASES:
            if fname2 == fname:
                x = rng.normal(size=xshape).astype(np.float32)
                k, b = f"params.{module2}.kernel", f"params.{module2}.bias"
                np.testing.assert_allclose(_layer_output(cls, kw, restored["params"][module2], x),
                                           _hand(kind, new[k], ckpt.load(b), x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_dtypes_kept(tmp_path, rng, dtype):
    if dtype == "float64":  # JAX makes float32 unless x64 is on: a numpy tree, as a float64 checkpoint is
        variables = {"params": {"kernel": rng.normal(size=(5, 4)), "bias": rng.normal(size=4)}}
    else:
        variables = nn.Dense(4, param_dtype=getattr(jnp, dtype)).init(jax.random.PRNGKey(0), jnp.ones((1, 5)))
    p = tmp_path / "m.msgpack"
    p.write_bytes(serialization.to_bytes(variables))
    ckpt = load_checkpoint(p)
    assert ckpt.info("params.kernel").dtype == dtype and ckpt.info("params.kernel").shape == (4, 5)
    stored = np.asarray(variables["params"]["kernel"])
    np.testing.assert_array_equal(ckpt.load("params.kernel"),
                                  stored.astype(np.float32 if dtype == "bfloat16" else dtype).T)
    new = rng.normal(size=(4, 5))
    out = save_checkpoint(ckpt, tmp_path / "m2.msgpack", {"params.kernel": new})
    kernel = serialization.from_bytes(variables, out.read_bytes())["params"]["kernel"]
    assert str(kernel.dtype) == dtype
    np.testing.assert_array_equal(np.asarray(kernel).astype(np.float64),
                                  torch.from_numpy(new.T.copy()).to(getattr(torch, dtype)).double().numpy())


def test_train_state_optimizer_is_kept_not_listed(files, tmp_path):
    optax = pytest.importorskip("optax")
    from flax.training import train_state

    _, module, variables, _ = files["mlp"]
    state = train_state.TrainState.create(apply_fn=module.apply, params=variables["params"], tx=optax.adam(1e-3))
    state = state.replace(step=7, opt_state=(state.opt_state[0]._replace(count=jnp.int32(7)),) + state.opt_state[1:])
    p = tmp_path / "state.flax"
    p.write_bytes(serialization.to_bytes(state))
    ckpt = load_checkpoint(p)
    assert all(n.startswith("params.") for n in ckpt.names()) and ckpt.metadata == {"step": "7"}
    out = save_checkpoint(ckpt, tmp_path / "state2.flax", {"params.Dense_0.kernel": np.zeros((6, 7))})
    restored = serialization.from_bytes(state, out.read_bytes())
    assert restored.step == 7 and int(restored.opt_state[0].count) == 7
    assert not np.asarray(restored.params["Dense_0"]["kernel"]).any()
    np.testing.assert_array_equal(restored.opt_state[0].mu["Dense_0"]["kernel"],
                                  state.opt_state[0].mu["Dense_0"]["kernel"])


def test_chunked_arrays(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 64)
    tree = {"params": {"Dense_0": {"kernel": rng.normal(size=(10, 7)).astype(np.float32)}}}
    p = tmp_path / "chunked.msgpack"
    p.write_bytes(serialization.to_bytes(tree))
    assert b"__msgpack_chunked_array__" in p.read_bytes()
    ckpt = load_checkpoint(p)
    assert ckpt.names() == ["params.Dense_0.kernel"] and ckpt.info("params.Dense_0.kernel").shape == (7, 10)
    assert len(ckpt.byte_ranges("params.Dense_0.kernel")) == 5
    np.testing.assert_array_equal(ckpt.load("params.Dense_0.kernel"), tree["params"]["Dense_0"]["kernel"].T)
    new = rng.normal(size=(7, 10)).astype(np.float32)
    out = save_checkpoint(ckpt, tmp_path / "c2.msgpack", {"params.Dense_0.kernel": new})
    np.testing.assert_array_equal(serialization.from_bytes(tree, out.read_bytes())["params"]["Dense_0"]["kernel"],
                                  new.T)


def test_scanner_agrees_with_msgpack_on_every_type(tmp_path, rng):
    """Every msgpack type around the arrays; arrays of many dtypes, shapes and sizes (bin8/16/32)."""
    tree = {
        "params": {
            "a": rng.normal(size=(3, 4)).astype(np.float16), "b": rng.normal(size=(300, 70)),
            "c": np.arange(5, dtype=np.int64) - 2, "d": np.zeros((0, 3), np.float32),
            "e": np.array(2.5, np.float32), "f": np.array([True, False]), "g": np.float32(1.5),
            "h": (rng.normal(size=(2, 2)) + 1j).astype(np.complex64), "long_" + "k" * 300: np.ones(2, np.uint8),
        },
        "ints": [0, 127, 128, 255, 65535, 2**32, -1, -32, -33, -129, -2**40], "floats": [0.5, -1e300],
        "text": "x" * 70000, "none": None, "flags": [True, False], "z": 1 + 2j, 7: {"nested": [[{"deep": 1}]]},
    }
    p = tmp_path / "all.msgpack"
    p.write_bytes(serialization.to_bytes(tree))
    ckpt = load_checkpoint(p)
    want = {k: v for k, v in _flat(serialization.msgpack_restore(p.read_bytes())).items()
            if isinstance(v, (np.ndarray, np.generic))}
    assert ckpt.names() == list(want)
    for name, value in want.items():
        got = ckpt.load(name)
        expect = np.asarray(value)  # no leaf is named "kernel": every one is shown as stored
        assert got.dtype == expect.dtype and got.shape == expect.shape, name
        np.testing.assert_array_equal(got, expect)
    assert ckpt.metadata["ints.3"] == "255" and ckpt.metadata["ints.10"] == str(-2**40)
    assert save_checkpoint(ckpt, tmp_path / "copy.msgpack", {}).read_bytes() == p.read_bytes()


def test_replacement_of_wrong_shape_writes_nothing(files, tmp_path):
    with pytest.raises(ShapeError, match=r"'params.Dense_0.kernel' replacement has shape \(7, 6\), "
                                         r"expected \(6, 7\)"):
        save_checkpoint(load_checkpoint(files["mlp"][0]), tmp_path / "x.msgpack",
                        {"params.Dense_0.kernel": np.zeros((7, 6))})
    assert list(tmp_path.iterdir()) == []


def test_wrong_suffix_is_sniffed(files, tmp_path):
    p = tmp_path / "weights.bin"
    p.write_bytes(files["cnn"][0].read_bytes())
    assert detect_format(p).name == "flax"
    assert load_checkpoint(p).names() == load_checkpoint(files["cnn"][0]).names()


@pytest.mark.parametrize("cut", [1, 10, 0.5, -3])
def test_truncated(files, tmp_path, cut):
    data = files["cnn"][0].read_bytes()
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(data[: int(len(data) * cut)] if isinstance(cut, float) else data[:cut])
    with pytest.raises(CorruptFileError, match=r"bad\.msgpack: truncated or corrupt Flax msgpack file "
                                               r"\(.*runs past the end"):
        load_checkpoint(bad)


def test_corrupt(files, tmp_path):
    data = files["mlp"][0].read_bytes()
    bad = tmp_path / "bad.flax"
    bad.write_bytes(data + b"\x00\x01")
    with pytest.raises(CorruptFileError, match=r"bad\.flax: corrupt Flax msgpack file \(2 bytes after the end"):
        load_checkpoint(bad)
    bad.write_bytes(b"\x81\xa1a\xc1")
    with pytest.raises(CorruptFileError, match=r"bad\.flax: .*invalid msgpack byte 0xc1, at byte 3"):
        load_checkpoint(bad)
    bad.write_bytes(msgpack.packb([1, 2, 3]))
    with pytest.raises(CorruptFileError, match=r"bad\.flax: not a Flax msgpack checkpoint \(the top-level object "
                                               r"is a list"):
        load_checkpoint(bad)
    record = msgpack.packb(((2, 2), "float32", b"\0" * 12))  # 12 bytes for 4 float32 values
    bad.write_bytes(msgpack.packb({"w": msgpack.ExtType(1, record)}))
    with pytest.raises(CorruptFileError, match=r"an array of shape \(2, 2\) and dtype float32 holds 12 bytes"):
        load_checkpoint(bad)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_damaged_files_raise_netinit_errors(files, name, damaged):
    counts = damaged(files[name][0], n=60, seed=4)
    rejected, tried = counts["truncate"]
    assert rejected == tried
