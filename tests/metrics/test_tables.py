"""layer_summary and neuron_table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from netinit._rng import layer_generator
from netinit.errors import NonFiniteError, ShapeError
from netinit.metrics import (
    correlation_summary,
    degree,
    in_strength,
    neuron_centrality,
    out_strength,
    strength_stats,
)
from netinit.metrics.tables import layer_summary, neuron_table

REQUIRED = [
    "layer", "kind", "shape", "n_out", "n_in", "in_strength_mean", "in_strength_var",
    "out_strength_mean", "out_strength_var", "weight_mean", "weight_std", "corr_in_mean_abs",
    "corr_in_max_abs", "corr_in_share_above", "corr_out_mean_abs", "corr_out_max_abs",
    "corr_out_share_above", "effective_n_in", "n_zero", "density",
]


@pytest.fixture
def conv():
    W = np.random.default_rng(0).normal(size=(16, 3 * 3 * 3))
    W[0, :5] = 0.0
    return W


def test_layer_summary_keys_and_values(conv):
    row = layer_summary(conv, layer="conv1", kind="conv2d", shape=(16, 3, 3, 3), threshold=0.3)
    assert set(REQUIRED) <= set(row)
    assert (row["layer"], row["kind"], row["shape"]) == ("conv1", "conv2d", "16x3x3x3")
    assert (row["n_out"], row["n_in"], row["n_zero"]) == (16, 27, 5)
    assert row["density"] == pytest.approx(1 - 5 / (16 * 27))
    st = strength_stats(conv)
    for key in ("in_strength_mean", "in_strength_var", "out_strength_var", "weight_std"):
        assert row[key] == st[key]
    assert row["in_strength_var"] == pytest.approx(np.var(conv.sum(axis=1)))
    # "in" = rows (incoming vectors of output neurons), "out" = columns
    R_in = np.corrcoef(conv)[~np.eye(16, dtype=bool)]
    R_out = np.corrcoef(conv.T)[~np.eye(27, dtype=bool)]
    assert row["corr_in_mean_abs"] == pytest.approx(np.abs(R_in).mean())
    assert row["corr_in_max_abs"] == pytest.approx(np.abs(R_in).max())
    assert row["corr_in_share_above"] == pytest.approx((np.abs(R_in) > 0.3).mean())
    assert row["corr_out_mean_abs"] == pytest.approx(np.abs(R_out).mean())
    assert row["corr_out_share_above"] == pytest.approx((np.abs(R_out) > 0.3).mean())
    assert row["effective_n_in"] == pytest.approx(correlation_summary(conv)["effective_n"])
    assert row["effective_n_out"] == pytest.approx(correlation_summary(conv.T)["effective_n"])
    assert 1 <= row["effective_n_in"] <= 16
    assert row["corr_threshold"] == 0.3


def test_layer_summary_defaults_and_table(conv):
    rows = [layer_summary(conv, layer="a", kind="linear"),
            layer_summary(conv[:4], layer="b", kind="linear")]
    assert rows[0]["shape"] == "16x27"
    df = pd.DataFrame(rows)
    assert df["layer"].tolist() == ["a", "b"] and not df.isna().any().any()


def test_layer_summary_single_output_neuron():
    W = np.random.default_rng(1).normal(size=(1, 10))
    row = layer_summary(W, layer="head", kind="linear")
    # one output: a single row (no pairs) and 10 one-entry columns (no correlation at all)
    assert (row["corr_in_mean_abs"], row["effective_n_in"]) == (0.0, 1.0)
    assert (row["corr_out_mean_abs"], row["effective_n_out"], row["corr_out_n_constant"]) == (
        0.0, 0.0, 10)


def test_layer_summary_torch_matches_numpy(conv):
    torch = pytest.importorskip("torch")
    a = layer_summary(torch.from_numpy(conv), layer="c", kind="conv2d")
    b = layer_summary(conv, layer="c", kind="conv2d")
    for key, value in b.items():
        if isinstance(value, str):
            assert a[key] == value
        else:
            assert a[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key


def test_layer_summary_errors():
    with pytest.raises(NonFiniteError, match="fc1 holds 1 non-finite value"):
        layer_summary(np.array([[1.0, np.nan]]), layer="fc1", kind="linear")
    with pytest.raises(ShapeError, match=r"fc1: expected a 2-D .* got shape \(5,\)"):
        layer_summary(np.ones(5), layer="fc1", kind="linear")
    with pytest.raises(ShapeError, match="non-empty"):
        layer_summary(np.ones((0, 5)), layer="fc1", kind="linear")
    with pytest.raises(ValueError, match="threshold must lie in \\[0, 1\\], got -0.1"):
        layer_summary(np.ones((2, 2)), layer="fc1", kind="linear", threshold=-0.1)
    with pytest.raises(ValueError, match="shape must be a sequence of ints"):
        layer_summary(np.ones((2, 2)), layer="fc1", kind="linear", shape=(2.0, 2))


def test_neuron_table(conv):
    t = neuron_table(conv, layer="conv1")
    assert list(t.columns) == ["layer", "node", "side", "neuron", "strength", "abs_strength",
                               "degree"]
    assert len(t) == 27 + 16 and (t["layer"] == "conv1").all()
    inp, out = t[t["side"] == "in"], t[t["side"] == "out"]
    np.testing.assert_array_equal(inp["strength"], out_strength(conv))
    np.testing.assert_array_equal(out["strength"], in_strength(conv))
    np.testing.assert_array_equal(inp["abs_strength"], out_strength(conv, abs=True))
    k_in, k_out = degree(conv)
    np.testing.assert_array_equal(out["degree"], k_in)
    np.testing.assert_array_equal(inp["degree"], k_out)
    assert out["neuron"].tolist() == list(range(16))
    assert t["node"].tolist() == list(range(43))


def test_neuron_table_with_centrality(conv):
    t = neuron_table(conv, layer="conv1", centrality="sampled", k=8, rng=3)
    c = neuron_centrality(conv, method="sampled", k=8, rng=layer_generator(3, "conv1"))
    np.testing.assert_array_equal(t[["betweenness", "closeness"]], c[["betweenness", "closeness"]])
    np.testing.assert_allclose(t[["eigenvector", "pagerank"]], c[["eigenvector", "pagerank"]])
    assert (t["centrality_method"] == "sampled(k=8)").all()
    assert (t["distance_transform"] == "1/|w|").all()
    other = neuron_table(conv, layer="conv2", centrality="sampled", k=8, rng=3)
    assert not np.array_equal(other["betweenness"], t["betweenness"])  # own stream per layer


def test_neuron_table_torch(conv):
    torch = pytest.importorskip("torch")
    a = neuron_table(torch.from_numpy(conv), layer="c", centrality="exact")
    b = neuron_table(conv, layer="c", centrality="exact")
    num = ["strength", "abs_strength", "degree", "betweenness", "closeness"]
    np.testing.assert_allclose(a[num].to_numpy(float), b[num].to_numpy(float), rtol=1e-12)


def test_neuron_table_errors():
    with pytest.raises(ValueError, match=r"centrality must be one of .* got 'yes'"):
        neuron_table(np.ones((2, 2)), layer="fc", centrality="yes")
    with pytest.raises(NonFiniteError, match="fc holds 1 non-finite value"):
        neuron_table(np.array([[np.inf, 1.0]]), layer="fc")



def test_layer_summary_correlation_methods(monkeypatch):
    import netinit.metrics.correlation as corr_mod

    W = np.random.default_rng(7).normal(size=(600, 20))
    exact = layer_summary(W, layer="fc", kind="linear", correlation="exact")
    assert layer_summary(W, layer="fc", kind="linear") == exact  # auto: exact up to 1024 neurons
    for side in ("in", "out"):
        assert exact[f"corr_{side}_method"] == "exact"
        assert not exact[f"corr_{side}_max_abs_is_lower_bound"]
        assert exact[f"corr_{side}_mean_abs_se"] == exact[f"effective_n_{side}_se"] == 0.0
    s = layer_summary(W, layer="fc", kind="linear", correlation="sampled", rng=3)
    # the "in" side (600 rows) is sampled from the layer's own stream; "out" (20) is exact
    expected = correlation_summary(W, method="sampled", rng=layer_generator(3, "fc"))
    assert s["corr_in_method"] == f"sampled(s={corr_mod.SAMPLE_SIZE})" == expected["method"]
    assert s["corr_in_max_abs_is_lower_bound"] and not s["corr_out_max_abs_is_lower_bound"]
    for key in ("mean_abs", "share_above", "mean_sq"):
        assert s[f"corr_in_{key}"] == expected[key]
        assert s[f"corr_in_{key}_se"] == expected[f"{key}_se"]
    assert s["effective_n_in_se"] == expected["effective_n_se"]
    assert s["corr_in_mean_abs"] == pytest.approx(exact["corr_in_mean_abs"],
                                                  abs=4 * s["corr_in_mean_abs_se"])
    assert s["corr_out_method"] == "exact" and s["corr_out_mean_abs"] == exact["corr_out_mean_abs"]
    other = layer_summary(W, layer="fc2", kind="linear", correlation="sampled", rng=3)
    assert other["corr_in_mean_abs"] != s["corr_in_mean_abs"]  # each layer its own stream
    monkeypatch.setattr(corr_mod, "EXACT_MAX_NEURONS", 100)
    assert layer_summary(W, layer="fc", kind="linear", rng=3) == s
    with pytest.raises(ValueError, match=r"correlation must be one of .* got 'fast'"):
        layer_summary(W, layer="fc", kind="linear", correlation="fast")
