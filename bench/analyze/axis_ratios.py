"""``derived.comparisons`` for runs measured in one process per case: every axis' effect as a ratio, with
no interval.

The comparison rows are those of issue 20's contract (/work/helpers/CONTRACT.md; the lead's
``bench.analyze.paired`` computes them from processes paired by pass, with 95 % intervals). A run whose
cases each ran in one process — every file written before issue 20, the committed reference runs — has
one value per case and so one "pair" per comparison: the ratio stands, the interval does not exist, and
the row says so (``method`` "one process: no interval", ``verdict`` "no interval"). When
``bench.analyze.paired`` is merged, its ``comparisons`` replaces :func:`comparisons` in
``bench.analyze.derive.derive_run`` (it gives the same rows for one-process files) and this module goes.

A case's value is the median samples/s of its rounds (:func:`value`). Rows:

- ``axis`` / ``scaling`` (``gpus``): each case against the case that differs from it only in that axis and
  holds the axis' reference value (float32, jit_compile false — "auto" where no false was measured —,
  numpy input, steps_per_execution 1, the smallest batch, 1 GPU); scaling rows add ``efficiency``;
- ``native``: each one-GPU Keras case against its backend's native step loop at its batch and precision;
- ``best``: per backend, the fastest case (``bench.analyze.bottleneck.best_configurations``' rule: median
  samples/s) against the runner-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Case = Mapping[str, Any]
NO_INTERVAL = "one process: no interval"
REFERENCES: dict[str, Any] = {"precision": "float32", "jit_compile": False, "input": "numpy",
                              "steps_per_execution": 1, "global_batch": None, "gpus": 1}
INPUT_REFERENCE_ORDER = ("numpy", "tf_data", "numpy_uint8", "tf_data_prefetch", "device")
# Files from before the input axis fed fit a tf.data pipeline or a cycling PyDataset: "unrecorded", never taken for
# device input (bench.analyze.bottleneck's rule).
PARAM_DEFAULTS = {"input": "unrecorded", "steps_per_execution": 1, "workers": 1, "keras": "keras3"}


def _param(case: Case, key: str) -> Any:
    return (case.get("params") or {}).get(key, PARAM_DEFAULTS.get(key))


def value(case: Case | None) -> float | None:
    """The case's samples/s from its one process: the median of its rounds — the value the bottleneck
    tables, the best configuration and the cases table of the same run quote, so one case reads the same
    everywhere on a page. (Issue 20's ``case_stats`` replace it with the per-process values.)"""
    if case is None or case.get("status") != "ok":
        return None
    median = ((case.get("metrics") or {}).get("samples_per_second") or {}).get("median")
    return float(median) if isinstance(median, (int, float)) and median > 0 else None


def _median(case: Case) -> float:
    return value(case) or 0.0


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # jit_compile True is not gpus 1


def axis_label(axis: str, v: Any) -> str:
    """An axis value in words: "batch 1024", "2 GPU(s)", "jit_compile true", "mixed_bfloat16"."""
    text = str(v).lower() if isinstance(v, bool) else str(v)
    return {"global_batch": f"batch {text}", "gpus": f"{text} GPU(s)", "steps_per_execution": f"spe {text}",
            "jit_compile": f"jit_compile {text}", "input": f"input {text}"}.get(axis, text)


def describe(params: Mapping[str, Any], skip: str = "") -> str:
    parts = []
    for key, fmt in (("backend", "{}"), ("gpus", "{} GPU(s)"), ("global_batch", "batch {}"), ("precision", "{}"),
                     ("jit_compile", "jit_compile {}"), ("input", "input {}"), ("steps_per_execution", "spe {}")):
        if key != skip and params.get(key) is not None:
            v = params[key]
            parts.append(fmt.format(str(v).lower() if isinstance(v, bool) else v))
    return ", ".join(parts)


def _row(kind: str, axis: str, a: Case, b: Case, a_label: str, b_label: str, where: str,
         context: Mapping[str, Any]) -> dict[str, Any]:
    va, vb = value(a), value(b)
    ratio = va / vb if va and vb else None
    row = {"kind": kind, "axis": axis, "backend": _param(a, "backend"), "context": dict(context),
           "a_case_id": a["case_id"], "b_case_id": b["case_id"], "a_label": a_label, "b_label": b_label,
           "where": where, "ratio": ratio, "ci_low": None, "ci_high": None, "pairs": 1 if ratio else 0,
           "method": NO_INTERVAL, "verdict": "no interval"}
    row["sentence"] = (f"{a_label} vs {b_label} ({where}): {ratio:.2f}× (no interval: one process)."
                       if ratio else f"{a_label} vs {b_label} ({where}): no value.")
    return row


def _train_ok(cases: Iterable[Case]) -> list[Case]:
    return [c for c in cases if c.get("suite") == "train" and c.get("status") == "ok"
            and int(_param(c, "workers") or 1) == 1 and _param(c, "keras") == "keras3" and value(c)]


def _reference(axis: str, reference: Any, present: list[Any]) -> Any:
    if axis == "global_batch":
        return min(present)
    if axis == "input":
        return next((v for v in INPUT_REFERENCE_ORDER if v in present), reference)
    if axis == "jit_compile" and not any(_same(v, False) for v in present):
        return "auto" if "auto" in present else reference
    return reference


def axis_comparisons(cases: Iterable[Case]) -> list[dict[str, Any]]:
    train = _train_ok(cases)
    rows = []
    for axis, reference in REFERENCES.items():
        groups: dict[tuple[Any, ...], list[Case]] = {}
        for case in train:
            params = {**PARAM_DEFAULTS, **(case.get("params") or {})}
            groups.setdefault(tuple(sorted((k, repr(v)) for k, v in params.items() if k != axis)), []).append(case)
        for group in groups.values():
            if len(group) < 2:
                continue
            ref_value = _reference(axis, reference, [_param(c, axis) for c in group])
            refs = [c for c in group if _same(_param(c, axis), ref_value)]
            if not refs:
                continue
            b = refs[0]
            for a in group:
                if a is b:
                    continue
                params = {**PARAM_DEFAULTS, **(a.get("params") or {})}
                context = {k: v for k, v in params.items() if k != axis}
                row = _row("scaling" if axis == "gpus" else "axis", axis, a, b, axis_label(axis, _param(a, axis)),
                           axis_label(axis, ref_value), describe(params, axis), context)
                if axis == "gpus" and row["ratio"] is not None:
                    row.update(efficiency=row["ratio"] / (_param(a, "gpus") / _param(b, "gpus")),
                               efficiency_ci_low=None, efficiency_ci_high=None)
                rows.append(row)
    return rows


def native_comparisons(cases: Iterable[Case]) -> list[dict[str, Any]]:
    cases = list(cases)
    natives = {(_param(c, "backend"), _param(c, "global_batch"), _param(c, "precision")): c for c in cases
               if c.get("suite") == "native" and c.get("status") == "ok" and _param(c, "variant") == "step"
               and value(c)}
    rows = []
    for case in _train_ok(cases):
        native = natives.get((_param(case, "backend"), _param(case, "global_batch"), _param(case, "precision")))
        if _param(case, "gpus") == 1 and native is not None:
            params = {**PARAM_DEFAULTS, **(case.get("params") or {})}
            rows.append(_row("native", "native", case, native, "Keras fit", "the native step loop", describe(params),
                             params))
    return rows


def best_comparisons(cases: Iterable[Case]) -> list[dict[str, Any]]:
    by_backend: dict[str, list[Case]] = {}
    for case in _train_ok(cases):
        by_backend.setdefault(_param(case, "backend"), []).append(case)
    rows = []
    for backend, group in by_backend.items():
        ranked = sorted(group, key=_median, reverse=True)
        if len(ranked) >= 2:
            row = _row("best", "runner_up", ranked[0], ranked[1], "best", "runner-up", backend, {"backend": backend})
            row["verdict"] = "no interval"
            rows.append(row)
    return rows


def comparisons(cases: Iterable[Case]) -> list[dict[str, Any]]:
    cases = list(cases)
    return best_comparisons(cases) + axis_comparisons(cases) + native_comparisons(cases)
