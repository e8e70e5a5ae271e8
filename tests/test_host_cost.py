"""Host cost per step (bench.analyze.host_cost) and what where-the-time-goes makes of it, from hand-made
records: the raw per-round host CPU seconds a train or native case stores, no framework."""

from __future__ import annotations

import pytest

from bench.analyze.bottleneck import HOST, derive_tables, where_the_time_goes
from bench.analyze.host_cost import keras_environments, per_step, with_host_cost


def train(sps, *, host_s=None, round_s=(1.0, 1.0, 1.0), steps=1000, input="device", spe=1, batch=4096, util=None,
          env=None, version="3.15.1", status="ok"):
    gpu = ({"status": "ok", "aggregate": {"utilization_pct_mean": util}} if util is not None
           else {"status": "unavailable", "aggregate": {}})
    params = {"backend": "jax", "gpus": 1, "global_batch": batch, "precision": "float32", "jit_compile": True,
              "input": input, "steps_per_execution": spe}
    if env is not None:
        params["environment"] = env
    metrics = {"samples_per_second": {"median": sps}, "gpu_metrics": gpu, "jit_compile_resolved": True,
               "steps_per_round": steps, "round_s": list(round_s), "keras_version": version}
    if host_s is not None:
        metrics["round_host_cpu_s"] = list(host_s)
    suffix = f"/env={env}" if env not in (None, "default") else ""
    return {"suite": "train", "status": status, "params": params, "metrics": metrics,
            "case_id": f"train/jax/gpus=1/batch={batch}/float32/jit=true/input={input}/spe={spe}{suffix}"}


def native(sps, *, variant="step", round_s=(1.0, 1.0, 1.0), host_s=(0.05, 0.05, 0.05), steps=1000, util=None,
           batch=4096):
    return {"suite": "native", "status": "ok", "case_id": f"native/jax/batch={batch}/float32/{variant}",
            "params": {"backend": "jax", "global_batch": batch, "precision": "float32", "variant": variant},
            "metrics": {"samples_per_second": {"median": sps}, "steps_per_round": steps, "round_s": list(round_s),
                        "round_host_cpu_s": list(host_s),
                        "gpu_metrics": {"aggregate": {"utilization_pct_mean": util}}}}


def test_per_step_is_the_median_round_over_its_steps_in_microseconds():
    case = train(1e6, host_s=(0.30, 0.20, 0.25, 0.9), round_s=(1.0, 1.2, 0.8, 1.1), steps=2000)
    found = per_step(case)
    assert found["host_us_per_step"] == pytest.approx(1e6 * 0.275 / 2000)  # a slow round does not move it
    assert found["wall_us_per_step"] == pytest.approx(1e6 * 1.05 / 2000)
    assert found["host_share"] == pytest.approx(0.275 / 1.05)
    # Older files (no round_host_cpu_s) and failed cases: wall only, or nothing.
    assert per_step(train(1e6))["host_us_per_step"] is None and per_step(train(1e6))["wall_us_per_step"] == 1000
    assert per_step(train(1e6, host_s=(0.1, 0.1, 0.1), status="failed"))["wall_us_per_step"] is None
    # derived.case_stats rows (bench.analyze.paired) gain each case's host and wall time per step.
    cases = [train(1e6, host_s=(0.2, 0.2, 0.2)), native(2e6)]
    rows = with_host_cost([{"case_id": c["case_id"], "processes": 3} for c in cases], cases)
    assert [r["processes"] for r in rows] == [3, 3]
    assert rows[0]["host_us_per_step"] == pytest.approx(200) and rows[1]["host_us_per_step"] == pytest.approx(50)


def test_a_fit_thread_busy_for_the_whole_step_names_the_host_even_without_a_gpu():
    # 285 µs of host CPU in a 300 µs step: the fit thread never waits; the device needs 40 µs a step.
    row = only_row([train(1e6, host_s=(0.285,) * 3, round_s=(0.3,) * 3), native(2e6, round_s=(0.1,) * 3),
                    native(9e6, variant="epoch_scan", round_s=(0.04,) * 3, host_s=(0.0001,) * 3)])
    assert row["bottleneck"] == HOST
    assert row["host_us_per_step"] == pytest.approx(285) and row["wall_us_per_step"] == pytest.approx(300)
    assert row["device_us_per_step"] == pytest.approx(40)
    assert row["native_host_us_per_step"] == pytest.approx(50)
    assert "the fit thread spends 285 µs of CPU per step, 95 % of the 300 µs wall step" in row["sentence"]
    assert "the device needs 40 µs per step (native epoch_scan), so the host's is the larger" in row["sentence"]


def test_a_thread_that_waits_is_not_named_and_the_sentence_compares_host_with_device():
    # The GPU is busy and Keras is near the native loop: the device, and the sentence says whose cost is larger.
    row = only_row([train(9e6, host_s=(0.05,) * 3, util=95), native(10e6, util=99),
                    native(11e6, variant="epoch_scan", round_s=(0.09,) * 3)])
    assert row["bottleneck"] == "device"
    assert "host CPU 50 µs per step against the device's 90 µs (native epoch_scan): the device's is larger" \
        in row["sentence"]
    # On a CPU box a thread that waits most of the step near the native loop: the device (the CPU's compute).
    cpu = only_row([train(0.95e6, host_s=(0.2,) * 3), native(1e6)])
    assert cpu["bottleneck"] == "device" and cpu["host_share"] == pytest.approx(0.2)


def test_environments_get_their_own_rows_and_the_headlines_stay_with_the_default_keras():
    cases = [train(1.0e6, host_s=(0.285,) * 3, round_s=(0.3,) * 3, spe=1),
             train(1.3e6, host_s=(0.147,) * 3, round_s=(0.25,) * 3, spe=32),
             train(1.1e6, host_s=(0.237,) * 3, round_s=(0.28,) * 3, spe=1, env="nightly", version="3.16.0.dev1"),
             train(3.0e6, host_s=(0.033,) * 3, round_s=(0.1,) * 3, spe=32, env="nightly", version="3.16.0.dev1"),
             native(2e6), native(9e6, variant="epoch_scan", round_s=(0.04,) * 3)]
    tables = derive_tables(cases)
    rows = tables["where_the_time_goes"]
    assert [(r["environment"], r["best_steps_per_execution"]) for r in rows] == [("default", 32), ("nightly", 32)]
    assert "environment nightly (Keras 3.16.0.dev1 (development build))" in rows[1]["sentence"]
    assert rows[1]["keras_version"] == "3.16.0.dev1" and rows[1]["host_us_per_step"] == pytest.approx(33)
    # The best configuration is the default Keras' (the nightly's faster case is its own question).
    (best,) = tables["best_configurations"]
    assert best["case_id"].endswith("spe=32") and "env=" not in best["case_id"]

    side = keras_environments(cases)
    assert [(r["environment"], r["steps_per_execution"]) for r in side] == [
        ("default", 1), ("nightly", 1), ("default", 32), ("nightly", 32)]
    spe32 = side[3]
    assert spe32["host_us_per_step"] == pytest.approx(33) and spe32["development"] is True
    assert spe32["host_vs_default"] == pytest.approx(33 / 147) and spe32["wall_vs_default"] == pytest.approx(0.4)
    assert spe32["native_host_us_per_step"] == pytest.approx(50) and spe32["device_us_per_step"] == pytest.approx(40)
    assert side[2]["sentence"] is None
    assert ("Keras 3.16.0.dev1 (development build) (nightly) — host CPU 33 µs per step against 147 µs for Keras "
            "3.15.1; wall 100 µs per step against 250 µs; the native step loop: host 50 µs, wall 1,000 µs per step; "
            "the device (native epoch_scan): 40 µs per step.") in spe32["sentence"]
    # One environment: nothing to put side by side.
    assert keras_environments([c for c in cases if "environment" not in c["params"]]) == []


def only_row(cases):
    (row,) = where_the_time_goes(cases)
    return row


def test_on_a_cpu_box_a_waiting_fit_thread_far_from_native_is_not_called_dispatch():
    # Keras at 0.68 of the native loop, its fit thread busy 9 % of the step: the gap is compute, not dispatch.
    row = only_row([train(0.68e6, host_s=(0.09,) * 3, round_s=(1.0,) * 3), native(1e6)])
    assert row["bottleneck"] == "device"
    assert "the fit thread is busy only 9 % of the 1,000 µs wall step" in row["sentence"]
    # Without the host measurement (an older file) the rule it replaces still speaks.
    assert only_row([train(0.68e6), native(1e6)])["bottleneck"] == "per-step dispatch"
