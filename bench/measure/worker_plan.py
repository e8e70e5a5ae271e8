"""What the sweep asks of one worker process: the contract between the runner and the measuring code.

Written by the sweep (:mod:`bench.run.sweep`) and the multi-worker launcher (:mod:`bench.run.launcher`) as
``PLAN.json``; read by the worker's benchmark plugin (:mod:`bench.run.benchmarks.plugin`) and, for a process
of a multi-worker case, by :mod:`bench.measure.distributed`. It lives with the measuring code so that code
can read it without importing the runner (data flows one way: the runner imports the measuring code).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    # Processes as samples (bench.run.plan.schedule): which pass this process is, the round length each case
    # was calibrated to in its first process (later processes reuse it, so every round of a case is alike),
    # the control workload's steps per round likewise, and the resolved thread counts to apply.
    pass_index: int = 0
    units: dict[str, int] | None = None
    control_steps: int | None = None
    threads: dict[str, Any] | None = None
    # Cases an earlier worker of this pass died by a signal while running (bench.run.sweep retries such a case
    # once); their records carry flags.retried_after_crash.
    retried: tuple[str, ...] = ()

    def to_json(self) -> str:
        d = dict(self.__dict__)
        d["case_ids"], d["retried"] = list(self.case_ids), list(self.retried)
        return json.dumps(d)

    @classmethod
    def read(cls, path: str | Path) -> WorkerPlan:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        d["case_ids"], d["retried"] = tuple(d["case_ids"]), tuple(d.get("retried") or ())
        return cls(**d)


def framework_env(backend: str, base: Mapping[str, str] | None = None,
                  threads: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The environment every process that imports ``backend`` gets from this tool: sweep workers and the
    framework probes alike, so a probe discovers devices exactly as a worker will.

    ``threads`` is accepted for every backend but changes nothing for JAX: XLA's CPU client has no thread
    setting (see :mod:`bench.measure.threads`); TensorFlow and torch are set in the worker,
    :func:`bench.measure.threads.apply_threads`.
    """
    env = dict(os.environ if base is None else base)
    env["KERAS_BACKEND"] = backend
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if backend == "jax":
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX would take 75 % of each GPU otherwise
    return env

