"""netinit rewire: checkpoint in, rewired checkpoint out, in the same format."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from netinit.cli import main
from netinit.errors import NoLayersError, NonFiniteError, OutputError
from netinit.formats import load_checkpoint
from netinit.rewire.checkpoint import rewire_checkpoint
from netinit.rewire.report import REPORT_COLUMNS

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "examples"


def _sorted(t: torch.Tensor) -> np.ndarray:
    return np.sort(t.float().numpy().ravel())


@pytest.fixture
def st(tmp_path, state_dict):
    sd = {k: v.contiguous() for k, v in state_dict.items()}
    sd["fc1.weight"] = sd["fc1.weight"].to(torch.bfloat16)
    sd["fc2.weight"] = sd["fc2.weight"].to(torch.float16)
    p = tmp_path / "m.safetensors"
    save_file(sd, str(p), metadata={"origin": "test"})
    return p, sd


def test_safetensors_rewire_keeps_everything_else(st, tmp_path):
    p, sd = st
    out = tmp_path / "r.safetensors"
    report = rewire_checkpoint(p, out, seed=0)
    assert report["layer"].tolist() == ["conv.weight", "fc1.weight", "fc2.weight"]
    got = load_file(str(out))
    with safe_open(str(out), "pt") as f:
        assert f.metadata() == {"origin": "test"}
    for name, t in sd.items():
        assert got[name].dtype == t.dtype and got[name].shape == t.shape
        if name in report["layer"].tolist():
            assert not torch.equal(got[name], t)  # rewired
            np.testing.assert_array_equal(_sorted(got[name]), _sorted(t))  # same multiset of values
        else:
            assert torch.equal(got[name], t)
    assert (report["in_strength_var_after"] < report["in_strength_var_before"]).all()
    assert (report["out_strength_var_after"] < report["out_strength_var_before"]).all()


def test_layer_streams_do_not_depend_on_selection(st, tmp_path):
    p, _ = st
    rewire_checkpoint(p, tmp_path / "all.safetensors", seed=3)
    rewire_checkpoint(p, tmp_path / "one.safetensors", seed=3, layers=r"^fc2\.")
    a, b = load_file(str(tmp_path / "all.safetensors")), load_file(str(tmp_path / "one.safetensors"))
    assert torch.equal(a["fc2.weight"], b["fc2.weight"])
    assert not torch.equal(a["fc1.weight"], b["fc1.weight"])  # not selected the second time


def test_deterministic_per_seed_and_seed_zero_is_a_seed(st, tmp_path):
    p, _ = st
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        rewire_checkpoint(p, tmp_path / f"{name}.safetensors", seed=seed)
    read = {n: (tmp_path / f"{n}.safetensors").read_bytes() for n in "abc"}
    assert read["a"] == read["b"] != read["c"]


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_other_formats(tmp_path, state_dict, suffix):
    p = tmp_path / f"m{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": state_dict, "epoch": 7}, p)
    else:
        np.savez(p, **{k: v.numpy() for k, v in state_dict.items()})
    out = tmp_path / f"r{suffix}"
    rewire_checkpoint(p, out, seed=1)
    a, b = load_checkpoint(p), load_checkpoint(out)
    assert a.names() == b.names() and b.format == a.format
    for n in a.names():
        x, y = a.load(n), b.load(n)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.sort(x.ravel()), np.sort(y.ravel()))
        if n in ("conv.bias", "bn.running_var", "bn.num_batches_tracked", "fc1.bias"):
            np.testing.assert_array_equal(x, y)
    if suffix == ".pt":
        assert torch.load(out, weights_only=True)["epoch"] == 7


def test_errors_write_nothing(st, tmp_path):
    p, sd = st
    before = sorted(tmp_path.iterdir())
    with pytest.raises(OutputError, match="is the input file"):
        rewire_checkpoint(p, p, seed=0)
    with pytest.raises(NoLayersError, match="no weight layer matches the layer regex 'zzz'"):
        rewire_checkpoint(p, tmp_path / "x.safetensors", layers="zzz")
    bad = dict(sd)
    bad["fc2.weight"] = bad["fc2.weight"].clone()
    bad["fc2.weight"][0, 0] = float("inf")
    q = tmp_path / "inf.safetensors"
    save_file(bad, str(q))
    with pytest.raises(NonFiniteError, match="'fc2.weight' holds 1 non-finite value"):
        rewire_checkpoint(q, tmp_path / "y.safetensors")
    assert sorted(tmp_path.iterdir()) == sorted(before + [q])
    existing = tmp_path / "exists.safetensors"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists already"):
        rewire_checkpoint(p, existing)
    assert existing.read_bytes() == b"keep me"


def test_cli_rewire_report_and_dry_run(tmp_path, capsys):
    src = tmp_path / "init.safetensors"
    shutil.copy(EXAMPLES / "mlp_digits_init.safetensors", src)
    before = src.read_bytes()
    out, csv = tmp_path / "rewired.safetensors", tmp_path / "report.csv"
    assert main(["rewire", str(src), "-o", str(out), "--seed", "0", "--report", str(csv)]) == 0
    printed = capsys.readouterr()
    assert "in_strength_var_before" in printed.out and "rewired 3 layers" in printed.err
    report = pd.read_csv(csv)
    assert report["layer"].tolist() == ["0.weight", "2.weight", "4.weight"]
    assert (report["ratio_in"] < 0.5).all() and (report["ratio_out"] < 1.0).all()
    assert src.read_bytes() == before
    dry = tmp_path / "dry.safetensors"
    assert main(["rewire", str(src), "-o", str(dry), "--dry-run", "-q"]) == 0
    assert not dry.exists()
    assert main(["rewire", str(src), "-o", str(src)]) == 1
    assert "is the input file" in capsys.readouterr().err
    assert main(["rewire", str(src), "-o", str(out)]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["rewire", str(src), "-o", str(out), "--force", "-q", "--passes", "rows"]) == 0
    w0 = load_file(str(src))["0.weight"].numpy()
    w1 = load_file(str(out))["0.weight"].numpy()
    np.testing.assert_array_equal(np.sort(w0, axis=1), np.sort(w1, axis=1))  # rows pass keeps each row's values


def test_cli_rewire_unavailable_device(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["rewire", str(EXAMPLES / "mlp_digits.pt"), "--dry-run", "--device", "cuda"]) == 1
    assert "CUDA is not available" in capsys.readouterr().err


def test_output_suffix_of_another_format_is_refused(st, tmp_path):
    p, _ = st
    with pytest.raises(OutputError, match=r"the suffix \.pt names the torch format, but .* its own format \(safetensors\)"):
        rewire_checkpoint(p, tmp_path / "r.pt")
    assert not (tmp_path / "r.pt").exists()
    rewire_checkpoint(p, tmp_path / "r.weights", seed=0)  # a suffix no format claims is fine
    assert load_checkpoint(tmp_path / "r.weights").format == "safetensors"


def test_layers_of_one_shape_rewired_together_get_their_own_streams(tmp_path):
    """The CPU path stacks same-shaped layers; each must equal pa_rewire on its own stream."""
    from netinit._rng import layer_generator
    from netinit.layers import find_layers
    from netinit.rewire import pa_rewire

    g = torch.Generator().manual_seed(2)
    sd = {f"block{i}.weight": torch.randn(12, 12, generator=g) for i in range(5)}
    sd["block4.weight"] = sd["block4.weight"].to(torch.float16)  # same shape, another dtype
    sd["conv.weight"] = torch.randn(12, 3, 2, 2, generator=g)  # same matrix shape as the blocks
    p, out = tmp_path / "m.safetensors", tmp_path / "r.safetensors"
    save_file(sd, str(p))
    rewire_checkpoint(p, out, seed=6)
    got = load_file(str(out))
    layers = {layer.name: layer for layer in find_layers(load_checkpoint(p))[0]}
    assert set(layers) == set(sd)
    for name, t in sd.items():
        expected = pa_rewire(layers[name].matrix(), rng=layer_generator(6, name))
        assert got[name].dtype == t.dtype
        np.testing.assert_array_equal(got[name].float().numpy().reshape(expected.shape), expected.astype(np.float32))


@pytest.mark.parametrize("name", ["m.safetensors", "m.npz", "m.onnx", "m"])
def test_torch_file_with_a_misleading_suffix(tmp_path, state_dict, name):
    """A torch.save file named like another format is read and rewired as PyTorch."""
    p = tmp_path / name
    torch.save({"state_dict": state_dict, "epoch": 7}, p)
    suffix = Path(name).suffix
    for out in (tmp_path / f"r{suffix}", tmp_path / "r.pt"):  # its own suffix, or a PyTorch one
        report = rewire_checkpoint(p, out, seed=1)
        assert report["layer"].tolist() == ["conv.weight", "fc1.weight", "fc2.weight"]
        a, b = load_checkpoint(p), load_checkpoint(out)
        assert a.format == b.format == "torch" and a.names() == b.names()
        for n in a.names():
            x, y = a.load(n), b.load(n)
            np.testing.assert_array_equal(np.sort(x.ravel()), np.sort(y.ravel()))
            if n not in report["layer"].tolist():
                np.testing.assert_array_equal(x, y)
        with open(out, "rb") as f:
            assert torch.load(f, weights_only=True)["epoch"] == 7
    if suffix != ".safetensors":
        with pytest.raises(OutputError, match=r"the suffix \.safetensors names the safetensors format, .* \(torch\)"):
            rewire_checkpoint(p, tmp_path / "r2.safetensors")


def test_cli_report_path_never_clobbers_a_checkpoint_or_a_file(tmp_path, capsys):
    src = tmp_path / "good.safetensors"
    shutil.copy(EXAMPLES / "mlp_digits_init.safetensors", src)
    before = src.read_bytes()
    out = tmp_path / "v.safetensors"

    def refused(argv, message):
        assert main(["rewire", str(src), *argv]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err  # one line, no traceback

    # the report on the output: nothing written (the CSV used to replace the rewired checkpoint)
    refused(["-o", str(out), "--report", str(out)], "--report names the output checkpoint (-o)")
    refused(["-o", str(out), "--report", str(tmp_path / "." / "v.safetensors")], "names the output checkpoint")
    assert not out.exists()
    refused(["-o", str(out), "--report", str(src)], "--report names the input checkpoint")
    assert src.read_bytes() == before and not out.exists()
    refused(["-o", str(out), "--report", str(tmp_path / "no" / "r.csv")], "the folder")
    refused(["-o", str(out), "--report", str(tmp_path)], "--report names a folder")
    assert not out.exists()

    # an existing report file is kept unless --force, and the checkpoint is not written either
    csv = tmp_path / "notes.csv"
    csv.write_text("precious\n")
    refused(["-o", str(out), "--report", str(csv)], "the report file exists already; choose another path or pass --force")
    assert csv.read_text() == "precious\n" and not out.exists()
    refused(["--dry-run", "--report", str(csv)], "exists already")
    assert main(["rewire", str(src), "-o", str(out), "--report", str(csv), "--force", "-q"]) == 0
    assert pd.read_csv(csv)["layer"].tolist() == ["0.weight", "2.weight", "4.weight"]
    assert load_file(str(out))["0.weight"].shape == (128, 64)
    assert src.read_bytes() == before


def test_cli_report_has_every_column_the_screen_table_abridges(tmp_path, capsys):
    csv = tmp_path / "r.csv"
    assert main(["rewire", str(EXAMPLES / "mlp_digits_init.safetensors"), "--dry-run", "--report", str(csv)]) == 0
    shown = capsys.readouterr().out.splitlines()[0].split()
    columns = pd.read_csv(csv).columns.tolist()
    assert columns == REPORT_COLUMNS
    assert set(shown) < set(columns) and "ratio_in" not in shown
