"""The first screen of a run (``derived.overview``, bench.analyze.overview) and the summary table under it
(``derived.summary``): presented, not computed. When the page carries a baseline comparison of this run,
its verdict answers "did anything regress?" instead of the pointer to ``compare``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bench.analyze import text as words
from bench.report import tables
from bench.report.comparison import ComparisonView
from bench.report.load import RunData
from bench.report.section import Missing

# The summary table: nvbench's habit, every number with its noise; secondary columns drop in print.
GLANCE = {
    "backend": ("backend", tables.text),
    "GPUs": ("gpus", tables.number()),
    "batch": ("global_batch", tables.number()),
    "precision": ("precision", tables.text),
    "jit_compile": ("jit", tables.text),
    "input": ("input", tables.text),
    "spe": ("steps_per_execution", tables.number()),
    "samples/s": ("value", tables.rate),
    "interval / noise": ("noise_text", tables.text),
    "step ms": ("step_time_s", tables.number(3, scale=1000)),
    "TFLOP/s": ("achieved_tflops", tables.number(3)),
    "MFU": ("mfu_cell", tables.text),
    "category": ("category_text", tables.text),
}
GLANCE_SECONDARY = ("step ms", "TFLOP/s")


def noise_text(row: Mapping[str, Any]) -> str:
    """"[3.31 M, 3.45 M] (95 %, 3 processes)", or "CV 4.6 %" of the rounds of the case's one process."""
    if row.get("ci_low") is not None and row.get("ci_high") is not None:
        return f"[{words.rate_value(row['ci_low'])}, {words.rate_value(row['ci_high'])}] (95 %, {row['processes']} processes)"
    if row.get("noise") is not None:
        return f"CV {words.share(row['noise'])}" + (" (processes)" if row.get("noise_kind") == "between processes" else "")
    return tables.BLANK


def mfu_text(row: Mapping[str, Any]) -> str:
    if row.get("mfu") is not None:
        return f"{words.share(row['mfu'])} of {row['peak_kind']}"
    return "unknown" if row.get("status") == "ok" else tables.BLANK


def outcome_cell(row: Mapping[str, Any]) -> tables.Cell:
    outcome = row.get("outcome") or {}
    if row.get("status") == "ok" or not outcome:
        return tables.Cell(str(row.get("status") or ""), f"status status-{row.get('status')}")
    if outcome.get("kind") == "known limitation":
        return tables.Cell(f"{row['status']} · known limitation {outcome.get('issue') or ''}".strip(),
                           "status status-known", full=None, href=outcome.get("url"))
    return tables.Cell(f"{row['status']} · {outcome.get('kind')}", f"status status-{row['status']}")


def glance_table(run: RunData, rid: str) -> tables.Table | None:
    rows = run.derived.get("summary") or []
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    frame["noise_text"] = [noise_text(r) for r in rows]
    frame["mfu_cell"] = [mfu_text(r) for r in rows]
    frame["category_text"] = [(r.get("category") or {}).get("short") for r in rows]
    return tables.build(frame, GLANCE, f"{rid}-glance", {"outcome": [outcome_cell(r) for r in rows]},
                        css_class="glance", secondary=GLANCE_SECONDARY)


def regression_answer(view: ComparisonView) -> dict[str, Any]:
    regressions = int(view.counts.get("regression", 0))
    return {"key": "regression", "question": "Did anything regress?", "answer": view.sentence,
            "level": "bad" if regressions else "ok", "values": {"counts": dict(view.counts)}}


def prepare(run: RunData, rid: str, comparison: ComparisonView | None = None) -> dict[str, Any] | Missing:
    overview = run.derived.get("overview")
    if not overview:
        return Missing("the file has no derived overview")
    lines = list(overview.get("lines") or [])
    if comparison is not None and comparison.current_run_id == run.run_id:
        lines = [regression_answer(comparison) if line["key"] == "regression" else line for line in lines]
    flops = run.derived.get("model_flops") or {}
    return {"title": overview.get("title"), "run_id": run.run_id, "category": overview.get("category"), "lines": lines,
            "drift": overview.get("drift"), "glance": glance_table(run, rid),
            "flops_per_sample": flops.get("flops_per_sample"), "flops_rule": flops.get("rule"),
            "reference": run.reference}
