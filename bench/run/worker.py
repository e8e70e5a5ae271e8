"""Worker process: one device layout, one backend, one suite; runs the pytest-benchmark module.

Started by :mod:`bench.run.sweep` as ``python -m bench.run.worker PLAN.json`` with ``KERAS_BACKEND`` (and, for
JAX on the CPU, ``XLA_FLAGS``) already in its environment. Devices are configured by the benchmark
plugin before anything imports the framework; finished cases are appended to the run's case log.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from pathlib import Path

from bench.measure.worker_plan import WorkerPlan

BENCHMARK_MODULES = {
    "train": "bench_train.py",
    "cpu_predict": "bench_cpu_predict.py",
    "native": "bench_native.py",
    "converge": "bench_converge.py",
}


def die_with_parent() -> None:
    """Linux: deliver SIGKILL to this process when the sweep process dies, so no orphan keeps writing."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def pytest_args(plan_path: str, suite: str) -> list[str]:
    here = Path(__file__).resolve().parent / "benchmarks"
    return [
        str(here / BENCHMARK_MODULES[suite]),
        "--rootdir", str(here),
        "-c", str(here / "pytest.ini"),
        "-p", "no:cacheprovider",
        "-p", "bench.run.benchmarks.plugin",
        f"--bench-plan={plan_path}",
        "-q", "-rs",
        "--benchmark-columns=min,median,max,iqr,rounds",
        "--benchmark-sort=name",
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m bench.run.worker PLAN.json", file=sys.stderr)
        return 2
    die_with_parent()
    plan = WorkerPlan.read(argv[0])
    import pytest

    return int(pytest.main(pytest_args(argv[0], plan.suite)))


if __name__ == "__main__":
    sys.exit(main())
