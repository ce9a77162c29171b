"""netinit.analyzer: the null-model and network options of analyze, and the chain table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from netinit import analyze
from netinit._rng import layer_generator
from netinit.metrics import SUMMARY_STATS, network_measures, neural_persistence, null_summary

EXAMPLE = "data/examples/mlp_digits.safetensors"


@pytest.fixture(scope="module")
def example(request):
    root = request.config.rootpath
    return root / EXAMPLE


@pytest.fixture(scope="module")
def plain(example):
    return analyze(example)


@pytest.fixture(scope="module")
def full(example):
    return analyze(example, null=8, null_model="rows", network=True, seed=4)


def test_null_and_network_only_add_columns(plain, full):
    """Every column of the plain analysis keeps its values; the options are recorded."""
    for table in ("layers", "neurons", "chains", "skipped"):
        old, new = getattr(plain, table), getattr(full, table)
        pd.testing.assert_frame_equal(new[list(old.columns)], old, check_exact=True, obj=table)
    assert full.options["null"] == 8 and full.options["null_model"] == "rows"
    assert full.options["network"] is True and full.options["network_max_side"] == 2048
    assert full.options["network_max_weights"] == 2048 * 2048
    assert "null" not in plain.options and "network" not in plain.options


def test_null_columns_are_null_summary_on_the_layer_stream(example, full):
    from netinit.formats import load_checkpoint

    L = full.layers
    for s in SUMMARY_STATS:
        for suffix in ("_null_mean", "_null_sd", "_z"):
            assert s + suffix in L.columns
    assert (L["null_model"] == "rows").all() and (L["null_shuffles"] == 8).all()
    assert L["in_strength_var_z"].isna().all()  # the rows model keeps every in-strength
    assert L["corr_in_mean_abs_z"].notna().all()
    with load_checkpoint(example) as ckpt:
        W = ckpt.load("2.weight")
    expected = null_summary(W, shuffles=8, model="rows", rng=layer_generator(4, "2.weight").spawn(2)[0])
    row = L.set_index("layer").loc["2.weight"]
    for key, v in expected.items():
        assert row[key] == v or (math.isnan(v) and math.isnan(row[key])), key


def test_a_layer_result_does_not_depend_on_the_other_layers(example, full):
    alone = analyze(example, layers=r"^2\.weight$", null=8, null_model="rows", network=True, seed=4)
    # the same persistence normaliser, so that every column can match
    w_max = full.options["persistence_w_max"]
    assert alone.options["persistence_w_max"] <= w_max
    row = full.layers.set_index("layer").loc["2.weight"]
    mine = alone.layers.set_index("layer").loc["2.weight"]
    for col in full.layers.columns:
        if col in ("layer", "neural_persistence", "neural_persistence_normalized", "persistence_w_max"):
            continue
        a, b = row[col], mine[col]
        assert (pd.isna(a) and pd.isna(b)) or a == b, col


def test_network_columns_and_global_persistence_normaliser(example, full):
    from netinit.formats import load_checkpoint

    with load_checkpoint(example) as ckpt:
        mats = {n: ckpt.load(n) for n in full.layers["layer"]}
    w_max = max(float(np.abs(W).max()) for W in mats.values())
    assert full.options["persistence_w_max"] == w_max
    L = full.layers.set_index("layer")
    assert (L["persistence_w_max"] == w_max).all() and (L["network_skipped"] == "").all()
    assert (L["weight_transform"] == "|w|").all()
    for name, W in mats.items():
        np_ = neural_persistence(W, w_max=w_max)
        assert L.loc[name, "neural_persistence_normalized"] == np_["neural_persistence_normalized"]
        assert 0 < L.loc[name, "neural_persistence_normalized"] <= 1
    row, neurons = network_measures(mats["4.weight"], layer="4.weight", w_max=w_max,
                                    rng=layer_generator(4, "4.weight").spawn(2)[1])
    for key in ("clustering_mean", "harmonic_mean", "current_flow_closeness_mean", "modularity",
                "n_communities", "log_estrada_index"):
        assert L.loc["4.weight", key] == row[key], key
    N = full.neurons[full.neurons["layer"] == "4.weight"]
    for col in ("clustering", "harmonic", "current_flow_closeness", "subgraph_centrality_log", "community"):
        got = N.sort_values(["side", "neuron"])[col].to_numpy()
        want = neurons.sort_values(["side", "neuron"])[col].to_numpy()
        np.testing.assert_array_equal(got, want, err_msg=col)
    assert len(full.neurons) == len(analyze(example).neurons)


def test_wide_layers_skip_the_slow_measures_with_the_reason(example, monkeypatch):
    import netinit.analyzer

    monkeypatch.setattr(netinit.analyzer, "NETWORK_MAX_SIDE", 100)
    monkeypatch.setattr(netinit.analyzer, "NETWORK_MAX_WEIGHTS", 8000)
    r = analyze(example, network=True)
    L = r.layers.set_index("layer")
    assert L.loc["0.weight", "network_skipped"] == ("clustering, harmonic, current_flow: 128 neurons on a "
                                                    "side > 100; subgraph, communities: 8192 weights > 8000")
    assert L.loc["4.weight", "network_skipped"] == ""
    assert math.isnan(L.loc["0.weight", "clustering_mean"]) and not math.isnan(L.loc["4.weight", "clustering_mean"])
    assert math.isnan(L.loc["2.weight", "modularity"]) and not math.isnan(L.loc["4.weight", "modularity"])
    assert L["neural_persistence_normalized"].notna().all()  # always computed
    N = r.neurons
    assert N.loc[N["layer"] == "0.weight", "harmonic"].isna().all()
    assert N.loc[N["layer"] == "0.weight", "subgraph_centrality_log"].isna().all()
    assert N.loc[N["layer"] == "4.weight", "community"].notna().all() and str(N["community"].dtype) == "Int64"


def test_chains_carry_strength_flow_and_its_null(plain, full):
    C = plain.chains.set_index("layer_a")
    L = plain.layers.set_index("layer")
    assert C.loc["0.weight", "in_strength_mean"] == L.loc["0.weight", "in_strength_mean"]
    assert C.loc["0.weight", "out_strength_mean"] == L.loc["2.weight", "out_strength_mean"]
    assert C.loc["2.weight", "in_strength_abs_mean"] == L.loc["2.weight", "in_strength_abs_mean"]
    assert C.loc["2.weight", "out_strength_abs_mean"] == L.loc["4.weight", "out_strength_abs_mean"]
    assert "strength_correlation_z" not in plain.chains.columns
    assert full.chains["strength_correlation_z"].notna().all()
    assert (full.chains["strength_correlation_null_sd"] > 0).all()


def test_low_rank_layer_gets_large_correlation_z(tmp_path):
    g = np.random.default_rng(0)
    p = tmp_path / "w.npz"
    np.savez(p, low=(g.normal(size=(60, 2)) @ g.normal(size=(2, 40))).astype(np.float32),
             iid=g.normal(size=(60, 40)).astype(np.float32))
    r = analyze(p, null=20).layers.set_index("layer")
    assert r.loc["low", "corr_in_mean_abs_z"] > 10 and r.loc["low", "corr_out_mean_abs_z"] > 10
    assert abs(r.loc["iid", "corr_in_mean_abs_z"]) < 5


@pytest.mark.parametrize("kwargs, message", [
    ({"null": 1}, r"null must be None or an integer >= 2 \(shuffled copies of each layer\), got 1"),
    ({"null": 0}, r"null must be None or an integer >= 2 .*, got 0"),
    ({"null": True}, r"null must be None or an integer >= 2 .*, got True"),
    ({"null": 5, "null_model": "foo"}, r"null_model must be one of matrix, rows, columns, got 'foo'"),
])
def test_bad_null_options(example, kwargs, message):
    with pytest.raises(ValueError, match=message):
        analyze(example, **kwargs)


def test_correlation_option_samples_with_standard_errors(tmp_path):
    from netinit.analyzer import analyze

    rng = np.random.default_rng(4)
    path = tmp_path / "w.npz"
    np.savez(path, fc=rng.standard_normal((600, 40)).astype(np.float32))
    exact = analyze(path, correlation="exact").layers.iloc[0]
    sampled = analyze(path, correlation="sampled", seed=3).layers.iloc[0]
    again = analyze(path, correlation="sampled", seed=3).layers.iloc[0]
    assert "corr_in_method" not in exact or exact["corr_in_method"] == "exact"
    assert sampled["corr_in_method"] == "sampled(s=512)"
    assert sampled["corr_in_mean_abs"] == again["corr_in_mean_abs"]  # seeded per layer
    assert abs(sampled["corr_in_mean_abs"] - exact["corr_in_mean_abs"]) < 5 * sampled["corr_in_mean_abs_se"]
    with pytest.raises(ValueError, match=r"correlation must be one of \('auto', 'exact', 'sampled'\), got 'guess'"):
        analyze(path, correlation="guess")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_the_torch_path_gives_the_numpy_tables(device, tmp_path):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(2)
    save_file({"a.weight": torch.randn(40, 30, generator=gen), "b.weight": torch.randn(20, 40, generator=gen),
               "c.weight": torch.randn(8, 4, 3, 3, generator=gen).to(torch.bfloat16)}, str(tmp_path / "m.safetensors"))
    plain = analyze(tmp_path / "m.safetensors", centrality="exact")
    torched = analyze(tmp_path / "m.safetensors", centrality="exact", device=device)
    rtol = 1e-9 if device == "cpu" else 1e-5  # CUDA: float32 correlation products (float32_error_bound)
    for a, b in ((plain.layers, torched.layers), (plain.neurons, torched.neurons), (plain.chains, torched.chains)):
        pd.testing.assert_frame_equal(b, a, check_exact=False, rtol=rtol, atol=1e-7 if device != "cpu" else 1e-12)
    assert torched.options["device"] == device


def test_layers_on_threads_give_the_sequential_tables(example, monkeypatch):
    """analyze's layers on several threads: the tables of one thread, bit for bit, in file order."""
    import netinit.analyzer as analyzer_mod

    monkeypatch.setattr(analyzer_mod, "MAX_LAYER_THREADS", 1)
    one = analyze(example, correlation="sampled")
    monkeypatch.setattr(analyzer_mod, "MAX_LAYER_THREADS", 3)
    monkeypatch.setattr(analyzer_mod, "layer_threads", lambda: 3)
    many = analyze(example, correlation="sampled")
    for table in ("layers", "neurons", "chains"):
        pd.testing.assert_frame_equal(getattr(many, table), getattr(one, table), check_exact=True, obj=table)


def test_map_layers_keeps_order_and_raises_the_first_error():
    from netinit.analyzer import map_layers

    assert map_layers(lambda x: x * 2, range(7), threads=3) == [0, 2, 4, 6, 8, 10, 12]

    def fail(x):
        if x in (2, 4):
            raise ValueError(f"layer {x}")
        return x

    with pytest.raises(ValueError, match="layer 2"):
        map_layers(fail, range(7), threads=2)


def test_non_finite_layer_is_refused_with_the_readers_message(tmp_path):
    from safetensors.numpy import save_file

    from netinit.errors import NonFiniteError

    W = np.ones((4, 3), dtype=np.float32)
    W[2, 1] = np.nan
    save_file({"fc.weight": W}, str(tmp_path / "n.safetensors"))
    with pytest.raises(NonFiniteError, match=r"n\.safetensors: layer 'fc\.weight' holds 1 non-finite value.*\(2, 1\)"):
        analyze(tmp_path / "n.safetensors")
