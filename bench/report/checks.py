"""Warnings that must not be missed, read from the flags and numbers in a run (pyperf ``format_checks``).

Each check is a small function returning a :class:`ReportWarning` or None. The report puts every warning
in a box at the top of the page; a warning's ``kind`` is stable so tests and readers can find it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from bench.analyze.limitations import shorten, strip_paths
from bench.report.load import RunData, is_false, is_true


@dataclass(frozen=True)
class ReportWarning:
    kind: str
    text: str
    details: tuple[str, ...] = field(default=())


def _true(series: pd.Series) -> pd.Series:
    """A flag column as booleans: only a literal true counts (missing = not set)."""
    return series.map(is_true).astype(bool)


def _suites(run: RunData) -> tuple[pd.DataFrame, ...]:
    return run.train, run.native, run.cpu_predict


def incomplete(run: RunData) -> ReportWarning | None:
    if run.document.get("complete") is False:
        return ReportWarning(
            "incomplete",
            f"Incomplete run: the sweep was interrupted; {len(run.document['cases'])} finished cases are shown "
            "and the rest are missing (continue it with `python -m bench run --resume`).",
        )
    return None


def synthetic_data(run: RunData) -> ReportWarning | None:
    data = run.document.get("data") or {}
    hits = sum(int((_true(f["synthetic_data"]) | (f["data_source"] == "synthetic")).sum()) for f in _suites(run))
    if data.get("synthetic") is True or data.get("source") == "synthetic" or hits:
        note = f" ({strip_paths(data['note'])})" if data.get("note") else ""
        simulated = (run.derived.get("category") or {}).get("devices") != "real GPU"
        return ReportWarning(
            "synthetic_data",
            f"Synthetic data: the images are not MNIST{note}. Loss and accuracy are meaningless; throughput "
            + ("is unaffected (but on simulated devices it says nothing about GPU speed anyway)." if simulated
               else "is unaffected."),
        )
    return None


def simulated_devices(run: RunData) -> ReportWarning | None:
    train = run.train
    hits = train[_true(train["simulated"]) | _true(train["devices.simulated"])]
    if len(hits):
        return ReportWarning(
            "simulated_devices",
            f"Simulated devices: {len(hits)} training case(s) ran on logical devices carved out of one device; "
            "their throughput and scaling say nothing about real GPUs — this run checks that the suite works.",
            tuple(hits["case_id"]),
        )
    return None


def stand_in_device(run: RunData) -> ReportWarning | None:
    cpu = run.cpu_predict
    hits = cpu[_true(cpu["stand_in_device"]) | _true(cpu["train_device_stand_in"])]
    if len(hits):
        return ReportWarning(
            "stand_in_device",
            f"Stand-in device: in {len(hits)} CPU-prediction case(s) a logical CPU stood in for the GPU the "
            "model was trained on; GPU-specific failures cannot show up there.",
            tuple(hits["case_id"]),
        )
    return None


def same_device(run: RunData) -> ReportWarning | None:
    cpu = run.cpu_predict
    hits = cpu[_true(cpu["train_device_is_predict_device"]) & (cpu["status"] == "ok")]
    if len(hits):
        backends = ", ".join(dict.fromkeys(str(b) for b in hits["backend"]))
        return ReportWarning(
            "same_device",
            f"Same device: {len(hits)} CPU-prediction case(s) on {backends} trained on the CPU they predicted on "
            "(no second device); their \"ok\" proves correct predictions and their cost, not a move off the "
            "training device.",
            tuple(hits["case_id"]),
        )
    return None


def unstable(run: RunData) -> ReportWarning | None:
    threshold = run.cv_threshold
    details = []
    for frame, column in ((run.train, "samples_per_second.cv"), (run.native, "samples_per_second.cv"),
                          (run.cpu_predict, "steady_s.cv")):
        cv = pd.to_numeric(frame[column], errors="coerce")
        hits = frame[(cv > threshold) | _true(frame["unstable"])]
        details += [f"{cid}: CV {c:.1%}" if pd.notna(c) else f"{cid}: flagged unstable"
                    for cid, c in zip(hits["case_id"], cv[hits.index], strict=True)]
    if details:
        return ReportWarning(
            "unstable",
            f"Unstable rounds: {len(details)} case(s) have a coefficient of variation above "
            f"measure.cv_threshold = {threshold:.1%}; their medians are less trustworthy — rerun them on a quiet machine.",
            tuple(details),
        )
    return None


def gpu_metrics_unreliable(run: RunData) -> ReportWarning | None:
    details: list[str] = []
    for frame in (run.train, run.native):
        measured = frame["gpu_metrics.status"] == "ok"
        not_reliable = frame["gpu_metrics.reliable"].map(is_false).astype(bool)
        hits = frame[_true(frame["gpu_metrics_unreliable"]) | (measured & not_reliable)]
        details += [f"{cid}: {reason}" if isinstance(reason, str) else cid
                    for cid, reason in zip(hits["case_id"], hits["gpu_metrics.unreliable_reason"], strict=True)]
    if details:
        return ReportWarning(
            "gpu_metrics_unreliable",
            f"Unreliable NVML windows: utilisation of {len(details)} case(s) rests on a short window or too few "
            "samples; read those utilisation numbers as rough.",
            tuple(details),
        )
    return None


def _status_warning(run: RunData, status: str, kind: str, text: str, skip: set[str] | None = None) -> ReportWarning | None:
    details = []
    for frame in _suites(run):
        hits = (frame["status"] == status) & ~frame["case_id"].isin(skip or set())
        if "not_applicable" in frame.columns:
            # A method that does not exist on the backend is listed in its section, not warned about.
            hits &= ~frame["not_applicable"].map(is_true).astype(bool)
        details += [f"{cid}: {shorten(reason)}" if isinstance(reason, str) else f"{cid}: (no reason recorded)"
                    for cid, reason in zip(frame.loc[hits, "case_id"], frame.loc[hits, "reason"], strict=True)]
    if not details:
        return None
    return ReportWarning(kind, text.format(n=len(details)), tuple(details))


def _known(run: RunData) -> dict[str, dict]:
    return {row["case_id"]: row for row in run.derived.get("failures") or [] if row.get("kind") == "known limitation"}


def known_limitations(run: RunData) -> ReportWarning | None:
    """Failures the frameworks are known for (bench.analyze.limitations): expected, not a broken setup."""
    known = _known(run)
    if not known:
        return None
    issues: dict[str, int] = {}
    for row in known.values():
        issues[row.get("issue") or row.get("title")] = issues.get(row.get("issue") or row.get("title"), 0) + 1
    listed = ", ".join(f"{issue} × {n}" for issue, n in issues.items())
    return ReportWarning(
        "known_limitation",
        f"Known framework limitations: {len(known)} case(s) failed as the frameworks are known to ({listed}); "
        "expected results, not a broken setup — each is labelled with its upstream issue in Cases.",
        tuple(f"{cid}: {row.get('title')} ({row.get('issue') or 'no upstream issue'})" for cid, row in known.items()),
    )


def failed(run: RunData) -> ReportWarning | None:
    return _status_warning(run, "failed", "failed", "Failed cases: {n} case(s) raised an error that no known "
                           "framework limitation explains, and have no numbers.", set(_known(run)))


def skipped(run: RunData) -> ReportWarning | None:
    return _status_warning(run, "skipped", "skipped", "Skipped cases: {n} case(s) did not run.")


def wrong(run: RunData) -> ReportWarning | None:
    return _status_warning(
        run, "wrong", "wrong",
        "Wrong predictions: {n} CPU-prediction case(s) differ from the training device beyond tolerance.",
    )


def not_on_cpu(run: RunData) -> ReportWarning | None:
    return _status_warning(
        run, "not_on_cpu", "not_on_cpu",
        "Not on the CPU: {n} CPU-prediction case(s) ran, but their MatMuls were placed on another device.",
    )


CHECKS: tuple[Callable[[RunData], ReportWarning | None], ...] = (
    incomplete, synthetic_data, simulated_devices, stand_in_device, same_device, unstable, gpu_metrics_unreliable,
    failed, known_limitations, skipped, wrong, not_on_cpu,
)


def run_warnings(run: RunData) -> list[ReportWarning]:
    return [w for w in (check(run) for check in CHECKS) if w is not None]
