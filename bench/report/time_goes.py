"""The report's "Where the time goes" section: per batch and precision, the best Keras configuration over
input path, steps_per_execution and jit_compile, its ratio to the hand-written loop, NVML busy %, and the
bottleneck named in a sentence — the tables ``bench.analyze.bottleneck`` stores in the run's ``derived``
block (recomputed from the cases for files written before that block existed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from bench.analyze.bottleneck import derive_tables
from bench.report import tables
from bench.report.charts import _colors, _short_rate, style, to_svg
from bench.report.load import RunData
from bench.report.section import Figure as ChartView
from bench.report.section import Missing

KEYS = ("where_the_time_goes", "best_configurations", "mixed_precision_speedups", "mixed_precision_summary")


def bottleneck_tables(document: Mapping[str, Any]) -> dict[str, Any]:
    """The stored tables, or the same tables derived from the cases when the file predates them."""
    derived = document.get("derived") or {}
    if derived.get("where_the_time_goes") is not None:
        return {key: derived.get(key) or [] for key in KEYS}
    # As bench.commands.run derives them: one-process Keras 3 cases (a cluster's or Keras 2's throughput is
    # another question, the multi-worker section's).
    cases = [c for c in document.get("cases") or [] if c.get("suite") in ("train", "native")
             and (c.get("params") or {}).get("workers", 1) in (1, None)
             and (c.get("params") or {}).get("keras", "keras3") in ("keras3", None)]
    return derive_tables(cases)


def inputs_chart(rows: list[Mapping[str, Any]], chart_id: str) -> str | None:
    """Best samples/s per input path in every cell (grouped bars, log scale) with the native loop as a mark."""
    cells = [r for r in rows if r.get("by_input")]
    if not cells:
        return None
    inputs = list(dict.fromkeys(value for r in cells for value in r["by_input"]))
    colors = _colors(inputs)
    width = 0.8 / max(1, len(inputs))
    with style(chart_id):
        fig = Figure(figsize=(max(5.0, 1.1 * len(cells) + 2.5), 3.6))
        ax = fig.subplots()
        for i, value in enumerate(inputs):
            xs = [j + (i - (len(inputs) - 1) / 2) * width for j in range(len(cells))]
            ys = [(r["by_input"].get(value) or {}).get("samples_per_second") or float("nan") for r in cells]
            ax.bar(xs, ys, width=width, color=colors[value], label=value)
        native = [r.get("native_samples_per_second") or float("nan") for r in cells]
        ax.plot(range(len(cells)), native, linestyle="none", marker="_", markersize=28, color="black",
                label="native loop")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_short_rate)
        ax.set_ylabel("samples/s (median)")
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
    found = bottleneck_tables(run.document)
    rows = found["where_the_time_goes"] or []
    if not rows:
        return Missing("no one-GPU training case finished")
    frame = pd.DataFrame(rows)
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
        "samples/s": ("best_samples_per_second", tables.smart),
        **{h: spec for h, spec in present.items() if spec[0] != "environment"},
        "Keras / native": ("native_ratio", tables.ratio_pct),
        "GPU busy % (Keras)": ("utilization_pct", _pct),
        "GPU busy % (native)": ("native_utilization_pct", _pct),
        "device / host input": ("device_input_gain", tables.times),
        "steps_per_execution gain": ("spe_gain", tables.times),
        "bottleneck": ("bottleneck", tables.text),
    }
    mixed = pd.DataFrame(found["mixed_precision_speedups"] or [])
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
                      "Best median samples/s of each input path per batch and precision (log scale; over "
                      "steps_per_execution and jit_compile); the black mark is the hand-written loop with its data "
                      "on the device.", "no case finished")
    return {"sentences": [r["sentence"] for r in rows if r.get("sentence")],
            "best": [r["sentence"] for r in found["best_configurations"] or []],
            "mixed_summary": list(found["mixed_precision_summary"] or []),
            "figure": chart, "table": tables.build(frame, columns, f"{rid}-time-goes-table"),
            "mixed_table": mixed_table}
