"""The "Multi-worker and Keras 2" section: cases off the one-process Keras 3 sweep (``RunData.train_extra``).

Two questions, from result files only:

- **Across worker processes** (``workers`` > 1): did the distributed runtime train, at what global
  throughput, what each worker did, and how it scales against ``workers = 1`` — weak (same per-worker batch)
  and strong (same global batch) efficiency, from ``derived.worker_scaling`` (bench.analyze.scaling;
  derived when the file is read for an unfinished case log).
- **Keras 2 vs Keras 3 on one machine** (``keras = tf_keras``, ``workers = 1``): each tf_keras case against
  the Keras 3 case that differs only in the flavour.

A failure is a result here (Keras 3's ``fit`` under ``MultiWorkerMirroredStrategy``, keras-team/keras#20585),
shown with its one-line reason; workers on one machine (the local launcher) are flagged: they measure the
runtime's code path and its collectives over loopback, not a network.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.report import tables
from bench.report.load import RunData, is_true
from bench.report.section import Missing

KERAS_LABEL = {"keras3": "Keras 3", "tf_keras": "tf_keras (Keras 2)"}
KERAS_20585 = "PerReplica"  # the key line of keras-team/keras#20585


def _label(value: Any) -> str:
    return KERAS_LABEL.get(str(value), str(value))


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def _scaling_rows(run: RunData) -> list[dict[str, Any]]:
    # derived is current (bench.analyze.current derives it for a file without one), so absent means no rows.
    return list(run.derived.get("worker_scaling") or [])


def _sentence(row: dict[str, Any]) -> str:
    who = (f"{row['backend']} · {_label(row['keras'])}, {row['workers']} workers × {row['gpus']} device(s), "
           f"global batch {row['global_batch']} ({row['per_worker_batch']} per worker)")
    if row["status"] != "ok":
        text = f"{who}: {row['status']} — {row.get('reason') or 'no reason recorded'}"
        if row["backend"] == "tensorflow" and row["keras"] == "keras3" and KERAS_20585 in str(row.get("reason")):
            text += " (keras-team/keras#20585: Keras 3's fit under MultiWorkerMirroredStrategy)"
        return text + "."
    per_worker = " / ".join(_fmt(v) for v in row.get("per_worker_median") or [])
    parts = [f"{who}: {_fmt(row['samples_per_second_median'])} samples/s over all workers"
             + (f" (each worker's share: {per_worker})" if per_worker else "")]
    for kind, name in (("weak", "weak scaling"), ("strong", "strong scaling")):
        side = row[kind]
        if side.get("efficiency") is not None:
            parts.append(f"{name} {_pct(side['efficiency'])} against 1 worker at batch {side['reference_global_batch']}")
        else:
            parts.append(f"{name}: {side.get('why_missing')}")
    return "; ".join(parts) + "."


def _keras2_rows(run: RunData) -> list[dict[str, Any]]:
    """Each one-process tf_keras case beside the Keras 3 case with the same other axes."""
    extra = run.train_extra
    if extra.empty:
        return []
    legacy = extra[(extra["keras"] == "tf_keras") & (extra["workers"].fillna(1) == 1)]
    axes = ("backend", "gpus", "global_batch", "precision", "jit_compile", "input", "steps_per_execution")
    rows = []
    for _, case in legacy.iterrows():
        match = run.train
        for axis in axes:
            if axis in match.columns and axis in case.index:
                match = match[match[axis].map(repr) == repr(case[axis])]
        keras3 = match.iloc[0] if len(match) else None
        k2 = case["samples_per_second.median"] if case["status"] == "ok" else None
        k3 = keras3["samples_per_second.median"] if keras3 is not None and keras3["status"] == "ok" else None
        rows.append({"case_id": case["case_id"], "status": case["status"], "reason": case["reason"],
                     "keras2": k2, "keras3": k3, "keras3_case_id": keras3["case_id"] if keras3 is not None else None,
                     "ratio": k2 / k3 if k2 and k3 else None})
    return rows


SCALING_TABLE = {
    "case": ("case_id", tables.text),
    "status": ("status", tables.status),
    "Keras": ("keras", tables.text),
    "workers": ("workers", tables.number()),
    "devices / worker": ("gpus", tables.number()),
    "global batch": ("global_batch", tables.number()),
    "per worker": ("per_worker_batch", tables.number()),
    "samples/s (all workers)": ("samples_per_second_median", tables.number()),
    "per worker samples/s": ("per_worker_text", tables.text),
    "weak efficiency": ("weak_efficiency", tables.ratio_pct),
    "strong efficiency": ("strong_efficiency", tables.ratio_pct),
    "strong speedup": ("strong_speedup", tables.times),
}  # no reason column: the sentences above the table give each case's, in full
KERAS2_TABLE = {
    "tf_keras case": ("case_id", tables.text),
    "status": ("status", tables.status),
    "tf_keras samples/s": ("keras2", tables.number()),
    "Keras 3 samples/s": ("keras3", tables.number()),
    "tf_keras / Keras 3": ("ratio", tables.times),
    "Keras 3 case": ("keras3_case_id", tables.text),
    "reason": ("reason", tables.long_text),
}


def prepare(run: RunData, rid: str) -> dict[str, Any] | Missing:
    extra = run.train_extra
    # Cases of another [train] environment are in train_extra too; the Keras versions section draws them.
    if extra.empty or not ((extra["workers"].fillna(1) != 1) | (extra["keras"].fillna("keras3") != "keras3")).any():
        return Missing("no case with [train] workers > 1 or keras = 'tf_keras' in this run")
    scaling = _scaling_rows(run)
    frame = pd.DataFrame([{
        **{k: v for k, v in row.items() if k not in ("weak", "strong")},
        "per_worker_text": " / ".join(_fmt(v) for v in row.get("per_worker_median") or []) or None,
        "weak_efficiency": row["weak"]["efficiency"], "strong_efficiency": row["strong"]["efficiency"],
        "strong_speedup": row["strong"]["speedup"],
    } for row in scaling])
    local = [c for c, flag in zip(extra["case_id"], extra["local_cluster"], strict=True) if is_true(flag)]
    keras2 = _keras2_rows(run)
    return {
        "sentences": [_sentence(row) for row in scaling],
        "local_cluster": len(local),
        "scaling": None if frame.empty else tables.build(frame, SCALING_TABLE, f"{rid}-multiworker-table"),
        "keras2": None if not keras2 else tables.build(pd.DataFrame(keras2), KERAS2_TABLE, f"{rid}-keras2-table"),
        "keras2_sentences": [
            f"{r['case_id']}: tf_keras {_fmt(r['keras2'])} vs Keras 3 {_fmt(r['keras3'])} samples/s"
            + (f" ({r['ratio']:.2f}×)" if r["ratio"] else "") for r in keras2],
    }
