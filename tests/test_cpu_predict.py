"""cpu_predict: placement evidence and status logic (fast), then the real suite on CPU (slow).

The slow tests run ``python -m bench run`` in a subprocess: logical devices can only be configured before
TensorFlow initialises, so the suite needs a fresh process. A logical CPU:1 stands in for the GPU, which
reproduces keras-team/keras#20308 exactly (TensorFlow, ~45 s). JAX and torch run in one more sweep (~80 s
on a 2-core box, ~55 s of it torch.compile) with TensorFlow made unimportable, as on a GPU machine that has
only JAX or torch: JAX trains on host device cpu:1, torch on its only CPU device.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest

from bench.analyze.derive import ranking
from bench.cases import CpuPredictCase, cpu_predict_cases
from bench.config import parse_config
from bench.measure.cpu_predict import (
    STRATEGY_SKIPPED,
    TF32_TOLERANCE,
    CpuSetup,
    failure_line,
    judge,
    tolerance,
    with_host_devices,
)
from bench.measure.placement import (
    capture_fd,
    compute_evidence,
    output_devices,
    output_evidence,
    parse_placer_lines,
    same_device,
    short_device,
)
from bench.report.terminal import format_ranking
from bench.store.results import load_run
from tests.conftest import REPO, run_cli

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


@pytest.mark.parametrize(
    ("name", "short"),
    [("cpu:1", "CPU:1"), ("cpu", "CPU:0"), ("cuda:0", "GPU:0"), ("gpu:1", "GPU:1"), ("TFRT_CPU_1", "CPU:1"),
     ("CpuDevice(id=1)", "CPU:1"), ("CudaDevice(id=0)", "GPU:0"), ("mps", "mps")],
)
def test_jax_and_torch_device_names_share_the_spelling(name, short):
    assert short_device(name) == short
    # torch CPU tensors report "cpu" with no index: the same device as keras.device("cpu:0")
    assert same_device("cpu", "cpu:0") and same_device("cpu:1", CPU1) and not same_device("cpu:1", "cpu:0")


class _JaxLike:
    def __init__(self, *devices):
        self._devices = devices

    def devices(self):
        return set(self._devices)


class _TorchLike:
    def __init__(self, device):
        self.device = device


def test_output_devices_reads_jax_and_torch_arrays_and_ignores_numpy():
    import numpy as np

    assert output_devices(_JaxLike("cpu:0")) == ("cpu:0",)
    assert output_devices({"a": [_JaxLike("cpu:0", "cpu:1")], "b": (_TorchLike("cuda:0"),)}) == (
        "cpu:0", "cpu:1", "cuda:0")
    assert output_devices(np.zeros(3)) == ()  # numpy 2 says device "cpu": not evidence of anything


def test_output_evidence_keeps_per_batch_proof():
    evidence = output_evidence("output_arrays", [("cpu:0",), ("cpu:0",), ("cpu:0",), ("cpu:0",)])
    assert evidence.source == "output_arrays" and evidence.devices == ("cpu:0",) and evidence.on("cpu:0")
    assert len(evidence.proof) == 3 and "jax.Array.devices()" in evidence.proof[0]
    assert not output_evidence("output_tensors", [("cpu",), ("cuda:0",)]).on("cpu:0")


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


def test_float32_trained_on_a_gpu_allows_tf32_where_the_backend_uses_it_by_default():
    assert tolerance("float32", "tensorflow", "gpu") == tolerance("float32", "jax", "gpu") == TF32_TOLERANCE
    assert tolerance("float32", "torch", "gpu") == 1e-5  # torch keeps full float32 matmuls by default
    assert tolerance("float32", "jax", "cpu") == 1e-5
    assert tolerance("mixed_bfloat16", "jax", "gpu") == tolerance("mixed_bfloat16")


@pytest.mark.parametrize(
    ("batches", "train_device", "diff", "status", "needle"),
    [
        ([("cpu:0",)], "cpu:1", 0.0, "ok", None),
        ([("cpu:1",)], "cpu:1", 0.0, "not_on_cpu", "predict outputs (JAX arrays) were on cpu:1, not cpu:0"),
        ([("cpu:0",), ("cpu:1",)], "gpu:0", 0.0, "not_on_cpu", "cpu:0, cpu:1"),
        ([("cpu:0",)], "gpu:0", 1e-3, "wrong", "exceeds the tolerance"),
        ([], "cpu:1", 0.0, "failed", "returned no outputs"),
    ],
)
def test_status_from_jax_outputs(batches, train_device, diff, status, needle):
    got, reason = judge(output_evidence("output_arrays", batches), "cpu:0", diff, 1e-5, train_device)
    assert got == status
    assert reason is None if needle is None else needle in reason


def test_same_training_and_predict_device_is_ok_only_with_a_reason_saying_so():
    setup = CpuSetup("torch", "cpu", True, "cpu:0")
    assert setup.same_device and setup.train_kind == "cpu"
    evidence = output_evidence("output_tensors", [("cpu",)])
    status, reason = judge(evidence, setup.predict_device, 0.0, 1e-5, setup.train_device)
    assert status == "ok" and "training device == predict device (CPU:0)" in reason
    assert "correct predictions on the CPU and their cost only" in reason
    assert judge(evidence, "cpu:0", 1.0, 1e-5, "cpu")[0] == "wrong"
    assert not CpuSetup("jax", "cpu:1", True, "cpu:0").same_device
    assert CpuSetup("torch", "gpu:0", False, "cpu:0").train_kind == "gpu"


def test_failure_line_is_the_innermost_cause_of_a_nested_keras_error():
    message = ("<class 'keras.src.models.sequential.Sequential'> could not be deserialized properly. Please ensure"
               "\n\nconfig={'module': 'keras'}.\n\nException encountered: <class 'Dropout'> could not be "
               "deserialized properly.\n\nException encountered: Error when deserializing class 'Dropout' using "
               "config={'name': 'dropout'}.\n\nException encountered: Only Tensors of floating point and complex "
               "dtype can require gradients")
    assert failure_line(TypeError(message)) == "Only Tensors of floating point and complex dtype can require gradients"
    assert failure_line(ValueError("Graph execution error:\n\nTrying to access resource x")) == \
        "Trying to access resource x"


def test_jax_host_devices_flag_is_added_once():
    assert with_host_devices("") == "--xla_force_host_platform_device_count=2"
    assert with_host_devices("--xla_dump_to=/tmp/x") == "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=2"
    kept = "--xla_force_host_platform_device_count=4"
    assert with_host_devices(kept) == kept


@pytest.mark.parametrize(
    ("backend", "expected"),
    [("jax", {"train_device": "cpu:1", "stand_in": True, "predict_device": "cpu:0", "same_device": False}),
     ("torch", {"train_device": "cpu", "stand_in": True, "predict_device": "cpu:0", "same_device": True})],
)
def test_configure_worker_never_imports_tensorflow(backend, expected):
    """The GPU machine may have only JAX or torch: configuring their worker must not touch TensorFlow."""
    code = textwrap.dedent("""
        import json, sys
        from bench.measure.cpu_predict import configure_worker
        setup = configure_worker(sys.argv[1])
        print(json.dumps({"train_device": setup.train_device, "stand_in": setup.stand_in,
                          "predict_device": setup.predict_device, "same_device": setup.same_device,
                          "tensorflow_imported": "tensorflow" in sys.modules}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", code, backend], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert got.pop("tensorflow_imported") is False
    assert got == expected


# --------------------------------------------------------------------------- cases


def test_cases_are_the_product_of_the_axes_for_every_backend():
    config = parse_config({
        "name": "t", "suites": ["cpu_predict"], "train": {"backend": ["jax", "tensorflow", "torch"]},
        "cpu_predict": {"precision": ["float32", "mixed_bfloat16"], "train_jit_compile": [True, "auto"],
                        "predict_batch": [32, 1024], "methods": ["naive", "clone"]},
    })
    cases = cpu_predict_cases(config)
    assert len(cases) == 3 * 2 * 2 * 2 * 2
    assert [c.backend for c in cases[::16]] == ["jax", "tensorflow", "torch"]
    tf_cases = [c for c in cases if c.backend == "tensorflow"]
    assert tf_cases[0].case_id == "cpu_predict/tensorflow/float32/train_jit=true/batch=32/naive"
    assert tf_cases[-1].case_id == "cpu_predict/tensorflow/mixed_bfloat16/train_jit=auto/batch=1024/clone"
    assert cases[0].case_id == "cpu_predict/jax/float32/train_jit=true/batch=32/naive"
    assert set(cases[0].params()) == {"backend", "precision", "train_jit_compile", "predict_batch", "method"}


def test_strategy_stays_in_the_sweep_on_every_backend():
    config = parse_config({"name": "t", "suites": ["cpu_predict"], "train": {"backend": ["torch", "jax"]}})
    assert {(c.backend, c.method) for c in cpu_predict_cases(config) if c.method == "strategy"} == {
        ("torch", "strategy"), ("jax", "strategy")}
    assert set(STRATEGY_SKIPPED) == {"jax", "torch"}


def test_families_share_a_trained_model_only_when_it_is_left_untouched():
    family = {m: CpuPredictCase("tensorflow", "float32", True, 32, m).family
              for m in ("naive", "recompile", "strategy", "clone", "saved_model")}
    assert family == {"naive": "plain", "recompile": "recompile", "strategy": "strategy", "clone": "plain",
                      "saved_model": "plain"}


# --------------------------------------------------------------------------- ranking


def _record(method: str, status: str, total_s: float | None, iqr: float = 0.01, backend: str | None = None) -> dict:
    steady = {"n": 3, "median": 0.1, "iqr": iqr} if total_s is not None else {"n": 0}
    params = {"method": method} if backend is None else {"method": method, "backend": backend}
    return {"suite": "cpu_predict", "status": status, "params": params,
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


def test_ranking_is_per_backend():
    records = [_record("naive", "failed", None, backend="tensorflow"), _record("clone", "ok", 0.4, backend="tensorflow"),
               _record("naive", "ok", 0.1, backend="jax"), _record("clone", "ok", 0.3, backend="jax"),
               _record("strategy", "skipped", None, backend="jax")]
    rows = ranking(records)
    assert [(r["backend"], r["method"], r["rank"]) for r in rows] == [
        ("tensorflow", "clone", 1), ("tensorflow", "naive", None),
        ("jax", "naive", 1), ("jax", "clone", 2), ("jax", "strategy", None)]
    assert format_ranking(rows).splitlines()[3].startswith("jax")


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
    # The ranking table is part of the results file and of the run's terminal summary.
    assert run["derived"]["cpu_predict_ranking"] == ranking(run["cases"])
    assert "methods ranked by total time" in proc.stdout
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


# --------------------------------------------------------------------------- JAX and torch (slow, ~80 s)

TORCH_CPU0_FAILURE = "Only Tensors of floating point and complex dtype can require gradients"


@pytest.fixture(scope="module")
def jax_torch_run(tmp_path_factory) -> dict:
    """One real sweep on JAX and torch: float32, jit-compiled training, one batch size, every method.

    TensorFlow is made unimportable for the whole run (a ``tensorflow`` package that raises ImportError
    comes first on PYTHONPATH), as on a GPU machine with only JAX or torch installed; Keras then skips its
    optional TensorFlow seeding. torch's jit_compile=True is torch.compile: ~20 s per training here.
    """
    tmp = tmp_path_factory.mktemp("cpu_predict_jax_torch")
    blocker = tmp / "no_tensorflow" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        'raise ImportError("tensorflow is blocked in this test: the GPU machine may not have it")\n', encoding="utf-8")
    config = tmp / "cpu_predict.toml"
    config.write_text(textwrap.dedent("""
        name = "cpu-predict-jax-torch-test"
        suites = ["cpu_predict"]
        [train]
        backend = ["jax", "torch"]
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
    env = {"CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join([str(REPO), str(blocker.parent)])}
    proc = run_cli("run", "--config", str(config), "--results-dir", str(results), "--quiet", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = results.glob("*.json")
    run = load_run(path)
    by_backend: dict[str, dict[str, dict]] = {}
    for case in run["cases"]:
        by_backend.setdefault(case["params"]["backend"], {})[case["params"]["method"]] = case
    return by_backend


@pytest.mark.slow
def test_every_method_has_a_recorded_status_on_jax_and_torch(jax_torch_run):
    statuses = {b: {m: c["status"] for m, c in cases.items()} for b, cases in jax_torch_run.items()}
    # Keras 3.15.1 + torch 2.13: clone and load fail under keras.device("cpu:0") (see bench.measure.cpu_predict).
    # A Keras fix turns them ok; update this expectation then: it is a finding, not a flake.
    assert statuses == {
        "jax": {"naive": "ok", "recompile": "ok", "strategy": "skipped", "clone": "ok", "saved_model": "ok"},
        "torch": {"naive": "ok", "recompile": "ok", "strategy": "skipped", "clone": "failed", "saved_model": "failed"},
    }


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_strategy_is_skipped_with_its_reason(jax_torch_run, backend):
    case = jax_torch_run[backend]["strategy"]
    assert case["status"] == "skipped" and case["error"] is None
    assert case["reason"] == STRATEGY_SKIPPED[backend]
    assert "tf.distribute strategies exist only on the TensorFlow backend" in case["reason"]


@pytest.mark.slow
def test_failures_carry_the_exception_type_and_key_line(jax_torch_run):
    failed = [c for cases in jax_torch_run.values() for c in cases.values() if c["status"] == "failed"]
    assert failed
    for case in failed:
        error = case["error"]
        assert error["type"] and error["message"], case["case_id"]
        assert case["reason"].startswith(f"{error['type']}: {error['message']}")
    for method in ("clone", "saved_model"):
        case = jax_torch_run["torch"][method]
        assert case["error"] == {"type": "TypeError", "message": TORCH_CPU0_FAILURE}
        assert case["metrics"]["failed_in"] == "prepare"
        assert "keras.device('cpu') does not hit this" in case["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["naive", "recompile", "clone", "saved_model"])
def test_jax_predicts_right_on_cpu0_after_training_on_cpu1(jax_torch_run, method):
    case = jax_torch_run["jax"][method]
    m = case["metrics"]
    assert case["status"] == "ok" and case["reason"] is None
    assert m["train_device"] == "cpu:1" and m["train_device_stand_in"] is True and case["flags"]["stand_in_device"]
    assert m["train_device_is_predict_device"] is False and m["train"]["variable_devices"] == ["cpu:1"]
    assert m["placement_source"] == "output_arrays" and m["predict_device"] == "cpu:0"
    assert m["placement_proof"] and all("cpu:0 (jax.Array.devices())" in line for line in m["placement_proof"])
    assert m["max_abs_diff"] <= m["tolerance"] == 1e-5
    assert m["total_s"] == pytest.approx(m["prepare_s"] + m["first_predict_s"] + m["steady_s"]["median"])
    assert len(m["steady_round_s"]) == 3


@pytest.mark.slow
def test_jax_variables_follow_the_jitted_predict_but_not_the_eager_one(jax_torch_run):
    naive = jax_torch_run["jax"]["naive"]["metrics"]
    recompile = jax_torch_run["jax"]["recompile"]["metrics"]
    # The jitted predict step returns the state it was given, on the device it ran on; Keras keeps that.
    assert (naive["variable_devices_before_predict"], naive["variable_devices"]) == (["cpu:1"], ["cpu:0"])
    assert naive["predict_jit_compile"] is True
    # Eager (jit_compile=False): ops run on cpu:0, reading the variables that stay on cpu:1.
    assert (recompile["variable_devices_before_predict"], recompile["variable_devices"]) == (["cpu:1"], ["cpu:1"])
    assert recompile["predict_jit_compile"] is False


@pytest.mark.slow
@pytest.mark.parametrize("method", ["naive", "recompile"])
def test_torch_on_one_cpu_proves_correctness_and_cost_only(jax_torch_run, method):
    case = jax_torch_run["torch"][method]
    m = case["metrics"]
    assert case["status"] == "ok"
    assert "training device == predict device (CPU:0)" in case["reason"]
    assert m["train_device"] == "cpu" and m["train_device_is_predict_device"] is True
    assert m["placement_source"] == "output_tensors" and m["predict_device"] == "cpu"
    assert m["variable_devices"] == ["cpu"] and m["max_abs_diff"] <= 1e-5
    assert m["train"]["jit_compile_resolved"] is True


@pytest.mark.slow
def test_ranking_of_the_jax_and_torch_run(jax_torch_run, capsys):
    rows = ranking([c for cases in jax_torch_run.values() for c in cases.values()])
    ranked = {(r["backend"], r["method"]) for r in rows if r["rank"]}
    assert ranked == {("jax", "naive"), ("jax", "recompile"), ("jax", "clone"), ("jax", "saved_model"),
                      ("torch", "naive"), ("torch", "recompile")}
    with capsys.disabled():
        print("\n" + format_ranking(rows))
