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

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, PercentFormatter

from bench.report.findings import (
    STARVED_BELOW_PCT,
    THROUGHPUT,
    mixed_ratios,
    ok_train,
    scaling_table,
    xla_ratios,
)
from bench.report.load import compiler, is_false, is_true

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


def throughput_vs_batch(train: pd.DataFrame, chart_id: str = "throughput") -> str | None:
    """Median samples/s against global batch, one line per precision × jit_compile (labelled with the backend's
    compiler: XLA, or torch.compile on torch), one panel per backend × GPU count."""
    ok = ok_train(train)
    if ok.empty:
        return None
    panels = [(backend, int(g)) for backend in dict.fromkeys(ok["backend"])
              for g in sorted(ok.loc[ok["backend"] == backend, "gpus"].unique())]
    variants = list(dict.fromkeys(ok["variant"]))
    colors = _colors(variants)
    batches = sorted(int(b) for b in ok["global_batch"].unique())
    with style(chart_id):
        rows, cols = _grid(len(panels))
        fig = Figure(figsize=(3.4 * cols + 0.6, 2.7 * rows + 0.7))
        axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
        for ax, (backend, gpus) in zip(axes, panels, strict=False):
            facet = ok[(ok["gpus"] == gpus) & (ok["backend"] == backend)]
            for variant in variants:
                line = facet[facet["variant"] == variant].sort_values("global_batch")
                if line.empty:
                    continue
                median = line[THROUGHPUT].to_numpy(float)
                low = np.clip(median - pd.to_numeric(line["samples_per_second.q1"], errors="coerce").to_numpy(float), 0, None)
                high = np.clip(pd.to_numeric(line["samples_per_second.q3"], errors="coerce").to_numpy(float) - median, 0, None)
                ax.errorbar(line["global_batch"].astype(float), median, yerr=[np.nan_to_num(low), np.nan_to_num(high)],
                            marker="o", markersize=4, capsize=3, linewidth=1.4, color=colors[variant], label=variant)
            simulated = facet["simulated"].map(is_true).any()
            ax.set_title(f"{backend} · {gpus} {'GPU' if gpus == 1 else 'GPUs'}" + (" (simulated)" if simulated else ""))
            ax.set_xscale("log", base=2)
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.minorticks_off()
            ax.set_xlabel("global batch")
            ax.yaxis.set_major_formatter(FuncFormatter(_short_rate))
        # Once, after every panel is drawn: the y axis is shared, and fixing it earlier would clip later panels.
        top = float((ok["samples_per_second.q3"].astype(float).fillna(ok[THROUGHPUT])).max())
        axes[0].set_ylim(0, top * 1.05)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        axes[0].set_ylabel("samples/s (median, IQR bars)")
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[1:len(panels)]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="lower center", ncols=min(4, len(labels)), bbox_to_anchor=(0.5, -0.02))
        fig.tight_layout(rect=(0, 0.1 if len(labels) <= 4 else 0.16, 1, 1))
        return to_svg(fig, chart_id, "Training throughput against global batch")


def scaling(train: pd.DataFrame, chart_id: str = "scaling") -> str | None:
    """Speedup T_N/T_1 and efficiency T_N/(N·T_1) against GPU count, with the ideal (linear) lines."""
    table = scaling_table(train)
    if table.empty:
        return None
    gpu_counts = sorted({1, *table["gpus"].astype(int)})
    several = table["backend"].nunique() > 1
    lines = [(backend, int(b)) for backend in dict.fromkeys(table["backend"])
             for b in sorted(table.loc[table["backend"] == backend, "global_batch"].unique())]
    labels = {line: (f"{line[0]} · batch {line[1]}" if several else f"batch {line[1]}") for line in lines}
    colors = _colors(list(labels.values()))
    with style(chart_id):
        fig = Figure(figsize=(8.2, 3.2))
        speed_ax, eff_ax = fig.subplots(1, 2)
        speed_ax.plot(gpu_counts, gpu_counts, linestyle="--", color="0.4", label="ideal (linear)")
        eff_ax.axhline(1.0, linestyle="--", color="0.4", label="ideal (100%)")
        for backend, batch in lines:
            rows = table[(table["global_batch"] == batch) & (table["backend"] == backend)]
            rows = rows.assign(speedup=rows["tn"] / rows["t1"])
            stats = rows.groupby("gpus").agg(
                eff=("efficiency", "median"), eff_lo=("efficiency", "min"), eff_hi=("efficiency", "max"),
                sp=("speedup", "median"), sp_lo=("speedup", "min"), sp_hi=("speedup", "max"),
            )
            x = [1, *stats.index.astype(int)]
            label = labels[(backend, batch)]
            color = colors[label]
            speed_ax.errorbar(x, [1.0, *stats["sp"]], marker="o", markersize=4, capsize=3, color=color,
                              yerr=[[0, *(stats["sp"] - stats["sp_lo"])], [0, *(stats["sp_hi"] - stats["sp"])]],
                              label=label)
            eff_ax.errorbar(x, [1.0, *stats["eff"]], marker="o", markersize=4, capsize=3, color=color,
                            yerr=[[0, *(stats["eff"] - stats["eff_lo"])], [0, *(stats["eff_hi"] - stats["eff"])]],
                            label=label)
        for ax in (speed_ax, eff_ax):
            ax.set_xticks(gpu_counts, [str(g) for g in gpu_counts])
            ax.set_xlabel("GPUs (replicas)")
            ax.minorticks_off()
        speed_ax.set_ylabel("speedup T_N / T_1")
        speed_ax.set_ylim(bottom=0)
        speed_ax.set_title("Speedup over 1 GPU")
        eff_ax.set_ylabel("efficiency T_N / (N·T_1)")
        eff_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        eff_ax.set_ylim(0, max(1.1, float(table["efficiency"].max()) * 1.05))
        eff_ax.set_title("Scaling efficiency (median, min–max bars)")
        eff_ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
        fig.tight_layout()
        return to_svg(fig, chart_id, "Multi-GPU speedup and scaling efficiency against GPU count")


NO_PAIR = "n/a"


def _heat(ax, grid: pd.DataFrame, title: str, norm: TwoSlopeNorm):
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
            ax.text(j, i, f"{value:.2f}×", ha="center", va="center", fontsize=8, color="white" if dark else "black")
        else:
            ax.text(j, i, NO_PAIR, ha="center", va="center", fontsize=8, color="0.45")
    ax.set_title(title)
    return image


def _row_keys(frame: pd.DataFrame) -> list[tuple[str, int, int]]:
    return [(str(b), int(g), int(n)) for b, g, n in zip(frame["backend"], frame["gpus"], frame["global_batch"],
                                                        strict=True)]


def _row_label(key: tuple[str, int, int], several: bool) -> str:
    backend, gpus, batch = key
    return (f"{backend} · " if several else "") + f"{gpus} GPU · batch {batch}"


def _jit_name(frame: pd.DataFrame) -> str:
    """One compiler name for a panel's columns: XLA, torch.compile, or plain jit_compile when mixed."""
    kinds = {compiler(b) for b in frame["backend"]}
    return kinds.pop() if len(kinds) == 1 else "jit_compile"


def speedup_heatmap(train: pd.DataFrame, chart_id: str = "speedups") -> str | None:
    """Per-cell speedup of jit_compile (on/off: XLA, or torch.compile on torch) and of each mixed policy (vs
    float32) over backend × GPUs × batch × the rest. Rows run in sweep order of backends, then by GPU count
    and global batch numerically; a cell without a pair says "n/a". Colour follows log2 of the speedup, so
    2× faster and 2× slower are equally strong and one huge ratio (XLA off on JAX can be ~50× slower) does
    not wash out the small ones."""
    xla, mixed = xla_ratios(train), mixed_ratios(train)
    order = {b: i for i, b in enumerate(dict.fromkeys(str(b) for b in train["backend"].dropna()))}
    keys = sorted({*_row_keys(xla), *_row_keys(mixed)}, key=lambda k: (order.get(k[0], len(order)), k[1], k[2]))
    if not keys:
        return None
    several = len({k[0] for k in keys}) > 1
    labels = {k: _row_label(k, several) for k in keys}
    panels = []
    if not xla.empty:
        xla = xla.assign(row=[labels[k] for k in _row_keys(xla)])
        title = f"{_jit_name(xla)} on / off"
        panels.append((title, xla.pivot_table(index="row", columns="precision", values="ratio", sort=False)))
    if not mixed.empty:
        name = _jit_name(mixed)
        mixed = mixed.assign(
            row=[labels[k] for k in _row_keys(mixed)],
            column=[f"{p} · {name} {j}" for p, j in zip(mixed["policy"], mixed["jit"], strict=True)],
        )
        panels.append(("mixed / float32", mixed.pivot_table(index="row", columns="column", values="ratio",
                                                             sort=False)))
    values = np.concatenate([grid.to_numpy(float).ravel() for _, grid in panels])
    values = values[np.isfinite(values) & (values > 0)]
    spread = max(np.log2(1.25), float(np.max(np.abs(np.log2(values)))) * 1.05)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-spread, vmax=spread)
    # Every panel gets the same rows in the same order, so one set of row labels serves them all.
    row_order = [labels[k] for k in keys]
    panels = [(title, grid.reindex(row_order)) for title, grid in panels]
    widths = [max(1, grid.shape[1]) for _, grid in panels]
    with style(chart_id):
        fig = Figure(figsize=(1.25 * sum(widths) + 2.8, 0.3 * len(row_order) + 1.8))
        axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False, gridspec_kw={"width_ratios": widths})).ravel()
        image = None
        for i, (ax, (title, grid)) in enumerate(zip(axes, panels, strict=True)):
            image = _heat(ax, grid, title, norm)
            if i:
                ax.tick_params(labelleft=False)
        bar = fig.colorbar(image, ax=list(axes), shrink=0.9, label="speedup (×, log scale)")
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{2 ** v:.3g}×"))
        return to_svg(fig, chart_id, "Speedup heat-map: jit_compile and mixed precision per cell of the sweep")


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


def cpu_predict_times(cpu: pd.DataFrame, chart_id: str = "cpu-predict") -> str | None:
    """Stacked prepare / first call / steady call per method, one panel per setting; bars: steady IQR."""
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
                    ax.text(x, 0, " n/a" if quiet else f" {status}", rotation=90, ha="center", va="bottom",
                            fontsize=8, color="0.45" if quiet else "#b2182b")
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
        axes[0].set_ylabel("seconds")
        handles = [Patch(facecolor=color, label=phase) for phase, color in PHASE_COLORS.items()]
        shown_statuses = set(cpu["status"])
        handles += [Patch(facecolor="white", edgecolor="0.25", hatch=hatch, label=status.replace("_", " "))
                    for status, hatch in STATUS_HATCH.items() if hatch and status in shown_statuses]
        fig.legend(handles=handles, loc="lower center", ncols=len(handles), bbox_to_anchor=(0.5, -0.02))
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        return to_svg(fig, chart_id, "CPU prediction time per method")
