"""Scaling over worker processes: each multi-worker case against its one-worker references (no framework, no I/O).

Computed when a run is finalised, from the cases' stored medians; the cases themselves are not changed.
A case with ``workers = W`` and global batch ``B`` has two references among the ``workers = 1`` cases that
agree with it on every other axis (backend, Keras, GPUs per worker, precision, jit_compile, input,
steps_per_execution):

- **weak scaling** — the same *per-worker* batch, ``B / W``: each worker does the work one worker did;
  ideal throughput is W times the reference's, efficiency = ``T_W / (W · T_1(B / W))``;
- **strong scaling** — the same *global* batch ``B``: the same job split W ways; efficiency
  = ``T_W / (W · T_1(B))``, speedup = ``T_W / T_1(B)``.

``T`` is the median samples/s over a case's rounds; a multi-worker case's samples/s is global (every
worker's samples, each round lasting until its slowest worker finished). Only ``ok`` cases on both sides;
a missing side leaves the numbers null and says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Axes a reference must share with the case (workers and global_batch are what scaling varies).
MATCH_AXES = ("backend", "keras", "gpus", "precision", "jit_compile", "input", "steps_per_execution")
DEFAULTS = {"keras": "keras3", "workers": 1, "input": "device", "steps_per_execution": 1}


def _param(case: Mapping[str, Any], key: str) -> Any:
    return (case.get("params") or {}).get(key, DEFAULTS.get(key))


def _key(case: Mapping[str, Any]) -> tuple[str, ...]:
    # repr keeps True apart from 1 (jit_compile vs a count), as the sweep's exclude rules do.
    return tuple(repr(_param(case, axis)) for axis in MATCH_AXES)


def _median(case: Mapping[str, Any] | None) -> float | None:
    if case is None or case.get("status") != "ok":
        return None
    value = ((case.get("metrics") or {}).get("samples_per_second") or {}).get("median")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def worker_scaling(cases: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per multi-worker train case (sweep order): its global and per-worker throughput and both
    scaling efficiencies, with the reference cases' ids."""
    train = [c for c in cases if c.get("suite") == "train"]
    singles: dict[tuple[tuple[str, ...], int], Mapping[str, Any]] = {}
    for case in train:
        if _param(case, "workers") == 1:
            singles[(_key(case), _param(case, "global_batch"))] = case
    rows = []
    for case in train:
        workers = int(_param(case, "workers") or 1)
        if workers <= 1:
            continue
        batch = int(_param(case, "global_batch"))
        median = _median(case)
        metrics = case.get("metrics") or {}
        row: dict[str, Any] = {
            "case_id": case.get("case_id"), "status": case.get("status"), "reason": case.get("reason"),
            "backend": _param(case, "backend"), "keras": _param(case, "keras"), "workers": workers,
            "gpus": _param(case, "gpus"), "global_batch": batch, "per_worker_batch": batch // workers,
            "samples_per_second_median": median,
            "per_worker_median": [((w.get("samples_per_second") or {}).get("median")) for w in
                                  metrics.get("per_worker") or []],
        }
        for kind, reference_batch in (("weak", batch // workers), ("strong", batch)):
            reference = singles.get((_key(case), reference_batch))
            ref_median = _median(reference)
            row[kind] = {
                "reference_case_id": reference.get("case_id") if reference is not None else None,
                "reference_global_batch": reference_batch,
                "reference_median": ref_median,
                "speedup": median / ref_median if median and ref_median else None,
                "efficiency": median / (workers * ref_median) if median and ref_median else None,
                "why_missing": None if median and ref_median else _why(case, reference, reference_batch),
            }
        rows.append(row)
    return rows


def _why(case: Mapping[str, Any], reference: Mapping[str, Any] | None, reference_batch: int) -> str:
    if case.get("status") != "ok":
        return f"this case is {case.get('status')}"
    if reference is None:
        return f"no workers = 1 case with global batch {reference_batch} and the same other axes in this run"
    return f"the workers = 1 reference is {reference.get('status')}" + (
        f": {reference.get('reason')}" if reference.get("reason") else "")
