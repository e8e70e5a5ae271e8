"""Worker process: one device layout, one backend, one suite; runs the pytest-benchmark module.

Started by :mod:`bench.run.sweep` as ``python -m bench.run.worker PLAN.json`` with ``KERAS_BACKEND`` (and, for
JAX on the CPU, ``XLA_FLAGS``) already in its environment. Devices are configured by the benchmark
plugin before anything imports the framework; finished cases are appended to the run's case log.
"""

from __future__ import annotations

import ctypes
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARK_MODULES = {
    "train": "bench_train.py",
    "cpu_predict": "bench_cpu_predict.py",
    "native": "bench_native.py",
    "converge": "bench_converge.py",
}


@dataclass(frozen=True)
class WorkerPlan:
    suite: str
    backend: str
    replicas: int  # devices this worker must make visible (logical or physical)
    simulate: bool
    case_ids: tuple[str, ...]
    config: dict[str, Any]
    data: dict[str, Any]
    log_path: str  # "" for a non-chief worker of a cluster: only the chief appends results
    progress_path: str
    keras: str = "keras3"  # the Keras flavour (bench.measure.flavour)
    # Multi-worker cases (bench.run.launcher): {"index", "size", "source", "connect_timeout_s", "peer_timeout_s",
    # "port_base"}; None for a single-process worker.
    cluster: dict[str, Any] | None = None

    def to_json(self) -> str:
        d = dict(self.__dict__)
        d["case_ids"] = list(self.case_ids)
        return json.dumps(d)

    @classmethod
    def read(cls, path: str | Path) -> WorkerPlan:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        d["case_ids"] = tuple(d["case_ids"])
        return cls(**d)


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
