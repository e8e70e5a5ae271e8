"""The baseline-comparison section, rendered from the document ``python -m bench compare --json`` writes.

Shape (``kind: keras-gpu-bench/comparison``, ``schema_version: 1``; built by ``bench.analyze.compare.compare_runs``):
``baseline`` / ``current`` run references, ``method`` (effect, test, alpha, thresholds, rule),
``environment`` (fingerprints, ``differs``, ``info``), ``summary`` (``counts`` per verdict, ``fails_build``,
``exit_code``) and ``rows``, one per case: ``case_id``, ``suite``, ``metric``, ``unit``,
``bigger_is_better``, ``threshold``, ``baseline`` / ``current`` sides (``status``, ``median``, ``iqr``, ...),
``ratio`` (current / baseline), ``p_worse``, ``p_better``, ``verdict``, ``reason``, ``notes``.

Kept apart from the run sections: the document belongs to ``bench/analyze/compare.py``, so this is the one
place to adapt when it changes. It is read as a file (like the runs), not through the compare module, so
the report still never imports anything but the results reader. :func:`render_comparison` returns the
section's data; ``templates/sections/comparison.html.j2`` draws it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from bench.analyze.limitations import strip_paths
from bench.report import charts, tables

VERDICT_COLORS = {"regression": "#b2182b", "improvement": "#1a7f37", "no change": "#8c8c8c"}
# Table order: what needs attention first (the chart keeps the sweep order).
VERDICT_ORDER = ("regression", "failed", "improvement", "new", "missing", "no change")


@dataclass(frozen=True)
class ComparisonView:
    """A comparison ready for its section: the summary sentence, the facts, a chart and the case table."""

    source: str
    sentence: str
    counts: Mapping[str, int]
    facts: tables.Table
    chart_svg: str | None = None
    table: tables.Table | None = None
    current_run_id: str | None = None  # the run the comparison judged: its first screen answers "did it regress?"


def rows_frame(document: Mapping[str, Any]) -> pd.DataFrame:
    """One row per compared case with the numbers the section shows."""
    records = []
    for row in document["rows"]:
        base, cur = row.get("baseline") or {}, row.get("current") or {}
        ratio = row.get("ratio")
        worse = ratio is not None and (ratio < 1) == bool(row.get("bigger_is_better"))
        why = "; ".join([r for r in [row.get("reason")] if r] + list(row.get("notes") or []))
        records.append({
            "case_id": row.get("case_id"), "suite": row.get("suite"), "metric": row.get("metric"),
            "unit": row.get("unit"), "bigger_is_better": row.get("bigger_is_better"),
            "threshold": row.get("threshold"),
            "baseline": base.get("median"), "baseline_half_iqr": _half(base.get("iqr")),
            "baseline_status": base.get("status"),
            "current": cur.get("median"), "current_half_iqr": _half(cur.get("iqr")), "current_status": cur.get("status"),
            "change": ratio - 1.0 if ratio is not None else None,
            "p": row.get("p_worse") if worse else row.get("p_better"),
            "verdict": row.get("verdict"), "why": why,
        })
    return pd.DataFrame(records)


def _half(value: Any) -> float | None:
    return value / 2 if isinstance(value, (int, float)) else None


def summary_sentence(document: Mapping[str, Any]) -> str:
    counts = (document.get("summary") or {}).get("counts") or {}
    parts = [f"{n} {verdict}{'s' if n != 1 and verdict in ('regression', 'improvement') else ''}"
             for verdict, n in counts.items() if n]
    base = document.get("baseline") or {}
    name = f" [{base['baseline_name']}]" if base.get("baseline_name") else ""
    fails = (document.get("summary") or {}).get("fails_build")
    verdict = (f"the build fails (exit {document['summary'].get('exit_code')})" if fails
               else "nothing fails the build")
    return (f"Against baseline {base.get('run_id')}{name}: {', '.join(parts) or 'no cases compared'}; {verdict}.")


def change_chart(frame: pd.DataFrame, chart_id: str = "comparison-chart") -> str | None:
    """Change (current / baseline - 1) per case, one panel per metric, coloured by verdict."""
    measured = frame[pd.to_numeric(frame["change"], errors="coerce").notna()]
    if measured.empty:
        return None
    metrics = list(dict.fromkeys(measured["metric"]))
    heights = [int((measured["metric"] == m).sum()) for m in metrics]
    with charts.style(chart_id):
        fig = Figure(figsize=(9.0, 0.2 * sum(heights) + 1.1 * len(metrics) + 0.4))
        axes = np.atleast_1d(fig.subplots(len(metrics), 1, squeeze=False, gridspec_kw={"height_ratios": heights})).ravel()
        for ax, metric in zip(axes, metrics, strict=True):
            part = measured[measured["metric"] == metric]
            y = np.arange(len(part))
            change = part["change"].astype(float).to_numpy()
            colors = [VERDICT_COLORS.get(v, "#4d4d4d") for v in part["verdict"]]
            ax.barh(y, change, color=colors, height=0.7)
            ax.axvline(0, color="black", linewidth=0.8)
            threshold = pd.to_numeric(part["threshold"], errors="coerce").dropna()
            if len(threshold):
                for sign in (-1, 1):
                    ax.axvline(sign * float(threshold.iloc[0]), color="0.4", linestyle=":", linewidth=0.9)
            ax.set_yticks(y, list(part["case_id"]), fontsize=7)
            ax.invert_yaxis()
            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
            better = "higher" if bool(part["bigger_is_better"].iloc[0]) else "lower"
            ax.set_title(f"{metric} ({part['unit'].iloc[0]}; {better} is better) — dotted: threshold", fontsize=9)
        axes[-1].set_xlabel("change, current / baseline − 1 (red: regression, green: improvement)")
        fig.tight_layout()
        return charts.to_svg(fig, chart_id, "Change against the baseline per case")


def _environment_facts(document: Mapping[str, Any]) -> list[tuple[str, Any]]:
    env = document.get("environment") or {}
    rows = []
    for kind, entries in (("differs", env.get("differs") or []), ("info", env.get("info") or [])):
        for d in entries:
            rows.append((f"environment {kind}: {d.get('field')}", f"{d.get('baseline')} → {d.get('current')}"))
    return rows


def render_comparison(document: Mapping[str, Any], source: str) -> ComparisonView:
    base, cur = document.get("baseline") or {}, document.get("current") or {}
    method = document.get("method") or {}
    facts = [
        ("baseline", f"{base.get('run_id')} ({strip_paths(base.get('path')) or '—'}, created {base.get('created_utc')})"),
        ("current", f"{cur.get('run_id')} ({strip_paths(cur.get('path')) or '—'}, created {cur.get('created_utc')})"),
        ("rule", method.get("rule")), ("effect", method.get("effect")), ("test", method.get("test")),
        *_environment_facts(document),
    ]
    frame = rows_frame(document)
    view = {"source": strip_paths(source) or source, "sentence": summary_sentence(document),
            "current_run_id": cur.get("run_id"),
            "counts": (document.get("summary") or {}).get("counts") or {},
            "facts": tables.key_value(facts, "comparison-facts")}
    if frame.empty:
        return ComparisonView(**view)
    columns = {
        "case": ("case_id", tables.text), "metric": ("metric", tables.text),
        "baseline median": ("baseline", tables.smart), "baseline ±½IQR": ("baseline_half_iqr", tables.smart),
        "current median": ("current", tables.smart), "current ±½IQR": ("current_half_iqr", tables.smart),
        "change": ("change", tables.number(1, percent=True)), "p": ("p", tables.sci),
        "verdict": ("verdict", tables.status), "why": ("why", tables.text),
    }
    rank = {v: i for i, v in enumerate(VERDICT_ORDER)}
    ordered = frame.iloc[sorted(range(len(frame)), key=lambda i: rank.get(frame["verdict"].iloc[i], len(rank)))]
    table = tables.build(ordered, columns, "comparison-table", css_class="comparison")
    return ComparisonView(**view, chart_svg=change_chart(frame), table=table)
