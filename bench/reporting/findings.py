"""Headline findings: pure functions from the case DataFrames to numbers and one sentence each.

Every speedup is a ratio of medians of *paired* cases (the same cell of the sweep but for one axis), then
summarised over the other axes by the median with its spread (min–max and IQR), so one outlier cell cannot
carry the headline. A finding that the run cannot support says "not measured in this run" and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.reporting.load import is_true

THROUGHPUT = "samples_per_second.median"
STARVED_BELOW_PCT = 50.0
NOT_MEASURED = "not measured in this run"


@dataclass(frozen=True)
class Finding:
    key: str
    measured: bool
    text: str
    values: dict[str, Any] = field(default_factory=dict)


def _not_measured(key: str, what: str, why: str) -> Finding:
    return Finding(key, False, f"{what}: {NOT_MEASURED} ({why}).")


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
    return (f"median {s['median']:.2f}× (min–max {s['min']:.2f}–{s['max']:.2f}×, "
            f"IQR {s['q1']:.2f}–{s['q3']:.2f}×, over {s['n']} pair{'s' if s['n'] != 1 else ''})")


# --------------------------------------------------------------------------- training


def best_configuration(train: pd.DataFrame) -> Finding:
    ok = ok_train(train)
    if ok.empty:
        return _not_measured("best", "Best configuration", "no training case finished")
    row = ok.loc[ok[THROUGHPUT].idxmax()]
    q1, q3 = row["samples_per_second.q1"], row["samples_per_second.q3"]
    iqr = f" (IQR {q1:,.0f}–{q3:,.0f})" if pd.notna(q1) and pd.notna(q3) else ""
    gpus = int(row["gpus"])
    text = (f"Best configuration: {gpus} GPU{'s' if gpus != 1 else ''}, global batch {int(row['global_batch'])}, "
            f"{row['precision']}, XLA {row['jit_resolved_label']} — {_rate(row[THROUGHPUT])}{iqr}.")
    return Finding("best", True, text, {"samples_per_second": float(row[THROUGHPUT]), "case_id": row["case_id"]})


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
    """One row per (backend, gpus, global_batch, jit, policy): ``ratio`` = mixed policy / float32."""
    ok = ok_train(train)
    keys = ["backend", "gpus", "global_batch", "jit"]
    base = ok[ok["precision"] == "float32"][[*keys, THROUGHPUT]].rename(columns={THROUGHPUT: "float32"})
    mixed = ok[ok["precision"].astype(str).str.startswith("mixed")][[*keys, "precision", THROUGHPUT]]
    pairs = mixed.merge(base.drop_duplicates(keys), on=keys).rename(columns={"precision": "policy", THROUGHPUT: "mixed"})
    pairs["ratio"] = pairs["mixed"] / pairs["float32"]
    return pairs[[*keys, "policy", "mixed", "float32", "ratio"]]


def xla_speedup(train: pd.DataFrame) -> Finding:
    ratios = xla_ratios(train)
    if ratios.empty:
        return _not_measured("xla", "XLA speedup", "needs finished cases with XLA on and off that otherwise match")
    s = spread(ratios["ratio"])
    verb = "speeds training up" if s["median"] >= 1 else "slows training down"
    text = f"XLA (jit_compile on vs off) {verb}: {_ratio_text(s)} across GPU count × batch × precision."
    return Finding("xla", True, text, s)


def mixed_precision_speedups(train: pd.DataFrame) -> list[Finding]:
    ratios = mixed_ratios(train)
    if ratios.empty:
        return [_not_measured("mixed", "Mixed-precision speedup",
                              "needs finished float32 and mixed_* cases that otherwise match")]
    findings = []
    for policy, group in ratios.groupby("policy", sort=True):
        s = spread(group["ratio"])
        verb = "speeds training up" if s["median"] >= 1 else "slows training down"
        text = f"Mixed precision ({policy} vs float32) {verb}: {_ratio_text(s)} across GPU count × batch × XLA."
        findings.append(Finding(f"mixed:{policy}", True, text, s))
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


def scaling_efficiency(train: pd.DataFrame) -> Finding:
    table = scaling_table(train)
    if table.empty:
        return _not_measured("scaling", "Multi-GPU scaling", "needs finished 1-GPU and N-GPU cases at the same batch")
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
    text = ("Multi-GPU scaling efficiency T_N / (N·T_1), median over precision × XLA (the global batch is "
            "fixed, so each replica's share shrinks as N grows) — " + "; ".join(parts) + "."
            + (" These replicas were simulated devices, not GPUs." if simulated else ""))
    return Finding("scaling", True, text, values)


def gpu_starvation(train: pd.DataFrame, below_pct: float = STARVED_BELOW_PCT) -> Finding:
    ok = ok_train(train)
    ok = ok.assign(util=pd.to_numeric(ok["gpu_metrics.aggregate.utilization_pct_mean"], errors="coerce"))
    measured = ok[(ok["gpu_metrics.status"] == "ok") & ok["util"].notna()]
    if measured.empty:
        return _not_measured("starved", "GPU utilisation", "no NVML data")
    starved = measured[measured["util"] < below_pct]
    values = {"measured": int(len(measured)), "starved": int(len(starved)),
              "min_util_pct": float(measured["util"].min()), "median_util_pct": float(measured["util"].median())}
    if starved.empty:
        text = (f"The GPUs were kept busy: NVML utilisation at or above {below_pct:.0f}% in all {len(measured)} "
                f"measured cases (median {values['median_util_pct']:.0f}%).")
    else:
        worst = starved.loc[starved["util"].idxmin()]
        text = (f"The GPU was starved (NVML utilisation below {below_pct:.0f}%) in {len(starved)} of "
                f"{len(measured)} measured cases; lowest {worst['util']:.0f}% at {worst['case_id']}. Per-step overhead "
                "(input pipeline, kernel launches, all-reduce) outweighs the work there: try larger per-replica "
                "batches or XLA.")
    return Finding("starved", True, text, values)


# --------------------------------------------------------------------------- CPU prediction


def cpu_method_table(cpu: pd.DataFrame) -> pd.DataFrame:
    """Per method over its finished (status ok) settings: median prepare / first / steady / total seconds."""
    columns = ["prepare_s", "first_predict_s", "steady_s.median", "total_s"]
    numeric = cpu[["method", "status", *columns]].assign(**{c: pd.to_numeric(cpu[c], errors="coerce") for c in columns})
    numeric = numeric[(numeric["status"] == "ok") & numeric["total_s"].notna()].drop(columns="status")
    if numeric.empty:
        return pd.DataFrame(columns=["method", *columns, "settings"])
    table = numeric.groupby("method").median()
    table["settings"] = numeric.groupby("method").size()
    return table.reset_index().sort_values("total_s", kind="stable").reset_index(drop=True)


def cheapest_cpu_workaround(cpu: pd.DataFrame) -> Finding:
    if cpu.empty:
        return _not_measured("cpu_cheapest", "CPU-prediction workarounds", "the cpu_predict suite did not run")
    table = cpu_method_table(cpu)
    table = table[table["method"] != "naive"]
    if table.empty:
        return Finding("cpu_cheapest", True, "No CPU-prediction workaround finished with correct predictions "
                       "on the CPU in this run.", {"method": None})
    best = table.iloc[0]
    others = ", ".join(f"{r.method} {_seconds(r.total_s)}" for r in table.iloc[1:].itertuples())
    text = (f"Cheapest working CPU-prediction workaround: {best['method']} — {_seconds(best['total_s'])} in total "
            f"(prepare {_seconds(best['prepare_s'])} + first call {_seconds(best['first_predict_s'])} + steady call "
            f"{_seconds(best['steady_s.median'])}; median over {int(best['settings'])} setting"
            f"{'s' if best['settings'] != 1 else ''})" + (f"; then {others}." if others else "."))
    return Finding("cpu_cheapest", True, text, {"method": best["method"], "total_s": float(best["total_s"])})


def naive_outcome(cpu: pd.DataFrame) -> Finding:
    naive = cpu[cpu["method"] == "naive"]
    if naive.empty:
        return _not_measured("cpu_naive", "Naive CPU prediction", "the naive method did not run")
    counts = naive["status"].value_counts()
    values = {status: int(counts.get(status, 0)) for status in ("ok", "failed", "wrong", "not_on_cpu", "skipped")}
    values["n"] = int(len(naive))
    lead = "The naive path (predict under tf.device('/CPU:0') after training on the GPU)"
    if values["ok"] == values["n"]:
        total = pd.to_numeric(naive["total_s"], errors="coerce").median()
        return Finding("cpu_naive", True, f"{lead} worked in all {values['n']} settings ({_seconds(total)} in total).",
                       values)
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
    return Finding("cpu_naive", True, f"{lead} " + "; ".join(parts) + ".", values)


def strategy_placement(cpu: pd.DataFrame) -> Finding:
    strategy = cpu[cpu["method"] == "strategy"]
    if strategy.empty:
        return _not_measured("cpu_strategy", "Predicting via a tf.distribute strategy", "the strategy method did not run")
    off_cpu = strategy[strategy["status"] == "not_on_cpu"]
    if len(off_cpu):
        devices = sorted(set(off_cpu["predict_device"].dropna())) or ["a non-CPU device"]
        text = ("Note: building under a tf.distribute strategy does not move prediction to the CPU: its MatMuls "
                f"ran on {', '.join(devices)}.")
        return Finding("cpu_strategy", True, text, {"not_on_cpu": int(len(off_cpu)), "devices": devices})
    ok = strategy[strategy["status"] == "ok"]
    if len(ok):
        return Finding("cpu_strategy", True, "Building under a tf.distribute strategy did place prediction on the "
                       f"CPU in {len(ok)} of {len(strategy)} settings.", {"not_on_cpu": 0})
    reason = strategy["reason"].dropna()
    return Finding("cpu_strategy", True, "The strategy method did not finish"
                   + (f": {reason.iloc[0]}." if len(reason) else "."), {"not_on_cpu": 0})


def train_findings(train: pd.DataFrame) -> list[Finding]:
    if train.empty:
        return [_not_measured("train", "Training throughput", "the train suite did not run")]
    return [best_configuration(train), xla_speedup(train), *mixed_precision_speedups(train),
            scaling_efficiency(train), gpu_starvation(train)]


def cpu_predict_findings(cpu: pd.DataFrame) -> list[Finding]:
    if cpu.empty:
        return [_not_measured("cpu_predict", "CPU prediction after GPU training", "the cpu_predict suite did not run")]
    return [cheapest_cpu_workaround(cpu), naive_outcome(cpu), strategy_placement(cpu)]
