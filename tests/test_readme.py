"""Every Python example of the README runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), namespace)
    assert capsys.readouterr().out.strip()  # every example prints what it shows


README = (ROOT / "README.md").read_text()
CLI_SECTION = README.split("## Command line", 1)[1].split("\n## ", 1)[0]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_readme_documents_every_rewire_option():
    from netinit.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [a.option_strings for a in sub.choices["rewire"]._actions
               if a.option_strings and a.dest != "help"
               and not any(re.search(re.escape(o) + r"(?![\w-])", CLI_SECTION) for o in a.option_strings)]
    assert missing == []


def test_readme_neurons_table_lists_every_column():
    import numpy as np

    from netinit.metrics.tables import neuron_table

    row = next(line for line in README.splitlines() if line.startswith("| `neurons.csv`"))
    documented = set(re.findall(r"\b[a-z_]+\b", " ".join(re.findall(r"`([^`]*)`", row))))
    columns = neuron_table(np.arange(6.0).reshape(2, 3) - 2, layer="fc", centrality="exact").columns
    assert set(columns) | {"block", "role", "expert"} <= documented, set(columns) - documented


def test_readme_cli_section_covers_the_new_user_questions():
    text = _flat(CLI_SECTION)
    assert "`.venv/bin/netinit ...`, or `source .venv/bin/activate`" in text.split("```", 1)[0]  # before the examples
    assert "without `-o DIR` it writes no files" in text
    assert "`rewire` prints an abridged table on screen" in text and "ratio_in, ratio_out" in text
    assert "`--workers 2` took 10.0 s against 6.7 s serial on a 2-core machine" in text
