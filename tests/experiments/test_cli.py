from __future__ import annotations

import argparse

import pytest

from netinit.cli import main
from netinit.experiments.cli import add_experiment_commands, is_results_dir


def _toml(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text('name = "cli"\n[model]\nhidden = [8]\n[train]\nepochs = 1\n[stats]\nsamples = 64\n'
                 '[grid]\nmethods = ["default", "default+pa", "orthogonal"]\nseeds = 2\n')
    return p


def test_experiment_then_compare(tmp_path, capsys, torch_one_thread):
    cfg = _toml(tmp_path)
    res, rep = tmp_path / "results", tmp_path / "report"
    assert main(["experiment", str(cfg), "-o", str(res), "--serial", "--set", "train.lr=0.1"]) == 0
    err = capsys.readouterr().err
    assert "6 runs planned: 0 already finished, 6 ran, 0 diverged, 0 raised" in err
    assert "2 left" in err  # progress: runs done / failed / left
    assert is_results_dir(res) and not is_results_dir(tmp_path)
    assert main(["experiment", str(cfg), "-o", str(res), "--dry-run", "--set", "train.lr=0.1"]) == 0
    assert "6 runs, 6 already finished" in capsys.readouterr().out
    assert main(["results", str(res), "-o", str(rep)]) == 0
    err = capsys.readouterr().err
    assert "test_acc at the last epoch (1): " in err and "Friedman test over 3 conditions" in err
    assert (rep / "report.html").is_file()
    # a mistyped --metric is argparse's one-line error listing the outcomes, not a traceback
    with pytest.raises(SystemExit) as exc:
        main(["results", str(res), "-o", str(rep), "--force", "--metric", "train_acc_runing"])
    assert exc.value.code == 2
    assert "invalid choice: 'train_acc_runing'" in capsys.readouterr().err
    # with a declared primary outcome the tables, ranks and power default to it
    declared = tmp_path / "declared.toml"
    declared.write_text(cfg.read_text() + '[analysis]\nprimary = "train_acc_running"\n')
    assert main(["experiment", str(declared), "-o", str(tmp_path / "res2"), "--serial", "--set", "train.lr=0.1",
                 "-q"]) == 0
    assert main(["results", str(tmp_path / "res2"), "-o", str(tmp_path / "rep2")]) == 0
    err = capsys.readouterr().err
    assert "train_acc_running at the last epoch (1): " in err and "primary outcome: train_acc_running, epoch 1" in err


def test_bad_config_exits_1_with_the_reason(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text('[grid]\nmethods = ["kaiming"]\n')
    assert main(["experiment", str(p), "-o", str(tmp_path / "r")]) == 1
    assert "unknown initialiser 'kaiming'; initialisers: default, kaiming_uniform" in capsys.readouterr().err
    assert main(["results", str(tmp_path), "-o", str(tmp_path / "rep")]) == 1
    assert "not an experiment results folder" in capsys.readouterr().err
    assert main(["results", str(tmp_path / "nowhere"), "-o", str(tmp_path / "rep")]) == 1
    assert f"{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err


def test_compare_of_a_results_folder_names_the_results_command(tmp_path):
    (tmp_path / "experiment.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"is an experiment results folder; its statistics are `netinit results "):
        main(["compare", str(tmp_path), "-o", str(tmp_path / "rep")])


def test_add_experiment_commands_plugs_into_a_parser(tmp_path):
    parser = argparse.ArgumentParser(prog="netinit")
    sub = parser.add_subparsers(dest="command", required=True)
    assert [p.prog for p in add_experiment_commands(sub)] == ["netinit experiment", "netinit results"]
    args = parser.parse_args(["experiment", "c.toml", "-o", "out", "--scheduler", "tcp://127.0.0.1:8786",
                              "--seeds", "5"])
    assert args.scheduler == "tcp://127.0.0.1:8786" and args.seeds == 5 and callable(args.func)


def test_missing_extras_are_named_before_any_run(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert main(["experiment", str(_toml(tmp_path)), "-o", str(tmp_path / "r"), "--serial"]) == 1
    assert capsys.readouterr().err.strip() == ("netinit: error: this needs the experiments extra: "
                                              "pip install 'netinit[experiments]' (no module 'sklearn')")
    assert not (tmp_path / "r").exists()


def test_problems_found_before_any_run(tmp_path, capsys, torch_one_thread):
    cfg = _toml(tmp_path)
    out = tmp_path / "res"
    # a data set whose files are missing: one line, before the folder is made (not one error per run)
    assert main(["experiment", str(cfg), "-o", str(out), "--serial", "--set", "data.name=mnist",
                 "--set", f"data.path={tmp_path / 'nowhere'}"]) == 1
    err = capsys.readouterr().err
    assert err.count("error") == 1 and f"netinit: error: {tmp_path / 'nowhere'}: no such file or folder" in err
    assert "raised" not in err and not out.exists()
    (tmp_path / "idx").mkdir()
    assert main(["experiment", str(cfg), "-o", str(out), "--serial", "--set", "data.name=mnist",
                 "--set", f"data.path={tmp_path / 'idx'}"]) == 1
    assert "no train-images-idx3-ubyte or train-images-idx3-ubyte.gz" in capsys.readouterr().err
    assert main(["experiment", str(cfg), "-o", str(out), "--serial", "--set", "data.name=mnist"]) == 1
    assert "netinit: error: data.name = 'mnist' needs data.path" in capsys.readouterr().err
    assert main(["experiment", str(cfg), "-o", str(out), "--set", "train.lr"]) == 1
    assert "netinit: error: --set expects KEY=VALUE, got 'train.lr'" in capsys.readouterr().err
    # the dry run refuses what the run would: a folder of another config
    assert main(["experiment", str(cfg), "-o", str(out), "--serial", "--seeds", "1", "-q"]) == 0
    assert main(["experiment", str(cfg), "-o", str(out), "--dry-run", "--set", "model.hidden=[4]"]) == 1
    assert "holds runs of another config" in capsys.readouterr().err
    assert main(["experiment", str(cfg), "-o", str(out), "--dry-run", "--set", "model.hidden=[4]",
                 "--allow-mixed"]) == 0
