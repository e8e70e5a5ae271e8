"""The sweep: plan cases, run one worker process per device layout, keep every finished case.

Why processes: logical devices and ``KERAS_BACKEND`` are fixed when a framework initialises, and a
segfault or a hung XLA compile in one case must not take the sweep (or its results) down with it.
The parent never imports TensorFlow. It watches each worker's progress file: a case running past
``case_timeout_s`` is killed and recorded as failed; a worker that dies fails only the case in flight;
the remaining cases get a fresh worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cases import suite_cases
from bench.config import BenchConfig
from bench.measure.records import CaseClock, base_record, finish
from bench.run.cluster import ClusterMember
from bench.run.worker import WorkerPlan
from bench.store.results import CaseLog

POLL_S = 0.25


@dataclass(frozen=True)
class PlannedCase:
    suite: str
    case_id: str
    backend: str
    replicas: int
    params: dict[str, Any]

    @property
    def workers(self) -> int:
        return int(self.params.get("workers", 1)) if self.suite == "train" else 1

    @property
    def keras(self) -> str:
        return str(self.params.get("keras", "keras3")) if self.suite == "train" else "keras3"


@dataclass(frozen=True)
class LayoutGroup:
    """Cases that share one worker process: same suite, backend and device layout."""

    suite: str
    backend: str
    replicas: int
    case_ids: tuple[str, ...]
    workers: int = 1  # > 1: each case is a cluster of that many processes (bench.run.launcher)
    keras: str = "keras3"  # one Keras per process (bench.measure.flavour)

    @property
    def label(self) -> str:
        extra = (f"-{self.workers}workers" if self.workers > 1 else "") + (f"-{self.keras}" if self.keras != "keras3" else "")
        return f"{self.suite}-{self.backend}-{self.replicas}dev{extra}"


def plan_cases(config: BenchConfig) -> list[PlannedCase]:
    planned: list[PlannedCase] = []
    for suite in ("train", "cpu_predict", "native", "converge"):
        if suite in config.suites:
            planned += [PlannedCase(suite, c.case_id, c.backend, _replicas(suite, c), c.params())
                        for c in suite_cases(suite, config)]
    return planned


def _replicas(suite: str, case: Any) -> int:
    """Devices the suite's worker must make visible for this case."""
    if suite in ("train", "converge"):
        return case.gpus
    # cpu_predict: the training device (GPU, or a logical CPU standing in) plus CPU:0; native: one device.
    return 2 if suite == "cpu_predict" else 1


def group_layouts(cases: list[PlannedCase]) -> list[LayoutGroup]:
    groups: dict[tuple[str, str, int, int, str], list[str]] = {}
    for case in cases:
        groups.setdefault((case.suite, case.backend, case.replicas, case.workers, case.keras), []).append(case.case_id)
    return [LayoutGroup(s, b, r, tuple(ids), w, k) for (s, b, r, w, k), ids in groups.items()]


def worker_env(group: LayoutGroup, simulate: bool, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["KERAS_BACKEND"] = group.backend
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if group.backend == "jax":
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
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
    return env


class Sweep:
    """Runs the planned cases of one run into its case log."""

    def __init__(self, config: BenchConfig, data: dict[str, Any], log: CaseLog, logs_dir: Path,
                 on_case: Callable[[dict[str, Any], int, int], None] | None = None,
                 case_ids: Collection[str] | None = None, member: ClusterMember | None = None):
        self.config = config
        self.member = member  # this task's place in a scheduler's cluster (bench.run.cluster); None: local
        self.data = data
        self.log = log
        self.logs_dir = logs_dir
        self.on_case = on_case or (lambda record, done, total: None)
        # case_ids: the cases `-k` selected (bench.run.select); None runs every planned case.
        self.planned = [c for c in plan_cases(config) if case_ids is None or c.case_id in case_ids]
        _, finished = log.read()
        self.done: set[str] = {c.case_id for c in finished}
        self.total = len(self.planned)
        self._proc: subprocess.Popen | None = None

    @property
    def remaining(self) -> list[PlannedCase]:
        return [c for c in self.planned if c.case_id not in self.done]

    def run(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        groups = group_layouts(self.remaining)
        if self.member is not None:
            # The other tasks of the scheduler's cluster run only its multi-worker cases, and wait for this
            # chief to join each: those go first, the chief's one-process cases after.
            groups.sort(key=lambda g: g.workers == 1)
        try:
            for group in groups:
                self._run_group(group)
        finally:
            self._kill()

    # ------------------------------------------------------------------ one layout

    def _run_group(self, group: LayoutGroup) -> None:
        if group.workers > 1:
            from bench.run.launcher import run_cluster_group

            return run_cluster_group(self, group)
        attempt = 0
        while True:
            todo = tuple(i for i in group.case_ids if i not in self.done)
            if not todo:
                return
            attempt += 1
            progress = self.logs_dir / f"{group.label}.{attempt}.progress.jsonl"
            plan = WorkerPlan(group.suite, group.backend, group.replicas, self.config.devices.simulate, todo,
                              self.config.to_dict(), self.data, str(self.log.path), str(progress), keras=group.keras)
            plan_path = self.logs_dir / f"{group.label}.{attempt}.plan.json"
            plan_path.write_text(plan.to_json(), encoding="utf-8")
            progress.touch()
            log_path = self.logs_dir / f"{group.label}.{attempt}.log"
            started_any = self._watch(group, plan_path, progress, log_path)
            if not started_any:
                reason = f"worker exited before running any case; last log line: {_last_line(log_path)!r} ({log_path})"
                for case_id in todo:
                    self._record_parent_failure(case_id, reason, "WorkerStartError")
                return

    def _watch(self, group: LayoutGroup, plan_path: Path, progress: Path, log_path: Path) -> bool:
        timeout_s = self.config.measure.case_timeout_s
        with open(log_path, "w", encoding="utf-8") as log_fh:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bench.run.worker", str(plan_path)],
                env=worker_env(group, self.config.devices.simulate),
                stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            offset, in_flight, started_at, started_any = 0, None, 0.0, False
            timed_out = False
            while True:
                exited = self._proc.poll() is not None
                events, offset = _read_events(progress, offset)
                for event in events:
                    if event["event"] == "start":
                        in_flight, started_at, started_any = event["case_id"], time.monotonic(), True
                    elif event["event"] == "done":
                        in_flight = None
                        self._case_done(event["case_id"])
                if exited:
                    break
                if in_flight is not None and time.monotonic() - started_at > timeout_s:
                    self._kill()
                    timed_out = True
                    break
                time.sleep(POLL_S)
            code = self._proc.returncode
            self._proc = None
        if in_flight is not None and in_flight not in self.done:
            if timed_out:
                reason = f"timed out after {timeout_s:g} s ([measure] case_timeout_s); worker killed"
                self._record_parent_failure(in_flight, reason, "CaseTimeout")
            else:
                how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                reason = f"worker process died ({how}) during this case; see {log_path}"
                self._record_parent_failure(in_flight, reason, "WorkerCrash")
        return started_any

    def _case_done(self, case_id: str) -> None:
        if case_id in self.done:
            return
        self.done.add(case_id)
        _, cases = self.log.read()
        record = next((c for c in reversed(cases) if c.case_id == case_id), None)
        if record is not None:
            self.on_case(record.to_dict(), len(self.done), self.total)

    def _record_parent_failure(self, case_id: str, reason: str, error_type: str | None,
                               status: str = "failed", metrics: dict[str, Any] | None = None) -> None:
        planned = next(c for c in self.planned if c.case_id == case_id)
        clock = CaseClock()
        draft = base_record(planned.suite, case_id, planned.params, self.data["source"], clock,
                            flags={"simulated": self.config.devices.simulate})
        draft["metrics"].update(metrics or {})
        if error_type is not None:
            draft["error"] = {"type": error_type, "message": reason}
        record = finish(draft, clock, status, reason)
        self.log.append(record)
        self.done.add(case_id)
        self.on_case(record.to_dict(), len(self.done), self.total)

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait()


def _read_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    try:
        with open(path, encoding="utf-8") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except OSError:
        return [], offset
    events = []
    consumed = 0
    for line in chunk.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # half-written; read it next time
        consumed += len(line)
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events, offset + consumed


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""
