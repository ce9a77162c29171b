"""The command line, end to end, in-process (main(argv) -> exit status)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from netinit.cli import _message, build_parser, main

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


def test_analyze_example_writes_everything(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(EXAMPLES / "mlp_digits.safetensors"), "-o", str(out), "-q"]) == 0
    layers = pd.read_csv(out / "layers.csv")
    required = ["layer", "kind", "shape", "n_out", "n_in", "in_strength_mean", "in_strength_var",
                "out_strength_mean", "out_strength_var", "weight_mean", "weight_std",
                "corr_in_mean_abs", "corr_out_mean_abs"]
    assert set(required) <= set(layers.columns)
    assert layers["layer"].tolist() == ["0.weight", "2.weight", "4.weight"]
    assert layers["shape"].tolist() == ["128x64", "64x128", "10x64"]
    W = load_file(str(EXAMPLES / "mlp_digits.safetensors"))["2.weight"].double().numpy()
    row = layers.set_index("layer").loc["2.weight"]
    assert row["in_strength_var"] == pytest.approx(W.sum(1).var())
    assert row["out_strength_mean"] == pytest.approx(W.sum(0).mean())
    neurons = pd.read_csv(out / "neurons.csv")
    assert len(neurons) == (128 + 64) + (64 + 128) + (10 + 64)
    assert set(neurons.columns) >= {"layer", "side", "neuron", "strength", "abs_strength", "degree"}
    skipped = pd.read_csv(out / "skipped.csv")
    assert sorted(skipped["name"]) == ["0.bias", "2.bias", "4.bias"]
    chains = pd.read_csv(out / "chains.csv")
    assert chains[["layer_a", "layer_b"]].values.tolist() == [["0.weight", "2.weight"], ["2.weight", "4.weight"]]
    for png in ("strength_distributions.png", "strength_variance.png", "correlation_heatmap.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "strength_variance.png" in html and "2.weight" in html
    assert capsys.readouterr().err == ""  # -q: nothing on stderr


def test_analyze_json_on_stdout_messages_on_stderr(tmp_path, capsys):
    assert main(["analyze", str(EXAMPLES / "cnn_digits.safetensors"), "--json", "--centrality", "exact"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["format"] == "safetensors" and summary["n_layers"] == 3
    assert [layer["kind"] for layer in summary["layers"]] == ["conv2d", "conv2d", "linear"]
    assert summary["skipped_by_reason"] == {"bias": 3}
    assert "analysed 3 layers" in captured.err


def test_analyze_with_centrality_and_parquet(tmp_path):
    out = tmp_path / "o"
    assert main(["analyze", str(EXAMPLES / "mlp_digits.pt"), "-o", str(out), "-q", "--centrality", "sampled",
                 "-k", "8", "--neurons-format", "parquet", "--no-plots", "--layers", "^4"]) == 0
    n = pd.read_parquet(out / "neurons.parquet")
    assert {"betweenness", "closeness", "eigenvector", "pagerank", "centrality_method"} <= set(n.columns)
    assert n["centrality_method"].str.contains("sampled").all()
    assert not (out / "strength_variance.png").exists()


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    return err[0]


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    unknown = tmp_path / "model.xyz"
    unknown.write_bytes(b"not a checkpoint at all")
    assert main(["analyze", str(unknown), "-o", str(tmp_path / "o1")]) == 1
    assert "model.xyz: unknown checkpoint format" in _err_line(capsys)

    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes((EXAMPLES / "mlp_digits.safetensors").read_bytes()[:1000])
    assert main(["analyze", str(trunc), "-o", str(tmp_path / "o2")]) == 1
    assert "trunc.safetensors: truncated" in _err_line(capsys)

    empty = tmp_path / "empty.safetensors"
    save_file({}, str(empty))
    assert main(["analyze", str(empty), "-o", str(tmp_path / "o3")]) == 1
    assert "holds no tensors" in _err_line(capsys)

    biases = tmp_path / "biases.npz"
    np.savez(biases, b=np.zeros(3))
    assert main(["analyze", str(biases), "-o", str(tmp_path / "o4")]) == 1
    assert "biases.npz: no weight layers" in _err_line(capsys)

    nan = tmp_path / "nan.safetensors"
    save_file({"fc.weight": torch.tensor([[1.0, float("nan")]])}, str(nan))
    assert main(["analyze", str(nan), "-o", str(tmp_path / "o5")]) == 1
    line = _err_line(capsys)
    assert "nan.safetensors: layer 'fc.weight' holds 1 non-finite value" in line
    assert line.endswith("(leave that layer out with --layers REGEX)")

    assert main(["analyze", str(EXAMPLES / "mlp_digits.pt"), "--layers", r"^0\.bias$", "--json"]) == 1
    assert "fewer than 2 dimensions" in _err_line(capsys)

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("precious")
    assert main(["analyze", str(EXAMPLES / "mlp_digits.pt"), "-o", str(busy)]) == 1
    assert "already holds other files (thesis.tex)" in _err_line(capsys)
    assert (busy / "thesis.tex").read_text() == "precious"

    assert main(["analyze", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "o6")]) == 1
    assert "missing.pt: no such file" in _err_line(capsys)

    model = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), model)
    assert main(["analyze", str(model), "-o", str(tmp_path / "o7")]) == 1
    assert "state_dict()" in _err_line(capsys)


def test_analyze_never_modifies_input(tmp_path):
    src = tmp_path / "m.pt"
    shutil.copy(EXAMPLES / "mlp_digits.pt", src)
    before = src.read_bytes()
    assert main(["analyze", str(src), "-o", str(tmp_path / "o"), "-q"]) == 0
    assert src.read_bytes() == before


def test_rerun_into_own_output_folder(tmp_path):
    out = tmp_path / "o"
    for _ in range(2):
        assert main(["analyze", str(EXAMPLES / "mlp_digits.pt"), "-o", str(out), "-q", "--no-plots"]) == 0


def test_compare_example(tmp_path, capsys):
    out = tmp_path / "diff"
    assert main(["compare", str(EXAMPLES / "mlp_digits_init.pt"), str(EXAMPLES / "mlp_digits.safetensors"),
                 "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_layers"] == 3 and summary["unmatched"] == []
    assert all(layer["rel_change"] > 0.1 for layer in summary["layers"])  # training moved every layer
    assert (out / "report.html").exists()


def test_formats_lists_registry(capsys):
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    assert "safetensors" in out and ".npz" in out and ".pt" in out
    assert "*.bin.index.json" in out  # sharded PyTorch checkpoints are listed


def test_analyze_with_data_adds_activation_diversity(tmp_path, capsys):
    assert main(["analyze", str(EXAMPLES / "mlp_digits.safetensors"), "--data", "digits", "--json", "-q",
                 "--samples", "200"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = summary["layers"]
    assert [r["layer"] for r in rows] == ["0.weight", "2.weight", "4.weight"]
    for r in rows:
        assert 0.0 <= r["act_mean_abs_r"] <= 1.0 and 1.0 <= r["act_effective_n"]
        assert r["dead_neurons"] >= 0
    assert summary["options"]["data"] == "200 samples"
    assert main(["analyze", str(EXAMPLES / "cnn_digits.safetensors"), "--data", "digits", "--json"]) == 1
    assert "holds conv2d layers" in _err_line(capsys)
    with pytest.raises(SystemExit, match="--data expects one of"):
        main(["analyze", str(EXAMPLES / "mlp_digits.pt"), "--data", "cifar", "--json"])


def test_json_schema_top_level(capsys):
    assert main(["analyze", str(EXAMPLES / "mlp_digits.pt"), "--json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"coverage", "checkpoint", "format", "container", "model", "n_layers", "n_skipped",
                            "skipped_by_reason", "layers", "chains", "options", "outputs"}
    assert list(summary)[0] == "coverage"
    assert summary["coverage"]["text"] == "analysed 3 layers in 3 of 6 tensors (98.8% of the parameters); skipped: 3 bias"
    assert {"layer", "kind", "shape", "n_out", "n_in", "in_strength_var", "out_strength_var",
            "corr_in_mean_abs", "corr_out_mean_abs"} <= set(summary["layers"][0])
    assert set(summary["chains"][0]) == {"layer_a", "layer_b", "n_neurons", "strength_correlation",
                                         "in_strength_mean", "out_strength_mean", "in_strength_abs_mean",
                                         "out_strength_abs_mean"}
    assert summary["outputs"] == []


def test_container_without_tensors_and_container_reported(tmp_path, capsys):
    empty = tmp_path / "empty.ckpt"
    torch.save({"epoch": 3, "state_dict": {}, "hyper_parameters": {"lr": 0.1}}, empty)
    assert main(["analyze", str(empty), "--json"]) == 1
    assert "empty.ckpt: the checkpoint holds no tensors" in _err_line(capsys)
    lightning = tmp_path / "l.ckpt"
    sd = load_file(str(EXAMPLES / "mlp_digits.safetensors"))
    torch.save({"epoch": 3, "state_dict": {"model." + k: v for k, v in sd.items()},
                "optimizer_states": [{"state": {}}]}, lightning)
    assert main(["analyze", str(lightning), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["container"] == "state_dict"
    assert "weights under 'state_dict'" in captured.err


def test_debug_after_subcommand_shows_traceback(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        main(["analyze", str(tmp_path / "missing.pt"), "--json", "--debug"])


def test_truncated_zip_checkpoint_is_called_truncated(tmp_path, capsys):
    bad = tmp_path / "cut.pt"
    bad.write_bytes((EXAMPLES / "mlp_digits.pt").read_bytes()[:30000])
    assert main(["analyze", str(bad), "--json"]) == 1
    assert "cut.pt: truncated or corrupt PyTorch checkpoint" in _err_line(capsys)


def test_summary_json_lists_outputs_and_singular_messages(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["analyze", str(EXAMPLES / "mlp_digits.pt"), "-o", str(out), "--layers", "^4", "--no-plots"]) == 0
    assert ": analysed 1 layer in 1 of 6 tensors (" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert {Path(p).name for p in summary["outputs"]} == {"layers.csv", "neurons.csv", "skipped.csv", "chains.csv",
                                                        "report.html", "summary.json"}


def _usage_error(capsys) -> str:
    """The message of an argparse usage error: exit status 2, no traceback, one ``error:`` line."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("argv, message", [
    (["rewire", "{ckpt}", "-o", "{tmp}/y.pt", "--device", "tpu"],
     "argument --device: invalid device 'tpu'; choose cpu, cuda or cuda:N"),
    (["rewire", "{ckpt}", "-o", "{tmp}/y.pt", "--device", "cuda:x"], "invalid device 'cuda:x'"),
    (["rewire", "{ckpt}", "-o", "{tmp}/y.pt", "--seed", "-1"],
     "argument --seed: expected a non-negative integer, got '-1'"),
    (["analyze", "{ckpt}", "-o", "{tmp}/d", "-k", "0", "--centrality", "sampled"],
     "argument -k: expected a positive integer, got '0'"),
    (["analyze", "{ckpt}", "--json", "--seed", "-2"], "argument --seed: expected a non-negative integer"),
    (["analyze", "{ckpt}", "--json", "--workers", "2", "--scheduler", "nonsense"],
     "argument --scheduler: invalid Dask scheduler address 'nonsense': it names no HOST:PORT"),
    (["analyze", "{ckpt}", "--json", "--scheduler", "tcp://host:port"], "the port 'port' is not a number"),
    (["analyze", "{ckpt}", "--json", "--scheduler", "foo://host:8786"], "unknown scheme 'foo'"),
    (["experiment", "{tmp}/c.toml", "-o", "{tmp}/r", "--scheduler", "tcp://host"], "names no HOST:PORT"),
    (["experiment", "{tmp}/c.toml", "-o", "{tmp}/r", "--workers", "0"], "argument --workers: expected a positive"),
])
def test_bad_option_values_are_one_line_usage_errors(argv, message, tmp_path, capsys):
    argv = [a.format(ckpt=EXAMPLES / "mlp_digits.pt", tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in _usage_error(capsys)
    assert list(tmp_path.iterdir()) == []  # refused before anything ran


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://sched.example:8786",
                                     "tcp://[::1]:8786", "local"])
def test_scheduler_addresses_dask_accepts_are_accepted(address):
    args = build_parser().parse_args(["analyze", "m.pt", "--scheduler", address])
    assert args.scheduler == address


def test_devices_accepted(tmp_path):
    for device in ("cpu", "cuda", "cuda:0", "cuda:12"):
        assert build_parser().parse_args(["rewire", "m.pt", "--device", device]).device == device


def test_cuda_index_beyond_the_gpus_is_refused_before_running(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = tmp_path / "r.pt"
    assert main(["rewire", str(EXAMPLES / "mlp_digits.pt"), "-o", str(out), "--device", "cuda:3"]) == 1
    assert "device 'cuda:3' asked for, but this machine has 1 CUDA device (cuda:0 to cuda:0)" in _err_line(capsys)
    assert not out.exists()


def test_missing_experiment_config_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["experiment", "nope.toml", "-o", "r"]) == 1
    assert _err_line(capsys) == "netinit: error: nope.toml: no such file"
    assert main(["experiment", str(tmp_path), "-o", "r"]) == 1
    assert "is a folder; give an experiment config (TOML) file" in _err_line(capsys)
    with pytest.raises(FileNotFoundError, match="nope.toml: no such file"):
        main(["experiment", "nope.toml", "-o", "r", "--debug"])
    assert not (tmp_path / "r").exists()


def test_python_os_errors_read_as_path_and_reason():
    assert _message(FileNotFoundError(2, "No such file or directory", "x.toml")) == "x.toml: no such file or directory"
    assert _message(PermissionError(13, "Permission denied", "/etc/x")) == "/etc/x: permission denied"
    assert _message(FileNotFoundError("m.pt: no such file")) == "m.pt: no such file"  # netinit's own message


def test_data_path_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nonexistent.npz"
    assert main(["analyze", str(EXAMPLES / "mlp_digits.pt"), "--json", "--data", str(missing)]) == 1
    line = _err_line(capsys)
    assert line.startswith(f"netinit: error: --data {missing}: no such file or folder")
    with pytest.raises(SystemExit, match="--data expects one of digits, mnist1d, synthetic or the path"):
        main(["analyze", str(EXAMPLES / "mlp_digits.pt"), "--data", "cifar10", "--json"])


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping


@pytest.mark.parametrize("command", [["analyze"], ["rewire"], ["compare"]])
def test_help_names_every_input_kind(command, capsys):
    text = _help(command, capsys)
    assert ".safetensors, .npz)" not in text
    for kind in ("ONNX", "Keras", "Flax msgpack", "TorchScript", "sharded", "`netinit formats`"):
        assert kind in text, kind


def test_help_of_passes_says_which_variance_each_pass_lowers(capsys):
    text = _help(["rewire"], capsys)
    assert ("rows: reorder each output neuron's incoming weights (a row), which evens out the input neurons' "
            "out-strengths (lowers out_strength_var)") in text
    assert ("cols: reorder each input neuron's outgoing weights (a column), which evens out the output neurons' "
            "in-strengths (lowers in_strength_var)") in text
    # and so does the code: one pass leaves the other side's variance exactly as it was
    for passes, lowered, kept in (("rows", "out", "in"), ("cols", "in", "out")):
        assert main(["rewire", str(EXAMPLES / "mlp_digits_init.pt"), "--dry-run", "--passes", passes]) == 0
        out = capsys.readouterr().out
        rows = [line.split() for line in out.splitlines()[1:]]
        header = out.splitlines()[0].split()
        for row in rows:
            r = dict(zip(header, row))
            assert float(r[f"{lowered}_strength_var_after"]) < float(r[f"{lowered}_strength_var_before"])
            assert r[f"{kept}_strength_var_after"] == r[f"{kept}_strength_var_before"]


def test_closed_stdout_is_not_an_error():
    """`netinit analyze x --json | head -1`: the reader goes away; no error line, no traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "netinit.cli", "analyze", str(EXAMPLES / "mlp_digits.safetensors"),
                             "--json", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before anything is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Broken pipe" not in err and "Traceback" not in err


# -- --null, --network and trajectories --------------------------------------------------------

def test_analyze_null_and_network_columns(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(EXAMPLES / "mlp_digits.safetensors"), "-o", str(out), "-q", "--null", "6",
                 "--null-model", "columns", "--network", "--seed", "2"]) == 0
    layers = pd.read_csv(out / "layers.csv")
    for col in ("corr_in_mean_abs_null_mean", "corr_in_mean_abs_null_sd", "corr_in_mean_abs_z",
                "in_strength_var_z", "null_model", "null_shuffles", "neural_persistence",
                "neural_persistence_normalized", "modularity", "clustering_mean", "network_skipped"):
        assert col in layers.columns, col
    assert (layers["null_model"] == "columns").all() and layers["out_strength_var_z"].isna().all()
    neurons = pd.read_csv(out / "neurons.csv")
    assert {"clustering", "harmonic", "current_flow_closeness", "subgraph_centrality_log",
            "community"} <= set(neurons.columns)
    assert {"strength_correlation_z", "in_strength_mean", "out_strength_abs_mean"} <= set(
        pd.read_csv(out / "chains.csv").columns)
    assert (out / "null_zscores.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "null_zscores.png" in html and "Network measures on |w|" in html
    summary = json.loads((out / "summary.json").read_text())
    options = summary["options"]
    assert options["null"] == 6 and options["null_model"] == "columns" and options["network"] is True
    assert {"corr_in_mean_abs_z", "neural_persistence_normalized", "modularity"} <= set(summary["layers"][0])
    assert "strength_correlation_z" in summary["chains"][0]


def _steps_folder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for step, name in ((0, "mlp_digits_init.safetensors"), (30, "mlp_digits.safetensors")):
        shutil.copy(EXAMPLES / name, folder / f"step_{step}.safetensors")
    (folder / "notes.txt").write_text("not a checkpoint")
    return folder


@pytest.mark.parametrize("how", ["list", "glob", "folder"])
def test_analyze_trajectory_of_the_bundled_initial_and_trained_mlp(tmp_path, how):
    folder = _steps_folder(tmp_path)
    given = {"list": [str(folder / "step_0.safetensors"), str(folder / "step_30.safetensors")],
             "glob": [str(folder / "step_*.safetensors")], "folder": [str(folder)]}[how]
    out = tmp_path / "out"
    assert main(["analyze", *given, "-o", str(out), "-q", "--null", "5"]) == 0
    layers = pd.read_csv(out / "layers.csv")
    assert list(layers.columns[:3]) == ["checkpoint", "step", "layer"]
    assert layers["step"].tolist() == [0, 0, 0, 30, 30, 30]
    assert layers["checkpoint"].tolist() == [str(folder / "step_0.safetensors")] * 3 + [
        str(folder / "step_30.safetensors")] * 3
    assert layers["corr_in_mean_abs_z"].notna().all()
    # training correlates the hidden layer's incoming weights: far from its shuffles, unlike at init
    z = layers.set_index(["step", "layer"])["corr_in_mean_abs_z"]
    assert z[(30, "2.weight")] > 10 > abs(z[(0, "2.weight")])
    for name in ("neurons.csv", "chains.csv", "skipped.csv"):
        assert list(pd.read_csv(out / name).columns[:2]) == ["checkpoint", "step"], name
    assert (out / "trajectories.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "trajectories.png" in html and "netinit compare A B" in html
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_checkpoints"] == 2 and [c["step"] for c in summary["checkpoints"]] == [0, 30]


def test_analyze_trajectory_steps_option_and_unparsed_names(tmp_path):
    out = tmp_path / "out"
    init, trained = str(EXAMPLES / "mlp_digits_init.safetensors"), str(EXAMPLES / "mlp_digits.safetensors")
    assert main(["analyze", init, trained, "-o", str(out), "-q", "--no-plots"]) == 0
    assert pd.read_csv(out / "layers.csv")["step"].isna().all()  # the names give no step
    assert main(["analyze", init, trained, "-o", str(out), "-q", "--steps", "0,30"]) == 0
    assert pd.read_csv(out / "layers.csv")["step"].tolist() == [0, 0, 0, 30, 30, 30]
    assert (out / "trajectories.png").exists()


def test_analyze_null_network_trajectory_errors(tmp_path, capsys):
    ckpt = str(EXAMPLES / "mlp_digits.safetensors")
    out = str(tmp_path / "x")
    for argv, message in (
        (["--null", "0"], "argument --null: expected an integer >= 2 (shuffled copies of each layer), got '0'"),
        (["--null", "5", "--null-model", "foo"], "argument --null-model: invalid choice: 'foo'"),
        (["--steps", "0,x"], "argument --steps: expected comma-separated non-negative integers, got '0,x'"),
    ):
        with pytest.raises(SystemExit):
            main(["analyze", ckpt, "-o", out, *argv])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"--null-model needs --null K"):
        main(["analyze", ckpt, "-o", out, "--null-model", "rows"])
    with pytest.raises(SystemExit, match=r"--steps gives 3 steps for 2 checkpoints"):
        main(["analyze", ckpt, ckpt, "-o", out, "--steps", "0,1,2"])
    with pytest.raises(SystemExit, match=r"--steps is for several checkpoints"):
        main(["analyze", ckpt, "-o", out, "--steps", "0"])
    with pytest.raises(SystemExit, match=r"--data analyses one checkpoint"):
        main(["analyze", ckpt, ckpt, "-o", out, "--data", "digits"])
    assert main(["analyze", str(tmp_path / "nothing_*.pt"), "-o", out]) == 1
    assert "nothing_*.pt: no checkpoint matches this pattern" in _err_line(capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["analyze", str(empty), "-o", out]) == 1
    assert "empty: not a checkpoint (is a folder" in _err_line(capsys)
    assert not Path(out).exists()


def test_readme_documents_the_null_network_and_trajectory_options_and_columns():
    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    section = readme.split("### Null models, network measures and trajectories", 1)[1].split("\n## ", 1)[0]
    for option in ("--null K", "--null-model", "--network", "--steps"):
        assert option in readme.split("## Command line", 1)[1].split("\n## ", 1)[0], option
    from netinit.metrics import SUMMARY_STATS

    for col in ("null_model", "null_shuffles", "s_null_mean", "s_null_sd", "s_z", "strength_correlation_z",
                "neural_persistence_normalized", "persistence_w_max", "modularity", "n_communities",
                "network_skipped", "community", "subgraph_centrality_log", "checkpoint", "step",
                "trajectories.png", "null_zscores.png", *SUMMARY_STATS[:10]):
        assert f"{col}" in section, col


def test_analyze_device(tmp_path, capsys):
    import torch

    assert main(["analyze", str(EXAMPLES / "mlp_digits.safetensors"), "--json", "-q", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["options"]["device"] == "cpu"
    with pytest.raises(SystemExit, match=r"--workers/--scheduler cannot be combined with --device"):
        main(["analyze", str(EXAMPLES / "mlp_digits.safetensors"), "--json", "--workers", "2", "--device", "cpu"])
    if not torch.cuda.is_available():
        assert main(["analyze", str(EXAMPLES / "mlp_digits.safetensors"), "--json", "-q", "--device", "cuda"]) == 1
        assert "device 'cuda' asked for, but CUDA is not available here" in capsys.readouterr().err


def test_a_missing_optional_module_names_its_extra(monkeypatch, capsys):
    import netinit.cli as cli

    def needs_dask(args):
        raise ModuleNotFoundError("No module named 'dask'", name="dask")

    monkeypatch.setattr(cli, "cmd_formats", needs_dask)
    assert main(["formats"]) == 1
    assert capsys.readouterr().err.strip() == ("netinit: error: this needs the experiments extra: "
                                              "pip install 'netinit[experiments]' (no module 'dask')")
