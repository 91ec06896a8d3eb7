"""The layers of docs/architecture.md hold: the import-linter contracts in pyproject.toml are kept, and the graph
of imports between modules (function-level imports included) has no cycle.

Each top-level folder is mapped into the one package `semiostream` by pyproject.toml's package-dir, so the
tools that walk `semiostream/` on disk would see only part of it. The tests build that package as a tree of
symbolic links (`semiostream/<sub>` -> `<folder>`, from package-dir) and run the tools on it in a fresh
process, where it comes first on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Strongly connected components of the module import graph, printed as JSON (one list of modules each).
CYCLES = """
import json, sys
import grimp

graph = grimp.build_graph("semiostream", cache_dir=None)
edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
index, low, stack, on_stack, sccs = {}, {}, [], set(), []
for root in sorted(edges):  # Tarjan's algorithm, iterative
    if root in index:
        continue
    work = [(root, 0)]
    while work:
        v, i = work.pop()
        if i == 0:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
        for j in range(i, len(edges[v])):
            w = edges[v][j]
            if w not in index:
                work.append((v, j + 1))
                work.append((w, 0))
                break
            if w in on_stack:
                low[v] = min(low[v], index[w])
        else:
            if low[v] == index[v]:
                scc = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1:
                    sccs.append(sorted(scc))
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
print(json.dumps({"modules": len(edges), "cycles": sccs}))
"""


@pytest.fixture(scope="module")
def package_tree(tmp_path_factory) -> Path:
    """A folder holding `semiostream/` as installed: its own files plus each mapped folder as a subpackage."""
    tree = tmp_path_factory.mktemp("layers")
    pkg = tree / "semiostream"
    pkg.mkdir()
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for entry in (ROOT / dirs["semiostream"]).iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, folder in dirs.items():
        if name != "semiostream":
            (pkg / name.removeprefix("semiostream.")).symlink_to(ROOT / folder)
    return tree


def _run(tree: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def test_every_subpackage_is_in_a_layer():
    """A new folder must be placed in the layers (else nothing checks what it imports)."""
    contract = next(c for c in PYPROJECT["tool"]["importlinter"]["contracts"] if c["id"] == "layers")
    placed = {m.strip() for layer in contract["layers"] for m in layer.replace(":", "|").split("|")}
    top = {p.split(".")[1] for p in PYPROJECT["tool"]["setuptools"]["packages"] if p.count(".") == 1}
    modules = {p.stem for p in (ROOT / "semiostream").glob("*.py") if p.stem != "__init__"}
    assert (top | modules) - placed == set()


def test_import_contracts_are_kept(package_tree):
    """`lint-imports` with pyproject.toml's contracts: layers point down; backends import their base only."""
    run = _run(package_tree, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
               "sys.argv = ['lint-imports', '--no-cache', sys.argv[1]]; c()", str(ROOT / "pyproject.toml"))
    assert "Analyzed" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0, run.stdout[run.stdout.find("Broken contracts"):] + run.stderr


def test_no_import_cycle_between_modules(package_tree):
    run = _run(package_tree, "-c", CYCLES)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["modules"] > 100  # the whole package was seen, not only semiostream/ itself
    assert found["cycles"] == [], "modules that import one another (directly or around a loop):\n" + "\n".join(
        " <-> ".join(c) for c in found["cycles"])
