"""Two kinds of overhead, as tables and headline sentences: the framework's (Keras ``fit`` against the
``native`` suite's hand-written loop) and the NVML monitor's own (monitored against unmonitored rounds).

Computed when the run is finalised and stored in ``derived`` (``native_table``, ``monitor_overhead`` and
their sentences in ``findings``). Keras-vs-native ratios use the rule of
``bench.analyze.derive.attach_native_ratios`` (the same backend's ``step`` case at the same global batch and
precision; JAX's ``epoch_scan`` as the ceiling for every backend), on the cases' medians.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.analyze.findings import NOT_MEASURED, THROUGHPUT, Finding, by_backend, ok_train, spread
from bench.analyze.frames import compiler

STEP, CEILING, CEILING_BACKEND = "step", "epoch_scan", "jax"
# What the native `step` variant is on each backend (docs/results.md, metrics for native).
NATIVE_STEP = {"jax": "hand-written jax.jit step", "tensorflow": "hand-written tf.function(jit_compile=True) step",
               "torch": "hand-written eager torch step"}
# The goal for the monitor's cost on a GPU; only rounds steadier than this can resolve it.
OVERHEAD_TARGET_PCT = 1.0
UTIL = "gpu_metrics.aggregate.utilization_pct_mean"
KEYS = ["backend", "global_batch", "precision"]
NATIVE_TABLE_COLUMNS = [
    *KEYS, "xla", "jit_label", "keras_case_id", "keras", "keras_q1", "keras_q3", "keras_util", "native_case_id", "native",
    "native_util", "ratio", "ceiling_case_id", "ceiling", "ceiling_util", "ratio_ceiling",
]


def ok_native(native: pd.DataFrame) -> pd.DataFrame:
    native = native.assign(**{THROUGHPUT: pd.to_numeric(native[THROUGHPUT], errors="coerce")})
    return native[(native["status"] == "ok") & native[THROUGHPUT].notna() & (native[THROUGHPUT] > 0)]


def _util(frame: pd.DataFrame) -> pd.Series:
    util = pd.to_numeric(frame[UTIL], errors="coerce")
    return util.where(frame["gpu_metrics.status"] == "ok")


def _side(native: pd.DataFrame, variant: str, prefix: str, keys: list[str]) -> pd.DataFrame:
    side = native[native["variant"] == variant]
    if variant == CEILING:
        side = side[side["backend"] == CEILING_BACKEND]
    side = pd.DataFrame({**{k: side[k] for k in keys}, f"{prefix}_case_id": side["case_id"],
                         prefix: side[THROUGHPUT], f"{prefix}_util": _util(side)})
    return side.drop_duplicates(keys).astype({"global_batch": "int64"})


def native_table(train: pd.DataFrame, native: pd.DataFrame) -> pd.DataFrame:
    """One row per one-GPU Keras case (XLA on and off are separate rows) beside the native step of its
    backend and the JAX epoch_scan ceiling at its global batch and precision; native cells without a
    finished Keras case get a row with the Keras side blank. ``ratio`` = Keras median / native median."""
    native = ok_native(native)
    if native.empty:
        return pd.DataFrame(columns=NATIVE_TABLE_COLUMNS)
    keras = ok_train(train)
    keras = keras[keras["gpus"] == 1]
    keras = pd.DataFrame({
        **{k: keras[k] for k in KEYS}, "xla": keras["jit_resolved_label"],
        "jit_label": keras["jit_label"], "keras_case_id": keras["case_id"],
        "keras": keras[THROUGHPUT], "keras_q1": pd.to_numeric(keras["samples_per_second.q1"], errors="coerce"),
        "keras_q3": pd.to_numeric(keras["samples_per_second.q3"], errors="coerce"), "keras_util": _util(keras),
    }).astype({"global_batch": "int64"})
    step = _side(native, STEP, "native", KEYS)
    table = keras.merge(step, on=KEYS, how="outer")
    table = table.merge(_side(native, CEILING, "ceiling", KEYS[1:]), on=KEYS[1:], how="left")
    table = table[table["native"].notna() | table["ceiling"].notna()]
    table["ratio"] = table["keras"] / table["native"]
    table["ratio_ceiling"] = table["keras"] / table["ceiling"]
    order = {b: i for i, b in enumerate(dict.fromkeys([*train["backend"].dropna(), *native["backend"].dropna()]))}
    table = table.assign(order=table["backend"].map(order))
    table = table.sort_values(["order", "global_batch", "precision", "xla"], kind="stable", na_position="last")
    return table[NATIVE_TABLE_COLUMNS].reset_index(drop=True)


def _pct(fraction: float) -> str:
    """Two significant digits, as a percentage: 0.116 -> "12 %", 0.0474 -> "4.7 %", 0.0025 -> "0.25 %"."""
    value = fraction * 100
    return f"{value:.0f} %" if abs(value) >= 10 else f"{value:.2g} %"


def _range(values: pd.Series, unit: str = "") -> str:
    """"lo–hi" (one value when both print the same), as percentages of fractions when ``unit`` is "%"."""
    show = (lambda v: _pct(v)[:-2]) if unit == "%" else (lambda v: f"{v:.0f}")
    lo, hi = show(float(values.min())), show(float(values.max()))
    text = lo if lo == hi else f"{lo}–{hi}"
    return f"{text} %" if unit == "%" else text


def _times(factor: float) -> str:
    return f"{factor:,.0f}×" if factor >= 10 else f"{factor:.1f}×"


def _who_is_faster(ratios: pd.Series) -> str:
    """Keras / native ratios in words: which side was faster, by how much (Keras can win on a CPU)."""
    lo, hi = float(ratios.min()), float(ratios.max())
    if hi < 1:
        span = _times(1 / lo) if lo == hi else f"{_times(1 / hi)[:-1]}–{_times(1 / lo)}"
        return f"the native loop was {span} faster"
    if lo >= 1:
        span = _times(hi) if lo == hi else f"{_times(lo)[:-1]}–{_times(hi)}"
        return f"Keras was {span} faster than the native loop"
    return f"from the native loop {_times(1 / lo)} faster to Keras {_times(hi)} faster"


def _batches(rows: pd.DataFrame) -> str:
    batches = sorted(int(b) for b in rows["global_batch"].unique())
    return f"batch {batches[0]}" if len(batches) == 1 else f"batch {batches[0]}–{batches[-1]}"


def _xla_groups(rows: pd.DataFrame, backend: str) -> list[tuple[str, str, pd.DataFrame]]:
    """(values key, words, rows) for jit_compile on, off and unknown, in that order."""
    on = rows["xla"].astype(str).str.endswith("on")
    off = rows["xla"].astype(str).str.endswith("off")
    name = compiler(backend)
    return [(f"jit_{label}", f"{name} {label}", rows[mask])
            for label, mask in (("on", on), ("off", off), ("unknown", ~(on | off))) if mask.any()]


def _busy(groups: list[tuple[str, str, pd.DataFrame]], rows: pd.DataFrame) -> str:
    keras = [(label, group["keras_util"].dropna()) for _, label, group in groups]
    keras = [f"{_range(util)} % with {label}" for label, util in keras if len(util)]
    step, ceiling = rows["native_util"].dropna(), rows["ceiling_util"].dropna()
    if not keras or step.empty:
        return ""
    rest = f" ({'; '.join(keras[1:])})" if len(keras) > 1 else ""
    text = f" NVML: the GPU was busy {keras[0]}{rest} under Keras, vs {_range(step)} % for the native step"
    return text + (f" and {_range(ceiling)} % for epoch_scan." if len(ceiling) else ".")


def native_finding(table: pd.DataFrame, backend: str) -> Finding:
    what = NATIVE_STEP.get(backend, "hand-written native step")
    rows = table[(table["backend"] == backend) & table["ratio"].notna()]
    if rows.empty:
        return Finding("native", False, f"Framework overhead on {backend}: {NOT_MEASURED} (no finished one-GPU "
                       "Keras case matches a finished native step case).", backend=backend)
    groups = _xla_groups(rows, backend)
    parts, values = [], {"backend": backend}
    for i, (key, label, group) in enumerate(groups):
        s = spread(group["ratio"])
        values[key] = s
        of = f" of a {what}'s samples/s" if i == 0 else ""
        if s["n"] == 1:
            parts.append(f"{_pct(s['median'])}{of} with {label} ({_batches(group)}: {_who_is_faster(group['ratio'])})")
        else:
            parts.append(f"{_range(group['ratio'], '%')}{of} with {label} (median {_pct(s['median'])}, {s['n']} "
                         f"cases, {_batches(group)}: {_who_is_faster(group['ratio'])})")
    text = f"Keras fit on {backend} reached {parts[0]}" + (f", and {'; '.join(parts[1:])}." if len(parts) > 1 else ".")
    _, first_label, first = groups[0]
    ceiling = first["ratio_ceiling"].dropna()
    if len(ceiling):
        values["ceiling"] = spread(ceiling)
        text += f" Against the JAX epoch_scan ceiling ({first_label}): {_range(ceiling, '%')}."
    text += _busy(groups, rows)
    return Finding("native", True, text, values, backend)


def native_findings(train: pd.DataFrame, native: pd.DataFrame) -> list[Finding]:
    if native.empty:
        return [Finding("native", False, f"Framework overhead (Keras vs a native loop): {NOT_MEASURED} (the "
                        "native suite did not run).")]
    table = native_table(train, native)
    return [native_finding(table, backend) for backend, _ in by_backend(native)]


# --------------------------------------------------------------------------- the monitor's own cost


def overhead_table(train: pd.DataFrame, native: pd.DataFrame) -> pd.DataFrame:
    """Train and native cases with NVML data: utilisation, the rounds' CV with the monitor on and off, and
    ``overhead_pct`` (positive = monitored rounds slower); ``noise_pct`` is the larger of the two CVs, and
    an overhead within it cannot be told from round-to-round noise."""
    frames = []
    for suite, frame in (("train", train), ("native", native)):
        if frame.empty:
            continue
        ok = frame[(frame["status"] == "ok") & (frame["gpu_metrics.status"] == "ok")]
        frames.append(pd.DataFrame({
            "suite": suite, "case_id": ok["case_id"], "backend": ok["backend"],
            "util": pd.to_numeric(ok[UTIL], errors="coerce"),
            "util_p95": pd.to_numeric(ok["gpu_metrics.aggregate.utilization_pct_p95"], errors="coerce"),
            "window_s": pd.to_numeric(ok["gpu_metrics.window_s"], errors="coerce"),
            "reliable": ok["gpu_metrics.reliable"],
            "cv_pct": 100 * pd.to_numeric(ok["samples_per_second.cv"], errors="coerce"),
            "off_cv_pct": 100 * pd.to_numeric(ok["monitor_overhead.off_samples_per_second.cv"], errors="coerce"),
            "overhead_pct": pd.to_numeric(ok["monitor_overhead.overhead_pct"], errors="coerce"),
        }))
    if not frames:
        return pd.DataFrame(columns=["suite", "case_id", "backend", "util", "util_p95", "window_s", "reliable",
                                     "cv_pct", "off_cv_pct", "overhead_pct", "noise_pct", "verdict"])
    table = pd.concat(frames, ignore_index=True)
    table["noise_pct"] = table[["cv_pct", "off_cv_pct"]].max(axis=1)
    table["verdict"] = [_verdict(o, n) for o, n in zip(table["overhead_pct"], table["noise_pct"], strict=True)]
    return table


def _verdict(overhead: float, noise: float) -> Any:
    if pd.isna(overhead):
        return pd.NA
    if pd.notna(noise) and abs(overhead) <= noise:
        return "within noise"
    # A monitor cannot make training faster: a negative value beyond the CV is drift between the two sets.
    return "above noise" if overhead > 0 else "negative: noise"


def monitor_overhead_finding(table: pd.DataFrame) -> Finding:
    measured = table[table["overhead_pct"].notna()]
    if measured.empty:
        return Finding("monitor_overhead", False, f"NVML monitor overhead: {NOT_MEASURED} (no case carries "
                       "monitor_overhead; it needs [nvml] measure_overhead = true and a real monitor).")
    overhead, noise = measured["overhead_pct"], measured["noise_pct"]
    within = measured[measured["verdict"] == "within noise"]
    negative = measured[measured["verdict"] == "negative: noise"]
    steady = measured[noise < OVERHEAD_TARGET_PCT]
    values: dict[str, Any] = {**spread(overhead), "median_noise_pct": float(noise.median()),
                              "within_noise": int(len(within)), "negative_beyond_noise": int(len(negative)),
                              "steady": int(len(steady))}
    text = (f"NVML monitor overhead (monitored vs as many unmonitored rounds, {len(measured)} cases): median "
            f"{overhead.median():+.2f} % (range {overhead.min():+.1f} to {overhead.max():+.1f} %), against a median "
            f"round-to-round CV of {noise.median():.1f} %. In {len(within)} of {len(measured)} cases it lies within "
            "the rounds' CV, i.e. it is noise, not a measurable cost"
            + (f"; {len(negative)} more are negative beyond it (monitored rounds faster, which a monitor cannot "
               "cause: drift between the two sets of rounds)" if len(negative) else "") + ".")
    if len(steady):
        worst = float(steady["overhead_pct"].abs().max())
        values["steady_max_abs_pct"] = worst
        verdict = "within" if worst <= OVERHEAD_TARGET_PCT else "above"
        text += (f" The {len(steady)} case{'s' if len(steady) != 1 else ''} steady enough to resolve the "
                 f"≤ {OVERHEAD_TARGET_PCT:g} % target (CV below {OVERHEAD_TARGET_PCT:g} %) show "
                 f"{steady['overhead_pct'].min():+.2f} to {steady['overhead_pct'].max():+.2f} %: {verdict} the target.")
    else:
        text += (f" No case had rounds steady enough (CV below {OVERHEAD_TARGET_PCT:g} %) to resolve the "
                 f"≤ {OVERHEAD_TARGET_PCT:g} % target.")
    above = measured[(measured["verdict"] == "above noise") & (overhead > OVERHEAD_TARGET_PCT)]
    if len(above):
        values["above_noise"] = list(above["case_id"])
        cases = "; ".join(f"{r.case_id} {r.overhead_pct:+.1f} % (CV {r.noise_pct:.1f} %)" for r in above.itertuples())
        text += f" Above both the noise and the target: {cases}."
    return Finding("monitor_overhead", True, text, values)
