"""The layers hold: import-linter's contracts in pyproject.toml are kept, and a deliberate violation breaks them.

core (sdsgsm/*.py, sdsgsm/attacks/) <- render <- experiments <- cli, ui <- pages; only sdsgsm.ui imports
streamlit; pages never import torch themselves. Imports inside functions count as much as top-level ones.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_contracts_are_kept():
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in run.stdout


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The package (with the app's pages) and pyproject.toml in a scratch folder, to break on purpose."""
    shutil.copytree(ROOT / "sdsgsm", tmp_path / "sdsgsm", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


VIOLATIONS = {
    # an upward import hidden inside a function: the core reaching the experiments
    "layers": ("sdsgsm/params.py", "\n\ndef _late():\n    from sdsgsm.experiments import benchmark\n\n"
                                   "    return benchmark\n"),
    # render running an experiment
    "render-imports-experiments": ("sdsgsm/render/tables.py", "\nimport sdsgsm.experiments.runner  # noqa\n"),
    # streamlit outside sdsgsm/ui
    "streamlit-only-in-ui": ("sdsgsm/experiments/sweep.py", "\n\ndef _ui():\n    import streamlit\n\n"
                                                           "    return streamlit\n"),
    # a page importing torch itself
    "pages-without-torch": ("sdsgsm/ui/app/pages/1_Explorer.py", "\nimport torch  # noqa\n"),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_deliberate_violation_breaks_a_contract(copy: Path, case: str):
    path, code = VIOLATIONS[case]
    with open(copy / path, "a", encoding="utf-8") as f:
        f.write(code)
    run = _lint(copy)
    assert run.returncode != 0, run.stdout[-2000:]
    assert "BROKEN" in run.stdout or "broken" in run.stdout.lower()


def test_a_new_core_module_must_be_placed_in_a_layer(copy: Path):
    (copy / "sdsgsm" / "unplaced.py").write_text('"""A module nobody put in a layer."""\n')
    run = _lint(copy)
    assert run.returncode != 0
    assert "unplaced" in run.stdout + run.stderr


def import_circles(package: str = "sdsgsm") -> list[list[str]]:
    """Every set of modules of ``package`` that import each other in a loop (strongly connected components of
    more than one module in grimp's import graph, which counts imports inside functions too)."""
    import grimp

    graph = grimp.build_graph(package, cache_dir=None)
    edges = {m: sorted(n for n in graph.find_modules_directly_imported_by(m) if n in graph.modules)
             for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while not part or part[-1] != v:
                part.append(stack.pop())
            if len(part) > 1:
                circles.append(sorted(part))

    for module in edges:
        if module not in index:
            visit(module)
    return circles


def test_no_import_circles():
    assert import_circles() == []


def test_the_circle_finder_finds_a_circle(copy: Path, monkeypatch):
    with open(copy / "sdsgsm" / "params.py", "a", encoding="utf-8") as f:
        f.write("\n\ndef _late():\n    from sdsgsm import timing\n\n    return timing\n")
    with open(copy / "sdsgsm" / "timing.py", "a", encoding="utf-8") as f:
        f.write("\nfrom sdsgsm import params  # noqa\n")
    monkeypatch.syspath_prepend(str(copy))
    for name in [m for m in sys.modules if m == "sdsgsm" or m.startswith("sdsgsm.")]:
        monkeypatch.delitem(sys.modules, name)
    assert import_circles() == [["sdsgsm.params", "sdsgsm.timing"]]
