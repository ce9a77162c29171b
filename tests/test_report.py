"""The analysis report: figures chosen from the layers there are."""

from __future__ import annotations

import numpy as np
import pandas as pd
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


def test_null_and_network_sections_only_when_asked(tmp_path):
    p = _saved(tmp_path, 6, 8, 8, 4)
    plain = write_report(analyze(p), tmp_path / "plain")
    assert "null_zscores.png" not in {w.name for w in plain}
    html = (tmp_path / "plain" / "report.html").read_text()
    assert "Null model" not in html and "Network measures" not in html
    written = {w.name for w in write_report(analyze(p, null=5, network=True), tmp_path / "full")}
    assert "null_zscores.png" in written
    html = (tmp_path / "full" / "report.html").read_text()
    assert "<h2>Null model: z-scores</h2>" in html and "corr_in_mean_abs_z" in html
    assert "Network measures on |w|" in html and "neural_persistence_normalized" in html
    assert "the correlation's z against the same shuffled copies" in html


def test_z_columns_leave_out_statistics_without_a_z():
    import pandas as pd

    from netinit.report import z_columns

    L = pd.DataFrame({"layer": ["a", "b"], "x_z": [1.0, float("nan")], "y_z": [float("nan")] * 2,
                      "strength_correlation_z": [1.0, 2.0], "w": [1.0, 2.0]})
    assert z_columns(L) == ["x_z"]


def test_trajectory_is_drawn_per_role_for_many_layers():
    import pandas as pd

    from netinit.report import _trajectory_frame

    rows = [{"checkpoint": c, "step": s, "layer": f"model.layers.{b}.{r}.weight", "role": r,
             "weight_std": float(b + s)} for c, s in (("a", 0), ("b", 10))
            for b in range(5) for r in ("attn_q", "mlp_up")]
    L = pd.DataFrame(rows).astype({"step": "Int64"})
    df, xlabel, hue, ticks = _trajectory_frame(L)
    assert hue.startswith("role") and sorted(df["line"].unique()) == ["attn_q", "mlp_up"]
    assert xlabel == "step" and ticks is None
    assert df.set_index(["x", "line"]).loc[(10, "mlp_up"), "weight_std"] == 12.0  # mean over blocks 0-4
    few = L[L["layer"].str.contains(r"layers\.[01]\.")]
    df, _, hue, _ = _trajectory_frame(few.assign(step=pd.array([None] * len(few), dtype="Int64")))
    assert hue == "layer" and df["x"].tolist()[:1] == [0]


def test_trajectory_report_and_a_later_single_report_in_the_same_folder(tmp_path):
    from netinit.report import write_trajectory_report
    from netinit.trajectory import analyze_trajectory

    (tmp_path / "b").mkdir()
    p1, p2 = _saved(tmp_path, 6, 8, 4), _saved(tmp_path / "b", 6, 8, 4)
    out = tmp_path / "out"
    traj = analyze_trajectory([p1, p2], steps=[0, 5], null=4)
    written = {w.name for w in write_trajectory_report(traj, out)}
    assert {"layers.csv", "trajectories.png", "null_zscores.png", "report.html", "summary.json"} <= written
    html = (out / "report.html").read_text()
    assert "trajectories.png" in html and "z-scores at the last checkpoint" in html
    assert {w.name for w in write_report(analyze(p1), out)} == {f.name for f in out.iterdir()}
    assert not (out / "trajectories.png").exists()
    with pytest.raises(ValueError, match=r"neurons_format must be 'csv' or 'parquet', got 'xls'"):
        write_trajectory_report(traj, out, neurons_format="xls")


# -- large tables through pyarrow's CSV writer: the bytes of to_csv --------------------------------
def _awkward_frame(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)
    x[:12] = [1.0, 0.0, -0.0, 1e-5, 1e16, 1e15, np.inf, -np.inf, np.nan, 0.1, 5e-324, 2048.0]
    return pd.DataFrame({
        "layer": pd.array([f"model.layers.{i % 7}.mlp.weight" for i in range(n)], dtype="string"),
        "block": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),
        "role": pd.array([None if i % 3 == 0 else "attn_q" for i in range(n)], dtype="string"),
        "node": np.arange(n),
        "strength": x,
        "small": x.astype(np.float32),
        "flag": rng.random(n) < 0.5,
        "degree": rng.integers(0, 5000, n),
    })


@pytest.mark.parametrize("seed", range(3))
def test_arrow_csv_is_to_csv_byte_for_byte(tmp_path, seed):
    import warnings

    from netinit.report import _arrow_csv

    df = _awkward_frame(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # float32 overflow of the awkward values
        assert _arrow_csv(df, tmp_path / "fast.csv")
    df.to_csv(tmp_path / "slow.csv", index=False)
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "slow.csv").read_bytes()


def test_write_table_falls_back_to_pandas_where_arrow_cannot(tmp_path, monkeypatch):
    import netinit.report as report_mod

    monkeypatch.setattr(report_mod, "FAST_CSV_ROWS", 2)
    for df in (pd.DataFrame({"name": pd.array(["a,b", "c", 'say "x"'], dtype="string"), "v": [1.0, 2.5, np.nan]}),
               pd.DataFrame({"obj": [object(), 1, "x"]}).astype({"obj": str}).assign(o=[[1], [2], [3]]),
               pd.DataFrame({"a,b": [1, 2, 3]})):
        report_mod.write_table(df, tmp_path / "t.csv")
        assert (tmp_path / "t.csv").read_text() == df.to_csv(index=False)
        assert not [p for p in tmp_path.iterdir() if p.name != "t.csv"]
