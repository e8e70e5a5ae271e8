"""What the NVML sampler collected, summarised into a case's ``metrics.gpu_metrics`` (pure functions).

The sampler (:class:`bench.monitor.nvml.NvmlMonitor`) only reads NVML; everything here is arithmetic on
what it read, so it is tested without threads or a driver. The record's fields are documented in
``bench.store.schema.GpuMetrics`` and docs/results.md.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from bench.config import NvmlSettings
from bench.monitor.inventory import GpuRef

# Buffer samples covering less of the window than this suggest the driver stopped sampling (it does
# while a GPU is idle), which would overstate the mean.
MIN_BUFFER_COVERAGE = 0.75


@dataclass
class DeviceSamples:
    """Everything read from one GPU over the window, as the summary needs it."""

    ref: GpuRef
    utilization: list[float]  # percent, from the sample buffer or the polls (see utilization_method)
    utilization_method: str | None  # "samples_buffer", "polling", or None without data
    buffer_timestamps_us: list[int]  # of the buffer samples used (empty when polled)
    sample_clock: str | None  # the buffer's clock when it was used ("wall" or "driver")
    memory_util: list[float]
    memory_util_method: str | None
    polled: dict[str, list[float]]  # power_w, sm_clock_mhz, memory_used_mib, temperature_c
    reasons_seen: Counter[str] = field(default_factory=Counter)
    reason_polls: int = 0
    unsupported: set[str] = field(default_factory=set)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)


def gpu_metrics_unavailable(reason: str, window_s: float | None = None) -> dict[str, Any]:
    """A ``gpu_metrics`` record for a case with no NVML data (also usable by a case that never ran)."""
    return {
        "status": "unavailable",
        "reason": reason,
        "method": None,
        "window_s": window_s,
        "reliable": None,
        "unreliable_reason": None,
        "samples_in_window": None,
        "polls": 0,
        "poll_interval_s": None,
        "devices": [],
        "aggregate": aggregate([]),
    }


def gpu_metrics(devices: list[DeviceSamples], window_s: float, settings: NvmlSettings, polls: int,
                poll_interval_s: float, notes: list[str]) -> dict[str, Any]:
    """The ``gpu_metrics`` record of a window in which NVML answered (``notes``: sampler trouble)."""
    summaries = [device_summary(device, window_s) for device in devices]
    methods = {d["method"] for d in summaries if d["method"]}
    reasons = unreliable_reasons(summaries, window_s, settings) + notes
    return {
        "status": "ok",
        "reason": None,
        "method": methods.pop() if len(methods) == 1 else ("mixed" if methods else None),
        "window_s": window_s,
        "reliable": not reasons,
        "unreliable_reason": "; ".join(reasons) or None,
        "samples_in_window": min(d["samples_in_window"] for d in summaries),
        "polls": polls,
        "poll_interval_s": poll_interval_s,
        "devices": summaries,
        "aggregate": aggregate([device.utilization for device in devices]),
    }


def device_summary(device: DeviceSamples, window_s: float) -> dict[str, Any]:
    """One GPU's entry of ``gpu_metrics.devices``."""
    ref, polled = device.ref, device.polled
    return {
        **{k: getattr(ref, k) for k in ("nvml_index", "uuid", "name", "pci_bus_id", "cuda_ordinal")},
        "matched_by": ref.matched_by,
        "ambiguous_order": ref.ambiguous,
        "method": device.utilization_method,
        "sample_clock": device.sample_clock,
        "samples_in_window": len(device.utilization),
        "buffer_coverage": coverage(device.buffer_timestamps_us, window_s),
        "utilization_pct": percent_stats(device.utilization),
        "memory_util_method": device.memory_util_method,
        "memory_util_pct": percent_stats(device.memory_util),
        "memory_used_peak_mib": max(polled["memory_used_mib"], default=None),
        "power_mean_w": _mean(polled["power_w"]),
        "sm_clock_mean_mhz": _mean(polled["sm_clock_mhz"]),
        "temperature_max_c": max(polled["temperature_c"], default=None),
        "throttle_reasons": sorted(device.reasons_seen),
        "throttle_reason_fraction": {
            name: count / device.reason_polls for name, count in sorted(device.reasons_seen.items())
        },
        "unsupported": sorted(device.unsupported),
        "query_errors": {k: dict(v) for k, v in sorted(device.errors.items())},
    }


def unreliable_reasons(devices: list[dict[str, Any]], window_s: float, settings: NvmlSettings) -> list[str]:
    """Why a window's numbers describe noise rather than the workload (empty when they do not)."""
    # NVML's utilization.gpu is the share of a sample period (1/6 s to 1 s, by GPU) in which any kernel
    # ran. A window of a second or two holds only a handful of periods, and a 0 % or 100 % period at
    # either edge swings the mean by tens of points.
    reasons = []
    if window_s < settings.min_window_s:
        reasons.append(f"window {window_s:.2f} s is shorter than min_window_s = {settings.min_window_s:g} s")
    few = [d for d in devices if d["samples_in_window"] < settings.min_samples]
    if few:
        counts = ", ".join(f"GPU {d['nvml_index']}: {d['samples_in_window']}" for d in few)
        reasons.append(f"fewer utilisation samples than min_samples = {settings.min_samples} ({counts})")
    for d in devices:
        if d["buffer_coverage"] is not None and d["buffer_coverage"] < MIN_BUFFER_COVERAGE:
            reasons.append(
                f"GPU {d['nvml_index']}: buffer samples cover {d['buffer_coverage']:.0%} of the window "
                "(the driver skips idle periods, so the mean overstates utilisation)"
            )
    return reasons


def coverage(timestamps_us: list[int], window_s: float) -> float | None:
    """Share of the window spanned by buffer samples, each taken to cover one median sample period."""
    if len(timestamps_us) < 2 or window_s <= 0:
        return None
    period_s = statistics.median(b - a for a, b in pairwise(timestamps_us)) / 1_000_000
    return min(1.0, len(timestamps_us) * period_s / window_s)


def percent_stats(values: list[float]) -> dict[str, Any]:
    """Mean, median and 95th percentile (numpy's linear interpolation) of a percentage series."""
    if not values:
        return {"mean": None, "p50": None, "p95": None, "n": 0}
    p50, p95 = (float(p) for p in np.percentile(values, [50, 95]))
    return {"mean": statistics.fmean(values), "p50": p50, "p95": p95, "n": len(values)}


def aggregate(series: list[list[float]]) -> dict[str, Any]:
    """Utilisation over the case's GPUs: all their samples pooled, plus the least busy GPU's mean."""
    pooled = percent_stats([v for values in series for v in values])
    means = [statistics.fmean(values) for values in series if values]
    return {
        "utilization_pct_mean": pooled["mean"],
        "utilization_pct_p50": pooled["p50"],
        "utilization_pct_p95": pooled["p95"],
        "utilization_pct_min_device_mean": min(means, default=None),
        "devices": len(means),
    }


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None
