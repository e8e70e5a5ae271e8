"""The package's import graph, read statically: data flows one way, and the readers read result files only.

Three rules: the analysis and report layers never reach a framework or the measuring code; no module imports
itself back through others (an import cycle, function-level imports included); the measuring code
(``bench.measure``) never imports the runner (``bench.run``), which starts it.

Every module under ``bench/`` is parsed with :mod:`ast` (nothing is imported, so a framework that is not
installed cannot hide an edge), and every ``import`` statement is an edge: at module level, inside
functions and inside ``try`` blocks alike, because each runs at some point when that code is used. Only
imports under ``if TYPE_CHECKING:`` are left out; they never run. Importing ``bench.a.b`` also runs
``bench/__init__.py`` and ``bench/a/__init__.py``, so those are edges too. The walk follows ``bench.*``
modules transitively and fails with the chain that leads from an analysis or report module to a
framework (tensorflow, keras, jax, torch, tf_keras) or to the measuring code (``bench.measure``,
``bench.run``).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
READERS = ("bench.analyze", "bench.report")
FORBIDDEN_TOP = {"tensorflow", "keras", "jax", "torch", "tf_keras"}
FORBIDDEN_BENCH = ("bench.measure", "bench.run")


def module_files(root: Path, package: str = "bench") -> dict[str, Path]:
    """Dotted module name -> source file for every module of ``package`` under ``root``."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a submodule runs its packages' ``__init__``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imports_of(module: str, path: Path, known: set[str], parents: bool = True) -> set[str]:
    """The absolute names ``module`` imports (bench modules resolved to the module that runs); with
    ``parents``, also the packages whose ``__init__`` each import runs."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:  # relative: from the package this module is in (or is)
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # `from pkg import name`: name is a submodule when such a module exists, else an attribute.
            targets = [source] + [f"{source}.{alias.name}" for alias in node.names
                                  if f"{source}.{alias.name}" in known]
        for target in targets:
            found.update(_with_parents(target) if parents and target.split(".")[0] == "bench" else [target])
    found.discard(module)
    return found


def import_graph(root: Path, package: str = "bench") -> dict[str, set[str]]:
    files = module_files(root, package)
    known = set(files)
    return {module: imports_of(module, path, known) for module, path in files.items()}


def module_edges(root: Path, package: str = "bench") -> dict[str, set[str]]:
    """Module -> the package's modules it imports by name (a package's ``__init__`` only when named itself).

    The implicit edges to parent packages (:func:`_with_parents`) are left out here: every submodule would
    otherwise "import" its package, and a package ``__init__`` that re-exports a submodule would look like a
    cycle with it.
    """
    files = module_files(root, package)
    known = set(files)
    # ``from bench.report import section`` inside bench.report names its own package: not an edge to a sibling.
    return {module: {name for name in imports_of(module, path, known, parents=False)
                     if name in known and not module.startswith(name + ".")}
            for module, path in files.items()}


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found, key=lambda c: (-len(c), c))


def upward_imports(edges: dict[str, set[str]], lower: str = "bench.measure", upper: str = "bench.run") -> list[str]:
    """``a -> b`` for every module of ``lower`` that imports a module of ``upper``."""
    def inside(name: str, package: str) -> bool:
        return name == package or name.startswith(package + ".")

    return [f"{a} -> {b}" for a in sorted(edges) if inside(a, lower) for b in sorted(edges[a]) if inside(b, upper)]


def _forbidden(name: str) -> bool:
    return name.split(".")[0] in FORBIDDEN_TOP or any(
        name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_BENCH)


def forbidden_chain(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The shortest import chain from ``start`` to a forbidden module, or None (breadth-first)."""
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        # Longest names first, so a chain names `bench.measure.train` rather than its package.
        for target in sorted(graph.get(module, ()), key=lambda name: (-name.count("."), name)):
            if target in parent:
                continue
            parent[target] = module
            if _forbidden(target):
                chain = [target]
                while parent[chain[-1]] is not None:
                    chain.append(parent[chain[-1]])
                return chain[::-1]
            if target in graph:  # a bench module: follow it
                queue.append(target)
    return None


def violations(graph: dict[str, set[str]], readers: tuple[str, ...] = READERS) -> list[str]:
    starts = [m for m in sorted(graph) if any(m == r or m.startswith(r + ".") for r in readers)]
    return [" -> ".join(chain) for chain in (forbidden_chain(graph, m) for m in starts) if chain]


def test_analysis_and_report_never_import_a_framework_or_the_measuring_code():
    graph = import_graph(REPO)
    readers = [m for m in graph if m.startswith(READERS)]
    assert "bench.report.load" in readers and "bench.analyze.stats" in readers, sorted(graph)
    # The walk sees real edges (a walker that found nothing would pass vacuously).
    assert "bench.store.results" in graph["bench.report.load"]
    assert any(target in FORBIDDEN_TOP for targets in graph.values() for target in targets), \
        "no module imports a framework at all: the walker is broken"
    found = violations(graph)
    assert not found, ("modules under bench/analyze or bench/report reach a framework or the measuring code "
                       "(import chain):\n  " + "\n  ".join(found))


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_walk_finds_indirect_function_level_and_relative_imports(tmp_path):
    _write(tmp_path, {
        "bench/__init__.py": "",
        "bench/report/__init__.py": "",
        "bench/report/page.py": "from bench.report import helper\n",
        "bench/report/helper.py": "def f():\n    from ..util import thing\n    return thing\n",
        "bench/util.py": "import os\ntry:\n    import torch.nn as nn\nexcept ImportError:\n    nn = None\n",
        "bench/report/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import jax\n",
        "bench/analyze/__init__.py": "from . import core\n",
        "bench/analyze/core.py": "from bench.measure.train import run\n",
        "bench/measure/__init__.py": "",
        "bench/measure/train.py": "import tensorflow as tf\n",
    })
    graph = import_graph(tmp_path)
    assert graph["bench.report.helper"] >= {"bench", "bench.util"}
    found = violations(graph)
    assert "bench.report.page -> bench.report.helper -> bench.util -> torch.nn" in found
    assert "bench.analyze -> bench.analyze.core -> bench.measure.train" in found
    assert not any(chain.startswith("bench.report.typed ") for chain in found)  # TYPE_CHECKING only


@pytest.mark.parametrize("source", ["import keras", "from bench.run import sweep", "import tf_keras.layers"])
def test_a_direct_forbidden_import_is_named(tmp_path, source):
    _write(tmp_path, {"bench/__init__.py": "", "bench/analyze/__init__.py": "", "bench/analyze/x.py": source,
                      "bench/run/__init__.py": "", "bench/run/sweep.py": ""})
    assert violations(import_graph(tmp_path))[0].startswith("bench.analyze.x -> ")


def test_no_import_cycles_and_the_measuring_code_never_imports_the_runner():
    edges = module_edges(REPO)
    # The edges are real (an empty graph would pass vacuously): the sweep imports its plan.
    assert "bench.run.plan" in edges["bench.run.sweep"], sorted(edges["bench.run.sweep"])
    cycles = import_cycles(edges)
    assert not cycles, "import cycles (function-level imports count):\n  " + "\n  ".join(" <-> ".join(c) for c in cycles)
    upward = upward_imports(edges)
    assert not upward, "bench.measure imports the runner:\n  " + "\n  ".join(upward)


def test_a_planted_cycle_and_an_upward_import_are_caught(tmp_path):
    _write(tmp_path, {
        "bench/__init__.py": "",
        "bench/config.py": "def load():\n    from bench.cases import train_cases  # lazy, still a cycle\n",
        "bench/cases.py": "from bench.config import load\n",
        "bench/run/__init__.py": "",
        "bench/run/worker.py": "PLAN = 1\n",
        "bench/measure/__init__.py": "",
        "bench/measure/distributed.py": "from typing import TYPE_CHECKING\nfrom bench.run.worker import PLAN\n",
        "bench/measure/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.run import worker\n",
        "bench/report/__init__.py": "from . import page\n",  # a package face re-exporting: no cycle
        "bench/report/page.py": "from bench.report import section\n",
        "bench/report/section.py": "X = 1\n",
    })
    edges = module_edges(tmp_path)
    assert import_cycles(edges) == [["bench.cases", "bench.config"]]
    assert upward_imports(edges) == ["bench.measure.distributed -> bench.run.worker"]
