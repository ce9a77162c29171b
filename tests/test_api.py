"""The public surface of ``import netinit``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import netinit


@pytest.mark.parametrize("name", netinit.__all__)
def test_every_public_name_resolves(name):
    assert getattr(netinit, name) is not None


def test_function_names_survive_submodule_imports():
    import netinit.analyzer  # noqa: F401
    import netinit.diversity as div

    assert callable(netinit.analyze) and not isinstance(netinit.analyze, type(sys))
    assert div is netinit.diversity and div.Decorrelation is not None
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    table = netinit.diversity(model, torch.randn(16, 4, generator=g))
    assert table["layer"].tolist() == ["0", "2"]


def test_import_is_light():
    code = "import sys, netinit; print(sorted(m for m in ('torch', 'igraph', 'seaborn', 'pandas', 'onnx', 'h5py') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        netinit.nope  # noqa: B018


def test_numpy_and_torch_entry_points_agree_on_invariants():
    W = np.random.default_rng(0).normal(size=(6, 5))
    R = netinit.pa_rewire(W, rng=0)
    np.testing.assert_array_equal(np.sort(R.ravel()), np.sort(W.ravel()))
    t = torch.tensor(W)
    assert netinit.pa_rewire_(t, generator=torch.Generator().manual_seed(0)) is t


def test_dir_lists_the_public_names_only():
    names = dir(netinit)
    assert set(netinit.__all__) <= set(names)
    assert not {"Any", "annotations", "importlib", "_LAZY"} & set(names)


def test_analyze_of_a_model_in_memory_says_to_save_it():
    import torch

    with pytest.raises(TypeError, match=r"got Linear; save the weights first \(torch\.save\(model\.state_dict\(\)"):
        netinit.analyze(torch.nn.Linear(3, 2))
    with pytest.raises(TypeError, match=r"got dict; save the weights first"):
        netinit.analyze({"w": torch.zeros(2, 3)})
    with pytest.raises(TypeError, match=r"must be a checkpoint path or a netinit Checkpoint; got int$"):
        netinit.analyze(3)
