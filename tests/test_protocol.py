"""The shared timed-rounds protocol with a fake clock, a fake benchmark and a fake monitor: no framework."""

from __future__ import annotations

import dataclasses
import math

import pytest

from bench.measure.protocol import (
    NonFiniteLoss,
    RoundSettings,
    TimedRounds,
    calibrate,
    measure_rounds,
    throughput_metrics,
)
from bench.monitor.select import UnavailableMonitor


class FakeClock:
    """Time moves only when the fake work says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeBenchmark:
    """pytest-benchmark's ``pedantic`` surface, timing each round with the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[dict] = []
        self.stats = type("Stats", (), {"stats": type("Data", (), {"data": []})()})()

    def pedantic(self, target, rounds, iterations, warmup_rounds):
        self.calls.append({"rounds": rounds, "iterations": iterations, "warmup_rounds": warmup_rounds})
        data = []
        for _ in range(rounds):
            t0 = self.clock()
            target()
            data.append(self.clock() - t0)
        self.stats.stats.data = data


class FakeMonitor:
    """Records when it was entered and left, and which rounds ran inside."""

    def __init__(self, clock: FakeClock, log: list) -> None:
        self.clock, self.log = clock, log

    def __enter__(self):
        self.log.append(("monitor_on", self.clock()))
        return self

    def __exit__(self, *exc):
        self.log.append(("monitor_off", self.clock()))

    def result(self):
        return {"status": "ok", "reliable": True, "window_s": 1.0}


class FakeSource:
    """Each unit costs ``per_unit`` seconds; a round can be made slower by index (drift, hiccups)."""

    def __init__(self, clock: FakeClock, log: list, per_unit: float = 0.01, slow: dict | None = None,
                 host_cpu=None) -> None:
        self.clock, self.log, self.per_unit, self.slow = clock, log, per_unit, slow or {}
        self.host_cpu = host_cpu  # round index -> the host CPU seconds the round reports (None: cannot tell)
        self.trials: list[int] = []
        self.opened: list[tuple[int, int]] = []
        self.rounds_run = 0

    def trial(self, units: int) -> float:
        self.trials.append(units)
        self.clock.advance(0.5)  # per-call set-up: must not count
        t0 = self.clock()
        self.clock.advance(units * self.per_unit)
        return self.clock() - t0

    def rounds(self, units, count):
        source = self

        class Ctx:
            def __enter__(self):
                source.opened.append((units, count))
                return self.one_round

            def one_round(self):
                index = source.rounds_run
                source.rounds_run += 1
                source.log.append(("round", index))
                source.clock.advance(units * source.per_unit * source.slow.get(index, 1.0))
                return source.host_cpu(index) if source.host_cpu else None

            def __exit__(self, *exc):
                source.log.append(("closed", source.rounds_run))

        return Ctx()


def _settings(**kw):
    base = dict(rounds=5, min_round_s=1.0, start_units=5, max_units=100_000)
    base.update(kw)
    return RoundSettings(**base)


# --------------------------------------------------------------------------- calibration


def test_calibration_grows_geometrically_then_scales_with_headroom():
    trials = []

    def run(units):
        trials.append(units)
        return units * 0.01

    units, record = calibrate(run, start_units=5, min_round_s=1.0, max_units=10_000)
    # 5 units = 0.05 s (< 0.2 s): grow by min(10, max(2, 0.3 / 0.05)) = 6x -> 30 units = 0.3 s, enough.
    assert trials == [5, 30]
    assert units == 110  # ceil(1.1 * 1.0 / 0.01)
    assert [t["units"] for t in record] == [5, 30] and record[1]["seconds"] == pytest.approx(0.3)


def test_calibration_rounds_to_whole_executions_and_respects_the_ceiling():
    units, trials = calibrate(lambda n: n * 0.01, start_units=5, min_round_s=1.0, max_units=10_000, multiple=8)
    assert all(t["units"] % 8 == 0 for t in trials) and units % 8 == 0 and units >= 110
    capped, _ = calibrate(lambda n: n * 0.01, start_units=1, min_round_s=100.0, max_units=50)
    assert capped == 50
    # A unit already longer than the round: one unit per round.
    one, trials = calibrate(lambda n: n * 3.0, start_units=1, min_round_s=1.0, max_units=10)
    assert one == 1 and len(trials) == 1


# --------------------------------------------------------------------------- the protocol


def test_monitor_brackets_exactly_the_timed_rounds_with_overhead_rounds_on_both_sides():
    clock, log = FakeClock(), []
    source = FakeSource(clock, log, per_unit=0.01)
    bench = FakeBenchmark(clock)
    result = measure_rounds(source, _settings(measure_overhead=True), bench, FakeMonitor(clock, log),
                            clock=clock, wall_clock=clock)
    units = result.units_per_round
    assert source.opened == [(units, 1 + 5 + 5)]  # warm-up + timed + unmonitored, one context
    order = [entry[0] if entry[0] != "round" else entry[1] for entry in log]
    # Round 0 warm-up, 1-2 unmonitored, 3-7 timed inside the monitor, 8-10 unmonitored.
    assert order == [0, 1, 2, "monitor_on", 3, 4, 5, 6, 7, "monitor_off", 8, 9, 10, "closed"]
    assert bench.calls == [{"rounds": 5, "iterations": 1, "warmup_rounds": 0}]
    assert len(result.round_s) == 5 and len(result.off_round_s) == 5
    assert all(s == pytest.approx(units * 0.01) for s in result.round_s)
    assert result.gpu_metrics["status"] == "ok"


def test_no_overhead_rounds_when_nothing_is_sampled_or_not_asked():
    for monitor_kind, overhead in (("unavailable", True), ("real", False)):
        clock, log = FakeClock(), []
        source = FakeSource(clock, log)
        monitor = UnavailableMonitor("replicas ran on CPU devices") if monitor_kind == "unavailable" else FakeMonitor(clock, log)
        result = measure_rounds(source, _settings(measure_overhead=overhead), FakeBenchmark(clock), monitor,
                                clock=clock, wall_clock=clock)
        assert result.off_round_s == () and source.opened[0][1] == 1 + 5
        assert source.rounds_run == 6


def test_wall_clock_is_independent_of_the_harness_timer():
    clock, log = FakeClock(), []
    wall = FakeClock()

    class DriftingBenchmark(FakeBenchmark):
        """A harness whose timer misses 10 % of each round, as a broken timer would."""

        def pedantic(self, target, rounds, iterations, warmup_rounds):
            super().pedantic(target, rounds, iterations, warmup_rounds)
            self.stats.stats.data = [s * 0.9 for s in self.stats.stats.data]

    class WallSource(FakeSource):
        def rounds(self, units, count):
            ctx = super().rounds(units, count)
            inner = ctx.one_round

            def one_round():
                t0 = clock()
                inner()
                wall.advance(clock() - t0)

            ctx.one_round = one_round
            return ctx

    result = measure_rounds(WallSource(clock, log), _settings(), DriftingBenchmark(clock), FakeMonitor(clock, log),
                            clock=clock, wall_clock=wall)
    check = result.timing_check
    assert check["wall_s"] == pytest.approx(5 * result.units_per_round * 0.01)
    assert check["rel_diff"] == pytest.approx(0.1)


def test_result_is_frozen_and_a_failing_round_propagates():
    clock, log = FakeClock(), []
    result = measure_rounds(FakeSource(clock, log), _settings(), FakeBenchmark(clock), FakeMonitor(clock, log),
                            clock=clock, wall_clock=clock)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.round_s = ()  # type: ignore[misc]

    class Failing(FakeSource):
        def rounds(self, units, count):
            ctx = super().rounds(units, count)

            def one_round():
                if self.rounds_run == 3:
                    raise NonFiniteLoss("non-finite loss nan during timed rounds")
                self.rounds_run += 1

            ctx.one_round = one_round
            return ctx

    log.clear()
    with pytest.raises(NonFiniteLoss):
        measure_rounds(Failing(clock, log), _settings(), FakeBenchmark(clock), FakeMonitor(clock, log), clock=clock,
                       wall_clock=clock)
    # The monitor is left and the round context closed (the fit thread stops) on the way out.
    assert [e[0] for e in log] == ["monitor_on", "monitor_off", "closed"]


# --------------------------------------------------------------------------- metrics


def test_throughput_metrics_from_raw_rounds():
    result = TimedRounds(units_per_round=3, round_s=(1.0, 2.0, 1.0, 1.0, 1.0), wall_s=6.0,
                         off_round_s=(0.5, 0.5, 0.5, 0.5, 0.5), gpu_metrics={"status": "ok", "reliable": False},
                         calibration=({"units": 1, "seconds": 0.4},))
    metrics, flags = throughput_metrics(result, samples_per_unit=60_000, steps_per_unit=117, cv_threshold=0.05)
    assert metrics["steps_per_round"] == 351 and metrics["samples_per_round"] == 180_000
    assert metrics["samples_per_second"]["median"] == pytest.approx(180_000)
    assert metrics["step_time_s"]["median"] == pytest.approx(1 / 351)
    assert metrics["calibration"] == [{"units": 1, "seconds": 0.4, "steps": 117}]
    assert metrics["timing_check"] == {"harness_s": 6.0, "wall_s": 6.0, "rel_diff": 0.0}
    # Unmonitored rounds twice as fast: the monitored ones were 50 % slower.
    assert metrics["monitor_overhead"]["overhead_pct"] == pytest.approx(50.0)
    assert flags == {"unstable": True, "gpu_metrics_unreliable": True}
    steady = dataclasses.replace(result, round_s=(1.0,) * 5, off_round_s=(), gpu_metrics={"reliable": None})
    metrics, flags = throughput_metrics(steady, 512, 1, 0.05)
    assert "monitor_overhead" not in metrics and flags == {"unstable": False, "gpu_metrics_unreliable": False}
    assert math.isclose(metrics["samples_per_second"]["cv"], 0.0)


def test_host_cpu_of_the_timed_rounds_only_is_kept_parallel_to_round_s():
    clock, log = FakeClock(), []
    source = FakeSource(clock, log, host_cpu=lambda index: index / 1000)
    result = measure_rounds(source, _settings(measure_overhead=True), FakeBenchmark(clock), FakeMonitor(clock, log),
                            clock=clock, wall_clock=clock)
    # Round 0 warm-up, 1-2 unmonitored, 3-7 timed, 8-10 unmonitored: only the timed ones, in order.
    assert result.round_host_cpu_s == (0.003, 0.004, 0.005, 0.006, 0.007)
    metrics, _ = throughput_metrics(result, 64, 1, 0.05)
    assert metrics["round_host_cpu_s"] == [0.003, 0.004, 0.005, 0.006, 0.007]


def test_a_source_that_cannot_tell_host_cpu_records_none():
    clock, log = FakeClock(), []
    result = measure_rounds(FakeSource(clock, log), _settings(), FakeBenchmark(clock), FakeMonitor(clock, log),
                            clock=clock, wall_clock=clock)
    assert result.round_host_cpu_s == ()
    metrics, _ = throughput_metrics(result, 64, 1, 0.05)
    assert "round_host_cpu_s" not in metrics
