"""The NVML monitor, device mapping and inventory against a fake ``pynvml`` (the boundary only).

Expected numbers are worked out by hand in each test; percentiles use linear interpolation between
closest ranks (numpy's default): p = v[floor(k)] + (k - floor(k)) * (v[floor(k)+1] - v[floor(k)]),
with k = (n - 1) * q over the sorted values.
"""

from __future__ import annotations

import importlib
import threading
import time

import pytest

from bench.config import NvmlSettings
from bench.errors import UserError
from bench.monitor.inventory import GpuMappingError, GpuRef, NvmlUnavailable, bus_key
from bench.monitor.nvml import (
    NvmlMonitor,
    decode_clock_reasons,
    gpu_inventory,
    gpu_metrics_unavailable,
    resolve_gpus,
)

try:  # tests/ is not a package today; keep working if it becomes one
    from tests.fake_pynvml import (
        FakeClock,
        FakeGpu,
        FakeMig,
        FakeNvml,
        NVMLError_GpuIsLost,
        NVMLError_LibraryNotFound,
    )
except ImportError:
    from fake_pynvml import (
        FakeClock,
        FakeGpu,
        FakeMig,
        FakeNvml,
        NVMLError_GpuIsLost,
        NVMLError_LibraryNotFound,
    )

SETTINGS = NvmlSettings(enabled=True, poll_interval_s=0.1, min_window_s=2.0, min_samples=5)
GIB = 1024**3
UUID_A = "GPU-aaaa1111-0000-0000-0000-000000000001"
UUID_B = "GPU-bbbb2222-0000-0000-0000-000000000002"
UUID_C = "GPU-cccc3333-0000-0000-0000-000000000003"


def monitor(fake: FakeNvml, clock: FakeClock, gpus, settings: NvmlSettings = SETTINGS, **kwargs) -> NvmlMonitor:
    return NvmlMonitor(
        gpus, settings, clock=clock.monotonic, wall_clock=clock.time, nvml=fake, background=False, **kwargs
    )


def ref(gpu: FakeGpu, index: int, ordinal: int) -> GpuRef:
    return GpuRef(index, gpu.uuid, gpu.name, gpu.bus_id, ordinal)


def samples(clock: FakeClock, points: list[tuple[float, int]]) -> list[tuple[int, int]]:
    """Buffer samples at ``offset_s`` from the clock's current time."""
    return [(clock.wall_us(offset_s), value) for offset_s, value in points]


# --------------------------------------------------------------------------- samples buffer


def two_gpus_with_buffers(clock: FakeClock) -> list[FakeGpu]:
    # The window will be [now, now + 3 s]; samples every 0.5 s, some before it and some after it.
    gpu0 = FakeGpu(
        uuid=UUID_A,
        bus_id="00000000:18:00.0",
        util_samples=samples(clock, [(-0.5, 5), (-0.1, 7), (0.2, 60), (0.7, 80), (1.2, 90), (1.7, 100),
                                     (2.2, 70), (2.7, 50), (3.2, 3), (3.7, 1)]),
        memory_util_samples=samples(clock, [(-0.3, 99), (0.2, 10), (0.7, 20), (1.2, 30), (1.7, 40),
                                            (2.2, 50), (2.7, 60), (3.5, 99)]),
        power_mw=[200_000, 250_000, 300_000],
        memory_used=[2 * GIB, 5 * GIB, 3 * GIB],
        sm_clock_mhz=[1980, 1755, 1980],
        temperature_c=[61, 64, 63],
        clock_reasons=[0x4, 0x4 | 0x40, 0x0],
    )
    gpu1 = FakeGpu(
        uuid=UUID_B,
        bus_id="00000000:2A:00.0",
        util_samples=samples(clock, [(-0.2, 0), (0.2, 30), (0.7, 50), (1.2, 40), (1.7, 60), (2.2, 50),
                                     (2.7, 70), (3.3, 0)]),
        rates=[(55, 21), (60, 24), (65, 27)],  # no memory-util buffer samples: the polled values are used
        sm_clock_mhz=[1500, 1600, 1700],
        temperature_c=[50, 65, 60],
        unsupported={"nvmlDeviceGetPowerUsage"},
    )
    return [gpu0, gpu1]


def run_three_second_window(fake: FakeNvml, clock: FakeClock, gpus) -> dict:
    with monitor(fake, clock, gpus) as mon:
        clock.advance(1.0)
        mon.sample_once()
        clock.advance(1.0)
        mon.sample_once()
        clock.advance(1.0)
    return mon.result()  # three polls: t = 1 s, 2 s and the final one at exit (3 s)


def test_samples_buffer_counts_only_samples_inside_the_window():
    clock = FakeClock()
    gpus = two_gpus_with_buffers(clock)
    fake = FakeNvml(gpus)
    result = run_three_second_window(fake, clock, [ref(gpus[0], 0, 0), ref(gpus[1], 1, 1)])

    assert result["status"] == "ok" and result["reason"] is None
    assert result["method"] == "samples_buffer"
    assert result["window_s"] == pytest.approx(3.0)
    assert result["polls"] == 3
    gpu0, gpu1 = result["devices"]

    # GPU 0 inside [0, 3 s]: 60 80 90 100 70 50 -> sorted 50 60 70 80 90 100.
    # mean 450/6 = 75; p50: k = 2.5 -> 70 + 0.5*10 = 75; p95: k = 4.75 -> 90 + 0.75*10 = 97.5.
    assert gpu0["method"] == "samples_buffer" and gpu0["sample_clock"] == "wall"
    assert gpu0["samples_in_window"] == 6
    assert gpu0["utilization_pct"] == {"mean": 75.0, "p50": 75.0, "p95": pytest.approx(97.5), "n": 6}
    # Memory controller: 10..60 -> mean 35; p50 k=2.5 -> 35; p95 k=4.75 -> 50 + 0.75*10 = 57.5.
    assert gpu0["memory_util_method"] == "samples_buffer"
    assert gpu0["memory_util_pct"] == {"mean": 35.0, "p50": 35.0, "p95": pytest.approx(57.5), "n": 6}
    # One sample per 0.5 s over a 3 s window: the buffer covers all of it.
    assert gpu0["buffer_coverage"] == pytest.approx(1.0)

    # GPU 1: 30 50 40 60 50 70 -> sorted 30 40 50 50 60 70; mean 50; p50 50; p95 60 + 0.75*10 = 67.5.
    assert gpu1["utilization_pct"] == {"mean": 50.0, "p50": 50.0, "p95": pytest.approx(67.5), "n": 6}
    # No memory-util samples in its buffer: the three polled values 21 24 27.
    assert gpu1["memory_util_method"] == "polling"
    assert gpu1["memory_util_pct"] == {"mean": 24.0, "p50": 24.0, "p95": pytest.approx(26.7), "n": 3}

    # Aggregate: the twelve samples pooled. Sum 450 + 300 = 750 -> mean 62.5.
    # Sorted 30 40 50 50 50 60 60 70 70 80 90 100: p50 k=5.5 -> 60; p95 k=10.45 -> 90 + 0.45*10 = 94.5.
    aggregate = result["aggregate"]
    assert aggregate["utilization_pct_mean"] == pytest.approx(62.5)
    assert aggregate["utilization_pct_p50"] == pytest.approx(60.0)
    assert aggregate["utilization_pct_p95"] == pytest.approx(94.5)
    assert aggregate["utilization_pct_min_device_mean"] == pytest.approx(50.0)
    assert aggregate["devices"] == 2

    assert result["samples_in_window"] == 6
    assert result["reliable"] is True and result["unreliable_reason"] is None


def test_polled_metrics_and_one_unsupported_query_on_one_gpu():
    clock = FakeClock()
    gpus = two_gpus_with_buffers(clock)
    fake = FakeNvml(gpus)
    gpu0, gpu1 = run_three_second_window(fake, clock, [ref(gpus[0], 0, 0), ref(gpus[1], 1, 1)])["devices"]

    # GPU 0: every query answered.
    assert gpu0["power_mean_w"] == pytest.approx(250.0)  # (200 + 250 + 300) W / 3
    assert gpu0["memory_used_peak_mib"] == pytest.approx(5 * 1024.0)
    assert gpu0["sm_clock_mean_mhz"] == pytest.approx((1980 + 1755 + 1980) / 3)
    assert gpu0["temperature_max_c"] == 64
    assert gpu0["throttle_reasons"] == ["hw_thermal_slowdown", "sw_power_cap"]
    assert gpu0["throttle_reason_fraction"] == {"hw_thermal_slowdown": pytest.approx(1 / 3),
                                                "sw_power_cap": pytest.approx(2 / 3)}
    assert gpu0["unsupported"] == [] and gpu0["query_errors"] == {}

    # GPU 1: power is not supported -> absent (null, not 0) and listed; everything else is there.
    assert gpu1["power_mean_w"] is None
    assert gpu1["unsupported"] == ["power"]
    assert gpu1["sm_clock_mean_mhz"] == pytest.approx(1600.0)
    assert gpu1["temperature_max_c"] == 65
    assert gpu1["memory_used_peak_mib"] == pytest.approx(1024.0)
    assert gpu1["throttle_reasons"] == []
    # It stopped asking after the first NotSupported.
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 3 + 1
    assert fake.init_calls == fake.shutdown_calls == 1


def test_samples_unsupported_falls_back_to_polling_on_the_injected_clock():
    clock = FakeClock()
    # 20 polls: 19 from the poller at 0.1 s steps plus the final one at exit (2.0 s); utilisation 5, 10, ..., 100.
    gpu = FakeGpu(uuid=UUID_A, rates=[(5 * i, i) for i in range(1, 21)], unsupported={"nvmlDeviceGetSamples"})
    fake = FakeNvml([gpu])
    with monitor(fake, clock, [ref(gpu, 0, 0)]) as mon:
        for _ in range(19):
            clock.advance(0.1)
            mon.sample_once()
        clock.advance(0.1)
    result = mon.result()
    (device,) = result["devices"]

    assert result["method"] == device["method"] == "polling"
    assert result["poll_interval_s"] == 0.1
    assert device["unsupported"] == ["memory_util_samples", "utilization_samples"]
    # mean (5 + 100)/2 = 52.5; p50 k = 9.5 -> 50 + 0.5*5 = 52.5; p95 k = 18.05 -> 95 + 0.05*5 = 95.25.
    assert device["utilization_pct"] == {"mean": 52.5, "p50": 52.5, "p95": pytest.approx(95.25), "n": 20}
    assert device["memory_util_pct"]["mean"] == pytest.approx(10.5)
    assert device["buffer_coverage"] is None
    assert result["window_s"] == pytest.approx(2.0)
    assert result["reliable"] is True


def test_periodic_reads_keep_the_ring_buffer_from_overflowing():
    def window(poll: bool) -> dict:
        clock = FakeClock()
        # A sample every 0.2 s over 10 s: 50 in the window, values 20 40 60 80 0 repeating (mean 40).
        gpu = FakeGpu(uuid=UUID_A, util_samples=samples(clock, [(0.2 * k, (k % 5) * 20) for k in range(1, 51)]))
        fake = FakeNvml([gpu], clock=clock, buffer_capacity=8)  # the driver keeps 1.6 s of samples
        with monitor(fake, clock, [ref(gpu, 0, 0)]) as mon:
            for _ in range(100):
                clock.advance(0.1)
                if poll:
                    mon.sample_once()
        return mon.result()["devices"][0]

    drained = window(poll=True)
    assert drained["utilization_pct"]["n"] == 50
    assert drained["utilization_pct"]["mean"] == pytest.approx(40.0)
    assert drained["buffer_coverage"] == pytest.approx(1.0)
    # Read only at exit, the ring buffer has kept just its last 8 samples.
    assert window(poll=False)["utilization_pct"]["n"] == 8


def test_buffer_timestamps_on_a_non_wall_clock_still_count():
    clock = FakeClock(start_s=100.0)

    def boot_us(offset_s: float) -> int:
        return round((clock.monotonic() + offset_s) * 1_000_000)

    gpu = FakeGpu(uuid=UUID_A, util_samples=[(boot_us(t), v) for t, v in
                                             [(-0.5, 1), (0.5, 40), (1.0, 60), (1.5, 80), (2.0, 100), (2.5, 9)]])
    fake = FakeNvml([gpu], clock=clock, buffer_clock="boot")
    with monitor(fake, clock, [ref(gpu, 0, 0)], settings=NvmlSettings(min_samples=4)) as mon:
        for _ in range(4):
            clock.advance(0.5)
            mon.sample_once()
    (device,) = mon.result()["devices"]
    assert device["sample_clock"] == "driver"
    # 40 60 80 100 (the 2.5 s sample had not been taken at exit): mean 70.
    assert device["utilization_pct"]["n"] == 4
    assert device["utilization_pct"]["mean"] == pytest.approx(70.0)


def test_idle_gaps_in_the_buffer_are_flagged():
    clock = FakeClock()
    # Six samples 0.1 s apart, then nothing: the driver stopped sampling an idle GPU.
    gpu = FakeGpu(uuid=UUID_A, util_samples=samples(clock, [(0.1 * k, 100) for k in range(1, 7)]))
    with monitor(FakeNvml([gpu]), clock, [ref(gpu, 0, 0)]) as mon:
        clock.advance(3.0)
    result = mon.result()
    assert result["devices"][0]["buffer_coverage"] == pytest.approx(6 * 0.1 / 3.0)
    assert result["reliable"] is False
    assert "cover 20% of the window" in result["unreliable_reason"]


# --------------------------------------------------------------------------- reliability and failure


def test_short_window_is_flagged_unreliable():
    clock = FakeClock()
    gpu = FakeGpu(uuid=UUID_A, util_samples=samples(clock, [(0.3, 90)]))
    with monitor(FakeNvml([gpu]), clock, [ref(gpu, 0, 0)]) as mon:
        clock.advance(0.5)
    result = mon.result()
    assert result["status"] == "ok"
    assert result["devices"][0]["utilization_pct"] == {"mean": 90.0, "p50": 90.0, "p95": 90.0, "n": 1}
    assert result["reliable"] is False
    assert "window 0.50 s is shorter than min_window_s = 2 s" in result["unreliable_reason"]
    assert "fewer utilisation samples than min_samples = 5 (GPU 0: 1)" in result["unreliable_reason"]


def test_library_missing_gives_unavailable_with_the_reason():
    clock = FakeClock()
    fake = FakeNvml([FakeGpu(uuid=UUID_A)], init_error=NVMLError_LibraryNotFound)
    with monitor(fake, clock, [0]) as mon:
        clock.advance(3.0)
    result = mon.result()
    assert result == {**gpu_metrics_unavailable(result["reason"], 3.0)}
    assert result["status"] == "unavailable"
    assert "NVML library (libnvidia-ml.so.1) not found" in result["reason"]
    assert result["devices"] == [] and result["aggregate"]["utilization_pct_mean"] is None
    assert fake.init_calls == fake.shutdown_calls == 0


def test_pynvml_not_importable_gives_unavailable(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with NvmlMonitor([0], SETTINGS, background=False) as mon:
        pass
    assert mon.result()["status"] == "unavailable"
    assert "pynvml is not importable" in mon.result()["reason"]
    assert gpu_inventory()["nvml"].startswith("pynvml is not importable")


def test_disabled_or_gpu_less_cases_never_touch_nvml():
    fake, clock = FakeNvml([FakeGpu(uuid=UUID_A)]), FakeClock()
    with monitor(fake, clock, [0], settings=NvmlSettings(enabled=False)) as disabled:
        pass
    with monitor(fake, clock, []) as cpu_case:
        pass
    assert "enabled = false" in disabled.result()["reason"]
    assert cpu_case.result()["reason"].startswith("no GPU for this case")
    assert fake.calls["nvmlInit"] == 0


def test_other_nvml_errors_are_recorded_not_zeroed():
    clock = FakeClock()
    gpu = FakeGpu(uuid=UUID_A, failing={"nvmlDeviceGetTemperature": NVMLError_GpuIsLost})
    with monitor(FakeNvml([gpu]), clock, [ref(gpu, 0, 0)]) as mon:
        clock.advance(1.0)
        mon.sample_once()
        clock.advance(1.0)
    (device,) = mon.result()["devices"]
    assert device["temperature_max_c"] is None
    assert device["query_errors"] == {"temperature": {"message": "GPU is lost", "count": 2}}
    assert device["unsupported"] == []
    assert device["power_mean_w"] == pytest.approx(100.0)


def test_background_thread_polls_and_stops_when_the_body_raises():
    gpu = FakeGpu(uuid=UUID_A, unsupported={"nvmlDeviceGetSamples"}, rates=[(80, 30)])
    fake = FakeNvml([gpu])
    threads_before = threading.active_count()
    mon = NvmlMonitor([ref(gpu, 0, 0)], NvmlSettings(poll_interval_s=0.01), nvml=fake)
    with pytest.raises(ValueError, match="boom"), mon:
        time.sleep(0.15)
        raise ValueError("boom")
    assert not mon._thread.is_alive()
    assert threading.active_count() == threads_before
    assert fake.init_calls == fake.shutdown_calls == 1
    result = mon.result()
    assert result["status"] == "ok" and result["method"] == "polling"
    assert result["polls"] >= 3  # about 15 in 0.15 s; a loaded machine may manage fewer
    assert result["devices"][0]["utilization_pct"]["mean"] == pytest.approx(80.0)
    assert result["reliable"] is False  # 0.15 s window


def test_result_before_exit_and_reuse_are_errors():
    mon = monitor(FakeNvml([]), FakeClock(), [])
    with pytest.raises(RuntimeError):
        mon.result()
    with mon:
        pass
    with pytest.raises(RuntimeError), mon:
        pass


def test_clock_reason_names():
    assert decode_clock_reasons(0) == []
    assert decode_clock_reasons(0x1 | 0x4) == ["gpu_idle", "sw_power_cap"]
    assert decode_clock_reasons(0x8000) == ["unknown_0x8000"]


# --------------------------------------------------------------------------- CUDA ordinal -> NVML device


def three_gpus() -> list[FakeGpu]:
    # NVML index order deliberately differs from PCI bus order (0x3b, 0x18, 0x86) to catch index == ordinal.
    return [
        FakeGpu(uuid=UUID_A, bus_id="00000000:3B:00.0", util_samples=[]),
        FakeGpu(uuid=UUID_B, bus_id="00000000:18:00.0"),
        FakeGpu(uuid=UUID_C, bus_id="00000000:86:00.0"),
    ]


def test_visible_devices_by_index_reorders_in_pci_order():
    fake = FakeNvml(three_gpus())
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "2,0"}
    refs = resolve_gpus([0, 1], nvml=fake, env=env)
    # CUDA's PCI order is B (0x18), A (0x3b), C (0x86): "2,0" -> C then B.
    assert [(r.nvml_index, r.uuid, r.cuda_ordinal) for r in refs] == [(2, UUID_C, 0), (1, UUID_B, 1)]
    assert {r.matched_by for r in refs} == {"pci_order"} and not any(r.ambiguous for r in refs)
    assert fake.init_calls == fake.shutdown_calls == 1


def test_visible_devices_by_uuid_and_prefix():
    refs = resolve_gpus([0, 1], nvml=FakeNvml(three_gpus()),
                        env={"CUDA_VISIBLE_DEVICES": f"GPU-bbbb, {UUID_C}"})
    assert [(r.nvml_index, r.uuid) for r in refs] == [(1, UUID_B), (2, UUID_C)]
    assert [r.matched_by for r in refs] == ["uuid", "uuid"]


def test_the_monitor_reads_the_handles_of_the_mapped_gpus():
    clock = FakeClock()
    gpus = three_gpus()
    for gpu, busy in zip(gpus, (11, 22, 33), strict=True):
        gpu.util_samples = samples(clock, [(0.5 * k, busy) for k in range(1, 7)])
    fake = FakeNvml(gpus)
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "2,0"}
    with monitor(fake, clock, [0, 1], env=env) as mon:
        clock.advance(3.0)
    devices = mon.result()["devices"]
    # CUDA 0 -> C (33 % busy), CUDA 1 -> B (22 % busy); A (11 %) is not part of the case.
    assert [(d["cuda_ordinal"], d["uuid"], d["utilization_pct"]["mean"]) for d in devices] == [
        (0, UUID_C, 33.0), (1, UUID_B, 22.0)]
    assert fake.init_calls == fake.shutdown_calls == 1


def test_default_order_is_pci_for_identical_gpus_and_ambiguous_for_mixed_ones():
    refs = resolve_gpus([0, 1, 2], nvml=FakeNvml(three_gpus()), env={})
    assert [r.uuid for r in refs] == [UUID_B, UUID_A, UUID_C]
    assert {r.matched_by for r in refs} == {"identical_gpus"} and not any(r.ambiguous for r in refs)

    mixed = three_gpus()
    mixed[1].name, mixed[1].compute_capability = "NVIDIA A100-SXM4-80GB", (8, 0)
    refs = resolve_gpus([0, 1, 2], nvml=FakeNvml(mixed), env={})
    assert [r.uuid for r in refs] == [UUID_A, UUID_C, UUID_B]  # H100s (9.0) in bus order, then the A100
    assert all(r.ambiguous and r.matched_by == "fastest_first_guess" for r in refs)
    # A UUID in CUDA_VISIBLE_DEVICES removes the doubt.
    (exact,) = resolve_gpus([0], nvml=FakeNvml(mixed), env={"CUDA_VISIBLE_DEVICES": UUID_B})
    assert exact.uuid == UUID_B and not exact.ambiguous


@pytest.mark.parametrize(
    ("visible", "ordinal", "message"),
    [
        ("", 0, "set but empty, which hides every GPU"),
        ("7", 0, "entry '7' names no GPU"),
        ("0,GPU-zzzz,1", 1, "CUDA device 1 does not exist: CUDA_VISIBLE_DEVICES='0,GPU-zzzz,1' (entry 'GPU-zzzz'"),
        ("GPU-", 0, "entry 'GPU-' names no GPU"),  # a prefix shared by every GPU names none of them
        ("1,1", 1, "entry '1' repeats a GPU"),
    ],
)
def test_visible_devices_that_name_nothing_raise_a_one_line_error(visible, ordinal, message):
    with pytest.raises(GpuMappingError) as info:
        resolve_gpus([ordinal], nvml=FakeNvml(three_gpus()), env={"CUDA_VISIBLE_DEVICES": visible})
    assert isinstance(info.value, UserError)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_visible_devices_before_an_invalid_entry_stay_usable():
    (first,) = resolve_gpus([0], nvml=FakeNvml(three_gpus()),
                            env={"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0,-1,1"})
    assert first.uuid == UUID_B


def test_explicit_pci_bus_id_and_uuid_from_the_framework():
    refs = resolve_gpus(["0000:3b:00.0", "GPU-cccc", " 86:00.0 "], nvml=FakeNvml(three_gpus()),
                        env={"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert [(r.nvml_index, r.matched_by, r.cuda_ordinal) for r in refs] == [
        (0, "pci_bus_id", 1), (2, "uuid", 2), (2, "pci_bus_id", 2)]
    (hidden,) = resolve_gpus([UUID_A], nvml=FakeNvml(three_gpus()), env={"CUDA_VISIBLE_DEVICES": "0"})
    assert hidden.cuda_ordinal is None  # "0" is B (lowest bus id): A exists, but CUDA cannot see it
    with pytest.raises(GpuMappingError, match="no GPU matches '0000:99:00.0'"):
        resolve_gpus(["0000:99:00.0"], nvml=FakeNvml(three_gpus()), env={})
    with pytest.raises(GpuMappingError, match="is not a CUDA ordinal"):
        resolve_gpus(["cuda:0"], nvml=FakeNvml(three_gpus()), env={})
    assert bus_key("00000000:3B:00.0") == bus_key("0000:3b:00.0") == bus_key("3b:00") == (0, 0x3B, 0, 0)


def test_mig_instances_in_visible_devices():
    gpus = three_gpus()
    mig_uuid = "MIG-5a5a5a5a-0000-0000-0000-00000000000a"
    gpus[0].migs = [FakeMig(uuid="MIG-4b4b4b4b-0000-0000-0000-00000000000b", gpu_instance=2, compute_instance=0),
                    FakeMig(uuid=mig_uuid, gpu_instance=1, compute_instance=0)]
    for visible in (mig_uuid, f"MIG-{UUID_A}/1/0"):
        (mig,) = resolve_gpus([0], nvml=FakeNvml(gpus), env={"CUDA_VISIBLE_DEVICES": visible})
        assert (mig.uuid, mig.nvml_index, mig.pci_bus_id) == (mig_uuid, 0, "00000000:3B:00.0")
    with pytest.raises(GpuMappingError):
        resolve_gpus([0], nvml=FakeNvml(gpus), env={"CUDA_VISIBLE_DEVICES": f"MIG-{UUID_A}/3/0"})


def test_resolve_without_nvml_or_gpus_raises_unavailable():
    with pytest.raises(NvmlUnavailable, match="not found"):
        resolve_gpus([0], nvml=FakeNvml(init_error=NVMLError_LibraryNotFound))
    fake = FakeNvml([])
    with pytest.raises(NvmlUnavailable, match="reports no GPU"):
        resolve_gpus([0], nvml=fake)
    assert fake.init_calls == fake.shutdown_calls == 1


# --------------------------------------------------------------------------- inventory


def test_gpu_inventory_lists_gpus_and_drops_unsupported_fields():
    gpus = three_gpus()[:2]
    gpus[1].unsupported = {"nvmlDeviceGetMemoryInfo"}
    fake = FakeNvml(gpus)
    inventory = gpu_inventory(nvml=fake)
    assert inventory == {
        "gpus": [
            {"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": UUID_A, "pci_bus_id": "00000000:3B:00.0",
             "memory_total_mib": 81920},
            {"index": 1, "name": "NVIDIA H100 80GB HBM3", "uuid": UUID_B, "pci_bus_id": "00000000:18:00.0",
             "memory_total_mib": None},
        ],
        "driver_version": "550.54.15",
        "cuda_driver_version": "12.4",
        "nvml": "ok",
    }
    assert fake.init_calls == fake.shutdown_calls == 1


def test_gpu_inventory_without_nvml():
    assert gpu_inventory(nvml=FakeNvml(init_error=NVMLError_LibraryNotFound)) == {
        "gpus": [], "driver_version": None, "cuda_driver_version": None,
        "nvml": "NVML library (libnvidia-ml.so.1) not found: no NVIDIA driver on this host"}
    assert gpu_inventory(nvml=FakeNvml([]))["nvml"] == "NVML is loaded but reports no GPU"


# --------------------------------------------------------------------------- the real pynvml


def _real_nvml_works() -> bool:
    try:
        pynvml = importlib.import_module("pynvml")
        pynvml.nvmlInit()
    except Exception:
        return False
    try:
        return pynvml.nvmlDeviceGetCount() > 0
    finally:
        pynvml.nvmlShutdown()


@pytest.mark.skipif(_real_nvml_works(), reason="this host has a working NVIDIA driver and GPU")
def test_real_pynvml_on_a_gpu_less_host_degrades_to_unavailable():
    with NvmlMonitor([0], NvmlSettings()) as mon:
        time.sleep(0.01)
    result = mon.result()
    assert result["status"] == "unavailable"
    assert result["reason"]  # e.g. "NVML library (libnvidia-ml.so.1) not found: ..."
    assert result["devices"] == [] and result["reliable"] is None
    assert result["window_s"] >= 0.01
    inventory = gpu_inventory()
    assert inventory["gpus"] == [] and inventory["nvml"] != "ok" and inventory["driver_version"] is None
    with pytest.raises(NvmlUnavailable):
        resolve_gpus([0])


@pytest.mark.gpu
def test_real_gpu_window_is_measured_and_matches_the_schema():
    """On a GPU host: a 2.5 s window on GPU 0 is sampled, and NVML's real answers fit the record's schema."""
    from bench.store.schema import GpuMetrics, undeclared_fields

    with NvmlMonitor([0], NvmlSettings(min_window_s=2.0, min_samples=5)) as mon:
        time.sleep(2.5)
    result = mon.result()
    assert result["status"] == "ok", result["reason"]
    (device,) = result["devices"]
    assert device["uuid"] == gpu_inventory()["gpus"][device["nvml_index"]]["uuid"]
    assert device["samples_in_window"] >= 5 and device["utilization_pct"]["n"] == device["samples_in_window"]
    assert 0.0 <= device["utilization_pct"]["mean"] <= 100.0
    assert device["memory_used_peak_mib"] is None or device["memory_used_peak_mib"] > 0
    assert result["window_s"] >= 2.5 and result["polls"] >= 10
    assert list(undeclared_fields(GpuMetrics.model_validate(result))) == []


def test_summaries_are_pure_functions_of_the_samples():
    from bench.monitor.gpu_summary import aggregate, coverage, percent_stats

    # k = 3 * 0.95 = 2.85: 30 + 0.85 * (40 - 30)
    assert percent_stats([40.0, 10.0, 30.0, 20.0]) == {"mean": 25.0, "p50": 25.0, "p95": 38.5, "n": 4}
    assert percent_stats([]) == {"mean": None, "p50": None, "p95": None, "n": 0}
    # 4 samples 0.5 s apart cover 4 x 0.5 s of a 4 s window
    assert coverage([0, 500_000, 1_000_000, 1_500_000], 4.0) == 0.5 and coverage([0], 4.0) is None
    pooled = aggregate([[10.0, 30.0], [50.0], []])
    assert pooled["utilization_pct_mean"] == 30.0 and pooled["utilization_pct_min_device_mean"] == 20.0
    assert pooled["devices"] == 2
