"""NVML sampler: what the GPUs were doing during exactly the timed rounds of a case.

Use it as a context manager around the timed region only; ``result()`` afterwards is the case's
``metrics.gpu_metrics`` (docs/results.md), summarised from what was read by the pure functions of
:mod:`bench.monitor.gpu_summary`::

    with NvmlMonitor(gpu_refs, config.nvml) as monitor:
        run_timed_rounds()
    metrics["gpu_metrics"] = monitor.result()

NVML trouble never fails a case: without the library, a driver or a GPU the result says
``status: "unavailable"`` with the reason, and a query a GPU does not support drops that one metric on
that one GPU (listed in ``unsupported``), never the whole result and never as a silent zero.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.config import NvmlSettings
from bench.monitor.gpu_summary import DeviceSamples, gpu_metrics, gpu_metrics_unavailable
from bench.monitor.inventory import (
    MIB,
    GpuMappingError,
    GpuRef,
    NvmlUnavailable,
    gpu_inventory,
    init_failure_reason,
    is_nvml_error,
    load_nvml,
    nvml_error_type,
    resolve_gpus,
    resolve_in_session,
)

__all__ = [
    "GpuMappingError",
    "GpuRef",
    "NvmlMonitor",
    "NvmlUnavailable",
    "decode_clock_reasons",
    "gpu_inventory",
    "gpu_metrics_unavailable",
    "resolve_gpus",
]

# Polling slower than this misses whole NVML sample periods (1/6-1 s), so longer settings are capped.
MAX_POLL_INTERVAL_S = 0.1
# The driver keeps utilisation samples in a ring buffer of limited length; reading it this often from the
# background thread keeps a long window from losing its oldest samples before the read at exit.
DRAIN_INTERVAL_S = 1.0
# Buffer timestamps are documented as CPU wall clock in microseconds. Some drivers have been seen using
# another clock (time since boot); a latest sample this far from the wall clock switches the window to
# "samples newer than the last one seen at __enter__" so those drivers do not lose every sample.
WALL_CLOCK_TOLERANCE_US = 3600 * 1_000_000

# nvmlClocksEventReason* / nvmlClocksThrottleReason* bits, named as in pynvml.
CLOCK_REASON_BITS = (
    (0x0001, "gpu_idle"),
    (0x0002, "applications_clocks_setting"),
    (0x0004, "sw_power_cap"),
    (0x0008, "hw_slowdown"),
    (0x0010, "sync_boost"),
    (0x0020, "sw_thermal_slowdown"),
    (0x0040, "hw_thermal_slowdown"),
    (0x0080, "hw_power_brake_slowdown"),
    (0x0100, "display_clock_setting"),
    (0x0200, "board_limit"),
    (0x0400, "reliability"),
)

# Polled query name (as listed in ``unsupported``) -> NVML functions to try, newest API first.
_POLLED_QUERIES = {
    "utilization": ("nvmlDeviceGetUtilizationRates",),
    "power": ("nvmlDeviceGetPowerUsage",),
    "sm_clock": ("nvmlDeviceGetClockInfo",),
    "memory_used": ("nvmlDeviceGetMemoryInfo",),
    "temperature": ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"),
    "clock_event_reasons": ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
}
# Percentage series -> (sampling type constant, its buffer query name, pynvml's value for the constant).
_BUFFERED = {
    "utilization": ("NVML_GPU_UTILIZATION_SAMPLES", "utilization_samples", 1),
    "memory_util": ("NVML_MEMORY_UTILIZATION_SAMPLES", "memory_util_samples", 2),
}
# What each poll appends to, per GPU (percentages first, as in _BUFFERED).
_POLLED_SERIES = ("utilization", "memory_util", "power_w", "sm_clock_mhz", "memory_used_mib", "temperature_c")
# nvmlValueType_t -> field of the nvmlValue_t union.
_VALUE_FIELDS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


def decode_clock_reasons(mask: int) -> list[str]:
    """``0x44`` -> ``["sw_power_cap", "hw_thermal_slowdown"]``; unknown bits as ``unknown_0x…``."""
    names = [name for bit, name in CLOCK_REASON_BITS if mask & bit]
    known = sum(bit for bit, _ in CLOCK_REASON_BITS)
    rest = mask & ~known
    bit = 1
    while rest:
        if rest & bit:
            names.append(f"unknown_{bit:#x}")
            rest &= ~bit
        bit <<= 1
    return names


@dataclass
class _Buffer:
    """One device's driver sample buffer for one series, and the part of it read so far."""

    sampling_type: int
    sample_clock: str  # "wall" (documented) or "driver" (see WALL_CLOCK_TOLERANCE_US)
    after_us: int  # keep samples with timestamp > after_us ...
    until_us: int | None = None  # ... and <= until_us (set at exit; None for the driver clock)
    last_seen_us: int = 0
    values: dict[int, float] = field(default_factory=dict)

    def in_window(self) -> list[tuple[int, float]]:
        return [
            (ts, value)
            for ts, value in sorted(self.values.items())
            if ts > self.after_us and (self.until_us is None or ts <= self.until_us)
        ]


@dataclass
class _Track:
    """Everything collected for one GPU."""

    ref: GpuRef
    handle: Any
    functions: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in _POLLED_QUERIES.items()})
    unsupported: set[str] = field(default_factory=set)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    polled: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in _POLLED_SERIES})
    reasons_seen: Counter[str] = field(default_factory=Counter)
    reason_polls: int = 0
    buffers: dict[str, _Buffer] = field(default_factory=dict)
    probe_latest_us: dict[str, int | None] = field(default_factory=dict)


class NvmlMonitor:
    """Samples NVML for the GPUs of one case while its rounds are timed; single use.

    ``gpus``: :class:`GpuRef` from :func:`resolve_gpus`, or CUDA ordinals / UUIDs / PCI bus ids resolved at
    ``__enter__`` (against ``env``, default ``os.environ``). ``clock`` (monotonic seconds) measures the
    window; ``wall_clock`` (seconds since the epoch) places it among the driver's buffer timestamps.
    ``background=False`` starts no thread: the caller drives :meth:`sample_once` (tests).
    """

    def __init__(
        self,
        gpus: Sequence[GpuRef | int | str],
        settings: NvmlSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        nvml: Any = None,
        env: Mapping[str, str] | None = None,
        background: bool = True,
    ) -> None:
        self._gpus = list(gpus)
        self._settings = settings
        self._clock = clock
        self._wall_clock = wall_clock
        self._nvml_arg = nvml
        self._env = os.environ if env is None else env
        self._background = background
        self._poll_interval_s = min(settings.poll_interval_s, MAX_POLL_INTERVAL_S)
        self._nvml: Any = None
        self._initialized = False
        self._tracks: list[_Track] = []
        self._reason: str | None = None
        self._notes: list[str] = []
        self._polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "new"
        self._enter_s = self._exit_s = 0.0
        self._enter_wall_us = self._exit_wall_us = 0
        self._last_drain_s = 0.0

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> NvmlMonitor:
        if self._state != "new":
            raise RuntimeError("an NvmlMonitor measures one window; make a new one per case")
        self._state = "entered"
        if not self._settings.enabled:
            self._reason = "NVML sampling disabled in the config ([nvml] enabled = false)"
        elif not self._gpus:
            self._reason = "no GPU for this case (CPU-only run or simulated devices)"
        else:
            try:
                self._open()
            except (NvmlUnavailable, GpuMappingError) as exc:
                self._reason = str(exc)
            except Exception as exc:  # NVML trouble must not cost the case its timing
                self._reason = f"NVML set-up failed: {type(exc).__name__}: {exc}"
            if self._reason is not None:
                self._close()
        # Taken last, so the window starts where the caller's timed region does.
        self._enter_s = self._clock()
        self._enter_wall_us = round(self._wall_clock() * 1_000_000)
        self._last_drain_s = self._enter_s
        if self._reason is None:
            self._start_buffers()
            if self._background:
                self._thread = threading.Thread(target=self._run, name="nvml-monitor", daemon=True)
                self._thread.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._exit_s = self._clock()
        self._exit_wall_us = round(self._wall_clock() * 1_000_000)
        try:
            self._stop_thread()
            if self._reason is None:
                self._finish()
        except Exception as error:  # never replace the body's outcome with an NVML problem
            self._reason = f"NVML read at exit failed: {type(error).__name__}: {error}"
        finally:
            self._close()
            self._state = "exited"
        return False

    def sample_once(self) -> None:
        """Poll every GPU once, and read the sample buffers when due. The background thread calls this."""
        for track in self._tracks:
            self._poll(track)
        self._polls += 1
        now = self._clock()
        if now - self._last_drain_s >= DRAIN_INTERVAL_S:
            self._last_drain_s = now
            for track in self._tracks:
                self._drain(track)

    def result(self) -> dict[str, Any]:
        """The ``gpu_metrics`` record; available after the ``with`` block."""
        if self._state != "exited":
            raise RuntimeError("NvmlMonitor.result() is available after the with-block")
        window_s = self._exit_s - self._enter_s
        if self._reason is not None:
            return gpu_metrics_unavailable(self._reason, window_s)
        return gpu_metrics([self._samples(track) for track in self._tracks], window_s, self._settings,
                           self._polls, self._poll_interval_s, self._notes)

    # ------------------------------------------------------------------ set-up and tear-down

    def _open(self) -> None:
        nvml = load_nvml(self._nvml_arg)
        try:
            nvml.nvmlInit()
        except Exception as exc:
            raise NvmlUnavailable(init_failure_reason(nvml, exc)) from None
        self._nvml, self._initialized = nvml, True
        ids = [g for g in self._gpus if not isinstance(g, GpuRef)]
        resolved = iter(resolve_in_session(nvml, ids, self._env) if ids else [])
        refs = [g if isinstance(g, GpuRef) else next(resolved) for g in self._gpus]
        seen: set[str] = set()
        for ref in refs:
            if ref.uuid in seen:  # simulated replicas carved out of one GPU: measure it once
                continue
            seen.add(ref.uuid)
            track = _Track(ref=ref, handle=nvml.nvmlDeviceGetHandleByUUID(ref.uuid))
            for series, (constant, query, default) in _BUFFERED.items():
                self._probe(track, series, query, getattr(nvml, constant, default))
            self._tracks.append(track)

    def _probe(self, track: _Track, series: str, query: str, sampling_type: int) -> None:
        """Is the driver's sample buffer there for this series, and what is its latest timestamp?"""
        try:
            _, samples = self._nvml.nvmlDeviceGetSamples(track.handle, sampling_type, 0)
            latest = max((int(s.timeStamp) for s in samples), default=None)
        except Exception as exc:
            if is_nvml_error(self._nvml, exc, "NotFound"):
                latest = None  # supported, but empty: the GPU has been idle
            elif self._classify(track, query, exc):
                return
            else:
                raise
        track.probe_latest_us[series] = latest
        track.buffers[series] = _Buffer(sampling_type=sampling_type, sample_clock="wall", after_us=0)

    def _start_buffers(self) -> None:
        for track in self._tracks:
            for series, buffer in track.buffers.items():
                latest = track.probe_latest_us.get(series)
                if latest is not None and abs(latest - self._enter_wall_us) > WALL_CLOCK_TOLERANCE_US:
                    buffer.sample_clock, buffer.after_us = "driver", latest
                else:
                    buffer.after_us = self._enter_wall_us - 1  # the window includes its first microsecond
                buffer.last_seen_us = buffer.after_us

    def _finish(self) -> None:
        # One last poll: power, memory and clocks exist even for a window shorter than one poll interval.
        self.sample_once()
        for track in self._tracks:
            for buffer in track.buffers.values():
                if buffer.sample_clock == "wall":
                    buffer.until_us = self._exit_wall_us
            self._drain(track)

    def _close(self) -> None:
        if self._initialized:
            self._initialized = False
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: S110 - the measurements are complete either way
                pass

    # ------------------------------------------------------------------ background thread

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._poll_interval_s):
                self.sample_once()
        except Exception as exc:  # a bug here must not hang or kill the case; it is reported instead
            self._notes.append(f"background sampler stopped early: {type(exc).__name__}: {exc}")

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 50 * self._poll_interval_s))
            if self._thread.is_alive():  # an NVML call hung (GPU lost?): leave the daemon thread behind
                self._notes.append("background sampler did not stop; NVML call hung")

    # ------------------------------------------------------------------ queries

    def _poll(self, track: _Track) -> None:
        nvml, polled = self._nvml, track.polled
        rates = self._query(track, "utilization")
        if rates is not None:
            polled["utilization"].append(float(rates.gpu))
            polled["memory_util"].append(float(rates.memory))
        power_mw = self._query(track, "power")
        if power_mw is not None:
            polled["power_w"].append(power_mw / 1000.0)
        sm_clock = self._query(track, "sm_clock", getattr(nvml, "NVML_CLOCK_SM", 1))
        if sm_clock is not None:
            polled["sm_clock_mhz"].append(float(sm_clock))
        memory = self._query(track, "memory_used")
        if memory is not None:
            polled["memory_used_mib"].append(memory.used / MIB)
        temperature = self._query(track, "temperature", getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
        if temperature is not None:
            polled["temperature_c"].append(float(temperature))
        reasons = self._query(track, "clock_event_reasons")
        if reasons is not None:
            track.reason_polls += 1
            track.reasons_seen.update(decode_clock_reasons(int(reasons)))

    def _query(self, track: _Track, query: str, *args: Any) -> Any:
        """One NVML read, or None when unsupported or failed (recorded on the track, never a zero)."""
        if query in track.unsupported:
            return None
        candidates = track.functions[query]
        while candidates:
            function = getattr(self._nvml, candidates[0], None)
            if function is None:
                candidates.pop(0)  # older pynvml
                continue
            try:
                return function(track.handle, *args)
            except Exception as exc:
                if is_nvml_error(self._nvml, exc, "FunctionNotFound"):
                    candidates.pop(0)  # older driver: try the older API
                    continue
                if self._classify(track, query, exc):
                    return None
                raise
        track.unsupported.add(query)
        return None

    def _classify(self, track: _Track, query: str, exc: BaseException) -> bool:
        """Record an NVML error against ``query``; False if ``exc`` is not an NVML error at all."""
        if is_nvml_error(self._nvml, exc, "NotSupported"):
            track.unsupported.add(query)
            return True
        if isinstance(exc, nvml_error_type(self._nvml)):
            entry = track.errors.setdefault(query, {"message": str(exc), "count": 0})
            entry["count"] += 1
            return True
        return False

    def _drain(self, track: _Track) -> None:
        """Read the driver's samples newer than the last one seen."""
        for series, buffer in list(track.buffers.items()):
            try:
                value_type, samples = self._nvml.nvmlDeviceGetSamples(
                    track.handle, buffer.sampling_type, buffer.last_seen_us
                )
            except Exception as exc:
                if is_nvml_error(self._nvml, exc, "NotFound"):
                    continue  # nothing new: the driver stops sampling while the GPU is idle
                if self._classify(track, _BUFFERED[series][1], exc):
                    if _BUFFERED[series][1] in track.unsupported:
                        del track.buffers[series]
                    continue
                raise
            attribute = _VALUE_FIELDS.get(int(value_type), "uiVal")
            for sample in samples:
                timestamp = int(sample.timeStamp)
                buffer.values[timestamp] = float(getattr(sample.sampleValue, attribute))
                buffer.last_seen_us = max(buffer.last_seen_us, timestamp)

    # ------------------------------------------------------------------ handing over to the summary

    def _samples(self, track: _Track) -> DeviceSamples:
        util, util_method, timestamps = self._series(track, "utilization")
        memory_util, memory_method, _ = self._series(track, "memory_util")
        buffer = track.buffers.get("utilization")
        return DeviceSamples(
            ref=track.ref, utilization=util, utilization_method=util_method, buffer_timestamps_us=timestamps,
            sample_clock=buffer.sample_clock if util_method == "samples_buffer" and buffer else None,
            memory_util=memory_util, memory_util_method=memory_method,
            polled={k: track.polled[k] for k in ("power_w", "sm_clock_mhz", "memory_used_mib", "temperature_c")},
            reasons_seen=track.reasons_seen, reason_polls=track.reason_polls, unsupported=track.unsupported,
            errors=track.errors,
        )

    def _series(self, track: _Track, series: str) -> tuple[list[float], str | None, list[int]]:
        """Values for one percentage series: the buffer when it has any in the window, else the polls."""
        buffer = track.buffers.get(series)
        if buffer is not None:
            inside = buffer.in_window()
            if inside:
                return [v for _, v in inside], "samples_buffer", [ts for ts, _ in inside]
        polled = track.polled[series]
        return list(polled), ("polling" if polled else None), []
