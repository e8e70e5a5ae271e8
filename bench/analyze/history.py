"""Method ``history``: a run against the between-run spread of a baseline history (the CI default).

The unit of evidence is the run, not the round. Each earlier run of a case in the history contributes
one value (the trimmed geometric mean of its rounds, :func:`bench.analyze.regression.run_value`),
normalised by the control workload timed next to it when every run involved has one; the new run's
value is a regression when it lies outside the one-sided prediction interval of that history and the
change reaches the threshold (:class:`bench.analyze.regression.HistoryCheck`). What the history
measures, and what the old round-level test never saw, is how much a case moves from one run to the
next on this runner: other jobs, clocks, thermals, a different process layout.

A history is a list of run documents, oldest first (``results/baselines/<name>/``, filled by
``python -m bench promote``). Fewer than ``min_runs`` runs is bad input: the CLI says how many more
to promote. A case measured in fewer of them is ``new`` with that reason, never judged on guesswork.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.analyze.compare import (
    CompareSettings,
    case_samples,
    compare_case,
    comparison_document,
    environment_check,
    find_case,
    match_cases,
    run_ref,
    side,
    tested_thresholds,
)
from bench.analyze.normalize import control_summary, control_value
from bench.analyze.regression import MIN_HISTORY_RUNS, HistoryCheck, Metric, history_test
from bench.analyze.values import TRIM, geomean, run_value
from bench.errors import UserError


class HistoryTooShort(UserError):
    """The baseline history has fewer runs than the between-run test needs."""


def compare_history(history: Sequence[Mapping[str, Any]], current: Mapping[str, Any],
                    settings: CompareSettings | None = None, min_runs: int = MIN_HISTORY_RUNS,
                    history_ref: Mapping[str, Any] | None = None, current_ref: Mapping[str, Any] | None = None,
                    history_paths: Sequence[str] | None = None) -> dict[str, Any]:
    """The comparison document of ``current`` against ``history`` (run documents, oldest first)."""
    settings = settings or CompareSettings()
    history_ref = dict(history_ref or {})
    name = history_ref.get("baseline_name") or history_ref.get("path") or "the baseline history"
    if len(history) < min_runs:
        raise HistoryTooShort(
            f"{name} holds {len(history)} run(s); the between-run test needs at least {min_runs} "
            f"(add {min_runs - len(history)} more with python -m bench promote RUN --name NAME, made at different "
            "times), or pass --method rounds to use the round-level test on one run (it ignores between-run drift)")
    newest = history[-1]
    environment = environment_check(newest, current, settings)
    for older in history[:-1]:
        environment_check(older, current, settings)  # every run of the history must be comparable, too
    where = (str(history_ref.get("path") or "history"), str((current_ref or {}).get("path") or "current"))

    def judge(row: dict[str, Any], metric: Metric, settings: CompareSettings) -> tuple[str, str | None, bool]:
        return _judge_history(row, metric, settings, history, min_runs)

    rows = [compare_case(case_id, b, c, settings, where, judge=judge)
            for case_id, b, c in match_cases(newest, current)]
    method = {
        "name": "history",
        "effect": f"current run's value / geometric mean of the history's run values (a run's value: the "
                  f"{TRIM:.0%}-trimmed geometric mean of its rounds)",
        "test": "one-sided Student-t prediction interval of one more run from the history's log values",
        "trim": TRIM,
        "alpha": settings.alpha,
        "thresholds": tested_thresholds(settings),
        "normalize": settings.normalize,
        "min_runs": min_runs,
        "history_runs": len(history),
        "rule": "regression = change >= threshold in the bad direction AND outside the 1 - alpha prediction interval",
    }
    ref = run_ref(newest, history_ref)
    ref["history"] = [{"run_id": r.get("run_id"), "created_utc": r.get("created_utc"),
                       "path": str(history_paths[i]) if history_paths else None} for i, r in enumerate(history)]
    return comparison_document(method, ref, run_ref(current, current_ref), environment, rows,
                               control_summary(history, current))


def _judge_history(row: dict[str, Any], metric: Metric, settings: CompareSettings,
                   history: Sequence[Mapping[str, Any]], min_runs: int) -> tuple[str, str | None, bool]:
    newest_case, cur = row["_records"]
    raw: list[float] = []
    controls: list[float | None] = []
    for run in history:
        case = find_case(run, cur)
        if case is None or case["status"] != "ok":
            continue
        raw.append(run_value(case_samples(case, str(run.get("run_id")))))
        controls.append(control_value(case))
    cur_raw = run_value(row["current"]["samples"])
    cur_control = control_value(cur)
    k = len(raw)
    row["baseline"] = side(newest_case, raw) | {"runs": k, "of_runs": len(history)}
    if k < min_runs:
        return ("new", f"measured ok in {k} of the history's {len(history)} runs; the between-run test needs at "
                       f"least {min_runs}", False)

    values, current = raw, cur_raw
    if settings.normalize == "control":
        usable = [(v, c) for v, c in zip(raw, controls, strict=True) if c is not None]
        if cur_control is not None and len(usable) >= min_runs:
            values = [v / c if metric.bigger_is_better else v * c for v, c in usable]
            current = cur_raw / cur_control if metric.bigger_is_better else cur_raw * cur_control
            row["normalized"] = True
            if len(usable) < k:
                row["notes"].append(f"normalised over the {len(usable)} of {k} history runs that have control samples")
        elif cur_control is not None or usable:  # no run has a control (runs from before it): silently raw
            have = "the current run has none" if cur_control is None else f"only {len(usable)} history runs have them"
            row["notes"].append(f"not normalised by the control: {have}")
    result = history_test(values, current, metric.bigger_is_better, settings.alpha)
    row["ratio"] = result.ratio
    row["raw_ratio"] = cur_raw / geomean(raw)
    row["median_ratio"] = row["current"]["median"] / row["baseline"]["median"]
    row["p_worse"], row["p_better"] = result.p_worse, result.p_better
    row["history"] = result.as_dict()
    if result.p_worse is None:
        row["notes"].append("not tested: the history's runs have no spread")
    elif abs(result.bound_ratio - 1) > 2 * settings.threshold(metric.name):
        # Say what the gate can see here, so a quiet verdict on a noisy runner is not read as "no regression".
        row["notes"].append(f"between-run sd {result.sd_log:.1%}: this history cannot flag changes smaller than "
                            f"{abs(result.bound_ratio - 1):.0%}")
    check = HistoryCheck(settings.threshold(metric.name), settings.alpha, metric.bigger_is_better)
    label = f"{metric.name}{' / control' if row['normalized'] else ''}"
    regressed = check.fails(values, current)
    if regressed:
        return "regression", f"{label} {regressed}", True
    improved = check.improvement().fails(values, current)
    if improved:
        return "improvement", f"{label} {improved}", False
    return "no change", None, False
