"""Shared helpers: write tiny configs, run the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
