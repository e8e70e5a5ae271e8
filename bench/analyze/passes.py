"""One record per case from one record per process: the case log's measurements folded when a run is finalised.

Each train and native case is measured in several worker processes (bench.run.plan.schedule); the case log
holds one record per (case, pass). This folds them into one record per case, in pass order, keeping every
raw sample: the rounds of all processes (``round_s``, with ``round_pass``, ``round_start_unix`` and the host
thread's CPU seconds ``round_host_cpu_s`` beside them), every control round (``control.round_pass``), and one ``processes`` entry per process with what was
that process's own (its pid, position, outcome, compile time, threads, machine share, NVML busy %). The
summaries (``samples_per_second``, ``step_time_s``) are recomputed over all rounds; the statistics that
count processes as samples are :mod:`bench.analyze.paired`'s.

A case whose first process did not end ``ok`` was measured once (the sweep does not repeat a skip or a
failure); a later process that failed leaves the case ``ok`` with that process's entry saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.analyze.stats import summarize
from bench.store.schema import CaseRecord, case_record


def _pass(record: CaseRecord) -> int | None:
    process = getattr(record.metrics, "process", None)
    return int(process.pass_index) if process is not None else None


def merge_passes(cases: Sequence[CaseRecord]) -> list[CaseRecord]:
    """The cases with each case's per-process records folded into one (first-seen order of case ids)."""
    groups: dict[str, list[CaseRecord]] = {}
    for case in cases:
        groups.setdefault(case.case_id, []).append(case)
    merged = []
    for records in groups.values():
        with_pass = [r for r in records if _pass(r) is not None]
        if not with_pass:
            merged.append(records[-1])
            continue
        merged.append(merge_case(sorted(with_pass, key=lambda r: _pass(r) or 0)))
    return merged


def merge_case(records: Sequence[CaseRecord]) -> CaseRecord:
    """One case's records, one per process in pass order, as one record."""
    ok = [r for r in records if r.status == "ok"]
    base = (ok or list(records))[0].to_dict()
    metrics = dict(base["metrics"])
    metrics.pop("process", None)
    metrics.pop("machine", None)
    metrics["processes"] = [_process_entry(r) for r in records]
    base["duration_s"] = round(sum(r.duration_s for r in records), 3)
    if not ok:
        base["metrics"] = metrics
        return case_record(base)
    round_s: list[float] = []
    round_pass: list[int] = []
    starts: list[float] = []
    host: list[float | None] = []
    harness = wall = 0.0
    for record in ok:
        m = record.metrics
        rounds = list(m.round_s or [])
        round_s += rounds
        round_pass += [_pass(record) or 0] * len(rounds)
        starts += list(m.round_start_unix or [None] * len(rounds))  # type: ignore[list-item]
        own_host = list(getattr(m, "round_host_cpu_s", None) or [])
        host += own_host if len(own_host) == len(rounds) else [None] * len(rounds)
        if m.timing_check is not None:
            harness += m.timing_check.harness_s
            wall += m.timing_check.wall_s
    steps = metrics.get("steps_per_round")
    samples = metrics.get("samples_per_round")
    last = ok[-1].to_dict()["metrics"]
    metrics.update(round_s=round_s, round_pass=round_pass,
                   timing_check={"harness_s": harness, "wall_s": wall,
                                 "rel_diff": abs(wall - harness) / wall if wall else None},
                   final_loss=last.get("final_loss"))
    if "final_accuracy" in last:
        metrics["final_accuracy"] = last["final_accuracy"]
    for key, values in (("round_start_unix", starts), ("round_host_cpu_s", host)):
        if values and all(v is not None for v in values):
            metrics[key] = values
        else:
            metrics.pop(key, None)
    if samples and steps and _same_rounds(ok):
        metrics["samples_per_second"] = summarize([samples / s for s in round_s])
        metrics["step_time_s"] = summarize([s / steps for s in round_s])
    base["metrics"] = metrics
    base["flags"] = {**base["flags"], **{flag: any(getattr(r.flags, flag) for r in ok)
                                         for flag in ("unstable", "gpu_metrics_unreliable",
                                                     "retried_after_crash")}}
    control = _merge_control(ok)
    if control is not None:
        base["control"] = control
    return case_record(base)


def _same_rounds(records: Sequence[CaseRecord]) -> bool:
    """Every process timed rounds of the same length (later processes reuse the first one's calibration)."""
    return len({(r.metrics.steps_per_round, r.metrics.samples_per_round) for r in records}) == 1


def _process_entry(record: CaseRecord) -> dict[str, Any]:
    m = record.metrics
    entry = m.process.to_dict() if getattr(m, "process", None) is not None else {"pass_index": 0}
    gpu = getattr(m, "gpu_metrics", None)
    aggregate = getattr(gpu, "aggregate", None) if gpu is not None else None
    entry.update(status=record.status, reason=record.reason, compile_s=getattr(m, "compile_s", None),
                 units_per_round=getattr(m, "units_per_round", None),
                 rounds=len(getattr(m, "round_s", None) or []) or None,
                 machine=m.machine.to_dict() if getattr(m, "machine", None) is not None else None,
                 utilization_pct_mean=getattr(aggregate, "utilization_pct_mean", None))
    return {k: v for k, v in entry.items() if v is not None}


def _merge_control(records: Sequence[CaseRecord]) -> dict[str, Any] | None:
    controls = [(r, r.control) for r in records if r.control is not None]
    usable = [(r, c) for r, c in controls if c.status == "ok" and c.round_s]
    if not usable:
        return controls[0][1].to_dict() if controls else None
    first = usable[0][1].to_dict()
    if len({c.samples_per_round for _, c in usable}) != 1:
        # Calibrated apart (an older log, or a process that could not reuse the count): keep the first
        # process's control only rather than mix rounds of different lengths.
        return {**first, "round_pass": [_pass(usable[0][0]) or 0] * len(first["round_s"])}
    round_s, position, round_pass = [], [], []
    for record, control in usable:
        round_s += list(control.round_s)
        position += list(control.position or [])
        round_pass += [_pass(record) or 0] * len(control.round_s)
    per_round = first["samples_per_round"]
    return {**first, "round_s": round_s, "position": position or None, "round_pass": round_pass,
            "samples_per_second": summarize([per_round / s for s in round_s])}
