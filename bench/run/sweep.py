"""The sweep: plan cases, run one worker process per device layout, keep every finished case.

Why processes: logical devices and ``KERAS_BACKEND`` are fixed when a framework initialises, and a
segfault or a hung XLA compile in one case must not take the sweep (or its results) down with it.
The parent never imports TensorFlow. It watches each worker's progress file: a case running past
``case_timeout_s`` is killed and recorded as failed; a worker that dies fails only the case in flight;
the remaining cases get a fresh worker.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from bench.measure.records import CaseClock, base_record, finish
from bench.measure.worker_plan import WorkerPlan
from bench.process import kill_group, last_line, read_events, spawn
from bench.run import cluster, launcher
from bench.run.cluster import ClusterMember
from bench.run.plan import LayoutGroup, PlannedCase, group_layouts, plan_cases, worker_env
from bench.store.results import CaseLog

POLL_S = 0.25


class Sweep:
    """Runs the planned cases of one run into its case log."""

    def __init__(self, config: BenchConfig, data: dict[str, Any], log: CaseLog, logs_dir: Path,
                 on_case: Callable[[dict[str, Any], int, int], None] | None = None,
                 case_ids: Collection[str] | None = None, member: ClusterMember | None = None,
                 unavailable: Mapping[str, str] | None = None):
        self.config = config
        # Backend or Keras flavour -> why it cannot run here (not installed): its cases are recorded as skipped
        # with that reason, and no worker is started for them.
        self.unavailable = dict(unavailable or {})
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
        reason = self.unavailable.get(group.backend) or self.unavailable.get(group.keras)
        if reason is not None:
            for case_id in (i for i in group.case_ids if i not in self.done):
                self._record_parent_failure(case_id, reason, None, status="skipped")
            return
        if group.workers > 1:
            return self._run_cluster_group(group)
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
                reason = f"worker exited before running any case; last log line: {last_line(log_path)!r} ({log_path})"
                for case_id in todo:
                    self._record_parent_failure(case_id, reason, "WorkerStartError")
                return

    def _run_cluster_group(self, group: LayoutGroup) -> None:
        """Every case of a ``workers > 1`` layout group, each as its own cluster (bench.run.launcher); skips and
        failures recorded here, finished cases read back from the log."""
        for case_id in group.case_ids:
            if case_id in self.done:
                continue
            planned = self._planned(case_id)
            reason = cluster.skip_reason(planned.params, self.member)
            if reason is not None:
                self._record_parent_failure(case_id, reason, None, status="skipped")
                continue
            outcome = launcher.run_cluster_case(self.config, self.data, group, planned, self.member,
                                                str(self.log.path), self.logs_dir, on_done=self._case_done)
            if outcome.failure is not None and case_id not in self.done:
                error_type, reason = outcome.failure
                self._record_parent_failure(case_id, reason, error_type, metrics={"cluster_failure": outcome.detail})

    def _planned(self, case_id: str) -> PlannedCase:
        return next(c for c in self.planned if c.case_id == case_id)

    def _watch(self, group: LayoutGroup, plan_path: Path, progress: Path, log_path: Path) -> bool:
        timeout_s = self.config.measure.case_timeout_s
        with open(log_path, "w", encoding="utf-8") as log_fh:
            self._proc = spawn([sys.executable, "-m", "bench.run.worker", str(plan_path)],
                               worker_env(group, self.config.devices.simulate), log_fh)
            offset, in_flight, started_at, started_any = 0, None, 0.0, False
            timed_out = False
            while True:
                exited = self._proc.poll() is not None
                events, offset = read_events(progress, offset)
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
        planned = self._planned(case_id)
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
        if self._proc is not None:
            kill_group(self._proc)
