"""Which GPU monitor a case gets: NVML around the timed rounds on GPUs, an explicit 'unavailable' else.

Kept apart from :mod:`bench.monitor.nvml` (the tracker itself) so the measurement code never has to know why
there is nothing to sample: CPU replicas, no driver, or a mapping problem all become a reason string.
"""

from __future__ import annotations

from typing import Any

from bench.config import NvmlSettings
from bench.monitor import nvml
from bench.monitor.gpu_summary import gpu_metrics_unavailable


class UnavailableMonitor:
    """A do-nothing tracker whose result says why nothing was sampled (never a silent zero)."""

    def __init__(self, reason: str):
        self.reason = reason

    def __enter__(self) -> UnavailableMonitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def result(self) -> dict[str, Any]:
        return gpu_metrics_unavailable(self.reason)


def monitor_for(placement: Any, settings: NvmlSettings) -> Any:
    if not settings.enabled:
        return UnavailableMonitor("NVML sampling disabled by the config ([nvml] enabled = false)")
    if placement.kind != "gpu":
        return UnavailableMonitor("replicas ran on CPU devices: no GPU to sample")
    # CUDA ordinals of the physical GPUs; simulated logical GPUs all sit on ordinal 0. NvmlMonitor
    # resolves them against CUDA_VISIBLE_DEVICES on entry and reports mapping problems as unavailable.
    return nvml.NvmlMonitor(sorted(set(placement.cuda_ordinals)), settings)
