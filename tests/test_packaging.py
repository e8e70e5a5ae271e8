"""What a non-editable install gets: a wheel built from this tree holds every module, the worker's pytest.ini
and the shipped configs, and finds them without the source tree; a listed subcommand cannot quietly vanish."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench import cli
from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of a copy of the tree (setuptools writes build/ and *.egg-info where it builds)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed (pip install -e .[test] brings it)")
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("bench", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (built,) = out.glob("keras_gpu_bench-*.whl")
    return built


def test_wheel_holds_every_module_the_pytest_ini_and_the_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "bench").rglob("*.py")}
    assert modules - names == set(), "a subpackage is missing from [tool.setuptools] packages in pyproject.toml"
    assert "bench/run/benchmarks/pytest.ini" in names
    configs = {f"bench/configs/{p.name}" for p in (REPO / "configs").glob("*.toml")}
    assert configs and configs <= names


def test_installed_tree_finds_its_configs_without_the_repository(wheel, tmp_path):
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts into site-packages
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import bench, bench.config as c; print(bench.__file__); print(c.shipped_config('quick.toml')); "
            "print(c.shipped_config('default.toml'))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    module, quick, default = proc.stdout.split()
    assert module.startswith(str(site)), module  # the unpacked wheel, not this checkout
    assert quick == str(site / "bench" / "configs" / "quick.toml")
    assert default == str(site / "bench" / "configs" / "default.toml")


def test_a_listed_subcommand_without_its_module_is_a_packaging_error(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "vanished", "A command whose module was not shipped.")
    with pytest.raises(ModuleNotFoundError, match="bench.commands.vanished is missing.*packaging bug"):
        cli.build_parser()
