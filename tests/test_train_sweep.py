"""End to end on the CPU: the real CLI runs real TensorFlow sweeps in worker processes.

Logical CPU devices stand in for GPUs (every result flagged simulated), so MirroredStrategy with two
replicas really runs — including the XLA failure under a strategy (keras-team/keras#19005).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.store.results import cases_frame, load_run
from bench.store.schema import SCHEMA_VERSION
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

SWEEP = """
name = "e2e"
suites = ["train"]

[train]
gpus = [1, 2]
global_batch = [64, 128]
precision = ["float32", "mixed_bfloat16"]
jit_compile = [false, true, "auto"]
exclude = [
  {global_batch = 128, gpus = 2}, {global_batch = 128, precision = "mixed_bfloat16"},
  {global_batch = 128, jit_compile = true}, {global_batch = 128, jit_compile = "auto"},
  {precision = "mixed_bfloat16", jit_compile = true}, {precision = "mixed_bfloat16", jit_compile = "auto"},
  {precision = "mixed_bfloat16", gpus = 2}, {gpus = 1, jit_compile = "auto"},
]

[measure]
warmup_steps = 3
rounds = 3
processes = 2
min_round_s = 0.15
max_steps_per_round = 400
seed = 1

[data]
source = "synthetic"

[devices]
simulate = true
"""


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    config = tmp / "e2e.toml"
    config.write_text(SWEEP)
    proc = run_cli("run", "--config", str(config), "--results-dir", str(tmp / "results"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    path = Path(proc.stdout.strip().splitlines()[-1])
    return proc, path, load_run(path)


def test_run_prints_results_path_last_and_leaves_no_partial(sweep_run):
    proc, path, run = sweep_run
    assert path.is_file() and path.suffix == ".json"
    assert not list(path.parent.glob("*.partial.jsonl"))
    assert run["complete"] is True
    # One line per measurement: the 6 ok cases in 2 processes each, the failing one once.
    assert "[13/13]" in proc.stdout and "ETA" in proc.stdout and "] p2 ok" in proc.stdout
    assert "SYNTHETIC" in proc.stdout and "SIMULATED" in proc.stdout


def test_every_axis_varies_and_every_row_is_flagged(sweep_run):
    _, path, run = sweep_run
    frame = cases_frame(path)
    assert len(frame) == 7 == len(run["cases"])
    for axis in ("gpus", "global_batch", "precision", "jit_compile"):
        assert frame[axis].map(repr).nunique() > 1, axis
    assert (frame["data_source"] == "synthetic").all()
    assert frame["synthetic_data"].all() and frame["simulated"].all()
    assert run["data"]["synthetic"] is True and run["environment"]["packages"]["tensorflow"]


def _case(run, gpus, batch, precision, jit):
    jit_text = "auto" if jit == "auto" else str(jit).lower()
    case_id = f"train/tensorflow/gpus={gpus}/batch={batch}/{precision}/jit={jit_text}/input=device/spe=1"
    return next(c for c in run["cases"] if c["case_id"] == case_id)


def test_ok_cases_carry_complete_measurements(sweep_run):
    _, _, run = sweep_run
    for case in (c for c in run["cases"] if c["status"] == "ok"):
        m = case["metrics"]
        # Two processes of 3 rounds, interleaved: the second process reused the first's round length.
        assert len(m["round_s"]) == 6 and all(s > 0 for s in m["round_s"])
        assert m["round_pass"] == [0, 0, 0, 1, 1, 1] and len(m["round_start_unix"]) == 6
        assert [p["pass_index"] for p in m["processes"]] == [0, 1]
        assert m["processes"][0]["pid"] != m["processes"][1]["pid"]
        assert m["processes"][0]["units_per_round"] == m["processes"][1]["units_per_round"] == m["units_per_round"]
        assert all(p["threads"] == {"intra_op": 1, "inter_op": 1} for p in m["processes"])
        assert case["control"]["round_pass"].count(0) == case["control"]["round_pass"].count(1) > 0
        assert m["samples_per_round"] == m["steps_per_round"] * m["global_batch"]
        assert m["per_replica_batch"] * m["replicas"] == m["global_batch"]
        sps = m["samples_per_second"]
        ordered = sorted(m["samples_per_round"] / s for s in m["round_s"])
        assert sps["median"] == pytest.approx((ordered[2] + ordered[3]) / 2)
        assert sps["min"] <= sps["q1"] <= sps["median"] <= sps["q3"] <= sps["max"]
        assert m["compile_s"] > 0 and m["final_loss"] > 0 and 0 <= m["final_accuracy"] <= 1
        assert m["gpu_metrics"]["status"] == "unavailable" and "CPU" in m["gpu_metrics"]["reason"]
        assert case["devices"]["strategy"] == "MirroredStrategy"
        assert case["devices"]["replicas"] == case["params"]["gpus"]


def test_harness_timing_agrees_with_wall_clock(sweep_run):
    """pytest-benchmark's per-round sum vs an independent monotonic clock: within 2 %."""
    _, _, run = sweep_run
    checks = [c["metrics"]["timing_check"] for c in run["cases"] if c["status"] == "ok"]
    assert checks and all(chk["rel_diff"] < 0.02 for chk in checks), checks


def test_jit_auto_resolves_to_no_xla_under_a_strategy(sweep_run):
    _, _, run = sweep_run
    assert _case(run, 2, 64, "float32", "auto")["metrics"]["jit_compile_resolved"] is False
    assert _case(run, 1, 64, "float32", True)["metrics"]["jit_compile_resolved"] is True


def test_explicit_xla_with_two_replicas_is_a_failed_result(sweep_run):
    _, _, run = sweep_run
    case = _case(run, 2, 64, "float32", True)
    assert case["status"] == "failed"
    assert case["error"]["type"] == "InvalidArgumentError"
    assert "Trying to access resource" in case["error"]["message"]
    assert "replica_1" in case["error"]["message"]


def test_mixed_precision_case_records_policy_effects(sweep_run):
    _, _, run = sweep_run
    case = _case(run, 1, 64, "mixed_bfloat16", False)
    assert case["status"] == "ok" and case["metrics"]["optimizer"] == "Adam"


def test_results_file_is_plain_json_with_schema_version(sweep_run):
    _, path, _ = sweep_run
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == SCHEMA_VERSION == 2 and raw["kind"] == "keras-gpu-bench/run"
    assert raw["environment"]["config_sha256"] == raw["config"]["sha256"]


def test_processes_alternate_in_time_and_comparisons_carry_intervals(sweep_run):
    """Pass 2 runs the layouts and their cases in reverse (ABCD DCBA), every derived comparison pairs passes."""
    _, _, run = sweep_run
    ok = [c for c in run["cases"] if c["status"] == "ok"]
    starts = {(c["case_id"], p["pass_index"]): p["started_unix"] for c in ok for p in c["metrics"]["processes"]}
    first = sorted((t, cid) for (cid, p), t in starts.items() if p == 0)
    second = sorted((t, cid) for (cid, p), t in starts.items() if p == 1)
    assert max(t for t, _ in first) < min(t for t, _ in second)  # pass 1 ends before pass 2 begins
    assert [cid for _, cid in second] == [cid for _, cid in first][::-1]
    assert run["environment"]["threads"]["intra_op"] == 1
    derived = run["derived"]
    assert {r["case_id"] for r in derived["case_stats"]} == {c["case_id"] for c in ok}
    assert all(r["processes"] == 2 and r["ci_low"] < r["value"] < r["ci_high"] for r in derived["case_stats"])
    axes = {r["axis"] for r in derived["comparisons"]}
    assert {"precision", "jit_compile", "global_batch", "gpus"} <= axes
    assert all(r["pairs"] == 2 and r["ci_low"] <= r["ratio"] <= r["ci_high"] for r in derived["comparisons"])
    assert "slowest" in derived["machine_speed"]["sentence"]
