"""Processes as samples: the pass order, the pairing, and why it makes ratios hold while the machine drifts.

The worker process is faked at the sweep's boundary (``Sweep._run_slot``): it "measures" each case of its
slot on a fake clock, as a true speed times the machine's speed at that moment, and appends the record a
real worker would. Everything else — the schedule, the case log, finalising, merging the processes, the
paired derivation — is the real code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.analyze import paired
from bench.analyze.passes import merge_passes
from bench.config import parse_config
from bench.measure.data import DataSpec
from bench.measure.records import CaseClock, base_record, finish
from bench.run.plan import LayoutGroup, ProcessSlot, schedule
from bench.run.sweep import Sweep
from bench.store.results import CaseLog, finalize_run, load_run
from bench.store.schema import RunHeader

A = "train/tensorflow/gpus=1/batch=256/mixed_bfloat16/jit=false/input=device/spe=1"
B = "train/tensorflow/gpus=1/batch=256/float32/jit=false/input=device/spe=1"
C = "train/tensorflow/gpus=2/batch=256/float32/jit=false/input=device/spe=1"


def _groups() -> list[LayoutGroup]:
    return [LayoutGroup("train", "tensorflow", 1, ("a", "b")), LayoutGroup("train", "tensorflow", 2, ("c", "d")),
            LayoutGroup("cpu_predict", "tensorflow", 2, ("p", "q"))]


def test_interleaved_passes_alternate_groups_and_cases_and_run_the_rest_once_after():
    slots = schedule(_groups(), 3, "interleaved")
    order = [(s.pass_index, s.group.replicas, s.group.suite, s.case_ids) for s in slots]
    assert order == [
        (0, 1, "train", ("a", "b")), (0, 2, "train", ("c", "d")),
        (1, 2, "train", ("d", "c")), (1, 1, "train", ("b", "a")),  # ABCD DCBA: nobody always first or last
        (2, 1, "train", ("a", "b")), (2, 2, "train", ("c", "d")),
        (0, 2, "cpu_predict", ("p", "q")),  # not a throughput sample: once, after the passes
    ]


def test_sequential_order_keeps_each_layout_together_and_one_process_is_the_old_order():
    slots = schedule(_groups(), 2, "sequential")
    assert [(s.pass_index, s.group.replicas, s.case_ids) for s in slots[:4]] == [
        (0, 1, ("a", "b")), (1, 1, ("a", "b")), (0, 2, ("c", "d")), (1, 2, ("c", "d"))]
    assert [s.case_ids for s in schedule(_groups(), 1, "sequential")] == [("a", "b"), ("c", "d"), ("p", "q")]
    assert isinstance(slots[0], ProcessSlot) and slots[1].label.endswith(".pass1")


# --------------------------------------------------------------------------- a fake worker on a fake clock


class FakeMachine:
    """True speeds per case, a machine whose speed halves ``step_at`` seconds into the run (or when pass
    ``step_pass`` begins), and a fake clock."""

    def __init__(self, speeds: dict[str, float], step_at: float | None = None, step_pass: int | None = None,
                 noise: float = 0.01, seed: int = 0, lose: tuple[str, int] | None = None,
                 raises: tuple[str, int] | None = None):
        self.speeds, self.step_at, self.step_pass, self.noise = speeds, step_at, step_pass, noise
        self.current_pass = 0
        self.rng = np.random.default_rng(seed)
        self.now = 1_000_000.0
        self.lose = lose  # (case id, pass): that process dies, the parent records a crash
        self.raises = raises  # (case id, pass): the case itself fails there (an exception, recorded by the worker)
        self.measured: list[tuple[str, int, float]] = []

    def machine(self) -> float:
        late = self.step_at is not None and self.now - 1_000_000.0 >= self.step_at
        later_pass = self.step_pass is not None and self.current_pass >= self.step_pass
        return 0.5 if late or later_pass else 1.0

    def worker(self, sweep: Sweep, slot: ProcessSlot) -> None:
        """Stands in for ``Sweep._run_slot``: each case of the slot, 4 rounds of 10 steps of 256 samples."""
        self.current_pass = slot.pass_index
        for position, case_id in enumerate(sweep._todo(slot)):
            if (case_id, slot.pass_index) == self.lose:
                sweep._record_parent_failure(case_id, "worker process died (signal 9) during this case",
                                             "WorkerCrash", pass_index=slot.pass_index)
                continue
            if (case_id, slot.pass_index) == self.raises:
                sweep._record_parent_failure(case_id, "ValueError: the case cannot run here", "ValueError",
                                             pass_index=slot.pass_index)
                continue
            planned = sweep._by_id[case_id]
            clock = CaseClock()
            draft = base_record("train", case_id, planned.params, "synthetic", clock)
            started = self.now
            round_s, starts = [], []
            for _ in range(4):
                rate = self.speeds[case_id] * self.machine() * math.exp(self.rng.normal(0, self.noise))
                starts.append(self.now)
                round_s.append(2560 / rate)
                self.now += round_s[-1]
            self.measured.append((case_id, slot.pass_index, started))
            draft["metrics"].update(steps_per_round=10, samples_per_round=2560, global_batch=256, round_s=round_s,
                                    round_start_unix=starts, units_per_round=10, compile_s=0.5,
                                    samples_per_second={"n": 0, "median": None, "q1": None, "q3": None,
                                                        "iqr": None, "min": None, "max": None, "mean": None,
                                                        "stdev": None, "cv": None},
                                    process={"pass_index": slot.pass_index, "pid": 1000 + len(self.measured),
                                             "position": position, "started_unix": started})
            sweep.log.append(finish(draft, clock))
            sweep._case_done(case_id, slot.pass_index)


def _run(tmp_path: Path, monkeypatch, machine: FakeMachine, processes: int, order: str) -> dict:
    config = parse_config({
        "name": "drift", "suites": ["train"],
        "train": {"gpus": [1, 2], "global_batch": [256], "precision": ["float32", "mixed_bfloat16"],
                  "jit_compile": [False], "exclude": [{"gpus": 2, "precision": "mixed_bfloat16"}]},
        "measure": {"processes": processes, "order": order}, "control": {"enabled": False}})
    data = DataSpec("synthetic", None, None, "test", 0).to_dict()
    header = RunHeader.model_validate({
        "kind": "keras-gpu-bench/run", "schema_version": 2, "run_id": f"drift-{order}-{processes}",
        "created_utc": "2026-12-05T00:00:00Z", "tool": {"name": "keras-gpu-bench", "version": "t"},
        "config": config.to_dict(), "environment": _environment(), "data": data})
    log = CaseLog.create(tmp_path / f"{order}{processes}.partial.jsonl", header)
    monkeypatch.setattr(Sweep, "_run_slot", lambda sweep, slot: machine.worker(sweep, slot))
    sweep = Sweep(config, data, log, tmp_path / "logs")
    sweep.run()
    from bench.analyze.derive import derive_run

    path = finalize_run(log, tmp_path / f"{order}{processes}.json", "2026-12-05T00:10:00Z",
                        derive=lambda cases: derive_run(config.suites, cases))
    return load_run(path)


def _environment() -> dict:
    return {"python": "3", "platform": "x", "machine": "x", "cpu": "x", "cpu_count": 2, "hostname": "h",
            "packages": {}, "gpus": [], "driver_version": None, "cuda_driver_version": None, "nvml": "none",
            "env_vars": {}, "git_commit": None, "git_dirty": None, "config_sha256": "", "seed": 0}


def _precision_row(run: dict) -> dict:
    return next(r for r in run["derived"]["comparisons"] if r["axis"] == "precision")


def test_a_drift_step_fools_the_one_process_order_and_not_the_paired_passes(tmp_path, monkeypatch):
    """mixed is truly 2.0x float32; the machine halves its speed part-way through the run."""
    speeds = {A: 20_000.0, B: 10_000.0, C: 12_000.0}
    # One process per case, config order (B, A, C): B takes ~1.0 s (its last round starts at ~0.77 s), so the step lands between B and A.
    old = _run(tmp_path, monkeypatch, FakeMachine(speeds, step_at=0.9), 1, "sequential")
    row = _precision_row(old)
    assert row["ratio"] == pytest.approx(1.0, rel=0.05)  # the drift ate the whole effect
    assert row["verdict"] == "no interval" and row["pairs"] == 1  # and the old order could not say so

    # Four interleaved passes on the same machine: the step falls between passes, each pair shares it.
    new = _run(tmp_path, monkeypatch, FakeMachine(speeds, step_pass=2), 4, "interleaved")
    row = _precision_row(new)
    assert row["pairs"] == 4 and row["ratio"] == pytest.approx(2.0, rel=0.03)
    assert row["ci_low"] < 2.0 < row["ci_high"] and row["ci_low"] > 1.5 and row["verdict"] == "faster"
    speed = new["derived"]["machine_speed"]
    assert speed["workers"] == []  # no control workload here: the drift line says it was not measured
    assert "not measured" in speed["sentence"]


def test_a_lost_process_biases_pooled_rounds_but_not_the_paired_ratio(tmp_path, monkeypatch):
    """B's first process dies in the fast half; B's pooled rounds then come mostly from the slow half."""
    speeds = {A: 20_000.0, B: 10_000.0, C: 12_000.0}
    machine = FakeMachine(speeds, step_pass=2, lose=(B, 1))
    run = _run(tmp_path, monkeypatch, machine, 4, "interleaved")
    cases = {c["case_id"]: c for c in run["cases"]}
    assert [p["status"] for p in cases[B]["metrics"]["processes"]] == ["ok", "failed", "ok", "ok"]
    assert cases[B]["status"] == "ok"
    pooled = cases[A]["metrics"]["samples_per_second"]["median"] / cases[B]["metrics"]["samples_per_second"]["median"]
    row = _precision_row(run)
    assert row["pairs"] == 3 and row["ratio"] == pytest.approx(2.0, rel=0.03)
    assert abs(pooled - 2.0) > 0.3  # the unpaired ratio of pooled medians is wrong by more than 15 %


def test_later_passes_reuse_the_first_calibration_and_skip_what_failed_first(tmp_path, monkeypatch):
    speeds = {A: 20_000.0, B: 10_000.0, C: 12_000.0}
    machine = FakeMachine(speeds, raises=(C, 0))
    run = _run(tmp_path, monkeypatch, machine, 3, "interleaved")
    measured = [(cid, p) for cid, p, _ in machine.measured]
    assert (C, 1) not in measured and (C, 2) not in measured  # failed in its first process: measured once
    assert [p for cid, p in measured if cid == A] == [0, 1, 2]
    by_id = {c["case_id"]: c for c in run["cases"]}
    assert by_id[C]["status"] == "failed" and len(by_id[C]["metrics"]["processes"]) == 1


def test_a_crash_in_the_first_process_does_not_drop_the_case(tmp_path, monkeypatch):
    """A worker that died (a segfault) says nothing certain about the case: its later processes measure it."""
    speeds = {A: 20_000.0, B: 10_000.0, C: 12_000.0}
    machine = FakeMachine(speeds, lose=(C, 0))
    run = _run(tmp_path, monkeypatch, machine, 3, "interleaved")
    assert [p for cid, p, _ in machine.measured if cid == C] == [1, 2]
    by_id = {c["case_id"]: c for c in run["cases"]}
    assert by_id[C]["status"] == "ok"
    assert [p["status"] for p in by_id[C]["metrics"]["processes"]] == ["failed", "ok", "ok"]


def test_paired_interval_is_a_t_interval_on_log_ratios():
    logs = [math.log(2.1), math.log(1.9), math.log(2.0), math.log(2.05)]
    ratio, low, high = paired.t_interval(logs)
    mean, sd = np.mean(logs), np.std(logs, ddof=1)
    half = 3.182446305284263 * sd / 2  # t(0.975, 3)
    assert ratio == pytest.approx(math.exp(mean)) and low == pytest.approx(math.exp(mean - half))
    assert high == pytest.approx(math.exp(mean + half))
    assert paired.verdict(0.9, 1.1) == "no measurable difference" and paired.verdict(1.01, 1.2) == "faster"
    assert paired.t_interval([0.5])[1:] == (None, None)


def test_merge_keeps_every_round_and_says_which_process_it_came_from():
    clock = CaseClock()
    records = []
    for p, rounds in enumerate(([0.1, 0.1], [0.2, 0.2])):
        draft = base_record("train", B, {"backend": "tensorflow", "gpus": 1, "global_batch": 256,
                                         "precision": "float32", "jit_compile": False}, "synthetic", clock)
        draft["metrics"].update(steps_per_round=10, samples_per_round=2560, round_s=rounds, units_per_round=10,
                                round_host_cpu_s=[r / 2 for r in rounds],
                                process={"pass_index": p, "pid": 10 + p, "position": 0, "started_unix": 1.0 + p},
                                machine={"others_cpu_share": 0.5 * p, "steal_share": 0.0})
        records.append(finish(draft, clock))
    (merged,) = merge_passes(records)
    m = merged.to_dict()["metrics"]
    assert m["round_s"] == [0.1, 0.1, 0.2, 0.2] and m["round_pass"] == [0, 0, 1, 1]
    assert m["round_host_cpu_s"] == [0.05, 0.05, 0.1, 0.1]
    assert [e["pid"] for e in m["processes"]] == [10, 11] and "process" not in m
    assert m["processes"][1]["machine"]["others_cpu_share"] == 0.5
    assert m["samples_per_second"]["median"] == pytest.approx((25_600 + 12_800) / 2)
    assert paired.process_values(merged.to_dict()) == {0: pytest.approx(25_600), 1: pytest.approx(12_800)}


def _drifting_cases(machine: list[float], noise: float, seed: int = 0) -> list[dict]:
    """Three cases measured in one process per pass each; the machine's speed in pass p is ``machine[p]``, and
    the control beside each case sees the same machine."""
    rng = np.random.default_rng(seed)
    cases = []
    for case_id, speed in ((A, 20_000.0), (B, 10_000.0), (C, 12_000.0)):
        round_s, round_pass, control_s, control_pass = [], [], [], []
        for p, factor in enumerate(machine):
            for _ in range(3):
                round_s.append(2560 / (speed * factor * math.exp(rng.normal(0, noise))))
                round_pass.append(p)
            for _ in range(2):
                control_s.append(1000 / (5_000.0 * factor * math.exp(rng.normal(0, noise / 2))))
                control_pass.append(p)
        gpus = 2 if case_id == C else 1
        cases.append({"suite": "train", "case_id": case_id, "status": "ok",
                      "params": {"backend": "tensorflow", "gpus": gpus},
                      "metrics": {"round_s": round_s, "round_pass": round_pass, "samples_per_round": 2560},
                      "control": {"status": "ok", "samples_per_round": 1000, "round_s": control_s,
                                  "round_pass": control_pass}})
    return cases


def test_the_drift_line_sees_a_machine_that_slowed_for_a_whole_pass():
    """The drift benchmark's slowdown scenario: the machine ran 0.65x / 1x / 1.45x in three passes. The
    cases' raw spread swells with the drift; divided by their control it is their own noise again, and the
    line says the machine moved."""
    speed = paired.machine_speed(_drifting_cases([0.65, 1.0, 1.45], noise=0.02))
    assert speed["cases_noise_raw"] > 0.3 and speed["cases_noise_divided"] < 0.06
    assert speed["cases_noise"] == speed["cases_noise_divided"]
    assert speed["moved"] and set(speed["drifted_workers"]) == {"train-tensorflow-1dev", "train-tensorflow-2dev"}
    assert "the machine moved more than that" in speed["sentence"] and "raw)" in speed["sentence"]
    # A quiet machine (within 3 % from pass to pass) with the same case noise stays steady.
    quiet = paired.machine_speed(_drifting_cases([1.0, 1.02, 0.99], noise=0.02, seed=1))
    assert not quiet["moved"] and quiet["sentence"].endswith("steady.")
