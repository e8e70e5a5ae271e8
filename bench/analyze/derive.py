"""Cross-case results computed from finished cases when a run is finalised (no framework, no I/O).

Each function reads case records and returns what it derives: new records (``model_copy``) or tables;
the records it was given, and their raw samples, are never changed.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.analyze import host_cost, paired
from bench.analyze.passes import merge_passes
from bench.analyze.stats import summarize
from bench.store.schema import CaseRecord

RATIO_FIELDS = ("native_ratio", "native_case_id", "native_ratio_ceiling", "native_ceiling_case_id")


def attach_native_ratios(cases: Sequence[CaseRecord]) -> list[CaseRecord]:
    """The cases, one-GPU train cases replaced by copies carrying Keras-vs-native ratios.

    ``native_ratio`` = Keras median samples/s / the same backend's native ``step`` median at the same
    global batch and precision (below 1: Keras is slower by that factor). ``native_ratio_ceiling`` is the
    same against the JAX ``epoch_scan`` case at that batch and precision, for every backend: the ceiling
    is the device's, not a framework's. Only ``ok`` cases on both sides; ratios from an earlier
    finalisation are dropped first, so a resumed run never keeps a stale one.
    """
    natives = {}
    for case in cases:
        if case.suite == "native" and case.status == "ok":
            p = case.params
            natives[(p.backend, p.global_batch, p.precision, p.variant)] = case
    return [_with_ratios(case, natives) if case.suite == "train" else case for case in cases]


def _with_ratios(case: CaseRecord, natives: Mapping[tuple[Any, ...], CaseRecord]) -> CaseRecord:
    found: dict[str, Any] = {}
    p, keras_median = case.params, _median(case)
    if case.status == "ok" and p.gpus == 1 and keras_median is not None:
        for ratio_key, id_key, native_key in (
            ("native_ratio", "native_case_id", (p.backend, p.global_batch, p.precision, "step")),
            ("native_ratio_ceiling", "native_ceiling_case_id", ("jax", p.global_batch, p.precision, "epoch_scan")),
        ):
            native = natives.get(native_key)
            native_median = _median(native) if native is not None else None
            if native_median:
                found[ratio_key] = keras_median / native_median
                found[id_key] = native.case_id
    kept = case.metrics.model_dump(exclude_unset=True, exclude=set(RATIO_FIELDS))
    if not found and kept.keys() == case.metrics.model_fields_set:
        return case  # nothing to add and nothing stale to drop
    metrics = type(case.metrics).model_validate({**kept, **found})
    return case.model_copy(update={"metrics": metrics})


def _median(case: CaseRecord) -> float | None:
    """Median samples/s over every round of every process (the paired ratio with its interval is in
    ``derived.comparisons``, kind "native")."""
    summary = getattr(case.metrics, "samples_per_second", None)
    value = summary.median if summary is not None else None
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


def derive_run(suites: Sequence[str], cases: list[CaseRecord],
               header: Mapping[str, Any] | None = None) -> tuple[list[CaseRecord], dict[str, Any]]:
    """A run's cross-case results (``finalize_run``'s ``derive``): new train records with Keras/native
    ratios, where the time goes (bench.analyze.bottleneck), the CPU-prediction ranking table, the
    multi-worker scaling (bench.analyze.scaling); first, each case's per-process records folded into one
    (bench.analyze.passes); then the per-case spread with host and wall time per step, every paired comparison
    with its interval and the machine's speed during the run (bench.analyze.paired, bench.analyze.host_cost),
    the Keras environments side by side; last everything the report and the terminal show
    (bench.analyze.run_tables: the first screen, the summary table, findings, known limitations, MFU).
    ``header``: the run's header (environment, data, run_id) as plain data."""
    derived: dict[str, Any] = {}
    cases = merge_passes(cases)
    if "native" in suites:
        cases = attach_native_ratios(cases)
    if "train" in suites:
        from bench.analyze.bottleneck import derive_tables

        # Keras 3 configurations in one process: a cluster's or Keras 2's throughput is another question
        # (derived["worker_scaling"] below), not a configuration of the same Keras.
        # Files from before the workers and keras axes have them null: one process, Keras 3.
        derived.update(derive_tables([c.to_dict() for c in cases if (getattr(c.params, "workers", 1) or 1) == 1
                                      and (getattr(c.params, "keras", "keras3") or "keras3") == "keras3"]))
    if "train" in suites or "native" in suites:
        from bench.analyze.host_cost import keras_environments

        compared = keras_environments([c.to_dict() for c in cases])
        if compared:
            derived["keras_environments"] = compared
    if "cpu_predict" in suites:
        derived["cpu_predict_ranking"] = ranking(case.to_dict() for case in cases)
    if any(c.suite == "train" and (getattr(c.params, "workers", 1) or 1) > 1 for c in cases):
        from bench.analyze.scaling import worker_scaling

        derived["worker_scaling"] = worker_scaling([case.to_dict() for case in cases])
    if any(c.suite in ("train", "native") for c in cases):
        plain = [c.to_dict() for c in cases if (getattr(c.params, "workers", 1) or 1) == 1]
        derived["case_stats"] = host_cost.with_host_cost(paired.case_stats(plain), plain)
        derived["comparisons"] = paired.comparisons(plain)
        derived["machine_speed"] = paired.machine_speed(plain, derived["case_stats"])
        cases = paired.flag_machine(cases, derived["machine_speed"])
    from bench.analyze.run_tables import derive_tables as report_tables

    derived.update(report_tables(header, [case.to_dict() for case in cases], derived))
    return cases, derived
