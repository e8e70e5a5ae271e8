"""Charts as inline SVG strings, drawn with matplotlib's object-oriented API.

``Figure`` objects are rendered by matplotlib's SVG canvas directly; pyplot (and with it any GUI backend
or global figure registry) is never imported, so this runs headless like the Agg backend and leaves no
state behind. Text stays text (``svg.fonttype = none``) so the page is small and searchable. Every id in
an SVG is prefixed with the chart's id, because several SVGs share one HTML document and matplotlib
numbers its ids per figure.

Each function returns ``None`` when the run has nothing to draw; the HTML layer then says so.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, PercentFormatter

from bench.analyze.findings import STARVED_BELOW_PCT, ok_train
from bench.analyze.frames import compiler, is_false, is_true

STYLE = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "figure.dpi": 100,
}
PHASE_COLORS = {"prepare": "#8da0cb", "first call": "#fc8d62", "steady call": "#66c2a5"}
STATUS_HATCH = {"ok": "", "wrong": "xxx", "not_on_cpu": "///"}


@contextmanager
def style(chart_id: str) -> Iterator[None]:
    # The hash salt makes matplotlib's generated ids reproducible run to run.
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": chart_id}):
        yield


def to_svg(fig: Figure, chart_id: str, title: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{chart_id}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{chart_id}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{chart_id}-\1)", svg)
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" class="chart" ', 1)


def _short_rate(value: float, _pos: object = None) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.0f}k"
    return f"{value:.0f}"


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _colors(labels: list[str]) -> dict[str, tuple]:
    palette = matplotlib.colormaps["tab10"]
    return {label: palette(i % 10) for i, label in enumerate(labels)}


# --------------------------------------------------------------------------- training


Row = dict


def _varying(rows: list[Row], keys: tuple[str, ...]) -> list[str]:
    """The keys whose value differs between rows: the ones a label must name."""
    return [k for k in keys if len({repr(r.get(k)) for r in rows}) > 1]


def _describe(row: Row, keys: list[str]) -> str:
    names = {"jit": "", "input": "input ", "steps_per_execution": "spe ", "global_batch": "batch ", "gpus": "",
             "precision": "", "backend": ""}
    parts = []
    for key in keys:
        value = row.get(key)
        if key == "gpus":
            parts.append(f"{value} GPU{'s' if value != 1 else ''}")
        else:
            parts.append(f"{names.get(key, key + ' ')}{str(value).lower() if isinstance(value, bool) else value}")
    return " · ".join(parts)


LINE_KEYS = ("precision", "jit", "input", "steps_per_execution")


def series_id(row: Row) -> str:
    """"series--tensorflow--1--float32--XLA_off--device--1": backend, GPUs and every axis a line holds fixed."""
    parts = [row.get("backend"), row.get("gpus"), *(row.get(k) for k in LINE_KEYS)]
    return "series--" + "--".join(re.sub(r"[^\w.]+", "_", str(p)) for p in parts)


def throughput_vs_batch(summary: list[Row], chart_id: str = "throughput") -> str | None:
    """samples/s against global batch from ``derived.summary``, one panel per backend × GPU count. A line joins
    only cases equal in every other axis (precision, jit_compile, input, steps_per_execution), and its label
    names each of those that varies in the run, so no line mixes an axis its legend does not show."""
    rows = [r for r in summary if r.get("suite") == "train" and r.get("status") == "ok" and r.get("value")]
    if not rows:
        return None
    panels = list(dict.fromkeys((r["backend"], int(r["gpus"])) for r in rows))
    # Precision and jit_compile always name a line; input and steps_per_execution where the run varies them.
    shown = ["precision", "jit", *_varying(rows, LINE_KEYS[2:])]
    lines: dict[tuple[Any, ...], list[Row]] = {}
    for r in rows:
        lines.setdefault((r["backend"], int(r["gpus"]), *(repr(r.get(k)) for k in LINE_KEYS)), []).append(r)
    labels = {key: _describe(members[0], shown) for key, members in lines.items()}
    colors = _colors(list(dict.fromkeys(labels.values())))
    batches = sorted({int(r["global_batch"]) for r in rows})
    with style(chart_id):
        ncols = min(len(panels), 3)
        nrows = math.ceil(len(panels) / ncols)
        fig = Figure(figsize=(3.6 * ncols + 0.6, 2.8 * nrows + 0.9))
        axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
        top = 0.0
        for ax, (backend, gpus) in zip(axes, panels, strict=False):
            for key, members in lines.items():
                if key[:2] != (backend, gpus):
                    continue
                members = sorted(members, key=lambda r: r["global_batch"])
                x = [float(r["global_batch"]) for r in members]
                y = np.array([r["value"] for r in members], float)
                lo = np.array([r["ci_low"] if r.get("ci_low") is not None else (r.get("round_q1") or v)
                               for r, v in zip(members, y, strict=True)], float)
                hi = np.array([r["ci_high"] if r.get("ci_high") is not None else (r.get("round_q3") or v)
                               for r, v in zip(members, y, strict=True)], float)
                top = max(top, float(np.nanmax(hi)))
                drawn = ax.errorbar(x, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)], marker="o",
                                    markersize=4, capsize=3, linewidth=1.4, color=colors[labels[key]],
                                    label=labels[key])
                # The line's id names every axis it holds fixed, so a reader (or a test) can tell what it joins.
                drawn.lines[0].set_gid(series_id(members[0]))
            simulated = any(r["category"]["devices"] != "real GPU" for r in rows if (r["backend"], int(r["gpus"])) ==
                            (backend, gpus))
            ax.set_title(f"{backend} · {gpus} {'GPU' if gpus == 1 else 'GPUs'}" + (" (simulated)" if simulated else ""))
            ax.set_xscale("log", base=2)
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.minorticks_off()
            ax.set_xlabel("global batch")
            ax.yaxis.set_major_formatter(FuncFormatter(_short_rate))
        axes[0].set_ylim(0, top * 1.08)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        axes[0].set_ylabel("samples/s")
        handles, names = [], []
        for ax in axes[:len(panels)]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
                if lab not in names:
                    handles.append(h)
                    names.append(lab)
        ncol = min(3, len(names))
        fig.legend(handles, names, loc="lower center", ncols=ncol, bbox_to_anchor=(0.5, -0.02), fontsize=8)
        fig.tight_layout(rect=(0, 0.04 + 0.05 * math.ceil(len(names) / ncol), 1, 1))
        return to_svg(fig, chart_id, "Training throughput against global batch")


CONTEXT_KEYS = ("backend", "precision", "jit_compile", "input", "steps_per_execution", "global_batch")


def _gpus_of(label: str) -> int:
    return int(str(label).split(" ", 1)[0])


def scaling(comparisons: list[Row], chart_id: str = "scaling") -> str | None:
    """Scaling efficiency T_N / (N·T_1) against GPU count from the ``scaling`` comparisons: one line per
    setting that differs only in the GPU count, with its 95 % interval where there is one."""
    rows = [r for r in comparisons if r.get("kind") == "scaling" and r.get("efficiency") is not None]
    if not rows:
        return None
    contexts = [{**r["context"], "gpus_ref": _gpus_of(r["b_label"])} for r in rows]
    shown = _varying(contexts, CONTEXT_KEYS)
    lines: dict[str, list[Row]] = {}
    for r, context in zip(rows, contexts, strict=True):
        lines.setdefault(_describe(context, shown) or "every case", []).append(r)
    colors = _colors(list(lines))
    gpu_counts = sorted({1, *(_gpus_of(r["a_label"]) for r in rows)})
    with style(chart_id):
        fig = Figure(figsize=(7.6, 3.2))
        ax = fig.subplots()
        ax.axhline(1.0, linestyle="--", color="0.4", label="ideal (100%)")
        for label, members in lines.items():
            members = sorted(members, key=lambda r: _gpus_of(r["a_label"]))
            x = [_gpus_of(members[0]["b_label"]), *(_gpus_of(r["a_label"]) for r in members)]
            y = np.array([1.0, *(r["efficiency"] for r in members)], float)
            lo = np.array([1.0, *((r.get("efficiency_ci_low") or r["efficiency"]) for r in members)], float)
            hi = np.array([1.0, *((r.get("efficiency_ci_high") or r["efficiency"]) for r in members)], float)
            ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="o", markersize=4, capsize=3, color=colors[label],
                        label=label)
        ax.set_xticks(gpu_counts, [str(g) for g in gpu_counts])
        ax.set_xlabel("GPUs (replicas)")
        ax.minorticks_off()
        ax.set_ylabel("efficiency T_N / (N·T_1)")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(0, max(1.1, max(float(r.get("efficiency_ci_high") or r["efficiency"]) for r in rows) * 1.05))
        ax.set_title("Scaling efficiency at a fixed global batch")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
        fig.tight_layout()
        return to_svg(fig, chart_id, "Multi-GPU scaling efficiency against GPU count")


NO_PAIR = "n/a"
SAME = "≈"  # the interval holds 1: no measurable difference


def _heat(ax, grid: pd.DataFrame, marks: pd.DataFrame, title: str, norm: TwoSlopeNorm):
    ratios = grid.to_numpy(float)
    # A cell without a pair is light grey and says "n/a", so an empty cell is not read as "no change".
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(np.log2(ratios)), cmap=cmap, norm=norm, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), list(grid.columns), rotation=20, ha="right")
    ax.set_yticks(range(grid.shape[0]), list(grid.index))
    ax.grid(False)
    for (i, j), value in np.ndenumerate(ratios):
        if np.isfinite(value):
            dark = abs(norm(np.log2(value)) - 0.5) > 0.3
            mark = marks.iat[i, j] if isinstance(marks.iat[i, j], str) else ""
            ax.text(j, i, f"{mark}{value:.2f}×", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
        else:
            ax.text(j, i, NO_PAIR, ha="center", va="center", fontsize=8, color="0.45")
    ax.set_title(title)
    return image


ROW_KEYS = ("backend", "gpus", "global_batch", "input", "steps_per_execution")


def _row_label(context: Row, varying: list[str]) -> str:
    parts = [str(context["backend"])] if "backend" in varying else []
    parts += [f"{context.get('gpus')} GPU", f"batch {context.get('global_batch')}"]
    parts += [_describe(context, [k]) for k in ("input", "steps_per_execution") if k in varying]
    return " · ".join(parts)


def speedup_heatmap(comparisons: list[Row], chart_id: str = "speedups") -> str | None:
    """Every jit_compile and precision comparison as a cell: rows are what was held fixed (backend, GPUs,
    batch, and input / steps_per_execution where they vary), columns the pair compared. Rows in sweep order
    of backends, then by GPU count and batch numerically; a cell without a pair says "n/a"; "≈" marks an
    interval that holds 1. Colour follows log2 of the ratio, so 2× faster and 2× slower are equally strong."""
    rows = [r for r in comparisons if r.get("kind") == "axis" and r.get("axis") in ("jit_compile", "precision")
            and r.get("ratio")]
    if not rows:
        return None
    contexts = [r["context"] for r in rows]
    varying = _varying(contexts, ROW_KEYS)
    order = {b: i for i, b in enumerate(dict.fromkeys(c["backend"] for c in contexts))}
    seen: dict[tuple[str, ...], Row] = {}
    for c in contexts:
        seen.setdefault(tuple(repr(c.get(k)) for k in ROW_KEYS), c)
    ordered = sorted(seen.items(), key=lambda kv: (order[kv[1]["backend"]], int(kv[1].get("gpus") or 1),
                                                   int(kv[1].get("global_batch") or 0), str(kv[1].get("input")),
                                                   int(kv[1].get("steps_per_execution") or 1)))
    labels = {key: _row_label(c, varying) for key, c in ordered}
    row_order = list(dict.fromkeys(labels[key] for key, _ in ordered))
    panels = []
    for axis in ("jit_compile", "precision"):
        mine = [r for r in rows if r["axis"] == axis]
        if not mine:
            continue
        cells, marks = {}, {}
        for r in mine:
            c = r["context"]
            row = labels[tuple(repr(c.get(k)) for k in ROW_KEYS)]
            if axis == "jit_compile":
                name = compiler(c["backend"])
                column = f"{c.get('precision')} · {name} {r['a_label'].split()[-1]} / {r['b_label'].split()[-1]}"
            else:
                jit = c.get("jit_compile")
                column = (f"{r['a_label']} / {r['b_label']} · {compiler(c['backend'])} "
                          f"{str(jit).lower() if isinstance(jit, bool) else jit}")
            cells[(row, column)] = r["ratio"]
            marks[(row, column)] = SAME if r.get("verdict") == "no measurable difference" else ""
        columns = list(dict.fromkeys(col for _, col in cells))
        grid = pd.DataFrame([[cells.get((row, col), np.nan) for col in columns] for row in row_order],
                            index=row_order, columns=columns)
        mark = pd.DataFrame([[marks.get((row, col), "") for col in columns] for row in row_order],
                            index=row_order, columns=columns)
        title = "jit_compile" if axis == "jit_compile" else "precision"
        panels.append((title, grid, mark))
    values = np.concatenate([grid.to_numpy(float).ravel() for _, grid, _ in panels])
    values = values[np.isfinite(values) & (values > 0)]
    spread = max(np.log2(1.25), float(np.max(np.abs(np.log2(values)))) * 1.05)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-spread, vmax=spread)
    widths = [max(1, grid.shape[1]) for _, grid, _ in panels]
    with style(chart_id):
        fig = Figure(figsize=(1.6 * sum(widths) + 3.2, 0.3 * len(row_order) + 2.0))
        axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False, gridspec_kw={"width_ratios": widths})).ravel()
        image = None
        for i, (ax, (title, grid, mark)) in enumerate(zip(axes, panels, strict=True)):
            image = _heat(ax, grid, mark, title, norm)
            if i:
                ax.tick_params(labelleft=False)
        bar = fig.colorbar(image, ax=list(axes), shrink=0.9, label="ratio (×, log scale)")
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{2 ** v:.3g}×"))
        return to_svg(fig, chart_id, "Speedup heat-map: jit_compile and precision comparisons of the run")


# --------------------------------------------------------------------------- native reference


def _series(ax, rows: pd.DataFrame, column: str, **style_kw) -> None:
    rows = rows.dropna(subset=[column]).drop_duplicates("global_batch").sort_values("global_batch")
    if not rows.empty:
        ax.plot(rows["global_batch"].astype(float), rows[column].astype(float), **style_kw)


def native_vs_keras(table: pd.DataFrame, chart_id: str = "native") -> str | None:
    """Keras ``fit`` against the native step of its backend and the JAX ``epoch_scan`` ceiling: median
    samples/s against global batch on log-log axes (the gap is one to three orders of magnitude), one panel
    per precision, one colour per backend. ``table``: ``bench.report.overhead.native_table``."""
    if table.empty:
        return None
    precisions = list(dict.fromkeys(table["precision"]))
    backends = list(dict.fromkeys(table["backend"]))
    colors = _colors(backends)
    batches = sorted(int(b) for b in table["global_batch"].unique())
    with style(chart_id):
        rows, cols = _grid(len(precisions), 2)
        fig = Figure(figsize=(4.3 * cols + 0.6, 3.1 * rows + 0.9))
        axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
        for ax, precision in zip(axes, precisions, strict=False):
            facet = table[table["precision"] == precision]
            for backend in backends:
                mine, color = facet[facet["backend"] == backend], colors[backend]
                for xla, marker, alpha in (("on", "o", 1.0), ("off", "x", 0.7)):
                    keras = mine[mine["xla"].astype(str).str.endswith(xla)]
                    _series(ax, keras, "keras", color=color, marker=marker, markersize=5, linewidth=1.5,
                            alpha=alpha, label=f"{backend} Keras fit · {compiler(backend)} {xla}")
                _series(ax, mine, "native", color=color, marker="s", markersize=4, linewidth=1.3, linestyle="--",
                        label=f"{backend} native step")
            _series(ax, facet, "ceiling", color="black", marker="^", markersize=4, linewidth=1.2, linestyle=":",
                    label="jax epoch_scan (ceiling)")
            ax.set_title(precision)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.minorticks_off()
            ax.set_xlabel("global batch")
            ax.yaxis.set_major_formatter(FuncFormatter(_short_rate))
        for ax in axes[len(precisions):]:
            ax.set_visible(False)
        axes[0].set_ylabel("samples/s (median, log scale)")
        handles, labels = [], []
        for ax in axes[:len(precisions)]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        ncols = min(4, len(labels))
        fig.legend(handles, labels, loc="lower center", ncols=ncols, bbox_to_anchor=(0.5, -0.02))
        fig.tight_layout(rect=(0, 0.06 + 0.05 * math.ceil(len(labels) / ncols), 1, 1))
        return to_svg(fig, chart_id, "Keras fit against a native loop and the epoch_scan ceiling, per global batch")


# --------------------------------------------------------------------------- NVML


SHORT_PRECISION = {"float32": "fp32", "mixed_float16": "mixed fp16", "mixed_bfloat16": "mixed bf16"}


def _case_label(row: pd.Series, backend: bool = False) -> str:
    precision = SHORT_PRECISION.get(row["precision"], str(row["precision"]))
    return ((f"{row['backend']} · " if backend else "")
            + f"{int(row['gpus'])}×GPU · b{int(row['global_batch'])} · {precision} · {row['jit_label']}")


def gpu_utilisation(train: pd.DataFrame, chart_id: str = "nvml") -> str | None:
    """NVML utilisation (mean, with p95 marks) and peak memory per case, over the timed rounds only."""
    ok = ok_train(train)
    measured = ok[ok["gpu_metrics.status"] == "ok"]
    if measured.empty:
        return None
    several = measured["backend"].nunique() > 1
    labels = [_case_label(row, several) for _, row in measured.iterrows()]
    util = pd.to_numeric(measured["gpu_metrics.aggregate.utilization_pct_mean"], errors="coerce").to_numpy(float)
    p95 = pd.to_numeric(measured["gpu_metrics.aggregate.utilization_pct_p95"], errors="coerce").to_numpy(float)
    memory = pd.to_numeric(measured["peak_memory_mib"], errors="coerce").to_numpy(float)
    unreliable = measured["gpu_metrics.reliable"].map(is_false).to_numpy(bool)
    y = np.arange(len(labels))
    with style(chart_id):
        fig = Figure(figsize=(9.0, 0.2 * len(labels) + 1.4))
        util_ax, mem_ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
        colors = ["#d95f02" if u < STARVED_BELOW_PCT else "#1b9e77" for u in np.nan_to_num(util)]
        bars = util_ax.barh(y, np.nan_to_num(util), color=colors, height=0.7)
        for bar, flag in zip(bars, unreliable, strict=False):
            if flag:
                bar.set_hatch("///")
                bar.set_alpha(0.55)
        util_ax.plot(p95, y, linestyle="none", marker="|", markersize=7, color="black", label="p95")
        util_ax.axvline(STARVED_BELOW_PCT, color="0.3", linestyle=":", label=f"starved below {STARVED_BELOW_PCT:.0f}%")
        util_ax.set_xlim(0, 100)
        util_ax.set_xlabel("GPU utilisation %, mean (hatched: unreliable window)")
        util_ax.set_yticks(y, labels, fontsize=7)
        util_ax.invert_yaxis()
        util_ax.legend(loc="lower right", fontsize=7)
        mem_ax.barh(y, np.nan_to_num(memory), color="#7570b3", height=0.7)
        mem_ax.set_xlabel("peak memory, MiB (busiest GPU)")
        fig.tight_layout()
        return to_svg(fig, chart_id, "GPU utilisation and peak memory per case")


# --------------------------------------------------------------------------- CPU prediction


def cpu_predict_times(cpu: pd.DataFrame, chart_id: str = "cpu-predict",
                      known: dict[str, str] | None = None) -> str | None:
    """Stacked prepare / first call / steady call per method, one panel per setting (its predict batch is the
    predict() batch size); bars: steady IQR. ``known``: case id -> the known limitation a failure is."""
    known = known or {}
    if cpu.empty or pd.to_numeric(cpu["first_predict_s"], errors="coerce").isna().all():
        return None  # nothing ran far enough to be timed
    settings = list(dict.fromkeys(cpu["setting"]))
    methods = list(dict.fromkeys(cpu["method"]))
    with style(chart_id):
        rows, cols = _grid(len(settings), 2)
        fig = Figure(figsize=(4.4 * cols + 0.4, 3.0 * rows + 0.6))
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False, sharey=True)).ravel()
        top = 0.0  # over every panel: the y axis is shared, so the tallest bar sets it for all
        for ax, setting in zip(axes, settings, strict=False):
            facet = cpu[cpu["setting"] == setting].set_index("method")
            for x, method in enumerate(methods):
                if method not in facet.index:
                    continue
                row = facet.loc[method]
                if isinstance(row, pd.DataFrame):
                    row = row.iloc[-1]
                phases = [pd.to_numeric(row.get(c), errors="coerce") for c in ("prepare_s", "first_predict_s", "steady_s.median")]
                status = row["status"]
                if status not in STATUS_HATCH or any(pd.isna(p) for p in phases):
                    # A method that does not exist on this backend is grey "n/a", not a red failure.
                    quiet = is_true(row.get("not_applicable"))
                    label = " n/a" if quiet else f" {status}" + (f" ({known[row['case_id']]})"
                                                                  if row.get("case_id") in known else "")
                    ax.text(x, 0, label, rotation=90, ha="center", va="bottom", fontsize=7,
                            color="0.45" if quiet else "#b2182b")
                    continue
                bottom = 0.0
                for color, value in zip(PHASE_COLORS.values(), phases, strict=True):
                    ax.bar(x, value, bottom=bottom, color=color, width=0.65, hatch=STATUS_HATCH[status],
                           edgecolor="white" if status == "ok" else "0.25", linewidth=0.5)
                    bottom += value
                q1, q3 = (pd.to_numeric(row.get(c), errors="coerce") for c in ("steady_s.q1", "steady_s.q3"))
                if pd.notna(q1) and pd.notna(q3):
                    ax.errorbar(x, bottom, yerr=[[max(phases[2] - q1, 0)], [max(q3 - phases[2], 0)]],
                                color="black", capsize=3, linewidth=1)
                if status != "ok":
                    ax.text(x, bottom, status.replace("_", " "), ha="center", va="bottom", fontsize=7, color="#b2182b")
                top = max(top, bottom)
            ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right")
            ax.set_xlim(-0.6, len(methods) - 0.4)
            ax.set_title(setting, fontsize=9)
        axes[0].set_ylim(0, top * 1.15 if top else 1)
        for ax in axes[len(settings):]:
            ax.set_visible(False)
        axes[0].set_ylabel("seconds (each call: every test image)")
        handles = [Patch(facecolor=color, label=phase) for phase, color in PHASE_COLORS.items()]
        shown_statuses = set(cpu["status"])
        handles += [Patch(facecolor="white", edgecolor="0.25", hatch=hatch, label=status.replace("_", " "))
                    for status, hatch in STATUS_HATCH.items() if hatch and status in shown_statuses]
        fig.legend(handles=handles, loc="lower center", ncols=len(handles), bbox_to_anchor=(0.5, -0.02))
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        return to_svg(fig, chart_id, "CPU prediction time per method")
