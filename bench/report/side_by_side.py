"""Side by side: the same cases in several runs (two backends, two machines, two commits) in one table and
one chart, for a report built from more than one result file.

Matching. A case's key is its suite and its parameters minus the run-specific ones: a parameter that takes
a single value within every run that has the suite (``backend`` in a one-backend run; the torch reference
run's ``train_jit_compile``) describes the run, not the case, and is listed with the run instead. So the
JAX and the torch reference runs match ``train`` cases on GPUs × batch × precision × jit_compile and
native cases on batch × precision × variant. The first result file is the reference: one row per case of
run 1 that another run also has (any status; a failed side shows its status).

Numbers. Each run's median of the suite's headline metric (samples/s for train and native, total seconds
for CPU prediction). The ratio is a speed ratio, run k over run 1 (> 1: run k faster; for seconds it is
run 1's time over run k's), and "within noise" marks pairs whose rounds' IQRs overlap
(:func:`bench.analyze.noise.tied`). CPU prediction's total is one measurement (prepare + first call +
steady median), so it has no noise verdict.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bench.analyze import noise
from bench.report import charts
from bench.report.load import RunData, backends
from bench.report.section import Figure as ChartFigure
from bench.report.section import Missing, PageData
from bench.report.tables import BLANK, Cell, Table, smart, status, text, times

SUITES = {  # suite -> (metric column, unit, bigger is better, metric for rounds or None)
    "train": ("samples_per_second.median", "samples/s", True, "samples_per_second"),
    "native": ("samples_per_second.median", "samples/s", True, "samples_per_second"),
    "cpu_predict": ("total_s", "s (total)", False, None),
}
BARE = {"precision", "method", "variant"}  # values that name themselves ("float32", "naive")
SHORT_NAMES = {"global_batch": "batch", "predict_batch": "batch", "jit_compile": "jit",
               "train_jit_compile": "train jit"}
WITHIN, FASTER, SLOWER, ONE_MEASUREMENT = "within noise", "faster", "slower", "one measurement"
VERDICT_COLORS = {WITHIN: "#8c8c8c", FASTER: "#1a7f37", SLOWER: "#b2182b", ONE_MEASUREMENT: "#4d6a8c"}


@dataclass(frozen=True)
class Side:
    """One run as a column: ``label`` for headers, ``settings`` its run-level parameters that differ."""

    index: int
    run: RunData
    label: str
    settings: tuple[str, ...]


def _value_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _frame(run: RunData, suite: str) -> pd.DataFrame:
    return {"train": run.train, "native": run.native, "cpu_predict": run.cpu_predict}[suite]


def _cases(run: RunData, suite: str) -> list[dict[str, Any]]:
    return [c for c in run.document.get("cases", []) if c.get("suite") == suite]


def run_level_params(runs: list[RunData], suite: str) -> set[str]:
    """Parameters that take one value within each run that has ``suite``: properties of the run."""
    present = [_cases(run, suite) for run in runs]
    present = [cases for cases in present if cases]
    names = {name for cases in present for case in cases for name in case.get("params", {})}
    return {name for name in names
            if all(len({_value_text(c["params"].get(name)) for c in cases}) <= 1 for cases in present)}


def _key(suite: str, params: Mapping[str, Any], drop: set[str]) -> tuple:
    return (suite, *((k, _value_text(v)) for k, v in params.items() if k not in drop))


def _label(key: tuple) -> str:
    parts = [v if k in BARE else f"{SHORT_NAMES.get(k, k)}={v}" for k, v in key[1:]]
    return " · ".join(parts) or "(one case)"


def _sides(runs: list[RunData]) -> list[Side]:
    """Each run as a column, with the run-level parameter values that set it apart from the others
    ("backend=jax"; "train_jit_compile=true (cpu_predict)" where only some of its suites have it)."""
    levels = {suite: run_level_params(runs, suite) for suite in SUITES}
    sides = []
    for index, run in enumerate(runs, start=1):
        suites_of: dict[str, list[str]] = {}
        for suite, names in levels.items():
            cases = _cases(run, suite)
            for name in sorted(names):
                values = {_value_text(c["params"].get(name)) for c in cases if name in c["params"]}
                others = {_value_text(c["params"].get(name)) for other in runs if other is not run
                          for c in _cases(other, suite) if name in c["params"]}
                if len(values) == 1 and values != others:
                    suites_of.setdefault(f"{name}={values.pop()}", []).append(suite)
        present = [suite for suite in SUITES if _cases(run, suite)]
        settings = tuple(setting if suites == present else f"{setting} ({', '.join(suites)})"
                         for setting, suites in suites_of.items())
        names = backends(run.train, run.native, run.cpu_predict)
        label = f"run {index}" + (f" ({', '.join(names)})" if names else "")
        sides.append(Side(index, run, label, settings))
    return sides


def matched_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """One row per matched case: ``suite``, ``key``, ``case`` label, and per run k ``value_k`` (median),
    ``status_k`` and ``row_k`` (the case's row, for its rounds); then ``ratio_k`` and ``verdict_k`` for k ≥ 2."""
    records = []
    for suite, (metric, unit, bigger, rounds) in SUITES.items():
        drop = run_level_params(runs, suite)
        per_run = []
        for run in runs:
            frame = _frame(run, suite).set_index("case_id", drop=False) if not _frame(run, suite).empty else None
            found = {}
            for case in _cases(run, suite):
                if frame is not None and case["case_id"] in frame.index:
                    found.setdefault(_key(suite, case["params"], drop), frame.loc[case["case_id"]])
            per_run.append(found)
        for key, first in per_run[0].items():
            others = [found.get(key) for found in per_run[1:]]
            if all(row is None for row in others):
                continue
            record: dict[str, Any] = {"suite": suite, "key": key, "case": _label(key), "metric": unit}
            for k, row in enumerate([first, *others], start=1):
                record[f"status_{k}"] = None if row is None else row["status"]
                value = None if row is None or row["status"] != "ok" else pd.to_numeric(row[metric], errors="coerce")
                record[f"value_{k}"] = None if value is None or pd.isna(value) else float(value)
                record[f"row_{k}"] = row
            for k in range(2, len(runs) + 1):
                a, b = record["value_1"], record[f"value_{k}"]
                if a is None or b is None or a <= 0 or b <= 0:
                    record[f"ratio_{k}"], record[f"verdict_{k}"] = None, None
                    continue
                ratio = b / a if bigger else a / b
                record[f"ratio_{k}"] = ratio
                same = noise.tied(first, record[f"row_{k}"], rounds) if rounds else None
                record[f"verdict_{k}"] = (ONE_MEASUREMENT if same is None else WITHIN if same
                                          else FASTER if ratio > 1 else SLOWER)
            records.append(record)
    return records


def _side_cell(record: Mapping[str, Any], k: int) -> Cell:
    if record.get(f"status_{k}") is None:
        return Cell(BLANK)
    if record[f"status_{k}"] != "ok" or record[f"value_{k}"] is None:
        return status(record[f"status_{k}"])
    return smart(record[f"value_{k}"])


def table(rows: list[dict[str, Any]], sides: list[Side], table_id: str = "side-by-side-table") -> Table:
    headers = ["suite", "case", "metric", *(side.label for side in sides)]
    for side in sides[1:]:
        headers += [f"speed, run {side.index} ÷ run 1", f"run {side.index} vs run 1"]
    body = []
    for record in rows:
        cells = [text(record["suite"]), text(record["case"]), text(record["metric"])]
        cells += [_side_cell(record, side.index) for side in sides]
        for side in sides[1:]:
            verdict = record[f"verdict_{side.index}"]
            cells += [times(record[f"ratio_{side.index}"]),
                      Cell(verdict, f"verdict verdict-{verdict.replace(' ', '-')}") if verdict else Cell(BLANK)]
        body.append(tuple(cells))
    return Table(table_id, tuple(headers), tuple(body), "sortable side-by-side")


def chart(rows: list[dict[str, Any]], sides: list[Side], chart_id: str = "side-by-side-chart") -> str | None:
    """Speed ratio (run k over run 1, log scale) per matched case; grey where within the rounds' noise."""
    bars = [(f"{r['suite']} · {r['case']}" + (f" · run {s.index}" if len(sides) > 2 else ""),
             r[f"ratio_{s.index}"], r[f"verdict_{s.index}"])
            for r in rows for s in sides[1:] if r[f"ratio_{s.index}"] is not None]
    if not bars:
        return None
    labels, ratios, verdicts = zip(*bars, strict=True)
    ratios = np.asarray(ratios, float)
    y = np.arange(len(labels))
    with charts.style(chart_id):
        fig = Figure(figsize=(9.0, 0.26 * len(labels) + 1.3))
        ax = fig.subplots()
        ax.barh(y, np.log2(ratios), color=[VERDICT_COLORS.get(v, "#4d4d4d") for v in verdicts], height=0.7)
        ax.axvline(0, color="black", linewidth=0.8)
        for yi, r in zip(y, ratios, strict=True):
            ax.text(np.log2(r), yi, f" {r:.3g}× ", va="center", ha="left" if r >= 1 else "right", fontsize=7)
        # Bars are log2 of the ratio, so 2× faster and 2× slower are equally long; ticks at powers of two.
        reach = float(np.max(np.abs(np.log2(ratios)))) * 1.3 + 0.5
        ax.set_xlim(-reach, reach)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{2 ** v:.3g}×"))
        ax.set_yticks(y, list(labels), fontsize=7)
        ax.invert_yaxis()
        others = ", ".join(f"run {s.index}" for s in sides[1:])
        ax.set_xlabel(f"speed of {others} ÷ run 1 (log scale; right: faster than run 1; grey: within the rounds' noise)")
        fig.tight_layout()
        return charts.to_svg(fig, chart_id, "Side by side: speed of each run against run 1 per matched case")


def prepare(page: PageData) -> dict[str, Any] | Missing:
    """The section's data: the runs as sides, the matched rows as a table and a chart."""
    runs = page.runs
    if len(runs) < 2:
        return Missing("side by side needs two or more result files (python -m bench report RUN1.json "
                       "RUN2.json); this report has one")
    sides = _sides(runs)
    rows = matched_rows(runs)
    if not rows:
        return Missing("no case of run 1 is in another run with the same parameters (apart from each run's "
                       "own settings)", {"sides": sides})
    unmatched = []
    for side in sides:
        total = sum(len(_cases(side.run, suite)) for suite in SUITES)
        unmatched.append((side, total - sum(r[f"status_{side.index}"] is not None for r in rows)))
    matched = Counter(r["suite"] for r in rows)
    return {"sides": sides, "matched": dict(matched), "unmatched": unmatched,
            "table": table(rows, sides), "rule": noise.RULE,
            "figure": ChartFigure("side-by-side-chart", chart(rows, sides),
                             "Speed of each run ÷ run 1 per matched case, log scale (right of 1×: faster than run 1). "
                             "Grey: within the rounds' noise; green / red: faster / slower beyond it; blue: one "
                             "measurement (CPU-prediction totals), no noise to judge by.",
                             "no matched case finished in run 1 and in another run")}
