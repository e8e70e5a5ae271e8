"""Headline findings: pure functions from the case DataFrames to numbers and one sentence each.

Every speedup is a ratio of medians of *paired* cases (the same cell of the sweep but for one axis), then
summarised over the other axes by the median with its spread (min–max and IQR), so one outlier cell cannot
carry the headline. A "best" that is within the rounds' noise of the runner-up is called a tie and names
both (the rule is in :mod:`bench.report.noise`). Labels follow the backend: ``jit_compile`` is XLA on
TensorFlow and JAX and torch.compile on torch. A finding that the run cannot support says "not measured in
this run" and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.report import noise
from bench.report.load import compiler, is_true

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


# Axes that make a train case's configuration besides GPUs, batch, precision and jit_compile; absent in
# files from before the input / steps_per_execution axes.
FEED_AXES = ("input", "steps_per_execution")


def _feed_keys(frame: pd.DataFrame) -> list[str]:
    return [axis for axis in FEED_AXES if axis in frame.columns and frame[axis].notna().any()]


def _configuration(row: pd.Series) -> str:
    gpus = int(row["gpus"])
    text = (f"{gpus} GPU{'s' if gpus != 1 else ''}, global batch {int(row['global_batch'])}, {row['precision']}, "
            f"{row['jit_label']}")
    if pd.notna(row.get("input")):
        text += f", input {row['input']}"
    if pd.notna(row.get("steps_per_execution")):
        text += f", steps_per_execution {int(row['steps_per_execution'])}"
    return text


def _rate_with_iqr(row: pd.Series) -> str:
    q1, q3 = row["samples_per_second.q1"], row["samples_per_second.q3"]
    iqr = f" (IQR {q1:,.0f}–{q3:,.0f})" if pd.notna(q1) and pd.notna(q3) else ""
    return f"{_rate(row[THROUGHPUT])}{iqr}"


def best_configuration(train: pd.DataFrame, backend: str) -> Finding:
    """The fastest case, or a tie when the runner-up is within the rounds' noise (``noise.tied``)."""
    ok = ok_train(train)
    if ok.empty:
        return _not_measured("best", f"Best configuration on {backend}", "no training case finished", backend)
    ranked = ok.sort_values(THROUGHPUT, ascending=False, kind="stable")
    row = ranked.iloc[0]
    values: dict[str, Any] = {"samples_per_second": float(row[THROUGHPUT]), "case_id": row["case_id"],
                              "backend": backend, "tied_with": []}
    runner_up = ranked.iloc[1] if len(ranked) > 1 else None
    if runner_up is not None and noise.tied(row, runner_up):
        values["tied_with"] = [runner_up["case_id"]]
        text = (f"Best configuration on {backend}: tied — {_configuration(row)} at {_rate_with_iqr(row)} and "
                f"{_configuration(runner_up)} at {_rate_with_iqr(runner_up)}; the difference "
                f"({row[THROUGHPUT] / runner_up[THROUGHPUT] - 1:.1%}) is within the rounds' noise "
                f"({noise.RULE}), so neither is the faster.")
    else:
        text = f"Best configuration on {backend}: {_configuration(row)} — {_rate_with_iqr(row)}"
        if runner_up is not None:
            text += (f"; the next, {_configuration(runner_up)}, is {1 - runner_up[THROUGHPUT] / row[THROUGHPUT]:.1%} "
                     "slower and their rounds' IQRs do not overlap" if noise.tied(row, runner_up) is False else "")
        text += "."
    return Finding("best", True, text, values, backend)


def fastest_backend(train: pd.DataFrame) -> Finding | None:
    """Across backends (only when there are several): each backend's best median, fastest first; the lead
    is a tie when the second backend's best is within the rounds' noise of it."""
    best = [(backend, ok_train(group)) for backend, group in by_backend(train)]
    best = [(backend, ok.loc[ok[THROUGHPUT].idxmax()]) for backend, ok in best if not ok.empty]
    if len(best) < 2:
        return None
    best.sort(key=lambda item: -float(item[1][THROUGHPUT]))
    (lead, lead_row), (second, second_row) = best[0], best[1]
    top = float(lead_row[THROUGHPUT])
    others = ", ".join(f"{backend} {_rate(float(row[THROUGHPUT]))} ({float(row[THROUGHPUT]) / top:.0%})"
                       for backend, row in best[1:])
    if noise.tied(lead_row, second_row):
        text = (f"Fastest backend at its best configuration: {lead} and {second} are tied within the rounds' noise "
                f"({noise.RULE}) — {lead} {_rate(top)}; then {others}. Each backend's own findings follow.")
    else:
        text = (f"Fastest backend at its best configuration: {lead} — {_rate(top)}; then {others}. Each backend's "
                "own findings follow.")
    return Finding("backends", True, text, {backend: float(row[THROUGHPUT]) for backend, row in best})


def xla_ratios(train: pd.DataFrame) -> pd.DataFrame:
    """One row per (backend, gpus, global_batch, precision) with XLA on and off: ``ratio`` = on / off.

    "On" is jit_compile=true, or "auto" where it resolved to true; an explicit value wins over "auto"
    when a cell has both.
    """
    ok = ok_train(train)
    ok = ok[ok["xla"].map(lambda v: isinstance(v, (bool, np.bool_)))].copy()
    keys = ["backend", "gpus", "global_batch", "precision"]
    if ok.empty:
        return pd.DataFrame(columns=[*keys, "on", "off", "ratio"])
    keys += _feed_keys(ok)  # like for like: the same input path and steps_per_execution on both sides
    ok["xla"] = ok["xla"].astype(bool)
    ok["explicit"] = ok["jit_compile"].map(lambda v: isinstance(v, (bool, np.bool_)))
    ok = ok.sort_values("explicit", ascending=False, kind="stable").drop_duplicates([*keys, "xla"])
    wide = ok.pivot(index=keys, columns="xla", values=THROUGHPUT)
    if True not in wide.columns or False not in wide.columns:
        return pd.DataFrame(columns=[*keys, "on", "off", "ratio"])
    wide = wide.rename(columns={True: "on", False: "off"}).dropna(subset=["on", "off"]).reset_index()
    wide.columns.name = None
    wide["ratio"] = wide["on"] / wide["off"]
    return wide[[*keys, "on", "off", "ratio"]]


def mixed_ratios(train: pd.DataFrame) -> pd.DataFrame:
    """One row per (backend, gpus, global_batch, jit, input, spe, policy): ``ratio`` = mixed policy / float32,
    like for like (the heat map's cells)."""
    ok = ok_train(train)
    keys = ["backend", "gpus", "global_batch", "jit", *_feed_keys(ok)]
    base = ok[ok["precision"] == "float32"][[*keys, THROUGHPUT]].rename(columns={THROUGHPUT: "float32"})
    mixed = ok[ok["precision"].astype(str).str.startswith("mixed")][[*keys, "precision", THROUGHPUT]]
    pairs = mixed.merge(base.drop_duplicates(keys), on=keys).rename(columns={"precision": "policy", THROUGHPUT: "mixed"})
    pairs["ratio"] = pairs["mixed"] / pairs["float32"]
    return pairs[[*keys, "policy", "mixed", "float32", "ratio"]]


def xla_speedup(train: pd.DataFrame, backend: str) -> Finding:
    ratios = xla_ratios(train)
    if ratios.empty:
        name = compiler(backend)
        return _not_measured("xla", f"{name} speedup on {backend}",
                             f"needs finished cases with {name} on and off that otherwise match", backend)
    s = spread(ratios["ratio"])
    verb = "speeds training up" if s["median"] >= 1 else "slows training down"
    text = (f"{compiler(backend)} (jit_compile on vs off) {verb} on {backend}: {_ratio_text(s)} across GPU count × "
            "batch × precision.")
    return Finding("xla", True, text, s, backend)


def best_mixed_ratios(train: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, gpus, global_batch, policy): the best mixed case / the best float32 case, each the fastest
    over input path, steps_per_execution and jit_compile (bench.analyze.bottleneck.mixed_precision_speedups
    pairs the same way): what a user who tunes both sides gains."""
    ok = ok_train(train)
    keys = ["backend", "gpus", "global_batch"]
    best = ok.sort_values(THROUGHPUT, ascending=False, kind="stable").drop_duplicates([*keys, "precision"])
    base = best[best["precision"] == "float32"]
    mixed = best[best["precision"].astype(str).str.startswith("mixed")]
    pairs = mixed.merge(base, on=keys, suffixes=("", "_float32"))
    pairs = pairs.rename(columns={"precision": "policy"})
    pairs["ratio"] = pairs[THROUGHPUT] / pairs[f"{THROUGHPUT}_float32"]
    return pairs


def mixed_precision_speedups(train: pd.DataFrame, backend: str) -> list[Finding]:
    ratios = best_mixed_ratios(train)
    if ratios.empty:
        return [_not_measured("mixed", f"Mixed-precision speedup on {backend}",
                              "needs finished float32 and mixed_* cases at the same GPU count and batch", backend)]
    findings = []
    for policy, group in ratios.groupby("policy", sort=True):
        s = spread(group["ratio"])
        verb = "speeds training up" if s["median"] >= 1 else "slows training down"
        inputs = sorted({str(v) for v in group.get("input", pd.Series(dtype=object)).dropna()})
        where = f"; the best input path there: {', '.join(inputs)}" if inputs else ""
        text = (f"Mixed precision ({policy} vs float32, each at its best configuration of input path, "
                f"steps_per_execution and {compiler(backend)}) {verb} on {backend}: {_ratio_text(s)} across GPU "
                f"count × batch{where}.")
        findings.append(Finding(f"mixed:{policy}", True, text, s, backend))
    return findings


def scaling_table(train: pd.DataFrame) -> pd.DataFrame:
    """Efficiency ``T_N / (N · T_1)`` for every cell that also has a 1-GPU case."""
    ok = ok_train(train)
    keys = ["backend", "global_batch", "precision", "jit"]
    one = ok[ok["gpus"] == 1][[*keys, THROUGHPUT]].drop_duplicates(keys).rename(columns={THROUGHPUT: "t1"})
    many = ok[ok["gpus"] > 1][[*keys, "gpus", THROUGHPUT]].rename(columns={THROUGHPUT: "tn"})
    table = many.merge(one, on=keys)
    table["gpus"] = table["gpus"].astype(int)
    table["efficiency"] = table["tn"] / (table["gpus"] * table["t1"])
    return table.sort_values(["global_batch", "gpus"]).reset_index(drop=True)


def scaling_efficiency(train: pd.DataFrame, backend: str) -> Finding:
    table = scaling_table(train)
    if table.empty:
        return _not_measured("scaling", f"Multi-GPU scaling on {backend}",
                             "needs finished 1-GPU and N-GPU cases at the same batch", backend)
    values: dict[str, Any] = {}
    parts = []
    for batch, group in table.groupby("global_batch", sort=True):
        cells = []
        for gpus, by_n in group.groupby("gpus", sort=True):
            efficiency = float(by_n["efficiency"].median())
            values[f"batch={int(batch)}/gpus={int(gpus)}"] = efficiency
            cells.append(f"{int(gpus)} GPUs {efficiency:.0%}")
        parts.append(f"batch {int(batch)}: " + ", ".join(cells))
    simulated = ok_train(train)["simulated"].map(is_true).any()
    text = (f"Multi-GPU scaling efficiency on {backend}, T_N / (N·T_1), median over precision × "
            f"{compiler(backend)} (the global "
            "batch is fixed, so each replica's share shrinks as N grows) — " + "; ".join(parts) + "."
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
        reason = naive.loc[naive["status"] == "failed", "reason"].dropna()
        parts.append(f"failed in {values['failed']} of {values['n']} settings"
                     + (f" — {reason.iloc[0]}" if len(reason) else ""))
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
                   + (f": {reason.iloc[0]}." if len(reason) else "."), {"not_on_cpu": 0}, backend)


def train_findings(train: pd.DataFrame) -> list[Finding]:
    if train.empty:
        return [_not_measured("train", "Training throughput", "the train suite did not run")]
    findings: list[Finding] = []
    across = fastest_backend(train)
    if across is not None:
        findings.append(across)
    for backend, group in by_backend(train):
        findings += [best_configuration(group, backend), xla_speedup(group, backend),
                     *mixed_precision_speedups(group, backend), scaling_efficiency(group, backend),
                     gpu_starvation(group, backend)]
    return findings


def cpu_predict_findings(cpu: pd.DataFrame) -> list[Finding]:
    if cpu.empty:
        return [_not_measured("cpu_predict", "CPU prediction after GPU training", "the cpu_predict suite did not run")]
    findings: list[Finding] = []
    for backend, group in by_backend(cpu):
        findings += [cheapest_cpu_workaround(group, backend), naive_outcome(group, backend),
                     strategy_placement(group, backend)]
    return findings
