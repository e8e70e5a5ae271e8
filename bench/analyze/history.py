"""Method ``history``: a run against the between-run spread of a baseline history (the single-run tripwire).

The unit of evidence is the run, not the round. Each earlier run of a case in the history contributes
one value (the geometric mean of its process values, :class:`bench.analyze.normalize.CaseValues`), divided
by the control workload timed next to it where that measurably lowers the spread over the history
(:func:`bench.analyze.normalize.choose_normalization`); the new run's value is judged against the Student-t
prediction interval of that history (:func:`bench.analyze.regression.history_estimate`) by the one check
(:class:`bench.analyze.judge.GateCheck`), with the false-alarm budget split over the cases. What the
history measures, and what the old round-level test never saw, is how much a case moves from one run to
the next on this runner: other jobs, clocks, thermals, each process's thread-pool draw.

Each row also says what the gate can see at this spread (``detect``): the slowdown one run catches with
90 % probability, what the change-point mode (:mod:`bench.analyze.changepoint`) catches within 4, 8 and 16
further runs, and how many interleaved A/B pairs a 10 % slowdown needs.

A history is a list of run documents, oldest first (``results/baselines/<name>/``, filled by
``python -m bench promote``). Fewer than ``min_runs`` runs is bad input: the CLI says how many more
to promote. A case measured in fewer of them is ``new`` with that reason, never judged on guesswork.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bench.analyze.compare import (
    CompareSettings,
    compare_case,
    comparison_document,
    contended,
    decide,
    environment_check,
    find_case,
    match_cases,
    run_ref,
    side,
    tested_thresholds,
    values_of,
)
from bench.analyze.cusum import DEFAULT_HORIZON, mde_after
from bench.analyze.judge import Estimate, pairs_needed
from bench.analyze.normalize import (
    CaseValues,
    case_values,
    choose_normalization,
    control_prediction,
    control_summary,
    machine_moved,
)
from bench.analyze.regression import MIN_HISTORY_RUNS, Metric, history_estimate, history_spread
from bench.analyze.values import geomean
from bench.errors import UserError

AFTER_RUNS = (4, 8, 16)  # the change-point mode's detection limits quoted per case


class HistoryTooShort(UserError):
    """The baseline history has fewer runs than the between-run test needs."""


def history_values(history: Sequence[Mapping[str, Any]], case: Mapping[str, Any],
                   skip_contended: bool = True) -> list[CaseValues]:
    """The case's values in every history run that measured it ok (on an unloaded machine), oldest first."""
    out = []
    for run in history:
        found = find_case(run, case)
        if found is not None and found["status"] == "ok" and not (skip_contended and contended(found)):
            out.append(values_of(found, str(run.get("run_id"))))
    return out


def judged_values(past: Sequence[CaseValues], current: CaseValues, metric: Metric, settings: CompareSettings,
                  where: str) -> tuple[list[float], float, dict[str, Any]]:
    """(history values, current value, the normalisation chosen) for one case: the one place the choice is made
    for a history (also used by the change-point mode)."""
    bigger = metric.bigger_is_better
    usable = all(v.has_control for v in past) and current.has_control
    raw = [math.log(v.run_value(False, bigger)) for v in past]
    divided = [math.log(v.run_value(True, bigger)) for v in past] if usable else None
    moved = machine_moved(control_prediction([geomean(v.control) for v in past], geomean(current.control)),
                          "against the history") if usable else None  # type: ignore[arg-type]
    choice = choose_normalization(settings.normalize, [raw], [divided] if divided else None, where, moved)
    values = [v.run_value(choice.used, bigger) for v in past]
    return values, current.run_value(choice.used, bigger), choice.as_dict()


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
            "times), or compare two runs each measured in several processes ([measure] processes), or run "
            "python -m bench ab")
    newest = history[-1]
    environment = environment_check(newest, current, settings)
    for older in history[:-1]:
        environment_check(older, current, settings)  # every run of the history must be comparable, too
    where = (str(history_ref.get("path") or "history"), str((current_ref or {}).get("path") or "current"))

    def judge(row: dict[str, Any], metric: Metric, settings: CompareSettings) -> Estimate | None:
        return _judge_history(row, metric, settings, history, min_runs)

    rows = [compare_case(case_id, b, c, settings, where, judge=judge)
            for case_id, b, c in match_cases(newest, current)]
    cap = settings.cap()
    decide(rows, settings, cap)
    for row in rows:
        add_series_limits(row)
        bound = (row.get("detect") or {}).get("bound")
        if row.get("history") and bound is not None:
            row["history"]["bound_ratio"] = 1.0 + bound
    method = {
        "name": "history",
        "effect": "current run's value / geometric mean of the history's run values (a run's value: the geometric "
                  "mean of its process values, each the robust mean of that process's rounds)",
        "test": "one-sided Student-t prediction interval of one more run from the history's log values (outliers "
                "winsorised at 4 robust sd); Holm over the cases",
        "trim": 0.0,
        "alpha": settings.alpha,
        "case_alpha": cap,
        "thresholds": tested_thresholds(settings),
        "normalize": settings.normalize,
        "min_runs": min_runs,
        "history_runs": len(history),
        "rule": "regression = change >= threshold in the bad direction AND outside the prediction interval at the "
                "case's level (the budget alpha split over the cases by Holm's step-down, at most case_alpha each)",
    }
    ref = run_ref(newest, history_ref)
    ref["history"] = [{"run_id": r.get("run_id"), "created_utc": r.get("created_utc"),
                       "path": str(history_paths[i]) if history_paths else None} for i, r in enumerate(history)]
    return comparison_document(method, ref, run_ref(current, current_ref), environment, rows,
                               control_summary(history, current))


def add_series_limits(row: dict[str, Any]) -> None:
    """What the change-point mode and an A/B session would see at this row's between-run spread."""
    detect = row.get("detect") or {}
    spread, runs, level = detect.get("spread"), detect.get("runs"), detect.get("quoted_level")
    if not spread or not runs or not level:
        return
    detect["after_runs"] = {str(m): mde_after(spread, runs, m, DEFAULT_HORIZON, level) for m in AFTER_RUNS}
    # An adjacent pair differs by at most the spread of two independent runs (sqrt 2 x); pairs taken a
    # minute apart usually differ less, so this errs on the safe side.
    detect["ab_pairs_10pct"] = pairs_needed(math.sqrt(2) * spread, level=level)


def _judge_history(row: dict[str, Any], metric: Metric, settings: CompareSettings,
                   history: Sequence[Mapping[str, Any]], min_runs: int) -> Estimate | None:
    newest_case, cur = row["_records"]
    past = history_values(history, cur, settings.skip_contended)
    k = len(past)
    raw = [v.run_value(False, metric.bigger_is_better) for v in past]
    row["baseline"] = side(newest_case, raw) | {"runs": k, "of_runs": len(history)}
    if k < min_runs:
        row["verdict_override"] = ("new", f"measured ok in {k} of the history's {len(history)} runs; the between-run "
                                          f"test needs at least {min_runs}")
        return None
    current = case_values(cur, row["current"]["samples"], metric.bigger_is_better)
    values, value, choice = judged_values(past, current, metric, settings, f"the {k} history runs")
    row["normalized"] = choice["used"]
    row["normalization"] = choice
    row["raw_ratio"] = current.run_value(False, metric.bigger_is_better) / geomean(raw)
    row["current"] = side(cur, list(current.raw)) | {"processes": current.processes}
    skipped = sum(1 for run in history if contended(find_case(run, cur))) if settings.skip_contended else 0
    if skipped:
        row["notes"].append(f"{skipped} history run(s) left out: the machine was loaded (flags.contention)")
    estimate = history_estimate(values, value)
    if settings.skip_contended and contended(cur):
        row["notes"].append("not judged: another job loaded the machine while this case was timed (flags.contention); "
                            "measure it again")
        row["detect"] = {"spread": history_spread(values), "spread_of": "runs", "runs": k}
        return Estimate(estimate.log_change, None, None, estimate.evidence)
    spread = history_spread(values)
    row["detect"] = {"spread": spread, "spread_of": "runs", "runs": k}
    row["history"] = {"runs": k, "sd_log": spread, "bound_ratio": None}  # bound_ratio: after decide
    if estimate.se is None:
        row["notes"].append("not tested: the history's runs have no spread")
    return estimate
