"""The report's "Where the time goes" section: per batch and precision, the best Keras configuration over
input path, steps_per_execution and jit_compile, its ratio to the hand-written loop, NVML busy %, its share of
the device's peak (MFU), and the bottleneck named in a sentence — the tables ``bench.analyze.bottleneck`` and
``bench.analyze.run_tables`` store in the run's ``derived`` block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from bench.analyze import text as words
from bench.report import tables
from bench.report.charts import _colors, style, to_svg
from bench.report.load import RunData
from bench.report.section import Figure as ChartView
from bench.report.section import Missing


def inputs_chart(rows: list[Mapping[str, Any]], chart_id: str) -> str | None:
    """Best samples/s per input path in every cell: grouped bars on a linear axis from 0, each labelled with
    its value, and the native loop as a labelled mark."""
    cells = [r for r in rows if r.get("by_input")]
    if not cells:
        return None
    inputs = list(dict.fromkeys(value for r in cells for value in r["by_input"]))
    colors = _colors(inputs)
    width = 0.8 / max(1, len(inputs))
    with style(chart_id):
        fig = Figure(figsize=(max(5.0, 1.3 * len(cells) + 2.5), 3.8))
        ax = fig.subplots()
        top = 0.0
        for i, value in enumerate(inputs):
            xs = [j + (i - (len(inputs) - 1) / 2) * width for j in range(len(cells))]
            ys = [(r["by_input"].get(value) or {}).get("samples_per_second") or float("nan") for r in cells]
            bars = ax.bar(xs, ys, width=width, color=colors[value], label=value)
            ax.bar_label(bars, labels=[words.rate_value(y) if y == y else "" for y in ys], fontsize=7, padding=2,
                         rotation=90 if len(inputs) * len(cells) > 8 else 0)
            top = max([top, *(y for y in ys if y == y)])
        native = [r.get("native_samples_per_second") for r in cells]
        if any(native):
            xs = [j for j, v in enumerate(native) if v]
            ys = [v for v in native if v]
            ax.plot(xs, ys, linestyle="none", marker="_", markersize=28, color="black", label="native loop")
            for x, y in zip(xs, ys, strict=True):
                ax.annotate(f"native {words.rate_value(y)}", (x, y), textcoords="offset points", xytext=(0, 4),
                            ha="center", fontsize=7)
            top = max(top, *ys)
        ax.set_ylim(0, top * 1.25)
        ax.yaxis.set_major_formatter(lambda v, _pos: words.rate_value(v))
        ax.set_ylabel("samples/s (linear, from 0)")
        ax.set_xticks(range(len(cells)), [f"{r['backend']}\n{r['global_batch']}\n{r['precision']}" for r in cells],
                      fontsize=8)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
        fig.tight_layout()
        return to_svg(fig, chart_id, "Best samples/s per input path in each batch and precision, with the native loop")


def _pct(value: Any) -> tables.Cell:
    return tables.number(0)(value) if value is not None else tables.Cell(tables.BLANK)


def report_section(run: RunData, rid: str) -> dict[str, Any] | Missing:
    if run.train.empty:
        return Missing("the train suite did not run")
    derived = run.derived
    rows = derived.get("where_the_time_goes") or []
    if not rows:
        return Missing("no one-GPU training case finished")
    frame = pd.DataFrame(rows)
    frame["mfu_text"] = [f"{words.share(r['mfu'])} of {r['peak_kind']}" if r.get("mfu") is not None else
                         "unknown" for r in rows]
    # Rows from before host cost per step and [train] environment lack those columns: left out, not blank.
    optional = {
        "environment": ("environment", tables.text),
        "host CPU µs/step": ("host_us_per_step", tables.number(0)),
        "wall µs/step": ("wall_us_per_step", tables.number(0)),
        "device µs/step (native epoch_scan)": ("device_us_per_step", tables.number(0)),
    }
    present = {header: spec for header, spec in optional.items() if spec[0] in frame.columns}
    columns = {
        "backend": ("backend", tables.text),
        "global batch": ("global_batch", tables.number()),
        "precision": ("precision", tables.text),
        **{h: spec for h, spec in present.items() if spec[0] == "environment"},
        "best Keras configuration": ("best_config", tables.text),
        "samples/s": ("best_samples_per_second", tables.rate),
        **{h: spec for h, spec in present.items() if spec[0] != "environment"},
        "Keras / native": ("native_ratio", tables.ratio_pct),
        "GPU busy % (Keras)": ("utilization_pct", _pct),
        "GPU busy % (native)": ("native_utilization_pct", _pct),
        "device / host input": ("device_input_gain", tables.times),
        "steps_per_execution gain": ("spe_gain", tables.times),
        "TFLOP/s": ("achieved_tflops", tables.number(3)),
        "MFU": ("mfu_text", tables.text),
        "bottleneck": ("bottleneck", tables.text),
    }
    mixed = pd.DataFrame(derived.get("mixed_precision_speedups") or [])
    mixed_table = None
    if not mixed.empty:
        mixed_table = tables.build(mixed, {
            "backend": ("backend", tables.text), "GPUs": ("gpus", tables.number()),
            "global batch": ("global_batch", tables.number()), "policy": ("policy", tables.text),
            "Keras speed-up (best vs best)": ("speedup", tables.times),
            "native loop's speed-up": ("native_speedup", tables.times),
            "best input (mixed)": ("mixed_input", tables.text), "best input (float32)": ("float32_input", tables.text),
        }, f"{rid}-mixed-table")
    chart = ChartView(f"{rid}-chart-inputs", inputs_chart(rows, f"{rid}-chart-inputs"),
                      "Best samples/s of each input path per batch and precision (linear axis from 0, bars labelled "
                      "with their values; the best over steps_per_execution and jit_compile); the black mark is the "
                      "hand-written loop with its data on the device.", "no case finished")
    return {"sentences": [r["sentence"] for r in rows if r.get("sentence")],
            "mixed_summary": list(derived.get("mixed_precision_summary") or []),
            "figure": chart, "table": tables.build(frame, columns, f"{rid}-time-goes-table"),
            "mixed_table": mixed_table}
