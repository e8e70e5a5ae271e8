"""The same sweep on TensorFlow, JAX and torch in one run: one results file, one report.

Each backend runs in its own worker process (KERAS_BACKEND is fixed at import); gpus = 2 is simulated
on the CPU, and on JAX that path (forced host devices) once aborted a process here — a worker per
layout turns such an abort into a failed case instead of a lost sweep.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.store.results import cases_frame, load_run
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backends_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backends")
    shipped = (REPO / "configs" / "backends.toml").read_text()
    assert "min_round_s = 0.25" in shipped and "processes = 3" in shipped
    # Shorter: one process per case (the pooling of processes is tested in test_train_sweep and test_drift).
    config = shipped.replace("min_round_s = 0.25", "min_round_s = 0.1").replace("processes = 3", "processes = 1")
    path = tmp / "backends.toml"
    path.write_text(config)
    proc = run_cli("run", "--config", str(path), "--results-dir", str(tmp / "results"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, Path(proc.stdout.strip().splitlines()[-1])


def test_one_results_file_holds_every_backend(backends_run):
    _, path = backends_run
    run = load_run(path)
    train = cases_frame(run, suite="train")
    assert set(train["backend"]) == {"tensorflow", "jax", "torch"}
    assert len(train) == 6
    rows = train.to_dict("records")
    by = {(r["backend"], r["gpus"]): r for r in rows}
    for backend in ("tensorflow", "jax", "torch"):
        assert by[(backend, 1)]["status"] == "ok", by[(backend, 1)]["reason"]
    assert by[("tensorflow", 2)]["status"] == "ok" and by[("tensorflow", 2)]["simulated"]
    # JAX over two forced host devices: a result either way, never a lost sweep.
    assert by[("jax", 2)]["status"] in ("ok", "failed")
    assert by[("torch", 2)]["status"] == "skipped"
    assert "no multi-device data parallelism for the torch backend" in by[("torch", 2)]["reason"]
    strategies = {(r["backend"], r["gpus"]): r["devices.strategy"] for r in rows if r["status"] == "ok"}
    assert strategies[("tensorflow", 1)] == "MirroredStrategy"
    assert strategies[("jax", 1)].startswith("none")
    if ("jax", 2) in strategies:
        assert strategies[("jax", 2)] == "keras.distribution.DataParallel"


def test_auto_jit_resolves_per_backend(backends_run):
    _, path = backends_run
    train = cases_frame(path, suite="train")
    resolved = {(r["backend"], r["gpus"]): r["jit_compile_resolved"]
                for r in train.to_dict("records") if r["status"] == "ok"}
    assert resolved[("tensorflow", 2)] is False  # under a strategy, "auto" means no XLA
    assert resolved[("jax", 1)] is True  # JAX always compiles with XLA under "auto"
    assert resolved[("torch", 1)] is False  # torch: "auto" is eager


def test_native_reference_and_ratio_for_every_backend(backends_run):
    _, path = backends_run
    run = load_run(path)
    native = cases_frame(run, suite="native")
    assert set(native["backend"]) == {"tensorflow", "jax", "torch"}
    assert (native["status"] == "ok").all(), list(native["reason"])
    for case in run["cases"]:
        if case["suite"] == "train" and case["status"] == "ok" and case["params"]["gpus"] == 1:
            step = next(c for c in run["cases"] if c["case_id"] == case["metrics"]["native_case_id"])
            assert step["params"]["backend"] == case["params"]["backend"]
            expected = case["metrics"]["samples_per_second"]["median"] / step["metrics"]["samples_per_second"]["median"]
            assert case["metrics"]["native_ratio"] == pytest.approx(expected)


def test_one_report_for_all_backends(backends_run):
    tmp, path = backends_run
    out = tmp / "report" / "index.html"
    proc = run_cli("report", str(path), "-o", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = out.read_text()
    for backend in ("tensorflow", "jax", "torch"):
        assert f"train/{backend}/gpus=1" in html


def test_the_timed_fit_thread_sees_the_callers_keras_distribution():
    """EpochGate runs fit in its own thread; Keras' distribution is thread-local, so without carrying it a
    JAX DataParallel case would train as if on one device (seen before this was fixed: main DataParallel,
    thread None)."""
    import os
    import subprocess
    import sys

    script = """
import threading, keras
from bench.measure.rounds import in_caller_state
devices = keras.distribution.list_devices()
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
seen = {}
def body():
    seen["distribution"] = type(keras.distribution.distribution()).__name__
thread = threading.Thread(target=in_caller_state(keras, body)); thread.start(); thread.join()
bare = {}
thread = threading.Thread(target=lambda: bare.update(d=keras.distribution.distribution())); thread.start(); thread.join()
print(len(devices), seen["distribution"], bare["d"])
"""
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["2", "DataParallel", "None"]
