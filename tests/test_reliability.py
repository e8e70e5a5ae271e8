"""A sweep survives failures, kills and hangs without losing a finished case (real processes, real files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.store.results import CaseLog, load_run
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

FAST = """
name = "{name}"
suites = ["train"]
[train]
gpus = [1]
global_batch = {batches}
precision = ["float32"]
jit_compile = [false]
[measure]
warmup_steps = 2
rounds = 3
processes = 2
min_round_s = 0.1
max_steps_per_round = 200
case_timeout_s = {timeout}
[data]
source = "synthetic"
[devices]
simulate = true
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_sigkill_mid_sweep_then_resume_loses_and_duplicates_nothing(tmp_path):
    config = tmp_path / "kill.toml"
    config.write_text(FAST.format(name="kill", batches="[32, 64, 96, 128, 160, 192]", timeout=300))
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--config", str(config),
                             "--results-dir", str(results), "--quiet"],
                            cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    partial = None
    while time.monotonic() < deadline:
        logs = list(results.glob("*.partial.jsonl"))
        if logs:
            partial = logs[0]
            if len(partial.read_text().splitlines()) >= 3:  # header + 2 finished cases
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("sweep did not finish two cases in time")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    # The worker dies with its parent (PR_SET_PDEATHSIG) and writes no more.
    time.sleep(2.0)
    size = partial.stat().st_size
    time.sleep(1.0)
    assert partial.stat().st_size == size
    assert not list(results.glob("*.json")), "no final document after a kill"
    before = [case.to_dict() for case in CaseLog(partial).read()[1]]
    assert len(before) >= 2

    resumed = run_cli("run", "--resume", str(partial), "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = Path(resumed.stdout.strip().splitlines()[-1])
    run = load_run(final)
    ids = [c["case_id"] for c in run["cases"]]
    assert len(ids) == len(set(ids)) == 6
    assert ids == [f"train/tensorflow/gpus=1/batch={b}/float32/jit=false/input=device/spe=1" for b in (32, 64, 96, 128, 160, 192)]
    by_id = {c["case_id"]: c for c in run["cases"]}
    for case in before:  # finished measurements were kept as they were, not re-run
        if case["status"] == "ok":
            merged = by_id[case["case_id"]]["metrics"]
            p = case["metrics"]["process"]["pass_index"]
            assert [s for s, q in zip(merged["round_s"], merged["round_pass"], strict=True) if q == p] == case["metrics"]["round_s"]
            entry = next(e for e in merged["processes"] if e["pass_index"] == p)
            assert entry["pid"] == case["metrics"]["process"]["pid"]
            if p == 0:
                assert by_id[case["case_id"]]["started_utc"] == case["started_utc"]
    # Every case in both of its processes, each pass once.
    assert all([e["pass_index"] for e in c["metrics"]["processes"]] == [0, 1] for c in run["cases"])
    assert all(c["status"] == "ok" for c in run["cases"]), [c["reason"] for c in run["cases"]]
    assert not partial.exists() and final.name == partial.name.replace(".partial.jsonl", ".json")


def test_injected_faults_are_results_and_the_sweep_completes(tmp_path):
    config = tmp_path / "faults.toml"
    config.write_text(FAST.format(name="faults", batches="[32, 64, 96, 128, 160]", timeout=25))
    faults = ";".join([
        "*/batch=32/*=oom",
        "*/batch=64/*=nan",
        "*/batch=96/*=segfault",
        "*/batch=128/*=hang",
        "*/batch=160/*=segfault_once",
    ])
    proc = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "r"),
                   env={"BENCH_FAULTS": faults})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = load_run(Path(proc.stdout.strip().splitlines()[-1]))
    by_batch = {c["params"]["global_batch"]: c for c in run["cases"]}
    assert len(by_batch) == 5

    oom = by_batch[32]
    assert oom["status"] == "failed" and oom["error"]["type"] == "ResourceExhaustedError"
    assert "OOM when allocating" in oom["reason"]

    nan = by_batch[64]
    assert nan["status"] == "failed" and nan["error"]["type"] == "NonFiniteLoss"

    crash = by_batch[96]  # died in its first worker and in its retry: a failure, with both deaths
    assert crash["status"] == "failed" and crash["error"]["type"] == "WorkerCrash"
    assert crash["reason"].count("signal 11") == 2 and "and, before it" in crash["reason"]
    assert not crash["flags"].get("retried_after_crash")

    hang = by_batch[128]
    assert hang["status"] == "failed" and hang["error"]["type"] == "CaseTimeout"
    assert "timed out after 25 s" in hang["reason"]

    # One segfault is a draw of the process: the case ran again in a fresh worker and says so.
    once = by_batch[160]
    assert once["status"] == "ok" and once["flags"]["retried_after_crash"], once["reason"]
    assert once["metrics"]["samples_per_second"]["median"] > 0
    assert all(not c["flags"].get("retried_after_crash") for b, c in by_batch.items() if b != 160)
    assert by_batch[128]["status"] == "failed"  # a hang is not retried


def test_interrupt_keeps_the_log_and_says_how_to_resume(tmp_path):
    """SIGINT while the second case hangs (an injected fault, timeout 300 s): the sweep cannot have finished
    before the signal lands, however fast or loaded the machine (a race that once made this test flaky)."""
    config = tmp_path / "int.toml"
    config.write_text(FAST.format(name="int", batches="[32, 64]", timeout=300))
    results = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--config", str(config),
                             "--results-dir", str(results)],
                            cwd=REPO, env={**_env(), "BENCH_FAULTS": "*/batch=64/*=hang"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # the first case finished and the hanging one started
        events = [json.loads(line) for path in results.glob("*.logs/*.progress.jsonl")
                  for line in path.read_text().splitlines() if line.strip()]
        if any(e["event"] == "start" and "batch=64" in e["case_id"] for e in events):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the sweep did not reach its second case in time")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    partial = next(results.glob("*.partial.jsonl"))
    assert f"resume with: python -m bench run --resume {partial}" in err
    assert "Traceback" not in err
    header, logged = CaseLog(partial).read()
    assert header.run_id in partial.name
    # What finished is also a document, marked incomplete, next to the log that --resume continues.
    document = load_run(results / f"{header.run_id}.json")
    assert document["complete"] is False and document["run_id"] == header.run_id
    assert [c["case_id"] for c in document["cases"]] == [c.case_id for c in logged] == [
        "train/tensorflow/gpus=1/batch=32/float32/jit=false/input=device/spe=1"]


def test_bad_data_path_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('name = "b"\nsuites = ["train"]\n[data]\nsource = "npz"\npath = "/nonexistent/mnist.npz"\n')
    proc = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "data file not found" in proc.stderr


def test_unwritable_results_dir_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('name = "c"\nsuites = ["train"]\n')
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli("run", "--config", str(config), "--results-dir", str(blocker / "sub"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "results directory" in proc.stderr


def test_resume_of_a_missing_or_foreign_file(tmp_path):
    proc = run_cli("run", "--resume", str(tmp_path / "nope.partial.jsonl"))
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr
    other = tmp_path / "x.partial.jsonl"
    other.write_text(json.dumps({"header": {"kind": "other"}}) + "\n")
    proc = run_cli("run", "--resume", str(other))
    assert proc.returncode == 2 and "not a run log of this tool" in proc.stderr


def test_more_gpus_than_visible_without_simulation_is_skipped_with_the_reason(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(FAST.format(name="skip", batches="[64]", timeout=300).replace("simulate = true", "simulate = false"))
    proc = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "r"),
                   env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hides every GPU" in proc.stderr
    (case,) = load_run(Path(proc.stdout.strip().splitlines()[-1]))["cases"]
    assert case["status"] == "skipped"
    assert "asks for 1 GPU(s) but 0 visible" in case["reason"] and "simulate = true" in case["reason"]
