"""Time to accuracy, derived from the converge cases' stored per-seed, per-epoch records
(``metrics.seeds[].epochs[]``), not from the summaries stored beside them: a row's per-epoch time is the median
epoch over every seed, its time to target the median over the converged seeds. Stored in
``derived.convergence`` when the run is finalised; the report draws it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

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




def derive_convergence(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """``derived.convergence``: the per-case rows, the batch trade-off sentences, the published references
    beside ours and the cases that did not train; None without converge cases."""
    cases = [c for c in document.get("cases") or [] if c.get("suite") == SUITE]
    if not cases:
        return None
    table = case_table(document)
    return {
        "rows": [] if table.empty else _records(table),
        "tradeoffs": tradeoffs(table),
        "reference": reference_rows(table),
        "not_trained": [{"case_id": c["case_id"], "status": c["status"], "reason": c.get("reason")}
                        for c in cases if c["status"] not in ("ok", "not_converged")],
    }


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-able dicts (NaN -> None, numpy scalars -> Python)."""
    out = []
    for record in table.to_dict("records"):
        out.append({k: (None if _missing(v) else v.item() if hasattr(v, "item") else v) for k, v in record.items()})
    return out
