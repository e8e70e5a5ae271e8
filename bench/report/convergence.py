"""The report's time-to-accuracy section: ``derived.convergence`` (bench.analyze.convergence) as a table,
sentences and two charts; the accuracy curves draw the stored per-epoch records of each seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.analyze.convergence import SUITE, _label, _lines, _missing, _percent, _seeds, _varying
from bench.report import tables
from bench.report.charts import _colors, style, to_svg
from bench.report.load import RunData
from bench.report.section import Figure as ChartView
from bench.report.section import Missing


def time_to_target_chart(table: pd.DataFrame, chart_id: str = "converge-time") -> str | None:
    """Median seconds to the target against global batch (log-log), one line per precision (and setting)."""
    ok = table[(table["status"] == "ok")] if not table.empty else table
    if ok.empty or ok["seconds_to_target"].isna().all():
        return None
    extra = [k for k in _varying(table) if k != "precision"]
    lines = {_label(rows[0], ["precision", *extra]): rows for rows in _lines(table)}
    colors = _colors(list(lines))
    batches = sorted(int(b) for b in table["global_batch"].unique())
    with style(chart_id):
        fig = Figure(figsize=(6.4, 3.6))
        ax = fig.subplots()
        for label, rows in lines.items():
            done = [r for r in rows if r["status"] == "ok" and not _missing(r["seconds_to_target"])]
            if done:
                x = [r["global_batch"] for r in done]
                y = np.array([r["seconds_to_target"] for r in done])
                low = y - np.array([r["seconds_q1"] for r in done])
                high = np.array([r["seconds_q3"] for r in done]) - y
                ax.errorbar(x, y, yerr=[np.clip(low, 0, None), np.clip(high, 0, None)], marker="o", markersize=4,
                            capsize=3, linewidth=1.4, color=colors[label], label=label)
            for r in rows:
                if r not in done:
                    ax.annotate("not converged", (r["global_batch"], 1.0), xycoords=("data", "axes fraction"),
                                rotation=90, ha="center", va="top", fontsize=7, color=colors[label])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_xlabel("global batch")
        target = _percent(float(table["target_accuracy"].iloc[0]))
        ax.set_ylabel(f"train seconds to {target} (median, IQR)")
        ax.set_title(f"Time to {target} test accuracy")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
        fig.tight_layout()
        return to_svg(fig, chart_id, f"Time to {target} test accuracy against global batch")


def accuracy_curves_chart(document: Mapping[str, Any], chart_id: str = "converge-curves",
                          table: pd.DataFrame | None = None) -> str | None:
    """Test accuracy after every epoch, every seed: against epochs and against cumulative train seconds.

    ``table``: ``derived.convergence.rows`` as a DataFrame (for the labels of what varies)."""
    cases = [c for c in document.get("cases") or []
             if c.get("suite") == SUITE and any(s.get("epochs") for s in _seeds(c))]
    if not cases:
        return None
    table = pd.DataFrame(((document.get("derived") or {}).get("convergence") or {}).get("rows") or []) \
        if table is None else table
    keys = _varying(table) + ["global_batch"] if not table.empty else ["global_batch"]
    labels = {c["case_id"]: _label(c["params"], keys) for c in cases}
    colors = _colors(list(dict.fromkeys(labels.values())))
    targets = sorted({float(c["metrics"]["target_accuracy"]) for c in cases})
    with style(chart_id):
        fig = Figure(figsize=(8.6, 3.4))
        by_epoch, by_time = fig.subplots(1, 2, sharey=True)
        for case in cases:
            label = labels[case["case_id"]]
            for i, seed in enumerate(_seeds(case)):
                points = [e for e in seed.get("epochs") or [] if e.get("test_accuracy") is not None]
                if not points:
                    continue
                acc = [e["test_accuracy"] for e in points]
                kw = {"color": colors[label], "linewidth": 1.1, "alpha": 0.8, "marker": ".", "markersize": 3,
                      "label": label if i == 0 else None}
                by_epoch.plot([e["epoch"] for e in points], acc, **kw)
                by_time.plot([e["cumulative_s"] for e in points], acc, **kw)
        for ax in (by_epoch, by_time):
            for target in targets:
                ax.axhline(target, linestyle="--", color="0.4", linewidth=0.9)
        by_epoch.set_xlabel("epoch")
        by_time.set_xlabel("cumulative train seconds")
        by_time.set_xscale("log")
        by_epoch.set_ylabel("test accuracy (10 000 images)")
        low = min(e["test_accuracy"] for c in cases for s in _seeds(c) for e in s.get("epochs") or []
                  if e.get("test_accuracy") is not None)
        # The interesting part is near the target: early epochs far below it are cut off.
        by_epoch.set_ylim(max(0.0, low - 0.01, min(targets) - 0.1), 1.0)
        by_epoch.set_title("Test accuracy per epoch (every seed)")
        by_time.set_title("… against training time")
        by_time.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
        fig.tight_layout()
        return to_svg(fig, chart_id, "Test accuracy per epoch and against cumulative training time")


@dataclass
class ConvergenceSection:
    """Everything the report's time-to-accuracy section shows."""

    table: pd.DataFrame
    sentences: list[str] = field(default_factory=list)
    reference: list[dict[str, Any]] = field(default_factory=list)
    time_chart: str | None = None
    curves_chart: str | None = None
    not_trained: list[dict[str, Any]] = field(default_factory=list)  # skipped / failed, with the reason


def section(document: Mapping[str, Any], time_id: str = "converge-time",
            curves_id: str = "converge-curves") -> ConvergenceSection | None:
    """The section for one run document (its ``derived.convergence``), or None when it has no converge case;
    ``*_id``: the charts' ids."""
    derived = (document.get("derived") or {}).get("convergence")
    if not derived:
        return None
    table = pd.DataFrame(derived.get("rows") or [])
    return ConvergenceSection(
        table=table,
        sentences=list(derived.get("tradeoffs") or []),
        reference=list(derived.get("reference") or []),
        time_chart=time_to_target_chart(table, time_id) if not table.empty else None,
        curves_chart=accuracy_curves_chart(document, curves_id, table),
        not_trained=list(derived.get("not_trained") or []),
    )


# --------------------------------------------------------------------------- the report section

_TABLE_COLUMNS = {
    "case": ("case_id", None),
    "status": ("status", None),
    "global batch": ("global_batch", None),
    "precision": ("precision", None),
    "lr scaling": ("lr_scaling", None),
    "learning rate": ("learning_rate", None),
    "converged / seeds": ("converged_of", None),
    "s to target (median)": ("seconds_to_target", None),
    "s to target (q1–q3)": ("seconds_iqr", None),
    "epochs to target": ("epochs_to_target", None),
    "s per epoch": ("epoch_s", None),
    "final test accuracy": ("final_accuracy", None),
}


def report_section(run: RunData, rid: str) -> dict[str, Any] | Missing:
    """The run's time-to-accuracy section (see :mod:`bench.report.page` for how sections are registered)."""
    view = section(run.document, f"{rid}-chart-converge-time", f"{rid}-chart-converge-curves")
    if view is None:
        return Missing('the converge suite did not run (add "converge" to suites; it needs real MNIST)')
    frame = view.table.copy()
    if not frame.empty:
        frame["converged_of"] = [f"{c} / {s}" for c, s in zip(frame["converged"], frame["seeds"], strict=True)]
        frame["seconds_iqr"] = list(zip(frame["seconds_q1"], frame["seconds_q3"], strict=True))
    formats = {"case_id": tables.text, "status": tables.status, "global_batch": tables.number(),
               "precision": tables.text, "lr_scaling": tables.text, "learning_rate": tables.sci,
               "converged_of": tables.text, "seconds_to_target": tables.number(2),
               "seconds_iqr": tables.value_range(2), "epochs_to_target": tables.number(1),
               "epoch_s": tables.number(2), "final_accuracy": tables.number(4)}
    columns = {header: (source, formats[source]) for header, (source, _) in _TABLE_COLUMNS.items()}
    target = float(frame["target_accuracy"].iloc[0]) if not frame.empty else None
    return {
        "sentences": view.sentences,
        "figures": [
            ChartView(f"{rid}-chart-converge-time", view.time_chart,
                   f"Median training seconds to {_percent(target) if target else 'the target'} test accuracy "
                   "against global batch (both axes log), one line per precision; bars span the seeds' quartiles. "
                   "Compile and evaluation time are excluded.", "no case reached the target"),
            ChartView(f"{rid}-chart-converge-curves", view.curves_chart,
                   "Test accuracy (10 000 test images) after every epoch of every seed, against the epoch and "
                   "against cumulative training seconds.", "no epoch finished"),
        ],
        "table": tables.build(frame, columns, f"{rid}-converge-table") if not frame.empty else None,
        "reference": view.reference,
        "not_trained": view.not_trained,
    }
