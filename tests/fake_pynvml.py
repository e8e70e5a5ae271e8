"""A fake ``pynvml`` for tests: only the NVML boundary is faked, with the real module's names.

Each :class:`FakeNvml` instance stands in for the module (``nvml=`` argument). GPUs are
:class:`FakeGpu` records; a GPU's handle is the record itself. Per-GPU answers come from lists: the
n-th call returns the n-th entry and the last entry repeats. Function names in ``FakeGpu.unsupported``
raise ``NVMLError_NotSupported`` for that GPU only (like gpustat's tests).

The driver's sample buffer is modelled too: with a ``clock``, only samples already taken
(timestamp <= now, in the buffer's clock) are returned, and at most ``buffer_capacity`` of the newest,
so a reader that waits too long loses samples as on a real driver's ring buffer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    value = 999
    text = "Unknown Error"

    def __str__(self) -> str:
        return self.text


def _error(name: str, value: int, text: str) -> type[NVMLError]:
    return type(f"NVMLError_{name}", (NVMLError,), {"value": value, "text": text})


NVMLError_Uninitialized = _error("Uninitialized", 1, "Uninitialized")
NVMLError_NotSupported = _error("NotSupported", 3, "Not Supported")
NVMLError_NoPermission = _error("NoPermission", 4, "Insufficient Permissions")
NVMLError_NotFound = _error("NotFound", 6, "Not Found")
NVMLError_DriverNotLoaded = _error("DriverNotLoaded", 9, "Driver Not Loaded")
NVMLError_LibraryNotFound = _error("LibraryNotFound", 12, "NVML Shared Library Not Found")
NVMLError_FunctionNotFound = _error("FunctionNotFound", 13, "Function Not Found")
NVMLError_GpuIsLost = _error("GpuIsLost", 15, "GPU is lost")


class FakeClock:
    """Monotonic seconds, and a wall clock that moves with it (epoch seconds)."""

    EPOCH_OFFSET_S = 1_700_000_000.0

    def __init__(self, start_s: float = 100.0) -> None:
        self.now_s = start_s

    def monotonic(self) -> float:
        return self.now_s

    def time(self) -> float:
        return self.EPOCH_OFFSET_S + self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s = round(self.now_s + seconds, 6)  # microsecond steps: 20 x 0.1 s is exactly 2 s

    def wall_us(self, offset_s: float = 0.0) -> int:
        """Wall-clock microseconds ``offset_s`` from now, as the driver stamps buffer samples."""
        return round((self.time() + offset_s) * 1_000_000)


@dataclass
class FakeMig:
    uuid: str
    gpu_instance: int
    compute_instance: int
    name: str = "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
    parent: FakeGpu | None = None


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    bus_id: str = "00000000:18:00.0"
    memory_total: int = 80 * 1024**3
    compute_capability: tuple[int, int] = (9, 0)
    # The driver's sample buffers: (timestamp_us, percent).
    util_samples: list[tuple[int, int]] = field(default_factory=list)
    memory_util_samples: list[tuple[int, int]] = field(default_factory=list)
    # Successive answers of the polled queries.
    rates: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)])  # (gpu %, memory %)
    power_mw: list[int] = field(default_factory=lambda: [100_000])
    sm_clock_mhz: list[int] = field(default_factory=lambda: [1980])
    memory_used: list[int] = field(default_factory=lambda: [1024**3])
    temperature_c: list[int] = field(default_factory=lambda: [40])
    clock_reasons: list[int] = field(default_factory=lambda: [0])
    unsupported: set[str] = field(default_factory=set)  # NVML function names raising NotSupported
    failing: dict[str, type[NVMLError]] = field(default_factory=dict)  # function name -> error raised
    migs: list[FakeMig] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)

    def next_value(self, attribute: str) -> Any:
        values = getattr(self, attribute)
        index = min(self.served[attribute], len(values) - 1)
        self.served[attribute] += 1
        return values[index]


class FakeNvml:
    """Stands in for the ``pynvml`` module."""

    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost

    NVML_GPU_UTILIZATION_SAMPLES = 1
    NVML_MEMORY_UTILIZATION_SAMPLES = 2
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0
    NVML_VALUE_TYPE_UNSIGNED_INT = 1

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        *,
        init_error: type[NVMLError] | None = None,
        clock: FakeClock | None = None,
        buffer_clock: str = "wall",  # "wall" (documented) or "boot" (microseconds of the monotonic clock)
        buffer_capacity: int | None = None,
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
    ) -> None:
        self.gpus = gpus or []
        for gpu in self.gpus:
            for mig in gpu.migs:
                mig.parent = gpu
        self.init_error = init_error
        self.clock = clock
        self.buffer_clock = buffer_clock
        self.buffer_capacity = buffer_capacity
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: Counter[str] = Counter()

    # ------------------------------------------------------------------ helpers

    def _enter(self, name: str, handle: Any = None) -> None:
        self.calls[name] += 1
        if self.init_calls <= self.shutdown_calls:
            raise NVMLError_Uninitialized()
        gpu = handle.parent if isinstance(handle, FakeMig) else handle
        if isinstance(gpu, FakeGpu):
            if name in gpu.unsupported:
                raise NVMLError_NotSupported()
            if name in gpu.failing:
                raise gpu.failing[name]()

    def _buffer_now_us(self) -> int | None:
        if self.clock is None:
            return None
        if self.buffer_clock == "boot":
            return round(self.clock.monotonic() * 1_000_000)
        return self.clock.wall_us()

    # ------------------------------------------------------------------ library and system

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise self.init_error()
        self.init_calls += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.shutdown_calls += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    # ------------------------------------------------------------------ devices

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError_NotFound()  # the real library says Invalid Argument; close enough here
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu | FakeMig:
        self._enter("nvmlDeviceGetHandleByUUID")
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu
            for mig in gpu.migs:
                if mig.uuid == uuid:
                    return mig
        raise NVMLError_NotFound()

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        self._enter("nvmlDeviceGetUUID", handle)
        return handle.uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        self._enter("nvmlDeviceGetName", handle)
        return handle.name

    def nvmlDeviceGetPciInfo(self, handle: FakeGpu) -> SimpleNamespace:
        self._enter("nvmlDeviceGetPciInfo", handle)
        return SimpleNamespace(busId=handle.bus_id.encode())  # a ctypes char array: bytes

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeGpu) -> tuple[int, int]:
        self._enter("nvmlDeviceGetCudaComputeCapability", handle)
        return handle.compute_capability

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> SimpleNamespace:
        self._enter("nvmlDeviceGetMemoryInfo", handle)
        used = handle.next_value("memory_used")
        return SimpleNamespace(total=handle.memory_total, used=used, free=handle.memory_total - used)

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> SimpleNamespace:
        self._enter("nvmlDeviceGetUtilizationRates", handle)
        gpu, memory = handle.next_value("rates")
        return SimpleNamespace(gpu=gpu, memory=memory)

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetPowerUsage", handle)
        return handle.next_value("power_mw")

    def nvmlDeviceGetClockInfo(self, handle: FakeGpu, clock_type: int) -> int:
        self._enter("nvmlDeviceGetClockInfo", handle)
        assert clock_type == self.NVML_CLOCK_SM
        return handle.next_value("sm_clock_mhz")

    # No nvmlDeviceGetTemperatureV here: an older pynvml, so the monitor must fall back.
    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", handle)
        assert sensor == self.NVML_TEMPERATURE_GPU
        return handle.next_value("temperature_c")

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetCurrentClocksEventReasons", handle)
        return handle.next_value("clock_reasons")

    def nvmlDeviceGetSamples(self, handle: FakeGpu, sampling_type: int, last_seen: int) -> tuple[int, list[Any]]:
        self._enter("nvmlDeviceGetSamples", handle)
        if sampling_type == self.NVML_GPU_UTILIZATION_SAMPLES:
            buffer = handle.util_samples
        elif sampling_type == self.NVML_MEMORY_UTILIZATION_SAMPLES:
            buffer = handle.memory_util_samples
        else:
            raise NVMLError_NotSupported()
        now = self._buffer_now_us()
        held = sorted(s for s in buffer if now is None or s[0] <= now)
        if self.buffer_capacity is not None:
            held = held[-self.buffer_capacity :]
        newer = [(ts, value) for ts, value in held if ts > last_seen]
        if not newer:
            raise NVMLError_NotFound()
        samples = [SimpleNamespace(timeStamp=ts, sampleValue=SimpleNamespace(uiVal=value)) for ts, value in newer]
        return self.NVML_VALUE_TYPE_UNSIGNED_INT, samples

    # ------------------------------------------------------------------ MIG

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetMaxMigDeviceCount", handle)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, index: int) -> FakeMig:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if index >= len(handle.migs):
            raise NVMLError_NotFound()
        return handle.migs[index]

    def nvmlDeviceGetGpuInstanceId(self, handle: FakeMig) -> int:
        self._enter("nvmlDeviceGetGpuInstanceId", handle)
        return handle.gpu_instance

    def nvmlDeviceGetComputeInstanceId(self, handle: FakeMig) -> int:
        self._enter("nvmlDeviceGetComputeInstanceId", handle)
        return handle.compute_instance

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: FakeMig) -> FakeGpu:
        self._enter("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle)
        assert handle.parent is not None
        return handle.parent
