"""Method ``changepoint``: a persistent shift in a history of nightly runs, per case and for the whole suite.

One run judged alone cannot see a change smaller than about three times the between-run spread; a CUSUM
over the runs after it can (:mod:`bench.analyze.cusum`). The series is a baseline history folder
(``results/baselines/<name>/``, oldest first, ``python -m bench promote`` appends) plus the run to check
when it is not in it yet. Of its newest ``reference + horizon`` runs, the first ``reference`` (default 10)
set each case's level and spread; every later run is accumulated. The false-alarm budget (default 5 % per
``horizon`` = 20 runs) is split over the cases and the suite series with Holm's step-down; a series that
alarms is a ``regression`` (or ``improvement``), and the row says at which run the shift started, how
large it is, and what the mode can see at that case's spread.

Which runs belong in the folder: every scheduled run of the branch being watched, on the same runner and
setup, green or not (a change-point needs the runs after the change; promoting only green runs hides it),
never a run with an injected slowdown (refused) or one from another machine. After an accepted change
(a slower but intended release), start over with ``promote --reset`` so the new level becomes the
reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.analyze.compare import (
    DEFAULT_THRESHOLD,
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
from bench.analyze.cusum import (
    DEFAULT_HORIZON,
    DEFAULT_REFERENCE,
    MIN_REFERENCE,
    TARGET,
    Series,
    analyse,
    first_alarm,
    mde_after,
    threshold,
)
from bench.analyze.history import AFTER_RUNS, HistoryTooShort
from bench.analyze.judge import Estimate
from bench.analyze.normalize import CaseValues, choose_normalization, control_summary
from bench.analyze.regression import Metric


def compare_series(runs: Sequence[Mapping[str, Any]], settings: CompareSettings | None = None,
                   reference: int = DEFAULT_REFERENCE, horizon: int = DEFAULT_HORIZON, target: float = TARGET,
                   history_ref: Mapping[str, Any] | None = None, current_ref: Mapping[str, Any] | None = None,
                   history_paths: Sequence[str] | None = None) -> dict[str, Any]:
    """The comparison document of the change-point mode over ``runs`` (oldest first; the last is judged)."""
    settings = settings or CompareSettings()
    history_ref = dict(history_ref or {})
    name = history_ref.get("baseline_name") or history_ref.get("path") or "the history"
    if reference < MIN_REFERENCE:
        raise ValueError(f"the change-point mode needs a reference of at least {MIN_REFERENCE} runs")
    runs = list(runs)[-(reference + horizon):]
    used_reference = min(reference, len(runs) - 1)
    if used_reference < MIN_REFERENCE:
        raise HistoryTooShort(
            f"{name} holds {len(runs)} run(s); the change-point mode needs at least {MIN_REFERENCE} reference runs "
            f"and one more (default reference {reference}): add {MIN_REFERENCE + 1 - len(runs)} more nightly runs "
            "with python -m bench promote RUN --name NAME")
    reference = used_reference
    current = runs[-1]
    last_reference = runs[reference - 1]
    environment = environment_check(last_reference, current, settings)
    for other in runs[:-1]:
        environment_check(other, current, settings)
    where = (str(history_ref.get("path") or "history"), str((current_ref or {}).get("path") or "current"))
    collected: dict[str, tuple[list[int], list[float], float]] = {}  # case -> run indexes, logs, reference mean

    def judge(row: dict[str, Any], metric: Metric, settings: CompareSettings) -> Estimate | None:
        return _judge_series(row, metric, settings, runs, reference, horizon, target, collected)

    rows = [compare_case(case_id, b, c, settings, where, judge=judge)
            for case_id, b, c in match_cases(last_reference, current)]
    suite, suite_estimate = _suite_series(collected, runs, reference, horizon, target, settings)
    cap = settings.cap()
    decide(rows, settings, cap, extra=[(suite, suite_estimate, True)] if suite_estimate is not None else [])
    for row in [*rows, suite]:
        _alarm(row, runs, reference, horizon)
    if suite.get("fails_build"):
        suite["reason"] = f"every case together: {suite['reason']}"
    method = {
        "name": "changepoint",
        "effect": "mean of the runs since the shift began / the reference runs' mean (geometric), per case and for "
                  "the suite's geometric mean",
        "test": f"one-sided CUSUM on standardised log values (clipped at +-3, allowance half the {target:.0%} target "
                f"in reference sd), threshold calibrated by simulation for {reference} reference runs and "
                f"{horizon} monitored runs; Holm over the cases and the suite series",
        "trim": 0.0,
        "alpha": settings.alpha,
        "case_alpha": cap,
        "thresholds": tested_thresholds(settings),
        "normalize": settings.normalize,
        "reference_runs": reference,
        "horizon": horizon,
        "history_runs": len(runs),
        "rule": "regression = the CUSUM of the case (or the suite) crossed its threshold within the horizon (its "
                "false-alarm probability over the horizon below the case's share of alpha) AND the shift since "
                "it began reaches the threshold",
    }
    ref = run_ref(last_reference, history_ref)
    ref["history"] = [{"run_id": r.get("run_id"), "created_utc": r.get("created_utc"),
                       "path": str(history_paths[i]) if history_paths and i < len(history_paths) else None}
                      for i, r in enumerate(runs)]
    document = comparison_document(method, ref, run_ref(current, current_ref), environment, rows,
                                   control_summary(runs[:reference], current))
    document["suite"] = suite
    if suite.get("fails_build"):
        document["summary"].update(fails_build=True, exit_code=1)
    return document


def _series_values(runs: Sequence[Mapping[str, Any]], case: Mapping[str, Any],
                   skip_contended: bool = True) -> list[tuple[int, CaseValues]]:
    out = []
    for i, run in enumerate(runs):
        found = find_case(run, case)
        if found is not None and found["status"] == "ok" and not (skip_contended and contended(found)):
            out.append((i, values_of(found, str(run.get("run_id")))))
    return out


def _judge_series(row: dict[str, Any], metric: Metric, settings: CompareSettings, runs: Sequence[Mapping[str, Any]],
                  reference: int, horizon: int, target: float,
                  collected: dict[str, tuple[list[int], list[float], float]]) -> Estimate | None:
    reference_case, cur = row["_records"]
    found = _series_values(runs, cur, settings.skip_contended)
    skipped = sum(1 for run in runs if contended(find_case(run, cur))) if settings.skip_contended else 0
    if skipped:
        row["notes"].append(f"{skipped} run(s) left out of the series: the machine was loaded (flags.contention)")
    in_reference = [v for i, v in found if i < reference]
    bigger = metric.bigger_is_better
    row["baseline"] = side(reference_case, [v.run_value(False, bigger) for v in in_reference]) | {
        "runs": len(in_reference), "of_runs": reference}
    if len(in_reference) < MIN_REFERENCE:
        row["verdict_override"] = ("new", f"measured ok in {len(in_reference)} of the {reference} reference runs; the "
                                          f"change-point mode needs at least {MIN_REFERENCE}")
        return None
    usable = all(v.has_control for _, v in found)
    raw = [math.log(v.run_value(False, bigger)) for v in in_reference]
    divided = [math.log(v.run_value(True, bigger)) for v in in_reference] if usable else None
    choice = choose_normalization(settings.normalize, [raw], [divided] if divided else None,
                                  f"the {len(in_reference)} reference runs")
    row["normalized"] = choice.used
    row["normalization"] = choice.as_dict()
    indexes = [i for i, _ in found]
    logs = [math.log(v.run_value(choice.used, bigger)) for _, v in found]
    refs = len(in_reference)
    # The bad direction is down for throughput, up for seconds.
    worse, better = analyse(logs, refs, horizon, bigger, target), analyse(logs, refs, horizon, not bigger, target)
    collected[row["case_id"]] = (indexes, logs if bigger else [-x for x in logs], float(np.mean(logs[:refs])) * (
        1 if bigger else -1))
    shown_values = [v.run_value(False, bigger) for _, v in found][refs:]
    row["current"] = side(cur, shown_values) | {"runs": len(shown_values)}
    row["_series"] = {"worse": worse, "better": better, "indexes": indexes, "reference": refs}
    row["raw_ratio"] = None
    row["detect"] = {"spread": worse.scale / math.sqrt(1 + 1 / refs), "spread_of": "runs", "runs": refs}
    shown = worse if worse.p <= better.p else better
    return Estimate(shown.log_shift, None, None, f"{len(logs) - refs} runs after a {refs}-run reference",
                    p_low=(worse if bigger else better).p, p_high=(better if bigger else worse).p)


def _suite_series(collected: Mapping[str, tuple[list[int], list[float], float]], runs: Sequence[Mapping[str, Any]],
                  reference: int, horizon: int, target: float, settings: CompareSettings
                  ) -> tuple[dict[str, Any], Estimate | None]:
    """The suite's series: per run, the mean over the cases of (log value - the case's reference mean)."""
    suite: dict[str, Any] = {"case_id": f"suite: geometric mean of {len(collected)} case(s)", "suite": "suite",
                             "metric": "relative speed", "bigger_is_better": True, "threshold":
                             settings.thresholds.get("samples_per_second", DEFAULT_THRESHOLD), "cases": sorted(collected),
                             "verdict": "no change", "fails_build": False, "reason": None, "notes": []}
    if not collected:
        suite["notes"].append("no case to combine")
        return suite, None
    per_run: dict[int, list[float]] = {}
    for indexes, logs, mean in collected.values():
        for i, x in zip(indexes, logs, strict=True):
            per_run.setdefault(i, []).append(x - mean)
    order = sorted(per_run)
    logs = [float(np.mean(per_run[i])) for i in order]
    refs = sum(1 for i in order if i < reference)
    if refs < MIN_REFERENCE or len(logs) <= refs:
        suite["notes"].append("too few runs with every case")
        return suite, None
    down, up = analyse(logs, refs, horizon, True, target), analyse(logs, refs, horizon, False, target)
    suite["_series"] = {"worse": down, "better": up, "indexes": order, "reference": refs}
    suite["detect"] = {"spread": down.scale / math.sqrt(1 + 1 / refs), "spread_of": "runs", "runs": refs}
    shown = down if down.p <= up.p else up
    return suite, Estimate(shown.log_shift, None, None, f"{len(logs) - refs} runs after a {refs}-run reference",
                           p_low=down.p, p_high=up.p)


def _alarm(row: dict[str, Any], runs: Sequence[Mapping[str, Any]], reference: int, horizon: int) -> None:
    """Where the series crossed its threshold at the level the family split gave it, and where that began."""
    series = row.pop("_series", None)
    detect = row.get("detect") or {}
    level = row.get("alpha")
    if series is None or level is None:
        return
    refs, indexes = series["reference"], series["indexes"]
    out: dict[str, Any] = {"reference_runs": refs, "monitored_runs": len(indexes) - refs}
    for name in ("worse", "better"):
        s: Series = series[name]
        h = threshold(refs, horizon, level, s.allowance)
        alarm = first_alarm(s, refs, h)
        start = s.start if s.peak > 0 else None
        out[name] = {"statistic": list(s.statistic), "peak": s.peak, "threshold": h, "allowance": s.allowance,
                     "p": s.p, "alarm": _where(runs, indexes, alarm), "start": _where(runs, indexes, start),
                     "shift": math.exp(s.log_shift) - 1.0}
    row["changepoint"] = out
    worse = out["worse"]
    if row["verdict"] == "regression" and worse["start"] is not None:
        row["reason"] = (f"{row['reason']}; the shift began at run {worse['start']['run_id']} "
                         f"({worse['start']['position']}), alarm at run {worse['alarm']['run_id'] if worse['alarm'] else '-'}")
    spread, quoted = detect.get("spread"), detect.get("quoted_level")
    if spread and quoted:
        detect["after_runs"] = {str(m): mde_after(spread, refs, m, horizon, quoted) for m in AFTER_RUNS}


def _where(runs: Sequence[Mapping[str, Any]], indexes: Sequence[int], position: int | None) -> dict[str, Any] | None:
    """A position in the case's own series as the run it is: its index in the window, id and time."""
    if position is None or position >= len(indexes):
        return None
    run = runs[indexes[position]]
    return {"index": indexes[position], "position": f"{indexes[position] + 1} of {len(runs)}",
            "run_id": run.get("run_id"), "created_utc": run.get("created_utc")}
