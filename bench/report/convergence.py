"""The report's time-to-accuracy section, from the converge cases of a run document only.

Everything is recomputed from the stored per-seed, per-epoch records (``metrics.seeds[].epochs[]``),
not from the summaries stored beside them: a row's per-epoch time is the median epoch over every seed,
its time to target the median over the converged seeds. The HTML layer renders :func:`section`'s
result; nothing here knows about templates.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.report import tables
from bench.report.charts import _colors, style, to_svg
from bench.report.load import RunData
from bench.report.section import Figure as ChartView
from bench.report.section import Missing

SUITE = "converge"
# The axes a trade-off holds fixed while the global batch changes.
_GROUP = ["backend", "gpus", "precision", "jit_compile", "lr_scaling"]


def _missing(value: Any) -> bool:
    """None, or the NaN a DataFrame turns it into."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _quartiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    q1, q3 = np.quantile(np.asarray(values, dtype=float), [0.25, 0.75])
    return float(q1), float(q3)


def _seeds(case: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((case.get("metrics") or {}).get("seeds") or [])


def _reached(seed: Mapping[str, Any], target: float) -> dict[str, Any] | None:
    return next((e for e in seed.get("epochs") or []
                 if e.get("test_accuracy") is not None and e["test_accuracy"] >= target), None)


def case_table(document: Mapping[str, Any]) -> pd.DataFrame:
    """One row per converge case that trained (ok or not_converged), derived from its epochs."""
    rows = []
    for case in document.get("cases") or []:
        if case.get("suite") != SUITE or case.get("status") not in ("ok", "not_converged"):
            continue
        m = case.get("metrics") or {}
        target = float(m["target_accuracy"])
        seeds = _seeds(case)
        hits = [(s, _reached(s, target)) for s in seeds]
        seconds = [hit["cumulative_s"] for _, hit in hits if hit]
        epochs_needed = [hit["epoch"] for _, hit in hits if hit]
        finals = [s["epochs"][-1]["test_accuracy"] for s in seeds
                  if s.get("epochs") and s["epochs"][-1].get("test_accuracy") is not None]
        q1, q3 = _quartiles(seconds)
        rows.append({
            "case_id": case["case_id"], **case["params"], "status": case["status"],
            "simulated": bool((case.get("flags") or {}).get("simulated")),
            "target_accuracy": target, "learning_rate": m.get("learning_rate"),
            "reference_batch": m.get("reference_batch"),
            "seeds": len(seeds), "converged": len(seconds),
            "epoch_s": _median([e["train_s"] for s in seeds for e in s.get("epochs") or []]),
            "epochs_to_target": _median(epochs_needed),
            "seconds_to_target": _median(seconds), "seconds_q1": q1, "seconds_q3": q3,
            "final_accuracy": _median(finals), "max_epochs": m.get("max_epochs"),
            "reference_accuracy": m.get("reference_accuracy"), "reference_label": m.get("reference_label"),
        })
    return pd.DataFrame(rows)


def _times(value: float) -> str:
    return f"{value:.1f}×"


def _percent(target: float) -> str:
    return f"{100 * target:g} %"


def tradeoff(small: Mapping[str, Any], large: Mapping[str, Any]) -> str | None:
    """One sentence comparing two rows of :func:`case_table` that differ in global batch only."""
    if any(_missing(v) or not v for v in (small["epoch_s"], large["epoch_s"], small["seconds_to_target"])):
        return None
    per_epoch = small["epoch_s"] / large["epoch_s"]
    speed = f"{_times(per_epoch)} faster" if per_epoch >= 1 else f"{_times(1 / per_epoch)} slower"
    head = f"batch {large['global_batch']} trains {speed} per epoch than {small['global_batch']}"
    target = _percent(large["target_accuracy"])
    if _missing(large["seconds_to_target"]) or large["status"] != "ok":
        return (f"{head} but reached {target} in {large['converged']} of {large['seeds']} seeds within "
                f"{large['max_epochs']} epochs (batch {small['global_batch']}: {small['converged']} of "
                f"{small['seeds']})")
    epochs = large["epochs_to_target"] / small["epochs_to_target"]
    joint = "but" if (epochs > 1) == (per_epoch >= 1) else "and"
    overall = small["seconds_to_target"] / large["seconds_to_target"]
    result = f"{_times(overall)} faster" if overall >= 1 else f"{_times(1 / overall)} slower"
    return f"{head} {joint} needs {_times(epochs)} the epochs: {result} to {target}"


def _label(row: Mapping[str, Any], keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = row[key]
        if key == "gpus":
            parts.append(f"{value} {'GPU' if value == 1 else 'GPUs'}")
        elif key == "jit_compile":
            parts.append(f"jit={str(value).lower()}")
        elif key == "lr_scaling":
            parts.append(f"lr {value}")
        else:
            parts.append(str(value))
    return ", ".join(parts)


def _varying(table: pd.DataFrame) -> list[str]:
    return [key for key in _GROUP if table[key].astype(str).nunique() > 1]


def _lines(table: pd.DataFrame) -> list[list[dict[str, Any]]]:
    """Rows grouped by everything but the global batch, each sorted by batch.

    At the reference batch every lr_scaling gives the same learning rate, so a line without its own row
    there (a config excludes the duplicates) borrows that case from another rule of the same setting.
    """
    records = table.to_dict("records")
    lines = []
    for _, group in table.groupby(_GROUP, sort=False, dropna=False):
        rows = group.to_dict("records")
        batches = {r["global_batch"] for r in rows}
        head = rows[0]
        for r in records:
            same = all(str(r[k]) == str(head[k]) for k in _GROUP if k != "lr_scaling")
            if same and r["global_batch"] == r.get("reference_batch") and r["global_batch"] not in batches:
                rows.append(dict(r, lr_scaling=head["lr_scaling"]))
                batches.add(r["global_batch"])
        lines.append(sorted(rows, key=lambda r: r["global_batch"]))
    return lines


def tradeoffs(table: pd.DataFrame) -> list[str]:
    """Per setting with two or more batches: the smallest batch that converged against each larger one."""
    if table.empty:
        return []
    keys = _varying(table)
    sentences = []
    for rows in _lines(table):
        base = next((r for r in rows if r["status"] == "ok" and not _missing(r["seconds_to_target"])), None)
        if base is None:
            continue
        for row in rows:
            if row["global_batch"] <= base["global_batch"]:
                continue
            sentence = tradeoff(base, row)
            if sentence:
                prefix = f"{_label(row, keys)}: " if keys else ""
                sentences.append(prefix + sentence + ".")
    return sentences


def reference_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Cases that carry a published accuracy: theirs beside ours (median final test accuracy over seeds)."""
    if table.empty or table["reference_accuracy"].isna().all():
        return []
    rows = table[table["reference_accuracy"].notna()]
    return [{"case_id": r["case_id"], "reference_label": r["reference_label"],
             "reference_accuracy": float(r["reference_accuracy"]), "final_accuracy": r["final_accuracy"],
             "difference": None if _missing(r["final_accuracy"])
             else r["final_accuracy"] - float(r["reference_accuracy"]), "seeds": r["seeds"]}
            for r in rows.to_dict("records")]


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

    ``table``: the document's :func:`case_table`, when the caller has it already."""
    cases = [c for c in document.get("cases") or []
             if c.get("suite") == SUITE and any(s.get("epochs") for s in _seeds(c))]
    if not cases:
        return None
    table = case_table(document) if table is None else table
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
    """The section for one run document, or None when it has no converge case; ``*_id``: the charts' ids."""
    cases = [c for c in document.get("cases") or [] if c.get("suite") == SUITE]
    if not cases:
        return None
    table = case_table(document)
    return ConvergenceSection(
        table=table,
        sentences=tradeoffs(table),
        reference=reference_rows(table),
        time_chart=time_to_target_chart(table, time_id) if not table.empty else None,
        curves_chart=accuracy_curves_chart(document, curves_id, table),
        not_trained=[{"case_id": c["case_id"], "status": c["status"], "reason": c.get("reason")}
                     for c in cases if c["status"] not in ("ok", "not_converged")],
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
