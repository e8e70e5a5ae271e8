"""The sweep: run the planned cases' worker processes in the order of :func:`bench.run.plan.schedule`, keep every
finished measurement.

Why processes: logical devices and ``KERAS_BACKEND`` are fixed when a framework initialises, and a
segfault or a hung XLA compile in one case must not take the sweep (or its results) down with it; and a
process is the unit of variance (bench.run.plan), so each train and native case is measured in
``[measure] processes`` fresh ones, interleaved in time with the other cases'. The parent never imports
TensorFlow. It watches each worker's progress file: a case running past ``case_timeout_s`` is killed and
recorded as failed; a worker that dies fails only the case in flight (after a signal, only if the case's
fresh-worker retry dies too: flags.retried_after_crash); the rest of its cases get a fresh worker of the
same pass.

A measurement is one (case, pass): the case log holds one record per measurement (``metrics.process.pass``),
and :func:`bench.analyze.passes.merge_passes` folds them into one record per case when the run is
finalised. A case's first process calibrates its round length; later passes reuse it (``WorkerPlan.units``),
as they reuse the control workload's steps, so every round of a case is alike. A case that is skipped or
fails in its first process is not measured again: those outcomes are the configuration's, not the draw's.
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
from bench.run.plan import (
    LayoutGroup,
    PlannedCase,
    ProcessSlot,
    group_layouts,
    plan_cases,
    schedule,
    worker_env,
)
from bench.store.results import CaseLog, record_pass
from bench.store.schema import CaseRecord

POLL_S = 0.25

Key = tuple[str, int]  # (case_id, pass)


class Sweep:
    """Runs the planned cases of one run into its case log."""

    def __init__(self, config: BenchConfig, data: dict[str, Any], log: CaseLog, logs_dir: Path,
                 on_case: Callable[[dict[str, Any], int, int], None] | None = None,
                 case_ids: Collection[str] | None = None, member: ClusterMember | None = None,
                 threads: dict[str, Any] | None = None, unavailable: Mapping[str, str] | None = None):
        self.config = config
        # Backend or Keras flavour -> why it cannot run here (not installed): its cases are recorded as skipped
        # with that reason, and no worker is started for them.
        self.unavailable = dict(unavailable or {})
        self.member = member  # this task's place in a scheduler's cluster (bench.run.cluster); None: local
        self.data = data
        self.log = log
        self.logs_dir = logs_dir
        self.threads = threads  # resolved [threads] (bench.config.resolve_threads), applied in every worker
        self.on_case = on_case or (lambda record, done, total: None)
        # case_ids: the cases `-k` selected (bench.run.select); None runs every planned case.
        self.planned = [c for c in plan_cases(config) if case_ids is None or c.case_id in case_ids]
        self._by_id = {c.case_id: c for c in self.planned}
        groups = group_layouts(self.planned)
        if self.member is not None:
            # The other tasks of the scheduler's cluster run only its multi-worker cases, and wait for this
            # chief to join each: those go first, the chief's one-process cases after.
            groups.sort(key=lambda g: g.workers == 1)
        self.slots = schedule(groups, config.measure.processes, config.measure.order)
        self.records: dict[Key, CaseRecord] = {}
        _, finished = log.read()
        for record in finished:
            self.records[(record.case_id, record_pass(record))] = record
        self._proc: subprocess.Popen | None = None
        # (case, pass) -> how its worker died by a signal: such a case runs again, once, in a fresh worker.
        self._crashes: dict[Key, str] = {}

    # ------------------------------------------------------------------ what is planned and what is done

    def wanted(self) -> list[Key]:
        """Every measurement the run still means to make or has made, in schedule order: a case's later passes
        drop out once its first process ended other than ``ok`` — unless that process died (a signal, or an exit
        without a record): a crash says nothing certain about the case (TensorFlow's fit segfaulted once in
        about twenty processes of configs/drift.toml here), so the later processes still measure it."""
        keys = []
        for slot in self.slots:
            for case_id in slot.case_ids:
                key = (case_id, slot.pass_index)
                first = self.records.get((case_id, 0))
                if (slot.pass_index > 0 and first is not None and first.status != "ok" and not _crashed(first)
                        and key not in self.records):
                    continue
                keys.append(key)
        return keys

    @property
    def done(self) -> set[str]:
        """Cases with every wanted measurement made."""
        wanted = self.wanted()
        todo = {case_id for case_id, p in wanted if (case_id, p) not in self.records}
        return {case_id for case_id, _ in wanted} - todo

    @property
    def remaining(self) -> list[PlannedCase]:
        done = self.done
        return [c for c in self.planned if c.case_id not in done]

    @property
    def total(self) -> int:
        return len(self.planned)

    @property
    def measurements(self) -> tuple[int, int]:
        """(made, wanted) measurements: one per case and process."""
        wanted = self.wanted()
        return sum(1 for key in wanted if key in self.records), len(wanted)

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            for slot in self.slots:
                reason = self.unavailable.get(slot.group.backend) or self.unavailable.get(slot.group.keras)
                if reason is not None:
                    # Not installed: skipped with the install line, no worker started (later passes drop out).
                    for case_id in self._todo(slot):
                        self._record_parent_failure(case_id, reason, None, status="skipped",
                                                    pass_index=slot.pass_index)
                elif slot.group.workers > 1:
                    self._run_cluster_group(slot.group)
                else:
                    self._run_slot(slot)
        finally:
            self._kill()

    def _todo(self, slot: ProcessSlot) -> tuple[str, ...]:
        wanted = set(self.wanted())
        return tuple(i for i in slot.case_ids if (i, slot.pass_index) in wanted and (i, slot.pass_index) not in self.records)

    def _run_slot(self, slot: ProcessSlot) -> None:
        group = slot.group
        attempt = 0
        while True:
            todo = self._todo(slot)
            if not todo:
                return
            attempt += 1
            stem = self.logs_dir / f"{slot.label}.{attempt}"
            progress = Path(f"{stem}.progress.jsonl")
            plan = WorkerPlan(group.suite, group.backend, group.replicas, self.config.devices.simulate, todo,
                              self.config.to_dict(), self.data, str(self.log.path), str(progress), keras=group.keras,
                              pass_index=slot.pass_index, units=self._units(todo), control_steps=self._control_steps(group),
                              threads=self.threads,
                              retried=tuple(i for i in todo if (i, slot.pass_index) in self._crashes))
            plan_path = Path(f"{stem}.plan.json")
            plan_path.write_text(plan.to_json(), encoding="utf-8")
            progress.touch()
            log_path = Path(f"{stem}.log")
            started_any = self._watch(slot, plan_path, progress, log_path)
            if not started_any:
                reason = f"worker exited before running any case; last log line: {last_line(log_path)!r} ({log_path})"
                for case_id in todo:
                    self._record_parent_failure(case_id, reason, "WorkerStartError", pass_index=slot.pass_index)
                return

    def _units(self, case_ids: tuple[str, ...]) -> dict[str, int]:
        """Round length per case from its earliest ok measurement (its calibration), for later processes."""
        units = {}
        for case_id in case_ids:
            for (cid, _), record in sorted(self.records.items(), key=lambda kv: kv[0][1]):
                value = getattr(record.metrics, "units_per_round", None)
                if cid == case_id and record.status == "ok" and isinstance(value, int) and value > 0:
                    units[case_id] = value
                    break
        return units

    def _control_steps(self, group: LayoutGroup) -> int | None:
        """The control workload's steps per round as the group's first process calibrated them."""
        for (case_id, _), record in sorted(self.records.items(), key=lambda kv: kv[0][1]):
            steps = record.control.steps_per_round if record.control is not None else None
            if case_id in group.case_ids and isinstance(steps, int) and steps > 0:
                return steps
        return None

    def _run_cluster_group(self, group: LayoutGroup) -> None:
        """Every case of a ``workers > 1`` layout group, each as its own cluster (bench.run.launcher); skips and
        failures recorded here, finished cases read back from the log."""
        for case_id in group.case_ids:
            if (case_id, 0) in self.records:
                continue
            planned = self._by_id[case_id]
            reason = cluster.skip_reason(planned.params, self.member)
            if reason is not None:
                self._record_parent_failure(case_id, reason, None, status="skipped")
                continue
            outcome = launcher.run_cluster_case(self.config, self.data, group, planned, self.member,
                                                str(self.log.path), self.logs_dir,
                                                on_done=lambda done_id: self._case_done(done_id, 0))
            if outcome.failure is not None and (case_id, 0) not in self.records:
                error_type, reason = outcome.failure
                self._record_parent_failure(case_id, reason, error_type, metrics={"cluster_failure": outcome.detail})

    def _watch(self, slot: ProcessSlot, plan_path: Path, progress: Path, log_path: Path) -> bool:
        timeout_s = self.config.measure.case_timeout_s
        with open(log_path, "w", encoding="utf-8") as log_fh:
            self._proc = spawn([sys.executable, "-m", "bench.run.worker", str(plan_path)],
                               worker_env(slot.group, self.config.devices.simulate, threads=self.threads), log_fh)
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
                        self._case_done(event["case_id"], slot.pass_index)
                if exited:
                    break
                if in_flight is not None and time.monotonic() - started_at > timeout_s:
                    self._kill()
                    timed_out = True
                    break
                time.sleep(POLL_S)
            code = self._proc.returncode
            self._proc = None
        if in_flight is not None and (in_flight, slot.pass_index) not in self.records:
            if timed_out:
                reason = f"timed out after {timeout_s:g} s ([measure] case_timeout_s); worker killed"
                self._record_parent_failure(in_flight, reason, "CaseTimeout", pass_index=slot.pass_index)
            else:
                signalled = code is not None and code < 0
                how = f"signal {-code}" if signalled else f"exit code {code}"
                reason = f"worker process died ({how}) during this case; see {log_path}"
                key = (in_flight, slot.pass_index)
                if signalled and key not in self._crashes:
                    # A framework segfault is a draw of the process, not the case's outcome (TensorFlow's fit
                    # died by signal 11 about once in twenty processes here): the case runs again, once, in
                    # the fresh worker _run_slot starts next, and its record says so.
                    self._crashes[key] = reason
                else:
                    if key in self._crashes:
                        reason = f"{reason} (and, before it, {self._crashes[key]})"
                    self._record_parent_failure(in_flight, reason, "WorkerCrash", pass_index=slot.pass_index)
        return started_any

    def _case_done(self, case_id: str, pass_index: int) -> None:
        if (case_id, pass_index) in self.records:
            return
        _, cases = self.log.read()
        record = next((c for c in reversed(cases) if c.case_id == case_id and record_pass(c) == pass_index), None)
        if record is not None:
            self._recorded(record)

    def _recorded(self, record: CaseRecord) -> None:
        self.records[(record.case_id, record_pass(record))] = record
        made, wanted = self.measurements
        self.on_case(record.to_dict(), made, wanted)

    def _record_parent_failure(self, case_id: str, reason: str, error_type: str | None, status: str = "failed",
                               metrics: dict[str, Any] | None = None, pass_index: int = 0) -> None:
        planned = self._by_id[case_id]
        clock = CaseClock()
        draft = base_record(planned.suite, case_id, planned.params, self.data["source"], clock,
                            flags={"simulated": self.config.devices.simulate})
        draft["metrics"].update(metrics or {})
        if planned.suite in ("train", "native") and planned.workers == 1:
            draft["metrics"]["process"] = {"pass_index": pass_index, "pid": None, "position": None,
                                           "started_unix": time.time()}
        if error_type is not None:
            draft["error"] = {"type": error_type, "message": reason}
        record = finish(draft, clock, status, reason)
        self.log.append(record)
        self._recorded(record)

    def _kill(self) -> None:
        if self._proc is not None:
            kill_group(self._proc)


def _crashed(record: CaseRecord) -> bool:
    """The record the sweep wrote for a worker that died during the case (not a failure the case raised)."""
    return record.error is not None and record.error.type == "WorkerCrash"
