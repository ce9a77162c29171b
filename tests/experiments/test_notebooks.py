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
