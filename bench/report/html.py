"""Assemble the self-contained page: warnings first, then per run its header, findings, charts, tables.

Section ids are stable (``r1-findings``, ``r1-train``, ``r1-native``, ``r1-nvml``, ``r1-cpu-predict``,
``r1-cases``, ``r1-environment``, ``comparison``, ``sources``) so readers can link to them and tests can count charts.
A section without data says "not measured in this run" and why, instead of disappearing.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench import __version__
from bench.report import charts, overhead, tables
from bench.report.assets import CONTENT_SECURITY_POLICY, CSS, JS
from bench.report.checks import ReportWarning, run_warnings
from bench.report.findings import (
    NOT_MEASURED,
    Finding,
    by_backend,
    cpu_method_table,
    cpu_predict_findings,
    gpu_starvation,
    train_findings,
)
from bench.report.load import RunData, backends, is_true

esc = html.escape


@dataclass(frozen=True)
class ComparisonView:
    """A rendered comparison: HTML body (tables, sentences) plus an optional chart."""

    body_html: str
    chart_svg: str | None
    source: str
    table_html: str = ""


def _not_measured(why: str) -> str:
    return f'<p class="not-measured">{esc(NOT_MEASURED.capitalize())}: {esc(why)}.</p>'


def _figure(svg: str | None, chart_id: str, caption: str, missing: str) -> str:
    if svg is None:
        return f'<div class="chart-missing" data-chart="{chart_id}">{_not_measured(missing)}</div>'
    return f'<figure id="{chart_id}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


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


def _when(document: dict[str, Any]) -> str:
    created, finished = document.get("created_utc"), document.get("finished_utc")
    text = esc(str(created or "?"))
    if finished:
        text += f" → {esc(str(finished))}"
        try:
            span = datetime.fromisoformat(str(finished).replace("Z", "+00:00")) - datetime.fromisoformat(
                str(created).replace("Z", "+00:00"))
            text += f" ({_duration(span.total_seconds())})"
        except ValueError:
            pass
    if document.get("complete") is False:
        text += ' <strong class="status status-failed">incomplete</strong>'
    return text


BACKEND_PACKAGES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}


def _backend_versions(run: RunData) -> str:
    packages = run.environment.get("packages") or {}
    names = backends(run.train, run.native, run.cpu_predict) or ["tensorflow"]
    shown = []
    for name in names:
        versions = [f"{p} {packages[p]}" for p in BACKEND_PACKAGES.get(name, (name,)) if packages.get(p)]
        shown.append(f"<strong>{esc(name)}</strong>" + (f" ({esc(', '.join(versions))})" if versions else ""))
    return f"Keras {esc(str(packages.get('keras') or '—'))} · " + ", ".join(shown)


def _header(run: RunData) -> str:
    env, config, data = run.environment, run.config, run.document.get("data") or {}
    commit = env.get("git_commit")
    commit_text = (esc(str(commit)[:12]) + (" (uncommitted changes)" if env.get("git_dirty") else "")) if commit else "unknown"
    config_sha = config.get("sha256") or env.get("config_sha256") or ""
    data_text = f"<strong>{esc(str(data.get('source', '?')))}</strong>"
    if data.get("synthetic"):
        data_text += ' <strong class="status status-failed">(synthetic images, not MNIST)</strong>'
    if data.get("path"):
        data_text += f" · <code>{esc(str(data['path']))}</code>"
    if data.get("sha256"):
        data_text += f" · sha256 <code>{esc(str(data['sha256'])[:12])}</code>"
    if data.get("train_samples"):
        data_text += f" · {int(data['train_samples']):,} train / {int(data.get('test_samples') or 0):,} test images"
    if data.get("note"):
        data_text += f" · {esc(str(data['note']))}"
    cpu = f"{esc(str(env.get('cpu') or '?'))} ({esc(str(env.get('cpu_count') or '?'))} logical CPUs)"
    rows = [
        ("When (UTC)", _when(run.document)),
        ("GPUs", esc(_gpu_summary(env))),
        ("Driver / CUDA", f"{esc(str(env.get('driver_version') or '—'))} / {esc(str(env.get('cuda_driver_version') or '—'))}"),
        ("CPU", cpu),
        ("Host", f"{esc(str(env.get('hostname') or '?'))} · {esc(str(env.get('platform') or '?'))} · Python {esc(str(env.get('python') or '?'))}"),
        ("Keras / backends", _backend_versions(run)),
        ("Git commit", commit_text),
        ("Config", f"<strong>{esc(str(config.get('name', '?')))}</strong> · <code>{esc(str(config.get('path') or ''))}</code>"
                   f" · sha256 <code>{esc(str(config_sha)[:12])}</code>"
                   + (f" — {esc(str(config['description']))}" if config.get("description") else "")),
        ("Data source", data_text),
        ("Result file", f"<code>{esc(str(run.path))}</code>"),
    ]
    return _facts(rows)


# --------------------------------------------------------------------------- warnings and findings


def _warnings_box(runs: list[RunData], warnings: list[list[ReportWarning]]) -> str:
    items = []
    for index, (run, run_warns) in enumerate(zip(runs, warnings, strict=True), start=1):
        prefix = f"<code>{esc(run.run_id)}</code>: " if len(runs) > 1 else ""
        for warning in run_warns:
            details = ""
            if warning.details:
                shown = "".join(f"<li>{esc(d)}</li>" for d in warning.details)
                details = f"<details><summary>{len(warning.details)} case(s)</summary><ul>{shown}</ul></details>"
            items.append(f'<li class="warning" data-warning="{esc(warning.kind)}" data-run="r{index}">'
                         f"{prefix}{esc(warning.text)}{details}</li>")
    if not items:
        not_applicable = sum(int(run.cpu_predict["not_applicable"].map(is_true).sum()) for run in runs)
        extra = (f" ({not_applicable} CPU-prediction case(s) of a method that does not exist on its backend are "
                 "listed in their section)" if not_applicable else "")
        return ('<section id="warnings" class="warnings none"><h2>No warnings</h2><p>Real data, real devices, '
                f"stable rounds, reliable NVML windows, every case finished{extra}.</p></section>")
    return ('<section id="warnings" class="warnings" role="alert"><h2>⚠ Read these before the numbers</h2>'
            f"<ul>{''.join(items)}</ul></section>")


def _findings_list(findings: list[Finding], backend: str | None = None) -> str:
    items = "".join(
        f'<li class="finding" data-finding="{esc(f.key)}" data-measured="{str(f.measured).lower()}"'
        + (f' data-backend="{esc(f.backend)}"' if f.backend else "")
        + f" data-values='{esc(json.dumps(f.values, default=str), quote=True)}'>{esc(f.text)}</li>"
        for f in findings
    )
    attribute = f' data-backend="{esc(backend)}"' if backend else ""
    return f'<ul class="findings"{attribute}>{items}</ul>'


def _findings_block(findings: list[Finding], run_backends: list[str]) -> str:
    """Each backend's findings under its name (numbers of different frameworks are never pooled); the
    cross-backend comparison first, run-wide ones (the monitor's cost, suites that did not run) last."""
    lead = [f for f in findings if f.backend is None and f.key == "backends"]
    tail = [f for f in findings if f.backend is None and f.key != "backends"]
    grouped = {b: [f for f in findings if f.backend == b] for b in run_backends}
    grouped = {b: group for b, group in grouped.items() if group}
    parts = [_findings_list(lead)] if lead else []
    if len(grouped) == 1:
        (name, group), = grouped.items()
        parts.append(f'<p class="meta">Backend: <strong>{esc(name)}</strong> (every case of this run).</p>'
                     + _findings_list(group, name))
    else:
        parts += [f'<h4 class="backend">Backend: {esc(name)}</h4>{_findings_list(group, name)}'
                  for name, group in grouped.items()]
    if tail:
        parts.append(("<h4 class=\"backend\">Every backend</h4>" if len(grouped) > 1 else "") + _findings_list(tail))
    return "".join(parts)


# --------------------------------------------------------------------------- per-run sections


def _train_section(run: RunData, rid: str) -> str:
    if run.train.empty:
        return f'<section id="{rid}-train"><h3>Training throughput</h3>{_not_measured("the train suite did not run")}</section>'
    parts = [
        _figure(charts.throughput_vs_batch(run.train, f"{rid}-chart-throughput"), f"{rid}-chart-throughput",
                "Median samples/s per case against global batch; bars span the IQR of the rounds. One line per "
                "precision × XLA, one panel per backend × GPU count.", "no training case finished"),
        _figure(charts.scaling(run.train, f"{rid}-chart-scaling"), f"{rid}-chart-scaling",
                "Left: speedup T_N / T_1 at a fixed global batch, dashed = linear. Right: efficiency "
                "T_N / (N·T_1), dashed = ideal 100%. Points: median over precision × XLA; bars: min–max.",
                "scaling needs finished 1-GPU and N-GPU cases at the same global batch"),
        _figure(charts.speedup_heatmap(run.train, f"{rid}-chart-speedups"), f"{rid}-chart-speedups",
                "Speedup per cell of the sweep: XLA on / off, and each mixed policy / float32 (blue = faster).",
                "speedups need finished pairs that differ only in XLA or in precision"),
    ]
    return f'<section id="{rid}-train"><h3>Training throughput</h3>{"".join(parts)}</section>'


def _native_section(run: RunData, rid: str) -> str:
    title = "<h3>Framework overhead: Keras vs a native loop</h3>"
    if run.native.empty:
        why = _not_measured('the native suite did not run (add "native" to suites in the config)')
        return f'<section id="{rid}-native">{title}{why}</section>'
    table = overhead.native_table(run.train, run.native)
    sentences = "".join(f'<p class="finding-text">{esc(f.text)}</p>'
                        for f in overhead.native_findings(run.train, run.native))
    if table.empty:
        return f'<section id="{rid}-native">{title}{sentences}{_not_measured("no native case finished")}</section>'
    chart = _figure(charts.native_vs_keras(table, f"{rid}-chart-native"), f"{rid}-chart-native",
                    "Median samples/s against global batch, log-log. Solid: Keras fit (o = jit_compile on, x = off); "
                    "dashed: the same MLP in a hand-written loop of the backend's own ops, one dispatch per step; "
                    "dotted: JAX epoch_scan, a whole round in one jax.jit — the device's practical ceiling.",
                    "no native case finished")
    return (f'<section id="{rid}-native">{title}{sentences}{chart}'
            "<p>One row per one-GPU Keras case. Keras / native = Keras median ÷ native step median of the same "
            "backend, global batch and precision (below 100 %: Keras is slower); Keras / epoch_scan uses the JAX "
            f"ceiling for every backend.</p>{tables.native_vs_keras(table, f'{rid}-native-table')}</section>")


def _nvml_reason(run: RunData) -> str:
    reasons = run.train["gpu_metrics.reason"].dropna().unique().tolist() if not run.train.empty else []
    nvml = run.environment.get("nvml")
    if reasons:
        return "; ".join(str(r) for r in reasons[:3])
    if nvml and nvml != "ok":
        return f"NVML: {nvml}"
    return "no training case has NVML data"


def _nvml_section(run: RunData, rid: str) -> str:
    title = "<h3>GPU utilisation and memory (NVML)</h3>"
    svg = charts.gpu_utilisation(run.train, f"{rid}-chart-nvml") if not run.train.empty else None
    per_case = overhead.overhead_table(run.train, run.native)
    if svg is None and per_case.empty:
        return f'<section id="{rid}-nvml">{title}{_not_measured(_nvml_reason(run))}</section>'
    parts = [f"<p>{esc(gpu_starvation(group, backend).text)}</p>" for backend, group in by_backend(run.train)]
    parts.append(_figure(svg, f"{rid}-chart-nvml", "NVML utilisation (mean over the timed rounds, | = p95) and "
                         "peak memory of the busiest GPU, per training case. Orange: below 50%.",
                         "no training case has NVML data"))
    monitor = overhead.monitor_overhead_finding(per_case)
    parts.append(f'<p class="finding-text" data-finding="monitor_overhead">{esc(monitor.text)}</p>')
    parts.append("<p>Per case, training and native: the monitor overhead is the median samples/s of as many "
                 "unmonitored rounds (half before, half after) against the monitored ones (positive = monitored "
                 "slower). Within the larger of the two CVs it cannot be told from noise.</p>")
    parts.append(tables.overhead_table(per_case, f"{rid}-nvml-table"))
    return f'<section id="{rid}-nvml">{title}{"".join(parts)}</section>'


def _cpu_section(run: RunData, rid: str) -> str:
    title = "<h3>CPU prediction after GPU training</h3>"
    if run.cpu_predict.empty:
        return f'<section id="{rid}-cpu-predict">{title}{_not_measured("the cpu_predict suite did not run")}</section>'
    method_table = cpu_method_table(run.cpu_predict)
    summary = (tables.cpu_method_summary(method_table, f"{rid}-cpu-methods") if not method_table.empty
               else _not_measured("no method finished with correct predictions on the CPU"))
    chart = _figure(charts.cpu_predict_times(run.cpu_predict, f"{rid}-chart-cpu-predict"), f"{rid}-chart-cpu-predict",
                    "Seconds per method: prepare (recompile / clone / save+load) + first predict call (tracing) + "
                    "one steady call (median, bars = IQR). Hatched: ran, but not on the CPU or wrong; red label: no "
                    "numbers.", "no CPU-prediction case has timings")
    return (f'<section id="{rid}-cpu-predict">{title}{_cpu_notes(run)}{chart}'
            f"<p>Working methods (status ok), medians over settings, per backend:</p>{summary}</section>")


def _cpu_notes(run: RunData) -> str:
    """Quiet notes: methods that do not exist on a backend, and ok cases that could not prove a move."""
    cpu, notes = run.cpu_predict, []
    skipped = cpu[cpu["not_applicable"].map(is_true)]
    if len(skipped):
        items = "".join(f"<li><code>{esc(str(cid))}</code>: {esc(str(reason))}</li>"
                        for cid, reason in zip(skipped["case_id"], skipped["reason"], strict=True))
        notes.append(f'<div class="note" data-note="not_applicable"><p>Not applicable on this backend, skipped by '
                     f"design (not a failure): {len(skipped)} case(s).</p><ul>{items}</ul></div>")
    same = cpu[cpu["train_device_is_predict_device"].map(is_true) & (cpu["status"] == "ok")]
    if len(same):
        names = ", ".join(dict.fromkeys(str(b) for b in same["backend"]))
        notes.append(f'<div class="note" data-note="same_device"><p>Caveat ({esc(names)}): {len(same)} case(s) are '
                     "ok with a reason — training ran on the CPU that predicted (no second device), so they prove "
                     "correct predictions and their cost, not a move off the training device.</p></div>")
    return "".join(notes)


def _cases_section(run: RunData, rid: str) -> str:
    parts = ['<p class="sort-hint">Click a column header to sort.</p>']
    if not run.train.empty:
        parts.append(f"<h4>Training cases ({len(run.train)})</h4>" + tables.train_table(run, f"{rid}-train-cases"))
    if not run.native.empty:
        parts.append(f"<h4>Native-reference cases ({len(run.native)})</h4>"
                     + tables.native_cases_table(run, f"{rid}-native-cases"))
    if not run.cpu_predict.empty:
        parts.append(f"<h4>CPU-prediction cases ({len(run.cpu_predict)})</h4>"
                     + tables.cpu_predict_table(run, f"{rid}-cpu-cases"))
    if len(parts) == 1:
        parts.append(_not_measured("the run has no cases"))
    return f'<section id="{rid}-cases"><h3>Every case</h3>{"".join(parts)}</section>'


def _environment_section(run: RunData, rid: str) -> str:
    gpus = tables.gpu_table(run.environment, f"{rid}-gpus")
    config_json = esc(json.dumps(run.config, indent=1))
    return (f'<section id="{rid}-environment"><h3>Environment</h3>'
            + (gpus or "<p>No GPUs listed by NVML.</p>")
            + tables.key_value(tables.environment_rows(run.environment), f"{rid}-env")
            + f"<details><summary>Config as run</summary><pre>{config_json}</pre></details></section>")


def _run_block(run: RunData, index: int, warnings: list[ReportWarning]) -> str:
    rid = f"r{index}"
    findings = (train_findings(run.train) + overhead.native_findings(run.train, run.native)
                + [overhead.monitor_overhead_finding(overhead.overhead_table(run.train, run.native))]
                + cpu_predict_findings(run.cpu_predict))
    run_backends = backends(run.train, run.native, run.cpu_predict)
    return (
        f'<section id="{rid}" class="run-block"><h2>Run <code>{esc(run.run_id)}</code></h2>'
        f'<section id="{rid}-summary">{_header(run)}</section>'
        f'<section id="{rid}-findings"><h3>Headline findings</h3>{_findings_block(findings, run_backends)}</section>'
        + _train_section(run, rid) + _native_section(run, rid) + _nvml_section(run, rid) + _cpu_section(run, rid)
        + _cases_section(run, rid) + _environment_section(run, rid) + "</section>"
    )


def _comparison_section(comparison: ComparisonView | None) -> str:
    title = "<h2>Baseline comparison</h2>"
    if comparison is None:
        return (f'<section id="comparison">{title}'
                f'{_not_measured("no comparison given (python -m bench report --baseline-comparison FILE)")}</section>')
    chart = (_figure(comparison.chart_svg, "comparison-chart", "Change against the baseline per case (current / "
                     "baseline − 1, ratio of trimmed geometric means of the rounds); the table lists what needs "
                     "attention first.", "")
             if comparison.chart_svg else "")
    return (f'<section id="comparison">{title}<p class="meta">From <code>{esc(comparison.source)}</code></p>'
            f"{comparison.body_html}{chart}{comparison.table_html}</section>")


def build_page(runs: list[RunData], generated_utc: str, comparison: ComparisonView | None = None) -> str:
    warnings = [run_warnings(run) for run in runs]
    toc = ['<a href="#warnings">Warnings</a>']
    for index in range(1, len(runs) + 1):
        label = f"Run {index}: " if len(runs) > 1 else ""
        toc += [f'<a href="#r{index}-findings">{label}Findings</a>', f'<a href="#r{index}-train">{label}Training</a>',
                f'<a href="#r{index}-native">{label}Keras vs native</a>', f'<a href="#r{index}-nvml">{label}NVML</a>', f'<a href="#r{index}-cpu-predict">{label}CPU prediction</a>',
                f'<a href="#r{index}-cases">{label}Cases</a>', f'<a href="#r{index}-environment">{label}Environment</a>']
    toc += ['<a href="#comparison">Comparison</a>', '<a href="#sources">Source files</a>']
    title = "Keras GPU benchmark report"
    if len(runs) == 1:
        title += f" — {runs[0].config.get('name', runs[0].run_id)}"
    body = (
        f"<header><h1>{esc(title)}</h1>"
        f'<p class="meta">Generated {esc(generated_utc)} by keras-gpu-bench {esc(__version__)} from '
        f"{len(runs)} result file{'s' if len(runs) != 1 else ''}; it reads result files only.</p></header>"
        f'<nav class="toc">{"".join(toc)}</nav>'
        + _warnings_box(runs, warnings)
        + "".join(_run_block(run, i, w) for i, (run, w) in enumerate(zip(runs, warnings, strict=True), start=1))
        + _comparison_section(comparison)
        + f'<section id="sources"><h2>Source files</h2>{tables.sources_table(runs)}</section>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}<script>{JS}</script></body></html>\n"
    )
