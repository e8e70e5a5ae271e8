"""Method ``interleaved``: two sides measured case by case, alternately, in one session, with as many pairs as
the answer needs.

asv's answer to drift: when two environments (or two commits) are run one right after the other, case
by case, in alternating order (A B, B A, A B, ...), whatever drifts slower than a pair hits both sides
alike. Each measurement is its own ``python -m bench run`` process (pyperf's point: values from separate
processes, not rounds of one), so one repetition of a case gives one value per side and the pairs are
judged on their log ratios (:func:`bench.analyze.regression.paired_estimate`, the one check
:class:`bench.analyze.judge.GateCheck`).

Adaptive, as Chromium's Pinpoint runs more repeats while its answer is "unknown": a paired t-test at the
pair spread measured on the shared 2-core box (8-10 %) needs about 8 pairs for 90 % power at 10 %, and
Wilcoxon cannot flag anything below 5, so a session looks at its cases after 8 pairs (``looks``), and again
after 16 and 24 for the cases still unclear:

* **clear regression / improvement**: the change reaches the threshold and the paired test is significant at
  the case's level: the false-alarm budget (5 % per session) is split equally over the looks (a case can
  only be flagged at one of them, so the session's false-alarm rate stays within the budget) and over the
  cases with Holm's step-down;
* **clear no change**: with 90 % confidence the change is smaller than the threshold in the bad direction;
* otherwise **unclear**: the case gets more pairs, up to the last look; still unclear there, it is "no
  change" with the slowdown it could not rule out.

Side ``a`` is the baseline and side ``b`` the candidate, as in the other methods; the session itself
(processes, worktrees, the order, the looks) is :mod:`bench.run.ab`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

from bench.analyze.compare import (
    FINGERPRINT_FIELDS,
    PRIMARY_METRIC,
    CompareSettings,
    compare_case,
    comparison_document,
    contended,
    decide,
    environment_check,
    match_cases,
    run_ref,
    side,
    tested_thresholds,
    values_of,
)
from bench.analyze.judge import Estimate, GateCheck, case_levels, pairs_needed
from bench.analyze.normalize import choose_normalization, control_summary
from bench.analyze.regression import METRICS, MIN_PAIRS, Metric, paired_estimate

Pair = tuple[Mapping[str, Any], Mapping[str, Any]]  # (side a's run document, side b's) of one repetition
DEFAULT_LOOKS = (8, 16, 24)
# A/B answers one question per case, so each case may take the whole per-look budget Holm gives it.
AB_CASE_ALPHA = 0.05
CLEAR_CONFIDENCE = 0.90  # "clearly no slowdown beyond the threshold": the one-sided 90 % bound is inside it


@dataclass(frozen=True)
class CaseState:
    """Where one case stands after some pairs: its estimate and whether the answer is clear."""

    case_id: str
    pairs: int
    estimate: Estimate
    state: str  # "regression", "improvement", "no change" (all clear) or "unclear"


def pair_series(records: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], metric: Metric,
                settings: CompareSettings) -> tuple[list[float], list[float], list[float], list[float], dict[str, Any]]:
    """(a values, b values, a raw, b raw, normalisation) over the complete ok pairs of one case."""
    ok = [(a, b) for a, b in records if a["status"] == "ok" and b["status"] == "ok"
          and not (settings.skip_contended and (contended(a) or contended(b)))]
    bigger = metric.bigger_is_better
    a_cv = [values_of(a, "side a") for a, _ in ok]
    b_cv = [values_of(b, "side b") for _, b in ok]
    a_raw = [v.run_value(False, bigger) for v in a_cv]
    b_raw = [v.run_value(False, bigger) for v in b_cv]
    usable = all(v.has_control for v in a_cv + b_cv) and bool(ok)
    raw_d = [math.log(b / a) for a, b in zip(a_raw, b_raw, strict=True)]
    divided_d = ([math.log(b.run_value(True, bigger) / a.run_value(True, bigger)) for a, b in zip(a_cv, b_cv, strict=True)]
                 if usable else None)
    choice = choose_normalization(settings.normalize, [raw_d], [divided_d] if divided_d else None,
                                  f"the {len(ok)} pairs' log ratios")
    a_vals = [v.run_value(choice.used, bigger) for v in a_cv]
    b_vals = [v.run_value(choice.used, bigger) for v in b_cv]
    return a_vals, b_vals, a_raw, b_raw, choice.as_dict()


def _clearly_within(estimate: Estimate, threshold: float, bigger: bool) -> bool:
    """With 90 % confidence the change is smaller than the threshold in the bad direction."""
    if estimate.se is None:
        return False
    t = float(stats.t.ppf(CLEAR_CONFIDENCE, estimate.df)) if estimate.df else 1.2816
    worst = estimate.log_change - t * estimate.se if bigger else estimate.log_change + t * estimate.se
    worst_change = math.exp(worst) - 1.0
    return (-worst_change if bigger else worst_change) < threshold


def progress(pairs: Sequence[Pair], settings: CompareSettings, looks: Sequence[int]) -> dict[str, CaseState]:
    """Every measured case's state on the pairs it has so far: what the session decides after each look.

    A case that is not ok on both sides of every pair has no state (more pairs would not make it ok).
    """
    pairs_by_case: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    metrics: dict[str, Metric] = {}
    for case_id, records in by_case(pairs).items():
        metric = METRICS.get(PRIMARY_METRIC.get(records[0][0]["suite"], ""))
        if metric is not None and all(a["status"] == "ok" and b["status"] == "ok" for a, b in records):
            pairs_by_case[case_id], metrics[case_id] = records, metric
    budget = settings.alpha / max(1, len(looks))
    estimates: dict[str, Estimate] = {}
    for case_id, records in pairs_by_case.items():
        a_vals, b_vals, _, _, _ = pair_series(records, metrics[case_id], settings)
        if a_vals:
            estimates[case_id] = paired_estimate(a_vals, b_vals)
    ids = list(estimates)
    cap = settings.cap(AB_CASE_ALPHA)
    worse = case_levels([estimates[c].p(metrics[c].bigger_is_better) for c in ids], budget, cap)
    better = case_levels([estimates[c].p(not metrics[c].bigger_is_better) for c in ids], budget, cap)
    out = {}
    for case_id, lw, lb in zip(ids, worse, better, strict=True):
        metric, estimate = metrics[case_id], estimates[case_id]
        threshold = settings.threshold(metric.name)
        check = GateCheck(threshold, lw, metric.bigger_is_better)
        if check.fails(estimate):
            state = "regression"
        elif GateCheck(threshold, lb, metric.bigger_is_better).improvement().fails(estimate):
            state = "improvement"
        elif _clearly_within(estimate, threshold, metric.bigger_is_better):
            state = "no change"
        else:
            state = "unclear"
        out[case_id] = CaseState(case_id, len(pairs_by_case[case_id]), estimate, state)
    return out


def by_case(pairs: Sequence[Pair]) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """The pairs of the session, per case (a pair's runs hold one unit: one case, or a native cell's variants)."""
    out: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for run_a, run_b in pairs:
        for case_id, case_a, case_b in match_cases(run_a, run_b):
            if case_a is not None and case_b is not None:
                out.setdefault(case_id, []).append((case_a, case_b))
    return out


def case_minutes(pairs: Sequence[Pair], seconds: Mapping[str, float]) -> dict[str, float]:
    """Wall minutes of the processes that measured each case (a run shared by several cases counts for each)."""
    out: dict[str, float] = {}
    for pair in pairs:
        spent = sum(float(seconds.get(str(run.get("run_id")), 0.0)) for run in pair)
        for case_id in {c["case_id"] for run in pair for c in run.get("cases") or []}:
            out[case_id] = out.get(case_id, 0.0) + spent / 60.0
    return out


def compare_pairs(pairs: Sequence[Pair], settings: CompareSettings | None = None,
                  a_ref: Mapping[str, Any] | None = None, b_ref: Mapping[str, Any] | None = None,
                  looks: Sequence[int] | None = None, seconds: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The comparison document of an interleaved session: ``pairs`` of one-unit runs, in session order.

    ``looks`` are the pair counts the session looked at (default: one look at however many pairs there are);
    ``seconds`` the wall time of each run by run_id, for the minutes each case cost.
    """
    settings = settings or CompareSettings()
    if not pairs:
        raise ValueError("an interleaved session needs at least one pair")
    cases = by_case(pairs)
    looks = tuple(looks) if looks else (max(len(r) for r in cases.values()) if cases else len(pairs),)
    # The two sides are meant to differ (that is the question), so differences are listed, not refused.
    environment = environment_check(pairs[0][0], pairs[0][1],
                                    CompareSettings(allow_diff=frozenset(FINGERPRINT_FIELDS)))
    look_settings = CompareSettings(thresholds=settings.thresholds, alpha=settings.alpha / len(looks),
                                    case_alpha=settings.cap(AB_CASE_ALPHA), normalize=settings.normalize,
                                    skip_contended=settings.skip_contended)
    rows = []
    for case_id, records in cases.items():
        def pick(i: int, records: list[tuple[dict[str, Any], dict[str, Any]]] = records) -> dict[str, Any]:
            # A failure anywhere on a side decides that side's status: a flaky failure is still a failure.
            return next((r[i] for r in records if r[i]["status"] != "ok"), records[0][i])

        def judge(row: dict[str, Any], metric: Metric, settings: CompareSettings,
                  records: list[tuple[dict[str, Any], dict[str, Any]]] = records) -> Estimate | None:
            return _judge_pairs(row, metric, settings, records)

        rows.append(compare_case(case_id, pick(0), pick(1), look_settings, ("side a", "side b"), judge=judge))
    decide(rows, look_settings, look_settings.cap(AB_CASE_ALPHA))
    minutes = case_minutes(pairs, seconds) if seconds else {}
    for row in rows:
        _after_decide(row, looks)
        if row.get("detect") is not None and row["case_id"] in minutes:
            row["detect"]["minutes"] = round(minutes[row["case_id"]], 2)
    runs = [r for pair in pairs for r in pair]
    total_s = sum(float((seconds or {}).get(str(r.get("run_id")), 0.0)) for r in runs)
    method = {
        "name": "interleaved",
        "effect": "geometric mean over the pairs of (b / a), each side's value its own process's robust mean",
        "test": "one-sided paired t-test on the log ratios; the budget alpha split equally over the looks and over "
                "the cases by Holm's step-down",
        "trim": 0.0,
        "alpha": settings.alpha,
        "case_alpha": settings.cap(AB_CASE_ALPHA),
        "thresholds": tested_thresholds(settings),
        "normalize": settings.normalize,
        "pairs": len(pairs),
        "looks": list(looks),
        "minutes": round(total_s / 60.0, 2) if seconds else None,
        "order": [[run_a.get("run_id"), run_b.get("run_id")] for run_a, run_b in pairs],
        "rule": "regression = change >= threshold in the bad direction AND paired p below the case's level at its "
                "last look; a case gets more pairs (next look) while neither that nor 'clearly within the "
                "threshold' (90 % bound) holds",
    }
    a_runs = [a for a, _ in pairs]
    return comparison_document(method, run_ref(pairs[0][0], a_ref), run_ref(pairs[0][1], b_ref), environment, rows,
                               control_summary(a_runs, _merged([b for _, b in pairs])))


def _merged(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"cases": [c for r in runs for c in r.get("cases") or []]}


def _judge_pairs(row: dict[str, Any], metric: Metric, settings: CompareSettings,
                 records: list[tuple[dict[str, Any], dict[str, Any]]]) -> Estimate | None:
    ok = [(a, b) for a, b in records if a["status"] == "ok" and b["status"] == "ok"
          and not (settings.skip_contended and (contended(a) or contended(b)))]
    dropped = sum(1 for a, b in records if contended(a) or contended(b)) if settings.skip_contended else 0
    if dropped:
        row["notes"].append(f"{dropped} pair(s) left out: the machine was loaded (flags.contention)")
    if not ok:
        row["notes"].append("not judged: no pair measured on an unloaded machine")
        return None
    a_vals, b_vals, a_raw, b_raw, choice = pair_series(records, metric, settings)
    row["baseline"] = side(ok[0][0], a_raw) | {"runs": len(ok)}
    row["current"] = side(ok[-1][1], b_raw) | {"runs": len(ok)}
    row["normalized"] = choice["used"]
    row["normalization"] = choice
    row["raw_ratio"] = paired_estimate(a_raw, b_raw).ratio
    estimate = paired_estimate(a_vals, b_vals)
    pair_sd = estimate.se * math.sqrt(len(ok)) if estimate.se else None
    row["detect"] = {"spread": pair_sd, "spread_of": "pairs", "pairs": len(ok),
                     "minutes": None, "_clear": _clearly_within(estimate, settings.threshold(metric.name),
                                                                metric.bigger_is_better)}
    if estimate.se is None:
        row["notes"].append(f"not tested: {len(ok)} complete pair(s), at least {MIN_PAIRS} needed")
    return estimate


def _after_decide(row: dict[str, Any], looks: Sequence[int]) -> None:
    detect = row.get("detect") or {}
    clear = detect.pop("_clear", None)
    spread, level = detect.get("spread"), detect.get("quoted_level")
    if spread and level:
        detect["ab_pairs_10pct"] = pairs_needed(spread, level=level)
    if row["verdict"] == "no change" and clear is False and detect.get("judged"):
        mde = detect.get("mde")
        could = f"; a slowdown up to {abs(mde):.0%} is not ruled out" if mde is not None else ""
        row["notes"].append(f"unclear after {detect.get('pairs')} pairs (looks at {', '.join(map(str, looks))}){could}")


