"""Multi-worker cases from the parent's side: start each case's processes, watch them, say how it ended.

Framework-free, like the rest of the parent. Each case with ``workers = N`` gets fresh processes — its
own cluster — because a distributed runtime's state does not survive a failed peer (TensorFlow: "Restart
your program to reset"), ``jax.distributed.initialize`` runs once per process, and one case per cluster
keeps a failure inside its case. Where the processes come from (:mod:`bench.run.cluster`):

- **local launcher** (no cluster in the environment): N ``python -m bench.run.worker`` processes on this
  machine, worker ``i`` on the ``i``-th free loopback port with ``TF_CONFIG`` (TensorFlow) or
  ``KERAS_DISTRIBUTION_*`` (JAX); on a GPU host with enough GPUs each worker sees its own
  (``CUDA_VISIBLE_DEVICES``).
- **the scheduler's cluster** (every task runs ``python -m bench run``): this task starts the one worker
  process of its index with the scheduler's variables; the chief's sweep records, the other tasks run
  :func:`run_peer` and write no results file.

Only worker 0 (the chief) appends the case's record; its numbers for every worker came over the
frameworks' collectives (bench.measure.multiworker). The parent watches every worker's progress file and
process and ends a case that cannot finish, with one line saying which worker and why:

- a worker process that dies (signal or non-zero exit) before the chief recorded the case: the others are
  stopped at once — the local launcher sees the death directly, it does not wait for a framework timeout;
- a cluster that does not form within ``[cluster] connect_timeout_s`` of a worker starting to join
  (unreachable peer, wrong address, a peer that never started);
- a case running past ``[measure] case_timeout_s``.

The sweep then goes on with the next case (a fresh cluster): one bad case does not cost the rest of the
sweep, and finished cases are in the case log already. A peer that is really gone makes each later
multi-worker case fail within the connect timeout, and the one-process cases still run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.config import BenchConfig
from bench.measure.worker_plan import WorkerPlan
from bench.process import kill_group, read_events, spawn
from bench.run import cluster
from bench.run.cluster import ClusterMember
from bench.run.plan import LayoutGroup, PlannedCase, group_layouts, plan_cases, worker_env

POLL_S = 0.25
# Lines of a dead worker's log that say why, most telling first (framework messages seen on this suite's
# runs: TensorFlow's coordination service, JAX's distributed client, gloo, gRPC).
_CAUSE_PATTERNS = (
    r"Failed to add port|Address already in use|Failed to start RPC server",
    r"unhealthy|heartbeat",
    r"DEADLINE_EXCEEDED|Deadline Exceeded|timed out|timeout",
    r"Connection refused|Connection closed by peer|Connection reset|Socket closed|UNAVAILABLE",
    r"Terminating process|Check failed|Fatal Python error|Segmentation fault",
    r"^\w*(Error|Exception)\b",
)


@dataclass
class _Worker:
    """One process of the case's cluster, as the parent sees it."""

    index: int
    address: str | None
    proc: subprocess.Popen
    progress: Path
    log: Path
    offset: int = 0
    joining_at: float | None = None
    ready: bool = False
    join_failed: str | None = None
    started_case: bool = False
    done: bool = False
    last_event_t: float | None = None  # wall clock of its last progress event


@dataclass(frozen=True)
class CaseOutcome:
    """How one multi-worker case ended for the parent: the chief's record arrived, or a failure to record."""

    recorded: bool
    failure: tuple[str, str] | None = None  # (error type, one-line reason)
    detail: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the sweep's side


def run_peer(config: BenchConfig, data: dict[str, Any], member: ClusterMember, logs_dir: Path, out: TextIO,
             case_ids: Collection[str] | None = None) -> int:
    """A non-chief task of the scheduler's cluster: run this task's worker of every multi-worker case the
    cluster can take (of ``case_ids``, the cases ``-k`` kept, when given), in the chief's order, and write no
    results (the chief's run holds them)."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    planned = [c for c in plan_cases(config) if c.workers > 1 and cluster.skip_reason(c.params, member) is None
               and (case_ids is None or c.case_id in case_ids)]
    print(f"{member.describe()}: {len(planned)} multi-worker case(s) to run with the chief; results are written "
          f"by worker 0; logs in {logs_dir}", file=out, flush=True)
    for group in group_layouts(planned):
        for case_id in group.case_ids:
            case = next(c for c in planned if c.case_id == case_id)
            outcome = run_cluster_case(config, data, group, case, member, "", logs_dir, on_done=lambda _: None)
            status = "failed: " + outcome.failure[1] if outcome.failure else "done"
            print(f"{case_id}: {status}", file=out, flush=True)
    return 0


# --------------------------------------------------------------------------- one case


def run_cluster_case(config: BenchConfig, data: dict[str, Any], group: LayoutGroup, case: PlannedCase,
                     member: ClusterMember | None, log_path: str, logs_dir: Path,
                     on_done: Callable[[str], None]) -> CaseOutcome:
    """Start the case's processes (all of them locally, or this task's one), watch them, stop them all."""
    settings = config.cluster
    if member is None:
        indexes = list(range(case.workers))
        addresses = cluster.local_addresses(settings.host, case.workers)
    else:
        indexes, addresses = [member.index], member.addresses
    gpu_slices = _gpu_slices(case.workers, case.replicas) if member is None else None
    label = re.sub(r"[^A-Za-z0-9_.=-]+", "_", case.case_id)
    workers: list[_Worker] = []
    launched = time.monotonic()
    try:
        for index in indexes:
            stem = logs_dir / f"{label}.worker{index}"
            progress = Path(f"{stem}.progress.jsonl")
            progress.write_text("", encoding="utf-8")
            plan = WorkerPlan(group.suite, group.backend, group.replicas, config.devices.simulate, (case.case_id,),
                              config.to_dict(), data, log_path if index == 0 else "", str(progress),
                              keras=group.keras, cluster={
                                  "index": index, "size": case.workers,
                                  "source": "local" if member is None else member.source,
                                  "connect_timeout_s": settings.connect_timeout_s,
                                  "peer_timeout_s": settings.peer_timeout_s, "port_base": settings.port_base})
            plan_path = Path(f"{stem}.plan.json")
            plan_path.write_text(plan.to_json(), encoding="utf-8")
            env = cluster.worker_environment(group.backend, index, addresses, member,
                                             worker_env(group, config.devices.simulate))
            if gpu_slices is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpu_slices[index]
            log = Path(f"{stem}.log")
            with open(log, "w", encoding="utf-8") as fh:
                proc = spawn([sys.executable, "-m", "bench.run.worker", str(plan_path)], env, fh)
            workers.append(_Worker(index, addresses[index] if index < len(addresses) else None, proc, progress, log))
        return _watch(workers, config, case, member, launched, on_done)
    finally:
        _stop(workers)


def _watch(workers: list[_Worker], config: BenchConfig, case: PlannedCase, member: ClusterMember | None,
           launched: float, on_done: Callable[[str], None]) -> CaseOutcome:
    settings, timeout_s = config.cluster, config.measure.case_timeout_s
    recorder = next((w for w in workers if w.index == 0), workers[0])  # the chief, or this task's worker
    started_at: float | None = None
    while True:
        now = time.monotonic()
        # Exits first, events second: a worker that wrote "done" and exited between the two reads is done.
        exited = [w for w in workers if w.proc.poll() is not None]
        for w in workers:
            events, w.offset = read_events(w.progress, w.offset)
            for event in events:
                kind = event.get("event")
                w.last_event_t = float(event.get("t", time.time()))
                if kind == "joining":
                    w.joining_at = now
                elif kind == "ready":
                    w.ready = True
                elif kind == "join_failed":
                    w.join_failed = str(event.get("message") or event.get("type") or "")
                elif kind == "start":
                    w.started_case = True
                    if w is recorder:
                        started_at = now
                elif kind == "done":
                    w.done = True
                    if w is recorder:
                        on_done(case.case_id)
        if recorder.done:
            _wait_all(workers, settings.peer_timeout_s)
            return CaseOutcome(recorded=member is None or member.is_chief)
        dead = [w for w in exited if not (w.proc.returncode == 0 and w is not recorder)]
        if dead:
            return _death(dead, workers, member, now - launched)
        joining = [w.joining_at for w in workers if w.joining_at is not None]
        if joining and not all(w.ready for w in workers) and now - min(joining) > settings.connect_timeout_s:
            return _no_cluster(workers, member, settings.connect_timeout_s, now - launched)
        if started_at is not None and now - started_at > timeout_s:
            return CaseOutcome(False, ("CaseTimeout", f"timed out after {timeout_s:g} s ([measure] case_timeout_s); "
                                       f"all {len(workers)} local worker process(es) killed"),
                               {"phase": "running", "after_s": round(now - launched, 3)})
        time.sleep(POLL_S)


def _death(dead: list[_Worker], workers: list[_Worker], member: ClusterMember | None, after_s: float) -> CaseOutcome:
    first = dead[0]
    code = first.proc.returncode
    how = _exit_text(code)
    phase = "running" if first.ready else ("joining" if first.joining_at is not None else "starting")
    when = {"running": "during the case", "joining": "while joining the cluster",
            "starting": "before it began to join the cluster"}[phase]
    cause = first.join_failed or _cause_line(first.log)
    if cause and re.search(_CAUSE_PATTERNS[0], cause) and first.address:
        cause = f"cannot listen on {first.address}: the port is in use ({cause})"
    who = _who(first, member)
    others = [w.index for w in workers if w is not first]
    stopped = f"; stopped worker {', '.join(map(str, others))}" if others else ""
    reason = f"{who} {'exited' if code is not None and code >= 0 else 'died'} ({how}) {when}" + \
             (f": {cause}" if cause else "") + f"{stopped}; log: {first.log}"
    # Seconds from the dead worker's last sign of life to this verdict: an upper bound on how long the
    # death went unnoticed (the fault injection's last event is written just before its SIGKILL).
    silent_s = round(time.time() - first.last_event_t, 3) if first.last_event_t is not None else None
    return CaseOutcome(False, ("ClusterWorkerDied", reason),
                       {"worker": first.index, "phase": phase, "exit": how, "cause": cause or None,
                        "after_s": round(after_s, 3), "detected_after_s": silent_s, "log": str(first.log)})


def _no_cluster(workers: list[_Worker], member: ClusterMember | None, timeout_s: float, after_s: float) -> CaseOutcome:
    if member is None:
        never = [w.index for w in workers if w.joining_at is None]
        waiting = [w.index for w in workers if w.joining_at is not None and not w.ready]
        missing = (f"worker(s) {', '.join(map(str, never))} never began to join" if never else
                   f"worker(s) {', '.join(map(str, waiting))} joined but the rendezvous did not complete")
        reason = f"the cluster did not form within {timeout_s:g} s ([cluster] connect_timeout_s): {missing}"
        worker = (never or waiting or [None])[0]
    else:
        peers = ", ".join(a for i, a in enumerate(member.addresses) if i != member.index) or "its peers"
        reason = (f"{member.describe()} could not reach {peers} within {timeout_s:g} s ([cluster] connect_timeout_s): "
                  "check that every task runs the same `python -m bench run` and that the addresses are reachable "
                  "from this host")
        worker = member.index
    return CaseOutcome(False, ("ClusterConnectTimeout", reason),
                       {"worker": worker, "phase": "joining", "after_s": round(after_s, 3)})


def _who(w: _Worker, member: ClusterMember | None) -> str:
    """"worker 1 (127.0.0.1:5001, pid 12)"; in a scheduler's cluster "worker 1 of 2 (TF_CONFIG; b:2222, pid 12)"."""
    where = f"{w.address}, " if w.address else ""
    source = f"{member.source}; " if member is not None else ""
    return f"worker {w.index}{f' of {member.size}' if member is not None else ''} ({source}{where}pid {w.proc.pid})"


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"{signal.Signals(-code).name}, signal {-code}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _cause_line(log: Path) -> str:
    """The line of a dead worker's log that says why (see ``_CAUSE_PATTERNS``), or ""."""
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    lines = [ln for ln in lines if not ln.startswith("@")]  # native stack frames
    for pattern in _CAUSE_PATTERNS:
        for line in reversed(lines):
            if re.search(pattern, line):
                return line[:300]
    return ""


def _gpu_slices(workers: int, gpus: int) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` per local worker when this host has a GPU set for each; else None (they share
    what they see, and the case says how many replicas the framework made of it)."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is not None:
        visible = [t.strip() for t in raw.split(",") if t.strip() and t.strip() != "-1"]
    else:
        from bench.environment.fingerprint import gpu_inventory

        visible = [str(g.get("index")) for g in gpu_inventory().get("gpus", [])]
    if not visible or len(visible) < workers * gpus:
        return None
    return [",".join(visible[i * gpus:(i + 1) * gpus]) for i in range(workers)]


def _wait_all(workers: Iterable[_Worker], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for w in workers:
        try:
            w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


def _stop(workers: Iterable[_Worker]) -> None:
    for w in workers:
        kill_group(w.proc)
