"""Cross-case results computed from finished cases when a run is finalised (no framework, no I/O).

Each function reads case records and returns what it derives; raw samples are never changed.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from bench.analyze.stats import summarize

RATIO_FIELDS = ("native_ratio", "native_case_id", "native_ratio_ceiling", "native_ceiling_case_id")


def attach_native_ratios(cases: list[dict[str, Any]]) -> None:
    """Add Keras-vs-native ratios to one-GPU train cases, in place (no I/O; for ``finalize_run(derive=)``).

    ``native_ratio`` = Keras median samples/s / the same backend's native ``step`` median at the same
    global batch and precision (below 1: Keras is slower by that factor). ``native_ratio_ceiling`` is the
    same against the JAX ``epoch_scan`` case at that batch and precision, for every backend: the ceiling
    is the device's, not a framework's. Only ``ok`` cases on both sides; stale ratios are removed first.
    """
    natives = {}
    for case in cases:
        if case.get("suite") == "native" and case.get("status") == "ok":
            p = case["params"]
            natives[(p["backend"], p["global_batch"], p["precision"], p["variant"])] = case
    for case in cases:
        if case.get("suite") != "train":
            continue
        metrics = case.get("metrics")
        if not isinstance(metrics, dict):
            continue
        for key in RATIO_FIELDS:
            metrics.pop(key, None)
        p = case["params"]
        keras_median = _median(case)
        if case.get("status") != "ok" or p.get("gpus") != 1 or keras_median is None:
            continue
        for ratio_key, id_key, native_key in (
            ("native_ratio", "native_case_id", (p["backend"], p["global_batch"], p["precision"], "step")),
            ("native_ratio_ceiling", "native_ceiling_case_id",
             ("jax", p["global_batch"], p["precision"], "epoch_scan")),
        ):
            native = natives.get(native_key)
            native_median = _median(native) if native is not None else None
            if native_median:
                metrics[ratio_key] = keras_median / native_median
                metrics[id_key] = native["case_id"]


def _median(case: dict[str, Any]) -> float | None:
    value = ((case.get("metrics") or {}).get("samples_per_second") or {}).get("median")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def ranking(cases: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Methods ranked by median ``total_s`` over the settings where they finished ``ok``, per backend.

    A user picks a backend first, so methods are ranked within each backend (backends in first-seen
    order). Spread: ``total_s_min``/``total_s_max`` over those settings and the median steady-round IQR
    (how much one predict call varies). Methods that never finished ok come last, unranked, with their
    statuses.
    """
    by_method: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for case in cases:
        if case.get("suite") == "cpu_predict":
            key = (case["params"].get("backend") or "", case["params"]["method"])
            by_method.setdefault(key, []).append(case)
    backend_order = {b: i for i, b in enumerate(dict.fromkeys(b for b, _ in by_method))}
    rows = []
    for (backend, method), group in by_method.items():
        ok = [c for c in group if c["status"] == "ok" and (c.get("metrics") or {}).get("total_s") is not None]
        totals = summarize([c["metrics"]["total_s"] for c in ok])
        steady = [c["metrics"]["steady_s"] for c in ok if (c["metrics"].get("steady_s") or {}).get("n")]
        rows.append({
            "backend": backend or None,
            "method": method,
            "settings": len(group),
            "ok": len(ok),
            "statuses": dict(Counter(c["status"] for c in group)),
            "total_s_median": totals["median"],
            "total_s_min": totals["min"],
            "total_s_max": totals["max"],
            "steady_s_median": statistics.median(s["median"] for s in steady) if steady else None,
            "steady_iqr_s": statistics.median(s["iqr"] for s in steady) if steady else None,
        })
    rows.sort(key=lambda r: (backend_order[r["backend"] or ""], r["total_s_median"] is None,
                             r["total_s_median"] or 0.0, r["method"]))
    ranks: Counter[str] = Counter()
    for row in rows:
        if row["total_s_median"] is not None:
            ranks[row["backend"] or ""] += 1
        row["rank"] = ranks[row["backend"] or ""] if row["total_s_median"] is not None else None
    return rows
