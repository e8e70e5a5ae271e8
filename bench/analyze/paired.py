"""Comparisons from processes paired by pass, each with a 95 % interval; per-case spread; the machine's drift.

The unit of evidence is the process (bench.run.plan): rounds inside one process share its draw, processes do
not. So each case contributes one value per process (:func:`bench.analyze.values.process_value` of that
process's rounds), and two cases are compared pass by pass: the cases of one pass ran adjacent in time
(ABCD DCBA ...), so whatever drifts slower than a pass — a slower machine, a throttled clock — moves both and
cancels in their ratio. With ``n`` passes measured on both sides:

    r_p = log(value_a,p) - log(value_b,p)          ratio = exp(mean r)
    95 % interval = exp(mean r -/+ t(0.975, n - 1) * sd(r) / sqrt(n))

(a paired t interval on log ratios; Student's t because n is small — with 3 processes t = 4.30, so an
interval is only narrow when the processes really agree.) With one pair there is no interval and the
comparison says so; an interval that holds 1 is "no measurable difference", never "faster" or "best".

Why not divide by the control workload: it is timed in every process right before and after each case and
reported (``machine_speed``), but on this project's 2-core box dividing by it did not narrow the paired
intervals (README, "Ratios that hold while the machine drifts"): pairing by pass already cancels the drift
the control sees, and the control adds its own noise. ``NORMALIZE_BY_CONTROL`` records that choice; the
drift benchmark (scripts/drift_benchmark.py) measures both.

Everything here reads case records as plain dicts (``CaseRecord.to_dict()``); nothing imports a framework.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from bench.analyze.values import geomean, process_value

Case = Mapping[str, Any]

CONFIDENCE = 0.95
NORMALIZE_BY_CONTROL = False
# A process saw contention when other processes used this share of all CPUs while it timed (one busy
# process on a 2-core box reads ~0.5; background daemons ~0.01).
CONTENTION_SHARE = 0.2
STEAL_SHARE = 0.1
# The control moved "more than the cases' own noise": its pass-to-pass range exceeds twice the cases' median
# between-process CV and at least this. The cases' noise is the smaller of their raw CV and their CV once each
# process is divided by its own control: when the whole machine slows for a pass, the raw CV swells with the
# drift itself (51-55 % in the drift benchmark's slowdown runs, against a control range of 0.63-1.47x, which
# the raw rule called "steady"), while the divided CV stays at the cases' own noise.
DRIFT_FLOOR = 0.05

# Axes whose effect is compared, each against a reference value (None: the smallest value present).
REFERENCES: dict[str, Any] = {
    "precision": "float32",
    "jit_compile": False,
    "input": "numpy",
    "steps_per_execution": 1,
    "global_batch": None,
    "gpus": 1,
    "environment": "default",
    "keras": "keras3",
}
INPUT_REFERENCE_ORDER = ("numpy", "tf_data", "numpy_uint8", "tf_data_prefetch", "device")
# Files from before the input axis fed fit a tf.data pipeline or a cycling PyDataset: "unrecorded", never taken
# for device input (bench.analyze.bottleneck's rule).
PARAM_DEFAULTS = {"input": "unrecorded", "steps_per_execution": 1, "workers": 1, "keras": "keras3",
                  "environment": "default"}


# --------------------------------------------------------------------------- values per process


def _param(case: Case, key: str) -> Any:
    return (case.get("params") or {}).get(key, PARAM_DEFAULTS.get(key))


def process_values(case: Case | None) -> dict[int, float]:
    """pass -> the process's samples/s value (its rounds), for an ``ok`` case; {} otherwise."""
    if case is None or case.get("status") != "ok":
        return {}
    m = case.get("metrics") or {}
    round_s, samples = m.get("round_s") or [], m.get("samples_per_round")
    if not round_s or not isinstance(samples, (int, float)) or samples <= 0:
        return {}
    passes = m.get("round_pass") or [0] * len(round_s)
    by_pass: dict[int, list[float]] = {}
    for seconds, p in zip(round_s, passes, strict=False):
        if isinstance(seconds, (int, float)) and seconds > 0:
            by_pass.setdefault(int(p), []).append(samples / seconds)
    return {p: process_value(v) for p, v in sorted(by_pass.items())}


def control_values(case: Case | None) -> dict[int, float]:
    """pass -> the control workload's samples/s around the case in that process; {} without a control."""
    control = (case or {}).get("control") or {}
    per_round, rounds = control.get("samples_per_round"), control.get("round_s") or []
    if control.get("status") != "ok" or not isinstance(per_round, (int, float)) or per_round <= 0 or not rounds:
        return {}
    passes = control.get("round_pass") or [_first_pass(case)] * len(rounds)
    by_pass: dict[int, list[float]] = {}
    for seconds, p in zip(rounds, passes, strict=False):
        if isinstance(seconds, (int, float)) and seconds > 0:
            by_pass.setdefault(int(p), []).append(per_round / seconds)
    return {p: process_value(v) for p, v in sorted(by_pass.items())}


def _first_pass(case: Case | None) -> int:
    processes = ((case or {}).get("metrics") or {}).get("processes") or []
    return int(processes[0].get("pass_index", 0)) if processes else 0


def values(case: Case | None, normalize: bool = NORMALIZE_BY_CONTROL) -> dict[int, float]:
    """The values comparisons pair: process values, divided by the same process's control when ``normalize``."""
    raw = process_values(case)
    if not normalize:
        return raw
    control = control_values(case)
    return {p: v / control[p] for p, v in raw.items() if p in control}


def case_value(case: Case | None) -> float | None:
    """One samples/s for a case: the geometric mean of its process values (what rankings use), or the median
    of its rounds for a record without them."""
    per_process = process_values(case)
    if per_process:
        return geomean(list(per_process.values()))
    value = (((case or {}).get("metrics") or {}).get("samples_per_second") or {}).get("median")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


# --------------------------------------------------------------------------- intervals


def t_interval(logs: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None, float | None]:
    """exp of the mean of ``logs`` and its t interval (None, None with fewer than two values)."""
    n = len(logs)
    mean = float(np.mean(logs))
    if n < 2:
        return math.exp(mean), None, None
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(np.std(logs, ddof=1)) / math.sqrt(n)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def verdict(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "no interval"
    if low > 1:
        return "faster"
    if high < 1:
        return "slower"
    return "no measurable difference"


def paired(a: Case | None, b: Case | None, normalize: bool = NORMALIZE_BY_CONTROL) -> dict[str, Any]:
    """a / b from the passes both measured: ratio, 95 % interval, pairs, method, verdict."""
    va, vb = values(a, normalize), values(b, normalize)
    common = sorted(set(va) & set(vb))
    if not common:
        return {"ratio": None, "ci_low": None, "ci_high": None, "pairs": 0, "method": "no common process",
                "verdict": "no interval"}
    logs = [math.log(va[p]) - math.log(vb[p]) for p in common]
    ratio, low, high = t_interval(logs)
    method = ("paired t on log ratios" if len(common) > 1 else "one process: no interval") + (
        ", each process divided by its control" if normalize else "")
    return {"ratio": ratio, "ci_low": low, "ci_high": high, "pairs": len(common), "method": method,
            "verdict": verdict(low, high)}


def interval_text(row: Mapping[str, Any], key: str = "ratio", low: str = "ci_low", high: str = "ci_high") -> str:
    """``1.31× [1.22, 1.40]``, or ``1.31× (no interval: one process)``."""
    value = row.get(key)
    if value is None:
        return "n/a"
    if row.get(low) is None or row.get(high) is None:
        return f"{value:.2f}× (no interval: {row.get('pairs', 1)} process)"
    return f"{value:.2f}× [{row[low]:.2f}, {row[high]:.2f}]"


# --------------------------------------------------------------------------- per case


def case_stats(cases: Iterable[Case], normalize: bool = NORMALIZE_BY_CONTROL) -> list[dict[str, Any]]:
    """Per ok train/native case: its value over processes with a 95 % interval, and its noise."""
    rows = []
    for case in cases:
        if case.get("suite") not in ("train", "native") or case.get("status") != "ok":
            continue
        per_process = values(case, normalize)
        if not per_process:
            continue
        logs = [math.log(v) for v in per_process.values()]
        value, low, high = t_interval(logs)
        between = (float(np.std(list(per_process.values()), ddof=1) / np.mean(list(per_process.values())))
                   if len(per_process) > 1 else None)
        rows.append({"case_id": case["case_id"], "processes": len(per_process), "value": value,
                     "ci_low": low, "ci_high": high, "between_process_cv": between,
                     "within_process_cv": _within_cv(case), "normalized_by_control": normalize,
                     "unit": "samples/s relative to the control" if normalize else "samples/s"})
    return rows


def _within_cv(case: Case) -> float | None:
    m = case.get("metrics") or {}
    round_s, passes = m.get("round_s") or [], m.get("round_pass") or []
    if not round_s:
        return None
    passes = passes or [0] * len(round_s)
    by_pass: dict[int, list[float]] = {}
    for seconds, p in zip(round_s, passes, strict=False):
        by_pass.setdefault(int(p), []).append(1.0 / seconds)
    cvs = [float(np.std(v, ddof=1) / np.mean(v)) for v in by_pass.values() if len(v) > 1]
    return statistics.median(cvs) if cvs else None


# --------------------------------------------------------------------------- comparisons


def _describe(params: Mapping[str, Any], skip: str) -> str:
    parts = []
    labels = (("backend", "{}"), ("gpus", "{} GPU(s)"), ("global_batch", "batch {}"), ("precision", "{}"),
              ("jit_compile", "jit_compile {}"), ("input", "input {}"), ("steps_per_execution", "spe {}"),
              ("environment", "env {}"), ("keras", "{}"))
    for key, fmt in labels:
        if key != skip and key in params and params[key] is not None:
            value = params[key]
            if key in ("environment", "keras") and value == PARAM_DEFAULTS.get(key):
                continue
            parts.append(fmt.format(str(value).lower() if isinstance(value, bool) else value))
    return ", ".join(parts)


def axis_label(axis: str, value: Any) -> str:
    """An axis value in words: "batch 1024", "2 GPU(s)", "jit_compile true", "mixed_bfloat16"."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return {"global_batch": f"batch {text}", "gpus": f"{text} GPU(s)", "steps_per_execution": f"spe {text}",
            "jit_compile": f"jit_compile {text}", "input": f"input {text}"}.get(axis, text)


def _sentence(row: Mapping[str, Any]) -> str:
    where = row["where"]
    text = interval_text(row)
    if row["verdict"] == "no measurable difference":
        judged = "no measurable difference"
    elif row["verdict"] == "no interval":
        judged = "one process, so no interval"
    else:
        judged = row["verdict"]
    extra = ""
    if row.get("efficiency") is not None:
        eff = interval_text({"ratio": row["efficiency"], "ci_low": row.get("efficiency_ci_low"),
                             "ci_high": row.get("efficiency_ci_high"), "pairs": row["pairs"]})
        extra = f"; scaling efficiency {eff.replace('×', '')}"
    return f"{row['a_label']} vs {row['b_label']} ({where}): {text}, {judged}{extra} ({row['pairs']} paired processes)."


def _row(kind: str, axis: str, a: Case, b: Case, a_label: str, b_label: str, where: str,
         context: Mapping[str, Any], normalize: bool) -> dict[str, Any]:
    row = {"kind": kind, "axis": axis, "backend": _param(a, "backend"), "context": dict(context),
           "a_case_id": a["case_id"], "b_case_id": b["case_id"], "a_label": a_label, "b_label": b_label,
           "where": where, **paired(a, b, normalize)}
    return row


def _train_ok(cases: Iterable[Case]) -> list[Case]:
    return [c for c in cases if c.get("suite") == "train" and c.get("status") == "ok"
            and int(_param(c, "workers") or 1) == 1 and process_values(c)]


def axis_comparisons(cases: Iterable[Case], normalize: bool = NORMALIZE_BY_CONTROL) -> list[dict[str, Any]]:
    """For every axis, each case against the case that differs from it only in that axis and holds the
    axis' reference value (float32, jit_compile false, numpy input, spe 1, the smallest batch, 1 GPU...)."""
    train = _train_ok(cases)
    rows = []
    for axis, reference in REFERENCES.items():
        groups: dict[tuple[Any, ...], list[Case]] = {}
        for case in train:
            params = {**PARAM_DEFAULTS, **(case.get("params") or {})}
            key = tuple(sorted((k, repr(v)) for k, v in params.items() if k != axis))
            groups.setdefault(key, []).append(case)
        for group in groups.values():
            if len(group) < 2:
                continue
            present = [_param(c, axis) for c in group]
            ref_value = _reference(axis, reference, present)
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
                           axis_label(axis, ref_value), _describe(params, axis), context, normalize)
                if axis == "gpus" and row["ratio"] is not None:
                    factor = _param(a, "gpus") / _param(b, "gpus")
                    row.update(efficiency=row["ratio"] / factor,
                               efficiency_ci_low=row["ci_low"] / factor if row["ci_low"] is not None else None,
                               efficiency_ci_high=row["ci_high"] / factor if row["ci_high"] is not None else None)
                row["sentence"] = _sentence(row)
                rows.append(row)
    return rows


def _reference(axis: str, reference: Any, present: list[Any]) -> Any:
    if axis == "global_batch":
        return min(present)
    if axis == "input":
        return next((v for v in INPUT_REFERENCE_ORDER if v in present), reference)
    if axis == "jit_compile" and not any(_same(v, False) for v in present):
        return "auto" if "auto" in present else reference
    return reference


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # jit_compile True is not gpus 1


def native_comparisons(cases: Iterable[Case], normalize: bool = NORMALIZE_BY_CONTROL) -> list[dict[str, Any]]:
    """Each one-GPU Keras case against the same backend's native step loop at its batch and precision."""
    cases = list(cases)
    natives = {(_param(c, "backend"), _param(c, "global_batch"), _param(c, "precision")): c for c in cases
               if c.get("suite") == "native" and c.get("status") == "ok" and _param(c, "variant") == "step"
               and process_values(c)}
    rows = []
    for case in _train_ok(cases):
        if _param(case, "gpus") != 1:
            continue
        native = natives.get((_param(case, "backend"), _param(case, "global_batch"), _param(case, "precision")))
        if native is None:
            continue
        params = {**PARAM_DEFAULTS, **(case.get("params") or {})}
        row = _row("native", "native", case, native, "Keras fit", "the native step loop", _describe(params, ""),
                   params, normalize)
        row["sentence"] = _sentence(row)
        rows.append(row)
    return rows


def best_comparisons(cases: Iterable[Case], normalize: bool = NORMALIZE_BY_CONTROL) -> list[dict[str, Any]]:
    """Per backend, the fastest case against the runner-up: "best" only when the interval excludes 1. Cases of
    the tool's own Keras only (environment "default"): another Keras is compared, not crowned."""
    by_backend: dict[str, list[Case]] = {}
    for case in _train_ok(cases):
        if _param(case, "environment") != "default" or _param(case, "keras") != "keras3":
            continue
        by_backend.setdefault(_param(case, "backend"), []).append(case)
    rows = []
    for backend, group in by_backend.items():
        ranked = sorted(group, key=lambda c: case_value(c) or 0.0, reverse=True)
        if len(ranked) < 2:
            continue
        best, runner_up = ranked[0], ranked[1]
        row = _row("best", "runner_up", best, runner_up, "best", "runner-up", backend,
                   {"backend": backend}, normalize)
        row["verdict"] = "best" if row["ci_low"] is not None and row["ci_low"] > 1 else (
            "tied" if row["ci_low"] is not None else "no interval")
        row["sentence"] = (f"Best on {backend}: {_describe({**PARAM_DEFAULTS, **best['params']}, 'backend')}, "
                           f"{interval_text(row)} the runner-up "
                           f"({_describe({**PARAM_DEFAULTS, **runner_up['params']}, 'backend')})"
                           + ("" if row["verdict"] == "best" else
                              " — tied: the interval holds 1" if row["verdict"] == "tied" else
                              " — one process, so no interval") + ".")
        rows.append(row)
    return rows


def comparisons(cases: Iterable[Case], normalize: bool = NORMALIZE_BY_CONTROL) -> list[dict[str, Any]]:
    cases = list(cases)
    return (best_comparisons(cases, normalize) + axis_comparisons(cases, normalize)
            + native_comparisons(cases, normalize))


# --------------------------------------------------------------------------- the machine during the run


def _worker(case: Case) -> str:
    suite, backend = case.get("suite"), _param(case, "backend")
    devices = _param(case, "gpus") if suite == "train" else 1
    extra = "".join(f"-{_param(case, k)}" for k in ("keras", "environment") if _param(case, k) != PARAM_DEFAULTS[k])
    return f"{suite}-{backend}-{devices}dev{extra}"


def machine_speed(cases: Iterable[Case], stats_rows: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The control workload per pass and worker, relative to the median pass; contention from /proc/stat."""
    cases = [c for c in cases if c.get("suite") in ("train", "native") and c.get("status") == "ok"]
    per_worker: dict[str, dict[int, list[float]]] = {}
    for case in cases:
        for p, value in control_values(case).items():
            per_worker.setdefault(_worker(case), {}).setdefault(p, []).append(value)
    workers = []
    for label, passes in per_worker.items():
        speeds = {p: geomean(v) for p, v in sorted(passes.items())}
        median = statistics.median(speeds.values())
        rel = {p: s / median for p, s in speeds.items()}
        workers.append({"label": label, "passes": [{"pass_index": p, "control": speeds[p], "relative": rel[p]}
                                                   for p in speeds],
                        "slowest": min(rel.values()), "fastest": max(rel.values())})
    noise = [r["between_process_cv"] for r in (stats_rows or case_stats(cases)) if r.get("between_process_cv") is not None]
    raw_noise = statistics.median(noise) if noise else None
    divided = [r["between_process_cv"] for r in case_stats(cases, normalize=True)
               if r.get("between_process_cv") is not None]
    divided_noise = statistics.median(divided) if divided else None
    cases_noise = min((n for n in (raw_noise, divided_noise) if n is not None), default=None)
    shares = [(case["case_id"], proc.get("pass_index"), (proc.get("machine") or {}))
              for case in cases for proc in ((case.get("metrics") or {}).get("processes") or [])]
    loaded = [(cid, p, m["others_cpu_share"]) for cid, p, m in shares
              if isinstance(m.get("others_cpu_share"), (int, float)) and m["others_cpu_share"] > CONTENTION_SHARE]
    stolen = [(cid, p, m["steal_share"]) for cid, p, m in shares
              if isinstance(m.get("steal_share"), (int, float)) and m["steal_share"] > STEAL_SHARE]
    slowest = min((w["slowest"] for w in workers), default=None)
    fastest = max((w["fastest"] for w in workers), default=None)
    spread = max((w["fastest"] - w["slowest"] for w in workers), default=0.0)
    threshold = max(DRIFT_FLOOR, 2 * cases_noise) if cases_noise is not None else DRIFT_FLOOR
    moved = spread > threshold
    result = {"workers": workers, "slowest": slowest, "fastest": fastest, "spread": spread,
              "cases_noise": cases_noise, "cases_noise_raw": raw_noise, "cases_noise_divided": divided_noise,
              "threshold": threshold, "moved": moved,
              "contention": bool(loaded), "contended_processes": len(loaded),
              "max_others_cpu_share": max((s for _, _, s in loaded), default=_max_share(shares, "others_cpu_share")),
              "steal": bool(stolen), "max_steal_share": _max_share(shares, "steal_share"),
              "contended_cases": sorted({cid for cid, _, _ in loaded}),
              "drifted_workers": [w["label"] for w in workers if w["fastest"] - w["slowest"] > threshold]}
    result["sentence"] = _speed_sentence(result)
    return result


def _max_share(shares: Sequence[tuple[Any, Any, Mapping[str, Any]]], key: str) -> float | None:
    found = [m[key] for _, _, m in shares if isinstance(m.get(key), (int, float))]
    return max(found) if found else None


def _speed_sentence(r: Mapping[str, Any]) -> str:
    if r["slowest"] is None:
        speed = "machine speed during the run: not measured (no control workload)"
    else:
        noise = f"{100 * r['cases_noise']:.1f} %" if r["cases_noise"] is not None else "unknown (one process each)"
        raw = r.get("cases_noise_raw")
        if r["cases_noise"] is not None and raw is not None and raw > r["cases_noise"]:
            noise += f" once each process is divided by its control ({100 * raw:.1f} % raw)"
        speed = (f"machine speed during the run (control workload, per pass): slowest {r['slowest']:.2f}×, fastest "
                 f"{r['fastest']:.2f}× of the median; the cases' own noise between processes {noise}")
        speed += (" — the machine moved more than that: absolute throughputs are doubtful, the paired ratios stand"
                  if r["moved"] else " — steady")
    if r["contention"]:
        speed += (f"; another job took up to {100 * r['max_others_cpu_share']:.0f} % of the CPUs in "
                  f"{r['contended_processes']} process(es) ({len(r['contended_cases'])} case(s) flagged "
                  "contention): the machine changed, ratios from those processes may really differ")
    if r["steal"]:
        speed += f"; the hypervisor stole up to {100 * r['max_steal_share']:.0f} % of the CPUs"
    return speed[0].upper() + speed[1:] + "."


def flag_machine(cases: Sequence[Any], speed: Mapping[str, Any]) -> list[Any]:
    """The records (models), with ``flags.machine_drift`` on the cases of workers whose control moved and
    ``flags.contention`` on the cases another job loaded; others unchanged."""
    drifted, contended = set(speed.get("drifted_workers") or []), set(speed.get("contended_cases") or [])
    out = []
    for record in cases:
        data = record.to_dict() if hasattr(record, "to_dict") else dict(record)
        if data.get("suite") not in ("train", "native") or data.get("status") != "ok":
            out.append(record)
            continue
        drift = _worker(data) in drifted and bool(speed.get("moved"))
        busy = data["case_id"] in contended
        if drift or busy:
            record = record.model_copy(update={"flags": record.flags.model_copy(
                update={"machine_drift": drift, "contention": busy})})
        out.append(record)
    return out
