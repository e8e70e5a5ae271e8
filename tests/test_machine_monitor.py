"""The machine monitor's arithmetic on a fake /proc/stat, fake own usage and a fake clock."""

from __future__ import annotations

import pytest

from bench.monitor.machine import MachineMonitor, read_proc_stat


def test_other_processes_share_and_steal_from_proc_stat_deltas():
    # user nice system idle iowait irq softirq steal guest guest_nice, in ticks (100 per second)
    stats = iter([[0] * 10, [150, 0, 50, 150, 0, 0, 0, 50, 0, 0]])  # 400 ticks = 2 CPUs x 2 s
    usage = iter([(1.0, 10, 0), (2.0, 25, 1)])  # this process used 1 s = 100 ticks
    clock = iter([10.0, 12.0])
    monitor = MachineMonitor(lambda: next(stats), lambda: next(usage), lambda: next(clock), ticks_per_s=100)
    with monitor:
        pass
    found = monitor.result()
    # busy 200 ticks (user + system), 100 of them ours: others 100 / 400
    assert found["others_cpu_share"] == pytest.approx(0.25) and found["steal_share"] == pytest.approx(0.125)
    assert found["own_cpu_share"] == pytest.approx(0.25) and found["window_s"] == pytest.approx(2.0)
    assert (found["own_minor_faults"], found["own_major_faults"]) == (15, 1)


def test_without_proc_stat_the_shares_are_unknown_not_zero():
    usage = iter([(1.0, 0, 0), (1.5, 0, 0)])
    monitor = MachineMonitor(lambda: None, lambda: next(usage), iter([0.0, 1.0]).__next__, ticks_per_s=100)
    with monitor:
        pass
    assert monitor.result()["others_cpu_share"] is None and monitor.result()["steal_share"] is None


def test_this_machine_has_a_cpu_line(tmp_path):
    path = tmp_path / "stat"
    path.write_text("cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 1 1 1 1 1 1 1 1 1\n")
    assert read_proc_stat(str(path)) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert read_proc_stat(str(tmp_path / "missing")) is None
