"""Tables as data: every case with its stats and status, the environment, the source files.

A :class:`Table` is headers plus rows of :class:`Cell` (text, a CSS class, optionally a full value behind a
cut one); the ``data_table`` and ``kv_table`` macros in ``templates/macros.html.j2`` turn it into HTML.
Nothing here writes markup, so nothing here can forget to escape: the template engine escapes every cell.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.analyze import text as words
from bench.analyze.limitations import shorten, strip_paths
from bench.analyze.summary import category
from bench.report.load import RunData, is_true

BLANK = "—"
# Environment values longer than this (NVIDIA_REQUIRE_CUDA is ~1,500 characters) are cut, with the full
# value in a tooltip and a <details> below it.
LONG_VALUE_CHARS = 80


@dataclass(frozen=True)
class Cell:
    """One table cell: ``text`` as shown, ``css`` for its <td> (``num``: right-aligned), ``full`` when
    ``text`` is a cut of a longer value (shown on hover and when the cell is opened), ``href`` when the text
    links somewhere (an upstream issue), ``sort`` the number a sort uses when the text is formatted ("3.38 M")."""

    text: str
    css: str = ""
    full: str | None = None
    href: str | None = None
    sort: float | None = None


@dataclass(frozen=True)
class Table:
    """``secondary``: headers of columns a narrow screen or a printed page may drop (``col-secondary``)."""

    table_id: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    css: str = "sortable"
    secondary: tuple[str, ...] = ()

    def column(self, header: str) -> list[Cell]:
        index = self.headers.index(header)
        return [row[index] for row in self.rows]


Formatter = Callable[[Any], Cell]


def is_blank(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _finite(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def text(value: Any) -> Cell:
    if isinstance(value, (list, tuple)):
        return Cell(", ".join(str(v) for v in value) if value else BLANK)
    return Cell(BLANK) if is_blank(value) else Cell(str(value))


def long_text(value: Any, limit: int = LONG_VALUE_CHARS) -> Cell:
    """Text cut to ``limit`` characters (at a space where one is near) with the full value kept."""
    cell = text(value)
    if len(cell.text) <= limit:
        return cell
    cut = cell.text[:limit]
    space = cut.rfind(" ")
    cut = cut[:space] if space > limit * 0.6 else cut
    return Cell(cut.rstrip() + " …", cell.css, full=cell.text)


def number(digits: int = 0, scale: float = 1.0, percent: bool = False) -> Formatter:
    def fmt(value: Any) -> Cell:
        x = _finite(value)
        if x is None:
            return Cell(BLANK)
        x *= scale
        return Cell(f"{x:.{digits}%}" if percent else f"{x:,.{digits}f}", "num")
    return fmt


def rate(value: Any) -> Cell:
    """samples/s in the page's one format ("3.38 M", "53.1 k", "9,500"), sorting by the number."""
    x = _finite(value)
    return Cell(BLANK) if x is None else Cell(words.rate_value(x), "num", sort=x)


def share(value: Any) -> Cell:
    """A fraction as a percentage with two significant digits below 10 % ("17 %", "0.82 %")."""
    x = _finite(value)
    return Cell(BLANK) if x is None else Cell(words.share(x), "num", sort=x)


def smart(value: Any) -> Cell:
    """Thousands without decimals (samples/s), small numbers with four significant digits (seconds)."""
    x = _finite(value)
    if x is None:
        return Cell(BLANK)
    return Cell(f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}", "num")


def ratio_pct(value: Any) -> Cell:
    """A ratio as a percentage with three significant digits (0.116 -> 11.6%, 0.00248 -> 0.248%)."""
    x = _finite(value)
    return Cell(BLANK) if x is None else Cell(f"{x * 100:.3g}%", "num")


def times(value: Any) -> Cell:
    """A speed ratio: 1.96×, 0.143×."""
    x = _finite(value)
    return Cell(BLANK) if x is None else Cell(f"{x:.3g}×", "num")


def signed(digits: int = 2) -> Formatter:
    def fmt(value: Any) -> Cell:
        x = _finite(value)
        return Cell(BLANK) if x is None else Cell(f"{x:+.{digits}f}", "num")
    return fmt


def sci(value: Any) -> Cell:
    x = _finite(value)
    return Cell(BLANK) if x is None else Cell(f"{x:.2g}", "num")


def status(value: Any) -> Cell:
    label = "" if is_blank(value) else str(value)
    css = re.sub(r"[^a-z0-9_]+", "-", label.lower())
    return Cell(label or BLANK, f"status status-{css}")


def value_range(digits: int) -> Formatter:
    """``(lo, hi)`` as "lo–hi" (one number when both print the same): a spread over settings, never a
    median of two settings that can differ by orders of magnitude."""
    def fmt(value: Any) -> Cell:
        if not isinstance(value, tuple) or len(value) != 2:
            return Cell(BLANK)
        lo, hi = (_finite(v) for v in value)
        if lo is None or hi is None:
            return Cell(BLANK)
        a, b = f"{lo:,.{digits}f}", f"{hi:,.{digits}f}"
        return Cell(a if a == b else f"{a}–{b}", "num")
    return fmt


def flags(frame: pd.DataFrame, names: tuple[str, ...]) -> list[Cell]:
    out = []
    for _, row in frame.iterrows():
        set_flags = [n for n in names if is_true(row.get(n))]
        out.append(Cell(", ".join(set_flags)))
    return out


Columns = Mapping[str, tuple[str, Formatter]]


def build(frame: pd.DataFrame, columns: Columns, table_id: str, extra: Mapping[str, list[Cell]] | None = None,
          css_class: str = "", secondary: tuple[str, ...] = ()) -> Table:
    """``columns``: header -> (source column, formatter); ``extra``: header -> cells made elsewhere."""
    extra = extra or {}
    cells = [[formatter(v) for v in frame[source]] for _, (source, formatter) in columns.items()]
    cells += [list(column) for column in extra.values()]
    rows = tuple(zip(*cells, strict=True)) if cells else ()
    return Table(table_id, (*columns, *extra), tuple(tuple(row) for row in rows),
                 f"sortable {css_class}".strip(), secondary)


def _short_device(value: Any) -> Cell:
    if is_blank(value):
        return Cell(BLANK)
    return Cell(str(value).replace("/job:localhost/replica:0/task:0/device:", ""))


# Key columns first (visible on a 1366 px screen and on paper), then the secondary ones (``col-secondary``:
# dropped in print, reached by scrolling the table on screen). The reason is the last column: long.
TRAIN_TABLE = {
    "case": ("case_id", text),
    "samples/s": ("samples_per_second.median", rate),
    "CV": ("samples_per_second.cv", number(1, percent=True)),
    "step ms": ("step_time_s.median", number(3, scale=1000)),
    "GPUs": ("gpus", number()),
    "global batch": ("global_batch", number()),
    "precision": ("precision", text),
    # What jit_compile compiled with on the case's backend: "XLA on", "torch.compile off", "XLA auto→on".
    "jit_compile": ("jit_label", text),
    "input": ("input", text),
    "spe": ("steps_per_execution", number()),
    "q1": ("samples_per_second.q1", rate),
    "q3": ("samples_per_second.q3", rate),
    "rounds": ("samples_per_second.n", number()),
    "per replica": ("per_replica_batch", number()),
    "compile s": ("compile_s", number(2)),
    "loss": ("final_loss", number(4)),
    "accuracy": ("final_accuracy", number(1, percent=True)),
    "GPU util %": ("gpu_metrics.aggregate.utilization_pct_mean", number(1)),
    "peak MiB": ("peak_memory_mib", number()),
    "NVML window s": ("gpu_metrics.window_s", number(1)),
}
TRAIN_SECONDARY = ("q1", "q3", "rounds", "per replica", "compile s", "loss", "accuracy", "GPU util %", "peak MiB",
                   "NVML window s", "workers", "Keras", "flags", "reason")
TRAIN_FLAGS = ("simulated", "synthetic_data", "unstable", "gpu_metrics_unreliable", "retried_after_crash")

CPU_TABLE = {
    "case": ("case_id", text),
    "method": ("method", text),
    "total s": ("total_s", number(3)),
    "predict batch": ("predict_batch", number()),
    "precision": ("precision", text),
    "train jit": ("train_jit", text),
    "prepare s": ("prepare_s", number(3)),
    "first call s": ("first_predict_s", number(3)),
    "steady median s": ("steady_s.median", number(4)),
    "steady q1 s": ("steady_s.q1", number(4)),
    "steady q3 s": ("steady_s.q3", number(4)),
    "max |diff|": ("max_abs_diff", sci),
    "tolerance": ("tolerance", sci),
    "MatMuls on": ("predict_device", _short_device),
    "trained on": ("train_device", _short_device),
    "peak RSS MiB": ("peak_rss_mib", number()),
}
CPU_SECONDARY = ("steady q1 s", "steady q3 s", "max |diff|", "tolerance", "trained on", "peak RSS MiB", "flags",
                 "reason")
CPU_FLAGS = ("synthetic_data", "stand_in_device", "unstable", "retried_after_crash")

NATIVE_CASES = {
    "case": ("case_id", text),
    "samples/s": ("samples_per_second.median", rate),
    "CV": ("samples_per_second.cv", number(1, percent=True)),
    "step ms": ("step_time_s.median", number(4, scale=1000)),
    "backend": ("backend", text),
    "variant": ("variant", text),
    "global batch": ("global_batch", number()),
    "precision": ("precision", text),
    "q1": ("samples_per_second.q1", rate),
    "q3": ("samples_per_second.q3", rate),
    "rounds": ("samples_per_second.n", number()),
    "compile s": ("compile_s", number(2)),
    "loss": ("final_loss", number(4)),
    "GPU util %": ("gpu_metrics.aggregate.utilization_pct_mean", number(1)),
    "device": ("device", text),
}
NATIVE_SECONDARY = ("q1", "q3", "rounds", "compile s", "loss", "GPU util %", "device", "flags", "reason")
NATIVE_FLAGS = ("synthetic_data", "unstable", "gpu_metrics_unreliable", "retried_after_crash")

# The Keras-vs-native table (bench.report.overhead.native_table), one row per one-GPU Keras case.
NATIVE_VS_KERAS = {
    "backend": ("backend", text),
    "global batch": ("global_batch", number()),
    "precision": ("precision", text),
    "jit_compile": ("jit_label", text),
    "Keras samples/s": ("keras", rate),
    "Keras q1": ("keras_q1", rate),
    "Keras q3": ("keras_q3", rate),
    "native step samples/s": ("native", rate),
    "Keras / native": ("ratio", ratio_pct),
    "epoch_scan samples/s": ("ceiling", rate),
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

# Per backend and method over its finished settings (bench.report.findings.cpu_method_table): each phase as
# the range over the settings, because the settings (predict batch 1,024 vs 10,000, the first clone in a
# process vs a later one) can differ by two orders of magnitude.
CPU_METHODS = {
    "backend": ("backend", text),
    "method": ("method", text),
    "settings": ("settings", number()),
    "prepare s": ("prepare_s.range", value_range(3)),
    "first call s": ("first_predict_s.range", value_range(3)),
    "steady call s": ("steady_s.median.range", value_range(4)),
    "total s": ("total_s.range", value_range(3)),
}


def _outcomes(run: RunData) -> dict[str, dict[str, Any]]:
    return {row["case_id"]: row for row in run.derived.get("failures") or []}


def status_cells(frame: pd.DataFrame, run: RunData) -> list[Cell]:
    """Each case's status; a known framework limitation says so and links its upstream issue."""
    outcomes = _outcomes(run)
    cells = []
    for case_id, value in zip(frame["case_id"], frame["status"], strict=True):
        row = outcomes.get(case_id) or {}
        if row.get("kind") == "known limitation":
            cells.append(Cell(f"{value} · known limitation {row.get('issue') or ''}".strip(), "status status-known",
                              full=row.get("sentence"), href=row.get("url")))
        else:
            cells.append(status(value))
    return cells


def reason_cells(frame: pd.DataFrame) -> list[Cell]:
    """The reason in one line, machine paths stripped; the whole reason (paths stripped too) when opened."""
    cells = []
    for reason in frame["reason"]:
        if is_blank(reason):
            cells.append(Cell(BLANK))
            continue
        short, full = shorten(str(reason)), strip_paths(str(reason))
        cells.append(Cell(short or BLANK, "reason", full=full if full != short else None))
    return cells


def category_cells(frame: pd.DataFrame) -> list[Cell]:
    """Real GPU / simulated on CPU, real MNIST / synthetic: every row carries its division."""
    cells = []
    for simulated, kind, source in zip(frame.get("devices.simulated", pd.Series([None] * len(frame))),
                                       frame.get("devices.kind", pd.Series([None] * len(frame))),
                                       frame.get("data_source", pd.Series([None] * len(frame))), strict=True):
        case = {"devices": None if is_blank(kind) else {"kind": kind, "simulated": is_true(simulated)},
                "flags": {"simulated": is_true(simulated)}, "data_source": None if is_blank(source) else source}
        found = category(case)
        cells.append(Cell(found["short"], "category", full=None))
    return cells


def _case_table(frame: pd.DataFrame, run: RunData, columns: Columns, table_id: str, flag_names: tuple[str, ...],
                secondary: tuple[str, ...]) -> Table:
    """The key columns, then status and category, then the rest; secondary columns drop in print."""
    keys = dict(list(columns.items())[:4])
    rest = dict(list(columns.items())[4:])
    head = build(frame, keys, table_id)
    tail = build(frame, rest, table_id)
    extra = {"status": status_cells(frame, run), "category": category_cells(frame),
             **{h: tail.column(h) for h in tail.headers}, "flags": flags(frame, flag_names),
             "reason": reason_cells(frame)}
    return Table(table_id, (*head.headers, *extra),
                 tuple(tuple(row) + tuple(cells) for row, cells in zip(head.rows, zip(*extra.values(), strict=True),
                                                                         strict=True)),
                 "sortable cases", secondary)


def train_table(run: RunData, table_id: str, frame: pd.DataFrame | None = None) -> Table:
    """``frame``: another selection of training cases (``run.train_extra``), with its workers and Keras."""
    if frame is None:
        return _case_table(run.train, run, TRAIN_TABLE, table_id, TRAIN_FLAGS, TRAIN_SECONDARY)
    columns = {**TRAIN_TABLE, "workers": ("workers", number()), "Keras": ("keras", text)}
    return _case_table(frame, run, columns, table_id, (*TRAIN_FLAGS, "local_cluster"), TRAIN_SECONDARY)


def cpu_predict_table(run: RunData, table_id: str) -> Table:
    return _case_table(run.cpu_predict, run, CPU_TABLE, table_id, CPU_FLAGS, CPU_SECONDARY)


def native_cases_table(run: RunData, table_id: str) -> Table:
    return _case_table(run.native, run, NATIVE_CASES, table_id, NATIVE_FLAGS, NATIVE_SECONDARY)


def native_vs_keras(table: pd.DataFrame, table_id: str) -> Table:
    columns = dict(NATIVE_VS_KERAS)
    if table[["keras_util", "native_util", "ceiling_util"]].isna().all().all():
        for header in UTIL_COLUMNS:  # no NVML in this run: three columns of dashes say nothing
            columns.pop(header)
    return build(table, columns, table_id)


def overhead_table(table: pd.DataFrame, table_id: str) -> Table:
    return build(table, OVERHEAD, table_id)


def cpu_method_summary(table: pd.DataFrame, table_id: str) -> Table:
    """``derived.cpu_methods``: the [min, max] of each phase as a range."""
    table = table.copy()
    for column in [c for c in table.columns if c.endswith(".range")]:
        table[column] = [tuple(v) if isinstance(v, list) else v for v in table[column]]
    return build(table, CPU_METHODS, table_id)


def key_value(rows: list[tuple[str, Any]], table_id: str, cut: bool = False) -> Table:
    """Two columns, name and value (``kv_table`` renders the name as a row header); ``cut``: long values
    are shortened with the full value kept."""
    def value(v: Any) -> Cell:
        if isinstance(v, bool):
            return Cell(str(v).lower())
        return long_text(v) if cut else text(v)
    return Table(table_id, ("name", "value"), tuple((Cell(str(k)), value(v)) for k, v in rows), "kv")


def environment_rows(environment: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Name and value per fact; paths under homes and work folders are shortened to their last part."""
    rows: list[tuple[str, Any]] = []
    for key, value in environment.items():
        if key in ("packages", "env_vars") and isinstance(value, Mapping):
            rows += [(f"{key}.{k}", strip_paths(v) if isinstance(v, str) else v) for k, v in value.items()]
        elif key in ("gpus", "frameworks"):
            continue  # their own tables (gpu_table, the setup block)
        elif isinstance(value, (Mapping, list)):
            rows.append((key, json.dumps(value)))
        else:
            rows.append((key, value))
    return rows


def gpu_table(environment: Mapping[str, Any], table_id: str) -> Table | None:
    gpus = environment.get("gpus") or []
    if not gpus:
        return None
    frame = pd.DataFrame(gpus)
    columns = {c: (c, number() if c in ("index", "memory_total_mib") else text) for c in frame.columns}
    return build(frame, columns, table_id)


def sources_table(runs: list[RunData], table_id: str = "sources-table") -> Table:
    frame = pd.DataFrame([{
        "file": run.path.name, "run_id": run.run_id, "created_utc": run.document.get("created_utc"),
        "complete": str(run.document.get("complete")).lower(), "cases": len(run.document.get("cases", [])),
        "schema_version": run.document.get("schema_version"), "bytes": run.file_bytes, "sha256": run.file_sha256,
    } for run in runs])
    columns = {c: (c, number() if c in ("cases", "bytes", "schema_version") else text) for c in frame.columns}
    return build(frame, columns, table_id)
