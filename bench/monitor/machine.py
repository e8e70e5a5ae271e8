"""What else the machine did while a case was timed: other processes' CPU time and the hypervisor's steal.

A tracker around exactly the timed rounds, like the NVML monitor. It reads ``/proc/stat`` (every CPU's time
by state, in clock ticks) and this process's own CPU time (``resource.getrusage``) at both ends of the window:

- ``others_cpu_share`` = (busy time of all CPUs - this process's CPU time) / all CPUs' time: another job
  loading the box. A busy process on one of two cores reads about 0.5.
- ``steal_share`` = steal / all CPUs' time: a virtual machine losing its CPUs to other guests.
- this process's page faults over the window (minor and major), a per-process effect that could make one
  process slower than another (README, "Noise at its source").

Why: a busy process changes the machine, not only its speed (on this project's 2-core box one busy core
left float32 cases at their speed and halved mixed_bfloat16 ones), so a run must say when it happened rather
than report a mixture as one number. The control workload sees a uniform slowdown; this sees contention
even when the control does not. Linux only; elsewhere every field is None.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from typing import Any

STAT_PATH = "/proc/stat"
# /proc/stat "cpu" line: user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user).
_IDLE, _IOWAIT, _STEAL = 3, 4, 7


def read_proc_stat(path: str = STAT_PATH) -> list[int] | None:
    """The aggregate ``cpu`` line of /proc/stat (ticks per state), or None where there is none."""
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("cpu "):
                    return [int(v) for v in line.split()[1:]]
    except (OSError, ValueError):
        return None
    return None


def own_usage() -> tuple[float, int, int]:
    """This process's CPU seconds, minor and major page faults so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt, usage.ru_majflt


class MachineMonitor:
    """Context manager around the timed rounds; :meth:`result` is the ``machine`` block of a record."""

    def __init__(self, read_stat: Callable[[], list[int] | None] = read_proc_stat,
                 own: Callable[[], tuple[float, int, int]] = own_usage, clock: Callable[[], float] = time.monotonic,
                 ticks_per_s: float | None = None):
        self._read_stat, self._own, self._clock = read_stat, own, clock
        if ticks_per_s is None:
            ticks_per_s = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._ticks_per_s = ticks_per_s
        self._start: tuple[list[int] | None, tuple[float, int, int], float] | None = None
        self._result: dict[str, Any] = {"others_cpu_share": None, "steal_share": None, "own_cpu_share": None,
                                         "window_s": None, "own_minor_faults": None, "own_major_faults": None}

    def __enter__(self) -> MachineMonitor:
        self._start = (self._read_stat(), self._own(), self._clock())
        return self

    def __exit__(self, *exc: Any) -> None:
        end_stat, end_own, end_t = self._read_stat(), self._own(), self._clock()
        assert self._start is not None
        start_stat, start_own, start_t = self._start
        self._result.update(window_s=end_t - start_t, own_minor_faults=end_own[1] - start_own[1],
                            own_major_faults=end_own[2] - start_own[2])
        if start_stat is None or end_stat is None or len(start_stat) != len(end_stat):
            return
        delta = [b - a for a, b in zip(start_stat, end_stat, strict=True)]
        total = sum(delta[:8])  # guest and guest_nice are already counted in user and nice
        if total <= 0:
            return
        busy = total - delta[_IDLE] - delta[_IOWAIT] - delta[_STEAL]
        own_ticks = (end_own[0] - start_own[0]) * self._ticks_per_s
        self._result.update(others_cpu_share=max(0.0, busy - own_ticks) / total,
                            steal_share=delta[_STEAL] / total, own_cpu_share=min(1.0, own_ticks / total))

    def result(self) -> dict[str, Any]:
        return dict(self._result)
