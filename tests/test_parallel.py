"""netinit.parallel: one Dask task per layer gives exactly the Analysis of netinit.analyze."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from netinit.analyzer import analyze

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A conv + MLP chain (fc1 -> fc2 -> fc3 chains, conv breaks it) with biases and a norm."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(7)
    sd = {
        "conv.weight": torch.randn(6, 3, 3, 3, generator=g),
        "conv.bias": torch.randn(6, generator=g),
        "bn.weight": torch.ones(6),
        "fc1.weight": torch.randn(24, 20, generator=g),
        "fc1.bias": torch.randn(24, generator=g),
        "fc2.weight": torch.randn(16, 24, generator=g),
        "fc3.weight": torch.randn(10, 16, generator=g),
        "head.weight": torch.randn(5, 7, generator=g),
    }
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_file(sd, str(path))
    return path


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster of 2 worker processes on loopback, shared by the tests of this module."""
    import logging

    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as c:
        yield c


def _assert_same(par, ref):
    for table in ("layers", "neurons", "skipped", "chains"):
        pd.testing.assert_frame_equal(getattr(par, table), getattr(ref, table), check_exact=True, obj=table)
    assert (par.checkpoint, par.format, par.container, par.options) == \
        (ref.checkpoint, ref.format, ref.container, ref.options)


@pytest.mark.parametrize("seed", [0, 5])
def test_equals_serial_analyze_with_sampled_centralities(checkpoint, cluster, seed):
    from netinit.parallel import analyze_parallel

    par = analyze_parallel(checkpoint, scheduler=cluster.scheduler_address, centrality="sampled", k=6, seed=seed)
    ref = analyze(checkpoint, centrality="sampled", k=6, seed=seed)
    _assert_same(par, ref)
    assert par.layers["layer"].tolist() == ["conv.weight", "fc1.weight", "fc2.weight", "fc3.weight", "head.weight"]
    assert par.chains[["layer_a", "layer_b"]].values.tolist() == [["fc1.weight", "fc2.weight"],
                                                                  ["fc2.weight", "fc3.weight"]]
    assert par.neurons["betweenness"].notna().all()
    assert par.skipped["name"].tolist() == ["bn.weight", "conv.bias", "fc1.bias"]


@pytest.mark.parametrize("null_model", ["matrix", "columns"])
def test_equals_serial_analyze_with_null_and_network(checkpoint, cluster, null_model):
    """Null models, chain nulls and network measures (a first round for the largest |w|) come
    out of the workers exactly as from the serial run: each layer draws from its own stream."""
    from netinit.parallel import analyze_parallel

    opts = {"null": 6, "null_model": null_model, "network": True, "seed": 3}
    par = analyze_parallel(checkpoint, scheduler=cluster.scheduler_address, **opts)
    _assert_same(par, analyze(checkpoint, **opts))
    assert par.layers["corr_in_mean_abs_z"].notna().all()
    assert par.chains["strength_correlation_z"].notna().all()
    assert par.neurons["community"].notna().all()
    assert par.options["persistence_w_max"] == max(
        float(abs(t).max()) for n, t in _weights(checkpoint).items() if n.endswith(".weight") and n != "bn.weight")


def _weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_own_local_cluster_and_layer_selection(checkpoint):
    """workers=2 without a scheduler starts (and closes) its own LocalCluster."""
    from netinit.parallel import analyze_parallel

    par = analyze_parallel(checkpoint, workers=2, layers=r"fc")
    _assert_same(par, analyze(checkpoint, layers=r"fc"))
    assert par.layers["layer"].tolist() == ["fc1.weight", "fc2.weight", "fc3.weight"]


def test_bad_options_refused_before_any_cluster(checkpoint):
    from netinit.errors import NoLayersError
    from netinit.parallel import analyze_parallel

    with pytest.raises(ValueError, match=r"workers must be a positive integer, got 0"):
        analyze_parallel(checkpoint, workers=0)
    with pytest.raises(ValueError, match=r"centrality must be None, 'auto', 'exact' or 'sampled', got 'all'"):
        analyze_parallel(checkpoint, centrality="all")
    with pytest.raises(NoLayersError):
        analyze_parallel(checkpoint, layers=r"^nothing$")
    with pytest.raises(ValueError, match=r"null must be None or an integer >= 2 .*, got 1"):
        analyze_parallel(checkpoint, null=1)
    with pytest.raises(ValueError, match=r"null_model must be one of matrix, rows, columns, got 'foo'"):
        analyze_parallel(checkpoint, null=5, null_model="foo")


def test_cli_workers_writes_the_same_layers_csv(checkpoint, cluster, tmp_path, capsys):
    from netinit.cli import main

    opts = ["--centrality", "sampled", "-k", "6", "--null", "4", "--null-model", "rows", "--network"]
    assert main(["analyze", str(checkpoint), "-o", str(tmp_path / "serial"), "--no-plots", "-q", *opts]) == 0
    assert main(["analyze", str(checkpoint), "-o", str(tmp_path / "par"), "--no-plots", "-q", *opts,
                 "--workers", "2", "--scheduler", cluster.scheduler_address]) == 0
    assert "corr_in_mean_abs_z" in (tmp_path / "par" / "layers.csv").read_text()
    for name in ("layers.csv", "neurons.csv", "chains.csv", "skipped.csv"):
        assert (tmp_path / "par" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes(), name
    with pytest.raises(SystemExit, match=r"cannot be combined with --data, --embeddings"):
        main(["analyze", str(checkpoint), "-o", str(tmp_path / "x"), "--workers", "2", "--data", "digits",
              "--embeddings"])
    with pytest.raises(SystemExit):
        main(["analyze", str(checkpoint), "-o", str(tmp_path / "x"), "--workers", "0"])
    assert "expected a positive integer, got '0'" in capsys.readouterr().err


def test_cli_trajectory_with_workers_writes_the_serial_tables(checkpoint, cluster, tmp_path):
    """Several checkpoints with --scheduler: each is analysed by the workers, the stacked tables
    are the serial ones byte for byte."""
    import shutil

    from netinit.cli import main

    for step in (0, 10):
        shutil.copy(checkpoint, tmp_path / f"step_{step}.safetensors")
    given = [str(tmp_path / "step_*.safetensors"), "--no-plots", "-q", "--null", "3"]
    assert main(["analyze", *given, "-o", str(tmp_path / "serial")]) == 0
    assert main(["analyze", *given, "-o", str(tmp_path / "par"), "--scheduler", cluster.scheduler_address]) == 0
    for name in ("layers.csv", "neurons.csv", "chains.csv", "skipped.csv"):
        assert (tmp_path / "par" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes(), name
    assert pd.read_csv(tmp_path / "par" / "layers.csv")["step"].unique().tolist() == [0, 10]
