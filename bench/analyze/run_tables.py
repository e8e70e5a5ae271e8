"""Everything the report and the terminal show beyond the bottleneck tables, derived once per run (called by
``bench.analyze.derive.derive_run`` after the bottleneck tables, with them in hand).

``derived`` gains: ``failures`` and ``failure_summary`` (known limitations apart from genuine
failures), ``category`` (real GPU / simulated on CPU; real MNIST / synthetic), ``summary`` (one row per
case with value, interval or noise, MFU and category), ``model_flops``, ``native_table``,
``monitor_overhead``, ``cpu_methods``, ``findings``, ``convergence``, and ``overview`` (the first screen, which
presents bench.analyze.paired's ``comparisons``, ``case_stats`` and ``machine_speed``);
``where_the_time_goes`` rows gain the best case's MFU. ``version`` says which rules wrote them:
:data:`DERIVED_VERSION`; a reader finding another (or none) derives again (bench.analyze.current).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from bench.analyze import findings, flops, limitations, overhead, overview, summary
from bench.analyze.convergence import derive_convergence
from bench.analyze.frames import Frames

# Bump when a rule behind any derived table changes: files derived by older rules are derived again when read.
DERIVED_VERSION = 2


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready rows: NaN and NA become None, numpy scalars Python numbers, tuples lists."""
    out = []
    for record in frame.to_dict("records"):
        row = {}
        for key, value in record.items():
            if isinstance(value, tuple):
                value = [_plain(v) for v in value]
            row[str(key)] = _plain(value)
        out.append(row)
    return out


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _with_mfu(rows: Sequence[Mapping[str, Any]], by_case: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``where_the_time_goes`` rows with the best case's achieved TFLOP/s and share of the peak."""
    out = []
    for row in rows:
        facts = by_case.get(row.get("best_case_id")) or {}
        out.append({**row, **{key: facts.get(key) for key in ("achieved_tflops", "peak_tflops", "peak_kind", "mfu",
                                                             "mfu_unknown_why")}})
    return out


def derive_tables(header: Mapping[str, Any] | None, cases: list[dict[str, Any]],
                  derived: Mapping[str, Any]) -> dict[str, Any]:
    """The tables above, from the run's header (environment, data, run_id), its cases (plain data) and what
    ``derived`` holds so far."""
    header = header or {}
    environment, data = header.get("environment") or {}, header.get("data") or {}
    frames = Frames(cases)
    out: dict[str, Any] = {"version": DERIVED_VERSION}
    if "comparisons" not in derived:  # a run with no train or native case: nothing to compare
        out["comparisons"] = []
    failures = limitations.classify(cases)
    out["failures"], out["failure_summary"] = failures, limitations.summary(failures)
    out["category"] = summary.run_category(cases, environment, data)
    out["summary"] = summary.summary_rows(cases, environment, derived.get("case_stats"), failures)
    out["model_flops"] = flops.model_flops()
    if derived.get("where_the_time_goes") is not None:
        by_case = {row["case_id"]: row for row in out["summary"]}
        out["where_the_time_goes"] = _with_mfu(derived["where_the_time_goes"], by_case)
    native = overhead.native_table(frames.train, frames.native)
    out["native_table"] = records(native)
    monitor = overhead.overhead_table(frames.train, frames.native)
    out["monitor_overhead"] = records(monitor)
    cpu_methods = findings.cpu_method_table(frames.cpu_predict)
    out["cpu_methods"] = records(cpu_methods)
    so_far = {**derived, **out}
    found = findings.train_findings(frames.train, so_far) if not frames.train.empty else []
    found += overhead.native_findings(frames.train, frames.native)
    found.append(overhead.monitor_overhead_finding(monitor))
    found += findings.cpu_predict_findings(frames.cpu_predict)
    out["findings"] = [f.to_dict() for f in found]
    convergence = derive_convergence({"cases": cases})
    if convergence is not None:
        out["convergence"] = convergence
    out["overview"] = overview.overview(header, cases, {**so_far, "findings": out["findings"]})
    return out
