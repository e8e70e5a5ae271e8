"""Verdicts per case: a run against a baseline, one row per case, and the versioned comparison document.

(Matching cases, their samples and the environment check live in :mod:`bench.analyze.matching`; their
names are importable from here too.)

Reads result files only (never TensorFlow, Keras or the measuring code). Cases are matched by
``case_id`` (falling back to suite + params, so a renamed id still matches); each pair gets one row with
both sides, the ratio, one-sided p-values and a verdict:

* ``regression`` / ``improvement``: the primary metric moved by at least the threshold *and* beyond the
  noise (how noise is judged is the *method*, below), or a cpu_predict method stopped / started working;
* ``no change``: anything else where both sides measured the case;
* ``new`` / ``missing``: the case is only in the current run / only in the baseline (a skipped case
  counts as absent); with a history, also a case the history has too few runs of;
* ``failed``: the current run did not measure the case (status failed, wrong or not_on_cpu) and it was
  not already a regression.

Methods (``method.name`` in the document), all sharing the status rules above; each only *estimates* the
change and its uncertainty, and :func:`decide` gives every row its verdict at once with the one check
(:class:`bench.analyze.judge.GateCheck`), the false-alarm budget split over the rows by Holm's step-down:

* ``runs`` (:func:`compare_two_runs`, ``compare A.json B.json``): the process values of two runs, pooled t;
  a case measured in one process per run is not judged (two runs cannot tell a change from drift).
* ``rounds`` (:func:`compare_runs`): one baseline run, Yuen's trimmed t-test over the rounds of the two
  runs. It sees only the noise *within* runs, so on a shared machine it false-alarms on run-to-run
  drift; the CLI warns when it is used.
* ``history`` (:mod:`bench.analyze.history`): one value per run against the between-run spread of a
  baseline history.
* ``changepoint`` (:mod:`bench.analyze.changepoint`): a CUSUM over a history of nightly runs.
* ``interleaved`` (:mod:`bench.analyze.ab`): two sides measured case by case alternately in one session.

Any of them can judge throughput normalised by the control workload measured next to each case, where that
measurably lowers the case's spread (:mod:`bench.analyze.normalize`). The build fails (exit 1) on any ``regression`` and on a ``failed``
case that was ok in the baseline. Rendering lives in :mod:`bench.report.compare_table` and
:mod:`bench.report.export`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench import __version__
from bench.analyze.judge import (
    CASE_ALPHA_CAP,
    Estimate,
    GateCheck,
    bonferroni_level,
    case_levels,
    pairs_needed,
)
from bench.analyze.matching import (  # the names other modules import from here
    FINGERPRINT_FIELDS,
    INFO_FIELDS,
    PRIMARY_METRIC,
    SECONDARY_METRICS,
    CompareSettings,
    EnvironmentMismatch,
    case_samples,
    contended,
    describe_differences,
    environment_check,
    find_case,
    fingerprint,
    index_cases,
    match_cases,
    params_key,
    secondary,
    side,
    values_of,
)
from bench.analyze.normalize import (
    case_values,
    choose_normalization,
    control_change,
    control_summary,
    control_value,
    machine_moved,
    normalized,
)
from bench.analyze.regression import (
    DEFAULT_THRESHOLD,
    METRICS,
    MIN_HISTORY_RUNS,
    MIN_PROCESSES,
    NOT_WORKING,
    ROUNDS_CASE_ALPHA,
    TRIM,
    Metric,
    StatusCheck,
    process_estimate,
    rounds_estimate,
)
from bench.errors import EXIT_OK, EXIT_REGRESSION

# The document's kind, version and loader live in bench.store (one definition); kept importable from here.
from bench.store.comparisons import COMPARISON_KIND, COMPARISON_SCHEMA_VERSION
from bench.store.schema import utc_now

VERDICTS = ("regression", "improvement", "no change", "new", "missing", "failed")

# --------------------------------------------------------------------------- rows

# A judge estimates a row both sides of which measured the case: it fills in what it saw (the baseline side
# if it is more than one run, the normalisation chosen, the spread behind the detection limits) and returns
# the Estimate the one check decides on, or None when the case cannot be judged (with a note saying why).
# The verdicts of all rows are then given together (:func:`decide`): the false-alarm budget is shared.
Judge = Callable[[dict[str, Any], Metric, CompareSettings], Estimate | None]


def compare_case(case_id: str, base: dict[str, Any] | None, cur: dict[str, Any] | None,
                 settings: CompareSettings, where: tuple[str, str] = ("baseline", "current"),
                 judge: Judge | None = None) -> dict[str, Any]:
    """One row of the comparison; ``judge`` (default: the round-level test) estimates measured pairs.

    A row decided by status alone (missing, new, failed, a cpu_predict method that stopped working) comes
    back with its verdict; a measured one carries its estimate until :func:`decide` gives every verdict.
    """
    any_case = cur or base
    assert any_case is not None
    suite = any_case["suite"]
    metric = METRICS.get(PRIMARY_METRIC.get(suite, ""))
    present_b = base is not None and base["status"] != "skipped"
    present_c = cur is not None and cur["status"] != "skipped"
    ok_b, ok_c = present_b and base["status"] == "ok", present_c and cur["status"] == "ok"  # type: ignore[index]
    samples_b = case_samples(base, where[0]) if ok_b and metric else None  # type: ignore[arg-type]
    samples_c = case_samples(cur, where[1]) if ok_c and metric else None  # type: ignore[arg-type]

    row: dict[str, Any] = {
        "case_id": case_id,
        "suite": suite,
        "params": any_case.get("params"),
        "metric": metric.name if metric else None,
        "unit": metric.unit if metric else None,
        "bigger_is_better": metric.bigger_is_better if metric else None,
        "threshold": settings.threshold(metric.name) if metric else None,
        "alpha": settings.alpha,
        "baseline": side(base, samples_b) if base is not None else None,
        "current": side(cur, samples_c) if cur is not None else None,
        "ratio": None,
        "median_ratio": None,
        "p_worse": None,
        "p_better": None,
        "normalized": False,
        "verdict": "no change",
        "fails_build": False,
        "reason": None,
        "notes": [],
        "secondary": secondary(suite, base, cur),
        # The records themselves, for the judge; removed before the row is returned.
        "_records": (base, cur),
    }
    notes: list[str] = row["notes"]
    for side_name, case in (("baseline", base), ("current", cur)):
        if case is not None and case["status"] == "skipped":
            notes.append(f"skipped in {side_name}: {case.get('reason') or 'no reason given'}")
    if ok_c and cur and (cur.get("flags") or {}).get("unstable"):
        notes.append("current rounds unstable (CV above the run's threshold)")
    if cur is not None and (cur.get("flags") or {}).get("injected_slowdown"):
        fraction = ((cur.get("metrics") or {}).get("injected_slowdown") or {}).get("fraction")
        notes.append(f"current run has an injected slowdown ([faults] slowdown = {fraction}): a gate test, not a measurement")

    def verdict(name: str, reason: str | None = None, fails_build: bool = False) -> dict[str, Any]:
        row.update(verdict=name, reason=reason, fails_build=fails_build)
        row.pop("_records", None)
        return row

    if not present_b and not present_c:
        return verdict("missing", "skipped in both runs")
    if not present_c:
        return verdict("missing", "not in the current run" if cur is None else "skipped in the current run")
    if not present_b:
        if not ok_c:
            return verdict("failed", f"new case, {cur['status']}: {cur.get('reason') or 'no reason given'}")  # type: ignore[index]
        return verdict("new", "not in the baseline" if base is None else "skipped in the baseline")

    status_b, status_c = base["status"], cur["status"]  # type: ignore[index]
    if suite == "cpu_predict":
        stopped = StatusCheck().fails(base, cur)  # type: ignore[arg-type]
        if stopped:
            return verdict("regression", stopped, fails_build=True)
        if status_b in NOT_WORKING and status_c == "ok":
            method = (cur.get("params") or {}).get("method", "method")  # type: ignore[union-attr]
            hint = " (upstream fix?)" if method == "naive" else ""
            return verdict("improvement", f"{method} started working: {status_b} -> ok{hint}")
    if not ok_c:
        was = "was ok in the baseline" if ok_b else (
            "unchanged" if status_b == status_c else f"was {status_b} in the baseline")
        return verdict("failed", f"{status_c}: {cur.get('reason') or 'no reason given'} ({was})", fails_build=ok_b)  # type: ignore[union-attr]
    if not ok_b:
        return verdict("improvement", f"runs now: {status_b} in the baseline -> ok")
    if metric is None or samples_b is None or samples_c is None:
        notes.append(f"suite {suite!r} has no metric this tool compares")
        return verdict("no change")
    row["median_ratio"] = row["current"]["median"] / row["baseline"]["median"]
    row["_estimate"] = (judge or judge_rounds)(row, metric, settings)
    if "verdict_override" in row:  # the judge decided by itself (e.g. too few history runs: "new")
        name, reason = row.pop("verdict_override")
        row.pop("_estimate", None)
        return verdict(name, reason)
    row.pop("_records", None)
    return row


def decide(rows: list[dict[str, Any]], settings: CompareSettings, cap: float,
           extra: Sequence[tuple[dict[str, Any], Estimate | None, bool]] = ()) -> None:
    """Every pending row's verdict at once: Holm's split of the budget over the rows judged, then the check.

    ``extra`` are further series judged in the same family (the change-point mode's suite series):
    (a dict to fill like a row, its estimate, bigger_is_better).
    """
    pending = [(r, r.pop("_estimate"), bool(r["bigger_is_better"])) for r in rows if "_estimate" in r]
    pending += [(target, estimate, bigger) for target, estimate, bigger in extra]
    p_worse = [e.p(down=bigger) if e is not None else None for _, e, bigger in pending]
    p_better = [e.p(down=not bigger) if e is not None else None for _, e, bigger in pending]
    worse_levels = case_levels(p_worse, settings.alpha, cap)
    better_levels = case_levels(p_better, settings.alpha, cap)
    quoted = bonferroni_level(sum(p is not None for p in p_worse), settings.alpha, cap)
    for (row, estimate, bigger), pw, pb, lw, lb in zip(pending, p_worse, p_better, worse_levels, better_levels,
                                                         strict=True):
        threshold = float(row.get("threshold") or DEFAULT_THRESHOLD)
        if (row.get("normalization") or {}).get("chosen"):
            lw, lb = lw / 2, lb / 2  # two candidate spreads were looked at (bench.analyze.normalize.Normalization)
        detect = row.setdefault("detect", {})
        row.update(p_worse=pw, p_better=pb, alpha=lw, verdict="no change", fails_build=False, reason=None)
        if estimate is None:
            detect.update(judged=False)
            continue
        row["ratio"] = estimate.ratio
        check = GateCheck(threshold, lw, bigger)
        quote = GateCheck(threshold, quoted / 2 if (row.get("normalization") or {}).get("chosen") else quoted, bigger)
        mde = quote.mde(estimate)
        detect.update(judged=estimate.se is not None or estimate.p_low is not None, evidence=estimate.evidence,
                      level=lw, quoted_level=quoted, se_log=estimate.se, df=estimate.df, bound=check.bound(estimate), mde=mde,
                      blind_below=abs(mde) if mde is not None and abs(mde) > threshold else None)
        if pw is None and estimate.se is None and estimate.p_low is None:
            continue
        label = f"{row.get('metric') or 'value'}{' / control' if row.get('normalized') else ''}"
        regressed = check.fails(estimate)
        if regressed:
            row.update(verdict="regression", reason=f"{label} {regressed}", fails_build=True)
            continue
        improved = GateCheck(threshold, lb, bigger).improvement().fails(estimate)
        if improved:
            row.update(verdict="improvement", reason=f"{label} {improved}")


def _normalize_rounds(row: dict[str, Any], metric: Metric, settings: CompareSettings
                      ) -> tuple[list[float], list[float]]:
    base, cur = row["_records"]
    samples_b, samples_c = row["baseline"]["samples"], row["current"]["samples"]
    control_b, control_c = control_value(base), control_value(cur)
    if settings.normalize == "control" and control_b is not None and control_c is not None:
        row["normalized"] = True
        row["raw_ratio"] = rounds_estimate(samples_b, samples_c).ratio
        return ([normalized(s, control_b, metric.bigger_is_better) for s in samples_b],
                [normalized(s, control_c, metric.bigger_is_better) for s in samples_c])
    if settings.normalize == "control" and (control_b is not None or control_c is not None):
        row["notes"].append("not normalised: one side has no control samples for this case")
    elif settings.normalize == "auto" and control_b is not None and control_c is not None:
        row["notes"].append("raw: the round-level test has no between-run spread to decide the control normalisation "
                            "from (--normalize control to divide anyway)")
    return samples_b, samples_c


def judge_rounds(row: dict[str, Any], metric: Metric, settings: CompareSettings) -> Estimate | None:
    """The round-level test: the two runs' rounds, trimmed ratio and Yuen's one-sided t-test."""
    samples_b, samples_c = _normalize_rounds(row, metric, settings)
    estimate = rounds_estimate(samples_b, samples_c)
    row["detect"] = {"spread_of": "rounds"}
    if estimate.se is None:
        row["notes"].append("not tested: fewer than 2 rounds, or no spread")
    return estimate


def judge_processes(row: dict[str, Any], metric: Metric, settings: CompareSettings) -> Estimate | None:
    """Two runs, each case measured in several processes: pooled t over the process values.

    The processes of one run alternate in time with other cases' (the sweep's passes), so their spread
    holds each process's thread-pool draw and the machine's drift over the run. A run with one process per
    case gives no spread at all: that case is not judged (two runs alone cannot tell a change from drift).
    """
    base, cur = row["_records"]
    values_b = case_values(base, row["baseline"]["samples"], metric.bigger_is_better)
    values_c = case_values(cur, row["current"]["samples"], metric.bigger_is_better)
    bigger = metric.bigger_is_better
    both_control = values_b.has_control and values_c.has_control
    raw = [list(map(math.log, values_b.raw)), list(map(math.log, values_c.raw))]
    divided = ([list(map(math.log, values_b.values(True, bigger))), list(map(math.log, values_c.values(True, bigger)))]
               if both_control else None)
    choice = choose_normalization(settings.normalize, raw, divided,
                                  f"the processes of the two runs ({values_b.processes} + {values_c.processes})",
                                  machine_moved(control_change(values_b.control, values_c.control), "between the runs")
                                  if both_control else None)
    row["normalized"] = choice.used
    row["normalization"] = choice.as_dict()
    a, b = values_b.values(choice.used, bigger), values_c.values(choice.used, bigger)
    row["raw_ratio"] = values_c.run_value(False, bigger) / values_b.run_value(False, bigger)
    row["baseline"] = side(base, list(values_b.raw)) | {"processes": values_b.processes}
    row["current"] = side(cur, list(values_c.raw)) | {"processes": values_c.processes}
    estimate = process_estimate(a, b)
    spread = (estimate.se / math.sqrt(1 / len(a) + 1 / len(b))) if estimate.se else None
    row["detect"] = {"spread": spread, "spread_of": "processes",
                     "ab_pairs_10pct": pairs_needed(math.sqrt(2) * spread, level=CASE_ALPHA_CAP) if spread else None}
    if settings.skip_contended and (contended(base) or contended(cur)):
        row["notes"].append("not judged: another job loaded the machine while this case was timed (flags.contention); "
                            "measure it again")
        return Estimate(estimate.log_change, None, None, estimate.evidence)
    if min(values_b.processes, values_c.processes) < MIN_PROCESSES:
        row["notes"].append(
            f"not judged: {values_b.processes} and {values_c.processes} process(es) per side give no spread, and two "
            "runs alone cannot tell a change from between-run drift; keep a history (python -m bench promote, "
            f"at least {MIN_HISTORY_RUNS} runs) or measure each case in at least {MIN_PROCESSES} processes")
        return Estimate(estimate.log_change, None, None, estimate.evidence)
    return estimate


# --------------------------------------------------------------------------- document


def comparison_document(method: Mapping[str, Any], baseline_ref: Mapping[str, Any], current_ref: Mapping[str, Any],
                        environment: Mapping[str, Any], rows: list[dict[str, Any]],
                        control: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The versioned document every method writes (shape in docs/results.md, "Comparison document")."""
    counts = {name: sum(r["verdict"] == name for r in rows) for name in VERDICTS}
    fails_build = any(r["fails_build"] for r in rows)
    measured = [r for r in rows if r.get("detect")]
    judged = sum(bool(r["detect"].get("judged")) for r in measured)
    return {
        "kind": COMPARISON_KIND,
        "schema_version": COMPARISON_SCHEMA_VERSION,
        "created_utc": utc_now(),
        "tool": {"name": "keras-gpu-bench", "version": __version__},
        "method": dict(method),
        "baseline": dict(baseline_ref),
        "current": dict(current_ref),
        "environment": dict(environment),
        "control": dict(control) if control is not None else None,
        "summary": {"counts": counts, "fails_build": fails_build,
                    "exit_code": EXIT_REGRESSION if fails_build else EXIT_OK,
                    "judged": judged, "not_judged": len(measured) - judged,
                    "blind": sum(r["detect"].get("blind_below") is not None and r["verdict"] == "no change"
                                 for r in measured)},
        "rows": rows,
    }


def tested_thresholds(settings: CompareSettings) -> dict[str, float]:
    return {name: settings.threshold(name) for name, m in METRICS.items() if m.per_round}


def compare_runs(baseline: Mapping[str, Any], current: Mapping[str, Any], settings: CompareSettings | None = None,
                 baseline_ref: Mapping[str, Any] | None = None, current_ref: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Method ``rounds``: two runs, the environment check, one row per case, summary and exit code."""
    settings = settings or CompareSettings()
    environment = environment_check(baseline, current, settings)
    where = (str((baseline_ref or {}).get("path") or "baseline"), str((current_ref or {}).get("path") or "current"))
    rows = [compare_case(case_id, b, c, settings, where) for case_id, b, c in match_cases(baseline, current)]
    cap = settings.cap(ROUNDS_CASE_ALPHA)
    decide(rows, settings, cap)
    method = {
        "name": "rounds",
        "effect": f"ratio of {TRIM:.0%}-trimmed geometric means of the per-round samples (current / baseline)",
        "test": f"Yuen-Welch trimmed t-test on log samples, one-sided (scipy.stats.ttest_ind, trim={TRIM})",
        "trim": TRIM,
        "alpha": settings.alpha,
        "case_alpha": cap,
        "thresholds": tested_thresholds(settings),
        "normalize": settings.normalize,
        "rule": RULE,
    }
    return comparison_document(method, run_ref(baseline, baseline_ref), run_ref(current, current_ref), environment,
                               rows, control_summary([baseline], current))


def compare_two_runs(baseline: Mapping[str, Any], current: Mapping[str, Any], settings: CompareSettings | None = None,
                     baseline_ref: Mapping[str, Any] | None = None, current_ref: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Method ``runs`` (``compare A.json B.json``): the process values of two runs, never the rounds.

    Cases measured in one process per run are not judged (the comparison says what it would need); the
    others are judged on the spread between their processes, with the detection limit that spread allows.
    """
    settings = settings or CompareSettings()
    environment = environment_check(baseline, current, settings)
    where = (str((baseline_ref or {}).get("path") or "baseline"), str((current_ref or {}).get("path") or "current"))
    rows = [compare_case(case_id, b, c, settings, where, judge=judge_processes)
            for case_id, b, c in match_cases(baseline, current)]
    cap = settings.cap()
    decide(rows, settings, cap)
    method = {
        "name": "runs",
        "effect": "geometric mean of the current run's process values / the baseline run's (a process's value: "
                  "its rounds' robust mean, bench.analyze.values.process_value)",
        "test": "pooled two-sample t on the log process values, one-sided; Holm over the cases",
        "trim": TRIM,
        "alpha": settings.alpha,
        "case_alpha": cap,
        "thresholds": tested_thresholds(settings),
        "normalize": settings.normalize,
        "rule": RULE,
    }
    return comparison_document(method, run_ref(baseline, baseline_ref), run_ref(current, current_ref), environment,
                               rows, control_summary([baseline], current))


RULE = ("regression = change >= threshold in the bad direction AND one-sided p below the case's level (the "
        "false-alarm budget alpha split over the cases judged by Holm's step-down, at most case_alpha per case)")


def run_ref(run: Mapping[str, Any], ref: Mapping[str, Any] | None) -> dict[str, Any]:
    ref = ref or {}
    return {
        "run_id": run.get("run_id"),
        "path": str(ref["path"]) if ref.get("path") else None,
        "baseline_name": ref.get("baseline_name"),
        "created_utc": run.get("created_utc"),
        "complete": run.get("complete"),
        "config_name": (run.get("config") or {}).get("name"),
    }


def exit_code(document: Mapping[str, Any]) -> int:
    return int(document["summary"]["exit_code"])


__all__ = ["COMPARISON_KIND", "COMPARISON_SCHEMA_VERSION", "FINGERPRINT_FIELDS", "INFO_FIELDS", "PRIMARY_METRIC",
           "SECONDARY_METRICS", "VERDICTS", "CompareSettings", "EnvironmentMismatch", "case_samples", "compare_case",
           "compare_runs", "compare_two_runs", "comparison_document", "contended", "decide", "describe_differences",
           "environment_check", "exit_code", "find_case", "fingerprint", "index_cases", "match_cases", "params_key",
           "run_ref", "side", "tested_thresholds", "values_of"]
