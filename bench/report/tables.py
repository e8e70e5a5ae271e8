"""HTML tables: every case with its stats and status, the environment, the source files.

Cells are formatted and escaped here, then handed to ``DataFrame.to_html(escape=False)`` so that status
and numbers can carry a class (colour, right alignment) without pandas' Styler (which needs jinja2).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from bench.report.load import RunData, is_true

BLANK = "—"


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(str(v) for v in value)) if value else BLANK
    if _is_blank(value):
        return BLANK
    return html.escape(str(value))


def number(digits: int = 0, scale: float = 1.0, percent: bool = False) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        try:
            x = float(value) * scale
        except (TypeError, ValueError):
            return BLANK
        if not math.isfinite(x):
            return BLANK
        shown = f"{x:.{digits}%}" if percent else f"{x:,.{digits}f}"
        return f'<span class="num">{shown}</span>'
    return fmt


def smart(value: Any) -> str:
    """Thousands without decimals (samples/s), small numbers with four significant digits (seconds)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return BLANK
    if not math.isfinite(x):
        return BLANK
    return f'<span class="num">{x:,.0f}</span>' if abs(x) >= 1000 else f'<span class="num">{x:.4g}</span>'


def ratio_pct(value: Any) -> str:
    """A ratio as a percentage with three significant digits (0.116 -> 11.6%, 0.00248 -> 0.248%)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return BLANK
    return f'<span class="num">{x * 100:.3g}%</span>' if math.isfinite(x) else BLANK


def signed(digits: int = 2) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        try:
            x = float(value)
        except (TypeError, ValueError):
            return BLANK
        return f'<span class="num">{x:+.{digits}f}</span>' if math.isfinite(x) else BLANK
    return fmt


def sci(value: Any) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return BLANK
    return f'<span class="num">{x:.2g}</span>' if math.isfinite(x) else BLANK


def status(value: Any) -> str:
    label = "" if _is_blank(value) else str(value)
    css = re.sub(r"[^a-z0-9_]+", "-", label.lower())
    return f'<span class="status status-{css}">{html.escape(label) or BLANK}</span>'


def flags(frame: pd.DataFrame, names: tuple[str, ...]) -> list[str]:
    out = []
    for _, row in frame.iterrows():
        set_flags = [n for n in names if is_true(row.get(n))]
        out.append(html.escape(", ".join(set_flags)) if set_flags else "")
    return out


def render(frame: pd.DataFrame, columns: Mapping[str, tuple[str, Callable[[Any], str]]], table_id: str,
           extra: Mapping[str, list[str]] | None = None, css_class: str = "") -> str:
    """``columns``: header -> (source column, formatter); ``extra``: header -> preformatted cells."""
    shown = pd.DataFrame({header: [fmt(v) for v in frame[source]] for header, (source, fmt) in columns.items()},
                         index=frame.index)
    for header, cells in (extra or {}).items():
        shown[header] = cells
    table = shown.to_html(index=False, escape=False, border=0, classes=f"sortable {css_class}".strip(), table_id=table_id)
    return f'<div class="table-wrap">{table}</div>'


def _short_device(value: Any) -> str:
    if _is_blank(value):
        return BLANK
    return html.escape(str(value).replace("/job:localhost/replica:0/task:0/device:", ""))


TRAIN_TABLE = {
    "case": ("case_id", text),
    "status": ("status", status),
    "reason": ("reason", text),
    "GPUs": ("gpus", number()),
    "global batch": ("global_batch", number()),
    "per replica": ("per_replica_batch", number()),
    "precision": ("precision", text),
    "XLA": ("jit_resolved_label", text),
    "samples/s median": ("samples_per_second.median", number()),
    "q1": ("samples_per_second.q1", number()),
    "q3": ("samples_per_second.q3", number()),
    "CV": ("samples_per_second.cv", number(1, percent=True)),
    "rounds": ("samples_per_second.n", number()),
    "step ms": ("step_time_s.median", number(3, scale=1000)),
    "compile s": ("compile_s", number(2)),
    "loss": ("final_loss", number(4)),
    "accuracy": ("final_accuracy", number(1, percent=True)),
    "GPU util %": ("gpu_metrics.aggregate.utilization_pct_mean", number(1)),
    "peak MiB": ("peak_memory_mib", number()),
    "NVML window s": ("gpu_metrics.window_s", number(1)),
}
TRAIN_FLAGS = ("simulated", "synthetic_data", "unstable", "gpu_metrics_unreliable")

CPU_TABLE = {
    "case": ("case_id", text),
    "status": ("status", status),
    "reason": ("reason", text),
    "method": ("method", text),
    "precision": ("precision", text),
    "train jit": ("train_jit", text),
    "predict batch": ("predict_batch", number()),
    "prepare s": ("prepare_s", number(3)),
    "first call s": ("first_predict_s", number(3)),
    "steady median s": ("steady_s.median", number(4)),
    "steady q1 s": ("steady_s.q1", number(4)),
    "steady q3 s": ("steady_s.q3", number(4)),
    "total s": ("total_s", number(3)),
    "max |diff|": ("max_abs_diff", sci),
    "tolerance": ("tolerance", sci),
    "MatMuls on": ("predict_device", _short_device),
    "trained on": ("train_device", _short_device),
    "peak RSS MiB": ("peak_rss_mib", number()),
}
CPU_FLAGS = ("synthetic_data", "stand_in_device", "unstable")

NATIVE_CASES = {
    "case": ("case_id", text),
    "status": ("status", status),
    "reason": ("reason", text),
    "backend": ("backend", text),
    "variant": ("variant", text),
    "global batch": ("global_batch", number()),
    "precision": ("precision", text),
    "samples/s median": ("samples_per_second.median", number()),
    "q1": ("samples_per_second.q1", number()),
    "q3": ("samples_per_second.q3", number()),
    "CV": ("samples_per_second.cv", number(1, percent=True)),
    "rounds": ("samples_per_second.n", number()),
    "step ms": ("step_time_s.median", number(4, scale=1000)),
    "compile s": ("compile_s", number(2)),
    "loss": ("final_loss", number(4)),
    "GPU util %": ("gpu_metrics.aggregate.utilization_pct_mean", number(1)),
    "device": ("device", text),
}
NATIVE_FLAGS = ("synthetic_data", "unstable", "gpu_metrics_unreliable")

# The Keras-vs-native table (bench.report.overhead.native_table), one row per one-GPU Keras case.
NATIVE_VS_KERAS = {
    "backend": ("backend", text),
    "global batch": ("global_batch", number()),
    "precision": ("precision", text),
    "XLA": ("xla", text),
    "Keras samples/s": ("keras", number()),
    "Keras q1": ("keras_q1", number()),
    "Keras q3": ("keras_q3", number()),
    "native step samples/s": ("native", number()),
    "Keras / native": ("ratio", ratio_pct),
    "epoch_scan samples/s": ("ceiling", number()),
    "Keras / epoch_scan": ("ratio_ceiling", ratio_pct),
    "GPU util % Keras": ("keras_util", number(1)),
    "GPU util % native": ("native_util", number(1)),
    "GPU util % epoch_scan": ("ceiling_util", number(1)),
}
UTIL_COLUMNS = ("GPU util % Keras", "GPU util % native", "GPU util % epoch_scan")

# NVML per case with the monitor's own cost (bench.report.overhead.overhead_table).
OVERHEAD = {
    "case": ("case_id", text),
    "GPU util % mean": ("util", number(1)),
    "p95": ("util_p95", number(1)),
    "NVML window s": ("window_s", number(1)),
    "reliable": ("reliable", text),
    "rounds CV %": ("cv_pct", number(2)),
    "unmonitored CV %": ("off_cv_pct", number(2)),
    "monitor overhead %": ("overhead_pct", signed(2)),
    "overhead vs CV": ("verdict", text),
}


def train_table(run: RunData, table_id: str) -> str:
    frame = run.train
    return render(frame, TRAIN_TABLE, table_id, {"flags": flags(frame, TRAIN_FLAGS)}, "cases")


def cpu_predict_table(run: RunData, table_id: str) -> str:
    frame = run.cpu_predict
    return render(frame, CPU_TABLE, table_id, {"flags": flags(frame, CPU_FLAGS)}, "cases")


def native_cases_table(run: RunData, table_id: str) -> str:
    frame = run.native
    return render(frame, NATIVE_CASES, table_id, {"flags": flags(frame, NATIVE_FLAGS)}, "cases")


def native_vs_keras(table: pd.DataFrame, table_id: str) -> str:
    columns = dict(NATIVE_VS_KERAS)
    if table[["keras_util", "native_util", "ceiling_util"]].isna().all().all():
        for header in UTIL_COLUMNS:  # no NVML in this run: three columns of dashes say nothing
            columns.pop(header)
    return render(table, columns, table_id)


def overhead_table(table: pd.DataFrame, table_id: str) -> str:
    return render(table, OVERHEAD, table_id)


def cpu_method_summary(table: pd.DataFrame, table_id: str) -> str:
    columns = {
        "backend": ("backend", text),
        "method": ("method", text),
        "settings": ("settings", number()),
        "prepare s": ("prepare_s", number(3)),
        "first call s": ("first_predict_s", number(3)),
        "steady call s": ("steady_s.median", number(4)),
        "total s": ("total_s", number(3)),
    }
    return render(table, columns, table_id)


def key_value(rows: list[tuple[str, Any]], table_id: str) -> str:
    body = "".join(f"<tr><th scope=\"row\">{html.escape(k)}</th><td>{text(v) if not isinstance(v, bool) else str(v).lower()}</td></tr>"
                   for k, v in rows)
    return f'<div class="table-wrap"><table id="{table_id}" class="kv"><tbody>{body}</tbody></table></div>'


def environment_rows(environment: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in environment.items():
        if key in ("packages", "env_vars") and isinstance(value, Mapping):
            rows += [(f"{key}.{k}", v) for k, v in value.items()]
        elif key == "gpus":
            continue
        elif isinstance(value, (Mapping, list)):
            rows.append((key, json.dumps(value)))
        else:
            rows.append((key, value))
    return rows


def gpu_table(environment: Mapping[str, Any], table_id: str) -> str | None:
    gpus = environment.get("gpus") or []
    if not gpus:
        return None
    frame = pd.DataFrame(gpus)
    columns = {c: (c, number() if c in ("index", "memory_total_mib") else text) for c in frame.columns}
    return render(frame, columns, table_id)


def sources_table(runs: list[RunData], table_id: str = "sources-table") -> str:
    frame = pd.DataFrame([{
        "file": str(run.path), "run_id": run.run_id, "created_utc": run.document.get("created_utc"),
        "complete": str(run.document.get("complete")).lower(), "cases": len(run.document.get("cases", [])),
        "schema_version": run.document.get("schema_version"), "bytes": run.file_bytes, "sha256": run.file_sha256,
    } for run in runs])
    columns = {c: (c, number() if c in ("cases", "bytes", "schema_version") else text) for c in frame.columns}
    return render(frame, columns, table_id)
