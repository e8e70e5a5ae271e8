"""Method ``interleaved``: two sides measured case by case, alternately, in one session.

asv's answer to drift: when two environments (or two commits) are run one right after the other, case
by case, in alternating order (A B, B A, A B, ...), whatever drifts slower than a pair hits both sides
alike. Each measurement is its own ``python -m bench run`` process (pyperf's point: values from separate
processes, not rounds of one), so one repetition of a case gives one value per side and the pairs are
tested with a one-sided paired t-test on log ratios (:class:`bench.analyze.regression.PairedCheck`).

Side ``a`` is the baseline and side ``b`` the candidate, as in the other methods; the session itself
(processes, worktrees, the order) is :mod:`bench.run.ab`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.analyze.compare import (
    FINGERPRINT_FIELDS,
    CompareSettings,
    case_samples,
    compare_case,
    comparison_document,
    environment_check,
    match_cases,
    run_ref,
    side,
    tested_thresholds,
)
from bench.analyze.normalize import control_summary, control_value
from bench.analyze.regression import (
    MIN_PAIRS,
    TRIM,
    Metric,
    PairedCheck,
    p_paired_worse,
    paired_ratio,
)
from bench.analyze.values import run_value

Pair = tuple[Mapping[str, Any], Mapping[str, Any]]  # (side a's run document, side b's) of one repetition


def compare_pairs(pairs: Sequence[Pair], settings: CompareSettings | None = None,
                  a_ref: Mapping[str, Any] | None = None, b_ref: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The comparison document of an interleaved session: ``pairs`` of one-unit runs, in session order."""
    settings = settings or CompareSettings()
    if not pairs:
        raise ValueError("an interleaved session needs at least one pair")
    by_case: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for run_a, run_b in pairs:
        # A pair's runs hold one unit each: one case, or a native cell's variants.
        for case_id, case_a, case_b in match_cases(run_a, run_b):
            if case_a is not None and case_b is not None:
                by_case.setdefault(case_id, []).append((case_a, case_b))
    # The two sides are meant to differ (that is the question), so differences are listed, not refused.
    environment = environment_check(pairs[0][0], pairs[0][1],
                                    CompareSettings(allow_diff=frozenset(FINGERPRINT_FIELDS)))

    rows = []
    for case_id, records in by_case.items():
        def pick(i: int, records: list[tuple[dict[str, Any], dict[str, Any]]] = records) -> dict[str, Any]:
            # A failure anywhere on a side decides that side's status: a flaky failure is still a failure.
            return next((r[i] for r in records if r[i]["status"] != "ok"), records[0][i])

        def judge(row: dict[str, Any], metric: Metric, settings: CompareSettings,
                  records: list[tuple[dict[str, Any], dict[str, Any]]] = records) -> tuple[str, str | None, bool]:
            return _judge_pairs(row, metric, settings, records)

        rows.append(compare_case(case_id, pick(0), pick(1), settings, ("side a", "side b"), judge=judge))
    method = {
        "name": "interleaved",
        "effect": f"geometric mean over the pairs of (b / a), each side's value the {TRIM:.0%}-trimmed geometric "
                  "mean of its rounds in its own process",
        "test": "one-sided paired t-test on log values over the interleaved pairs (scipy.stats.ttest_rel)",
        "trim": TRIM,
        "alpha": settings.alpha,
        "thresholds": tested_thresholds(settings),
        "normalize": settings.normalize,
        "pairs": len(pairs),
        "order": [[run_a.get("run_id"), run_b.get("run_id")] for run_a, run_b in pairs],
        "rule": "regression = change >= threshold in the bad direction AND paired p_worse < alpha",
    }
    a_runs = [a for a, _ in pairs]
    return comparison_document(method, run_ref(pairs[0][0], a_ref), run_ref(pairs[0][1], b_ref), environment, rows,
                               control_summary(a_runs, _merged([b for _, b in pairs])))


def _merged(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"cases": [c for r in runs for c in r.get("cases") or []]}


def _judge_pairs(row: dict[str, Any], metric: Metric, settings: CompareSettings,
                 records: list[tuple[dict[str, Any], dict[str, Any]]]) -> tuple[str, str | None, bool]:
    ok = [(a, b) for a, b in records if a["status"] == "ok" and b["status"] == "ok"]
    a_raw = [run_value(case_samples(a, "side a")) for a, _ in ok]
    b_raw = [run_value(case_samples(b, "side b")) for _, b in ok]
    row["baseline"] = side(ok[0][0], a_raw) | {"runs": len(ok)}
    row["current"] = side(ok[-1][1], b_raw) | {"runs": len(ok)}
    a_vals, b_vals = a_raw, b_raw
    if settings.normalize == "control":
        controls = [(control_value(a), control_value(b)) for a, b in ok]
        if all(ca is not None and cb is not None for ca, cb in controls):
            scale = (lambda v, c: v / c) if metric.bigger_is_better else (lambda v, c: v * c)
            a_vals = [scale(v, c[0]) for v, c in zip(a_raw, controls, strict=True)]
            b_vals = [scale(v, c[1]) for v, c in zip(b_raw, controls, strict=True)]
            row["normalized"] = True
        elif any(ca is not None or cb is not None for ca, cb in controls):
            row["notes"].append("not normalised: a run has no control samples for this case")
    row["ratio"] = paired_ratio(a_vals, b_vals)
    row["raw_ratio"] = paired_ratio(a_raw, b_raw)
    row["median_ratio"] = row["current"]["median"] / row["baseline"]["median"]
    row["p_worse"] = p_paired_worse(a_vals, b_vals, metric.bigger_is_better)
    row["p_better"] = p_paired_worse(a_vals, b_vals, not metric.bigger_is_better)
    if row["p_worse"] is None:
        row["notes"].append(f"not tested: {len(ok)} complete pair(s), at least {MIN_PAIRS} needed")
    check = PairedCheck(settings.threshold(metric.name), settings.alpha, metric.bigger_is_better)
    label = f"{metric.name}{' / control' if row['normalized'] else ''}"
    regressed = check.fails(a_vals, b_vals)
    if regressed:
        return "regression", f"{label} {regressed}", True
    improved = check.improvement().fails(a_vals, b_vals)
    if improved:
        return "improvement", f"{label} {improved}", False
    return "no change", None, False
