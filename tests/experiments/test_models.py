from __future__ import annotations

import numpy as np
import pytest
import torch

from netinit.experiments.config import ConfigError, InitConfig, ModelConfig, parse_method
from netinit.experiments.models import build_model, initialise, input_shape, weight_layers


@pytest.mark.parametrize(("arch", "features"), [("mlp", 64), ("cnn", 64), ("cnn", 40), ("resnet", 64), ("resnet", 40)])
def test_architectures_forward(arch, features):
    m = build_model(ModelConfig(arch=arch, hidden=(16, 8), channels=(4, 8), blocks=1), features, 10)
    out = m(torch.randn(5, features, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (5, 10)
    assert list(weight_layers(m))[-1] == "out"


def test_input_shape():
    assert input_shape(64) == (1, 8, 8) and input_shape(784) == (1, 28, 28) and input_shape(40) == (1, 40)
    assert input_shape(3072) == (3, 32, 32)  # CIFAR-10 (netinit.experiments.datasets.IMAGE_SHAPES)
    assert input_shape(48) == (1, 48) and input_shape(48, (3, 4, 4)) == (3, 4, 4)
    with pytest.raises(ValueError, match=r"image_shape must be .* holding the 64 input features, got \(3, 4, 4\)"):
        input_shape(64, (3, 4, 4))


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_cifar_shaped_inputs_are_colour_images(arch):
    m = build_model(ModelConfig(arch=arch, channels=(4, 8), blocks=1), 3072, 10)
    first = m.stem if arch == "resnet" else m.conv1
    assert first.in_channels == 3 and m.unflatten.unflattened_size == (3, 32, 32)
    out = m(torch.randn(2, 3072, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, 10)
    explicit = build_model(ModelConfig(arch=arch, channels=(4,)), 48, 10, image_shape=(3, 4, 4))
    assert explicit(torch.zeros(2, 48)).shape == (2, 10)


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_tiny_run_on_fake_cifar_through_the_runner(tmp_path, arch, tiny, torch_one_thread):
    """Fake CIFAR-10 python batches -> netinit.experiments.datasets -> analysis.runner.train_run with a CNN."""
    import pickle

    from netinit.experiments.runner import train_run

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, n in [*((f"data_batch_{i}", 8) for i in range(1, 6)), ("test_batch", 10)]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=4)
    cfg = tiny(**{"data.name": "cifar10", "data.path": str(tmp_path), "model.arch": arch,
                  "model.channels": [4, 8], "train.epochs": 1, "train.batch_size": 16, "stats.samples": 8})
    with pytest.raises(ConfigError, match=r"data.name = 'cifar10' needs data.path \(the cifar-10-batches-py folder"):
        tiny(**{"data.name": "cifar10"})
    cond = cfg.grid.conditions()[1]  # default+pa: PA rewires the 3-channel convolutions too
    df = train_run(cfg, cond, seed=0)
    assert (df["status"] == "ok").all(), df["error"].iloc[0]
    epochs = df[df["layer"] == ""]
    assert sorted(epochs["epoch"].unique()) == [0, 1] and epochs["value"].notna().all()
    first = "stem" if arch == "resnet" else "conv1"
    assert first in set(df["layer"])


def _weights(method: str, seed: int, arch: str = "mlp", **opts) -> dict[str, torch.Tensor]:
    m = build_model(ModelConfig(arch=arch, hidden=(32, 16), channels=(4, 8)), 64, 10)
    info = initialise(m, parse_method(method), seed, InitConfig(**opts))
    sd = {k: v.detach().clone() for k, v in m.state_dict().items()}
    sd["_info"] = info
    return sd


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("seed", [0, 7])
def test_paired_design_same_base_draw(arch, seed):
    """For a seed, +pa and +decorrelated act on the very draw of the base method; biases are shared."""
    from netinit.diversity import decorrelate

    base = _weights("default", seed, arch)
    pa = _weights("default+pa", seed, arch)
    dec = _weights("default+decorrelated", seed, arch)
    assert base["_info"]["base_draw"] == pa["_info"]["base_draw"] == dec["_info"]["base_draw"]
    assert base["_info"]["init_weights"] != pa["_info"]["init_weights"]
    for k, w in base.items():
        if k == "_info":
            continue
        if k.endswith("bias"):
            assert torch.equal(w, pa[k]) and torch.equal(w, dec[k])
        else:  # PA keeps each layer's multiset of values exactly, only positions change
            assert torch.equal(torch.sort(w.flatten()).values, torch.sort(pa[k].flatten()).values)
            assert not torch.equal(w, pa[k])
            expect, _ = decorrelate(w)
            torch.testing.assert_close(dec[k], expect)


def test_other_seed_other_draw_and_determinism():
    a, b, a2 = _weights("default", 0), _weights("default", 1), _weights("default", 0)
    assert a["_info"]["base_draw"] != b["_info"]["base_draw"]
    assert a["_info"] == a2["_info"] and all(torch.equal(a[k], a2[k]) for k in a if k != "_info")


def test_stabilize_keeps_the_best_draw_and_the_base_draw_is_a_candidate():
    from netinit.rewire import strength_variances

    base = _weights("kaiming_normal", 3)
    one = _weights("kaiming_normal+stabilize", 3, stabilize_k=1)   # k = 1: only the base draw
    many = _weights("kaiming_normal+stabilize", 3, stabilize_k=20)
    for k in ("fc1.weight", "fc2.weight", "out.weight"):
        assert torch.equal(base[k], one[k])
        assert sum(strength_variances(many[k])) <= sum(strength_variances(base[k]))


def test_pa_lowers_strength_variance():
    from netinit.rewire import strength_variances

    base, pa = _weights("orthogonal", 2), _weights("orthogonal+pa", 2)
    v0 = np.array(strength_variances(base["fc1.weight"]))
    v1 = np.array(strength_variances(pa["fc1.weight"]))
    assert (v1 < v0).all()
