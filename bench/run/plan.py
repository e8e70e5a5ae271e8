"""What a sweep will run: the planned cases, the worker processes they share and their order in time, and
each worker's environment.

Framework-free and pure: ``bench run --list/--dry-run``, the sweep, the multi-worker launcher and the
estimate all plan from here, so they agree on ids and on the processes a run starts.

Processes as samples (:func:`schedule`). A process's rounds share its draw — where its threads landed, its
allocator, the machine's state of the moment — so one process per case reports one draw as the truth. Each
train and native case is therefore measured in ``[measure] processes`` fresh processes. With ``order =
"interleaved"`` pass 1 runs every layout group once, its cases in config order; pass 2 runs the groups in
reverse order and each group's cases in reverse; and so on (ABCD DCBA ABCD, pyperf's worker processes with
asv's alternation). No case always runs first or last, and the cases of one pass are adjacent in time, so a
comparison pairs them by pass and slow drift cancels. ``order = "sequential"`` runs each group's processes
back to back with the cases always in config order; with one process it is the order of earlier versions.
Suites whose cases are not throughput samples (cpu_predict, converge) and multi-worker clusters run once,
after the passes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bench.cases import suite_cases
from bench.config import DEFAULT_ENVIRONMENT, BenchConfig
from bench.measure.worker_plan import framework_env


@dataclass(frozen=True)
class PlannedCase:
    suite: str
    case_id: str
    backend: str
    replicas: int
    params: dict[str, Any]
    pythonpath: str | None = None  # the environment's folder, absolute (None: the default environment)

    @property
    def workers(self) -> int:
        return int(self.params.get("workers", 1)) if self.suite == "train" else 1

    @property
    def keras(self) -> str:
        return str(self.params.get("keras", "keras3")) if self.suite == "train" else "keras3"

    @property
    def environment(self) -> str:
        return str(self.params.get("environment", DEFAULT_ENVIRONMENT)) if self.suite == "train" else DEFAULT_ENVIRONMENT


@dataclass(frozen=True)
class LayoutGroup:
    """Cases that share one worker process: same suite, backend and device layout."""

    suite: str
    backend: str
    replicas: int
    case_ids: tuple[str, ...]
    workers: int = 1  # > 1: each case is a cluster of that many processes (bench.run.launcher)
    keras: str = "keras3"  # one Keras per process (bench.measure.flavour)
    environment: str = DEFAULT_ENVIRONMENT  # one Python environment per process ([environments])
    pythonpath: str | None = None  # that environment's folder, first on the worker's PYTHONPATH

    @property
    def label(self) -> str:
        extra = (f"-{self.workers}workers" if self.workers > 1 else "") + (f"-{self.keras}" if self.keras != "keras3" else "")
        extra += f"-env={self.environment}" if self.environment != DEFAULT_ENVIRONMENT else ""
        return f"{self.suite}-{self.backend}-{self.replicas}dev{extra}"


def plan_cases(config: BenchConfig) -> list[PlannedCase]:
    planned: list[PlannedCase] = []
    for suite in ("train", "cpu_predict", "native", "converge"):
        if suite in config.suites:
            planned += [PlannedCase(suite, c.case_id, c.backend, _replicas(suite, c), c.params(),
                                    environment_path(config, getattr(c, "environment", DEFAULT_ENVIRONMENT)))
                        for c in suite_cases(suite, config)]
    return planned


def environment_path(config: BenchConfig, name: str) -> str | None:
    """The absolute folder an environment puts first on PYTHONPATH (relative paths are taken from the directory
    the command runs in), or None for the default environment."""
    if name == DEFAULT_ENVIRONMENT:
        return None
    return os.path.abspath(os.path.expanduser(config.environments[name].pythonpath))


def _replicas(suite: str, case: Any) -> int:
    """Devices the suite's worker must make visible for this case."""
    if suite in ("train", "converge"):
        return case.gpus
    # cpu_predict: the training device (GPU, or a logical CPU standing in) plus CPU:0; native: one device.
    return 2 if suite == "cpu_predict" else 1


def group_layouts(cases: list[PlannedCase]) -> list[LayoutGroup]:
    groups: dict[tuple[str, str, int, int, str, str, str | None], list[str]] = {}
    for case in cases:
        key = (case.suite, case.backend, case.replicas, case.workers, case.keras, case.environment, case.pythonpath)
        groups.setdefault(key, []).append(case.case_id)
    return [LayoutGroup(s, b, r, tuple(ids), w, k, e, path) for (s, b, r, w, k, e, path), ids in groups.items()]


def worker_env(group: LayoutGroup, simulate: bool, base: dict[str, str] | None = None,
               threads: dict[str, Any] | None = None) -> dict[str, str]:
    env = framework_env(group.backend, base, threads)
    if group.backend == "jax":
        if simulate and group.replicas > 1:
            # Only affects the CPU platform: N host devices stand in for N GPUs when none are visible.
            flags = env.get("XLA_FLAGS", "")
            env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={group.replicas}".strip()
    if group.suite == "cpu_predict":
        from bench.measure.cpu_predict import WORKER_ENV

        env.update(WORKER_ENV)
    from bench.measure.flavour import ENV_VAR

    env.pop(ENV_VAR, None)
    if group.keras != "keras3":
        env[ENV_VAR] = group.keras
        env["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras inside TensorFlow is then the same Keras 2
    if group.pythonpath:
        # First, so its packages (another Keras) shadow the same ones in the tool's own Python.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (group.pythonpath, env.get("PYTHONPATH", "")) if p)
    return env


# Suites whose cases are measured in several processes: timed-rounds throughput cases.
REPEATED_SUITES = ("train", "native")


def repeated(group: LayoutGroup) -> bool:
    """Whether this group's cases are measured once per pass (else once, after the passes)."""
    return group.suite in REPEATED_SUITES and group.workers == 1


@dataclass(frozen=True)
class ProcessSlot:
    """One worker process of the run: which pass it is, its layout group, and its cases in the order it measures them."""

    pass_index: int
    group: LayoutGroup
    case_ids: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.group.label}.pass{self.pass_index}"


def schedule(groups: list[LayoutGroup], processes: int, order: str) -> list[ProcessSlot]:
    """Every process of the run, in the order they start (module docstring)."""
    passes = max(1, processes)
    timed = [g for g in groups if repeated(g)]
    once = [ProcessSlot(0, g, g.case_ids) for g in groups if not repeated(g)]
    slots: list[ProcessSlot] = []
    if order == "sequential":
        for group in timed:
            slots += [ProcessSlot(p, group, group.case_ids) for p in range(passes)]
    else:
        for p in range(passes):
            forward = p % 2 == 0
            for group in (timed if forward else timed[::-1]):
                slots.append(ProcessSlot(p, group, group.case_ids if forward else group.case_ids[::-1]))
    return slots + once
