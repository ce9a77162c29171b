"""Execute the notebooks end to end in their small mode (NETINIT_NOTEBOOK_SMALL=1), as CI does."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_three_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["a_", "b_", "c_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_concludes_from_its_numbers(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("NETINIT_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("NETINIT_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 1
    # the last cell states the conclusion, built from the run's numbers
    last = "".join(o.get("data", {}).get("text/markdown", "") for o in nb.cells[-1].outputs)
    assert "p = " in last or "Wilcoxon" in last, last[:500]
    # each claim gets its verdict from the numbers (2 seeds in the small mode: inconclusive)
    assert "Verdicts per claim" in last and "inconclusive (fewer than 6 seeds)" in last, last[:800]
    # the committed reports are read in the small mode too (or the cell names what is missing)
    committed = {"a_": "Fashion-MNIST, the declared design", "b_": "primary family structure_at_matched_scale",
                 "c_": "survives training"}[path.name[:2]]
    assert committed in last, last[-800:]
    assert list(tmp_path.iterdir()), "the notebook wrote its results under NETINIT_NOTEBOOK_OUT"


def test_pa_notebook_reads_a_present_fashion_report(tmp_path, torch_one_thread):
    """(a)'s Fashion-MNIST cells on a results root holding one small pa_fashion_mlp-shaped report (digits, 6
    seeds): they give its primary and secondary verdicts and say, from the file system, which grids are missing."""
    nbformat = pytest.importorskip("nbformat")
    from netinit.experiments.config import CONFIG_DIR, load_config, override
    from netinit.experiments.report import compare_results
    from netinit.experiments.runner import run_grid

    cfg = override(load_config(CONFIG_DIR / "pa_fashion_mlp.toml"),
                   {"data.name": "digits", "data.n_train": 0, "model.hidden": [8], "grid.seeds": 6, "train.epochs": 1,
                    "stats.samples": 64, "init.stabilize_k": 5, "grid.methods": ["default", "default+stabilize+pa"]})
    run_grid(cfg, tmp_path / "pa_fashion_mlp")
    compare_results(tmp_path / "pa_fashion_mlp", tmp_path / "pa_fashion_mlp" / "report", metric="train_acc_running",
                    plots=False)
    (tmp_path / "pa_fashion_cnn").mkdir()  # a grid under way: a folder without report
    nb = nbformat.read(next(p for p in NOTEBOOKS if p.name.startswith("a_")), as_version=4)
    start = next(i for i, c in enumerate(nb.cells) if "read_report" in c.source and c.cell_type == "code")
    shown = []
    ns = {"ROOT": tmp_path, "display": lambda x: shown.append(getattr(x, "data", x)), "Markdown": _Text}
    for cell in nb.cells[start:start + 3]:
        if cell.cell_type == "code":
            exec(cell.source.replace('ROOT / "data" / "results"', "ROOT"), ns)
    text = "\n".join(map(str, shown))
    assert "report read: 12 runs (12 finished) over 6 seeds" in text
    assert "**PA after stabilisation helps default** (default+stabilize+pa vs default, primary outcome: " \
           "train_acc_running, epoch 1; family pa_on_each_initialiser, 6 seeds)" in text
    assert "secondary outcome: test_acc, epoch 1" in text and "*What the design can detect:*" in text
    assert "pa_fashion_cnn`): the folder holds 0 run table(s) but no report yet" in text
    assert "pa_fashion_mlp_bn`): not in this checkout; data/results/README.md produces it with `netinit experiment" in text


class _Text(str):
    """Stands in for IPython's Markdown: the text itself."""
