"""Compare a run with a baseline, case by case, and say whether anything regressed.

Reads result files only (never TensorFlow, Keras or the measuring code). Cases are matched by
``case_id`` (falling back to suite + params, so a renamed id still matches); each pair gets one row with
the medians and spread of both sides, the ratio, one-sided p-values and a verdict:

* ``regression`` / ``improvement``: the primary metric moved by at least the threshold *and*
  significantly (see :mod:`bench.analyze.regression`), or a cpu_predict method stopped / started working;
* ``no change``: anything else where both sides measured the case;
* ``new`` / ``missing``: the case is only in the current run / only in the baseline (a skipped case
  counts as absent);
* ``failed``: the current run did not measure the case (status failed, wrong or not_on_cpu) and it was
  not already a regression.

The build fails (exit 1) on any ``regression`` and on a ``failed`` case that was ok in the baseline.
The result is a versioned comparison document (shape in ``docs/results.md``, "Comparison document"),
rendered as a terminal table, written as JSON for the HTML report, or exported for
github-action-benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import __version__
from bench.analyze.regression import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    METRICS,
    NOT_WORKING,
    RegressionCheck,
    StatusCheck,
    p_worse,
    trimmed_ratio,
)
from bench.analyze.stats import summarize
from bench.errors import EXIT_OK, EXIT_REGRESSION, UserError

# The document's kind, version and loader live in bench.store (one definition); kept importable from here.
from bench.store.comparisons import COMPARISON_KIND, COMPARISON_SCHEMA_VERSION
from bench.store.comparisons import load_comparison as load_comparison
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


def _side(case: Mapping[str, Any], samples: list[float] | None) -> dict[str, Any]:
    side: dict[str, Any] = {
        "status": case["status"],
        "reason": case.get("reason"),
        "flags": sorted(k for k, v in (case.get("flags") or {}).items() if v),
    }
    if samples is not None:
        summary = summarize(samples)
        side.update({k: summary[k] for k in ("n", "median", "q1", "q3", "iqr", "cv")})
        side["samples"] = samples
    return side


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


# --------------------------------------------------------------------------- rows


def _index(run: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    for case in run["cases"]:
        by_id.pop(case["case_id"], None)  # the last record of a case wins, as in the results store
        by_id[case["case_id"]] = case
    return by_id


def _params_key(case: Mapping[str, Any]) -> str:
    return json.dumps([case["suite"], case["params"]], sort_keys=True, default=str)


def match_cases(baseline: Mapping[str, Any], current: Mapping[str, Any]
                ) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
    """(case_id, baseline case, current case) in current-run order, then baseline-only cases."""
    base, cur = _index(baseline), _index(current)
    base_by_params = {_params_key(c): c for c in base.values()}
    pairs: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
    used: set[str] = set()
    for case_id, case in cur.items():
        match = base.get(case_id)
        if match is None:
            candidate = base_by_params.get(_params_key(case))
            if candidate is not None and candidate["case_id"] not in cur:
                match = candidate
        if match is not None:
            used.add(match["case_id"])
        pairs.append((case_id, match, case))
    pairs += [(case_id, case, None) for case_id, case in base.items() if case_id not in used]
    return pairs


def compare_case(case_id: str, base: dict[str, Any] | None, cur: dict[str, Any] | None,
                 settings: CompareSettings, where: tuple[str, str] = ("baseline", "current")) -> dict[str, Any]:
    """One row of the comparison."""
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
        "baseline": _side(base, samples_b) if base is not None else None,
        "current": _side(cur, samples_c) if cur is not None else None,
        "ratio": None,
        "median_ratio": None,
        "p_worse": None,
        "p_better": None,
        "verdict": "no change",
        "fails_build": False,
        "reason": None,
        "notes": [],
        "secondary": _secondary(suite, base, cur),
    }
    notes: list[str] = row["notes"]
    for side_name, case in (("baseline", base), ("current", cur)):
        if case is not None and case["status"] == "skipped":
            notes.append(f"skipped in {side_name}: {case.get('reason') or 'no reason given'}")
    if ok_c and cur and (cur.get("flags") or {}).get("unstable"):
        notes.append("current rounds unstable (CV above the run's threshold)")

    def verdict(name: str, reason: str | None = None, fails_build: bool = False) -> dict[str, Any]:
        row.update(verdict=name, reason=reason, fails_build=fails_build)
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

    check = RegressionCheck(settings.threshold(metric.name), settings.alpha, metric.bigger_is_better)
    row["ratio"] = trimmed_ratio(samples_b, samples_c)
    row["median_ratio"] = row["current"]["median"] / row["baseline"]["median"]
    row["p_worse"] = p_worse(samples_b, samples_c, metric.bigger_is_better)
    row["p_better"] = p_worse(samples_b, samples_c, not metric.bigger_is_better)
    if row["p_worse"] is None:
        notes.append("not tested: fewer than 2 rounds, or no spread")
    regressed = check.fails(samples_b, samples_c)
    if regressed:
        return verdict("regression", f"{metric.name} {regressed}", fails_build=True)
    improved = check.improvement().fails(samples_b, samples_c)
    if improved:
        return verdict("improvement", f"{metric.name} {improved}")
    return verdict("no change")


# --------------------------------------------------------------------------- document


def compare_runs(baseline: Mapping[str, Any], current: Mapping[str, Any], settings: CompareSettings | None = None,
                 baseline_ref: Mapping[str, Any] | None = None, current_ref: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The comparison document: environment check, one row per case, summary and exit code."""
    settings = settings or CompareSettings()
    environment = environment_check(baseline, current, settings)
    where = (str((baseline_ref or {}).get("path") or "baseline"), str((current_ref or {}).get("path") or "current"))
    rows = [compare_case(case_id, b, c, settings, where) for case_id, b, c in match_cases(baseline, current)]
    counts = {name: sum(r["verdict"] == name for r in rows) for name in VERDICTS}
    fails_build = any(r["fails_build"] for r in rows)
    return {
        "kind": COMPARISON_KIND,
        "schema_version": COMPARISON_SCHEMA_VERSION,
        "created_utc": utc_now(),
        "tool": {"name": "keras-gpu-bench", "version": __version__},
        "method": {
            "effect": "ratio of 20%-trimmed geometric means of the per-round samples (current / baseline)",
            "test": "Yuen-Welch trimmed t-test on log samples, one-sided (scipy.stats.ttest_ind, trim=0.2)",
            "trim": 0.2,
            "alpha": settings.alpha,
            "thresholds": {name: settings.threshold(name) for name, m in METRICS.items() if m.per_round},
            "rule": "regression = change >= threshold in the bad direction AND p_worse < alpha",
        },
        "baseline": _run_ref(baseline, baseline_ref),
        "current": _run_ref(current, current_ref),
        "environment": environment,
        "summary": {"counts": counts, "fails_build": fails_build,
                    "exit_code": EXIT_REGRESSION if fails_build else EXIT_OK},
        "rows": rows,
    }


def _run_ref(run: Mapping[str, Any], ref: Mapping[str, Any] | None) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- rendering


def environment_lines(document: Mapping[str, Any]) -> list[str]:
    """Warning/note lines for stderr about fingerprint differences."""
    env = document["environment"]
    lines = []
    forced = [d for d in env["differs"] if d["field"] not in env["allowed"]]
    allowed = [d for d in env["differs"] if d["field"] in env["allowed"]]
    if forced:
        lines.append(f"warning: comparing despite environment differences (--force): {describe_differences(forced)}")
    if allowed:
        lines.append(f"note: expected environment differences (--allow-diff): {describe_differences(allowed)}")
    return lines


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _cell(side: Mapping[str, Any] | None) -> str:
    if side is None:
        return "-"
    if side.get("median") is None:
        return side["status"]
    spread = side["iqr"] / 2 / side["median"] if side["median"] else 0.0
    return f"{_fmt(side['median'])} ±{spread:.1%}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def render_table(document: Mapping[str, Any]) -> str:
    """A short aligned table: one line per case, then the counts."""
    header = ("case", "metric", "baseline", "current", "change", "p", "verdict", "why")
    lines = [header]
    for row in document["rows"]:
        change = f"{row['ratio'] - 1:+.1%}" if row["ratio"] is not None else "-"
        if row["ratio"] is None:
            p = None
        else:
            worse = (row["ratio"] < 1) == bool(row["bigger_is_better"])
            p = row["p_worse"] if worse else row["p_better"]
        why = row["reason"] or ""
        if row["notes"]:
            why = "; ".join(([why] if why else []) + row["notes"])
        lines.append((row["case_id"], row["metric"] or "-", _cell(row["baseline"]), _cell(row["current"]),
                      change, _fmt_p(p), row["verdict"], why))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for line in lines:
        cells = [line[i].ljust(widths[i]) if i < 2 or i == 6 else line[i].rjust(widths[i]) for i in range(len(widths))]
        out.append("  ".join(cells + [line[-1]]).rstrip())
    base, cur = document["baseline"], document["current"]
    name = f" [{base['baseline_name']}]" if base.get("baseline_name") else ""
    counts = document["summary"]["counts"]
    summary = ", ".join(f"{n} {v}{'s' if n > 1 and v in ('regression', 'improvement') else ''}"
                        for v, n in counts.items() if n)
    method = document["method"]
    def incomplete(ref: Mapping[str, Any]) -> str:
        return " - incomplete run" if ref.get("complete") is False else ""

    return "\n".join([
        f"baseline: {base['run_id']}{name} ({base['path'] or '-'}){incomplete(base)}",
        f"current:  {cur['run_id']} ({cur['path'] or '-'}){incomplete(cur)}",
        *out,
        f"medians ± half the interquartile range of the rounds; change = ratio of trimmed geometric means; "
        f"regression = change beyond {_thresholds(method)} and one-sided p < {method['alpha']:g}",
        f"{summary or 'no cases'} -> exit {document['summary']['exit_code']}",
    ])


def _thresholds(method: Mapping[str, Any]) -> str:
    values = set(method["thresholds"].values())
    if len(values) == 1:
        return f"{values.pop():.0%}"
    return ", ".join(f"{k} {v:.0%}" for k, v in method["thresholds"].items())


# --------------------------------------------------------------------------- github-action-benchmark

GITHUB_TOOLS = {"bigger": "customBiggerIsBetter", "smaller": "customSmallerIsBetter"}


def github_benchmark_entries(document: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """Entries for benchmark-action/github-action-benchmark's custom tools (current run's values).

    ``kind="bigger"`` (tool ``customBiggerIsBetter``): training throughput in samples/s, one per train case.
    ``kind="smaller"`` (tool ``customSmallerIsBetter``): cpu_predict seconds, ``steady_round_s`` medians and
    ``total_s``. One action step reads one file with one tool, hence two files.
    """
    if kind not in GITHUB_TOOLS:
        raise ValueError(f"kind must be one of {sorted(GITHUB_TOOLS)}")
    want_bigger = kind == "bigger"
    entries = []
    for row in document["rows"]:
        cur = row["current"]
        if cur is None or cur.get("median") is None or row["bigger_is_better"] is not want_bigger:
            continue
        base = row["baseline"] or {}
        extra = [f"rounds: {cur['n']}", f"verdict: {row['verdict']}"]
        if base.get("median") is not None:
            extra.insert(0, f"baseline median: {_fmt(base['median'])} {row['unit']}")
        if row["ratio"] is not None:
            extra.append(f"change: {row['ratio'] - 1:+.1%}")
        entries.append({"name": f"{row['case_id']} {row['metric']}", "unit": row["unit"], "value": cur["median"],
                        "range": f"± {_fmt(cur['iqr'] / 2)}", "extra": "\n".join(extra)})
        if not want_bigger:
            for name, secondary in row["secondary"].items():
                if secondary["current"] is not None and not METRICS[name].bigger_is_better and name == "total_s":
                    entries.append({"name": f"{row['case_id']} {name}", "unit": secondary["unit"],
                                    "value": secondary["current"], "extra": f"verdict of the case: {row['verdict']}"})
    return entries
