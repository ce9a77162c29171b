"""Seed files for the fuzz targets, made by the real libraries (python bench/fuzz/make_seeds.py).

One small model per format, written by the library that owns the format: ``torch.save`` (zip and
legacy), ``safetensors``, ``numpy.savez`` (stored and compressed), ``torch.jit.save``,
``flax.serialization.to_bytes``, ``onnx.helper``,
and ``keras`` (``.keras``, ``.weights.h5``, legacy ``.h5``). Weights are drawn from explicit seeds,
so the seeds are the same on every run. Writes ``bench/fuzz/seeds/<target>/``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

SEEDS = Path(__file__).resolve().parent / "seeds"


def _dir(name: str) -> Path:
    d = SEEDS / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def _torch_net():
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.ReLU(),
                         nn.Linear(5, 4))


def torch_seeds() -> None:
    import torch
    from safetensors.torch import save_file

    net = _torch_net()
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    torch.save(sd, _dir("pt") / "state_dict.pt")
    torch.save({"model": sd, "epoch": 3}, _dir("pt") / "wrapped.pt")
    torch.save(sd, _dir("pt") / "legacy.pt", _use_new_zipfile_serialization=False)
    half = {k: v.to(torch.bfloat16) for k, v in sd.items()}
    save_file(sd, str(_dir("safetensors") / "model.safetensors"), metadata={"format": "pt"})
    save_file(half, str(_dir("safetensors") / "bf16.safetensors"))
    np.savez(_dir("npz") / "model.npz", **{k: v.numpy() for k, v in sd.items()})
    np.savez_compressed(_dir("npz") / "compressed.npz", **{k: v.numpy() for k, v in sd.items()})
    torch.jit.save(torch.jit.script(net), str(_dir("torchscript") / "model.jit"))
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 2, 6, 6)), str(_dir("torchscript") / "traced.jit"))


def flax_seeds() -> None:
    import flax.linen as fnn
    import jax
    from flax import serialization

    class Net(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            x = fnn.Conv(3, (3, 3))(x)
            x = fnn.Dense(4)(x.reshape(x.shape[0], -1))
            return fnn.Dense(2)(x)

    params = Net().init(jax.random.PRNGKey(0), np.zeros((1, 5, 5, 2), np.float32))
    (_dir("flax") / "params.msgpack").write_bytes(serialization.to_bytes(params))
    state = {"params": params["params"], "step": 7, "opt_state": {"mu": params["params"]}}
    (_dir("flax") / "state.msgpack").write_bytes(serialization.to_bytes(state))


def onnx_seeds() -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(4, np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "w2")
    conv = numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "conv")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm"),
        helper.make_node("Add", ["h", "b1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "w2"], ["y"], transB=1, name="gemm"),
        helper.make_node("Conv", ["img", "conv"], ["z"], name="conv"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6]),
         helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 3, 3])],
        initializer=[w1, b1, w2, conv])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(_dir("onnx") / "model.onnx"))
    typed = onnx.ModelProto()
    typed.CopyFrom(model)
    for t in typed.graph.initializer:  # values in float_data instead of raw_data
        arr = numpy_helper.to_array(t)
        t.ClearField("raw_data")
        t.float_data.extend(arr.ravel().tolist())
    onnx.save(typed, str(_dir("onnx") / "typed.onnx"))


def keras_seeds() -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, name="c1"),
                              keras.layers.Flatten(), keras.layers.Dense(4, name="d1"),
                              keras.layers.Dense(2, name="d2")])
    model.save(_dir("keras") / "model.keras")
    model.save_weights(_dir("h5") / "model.weights.h5")
    model.save(_dir("h5") / "legacy.h5")


def main(which: list[str]) -> None:
    makers = {"torch": torch_seeds, "flax": flax_seeds, "onnx": onnx_seeds, "keras": keras_seeds}
    for name in which or list(makers):
        makers[name]()
    for f in sorted(SEEDS.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(SEEDS)}  {f.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
