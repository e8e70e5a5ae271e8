"""Verdicts per case: a run against a baseline, one row per case, and the versioned comparison document.

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

Methods (``method.name`` in the document), all sharing the status rules above:

* ``rounds`` (:func:`compare_runs`): one baseline run, Yuen's trimmed t-test over the rounds of the two
  runs. It sees only the noise *within* runs, so on a shared machine it false-alarms on run-to-run
  drift; the CLI warns when it is used.
* ``history`` (:mod:`bench.analyze.history`): one value per run against the between-run spread of a
  baseline history — the CI default.
* ``interleaved`` (:mod:`bench.analyze.ab`): two sides measured case by case alternately in one session.

Any of them can judge throughput normalised by the control workload measured next to each case
(:mod:`bench.analyze.normalize`). The build fails (exit 1) on any ``regression`` and on a ``failed``
case that was ok in the baseline. Rendering lives in :mod:`bench.report.compare_table` and
:mod:`bench.report.export`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import __version__
from bench.analyze.normalize import NORMALIZE_MODES, control_summary, control_value, normalized
from bench.analyze.regression import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    METRICS,
    NOT_WORKING,
    TRIM,
    Metric,
    RegressionCheck,
    StatusCheck,
    p_worse,
    trimmed_ratio,
)
from bench.analyze.stats import summarize
from bench.errors import EXIT_OK, EXIT_REGRESSION, UserError

# The document's kind, version and loader live in bench.store (one definition); kept importable from here.
from bench.store.comparisons import COMPARISON_KIND, COMPARISON_SCHEMA_VERSION
from bench.store.results import ResultsError
from bench.store.schema import utc_now

VERDICTS = ("regression", "improvement", "no change", "new", "missing", "failed")

# The metric that decides each suite's verdict, and the single-value metrics shown next to it. A suite
# not listed is matched and its status compared, but no number is tested.
PRIMARY_METRIC = {"train": "samples_per_second", "native": "samples_per_second", "cpu_predict": "steady_round_s",
                  "converge": "seconds_to_target"}
SECONDARY_METRICS = {"train": ("compile_s",), "cpu_predict": ("total_s",)}

# Fingerprint fields a comparison refuses to cross without --force / --allow-diff. Anything else that
# differs (driver, CUDA, Python, host, commit) is reported, not refused: upgrading those is what
# the comparison is for.
FINGERPRINT_FIELDS = ("gpu_model", "gpu_count", "backends", "tensorflow", "keras", "jax", "jaxlib", "torch",
                      "cpu_model", "data_source")
INFO_FIELDS = ("driver_version", "cuda_driver_version", "python", "hostname", "git_commit", "config_sha256")


class EnvironmentMismatch(UserError):
    """The two runs were measured on setups that should not be compared."""


@dataclass(frozen=True)
class CompareSettings:
    """How strict a comparison is."""

    thresholds: Mapping[str, float] = field(default_factory=dict)  # per metric; missing = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    force: bool = False  # compare even when the fingerprints differ in what matters
    allow_diff: frozenset[str] = frozenset()  # fingerprint fields expected to differ (e.g. an upgrade)
    # "control": judge throughput divided by the control workload timed next to each case, where every
    # run involved has it for the case (else raw, with a note); "none": raw numbers.
    normalize: str = "none"

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}")

    def threshold(self, metric: str) -> float:
        return float(self.thresholds.get(metric, DEFAULT_THRESHOLD))


# --------------------------------------------------------------------------- fingerprint


def fingerprint(run: Mapping[str, Any]) -> dict[str, Any]:
    """What must match for two runs' numbers to be comparable (values as plain strings/ints)."""
    env = run.get("environment") or {}
    packages = env.get("packages") or {}
    gpus = env.get("gpus") or []
    names = sorted({str(g.get("name")) for g in gpus if isinstance(g, Mapping)})
    backends = sorted({str((c.get("params") or {}).get("backend")) for c in run.get("cases", [])
                       if (c.get("params") or {}).get("backend")})
    data = run.get("data") or {}
    sources = sorted({str(c["data_source"]) for c in run.get("cases", []) if c.get("data_source")})
    return {
        "gpu_model": " + ".join(names) or None,
        "gpu_count": len(gpus),
        "backends": ", ".join(backends) or None,
        "tensorflow": packages.get("tensorflow"),
        "keras": packages.get("keras"),
        "jax": packages.get("jax"),
        "jaxlib": packages.get("jaxlib"),
        "torch": packages.get("torch"),
        # The CPU model only decides the numbers when there is no GPU.
        "cpu_model": env.get("cpu") if not gpus else None,
        "data_source": data.get("source") or (", ".join(sources) or None),
    }


def _relevant(name: str, base: Mapping[str, Any], cur: Mapping[str, Any]) -> bool:
    # jax/torch versions matter when that backend ran, or when both setups have them installed.
    backend = {"jax": "jax", "jaxlib": "jax", "torch": "torch"}.get(name)
    if backend is None:
        return True
    used = f"{base['backends'] or ''}, {cur['backends'] or ''}".split(", ")
    return backend in used or (base[name] is not None and cur[name] is not None)


def environment_check(baseline: Mapping[str, Any], current: Mapping[str, Any],
                      settings: CompareSettings) -> dict[str, Any]:
    """The fingerprints side by side; raises :class:`EnvironmentMismatch` unless allowed or forced."""
    base, cur = fingerprint(baseline), fingerprint(current)
    differs = [{"field": name, "baseline": base[name], "current": cur[name]}
               for name in FINGERPRINT_FIELDS if base[name] != cur[name] and _relevant(name, base, cur)]
    refused = [d for d in differs if d["field"] not in settings.allow_diff]
    if refused and not settings.force:
        names = ",".join(d["field"] for d in refused)
        raise EnvironmentMismatch(
            f"environments differ in {describe_differences(refused)}; compare runs from the same setup, "
            f"or pass --allow-diff {names} if that difference is what you are testing, or --force"
        )
    base_env, cur_env = baseline.get("environment") or {}, current.get("environment") or {}
    info = [{"field": name, "baseline": base_env.get(name), "current": cur_env.get(name)}
            for name in INFO_FIELDS if base_env.get(name) != cur_env.get(name)]
    return {
        "baseline": base,
        "current": cur,
        "differs": differs,
        "allowed": sorted(d["field"] for d in differs if d["field"] in settings.allow_diff),
        "forced": bool(refused),  # true only when --force was needed
        "info": info,
    }


def describe_differences(differences: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{d['field']} ({d['baseline']!r} vs {d['current']!r})" for d in differences)


# --------------------------------------------------------------------------- samples


def case_samples(case: Mapping[str, Any], where: str) -> list[float]:
    """The per-round samples of the case's primary metric (throughput is derived from round times)."""
    metrics = case.get("metrics") or {}
    if PRIMARY_METRIC.get(case["suite"]) == "samples_per_second":
        rounds = _positive_list(metrics.get("round_s"), f"{where}: case {case['case_id']}: metrics.round_s")
        per_round = metrics.get("samples_per_round")
        if isinstance(per_round, bool) or not isinstance(per_round, (int, float)) or not per_round > 0:
            raise ResultsError(f"{where}: case {case['case_id']}: metrics.samples_per_round is missing or not positive")
        return [float(per_round) / r for r in rounds]
    name = PRIMARY_METRIC[case["suite"]]  # steady_round_s (cpu_predict), seconds_to_target (converge)
    return _positive_list(metrics.get(name), f"{where}: case {case['case_id']}: metrics.{name}")


def _positive_list(values: Any, label: str) -> list[float]:
    ok = (isinstance(values, list) and values
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and v != float("inf")
                  for v in values))
    if not ok:
        raise ResultsError(f"{label} is missing or not a list of positive numbers; the file is damaged")
    return [float(v) for v in values]


def side(case: Mapping[str, Any], samples: list[float] | None) -> dict[str, Any]:
    """One side of a row: status, flags and, when measured, the summary of the samples shown."""
    out: dict[str, Any] = {
        "status": case["status"],
        "reason": case.get("reason"),
        "flags": sorted(k for k, v in (case.get("flags") or {}).items() if v),
    }
    if samples is not None:
        summary = summarize(samples)
        out.update({k: summary[k] for k in ("n", "median", "q1", "q3", "iqr", "cv")})
        out["samples"] = samples
    return out


def _secondary(suite: str, base: Mapping[str, Any] | None, cur: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SECONDARY_METRICS.get(suite, ()):
        b = _number((base.get("metrics") or {}).get(name)) if base and base["status"] == "ok" else None
        c = _number((cur.get("metrics") or {}).get(name)) if cur and cur["status"] == "ok" else None
        if b is None and c is None:
            continue
        out[name] = {"unit": METRICS[name].unit, "baseline": b, "current": c,
                     "ratio": c / b if b and c is not None else None}
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return float(value)
    return None


# --------------------------------------------------------------------------- matching


def index_cases(run: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    for case in run["cases"]:
        by_id.pop(case["case_id"], None)  # the last record of a case wins, as in the results store
        by_id[case["case_id"]] = case
    return by_id


def params_key(case: Mapping[str, Any]) -> str:
    return json.dumps([case["suite"], case["params"]], sort_keys=True, default=str)


def find_case(run: Mapping[str, Any], case: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record in ``run`` of the same case: by id, else by suite + params."""
    by_id = index_cases(run)
    if case["case_id"] in by_id:
        return by_id[case["case_id"]]
    key = params_key(case)
    return next((c for c in by_id.values() if params_key(c) == key), None)


def match_cases(baseline: Mapping[str, Any], current: Mapping[str, Any]
                ) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
    """(case_id, baseline case, current case) in current-run order, then baseline-only cases."""
    base, cur = index_cases(baseline), index_cases(current)
    base_by_params = {params_key(c): c for c in base.values()}
    pairs: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
    used: set[str] = set()
    for case_id, case in cur.items():
        match = base.get(case_id)
        if match is None:
            candidate = base_by_params.get(params_key(case))
            if candidate is not None and candidate["case_id"] not in cur:
                match = candidate
        if match is not None:
            used.add(match["case_id"])
        pairs.append((case_id, match, case))
    pairs += [(case_id, case, None) for case_id, case in base.items() if case_id not in used]
    return pairs


# --------------------------------------------------------------------------- rows

# A judge decides a row both sides of which measured the case: it fills in the numbers (ratio, p-values,
# the baseline side if it is more than one run) and returns (verdict, reason, fails_build).
Judge = Callable[[dict[str, Any], Metric, CompareSettings], tuple[str, str | None, bool]]


def compare_case(case_id: str, base: dict[str, Any] | None, cur: dict[str, Any] | None,
                 settings: CompareSettings, where: tuple[str, str] = ("baseline", "current"),
                 judge: Judge | None = None) -> dict[str, Any]:
    """One row of the comparison; ``judge`` (default: the round-level test) decides measured pairs."""
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
        "secondary": _secondary(suite, base, cur),
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
    return verdict(*(judge or judge_rounds)(row, metric, settings))


def judge_rounds(row: dict[str, Any], metric: Metric, settings: CompareSettings) -> tuple[str, str | None, bool]:
    """The round-level test: the two runs' rounds, trimmed ratio and Yuen's one-sided t-test."""
    base, cur = row["_records"]
    samples_b, samples_c = row["baseline"]["samples"], row["current"]["samples"]
    row["median_ratio"] = row["current"]["median"] / row["baseline"]["median"]
    control_b, control_c = control_value(base), control_value(cur)
    if settings.normalize == "control":
        if control_b is not None and control_c is not None:
            samples_b = normalized(samples_b, control_b, metric.bigger_is_better)
            samples_c = normalized(samples_c, control_c, metric.bigger_is_better)
            row["normalized"] = True
            row["raw_ratio"] = trimmed_ratio(row["baseline"]["samples"], row["current"]["samples"])
        elif control_b is not None or control_c is not None:  # runs from before the control: silently raw
            row["notes"].append("not normalised: one side has no control samples for this case")
    check = RegressionCheck(settings.threshold(metric.name), settings.alpha, metric.bigger_is_better)
    row["ratio"] = trimmed_ratio(samples_b, samples_c)
    row["p_worse"] = p_worse(samples_b, samples_c, metric.bigger_is_better)
    row["p_better"] = p_worse(samples_b, samples_c, not metric.bigger_is_better)
    if row["p_worse"] is None:
        row["notes"].append("not tested: fewer than 2 rounds, or no spread")
    label = f"{metric.name}{' / control' if row['normalized'] else ''}"
    regressed = check.fails(samples_b, samples_c)
    if regressed:
        return "regression", f"{label} {regressed}", True
    improved = check.improvement().fails(samples_b, samples_c)
    if improved:
        return "improvement", f"{label} {improved}", False
    return "no change", None, False


# --------------------------------------------------------------------------- document


def comparison_document(method: Mapping[str, Any], baseline_ref: Mapping[str, Any], current_ref: Mapping[str, Any],
                        environment: Mapping[str, Any], rows: list[dict[str, Any]],
                        control: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The versioned document every method writes (shape in docs/results.md, "Comparison document")."""
    counts = {name: sum(r["verdict"] == name for r in rows) for name in VERDICTS}
    fails_build = any(r["fails_build"] for r in rows)
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
                    "exit_code": EXIT_REGRESSION if fails_build else EXIT_OK},
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
    method = {
        "name": "rounds",
        "effect": f"ratio of {TRIM:.0%}-trimmed geometric means of the per-round samples (current / baseline)",
        "test": f"Yuen-Welch trimmed t-test on log samples, one-sided (scipy.stats.ttest_ind, trim={TRIM})",
        "trim": TRIM,
        "alpha": settings.alpha,
        "thresholds": tested_thresholds(settings),
        "normalize": settings.normalize,
        "rule": "regression = change >= threshold in the bad direction AND p_worse < alpha",
    }
    return comparison_document(method, run_ref(baseline, baseline_ref), run_ref(current, current_ref), environment,
                               rows, control_summary([baseline], current))


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


