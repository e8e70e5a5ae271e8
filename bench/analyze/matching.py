"""Which cases of two runs are the same case, what their samples are, and whether the runs may be compared at all.

The readers' side of a comparison, shared by every method (:mod:`bench.analyze.compare` and the methods
built on it): the environment fingerprint and its check, the per-round samples of a case's primary metric
and its process values, and the matching of cases between runs (by ``case_id``, else by suite + params).
Reads result files only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.analyze.judge import CASE_ALPHA_CAP
from bench.analyze.normalize import NORMALIZE_MODES, CaseValues, case_values
from bench.analyze.regression import DEFAULT_ALPHA, DEFAULT_THRESHOLD, METRICS
from bench.analyze.stats import summarize
from bench.errors import UserError
from bench.store.results import ResultsError


@dataclass(frozen=True)
class CompareSettings:
    """How strict a comparison is."""

    thresholds: Mapping[str, float] = field(default_factory=dict)  # per metric; missing = DEFAULT_THRESHOLD
    # The false-alarm budget of one comparison (all its cases together), split with Holm's step-down
    # (bench.analyze.judge.case_levels), and the most one case may take (None: the method's default, 1 %;
    # 5 % for the round-level test).
    alpha: float = DEFAULT_ALPHA
    case_alpha: float | None = None
    force: bool = False  # compare even when the fingerprints differ in what matters
    allow_diff: frozenset[str] = frozenset()  # fingerprint fields expected to differ (e.g. an upgrade)
    # "auto": divide by the control workload timed next to each case where that measurably lowers the
    # case's spread in the data the method has (bench.analyze.normalize.choose_normalization);
    # "control": wherever every run involved has it; "none": raw numbers.
    normalize: str = "none"
    # Leave out what the sweep flagged contention (another job loaded the machine while the case was timed):
    # never judged, never in a spread (bench.analyze.matching.contended).
    skip_contended: bool = True

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}")

    def threshold(self, metric: str) -> float:
        return float(self.thresholds.get(metric, DEFAULT_THRESHOLD))

    def cap(self, method_default: float = CASE_ALPHA_CAP) -> float:
        return self.case_alpha if self.case_alpha is not None else method_default


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


def values_of(case: Mapping[str, Any], where: str) -> CaseValues:
    """The case's process values (and its control's) for the primary metric, the best half the right way round."""
    metric = METRICS[PRIMARY_METRIC[case["suite"]]]
    return case_values(case, case_samples(case, where), metric.bigger_is_better)


def contended(case: Mapping[str, Any] | None) -> bool:
    """Another job took a large share of the CPUs while the case was timed (``flags.contention``, set by the sweep
    from /proc/stat): such a measurement says more about the neighbour than about the code, so the gate neither
    judges it nor lets it into a spread (on the shared 2-core box every false alarm of a small collection came
    from runs next to a busy process)."""
    return bool(((case or {}).get("flags") or {}).get("contention"))


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


def secondary(suite: str, base: Mapping[str, Any] | None, cur: Mapping[str, Any] | None) -> dict[str, Any]:
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
