"""Headline findings: one sentence each, with the numbers it rests on, computed when the run is finalised and
stored in ``derived.findings`` (the report and the terminal only show them).

Ratios between cases come from ``derived.comparisons`` (each case against the one that differs only in that
axis; with a 95 % interval where the case ran in several processes, "no interval" where it ran in one), the
best configuration from ``derived.best_configurations`` — the one row every "best" on the page comes from.
Per-case facts (NVML busy %, CPU-prediction timings) are read from the cases. Labels follow the backend:
``jit_compile`` is XLA on TensorFlow and JAX and torch.compile on torch. A finding the run cannot support
says "not measured in this run" and why.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from bench.analyze.bottleneck import rate
from bench.analyze.frames import compiler, is_true
from bench.analyze.limitations import match, shorten
from bench.analyze.text import ratio_interval

THROUGHPUT = "samples_per_second.median"
STARVED_BELOW_PCT = 50.0
NOT_MEASURED = "not measured in this run"


@dataclass(frozen=True)
class Finding:
    """One headline sentence; ``backend`` names the backend its cases ran on (None: run-wide)."""

    key: str
    measured: bool
    text: str
    values: dict[str, Any] = field(default_factory=dict)
    backend: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _not_measured(key: str, what: str, why: str, backend: str | None = None) -> Finding:
    return Finding(key, False, f"{what}: {NOT_MEASURED} ({why}).", backend=backend)


def by_backend(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``frame`` split by backend, in sweep order: findings never pool cases of different frameworks."""
    if frame.empty:
        return []
    names = list(dict.fromkeys(str(b) for b in frame["backend"].dropna()))
    return [(name, frame[frame["backend"] == name]) for name in names]


def ok_train(train: pd.DataFrame) -> pd.DataFrame:
    """Finished training cases with a throughput."""
    # Convert before filtering: assigning a Series to an empty frame would adopt the Series' index.
    train = train.assign(**{THROUGHPUT: pd.to_numeric(train[THROUGHPUT], errors="coerce")})
    return train[(train["status"] == "ok") & train[THROUGHPUT].notna()]


def spread(values: pd.Series) -> dict[str, float]:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return {
        "median": float(values.median()), "min": float(values.min()), "max": float(values.max()),
        "q1": float(values.quantile(0.25)), "q3": float(values.quantile(0.75)), "n": int(len(values)),
    }


def _rate(value: float) -> str:
    return f"{value:,.0f} samples/s"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _ratio_text(s: dict[str, float]) -> str:
    if s["n"] == 1:
        return f"median {s['median']:.2f}× (over 1 pair)"
    return (f"median {s['median']:.2f}× (min–max {s['min']:.2f}–{s['max']:.2f}×, "
            f"IQR {s['q1']:.2f}–{s['q3']:.2f}×, over {s['n']} pair{'s' if s['n'] != 1 else ''})")


# --------------------------------------------------------------------------- training

Row = Mapping[str, Any]


def best_finding(best: Row, runner_up: Row | None) -> Finding:
    """The best configuration: ``best_configurations``' row, against the runner-up where one was measured."""
    values = {"case_id": best["case_id"], "samples_per_second": best.get("samples_per_second"),
              "backend": best["backend"], "verdict": best.get("verdict")}
    text = best.get("sentence") or f"Best configuration on {best['backend']}: {best['case_id']}."
    if runner_up is not None and runner_up.get("ratio") is not None:
        values.update(runner_up_case_id=runner_up["b_case_id"], runner_up_ratio=runner_up["ratio"],
                      ci_low=runner_up.get("ci_low"), ci_high=runner_up.get("ci_high"))
        if runner_up.get("ci_low") is None:
            judged = f"{runner_up['ratio']:.2f}×, one process each: not told apart"
        elif runner_up.get("verdict") == "tied" or runner_up["ci_low"] <= 1:
            judged = f"tied, {ratio_interval(runner_up)}: the interval holds 1"
        else:
            judged = f"{ratio_interval(runner_up)}, faster beyond the interval"
        text = text.rstrip(".") + f"; against the runner-up ({runner_up['b_case_id']}): {judged}."
    return Finding("best", True, text, values, best["backend"])


def fastest_backend(best_rows: Sequence[Row]) -> Finding | None:
    """Across backends (only when there are several): each backend's best, fastest first. Different
    backends are not paired, so this is a ranking of values, not a tested difference."""
    rows = sorted((r for r in best_rows if r.get("samples_per_second")), key=lambda r: -r["samples_per_second"])
    if len(rows) < 2:
        return None
    top = rows[0]["samples_per_second"]
    others = ", ".join(f"{r['backend']} {rate(r['samples_per_second'])} ({r['samples_per_second'] / top:.0%})"
                       for r in rows[1:])
    text = (f"Fastest backend at its best configuration: {rows[0]['backend']} — {rate(top)}; then {others}. "
            "Each backend's own findings follow.")
    return Finding("backends", True, text, {r["backend"]: r["samples_per_second"] for r in rows})


def _ratio_summary(rows: Sequence[Row]) -> tuple[dict[str, Any], str]:
    ratios = pd.Series([r["ratio"] for r in rows], dtype=float)
    s = spread(ratios)
    verdicts = [r.get("verdict") for r in rows]
    s["faster"], s["slower"] = verdicts.count("faster"), verdicts.count("slower")
    s["no_difference"], s["no_interval"] = verdicts.count("no measurable difference"), verdicts.count("no interval")
    if s["no_interval"] == len(rows):
        judged = "one process per case, so no interval"
    else:
        judged = (f"{s['faster']} faster, {s['slower']} slower, {s['no_difference']} with no measurable difference "
                  "(95 % intervals)")
    return s, f"{_ratio_text(s)}; {judged}"


def axis_finding(comparisons: Sequence[Row], backend: str, axis: str, key: str, what: str, over: str) -> Finding:
    """One axis' comparisons on one backend, summarised: median ratio, spread, verdicts."""
    rows = [r for r in comparisons if r.get("axis") == axis and r.get("backend") == backend
            and r.get("kind") in ("axis", "scaling") and r.get("ratio") is not None]
    if not rows:
        return _not_measured(key, f"{what} on {backend}", f"needs finished cases that differ only in {axis}", backend)
    pairs = list(dict.fromkeys((r["a_label"], r["b_label"]) for r in rows))
    label = "; ".join(f"{a} vs {b.removeprefix(a.split(' ', 1)[0] + ' ') if ' ' in a else b}" for a, b in pairs)
    s, text = _ratio_summary(rows)
    verb = "speeds training up" if s["median"] >= 1 else "slows training down"
    return Finding(key, True, f"{what} ({label}) {verb} on {backend}: {text}, over {over}.", s, backend)


def scaling_efficiency(comparisons: Sequence[Row], backend: str, simulated: bool) -> Finding:
    rows = [r for r in comparisons if r.get("kind") == "scaling" and r.get("backend") == backend
            and r.get("efficiency") is not None]
    if not rows:
        return _not_measured("scaling", f"Multi-GPU scaling on {backend}",
                             "needs finished 1-GPU and N-GPU cases that otherwise match", backend)
    values: dict[str, Any] = {}
    parts = []
    for batch in sorted({r["context"].get("global_batch") for r in rows}):
        cells = []
        for gpus in sorted({r["context"].get("gpus") or int(r["a_label"].split()[0]) for r in rows
                            if r["context"].get("global_batch") == batch}):
            effs = [r["efficiency"] for r in rows if r["context"].get("global_batch") == batch
                    and int(r["a_label"].split()[0]) == gpus]
            if effs:
                efficiency = float(statistics.median(effs))
                values[f"batch={batch}/gpus={gpus}"] = efficiency
                cells.append(f"{gpus} GPUs {efficiency:.0%}")
        parts.append(f"batch {batch}: " + ", ".join(cells))
    intervals = any(r.get("efficiency_ci_low") is not None for r in rows)
    text = (f"Multi-GPU scaling efficiency on {backend}, T_N / (N·T_1), median over the other axes (the global "
            "batch is fixed, so each replica's share shrinks as N grows) — " + "; ".join(parts)
            + ("" if intervals else " (one process per case: no interval)") + "."
            + (" These replicas were simulated devices, not GPUs." if simulated else ""))
    return Finding("scaling", True, text, values, backend)


def _compile_advice(backend: str | None) -> str:
    """What to try against per-step overhead: on torch, jit_compile=True means torch.compile, not XLA."""
    if backend == "torch":
        return "jit_compile=True (torch.compile on torch)"
    if backend is None:
        return "jit_compile=True (XLA; torch.compile on torch)"
    return "jit_compile=True (XLA)"


def gpu_starvation(train: pd.DataFrame, backend: str | None = None,
                   below_pct: float = STARVED_BELOW_PCT) -> Finding:
    ok = ok_train(train)
    ok = ok.assign(util=pd.to_numeric(ok["gpu_metrics.aggregate.utilization_pct_mean"], errors="coerce"))
    measured = ok[(ok["gpu_metrics.status"] == "ok") & ok["util"].notna()]
    on = f" on {backend}" if backend else ""
    if measured.empty:
        return _not_measured("starved", f"GPU utilisation{on}", "no NVML data", backend)
    starved = measured[measured["util"] < below_pct]
    values = {"measured": int(len(measured)), "starved": int(len(starved)),
              "min_util_pct": float(measured["util"].min()), "median_util_pct": float(measured["util"].median())}
    if starved.empty:
        text = (f"The GPUs were kept busy{on}: NVML utilisation at or above {below_pct:.0f}% in all "
                f"{len(measured)} measured cases (median {values['median_util_pct']:.0f}%).")
    else:
        worst = starved.loc[starved["util"].idxmin()]
        text = (f"The GPU was starved{on} (NVML utilisation below {below_pct:.0f}%) in {len(starved)} of "
                f"{len(measured)} measured cases; lowest {worst['util']:.0f}% at {worst['case_id']}. Per-step overhead "
                "(input pipeline, kernel launches, all-reduce) outweighs the work there: try larger per-replica "
                f"batches or {_compile_advice(backend)}.")
    return Finding("starved", True, text, values, backend)


# --------------------------------------------------------------------------- CPU prediction


CPU_PHASES = ["prepare_s", "first_predict_s", "steady_s.median", "total_s"]


def cpu_method_table(cpu: pd.DataFrame) -> pd.DataFrame:
    """Per backend and method over its finished (status ok) settings: for each phase (prepare / first /
    steady / total seconds) the median, which only ranks the methods, and ``<phase>.range``, the (min, max)
    over the settings, which is what the page shows — settings such as predict batch 1,024 and 10,000 can
    differ by 100×, and the median of two such values is their mean, a number no setting had. Backends in
    sweep order, then cheapest (lowest median total) first."""
    keys = ["backend", "method"]
    ranges = [f"{c}.range" for c in CPU_PHASES]
    numeric = cpu[[*keys, "status", *CPU_PHASES]].assign(
        **{c: pd.to_numeric(cpu[c], errors="coerce") for c in CPU_PHASES})
    numeric = numeric[(numeric["status"] == "ok") & numeric["total_s"].notna()].drop(columns="status")
    if numeric.empty:
        return pd.DataFrame(columns=[*keys, *CPU_PHASES, *ranges, "settings"])
    grouped = numeric.groupby(keys, sort=False)
    table = grouped.median()
    low, high = grouped.min(), grouped.max()
    for column in CPU_PHASES:
        table[f"{column}.range"] = list(zip(low[column], high[column], strict=True))
    table["settings"] = grouped.size()
    table = table.reset_index()
    order = {backend: i for i, backend in enumerate(dict.fromkeys(numeric["backend"]))}
    table["order"] = table["backend"].map(order)
    return table.sort_values(["order", "total_s"], kind="stable").drop(columns="order").reset_index(drop=True)


def _seconds_range(span: tuple[float, float]) -> str:
    lo, hi = _seconds(span[0]), _seconds(span[1])
    return lo if lo == hi else f"{lo}–{hi}"


def _same_device(cases: pd.DataFrame) -> bool:
    """True when every one of these cases trained on the device it predicted on (torch without a GPU)."""
    flags = cases["train_device_is_predict_device"].map(is_true)
    return bool(len(cases)) and bool(flags.all())


SAME_DEVICE_CAVEAT = ("training ran on that same CPU (no second device), so this proves correct predictions and "
                      "their cost, not a move off the training device")


def cheapest_cpu_workaround(cpu: pd.DataFrame, backend: str) -> Finding:
    if cpu.empty:
        return _not_measured("cpu_cheapest", f"CPU-prediction workarounds on {backend}",
                             "the cpu_predict suite did not run", backend)
    table = cpu_method_table(cpu)
    table = table[table["method"] != "naive"]
    if table.empty:
        return Finding("cpu_cheapest", True, f"No CPU-prediction workaround finished with correct predictions "
                       f"on the CPU on {backend} in this run.", {"method": None}, backend)
    best = table.iloc[0]
    others = ", ".join(f"{r['method']} {_seconds_range(r['total_s.range'])}" for _, r in table.iloc[1:].iterrows())
    caveat = _same_device(cpu[(cpu["method"] == best["method"]) & (cpu["status"] == "ok")])
    naive = cpu[cpu["method"] == "naive"]
    needed = naive.empty or not (naive["status"] == "ok").all()
    settings = int(best["settings"])
    if settings == 1:
        cost = (f"{_seconds(best['total_s'])} in total in its one setting (prepare {_seconds(best['prepare_s'])} + "
                f"first call {_seconds(best['first_predict_s'])} + steady call {_seconds(best['steady_s.median'])})")
    else:
        # A range over the settings, never their median: two settings' median is a value neither had.
        cost = (f"{_seconds_range(best['total_s.range'])} in total across its {settings} settings (prepare "
                f"{_seconds_range(best['prepare_s.range'])}, first call {_seconds_range(best['first_predict_s.range'])}, "
                f"steady call {_seconds_range(best['steady_s.median.range'])}; ranked by the median total)")
    text = (f"Cheapest working CPU-prediction workaround on {backend}: {best['method']} — {cost}"
            + (f"; then {others}" if others else "")
            + ("" if needed else f"; none is needed on {backend}, where the naive path works")
            + (f" — but {SAME_DEVICE_CAVEAT}" if caveat else "") + ".")
    return Finding("cpu_cheapest", True, text, {"method": best["method"], "total_s": float(best["total_s"]),
                                                "total_s_range": [float(v) for v in best["total_s.range"]],
                                                "same_device": caveat, "needed": needed}, backend)


def _trained_on(naive: pd.DataFrame) -> str:
    if _same_device(naive):
        return "training on the same CPU"
    if naive["train_device_stand_in"].map(is_true).all() and len(naive):
        return "training on a logical CPU standing in for the GPU"
    return "training on the GPU"


def naive_outcome(cpu: pd.DataFrame, backend: str) -> Finding:
    naive = cpu[cpu["method"] == "naive"]
    if naive.empty:
        return _not_measured("cpu_naive", f"Naive CPU prediction on {backend}", "the naive method did not run",
                             backend)
    counts = naive["status"].value_counts()
    values: dict[str, Any] = {status: int(counts.get(status, 0))
                              for status in ("ok", "failed", "wrong", "not_on_cpu", "skipped")}
    values["n"] = int(len(naive))
    # keras.device is the scope every backend documents; on TensorFlow it is tf.device.
    lead = f'The naive path on {backend} (predict under keras.device("cpu:0") after {_trained_on(naive)})'
    if values["ok"] == values["n"]:
        total = pd.to_numeric(naive["total_s"], errors="coerce").median()
        values["same_device"] = _same_device(naive)
        caveat = f" — but {SAME_DEVICE_CAVEAT}" if values["same_device"] else ""
        where = f"in all {values['n']} settings" if values["n"] != 1 else "in its one setting"
        return Finding("cpu_naive", True, f"{lead} worked {where} ({_seconds(total)} in total){caveat}.", values,
                       backend)
    parts = []
    if values["failed"]:
        failed = naive[naive["status"] == "failed"]
        known = [match({"suite": "cpu_predict", "status": "failed", "reason": reason,
                        "params": {"backend": backend, "method": "naive"}}) for reason in failed["reason"]]
        reason = failed["reason"].dropna()
        if known and all(known):
            why = f" — known limitation {known[0].issue}: {known[0].sentence}"
            values["known_limitation"] = known[0].issue
        else:
            why = f" — {shorten(reason.iloc[0])}" if len(reason) else ""
        parts.append(f"failed in {values['failed']} of {values['n']} settings{why}")
    if values["not_on_cpu"]:
        devices = sorted(set(naive.loc[naive["status"] == "not_on_cpu", "predict_device"].dropna()))
        parts.append(f"ran but not on the CPU in {values['not_on_cpu']} of {values['n']} settings"
                     + (f" (MatMuls on {', '.join(devices)})" if devices else ""))
    if values["wrong"]:
        parts.append(f"gave wrong predictions in {values['wrong']} of {values['n']} settings")
    if values["skipped"]:
        parts.append(f"was skipped in {values['skipped']} of {values['n']} settings")
    if values["ok"]:
        parts.append(f"worked in {values['ok']} of {values['n']} settings")
    return Finding("cpu_naive", True, f"{lead} " + "; ".join(parts) + ".", values, backend)


def strategy_placement(cpu: pd.DataFrame, backend: str) -> Finding:
    strategy = cpu[cpu["method"] == "strategy"]
    if strategy.empty:
        return _not_measured("cpu_strategy", f"Predicting via a tf.distribute strategy on {backend}",
                             "the strategy method did not run", backend)
    off_cpu = strategy[strategy["status"] == "not_on_cpu"]
    if len(off_cpu):
        devices = sorted(set(off_cpu["predict_device"].dropna())) or ["a non-CPU device"]
        text = (f"Note ({backend}): building under a tf.distribute strategy does not move prediction to the CPU: "
                f"its MatMuls ran on {', '.join(devices)}.")
        return Finding("cpu_strategy", True, text, {"not_on_cpu": int(len(off_cpu)), "devices": devices}, backend)
    ok = strategy[strategy["status"] == "ok"]
    if len(ok):
        return Finding("cpu_strategy", True, f"Building under a tf.distribute strategy on {backend} did place "
                       f"prediction on the CPU in {len(ok)} of {len(strategy)} settings.", {"not_on_cpu": 0},
                       backend)
    if strategy["not_applicable"].map(is_true).all():
        # Not a result and not a failure: the method does not exist off TensorFlow.
        return Finding("cpu_strategy", False, f"The strategy method does not apply on {backend} (tf.distribute "
                       f"exists only on TensorFlow): skipped in {len(strategy)} setting"
                       f"{'s' if len(strategy) != 1 else ''}, as expected.",
                       {"not_on_cpu": 0, "not_applicable": int(len(strategy))}, backend)
    reason = strategy["reason"].dropna()
    return Finding("cpu_strategy", True, f"The strategy method did not finish on {backend}"
                   + (f": {shorten(reason.iloc[0])}." if len(reason) else "."), {"not_on_cpu": 0}, backend)


def train_findings(train: pd.DataFrame, derived: Mapping[str, Any]) -> list[Finding]:
    """Per backend: best, jit_compile, mixed precision, scaling, NVML starvation — from ``derived``'s tables."""
    if train.empty:
        return [_not_measured("train", "Training throughput", "the train suite did not run")]
    comparisons = derived.get("comparisons") or []
    best_rows = derived.get("best_configurations") or []
    findings: list[Finding] = []
    across = fastest_backend(best_rows)
    if across is not None:
        findings.append(across)
    for backend, group in by_backend(train):
        best = next((r for r in best_rows if r["backend"] == backend), None)
        if best is None:
            findings.append(_not_measured("best", f"Best configuration on {backend}", "no training case finished",
                                          backend))
        else:
            runner_up = next((r for r in comparisons if r.get("kind") == "best" and r.get("backend") == backend
                              and r.get("a_case_id") == best["case_id"]), None)
            findings.append(best_finding(best, runner_up))
        findings.append(axis_finding(comparisons, backend, "jit_compile", "xla", compiler(backend),
                                     "pairs with every other axis held fixed"))
        mixed = [line for line in derived.get("mixed_precision_summary") or [] if f" on {backend}: median " in line]
        rows = [r for r in derived.get("mixed_precision_speedups") or [] if r["backend"] == backend]
        if not mixed:
            findings.append(_not_measured("mixed", f"Mixed-precision speedup on {backend}",
                                          "needs finished float32 and mixed_* cases at the same GPU count and batch",
                                          backend))
        for policy in dict.fromkeys(r["policy"] for r in rows):
            line = next((text for text in mixed if f"({policy} vs float32" in text), None)
            ratios = pd.Series([r["speedup"] for r in rows if r["policy"] == policy], dtype=float)
            if line:
                findings.append(Finding(f"mixed:{policy}", True, line, spread(ratios), backend))
        simulated = bool(group["simulated"].map(is_true).any())
        findings += [scaling_efficiency(comparisons, backend, simulated), gpu_starvation(group, backend)]
    return findings


def cpu_predict_findings(cpu: pd.DataFrame) -> list[Finding]:
    if cpu.empty:
        return [_not_measured("cpu_predict", "CPU prediction after GPU training", "the cpu_predict suite did not run")]
    findings: list[Finding] = []
    for backend, group in by_backend(cpu):
        findings += [cheapest_cpu_workaround(group, backend), naive_outcome(group, backend),
                     strategy_placement(group, backend)]
    return findings
