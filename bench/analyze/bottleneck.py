"""Where the time goes: the best Keras configuration per batch and precision, its native ratio, NVML, and
a plain sentence naming the bottleneck — all derived from finished case records (dicts), no framework.

For each one-GPU (backend, global_batch, precision) cell, over every input, steps_per_execution and
jit_compile value measured there:

- ``best``: the fastest ``ok`` Keras case (median samples/s) and what it fed;
- ``native_ratio``: best / the backend's native ``step`` loop (below 1: Keras is slower by that factor) at the same batch and precision (the native
  loop keeps its data on the device and dispatches one compiled step per step);
- ``utilization_pct``: NVML's kernel-busy share over the best case's timed rounds (and the native loop's);
- ``device_input_gain``: the best ``device`` case / the best host-fed case (numpy, numpy_uint8, tf_data,
  tf_data_prefetch) at the same steps_per_execution and jit_compile (the best case's, else spe 1) — how
  much the host input path costs;
- ``spe_gain``: within the best case's input and jit_compile, the best steps_per_execution > 1 / spe = 1 —
  how much per-call work (callbacks, and on TensorFlow the dispatches themselves) costs.

- ``host_us_per_step`` / ``wall_us_per_step`` / ``host_share``: the best case's host CPU per step (its fit
  thread's ``time.thread_time``, :mod:`bench.analyze.host_cost`) beside its wall time per step, and
  ``device_us_per_step``: the JAX ``epoch_scan`` native loop's wall time per step at the same batch and
  precision (one dispatch per round: the device's own cost of a step).

The bottleneck, in this order (thresholds below): Keras near the native loop with the GPU busy (or, with no
GPU sampled, a fit thread that waits) → **the device**; the fit thread busy for at least ``HOST_BOUND`` of
the wall step → **the host (Python and dispatch)**, measured, on any machine; near the native loop with the
GPU idle → **per-step dispatch** (the native loop waits on the host too); device input much faster than
host input → **the host input path**; steps_per_execution helps → **per-step dispatch**; GPU busy though
Keras is far from native → **the device** (Keras' step does more device work); with no GPU sampled and a fit
thread busy less than ``HOST_WAITS`` of the step → **the device** (the gap is compute, not dispatch);
otherwise the gap that remains with the data already on the device → **per-step dispatch**. Where both are known, every sentence
then compares the host's µs per step with the device's and says which is larger. Each sentence quotes the
numbers it rests on.

Rows are per [train] environment too (another Keras beside this one, :mod:`bench.analyze.host_cost`): the
best configuration is chosen within one Keras, never across two.

The report's headline lines come from :func:`best_configurations` and :func:`mixed_precision_speedups`:
both pick the best configuration over the input path (and spe, jit_compile) and name it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from bench.analyze.host_cost import DEFAULT_ENVIRONMENT, environment, keras_label, native_per_step, per_step
from bench.analyze.paired import best_comparisons, case_value, paired

HOST_INPUTS = ("numpy", "numpy_uint8", "tf_data", "tf_data_prefetch")
NEAR_NATIVE = 0.8  # Keras within 20 % of the hand-written loop
BUSY_PCT = 70.0  # NVML kernel-busy share above which the GPU, not the host, sets the pace
INPUT_GAIN = 1.2  # device input this much faster than host input: the host input path costs
SPE_GAIN = 1.1  # steps_per_execution this much faster: per-call work costs
# The fit thread busy this share of the wall step: it hardly ever waits, so its own Python and dispatch work
# set the pace (thread CPU time is not wall time: a share this high leaves no room for waiting on a device).
HOST_BOUND = 0.9
HOST = "host (Python and dispatch)"
HOST_WAITS = 0.5  # a fit thread busy less than this share of the step mostly waits: its dispatch is not the gap

Case = Mapping[str, Any]


def median_sps(case: Case | None) -> float | None:
    """The case's samples/s as every ranking here uses it (bench.analyze.paired.case_value: the geometric mean
    of its process values), so the best case is the same one wherever it is named."""
    return case_value(case)


def _interval(prefix: str, a: Case | None, b: Case | None) -> dict[str, Any]:
    """``<prefix>_ci_low``, ``_ci_high``, ``_pairs``, ``_verdict`` for a / b paired by pass (bench.analyze.paired)."""
    if a is None or b is None:
        return {f"{prefix}_ci_low": None, f"{prefix}_ci_high": None, f"{prefix}_pairs": 0,
                f"{prefix}_verdict": "no interval"}
    found = paired(a, b)
    return {f"{prefix}_ci_low": found["ci_low"], f"{prefix}_ci_high": found["ci_high"],
            f"{prefix}_pairs": found["pairs"], f"{prefix}_verdict": found["verdict"]}


def _with_interval(value: float, row: Mapping[str, Any], prefix: str) -> str:
    low, high = row.get(f"{prefix}_ci_low"), row.get(f"{prefix}_ci_high")
    return f"{value:.2f}× [{low:.2f}, {high:.2f}]" if low is not None and high is not None else f"{value:.2f}×"


def utilization_pct(case: Case | None) -> float | None:
    """NVML mean kernel-busy % over the case's timed rounds, or None (no GPU sampled, unreliable kept)."""
    if case is None:
        return None
    gpu = (case.get("metrics") or {}).get("gpu_metrics") or {}
    value = (gpu.get("aggregate") or {}).get("utilization_pct_mean")
    return float(value) if isinstance(value, (int, float)) else None


def _ok_train(cases: Iterable[Case], gpus: int | None = 1) -> list[Case]:
    return [c for c in cases if c.get("suite") == "train" and c.get("status") == "ok"
            and (gpus is None or c["params"].get("gpus") == gpus) and median_sps(c) is not None]


def _natives(cases: Iterable[Case]) -> dict[tuple[str, int, str], Case]:
    return {(c["params"]["backend"], c["params"]["global_batch"], c["params"]["precision"]): c
            for c in cases if c.get("suite") == "native" and c.get("status") == "ok"
            and c["params"].get("variant") == "step" and median_sps(c) is not None}


def _best(cases: Iterable[Case]) -> Case | None:
    return max(cases, key=lambda c: median_sps(c) or 0.0, default=None)


def _input(case: Case) -> str:
    # Records from before the input axis fed a tf.data pipeline or a cycling PyDataset: neither value here.
    return str(case["params"].get("input") or "unrecorded")


def _spe(case: Case) -> int:
    return int(case["params"].get("steps_per_execution", 1))


def describe_config(case: Case) -> str:
    """``input device, steps_per_execution 32, jit_compile true`` (what the case ran, in words)."""
    p, m = case["params"], case.get("metrics") or {}
    jit = p.get("jit_compile")
    jit_text = "auto" if jit == "auto" else str(bool(jit)).lower()
    resolved = m.get("jit_compile_resolved")
    if jit == "auto" and isinstance(resolved, bool):
        jit_text += f" (XLA {'on' if resolved else 'off'})"
    return f"input {_input(case)}, steps_per_execution {_spe(case)}, jit_compile {jit_text}"


def rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M samples/s"
    if value >= 1e4:
        return f"{value / 1e3:.1f} k samples/s"
    return f"{value:,.0f} samples/s"


def where_the_time_goes(cases: Iterable[Case]) -> list[dict[str, Any]]:
    """One row per one-GPU (backend, global_batch, precision, environment) cell with an ``ok`` train case."""
    cases = list(cases)
    natives = _natives(cases)
    envs = {name: i for i, name in enumerate(dict.fromkeys(environment(c) for c in cases))}
    cells: dict[tuple[str, int, str, str], list[Case]] = {}
    for case in _ok_train(cases):
        p = case["params"]
        cells.setdefault((p["backend"], p["global_batch"], p["precision"], environment(case)), []).append(case)
    rows = []
    for key in sorted(cells, key=lambda k: (k[0], k[1], k[2], envs[k[3]])):
        group = cells[key]
        best = _best(group)
        native = natives.get(key[:3])
        best_sps, native_sps = median_sps(best), median_sps(native)
        by_input = {}
        for value in dict.fromkeys(_input(c) for c in group):
            top = _best(c for c in group if _input(c) == value)
            by_input[value] = {"samples_per_second": median_sps(top), "case_id": top["case_id"]}
        device, host = _input_pair(group, best)
        same = [c for c in group if _input(c) == _input(best) and c["params"].get("jit_compile") == best["params"].get("jit_compile")]
        spe_one = _best(c for c in same if _spe(c) == 1)
        spe_many = _best(c for c in same if _spe(c) > 1)
        row = {
            "backend": key[0], "global_batch": key[1], "precision": key[2],
            "cases": len(group),
            "best_case_id": best["case_id"], "best_input": _input(best), "best_steps_per_execution": _spe(best),
            "best_jit_compile": best["params"].get("jit_compile"),
            "best_jit_compile_resolved": (best.get("metrics") or {}).get("jit_compile_resolved"),
            "best_config": describe_config(best),
            "best_samples_per_second": best_sps,
            "utilization_pct": utilization_pct(best),
            "native_case_id": native["case_id"] if native else None,
            "native_samples_per_second": native_sps,
            "native_utilization_pct": utilization_pct(native),
            "native_ratio": best_sps / native_sps if native_sps else None,
            "by_input": by_input,
            "host_input_best": _input(host) if host else None,
            "device_input_gain": (median_sps(device) / median_sps(host)) if device and host else None,
            "spe_best": _spe(spe_many) if spe_many else None,
            "spe_gain": (median_sps(spe_many) / median_sps(spe_one)) if spe_one and spe_many else None,
            **_interval("native_ratio", best, native),
            **_interval("device_input_gain", device, host),
            **_interval("spe_gain", spe_many, spe_one),
            "environment": key[3], "keras_version": (best.get("metrics") or {}).get("keras_version"),
            **per_step(best),
            **{k: v for k, v in native_per_step(cases, *key[:3]).items() if k != "native_case_id"},
        }
        row["bottleneck"], row["sentence"] = _verdict(row)
        rows.append(row)
    return rows


def _input_pair(group: list[Case], best: Case) -> tuple[Case | None, Case | None]:
    """The fastest device case and the fastest host-fed case at one steps_per_execution and jit_compile —
    the best case's if both inputs were measured there, else spe 1 — so the pair differs only in input."""
    def setting(case: Case) -> tuple[int, str]:
        return _spe(case), repr(case["params"].get("jit_compile"))

    for wanted in (setting(best), None):
        pool = [c for c in group if (_spe(c) == 1 if wanted is None else setting(c) == wanted)]
        device = _best(c for c in pool if _input(c) == "device")
        host = _best(c for c in pool if _input(c) in HOST_INPUTS)
        if device is not None and host is not None:
            return device, host
    return None, None


def _busy(util: float | None) -> str:
    return f"GPU busy {util:.0f} %" if util is not None else "no GPU sampled"


def _host_text(row: Mapping[str, Any]) -> str:
    """``; host CPU 147 µs per step against the device's 20 µs (native epoch_scan): the host's is larger``."""
    host, device = row.get("host_us_per_step"), row.get("device_us_per_step")
    if host is None or device is None:
        return ""
    larger = "the host's is larger" if host > device else "the device's is larger"
    return f"; host CPU {host:,.0f} µs per step against the device's {device:,.0f} µs (native epoch_scan): {larger}"


def _verdict(row: Mapping[str, Any]) -> tuple[str | None, str]:
    ratio, util = row["native_ratio"], row["utilization_pct"]
    gain, spe_gain = row["device_input_gain"], row["spe_gain"]
    share, host, wall = row.get("host_share"), row.get("host_us_per_step"), row.get("wall_us_per_step")
    host_bound = share is not None and share >= HOST_BOUND
    env = row.get("environment") or DEFAULT_ENVIRONMENT
    where = f"{row['backend']}, batch {row['global_batch']}, {row['precision']}"
    if env != DEFAULT_ENVIRONMENT:
        where += f", environment {env} ({keras_label(row.get('keras_version'))})"
    best = f"the best Keras configuration ({row['best_config']}) runs {rate(row['best_samples_per_second'])}"
    vs = f", native ratio {_with_interval(ratio, row, 'native_ratio')}" if ratio is not None else ""
    best_text = f"{best}{vs}, {_busy(util)}"
    gain_text = (f"; device-resident input runs {_with_interval(gain, row, 'device_input_gain')} the best host-fed "
                 f"input ({row['host_input_best']})" if gain is not None else "")
    spe_text = (f"; steps_per_execution {row['spe_best']} runs {_with_interval(spe_gain, row, 'spe_gain')} "
                "steps_per_execution 1" if spe_gain is not None else "")
    # Every sentence but the host's own carries the host-vs-device comparison where both are known.
    input_text = gain_text + _host_text(row)
    if ratio is not None and ratio >= NEAR_NATIVE and ((util is not None and util >= BUSY_PCT)
                                                       or (util is None and not host_bound)):
        return "device", f"{where}: the device — {best_text}{input_text}{spe_text}."
    if host_bound:
        device = row.get("device_us_per_step")
        versus = (f"; the device needs {device:,.0f} µs per step (native epoch_scan), so the host's is the larger"
                  if device is not None and host > device else
                  f"; the device needs {device:,.0f} µs per step (native epoch_scan), more than the host"
                  if device is not None else "")
        return HOST, (f"{where}: the host (Python and dispatch) — the fit thread spends {host:,.0f} µs of CPU per "
                      f"step, {100 * share:.0f} % of the {wall:,.0f} µs wall step, so it hardly ever waits for the "
                      f"device{versus}; {best_text}{gain_text}{spe_text}.")
    if ratio is not None and ratio >= NEAR_NATIVE:
        native_util = row["native_utilization_pct"]
        return "per-step dispatch", (f"{where}: per-step dispatch — {best_text}: Keras is close to the native loop, "
                                     f"but both leave the GPU idle between steps (native loop: "
                                     f"{_busy(native_util)}){input_text}{spe_text}.")
    if gain is not None and gain >= INPUT_GAIN and row["device_input_gain_verdict"] != "no measurable difference":
        rest = ""
        if row["best_input"] == "device" and ratio is not None:
            rest = "; what remains with the data on the device is per-step dispatch"
        return "host input path", f"{where}: the host input path — {input_text[2:]}; {best_text}{spe_text}{rest}."
    if spe_gain is not None and spe_gain >= SPE_GAIN and row["spe_gain_verdict"] != "no measurable difference":
        return "per-step dispatch", f"{where}: per-step dispatch — {spe_text[2:]}; {best_text}{input_text}."
    if util is not None and util >= BUSY_PCT:
        return "device", (f"{where}: the device — {best_text}: the GPU is busy, so Keras' step does more device "
                          f"work than the native loop's{input_text}{spe_text}.")
    if ratio is not None and util is None and share is not None and share < HOST_WAITS:
        # No GPU sampled (a CPU box): a fit thread that waits most of the step is not what holds Keras back.
        return "device", (f"{where}: the device — {best_text}: the fit thread is busy only {100 * share:.0f} % of "
                          f"the {wall:,.0f} µs wall step, so the gap to the native loop is compute in Keras' step, "
                          f"not its dispatch{input_text}{spe_text}.")
    if ratio is not None:
        tried = "neither device input nor steps_per_execution closes the gap" if (gain or spe_gain) else \
            "measure input = device and steps_per_execution > 1 to tell the host input path from dispatch"
        return "per-step dispatch", (f"{where}: per-step dispatch — {best_text}; {tried}"
                                     f"{input_text}{spe_text}.")
    return None, (f"{where}: not enough to tell — {best_text}; add the native suite for the ratio"
                  f"{input_text}{spe_text}.")


def best_configurations(cases: Iterable[Case]) -> list[dict[str, Any]]:
    """Per backend, the fastest ``ok`` train case over every axis (GPU count included), named in full."""
    cases = list(cases)
    natives = _natives(cases)
    by_backend: dict[str, list[Case]] = {}
    for case in _ok_train(cases, gpus=None):
        by_backend.setdefault(case["params"]["backend"], []).append(case)
    rows = []
    for backend, group in by_backend.items():
        best = _best(group)
        p = best["params"]
        native = natives.get((backend, p["global_batch"], p["precision"])) if p.get("gpus") == 1 else None
        ratio = median_sps(best) / median_sps(native) if native else None
        gpus = int(p["gpus"])
        versus = next(iter(best_comparisons(group)), None)
        verdict = versus["verdict"] if versus else "only case"
        name = (f"{gpus} GPU{'s' if gpus != 1 else ''}, global batch {p['global_batch']}, {p['precision']}, "
                f"{describe_config(best)}")
        if verdict == "best":
            lead = f"Best configuration on {backend}: {name}"
        else:  # tied within the interval, or one process each: the fastest measured, not "best"
            lead = f"Fastest measured on {backend}: {name}"
        # The runner-up's judgement (ratio, interval) is added where the sentence is shown (bench.analyze.findings).
        sentence = (f"{lead} — {rate(median_sps(best))}"
                    f"{f' (native ratio {ratio:.2f})' if ratio is not None else ''}.")
        rows.append({"backend": backend, "case_id": best["case_id"], "gpus": gpus,
                     "global_batch": p["global_batch"], "precision": p["precision"], "input": _input(best),
                     "steps_per_execution": _spe(best), "jit_compile": p.get("jit_compile"),
                     "samples_per_second": median_sps(best), "native_ratio": ratio,
                     "utilization_pct": utilization_pct(best), "verdict": verdict,
                     "runner_up_case_id": versus["b_case_id"] if versus else None,
                     "runner_up_ratio": versus["ratio"] if versus else None,
                     "ci_low": versus["ci_low"] if versus else None, "ci_high": versus["ci_high"] if versus else None,
                     "pairs": versus["pairs"] if versus else 0, "sentence": sentence})
    return rows


def mixed_precision_speedups(cases: Iterable[Case]) -> list[dict[str, Any]]:
    """Per backend, GPU count, batch and mixed policy: best mixed / best float32 Keras configuration (each
    the best over input, steps_per_execution and jit_compile), beside the native loop's own speed-up."""
    cases = list(cases)
    natives = _natives(cases)
    cells: dict[tuple[str, int, int, str], Case] = {}
    for case in _ok_train(cases, gpus=None):
        p = case["params"]
        key = (p["backend"], p["gpus"], p["global_batch"], p["precision"])
        if median_sps(case) > (median_sps(cells.get(key)) or 0.0):
            cells[key] = case
    rows = []
    for (backend, gpus, batch, policy), mixed in sorted(cells.items(), key=lambda kv: kv[0]):
        base = cells.get((backend, gpus, batch, "float32"))
        if not policy.startswith("mixed") or base is None:
            continue
        native_mixed, native_base = natives.get((backend, batch, policy)), natives.get((backend, batch, "float32"))
        native_speedup = (median_sps(native_mixed) / median_sps(native_base)
                          if gpus == 1 and native_mixed and native_base else None)
        speedup = median_sps(mixed) / median_sps(base)
        same = _input(mixed) == _input(base) and _spe(mixed) == _spe(base)
        configs = (f"both {describe_config(mixed)}" if same and describe_config(mixed) == describe_config(base)
                   else f"float32: {describe_config(base)}; {policy}: {describe_config(mixed)}")
        native_text = f"; the native loop gains {native_speedup:.2f}×" if native_speedup is not None else ""
        row = {"backend": backend, "gpus": gpus, "global_batch": batch, "policy": policy,
               "speedup": speedup, "native_speedup": native_speedup,
               "mixed_case_id": mixed["case_id"], "float32_case_id": base["case_id"],
               "mixed_input": _input(mixed), "float32_input": _input(base),
               **_interval("speedup", mixed, base), **_interval("native_speedup", native_mixed, native_base)}
        verb = {"faster": "speeds up", "slower": "slows down", "no measurable difference":
                "makes no measurable difference to", "no interval": "changes"}[row["speedup_verdict"]]
        row["sentence"] = (f"{policy} {verb} the best Keras configuration on {backend}: "
                           f"{_with_interval(speedup, row, 'speedup')} at batch {batch}"
                           f"{f', {gpus} GPUs' if gpus != 1 else ''} ({configs}){native_text}.")
        rows.append(row)
    return rows


def mixed_precision_summary(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """One headline line per backend and policy: the median speed-up over batches, each batch named."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["backend"], row["policy"]), []).append(row)
    lines = []
    for (backend, policy), group in groups.items():
        median = statistics.median(r["speedup"] for r in group)
        cells = ", ".join(_speedup_cell(r) for r in group)
        verdicts = [r.get("speedup_verdict", "no interval") for r in group]
        if all(v == "no interval" for v in verdicts):
            judged = "no intervals (one process each)"
        elif all(v == verdicts[0] for v in verdicts):
            judged = {"faster": "faster in every cell", "slower": "slower in every cell",
                      "no measurable difference": "no measurable difference in any cell"}[verdicts[0]]
        else:
            judged = ", ".join(f"{verdicts.count(v)} of {len(verdicts)} cells {v}" for v in dict.fromkeys(verdicts))
        lines.append(f"Mixed precision ({policy} vs float32, best input path each) on {backend}: median {median:.2f}× "
                     f"over {len(group)} cell(s), {judged}: {cells}.")
    return lines


def _speedup_cell(row: Mapping[str, Any]) -> str:
    where = f"batch {row['global_batch']}" + (f" ({row['gpus']} GPUs)" if row["gpus"] != 1 else "")
    native = "" if row["native_speedup"] is None else f"; native {row['native_speedup']:.2f}×"
    return f"{where} {_with_interval(row['speedup'], row, 'speedup')} (input {row['mixed_input']}{native})"


def derive_tables(cases: Iterable[Case]) -> dict[str, Any]:
    """What a run document's ``derived`` block stores for the "where the time goes" section."""
    cases = list(cases)
    # The headlines are about the Keras the tool runs in; another environment's rows are where_the_time_goes'.
    default = [c for c in cases if environment(c) == DEFAULT_ENVIRONMENT]
    mixed = mixed_precision_speedups(default)
    return {"where_the_time_goes": where_the_time_goes(cases),
            "best_configurations": best_configurations(default),
            "mixed_precision_speedups": mixed,
            "mixed_precision_summary": mixed_precision_summary(mixed)}
