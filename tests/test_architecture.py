"""The import graph of the installed package, read from the source (function-local imports too).

* nothing imports the repository's ``analysis`` folder (it holds configs, not code);
* no import cycle among netinit's modules;
* the core never imports :mod:`netinit.experiments`: only the command line (:mod:`netinit.cli`)
  reaches for it, to add the experiment commands;
* no module imports another module's private (underscored) names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PKG = Path(__file__).resolve().parents[1] / "netinit"
#: the edge modules allowed to import the experiments subpackage
EXPERIMENT_USERS = {"netinit.cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import statement in the file, relative imports resolved."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, [a.name for a in node.names]))
    return found


@pytest.fixture(scope="module")
def graph() -> tuple[nx.DiGraph, dict[str, list[tuple[str, list[str]]]]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    raw = {}
    for name, path in modules.items():
        raw[name] = _imports(path)
        for target, names in raw[name]:
            # "from pkg import sub" imports the submodule pkg.sub where one exists
            targets = [f"{target}.{n}" if f"{target}.{n}" in modules else target for n in names] or [target]
            for t in targets:
                if t in modules and t != name:
                    g.add_edge(name, t)
    return g, raw


def test_the_walk_sees_function_local_imports(graph):
    g, _ = graph
    assert g.has_edge("netinit.cli", "netinit.analyzer")  # imported inside cmd_analyze
    assert g.number_of_edges() > 100


def test_nothing_imports_the_analysis_folder(graph):
    _, raw = graph
    bad = [(m, t) for m, imps in raw.items() for t, _ in imps if t == "analysis" or t.startswith("analysis.")]
    assert bad == []


def test_no_import_cycle_inside_netinit(graph):
    g, _ = graph
    cycles = [c for c in nx.simple_cycles(g)]
    assert cycles == [], f"{len(cycles)} cycles, e.g. {' -> '.join(cycles[0] + cycles[0][:1]) if cycles else ''}"


def test_the_core_never_imports_the_experiments(graph):
    g, _ = graph
    core = [m for m in g if not m.startswith("netinit.experiments") and m not in EXPERIMENT_USERS]
    bad = [(m, t) for m in core for t in g.successors(m) if t.startswith("netinit.experiments")]
    assert bad == []


def test_no_module_imports_private_names_of_another(graph):
    """Private modules (``netinit._rng``) hold what several modules need, under public names;
    an underscored name stays inside its module."""
    g, raw = graph
    bad = []
    for m, imps in raw.items():
        for target, names in imps:
            if not target.startswith("netinit") or target == m:
                continue
            bad += [f"{m} imports {target}.{n}" for n in names
                    if n.startswith("_") and not n.startswith("__") and f"{target}.{n}" not in g]
    assert bad == []
