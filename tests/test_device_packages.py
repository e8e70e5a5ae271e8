"""What the device run imports is on the lent GPU machine or carried to it (scripts/device_packages.toml).

The GPU machine has no network: a package the code imports that is neither in its image ([machine]) nor carried
as a wheel ([carried]) stops the run at that import and costs the whole lease. This walks the imports of the
code the device run executes — ``python -m bench`` (which loads every subcommand), the sweep's worker and its
pytest modules, the framework probe, the readers (store, analyze, report) and the two scripts
``scripts/device_run.sh`` calls — statically, the way tests/test_architecture.py does (function-level imports
included), and checks every third-party package against that file. `nox -s device_rehearsal` then runs the
device script itself in such an environment.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_architecture import import_graph, imports_of, module_files

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PACKAGES = tomllib.loads((REPO / "scripts" / "device_packages.toml").read_text(encoding="utf-8"))
# Where the device run starts: `python -m bench` builds every subcommand's parser at start-up (bench.cli), the
# sweep's worker runs the pytest modules by path, the parent probes frameworks in a child process.
ENTRY_PREFIXES = ("bench.cli", "bench.__main__", "bench.commands", "bench.run.worker", "bench.run.benchmarks",
                  "bench.environment.probe", "bench.store", "bench.analyze", "bench.report")
SCRIPTS = ("scripts/step_profile.py", "scripts/gpu_summary.py")
# Loaded by name, not by an import statement: pytest finds pytest-benchmark through its entry point (the
# `benchmark` fixture the worker's modules use).
LOADED_BY_NAME = {"pytest_benchmark"}
# Import name -> distribution name, where they differ beyond - and _.
DISTRIBUTIONS = {"pynvml": "nvidia-ml-py", "yaml": "pyyaml", "PIL": "pillow", "sklearn": "scikit-learn"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution(import_name: str) -> str:
    return normalize(DISTRIBUTIONS.get(import_name, import_name))


def _literal_import_module(path: Path) -> set[str]:
    """``importlib.import_module("pynvml")``: an import by name that an import statement walk cannot see."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


def device_run_imports() -> dict[str, set[str]]:
    """Third-party top-level import name -> the modules (or scripts) of the device run that import it."""
    files = module_files(REPO)
    graph = import_graph(REPO)
    todo = [m for m in graph if m.startswith(ENTRY_PREFIXES)]
    scripts = {s: imports_of(s, REPO / s, set(files)) | _literal_import_module(REPO / s) for s in SCRIPTS}
    todo += [name for names in scripts.values() for name in names if name in graph]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [name for name in graph[module] | _literal_import_module(files[module]) if name in graph]
    edges = {m: graph[m] | _literal_import_module(files[m]) for m in seen} | scripts
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    found: dict[str, set[str]] = {name: {"(loaded by name)"} for name in LOADED_BY_NAME}
    for module, names in edges.items():
        for name in names:
            top = name.split(".")[0]
            if top not in stdlib and top not in ("bench", "scripts"):
                found.setdefault(top, set()).add(module)
    return found


def test_every_import_of_the_device_run_is_on_the_machine_or_carried():
    found = device_run_imports()
    # The walk sees real imports (a walker that found nothing would pass vacuously).
    assert {"pydantic", "jax", "keras", "numpy", "pandas", "pynvml", "tomli_w"} <= set(found), sorted(found)
    machine = {normalize(n) for n in PACKAGES["machine"]["packages"]}
    carried = {normalize(n) for n in PACKAGES["carried"]}
    excused = set(PACKAGES["not_on_device_path"])
    missing = sorted(f"{name} (distribution {distribution(name)}), imported by {', '.join(sorted(by)[:3])}"
                     for name, by in found.items()
                     if distribution(name) not in machine | carried and name not in excused)
    assert not missing, ("the device run imports packages the GPU machine lacks and nothing carries: add each to "
                         "[carried] in scripts/device_packages.toml (or, if the device run never reaches it, to "
                         "[not_on_device_path] with the reason):\n  " + "\n  ".join(missing))


def test_the_list_has_no_stale_entries():
    found = device_run_imports()
    stale = sorted(set(PACKAGES["not_on_device_path"]) - set(found))
    assert not stale, f"[not_on_device_path] names packages nothing imports any more: {stale}"
    machine = {normalize(n) for n in PACKAGES["machine"]["packages"]}
    assert {normalize(n) for n in PACKAGES["rehearsal"]["omit"]} <= machine
    # What the GPU machine lacks is carried, not assumed (the facts this file was written from).
    assert not {"tensorflow", "keras", "pydantic", "tomli-w"} & machine


def test_pydantic_is_carried_because_the_results_schema_needs_it():
    """The failure that prompted this: bench.store.schema imports pydantic, which the GPU machine lacks."""
    found = device_run_imports()
    assert "bench.store.schema" in found["pydantic"]
    assert "pydantic" in PACKAGES["carried"]


def _requirements_on_linux(dist: str, python: str) -> list[str]:
    from packaging.requirements import Requirement

    environment = {"python_version": python, "python_full_version": f"{python}.0", "platform_system": "Linux",
                   "sys_platform": "linux", "os_name": "posix", "platform_machine": "x86_64",
                   "implementation_name": "cpython", "extra": ""}
    names = []
    for line in importlib.metadata.requires(dist) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            names.append(normalize(requirement.name))
    return names


def _carried_needs() -> dict[str, set[str]]:
    """Carried distribution -> what it requires on Linux for the machine's Python, read from the distributions
    installed here at the carried versions (scripts/device_wheels.py checks the downloaded wheels the same way)."""
    carried = {normalize(k): v for k, v in PACKAGES["carried"].items()}
    installed = {}
    for name in carried:
        try:
            installed[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    same = [name for name in carried if installed.get(name) == carried[name]]
    if not {"keras", "pydantic"} <= set(same):
        pytest.skip(f"keras and pydantic at the carried versions are not installed here (found {installed})")
    return {name: set(_requirements_on_linux(name, PACKAGES["machine"]["python"])) for name in same}


def test_every_carried_wheel_is_imported_or_needed_by_another_and_needs_nothing_missing():
    carried = {normalize(k) for k in PACKAGES["carried"]}
    machine = {normalize(n) for n in PACKAGES["machine"]["packages"]}
    needed_by = _carried_needs()
    missing = sorted(f"{name} needs {req}" for name, reqs in needed_by.items() for req in reqs
                     if req not in machine and req not in carried)
    assert not missing, missing
    imported = {distribution(name) for name in device_run_imports()}
    required = set().union(*needed_by.values())
    unused = sorted(set(needed_by) - imported - required)
    assert not unused, f"carried but neither imported by the device run nor needed by a carried wheel: {unused}"


def test_the_rehearsal_installs_exactly_the_machine_packages_the_run_imports_or_the_wheels_need():
    machine = {normalize(n) for n in PACKAGES["machine"]["packages"]}
    imported = {distribution(name) for name in device_run_imports()}
    required = set().union(*_carried_needs().values())
    carried = {normalize(n) for n in PACKAGES["carried"]}  # a carried wheel shadows the machine's copy
    expected = (imported | required) & machine - carried - {normalize(n) for n in PACKAGES["rehearsal"]["omit"]}
    assert {normalize(n) for n in PACKAGES["rehearsal"]["install"]} == expected
