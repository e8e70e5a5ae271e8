"""Shared helpers: write tiny configs, run the real CLI in a subprocess; ``gpu`` tests skip without a GPU."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def no_gpu_reason() -> str | None:
    """Why no NVIDIA GPU is visible to this process, or None when one is (NVML, honouring CUDA_VISIBLE_DEVICES)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU"
    from bench.monitor.inventory import gpu_inventory

    inventory = gpu_inventory()
    return None if inventory["gpus"] else f"no NVIDIA GPU visible ({inventory['nvml']})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip themselves, with the reason, where no GPU is visible."""
    marked = [item for item in items if item.get_closest_marker("gpu")]
    reason = no_gpu_reason() if marked else None
    for item in marked if reason else []:
        item.add_marker(pytest.mark.skip(reason=f"needs a GPU: {reason}"))


@pytest.fixture
def write_config(tmp_path: Path):
    def write(text: str, name: str = "cfg.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` in a fresh process, as a user would run it."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def real_mnist():
    """The resolved spec of real MNIST (Keras cache, else a bounded download), or a skip saying why not.

    CI copies ../shared/data/mnist.npz into the Keras cache (.ci/run), as a CI dataset cache would.
    """
    from bench.config import DataSettings
    from bench.measure import data

    try:
        return data.resolve(DataSettings(source="mnist", download_timeout_s=10), seed=0)
    except data.DataError as exc:
        pytest.skip(f"real MNIST is not in the Keras cache ({data.keras_cache_path()}) and cannot be "
                    f"downloaded: {exc}")
