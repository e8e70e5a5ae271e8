"""The "Keras versions side by side" section: the same cells under each [train] environment (another Keras
beside the tool's own), host and wall time per step beside the native loop's — the rows
``bench.analyze.host_cost.keras_environments`` stored in the run's ``derived`` block; nothing is computed here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.report import tables
from bench.report.load import RunData
from bench.report.section import Missing

COLUMNS = {
    "backend": ("backend", tables.text),
    "global batch": ("global_batch", tables.number()),
    "precision": ("precision", tables.text),
    "input": ("input", tables.text),
    "steps_per_execution": ("steps_per_execution", tables.number()),
    "environment": ("environment", tables.text),
    "Keras": ("keras", tables.text),
    "host CPU µs/step": ("host_us_per_step", tables.number(0)),
    "wall µs/step": ("wall_us_per_step", tables.number(0)),
    "host / wall": ("host_share", tables.ratio_pct),
    "host vs default": ("host_vs_default", tables.times),
    "samples/s": ("samples_per_second", tables.smart),
    "native step loop: host µs/step": ("native_host_us_per_step", tables.number(0)),
    "native step loop: wall µs/step": ("native_wall_us_per_step", tables.number(0)),
    "device µs/step (native epoch_scan)": ("device_us_per_step", tables.number(0)),
}


def report_section(run: RunData, rid: str) -> dict[str, Any] | Missing:
    rows = (run.document.get("derived") or {}).get("keras_environments") or []
    if not rows:
        return Missing("no train case ran in more than one [train] environment")
    frame = pd.DataFrame(rows)
    frame["keras"] = [f"{v}{' (development build)' if dev else ''}" if v else "not recorded"
                      for v, dev in zip(frame["keras_version"], frame["development"], strict=True)]
    return {"table": tables.build(frame, COLUMNS, f"{rid}-keras-versions-table"),
            "sentences": [r["sentence"] for r in rows if r.get("sentence")]}
