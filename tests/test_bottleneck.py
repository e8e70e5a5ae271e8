"""Where the time goes (bench.analyze.bottleneck): the best configuration, its native ratio and the named
bottleneck, from hand-made records (no framework)."""

from __future__ import annotations

import pytest

from bench.analyze.bottleneck import (
    best_configurations,
    derive_tables,
    mixed_precision_speedups,
    mixed_precision_summary,
    where_the_time_goes,
)


def train(sps, *, input="device", spe=1, batch=4096, precision="float32", jit=True, util=None, gpus=1, status="ok"):
    gpu = ({"status": "ok", "aggregate": {"utilization_pct_mean": util}} if util is not None
           else {"status": "unavailable", "aggregate": {}})
    jit_text = "auto" if jit == "auto" else str(jit).lower()
    return {"suite": "train", "status": status,
            "case_id": f"train/jax/gpus={gpus}/batch={batch}/{precision}/jit={jit_text}/input={input}/spe={spe}",
            "params": {"backend": "jax", "gpus": gpus, "global_batch": batch, "precision": precision,
                       "jit_compile": jit, "input": input, "steps_per_execution": spe},
            "metrics": {"samples_per_second": {"median": sps}, "gpu_metrics": gpu, "jit_compile_resolved": True}}


def native(sps, *, batch=4096, precision="float32", util=99.0, variant="step"):
    return {"suite": "native", "status": "ok", "case_id": f"native/jax/batch={batch}/{precision}/{variant}",
            "params": {"backend": "jax", "global_batch": batch, "precision": precision, "variant": variant},
            "metrics": {"samples_per_second": {"median": sps},
                        "gpu_metrics": {"aggregate": {"utilization_pct_mean": util}}}}


def only_row(cases):
    (row,) = where_the_time_goes(cases)
    return row


def test_device_input_much_faster_than_numpy_names_the_host_input_path():
    row = only_row([train(1.2e6, input="numpy", util=20), train(3.6e6, input="device", util=45),
                    train(3.7e6, input="device", spe=32, util=46), native(20e6), native(25e6, variant="epoch_scan")])
    assert row["bottleneck"] == "host input path"
    assert row["best_input"] == "device" and row["best_steps_per_execution"] == 32
    assert row["native_ratio"] == pytest.approx(3.7e6 / 20e6)
    # Like with like: numpy was measured at spe 1 only, so the pair is the two spe 1 cases.
    assert row["device_input_gain"] == pytest.approx(3.6e6 / 1.2e6) and row["host_input_best"] == "numpy"
    assert row["utilization_pct"] == 46 and row["native_utilization_pct"] == 99.0
    assert "3.00× the best host-fed input (numpy)" in row["sentence"]
    assert "per-step dispatch" in row["sentence"]  # what remains once the data is on the device


def test_steps_per_execution_helping_names_per_step_dispatch():
    row = only_row([train(2.0e6, spe=1, util=30), train(3.0e6, spe=32, util=45), train(2.1e6, input="numpy", util=30),
                    native(20e6)])
    assert row["bottleneck"] == "per-step dispatch"
    assert row["spe_gain"] == pytest.approx(1.5) and row["spe_best"] == 32
    assert "steps_per_execution 32 runs 1.50× steps_per_execution 1" in row["sentence"]


def test_near_native_with_a_busy_gpu_names_the_device_and_an_idle_one_dispatch():
    row = only_row([train(18e6, util=95), train(6e6, input="numpy", util=40), native(20e6, util=99)])
    assert row["bottleneck"] == "device" and row["native_ratio"] == pytest.approx(0.9)
    idle = only_row([train(0.9e6, util=30), native(1e6, util=35)])
    assert idle["bottleneck"] == "per-step dispatch" and "native loop: GPU busy 35 %" in idle["sentence"]
    # No GPU sampled (a CPU run) and Keras at the native loop's speed: the hardware sets the pace.
    cpu = only_row([train(50e3), native(48e3, util=None)])
    assert cpu["bottleneck"] == "device" and "no GPU sampled" in cpu["sentence"]


def test_far_from_native_with_a_busy_gpu_is_the_device_and_nothing_to_compare_says_so():
    busy = only_row([train(5e6, util=92), train(4.9e6, spe=8, util=92), native(10e6)])
    assert busy["bottleneck"] == "device" and "more device work" in busy["sentence"]
    alone = only_row([train(5e6, util=30)])
    assert alone["bottleneck"] is None and "add the native suite" in alone["sentence"]


def test_cells_are_one_gpu_ok_cases_per_batch_and_precision():
    rows = where_the_time_goes([
        train(1e6, batch=256), train(2e6, batch=4096), train(3e6, batch=4096, precision="mixed_bfloat16"),
        train(9e6, batch=4096, gpus=2), train(9e6, batch=4096, status="failed"), native(1e6, batch=256),
    ])
    assert [(r["global_batch"], r["precision"]) for r in rows] == [(256, "float32"), (4096, "float32"),
                                                                    (4096, "mixed_bfloat16")]
    assert rows[1]["best_samples_per_second"] == 2e6 and rows[1]["cases"] == 1


def test_headlines_use_the_best_input_path_and_say_which():
    cases = [train(1e6, input="numpy"), train(3e6, input="device", spe=32), native(6e6),
             train(1.1e6, input="numpy", precision="mixed_bfloat16"),
             train(4.5e6, input="device", spe=32, precision="mixed_bfloat16"), native(9.9e6, precision="mixed_bfloat16")]
    (best,) = best_configurations(cases)
    assert best["input"] == "device" and best["steps_per_execution"] == 32 and best["precision"] == "mixed_bfloat16"
    assert "input device, steps_per_execution 32" in best["sentence"] and "native ratio 0.45" in best["sentence"]
    (mixed,) = mixed_precision_speedups(cases)
    assert mixed["speedup"] == pytest.approx(1.5) and mixed["native_speedup"] == pytest.approx(1.65)
    assert mixed["mixed_input"] == mixed["float32_input"] == "device"
    # One process per case in this fixture: the ratio has no interval, so the sentence claims no direction.
    assert "1.50× at batch 4096" in mixed["sentence"] and "native loop gains 1.65×" in mixed["sentence"]
    assert mixed["speedup_verdict"] == "no interval" and "speeds up" not in mixed["sentence"]
    (line,) = mixed_precision_summary([mixed])
    assert "median 1.50×" in line and "input device" in line


def test_records_from_before_the_input_axis_are_not_taken_for_device_input():
    old = train(3e6)
    del old["params"]["input"], old["params"]["steps_per_execution"]
    row = only_row([old, native(20e6)])
    assert row["best_input"] == "unrecorded" and row["device_input_gain"] is None
    tables = derive_tables([old, native(20e6)])
    assert set(tables) == {"where_the_time_goes", "best_configurations", "mixed_precision_speedups",
                           "mixed_precision_summary"}
