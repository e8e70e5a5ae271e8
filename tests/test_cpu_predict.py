"""cpu_predict: placement-log parsing and status logic (fast), then the real suite on CPU (slow, ~45 s).

The slow test runs ``python -m bench run`` in a subprocess: logical devices can only be configured before
TensorFlow initialises, so the suite needs a fresh process. A logical CPU:1 stands in for the GPU, which
reproduces keras-team/keras#20308 exactly.
"""

from __future__ import annotations

import math
import os
import textwrap

import pytest

from bench.config import parse_config
from bench.cpu_predict import (
    CpuPredictCase,
    cpu_predict_cases,
    format_ranking,
    judge,
    ranking,
    tolerance,
)
from bench.placement import capture_fd, compute_evidence, parse_placer_lines, same_device, short_device
from bench.results import load_run
from tests.conftest import run_cli

CPU0 = "/job:localhost/replica:0/task:0/device:CPU:0"
CPU1 = "/job:localhost/replica:0/task:0/device:CPU:1"
PREFIX = "I0000 00:00:1795653470.184932    8132 placer.cc:162] "

# Captured on TF 2.21 (two logical CPUs, CPU:1 standing in for the GPU), trimmed.
# A model built under MirroredStrategy on CPU:1, predicted under keras.device('/device:CPU:0'), no XLA:
# the outer function is dispatched on CPU:0, the MatMuls run on CPU:1.
STRATEGY_LOG = "\n".join([
    PREFIX + f"data: (_Arg): {CPU0}",
    PREFIX + f"mnist_mlp_1/dense_1/Cast/ReadVariableOp: (ReadVariableOp): {CPU1}",
    PREFIX + f"mnist_mlp_1/dense_1/MatMul: (MatMul): {CPU1}",
    PREFIX + f"mnist_mlp_1/dense_1/BiasAdd: (BiasAdd): {CPU1}",
    PREFIX + f"mnist_mlp_1/dense_2_1/MatMul: (MatMul): {CPU1}",
    f"I0000 00:00:1795653470.135394    8132 execute.cc:1775] Executing op "
    f"__inference_one_step_on_data_distributed_1506 in device {CPU0}",
])
# After recompile(jit_compile=False): variables stay on CPU:1 (read across), MatMuls on CPU:0.
RECOMPILE_LOG = "\n".join([
    PREFIX + f"mnist_mlp_1/dense_1/Cast/ReadVariableOp: (ReadVariableOp): {CPU1}",
    PREFIX + f"mnist_mlp_1/dense_1/MatMul: (MatMul): {CPU0}",
    PREFIX + f"mnist_mlp_1/dense_1_2/MatMul: (MatMul): {CPU0}",
    # the same lines TensorFlow also prints to stdout, without the absl prefix
    f"mnist_mlp_1/dense_2_1/MatMul: (MatMul): {CPU0}",
])
# XLA-compiled predict (jit_compile=True): no per-op lines, the compiled cluster's call node is placed.
XLA_LOG = "\n".join([
    PREFIX + f"data: (_Arg): {CPU0}",
    PREFIX + f"unknown: (_Arg): {CPU1}",
    PREFIX + f"StatefulPartitionedCall: (StatefulPartitionedCall): {CPU0}",
    PREFIX + f"identity_RetVal: (_Retval): {CPU0}",
    "W0000 00:00:1795653470.136011    8137 op_kernel.cc:1858] OP_REQUIRES failed at xla_ops.cc:540 : "
    "INVALID_ARGUMENT: Trying to access resource mnist_mlp/dense/kernel/2 located in device " + CPU1,
])


# --------------------------------------------------------------------------- placement log


def test_placer_lines_are_parsed_with_and_without_the_log_prefix():
    ops = parse_placer_lines(RECOMPILE_LOG)
    assert [op.op for op in ops] == ["ReadVariableOp", "MatMul", "MatMul", "MatMul"]
    assert ops[1].node == "mnist_mlp_1/dense_1/MatMul" and ops[1].device == CPU0
    assert parse_placer_lines("Executing op MatMul in device /device:CPU:0\nrandom text") == []


def test_matmul_lines_decide_not_the_outer_function_line():
    evidence = compute_evidence(STRATEGY_LOG)
    assert evidence.source == "MatMul"
    assert evidence.devices == (CPU1,)
    assert evidence.function_devices == (CPU0,)
    assert not evidence.on("/device:CPU:0")
    assert all("MatMul" in line for line in evidence.proof)


def test_reads_of_remote_variables_do_not_count_as_compute():
    evidence = compute_evidence(RECOMPILE_LOG)
    assert evidence.devices == (CPU0,) and evidence.on("/device:CPU:0")


def test_xla_cluster_node_is_the_evidence_when_no_matmul_was_placed():
    evidence = compute_evidence(XLA_LOG)
    assert evidence.source == "xla_cluster"
    assert evidence.devices == (CPU0,)


def test_no_placer_lines_means_no_evidence():
    evidence = compute_evidence(f"Executing op __inference_x_1 in device {CPU0}\n")
    assert evidence.source is None and evidence.devices == () and not evidence.on("/device:CPU:0")


def test_device_names_compare_by_kind_and_index():
    assert short_device(CPU1) == "CPU:1"
    assert short_device("/job:localhost/replica:0/task:0/device:GPU:0") == "GPU:0"
    assert same_device("/device:cpu:0", CPU0)
    assert not same_device("/device:CPU:0", "/device:GPU:0")


def test_capture_fd_sees_writes_to_the_descriptor_and_restores_it(capfd):
    with capture_fd(2) as captured:
        os.write(2, PREFIX.encode() + f"a/MatMul: (MatMul): {CPU1}\n".encode())
    assert compute_evidence(captured[0]).devices == (CPU1,)
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err


# --------------------------------------------------------------------------- status logic


def _evidence(text: str):
    return compute_evidence(text)


@pytest.mark.parametrize(
    ("log", "diff", "status", "needle"),
    [
        (RECOMPILE_LOG, 3e-7, "ok", None),
        (RECOMPILE_LOG, 1e-3, "wrong", "exceeds the tolerance"),
        (RECOMPILE_LOG, math.nan, "wrong", "nan"),
        (STRATEGY_LOG, 0.0, "not_on_cpu", "MatMuls ran on " + CPU1),
        (STRATEGY_LOG, 1e-3, "not_on_cpu", "also differ"),
        (XLA_LOG.replace(f"(StatefulPartitionedCall): {CPU0}", f"(StatefulPartitionedCall): {CPU1}"), 0.0,
         "not_on_cpu", "XLA cluster ran on " + CPU1),
        ("", 0.0, "failed", "TF_CPP_MIN_LOG_LEVEL=0"),
    ],
)
def test_status(log, diff, status, needle):
    got, reason = judge(_evidence(log), "/device:CPU:0", diff, tolerance("float32"))
    assert got == status
    if needle is None:
        assert reason is None
    else:
        assert needle in reason


def test_not_on_cpu_reason_names_the_outer_function_device():
    _, reason = judge(_evidence(STRATEGY_LOG), "/device:CPU:0", 0.0, 1e-5)
    assert f"outer function was dispatched on {CPU0}" in reason


def test_compute_split_across_devices_is_not_on_cpu():
    log = RECOMPILE_LOG + "\n" + PREFIX + f"x/MatMul: (MatMul): {CPU1}"
    assert judge(_evidence(log), "/device:CPU:0", 0.0, 1e-5)[0] == "not_on_cpu"


def test_tolerances():
    assert tolerance("float32") == 1e-5
    assert 1e-5 < tolerance("mixed_float16") < tolerance("mixed_bfloat16") < 0.05


# --------------------------------------------------------------------------- cases


def test_cases_are_the_product_of_the_axes_for_tensorflow_only():
    config = parse_config({
        "name": "t", "suites": ["cpu_predict"], "train": {"backend": ["jax", "tensorflow"]},
        "cpu_predict": {"precision": ["float32", "mixed_bfloat16"], "train_jit_compile": [True, "auto"],
                        "predict_batch": [32, 1024], "methods": ["naive", "clone"]},
    })
    cases = cpu_predict_cases(config)
    assert len(cases) == 2 * 2 * 2 * 2
    assert {c.backend for c in cases} == {"tensorflow"}
    assert cases[0].case_id == "cpu_predict/tensorflow/float32/train_jit=true/batch=32/naive"
    assert cases[-1].case_id == "cpu_predict/tensorflow/mixed_bfloat16/train_jit=auto/batch=1024/clone"
    assert set(cases[0].params()) == {"backend", "precision", "train_jit_compile", "predict_batch", "method"}


def test_families_share_a_trained_model_only_when_it_is_left_untouched():
    family = {m: CpuPredictCase("tensorflow", "float32", True, 32, m).family
              for m in ("naive", "recompile", "strategy", "clone", "saved_model")}
    assert family == {"naive": "plain", "recompile": "recompile", "strategy": "strategy", "clone": "plain",
                      "saved_model": "plain"}


# --------------------------------------------------------------------------- ranking


def _record(method: str, status: str, total_s: float | None, iqr: float = 0.01) -> dict:
    steady = {"n": 3, "median": 0.1, "iqr": iqr} if total_s is not None else {"n": 0}
    return {"suite": "cpu_predict", "status": status, "params": {"method": method},
            "metrics": {"total_s": total_s, "steady_s": steady}}


def test_ranking_orders_working_methods_by_total_time_and_puts_the_rest_last():
    records = [
        _record("naive", "failed", None),
        _record("clone", "ok", 0.6), _record("clone", "ok", 0.4),
        _record("recompile", "ok", 0.45),
        _record("strategy", "not_on_cpu", 0.3),  # fast, but not on the CPU: not a workaround
        {"suite": "train", "status": "ok", "params": {}, "metrics": {}},
    ]
    rows = ranking(records)
    assert [r["method"] for r in rows] == ["recompile", "clone", "naive", "strategy"]
    clone = rows[1]
    assert clone["rank"] == 2 and clone["total_s_median"] == pytest.approx(0.5)
    assert (clone["total_s_min"], clone["total_s_max"]) == (0.4, 0.6)
    assert rows[2]["rank"] is None and rows[3]["statuses"] == {"not_on_cpu": 1}
    table = format_ranking(rows)
    assert "recompile" in table.splitlines()[1] and "1 not_on_cpu" in table


# --------------------------------------------------------------------------- the real suite (slow)


@pytest.fixture(scope="module")
def cpu_predict_run(tmp_path_factory) -> dict:
    """One real sweep: float32, XLA training on the stand-in device, one batch size, every method."""
    tmp = tmp_path_factory.mktemp("cpu_predict")
    config = tmp / "cpu_predict.toml"
    config.write_text(textwrap.dedent("""
        name = "cpu-predict-test"
        suites = ["cpu_predict"]
        [train]
        backend = ["tensorflow"]
        [data]
        source = "synthetic"
        [cpu_predict]
        precision = ["float32"]
        train_jit_compile = [true]
        predict_batch = [1024]
        train_steps = 4
        train_batch = 128
        rounds = 3
        predict_samples = 2048
    """), encoding="utf-8")
    results = tmp / "results"
    # CUDA_VISIBLE_DEVICES="": the stand-in path (logical CPU:1 as the GPU), even on a GPU host.
    proc = run_cli("run", "--config", str(config), "--results-dir", str(results), "--quiet",
                   env={"CUDA_VISIBLE_DEVICES": ""}, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = results.glob("*.json")
    run = load_run(path)
    return {c["params"]["method"]: c for c in run["cases"] if c["suite"] == "cpu_predict"}


@pytest.mark.slow
def test_naive_fails_like_keras_issue_20308(cpu_predict_run):
    naive = cpu_predict_run["naive"]
    assert naive["status"] == "failed"
    assert naive["error"]["type"] == "InvalidArgumentError"
    assert "Trying to access resource" in naive["error"]["message"]
    assert "CPU:1" in naive["error"]["message"] and "from device" in naive["error"]["message"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["recompile", "clone", "saved_model"])
def test_workarounds_predict_right_on_cpu0(cpu_predict_run, method):
    case = cpu_predict_run[method]
    m = case["metrics"]
    assert case["status"] == "ok", case["reason"]
    assert m["max_abs_diff"] <= 1e-5
    assert short_device(m["predict_device"]) == "CPU:0"
    assert m["placement_proof"] and all("CPU:0" in line for line in m["placement_proof"])
    assert m["train_device"] == "/device:CPU:1" and m["train_device_stand_in"] is True
    assert case["flags"]["stand_in_device"] is True
    assert m["total_s"] == pytest.approx(m["prepare_s"] + m["first_predict_s"] + m["steady_s"]["median"])
    assert len(m["steady_round_s"]) == 3 and m["peak_rss_mib"] > 0


@pytest.mark.slow
def test_recompile_proof_comes_from_matmul_lines(cpu_predict_run):
    m = cpu_predict_run["recompile"]["metrics"]
    assert m["placement_source"] == "MatMul" and m["predict_jit_compile"] is False
    # The variables stay on the training device: every call reads the weights across devices.
    assert [short_device(d) for d in m["variable_devices"]] == ["CPU:1"]
    assert [short_device(d) for d in cpu_predict_run["clone"]["metrics"]["variable_devices"]] == ["CPU:0"]


@pytest.mark.slow
def test_strategy_runs_silently_on_the_training_device(cpu_predict_run):
    case = cpu_predict_run["strategy"]
    assert case["status"] == "not_on_cpu", case["reason"]
    assert case["error"] is None
    assert "CPU:1" in case["reason"] and short_device(case["metrics"]["predict_device"]) == "CPU:1"
    assert case["devices"]["strategy"] in ("MirroredStrategy", "OneDeviceStrategy")


@pytest.mark.slow
def test_one_training_per_family(cpu_predict_run):
    reused = {method: case["metrics"]["train"]["reused"] for method, case in cpu_predict_run.items()}
    assert reused == {"naive": False, "recompile": False, "strategy": False, "clone": True, "saved_model": True}


@pytest.mark.slow
def test_ranking_of_the_real_run(cpu_predict_run, capsys):
    rows = ranking(cpu_predict_run.values())
    assert {r["method"] for r in rows if r["rank"]} == {"recompile", "clone", "saved_model"}
    with capsys.disabled():
        print("\n" + format_ranking(rows))
