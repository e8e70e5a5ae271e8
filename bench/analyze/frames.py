"""A run document's cases as tidy per-suite DataFrames, the columns the analysis and the report read.

One row per case (``bench.store.results.cases_frame``) with the columns below always present (NaN where a
suite did not run or a case failed), plus labels derived from the params: what ``jit_compile`` became on
the case's backend ("XLA on", "torch.compile off", "XLA auto→on"), and per CPU-prediction case its
setting in words. Nothing here compares cases; that is the modules beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.cases import jit_label
from bench.store.results import frame_of_cases

OVERHEAD_COLUMNS = (
    "monitor_overhead.overhead_pct", "monitor_overhead.off_samples_per_second.median",
    "monitor_overhead.off_samples_per_second.cv",
)
# Columns the report reads; missing ones (a suite that did not run, a failed case) are filled with NaN so
# every function below can index them without asking first.
TRAIN_COLUMNS = (
    "case_id", "status", "reason", "backend", "gpus", "global_batch", "precision", "jit_compile",
    "jit_compile_resolved", "per_replica_batch", "compile_s", "samples_per_second.median",
    "samples_per_second.q1", "samples_per_second.q3", "samples_per_second.iqr", "samples_per_second.min",
    "samples_per_second.max", "samples_per_second.cv", "samples_per_second.n", "step_time_s.median",
    "final_loss", "final_accuracy", "timing_check.rel_diff", "gpu_metrics.status", "gpu_metrics.reason",
    "gpu_metrics.window_s", "gpu_metrics.reliable", "gpu_metrics.unreliable_reason", "gpu_metrics.devices",
    "gpu_metrics.aggregate.utilization_pct_mean", "gpu_metrics.aggregate.utilization_pct_p50",
    "gpu_metrics.aggregate.utilization_pct_p95", "simulated", "synthetic_data", "unstable",
    "stand_in_device", "gpu_metrics_unreliable", "retried_after_crash", "devices.simulated", "devices.kind",
    "data_source",
    *OVERHEAD_COLUMNS, "native_ratio", "native_case_id", "native_ratio_ceiling", "native_ceiling_case_id",
    "samples_per_round", "round_s", "workers", "keras", "per_worker_batch", "per_worker", "keras_version",
    "environment",
    "local_cluster", "cluster_failure.worker", "input", "steps_per_execution",
)
CPU_PREDICT_COLUMNS = (
    "case_id", "status", "reason", "backend", "precision", "train_jit_compile", "predict_batch", "method",
    "train_device", "train_device_stand_in", "prepare_s", "first_predict_s", "steady_s.median", "steady_s.q1",
    "steady_s.q3", "steady_s.min", "steady_s.max", "steady_s.cv", "total_s", "max_abs_diff", "tolerance",
    "predict_device", "variable_devices", "peak_rss_mib", "simulated", "synthetic_data", "unstable",
    "stand_in_device", "retried_after_crash", "data_source", "train_device_is_predict_device", "placement_source",
    "steady_round_s", "predict_samples", "devices.simulated", "devices.kind",
)
NATIVE_COLUMNS = (
    "case_id", "status", "reason", "backend", "global_batch", "precision", "variant", "device",
    "implementation", "compile_s", "samples_per_second.median", "samples_per_second.q1", "samples_per_second.q3",
    "samples_per_second.iqr", "samples_per_second.cv", "samples_per_second.n", "step_time_s.median", "final_loss",
    "gpu_metrics.status", "gpu_metrics.reason", "gpu_metrics.window_s", "gpu_metrics.reliable",
    "gpu_metrics.unreliable_reason", "gpu_metrics.devices", "gpu_metrics.aggregate.utilization_pct_mean",
    "gpu_metrics.aggregate.utilization_pct_p95", "simulated", "synthetic_data", "unstable",
    "gpu_metrics_unreliable", "retried_after_crash", "devices.kind", "devices.simulated", "data_source",
    *OVERHEAD_COLUMNS,
    "samples_per_round", "round_s",
)


def _with_columns(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.NA if column in ("status", "case_id") else float("nan")
    return frame


def compiler(backend: Any) -> str:
    """What ``jit_compile=True`` compiles with on a backend: XLA on TensorFlow and JAX, torch.compile on
    torch (Keras 3's torch backend), so no torch case is ever labelled "XLA"."""
    return "torch.compile" if backend == "torch" else "XLA"


def compilers(names: list[str]) -> str:
    """The compiler(s) behind jit_compile for these backends, for captions: "XLA", "torch.compile", or
    "XLA; torch.compile on torch" when both kinds are on the page."""
    kinds = list(dict.fromkeys(compiler(name) for name in names)) or ["XLA"]
    return kinds[0] if len(kinds) == 1 else "XLA; torch.compile on torch"


def _cases(document: Any) -> list[Any]:
    """The case records of a document (plain data), or the list itself."""
    return list(document.get("cases") or []) if isinstance(document, dict) else list(document)


def train_frame(document: dict[str, Any] | list[dict[str, Any]]) -> pd.DataFrame:
    """Training cases plus derived columns ``jit`` (label), ``xla`` (effective bool or NA; the name is
    historical: on torch it is torch.compile), ``jit_label`` ("XLA on", "torch.compile off") and
    ``variant`` (precision · jit_label)."""
    frame = _with_columns(frame_of_cases(_cases(document), suite="train"), TRAIN_COLUMNS)
    frame["jit"] = [_jit_text(v) for v in frame["jit_compile"]]
    frame["xla"] = [_effective_jit(p, r) for p, r in zip(frame["jit_compile"], frame["jit_compile_resolved"], strict=True)]
    frame["jit_resolved_label"] = [_resolved_text(p, x) for p, x in zip(frame["jit_compile"], frame["xla"], strict=True)]
    frame["jit_label"] = [f"{compiler(b)} {lab}" for b, lab in zip(frame["backend"], frame["jit_resolved_label"], strict=True)]
    frame["variant"] = [f"{prec} · {lab}" for prec, lab in zip(frame["precision"], frame["jit_label"], strict=True)]
    frame["peak_memory_mib"] = [_peak_memory(devs) for devs in frame["gpu_metrics.devices"]]
    return frame


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def split_train(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one-process Keras 3 cases in the tool's own Python, the others): cases from before the workers, keras and
    environment axes are the first; another [train] environment's Keras is drawn apart (its own section)."""
    workers = frame["workers"].map(lambda v: 1 if _blank(v) else v)
    keras = frame["keras"].map(lambda v: v if isinstance(v, str) else "keras3")
    environment = frame["environment"].map(lambda v: v if isinstance(v, str) else "default")
    extra = (workers != 1) | (keras != "keras3") | (environment != "default")
    return frame[~extra].reset_index(drop=True), frame[extra].reset_index(drop=True)


def cpu_predict_frame(document: dict[str, Any] | list[dict[str, Any]]) -> pd.DataFrame:
    frame = _with_columns(frame_of_cases(_cases(document), suite="cpu_predict"), CPU_PREDICT_COLUMNS)
    frame["train_jit"] = [_jit_text(v) for v in frame["train_jit_compile"]]
    frame["setting"] = [
        f"{backend} · {prec} · train jit={jit} · predict batch {_int_text(batch)}"
        for backend, prec, jit, batch in zip(frame["backend"], frame["precision"], frame["train_jit"],
                                             frame["predict_batch"], strict=True)
    ]
    frame["not_applicable"] = not_applicable(frame)
    return frame


def native_frame(document: dict[str, Any] | list[dict[str, Any]]) -> pd.DataFrame:
    """Native-reference cases (``step`` per backend, JAX's ``epoch_scan`` ceiling), as train's columns."""
    frame = _with_columns(frame_of_cases(_cases(document), suite="native"), NATIVE_COLUMNS)
    frame["peak_memory_mib"] = [_peak_memory(devs) for devs in frame["gpu_metrics.devices"]]
    return frame


def not_applicable(cpu: pd.DataFrame) -> pd.Series:
    """CPU-prediction cases skipped because the method does not exist on their backend (by design, not a
    failure): ``strategy`` off TensorFlow, where tf.distribute does not exist (docs/results.md)."""
    if cpu.empty:
        return pd.Series([], dtype=bool, index=cpu.index)
    return ((cpu["method"] == "strategy") & (cpu["status"] == "skipped")
            & cpu["backend"].notna() & (cpu["backend"] != "tensorflow")).astype(bool)


def backends(*frames: pd.DataFrame) -> list[str]:
    """The backends in these frames, in order of first appearance (sweep order)."""
    seen: dict[str, None] = {}
    for frame in frames:
        if "backend" in frame.columns:
            seen.update(dict.fromkeys(str(b) for b in frame["backend"].dropna()))
    return list(seen)


def is_true(value: Any) -> bool:
    """A literal true flag (Python or numpy bool); missing, NaN or anything else is not set."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def is_false(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_)) and not bool(value)


def _jit_text(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "on" if value else "off"
    return "auto" if value == "auto" else "?"


def _resolved_text(param: Any, effective: Any) -> str:
    """``on``/``off`` for explicit values, ``auto→on`` where "auto" was resolved, ``auto`` where unknown."""
    if param == "auto" and isinstance(effective, (bool, np.bool_)):
        return f"auto→{_jit_text(effective)}"
    return _jit_text(param)


def _effective_jit(param: Any, resolved: Any) -> Any:
    """What XLA actually was: the resolved value where recorded, else the explicit parameter."""
    if isinstance(resolved, (bool, np.bool_)):
        return bool(resolved)
    if isinstance(param, (bool, np.bool_)):
        return bool(param)
    return pd.NA


def _peak_memory(devices: Any) -> float:
    if not isinstance(devices, list):
        return float("nan")
    peaks = [d.get("memory_used_peak_mib") for d in devices if isinstance(d, dict)]
    peaks = [float(p) for p in peaks if isinstance(p, (int, float))]
    return max(peaks) if peaks else float("nan")


def _int_text(value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def jit_param_label(value: Any) -> str:
    """The config spelling of a jit_compile value (true/false/auto), for case labels."""
    try:
        return jit_label(value)
    except (TypeError, ValueError):
        return str(value)


class Frames:
    """A document's cases, one DataFrame per suite: ``train`` (the one-process Keras 3 sweep), ``train_extra``
    (workers > 1 or Keras 2), ``native`` and ``cpu_predict``."""

    def __init__(self, document: dict[str, Any] | list[dict[str, Any]]):
        self.train, self.train_extra = split_train(train_frame(document))
        self.native = native_frame(document)
        self.cpu_predict = cpu_predict_frame(document)
