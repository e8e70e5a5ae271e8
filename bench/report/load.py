"""Result files -> one :class:`RunData` per run: the document plus tidy per-suite DataFrames.

Reads run documents (``results/<run_id>.json``) and, so an interrupted sweep can be looked at before it is
resumed, crash-safe case logs (``<run_id>.partial.jsonl``, shown as incomplete runs), both through the
store's one loader, ``bench.store.results.load_run``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.cases import jit_label
from bench.store.results import DEFAULT_RESULTS_DIR as DEFAULT_RESULTS_DIR
from bench.store.results import cases_frame, load_run

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
    "stand_in_device", "gpu_metrics_unreliable", "devices.simulated", "devices.kind", "data_source",
    *OVERHEAD_COLUMNS, "native_ratio", "native_case_id", "native_ratio_ceiling", "native_ceiling_case_id",
    "samples_per_round", "round_s", "workers", "keras", "per_worker_batch", "per_worker", "keras_version",
    "environment",
    "local_cluster", "cluster_failure.worker",
)
CPU_PREDICT_COLUMNS = (
    "case_id", "status", "reason", "backend", "precision", "train_jit_compile", "predict_batch", "method",
    "train_device", "train_device_stand_in", "prepare_s", "first_predict_s", "steady_s.median", "steady_s.q1",
    "steady_s.q3", "steady_s.min", "steady_s.max", "steady_s.cv", "total_s", "max_abs_diff", "tolerance",
    "predict_device", "variable_devices", "peak_rss_mib", "simulated", "synthetic_data", "unstable",
    "stand_in_device", "data_source", "train_device_is_predict_device", "placement_source", "steady_round_s",
)
NATIVE_COLUMNS = (
    "case_id", "status", "reason", "backend", "global_batch", "precision", "variant", "device",
    "implementation", "compile_s", "samples_per_second.median", "samples_per_second.q1", "samples_per_second.q3",
    "samples_per_second.iqr", "samples_per_second.cv", "samples_per_second.n", "step_time_s.median", "final_loss",
    "gpu_metrics.status", "gpu_metrics.reason", "gpu_metrics.window_s", "gpu_metrics.reliable",
    "gpu_metrics.unreliable_reason", "gpu_metrics.devices", "gpu_metrics.aggregate.utilization_pct_mean",
    "gpu_metrics.aggregate.utilization_pct_p95", "simulated", "synthetic_data", "unstable",
    "gpu_metrics_unreliable", "devices.kind", "data_source", *OVERHEAD_COLUMNS, "samples_per_round", "round_s",
)


@dataclass(frozen=True)
class RunData:
    """One result file as the report sees it."""

    path: Path
    document: dict[str, Any]
    train: pd.DataFrame  # the one-process Keras 3 sweep: what the training charts, findings and checks read
    cpu_predict: pd.DataFrame
    native: pd.DataFrame
    file_sha256: str
    file_bytes: int
    # Train cases off that sweep — workers > 1 or keras = tf_keras — drawn by bench.report.multiworker only, so
    # no chart pairs a cluster's or Keras 2's number with a one-process Keras 3 one.
    train_extra: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def run_id(self) -> str:
        return str(self.document.get("run_id") or self.path.stem)

    @property
    def config(self) -> dict[str, Any]:
        return self.document.get("config") or {}

    @property
    def environment(self) -> dict[str, Any]:
        return self.document.get("environment") or {}

    @property
    def cv_threshold(self) -> float:
        return float((self.config.get("measure") or {}).get("cv_threshold", 0.05))


def load_runs(paths: list[Path]) -> list[RunData]:
    runs = []
    for path in paths:
        path = Path(path)
        document = load_run(path)  # a .json document or a .partial.jsonl log (complete: false)
        raw = path.read_bytes()
        train, train_extra = split_train(train_frame(document))
        runs.append(RunData(
            path=path,
            document=document,
            train=train,
            train_extra=train_extra,
            cpu_predict=cpu_predict_frame(document),
            native=native_frame(document),
            file_sha256=hashlib.sha256(raw).hexdigest(),
            file_bytes=len(raw),
        ))
    return runs


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


def train_frame(document: dict[str, Any]) -> pd.DataFrame:
    """Training cases plus derived columns ``jit`` (label), ``xla`` (effective bool or NA; the name is
    historical: on torch it is torch.compile), ``jit_label`` ("XLA on", "torch.compile off") and
    ``variant`` (precision · jit_label)."""
    frame = _with_columns(cases_frame(document, suite="train"), TRAIN_COLUMNS)
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


def cpu_predict_frame(document: dict[str, Any]) -> pd.DataFrame:
    frame = _with_columns(cases_frame(document, suite="cpu_predict"), CPU_PREDICT_COLUMNS)
    frame["train_jit"] = [_jit_text(v) for v in frame["train_jit_compile"]]
    frame["setting"] = [
        f"{backend} · {prec} · train jit={jit} · batch {_int_text(batch)}"
        for backend, prec, jit, batch in zip(frame["backend"], frame["precision"], frame["train_jit"],
                                             frame["predict_batch"], strict=True)
    ]
    frame["not_applicable"] = not_applicable(frame)
    return frame


def native_frame(document: dict[str, Any]) -> pd.DataFrame:
    """Native-reference cases (``step`` per backend, JAX's ``epoch_scan`` ceiling), as train's columns."""
    frame = _with_columns(cases_frame(document, suite="native"), NATIVE_COLUMNS)
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
