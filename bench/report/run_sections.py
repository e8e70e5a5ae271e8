"""The data of each per-run section: one ``prepare(run, rid)`` function per section, registered in
:mod:`bench.report.page`, drawn by ``templates/sections/<name>.html.j2``.

Each returns a mapping the template reads as ``data``, or :class:`~bench.report.section.Missing` with the
reason the run cannot fill the section (the page then says "Not measured in this run: <why>."). Nothing
here writes HTML: charts come as SVG strings, tables as :class:`~bench.report.tables.Table`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from bench.analyze.limitations import strip_paths
from bench.report import charts, tables
from bench.report.load import RunData, backends, compilers, is_true
from bench.report.section import Figure, Missing

BACKEND_PACKAGES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}


# --------------------------------------------------------------------------- header


def _gpu_summary(environment: dict[str, Any]) -> str:
    gpus = environment.get("gpus") or []
    if not gpus:
        nvml = environment.get("nvml")
        return "no GPU seen by NVML" + (f" (NVML: {nvml})" if nvml and nvml != "ok" else "")
    names: dict[str, int] = {}
    for gpu in gpus:
        names[gpu.get("name", "?")] = names.get(gpu.get("name", "?"), 0) + 1
    return ", ".join(f"{count} × {name}" for name, count in names.items())


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _span(created: Any, finished: Any) -> str | None:
    try:
        span = datetime.fromisoformat(str(finished).replace("Z", "+00:00")) - datetime.fromisoformat(
            str(created).replace("Z", "+00:00"))
    except ValueError:
        return None
    return _duration(span.total_seconds())


def summary(run: RunData, rid: str) -> dict[str, Any]:
    env, config, document = run.environment, run.config, run.document
    packages = env.get("packages") or {}
    shown_backends = []
    for name in backends(run.train, run.native, run.cpu_predict) or ["tensorflow"]:
        versions = [f"{p} {packages[p]}" for p in BACKEND_PACKAGES.get(name, (name,)) if packages.get(p)]
        shown_backends.append({"name": name, "versions": ", ".join(versions)})
    created, finished = document.get("created_utc"), document.get("finished_utc")
    return {
        "created": str(created or "?"), "finished": str(finished) if finished else None,
        "duration": _span(created, finished) if finished else None,
        "incomplete": document.get("complete") is False,
        "gpus": _gpu_summary(env), "env": env, "keras": packages.get("keras") or "—", "backends": shown_backends,
        "commit": str(env["git_commit"])[:12] if env.get("git_commit") else None,
        # Paths say where the tool happened to run, nothing about the numbers; a shared page keeps none.
        "config": {**config, "path": strip_paths(config.get("path"))},
        "config_sha": str(config.get("sha256") or env.get("config_sha256") or "")[:12],
        "data": {**(document.get("data") or {}), "path": strip_paths((document.get("data") or {}).get("path")),
                 "note": strip_paths((document.get("data") or {}).get("note"))},
        "path": run.path.name,
    }


# --------------------------------------------------------------------------- findings


def run_findings(run: RunData) -> list[dict[str, Any]]:
    """``derived.findings``: each headline sentence with its key, backend and numbers."""
    return list(run.derived.get("findings") or [])


def _texts(run: RunData, key: str) -> list[str]:
    return [f["text"] for f in run_findings(run) if f["key"] == key]


def findings(run: RunData, rid: str) -> dict[str, Any]:
    """Each backend's findings under its name (numbers of different frameworks are never pooled); the
    cross-backend comparison first, run-wide ones (the monitor's cost, suites that did not run) last."""
    found = run_findings(run)
    lead = [f for f in found if f["backend"] is None and f["key"] == "backends"]
    tail = [f for f in found if f["backend"] is None and f["key"] != "backends"]
    grouped = {b: [f for f in found if f["backend"] == b] for b in backends(run.train, run.native, run.cpu_predict)}
    grouped = {b: group for b, group in grouped.items() if group}
    return {"lead": lead, "groups": grouped, "tail": tail}


# --------------------------------------------------------------------------- suites


def train(run: RunData, rid: str) -> dict[str, Any] | Missing:
    if run.train.empty:
        return Missing("the train suite did not run")
    jit = compilers(backends(run.train))
    summary, comparisons = run.derived.get("summary") or [], run.derived.get("comparisons") or []
    simulated = (run.derived.get("category") or {}).get("devices") != "real GPU"
    where = " Simulated devices on a CPU: these curves check the suite, they say nothing about GPU speed." \
        if simulated else ""
    return {"figures": [
        Figure(f"{rid}-chart-throughput", charts.throughput_vs_batch(summary, f"{rid}-chart-throughput"),
               "samples/s per case against global batch; bars: the 95 % interval where a case ran in several "
               "processes, else the IQR of its rounds. A line joins only cases that differ in the global batch "
               f"alone: its label names every other axis (precision · jit_compile ({jit}) · input · "
               f"steps_per_execution); one panel per backend × GPU count.{where}", "no training case finished"),
        Figure(f"{rid}-chart-scaling", charts.scaling(comparisons, f"{rid}-chart-scaling"),
               "Scaling efficiency T_N / (N·T_1) at a fixed global batch against GPU count, dashed = ideal 100 %; "
               "one line per setting that differs only in the GPU count (its label names the rest); bars: 95 % "
               f"interval where there is one.{where}",
               "scaling needs finished 1-GPU and N-GPU cases that otherwise match"),
        Figure(f"{rid}-chart-speedups", charts.speedup_heatmap(comparisons, f"{rid}-chart-speedups"),
               f"Each comparison of the run as a cell: jit_compile ({jit}) against its reference value, and each "
               "mixed policy against float32, with everything else held fixed (rows). Blue = faster; ≈ marks an "
               "interval that holds 1 (no measurable difference); grey n/a = no such pair.",
               f"speedups need finished pairs that differ only in jit_compile ({jit}) or in precision"),
    ]}


def native(run: RunData, rid: str) -> dict[str, Any] | Missing:
    if run.native.empty:
        return Missing('the native suite did not run (add "native" to suites in the config)')
    table = pd.DataFrame(run.derived.get("native_table") or [])
    sentences = _texts(run, "native")
    if table.empty:
        return Missing("no native case finished", {"sentences": sentences})
    figure = Figure(f"{rid}-chart-native", charts.native_vs_keras(table, f"{rid}-chart-native"),
                    "Median samples/s against global batch, log-log. Solid: Keras fit (o = jit_compile on, x = off; "
                    f"{compilers(backends(table))}); dashed: the same MLP in a hand-written loop of the backend's own "
                    "ops, one dispatch per step; dotted: JAX epoch_scan, a whole round in one jax.jit — the device's "
                    "practical ceiling.", "no native case finished")
    return {"sentences": sentences, "figure": figure, "table": tables.native_vs_keras(table, f"{rid}-native-table")}


def _nvml_reason(run: RunData) -> str:
    reasons = run.train["gpu_metrics.reason"].dropna().unique().tolist() if not run.train.empty else []
    nvml = run.environment.get("nvml")
    if reasons:
        return "; ".join(str(r) for r in reasons[:3])
    if nvml and nvml != "ok":
        return f"NVML: {nvml}"
    return "no training case has NVML data"


def nvml(run: RunData, rid: str) -> dict[str, Any] | Missing:
    svg = charts.gpu_utilisation(run.train, f"{rid}-chart-nvml") if not run.train.empty else None
    per_case = pd.DataFrame(run.derived.get("monitor_overhead") or [])
    if svg is None and per_case.empty:
        return Missing(_nvml_reason(run))
    monitor = next((f for f in run_findings(run) if f["key"] == "monitor_overhead"), None)
    return {
        "starvation": _texts(run, "starved"),
        "figure": Figure(f"{rid}-chart-nvml", svg, "NVML utilisation (mean over the timed rounds, | = p95) and peak "
                         "memory of the busiest GPU, per training case. Orange: below 50%.",
                         "no training case has NVML data"),
        "monitor": monitor or {"text": ""},
        "table": tables.overhead_table(per_case, f"{rid}-nvml-table") if not per_case.empty else None,
    }


def _predict_units(run: RunData) -> str:
    samples = sorted({int(v) for v in pd.to_numeric(run.cpu_predict.get("predict_samples", pd.Series(dtype=float)),
                                                       errors="coerce").dropna()})
    return f"{samples[0]:,} test images" if len(samples) == 1 else "the test images"


def cpu_predict(run: RunData, rid: str) -> dict[str, Any] | Missing:
    cpu = run.cpu_predict
    if cpu.empty:
        return Missing("the cpu_predict suite did not run")
    methods = pd.DataFrame(run.derived.get("cpu_methods") or [])
    skipped = cpu[cpu["not_applicable"].map(is_true)]
    same = cpu[cpu["train_device_is_predict_device"].map(is_true) & (cpu["status"] == "ok")]
    units = _predict_units(run)
    return {
        # Quiet notes: methods that do not exist on a backend, ok cases that could not prove a move.
        "not_applicable": [(str(cid), str(reason)) for cid, reason in zip(skipped["case_id"], skipped["reason"],
                                                                           strict=True)],
        "same_device": {"count": len(same), "backends": ", ".join(dict.fromkeys(str(b) for b in same["backend"]))},
        "units": units,
        "figure": Figure(f"{rid}-chart-cpu-predict", charts.cpu_predict_times(
            cpu, f"{rid}-chart-cpu-predict", {row["case_id"]: row.get("issue") or "known limitation"
                                             for row in run.derived.get("failures") or []
                                             if row.get("kind") == "known limitation"}),
                         f"Seconds per method, each predict call over {units} at the panel's predict batch (the "
                         "predict() batch size — not the training batch): prepare (recompile / clone / save+load) + "
                         "first predict call (tracing) + one steady call (median, bars = IQR). Hatched: ran, but not "
                         "on the CPU or wrong; red label: no numbers (a known limitation says so).",
                         "no CPU-prediction case has timings"),
        "methods": None if methods.empty else tables.cpu_method_summary(methods, f"{rid}-cpu-methods"),
    }


def cases(run: RunData, rid: str) -> dict[str, Any]:
    parts = []
    if not run.train.empty:
        parts.append((f"Training cases ({len(run.train)})", tables.train_table(run, f"{rid}-train-cases")))
    if not run.train_extra.empty:
        parts.append((f"Multi-worker, Keras 2 and other-environment training cases ({len(run.train_extra)})",
                      tables.train_table(run, f"{rid}-train-extra-cases", run.train_extra)))
    if not run.native.empty:
        parts.append((f"Native-reference cases ({len(run.native)})", tables.native_cases_table(run, f"{rid}-native-cases")))
    if not run.cpu_predict.empty:
        parts.append((f"CPU-prediction cases ({len(run.cpu_predict)})", tables.cpu_predict_table(run, f"{rid}-cpu-cases")))
    return {"tables": parts}


FRAMEWORK_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def framework_lines(frameworks: Mapping[str, Any]) -> list[str]:
    """One line per probed framework: version, what it was built with, how many GPUs it saw (or why none)."""
    lines = []
    for key, label in FRAMEWORK_NAMES.items():
        facts = frameworks.get(key)
        if not facts:
            continue
        status = facts.get("status")
        if status == "not_installed":
            lines.append(f"{label}: not installed")
            continue
        if status != "ok":
            lines.append(f"{label} {facts.get('version') or ''}: {status} ({facts.get('reason') or 'no reason given'})")
            continue
        build = facts.get("build") or {}
        built = (f"built for CUDA {build['cuda']}" + (f", cuDNN {build['cudnn']}" if build.get("cudnn") else "")
                 if build.get("cuda") else "CPU-only build")
        gpus = facts.get("gpus") or []
        seen = f"sees {len(gpus)} GPU(s)" if gpus else f"sees no GPU ({facts.get('gpu_error') or 'no reason given'})"
        keras = facts.get("keras") or {}
        auto = keras.get("jit_compile_auto")
        auto_text = "" if auto is None else f"; jit_compile=\"auto\" → {'XLA' if auto else 'no XLA'}"
        lines.append(f"{label} {facts.get('version')}: {built}; {seen}{auto_text}")
    return lines


def _capability_rows(frameworks: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for gpu in frameworks.get("gpus") or []:
        cores = [kind for kind, present in (("fp16", gpu.get("fp16_tensor_cores")),
                                            ("bf16", gpu.get("bf16_tensor_cores"))) if present]
        rows.append((f"GPU {gpu.get('nvml_index')} {gpu.get('name') or ''}".strip(),
                     f"compute capability {gpu.get('compute_capability') or 'unknown'}, "
                     f"{gpu.get('memory_total_mib') or '?'} MiB, tensor cores: {', '.join(cores) or 'none'}"))
    return rows


def setup(run: RunData) -> dict[str, Any] | None:
    """The doctor's facts recorded with the run (``environment.frameworks``, ``selection``), or None."""
    frameworks = run.environment.get("frameworks")
    selection = run.document.get("selection") or {}
    if not frameworks and not selection:
        return None
    verdict = (frameworks or {}).get("verdict") or {}
    chosen = []
    if selection.get("overrides"):
        chosen.append("--set " + " --set ".join(selection["overrides"]))
    if selection.get("k"):
        chosen.append(f"-k {selection['k']!r}: {selection.get('selected_cases')} of {selection.get('planned_cases')} "
                      "cases")
    return {"frameworks": framework_lines(frameworks or {}), "capabilities": _capability_rows(frameworks or {}),
            "verdict": verdict.get("line"), "runnable": verdict.get("runnable"),
            "warnings": [f["text"] for f in verdict.get("findings") or [] if f.get("level") == "warning"],
            "selection": chosen}


def environment(run: RunData, rid: str) -> dict[str, Any]:
    return {
        "setup": setup(run),
        "gpus": tables.gpu_table(run.environment, f"{rid}-gpus"),
        "values": tables.key_value(tables.environment_rows(run.environment), f"{rid}-env", cut=True),
        "config_json": json.dumps(run.config, indent=1),
    }
