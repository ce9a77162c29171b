"""The analysis report: figures chosen from the layers there are."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from netinit import analyze
from netinit.formats import load_checkpoint
from netinit.report import write_report


def _saved(tmp_path, *sizes):
    g = torch.Generator().manual_seed(0)
    layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
    sd = {}
    for i, lin in enumerate(layers):
        sd[f"{i}.weight"] = torch.randn(lin.weight.shape, generator=g)
        sd[f"{i}.bias"] = torch.zeros(lin.bias.shape)
    p = tmp_path / "m.pt"
    torch.save(sd, p)
    return p


@pytest.mark.parametrize("sizes, heatmap_of", [((1, 16, 1), None), ((1, 8, 8, 1), "1.weight")])
def test_heatmap_only_of_a_layer_with_correlations(tmp_path, sizes, heatmap_of):
    """A (16, 1) layer has no incoming-weight correlation: no heatmap of it, and no error."""
    p = _saved(tmp_path, *sizes)
    result = analyze(p)
    with load_checkpoint(p) as ckpt:
        written = write_report(result, tmp_path / "out", matrix_of=lambda name: ckpt.load(name))
    names = {w.name for w in written}
    assert "report.html" in names and "layers.csv" in names
    assert ("correlation_heatmap.png" in names) == (heatmap_of is not None)
    html = (tmp_path / "out" / "report.html").read_text()
    if heatmap_of is not None:
        assert "correlation_heatmap.png" in html
    else:
        assert "correlation_heatmap.png" not in html


def test_rerun_in_the_same_folder_leaves_no_stale_outputs(tmp_path):
    """A second run without figures and with parquet neurons removes the first run's PNGs and
    neurons.csv (files netinit wrote; a foreign file is refused before anything is written)."""
    pytest.importorskip("pyarrow")
    p = _saved(tmp_path, 1, 8, 8, 1)
    result = analyze(p)
    out = tmp_path / "out"
    first = {w.name for w in write_report(result, out)}
    assert {"strength_variance.png", "neurons.csv"} <= first
    second = {w.name for w in write_report(result, out, plots=False, neurons_format="parquet")}
    assert {f.name for f in out.iterdir()} == second
    assert "neurons.parquet" in second and not any(n.endswith(".png") for n in second)
