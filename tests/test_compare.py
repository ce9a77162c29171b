from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from netinit.compare import compare_checkpoints
from netinit.errors import NoLayersError, ShapeError
from netinit.report_compare import write_comparison


@pytest.fixture
def pair(tmp_path):
    A = {"fc1.weight": torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]]),
         "fc2.weight": torch.tensor([[1.0, 0.0, -1.0]]), "fc2.bias": torch.zeros(1),
         "old.weight": torch.ones(2, 2)}
    B = {"fc1.weight": torch.tensor([[1.0, 2.0], [3.0, 5.0], [0.0, 3.0]]),
         "fc2.weight": torch.tensor([[2.0, 0.0, -2.0]]), "new.weight": torch.ones(2, 2)}
    pa = tmp_path / "a.pt"
    torch.save({"state_dict": A, "epoch": 0}, pa)  # a Lightning-style container against a flat file
    pb = tmp_path / "b.safetensors"
    save_file(B, str(pb))
    return pa, pb, A, B


def test_values_against_hand_computed(pair):
    pa, pb, A, B = pair
    c = compare_checkpoints(pa, pb)
    row = c.layers.set_index("layer").loc["fc1.weight"]
    a, b = A["fc1.weight"].double().numpy(), B["fc1.weight"].double().numpy()
    assert row["rel_change"] == pytest.approx(np.sqrt(1 + 4) / np.sqrt(1 + 4 + 9 + 16 + 1))
    # in-strengths: A (3, 7, 1), B (3, 8, 3)
    assert row["in_strength_var_a"] == pytest.approx(np.var([3, 7, 1]))
    assert row["in_strength_var_b"] == pytest.approx(np.var([3, 8, 3]))
    assert row["in_strength_corr"] == pytest.approx(np.corrcoef([3, 7, 1], [3, 8, 3])[0, 1])
    assert row["out_strength_var_a"] == pytest.approx(np.var(a.sum(0)))
    assert row["out_strength_corr"] == pytest.approx(np.corrcoef(a.sum(0), b.sum(0))[0, 1])
    assert row["in_strength_var_ratio"] == pytest.approx(np.var([3, 8, 3]) / np.var([3, 7, 1]))
    fc2 = c.layers.set_index("layer").loc["fc2.weight"]
    assert fc2["rel_change"] == pytest.approx(1.0)
    n = c.neurons[(c.neurons.layer == "fc1.weight") & (c.neurons.side == "out")]
    assert n["strength_a"].tolist() == [3, 7, 1] and n["change"].tolist() == [0, 1, 2]
    assert sorted(zip(c.unmatched.layer, c.unmatched.status)) == [("new.weight", "only in B"),
                                                                  ("old.weight", "only in A")]


def test_shape_change_is_an_error_unless_allowed(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, fc=np.ones((2, 3)), head=np.ones((1, 2)))
    np.savez(b, fc=np.ones((3, 3)), head=np.ones((1, 2)))
    with pytest.raises(ShapeError, match=r"layer 'fc' has shape \(3, 3\) in B but \(2, 3\)"):
        compare_checkpoints(a, b)
    c = compare_checkpoints(a, b, allow_mismatch=True)
    assert c.layers.layer.tolist() == ["head"]
    assert c.unmatched.to_dict(orient="records") == [
        {"layer": "fc", "status": "shape changed", "shape_a": "2x3", "shape_b": "3x3"}]


def test_no_shared_layers(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, x=np.ones((2, 3)))
    np.savez(b, y=np.ones((2, 3)))
    with pytest.raises(NoLayersError, match=r"share no weight layer .*\(1 layers in A, 1 in B\)"):
        compare_checkpoints(a, b)


def test_report_files(pair, tmp_path):
    pa, pb, _, _ = pair
    out = tmp_path / "diff"
    written = write_comparison(compare_checkpoints(pa, pb), out)
    names = {p.name for p in written}
    assert {"layers.csv", "neurons.csv", "unmatched.csv", "report.html", "strength_scatter.png"} <= names
    assert "fc1.weight" in (out / "report.html").read_text()
    assert (out / "strength_scatter.png").read_bytes()[:4] == b"\x89PNG"
