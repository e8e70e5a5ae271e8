"""Native reference: case list, Keras-vs-native ratios, the optimizer really being Keras' Adam (fast), one
case measured in-process, and the real CLI running train + native on every backend (slow, ~1.5 min).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bench.analyze.derive import attach_native_ratios
from bench.analyze.stats import summarize
from bench.cases import NativeCase, TrainCase, native_cases
from bench.config import parse_config
from bench.measure import devices
from bench.measure import native as native_mod
from bench.measure.data import DataSpec, load
from bench.measure.devices import DeviceInventory
from bench.measure.native import (
    init_params,
    jax_adam_update,
    run_native_case,
    tf_adam_update,
    torch_adam_update,
)
from bench.measure.records import CaseClock, base_record, finish
from bench.store.results import load_run
from tests.conftest import REPO, run_cli


class FakeBenchmark:
    """pytest-benchmark's ``pedantic`` surface: times each round with perf_counter, keeps the samples."""

    def __init__(self) -> None:
        self.extra_info: dict = {}
        self.stats = type("Stats", (), {"stats": type("Data", (), {"data": []})()})()

    def pedantic(self, target, rounds, iterations, warmup_rounds):
        data = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            target()
            data.append(time.perf_counter() - t0)
        self.stats.stats.data = data


def _config(**train):
    axes = {"backend": ["tensorflow", "jax", "torch"], "global_batch": [64], "precision": ["float32"]}
    axes.update(train)
    return parse_config({"suites": ["train", "native"], "train": axes, "data": {"source": "synthetic"},
                         "measure": {"warmup_steps": 2, "rounds": 3, "min_round_s": 0.05, "seed": 3},
                         "devices": {"simulate": True}})


# --------------------------------------------------------------------------- cases


def test_cases_follow_the_train_axes_and_jax_alone_has_epoch_scan():
    config = _config(backend=["tensorflow", "jax"], global_batch=[64, 128],
                     precision=["float32", "mixed_bfloat16", "mixed_float16"],
                     exclude=[{"global_batch": 128, "precision": "mixed_bfloat16"}])
    ids = [c.case_id for c in native_cases(config)]
    # 2 batches x 3 precisions - 1 excluded cell = 5 cells per backend; JAX has two variants.
    assert len(ids) == 5 + 2 * 5
    assert ids[0] == "native/tensorflow/batch=64/float32/step"
    assert "native/jax/batch=64/mixed_bfloat16/epoch_scan" in ids
    assert not any("tensorflow" in i and "epoch_scan" in i for i in ids)
    assert not any("batch=128/mixed_bfloat16" in i for i in ids)
    case = NativeCase("jax", 1024, "float32", "step")
    assert case.case_id == "native/jax/batch=1024/float32/step"
    assert case.params() == {"backend": "jax", "global_batch": 1024, "precision": "float32", "variant": "step"}


def test_a_cell_excluded_for_every_gpu_count_has_no_native_case():
    config = _config(backend=["torch"], gpus=[1, 2], global_batch=[64, 128],
                     exclude=[{"global_batch": 128, "gpus": 1}])
    # batch 128 still trains on 2 GPUs, so its native reference stays.
    assert [c.global_batch for c in native_cases(config)] == [64, 128]
    config = _config(backend=["torch"], global_batch=[64, 128], exclude=[{"global_batch": 128}])
    assert [c.global_batch for c in native_cases(config)] == [64]


# --------------------------------------------------------------------------- ratios


def _case(suite, case, median, status="ok"):
    """A record through the one exit measured cases take (records.finish), with only a throughput median."""
    draft = base_record(suite, case.case_id, case.params(), "synthetic", CaseClock())
    if median is not None:
        draft["metrics"] = {"samples_per_second": {**summarize([median]), "median": median}}
    return finish(draft, CaseClock(), status, None if status == "ok" else "boom")


def _train(backend, gpus, batch, precision, median, status="ok", jit=True):
    return _case("train", TrainCase(backend, gpus, batch, precision, jit), median, status)


def _native(backend, batch, precision, variant, median, status="ok"):
    return _case("native", NativeCase(backend, batch, precision, variant), median, status)


def test_attach_native_ratios_numbers():
    cases = [
        _train("jax", 1, 256, "float32", 30_000.0),
        _train("jax", 1, 256, "float32", 15_000.0, jit=False),
        _train("tensorflow", 1, 256, "float32", 20_000.0),
        _train("torch", 1, 256, "float32", 9_000.0),
        _train("jax", 2, 256, "float32", 50_000.0),  # two GPUs: no single-device reference
        _train("jax", 1, 512, "float32", 40_000.0),  # no native case at this batch
        _train("jax", 1, 256, "mixed_bfloat16", 35_000.0, status="failed"),
        _native("jax", 256, "float32", "step", 40_000.0),
        _native("jax", 256, "float32", "epoch_scan", 60_000.0),
        _native("tensorflow", 256, "float32", "step", 25_000.0),
        _native("torch", 256, "float32", "step", 10_000.0, status="failed"),
        _native("jax", 256, "mixed_bfloat16", "step", 50_000.0),
    ]
    stale = cases[0].metrics.model_copy(update={"native_ratio": 99.0})  # from an earlier finalisation
    cases[0] = cases[0].model_copy(update={"metrics": stale})
    given = [c.to_dict() for c in cases]
    derived = attach_native_ratios(cases)
    assert [c.to_dict() for c in cases] == given  # a derive step returns new records, never edits its input
    jax_jit, jax_eager, tf, torch, two_gpus, other_batch, failed = (c.to_dict()["metrics"] for c in derived[:7])
    assert jax_jit["native_ratio"] == pytest.approx(0.75)
    assert jax_jit["native_case_id"] == "native/jax/batch=256/float32/step"
    assert jax_jit["native_ratio_ceiling"] == pytest.approx(0.5)
    assert jax_jit["native_ceiling_case_id"] == "native/jax/batch=256/float32/epoch_scan"
    assert jax_eager["native_ratio"] == pytest.approx(0.375)
    assert tf["native_ratio"] == pytest.approx(0.8)
    assert tf["native_ratio_ceiling"] == pytest.approx(20_000 / 60_000)  # the device's ceiling, from JAX
    assert "native_ratio" not in torch and torch["native_ratio_ceiling"] == pytest.approx(0.15)
    for metrics in (two_gpus, other_batch, failed):
        assert not {"native_ratio", "native_case_id", "native_ratio_ceiling"} & set(metrics)
    assert derived[7:] == cases[7:] and all(a is b for a, b in zip(derived[7:], cases[7:], strict=True))


def test_attach_native_ratios_leaves_cases_without_numbers_as_they_are():
    no_numbers = _train("jax", 1, 64, "float32", None)  # e.g. skipped before it measured anything
    failed = _train("jax", 1, 64, "float32", None, status="failed")
    native = _native("jax", 64, "float32", "step", 10_000.0)
    assert attach_native_ratios([]) == []
    derived = attach_native_ratios([no_numbers, failed, native])
    assert all(a is b for a, b in zip(derived, [no_numbers, failed, native], strict=True))
    assert "native_ratio" not in derived[0].to_dict()["metrics"]


# --------------------------------------------------------------------------- the optimizer is Keras' Adam


def _adam_problem():
    rng = np.random.default_rng(7)
    shapes = [(5, 4), (4,)]
    params = [rng.normal(size=s).astype(np.float32) for s in shapes]
    # Gradients from 1e-7 to 10: the small ones are where eps placement matters (optax-style differs).
    steps = [[(rng.normal(size=s) * 10.0 ** rng.integers(-7, 2, size=s)).astype(np.float32) for s in shapes]
             for _ in range(3)]
    return params, steps


def _keras_adam(params, steps):
    import keras

    variables = [keras.Variable(p) for p in params]
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    assert optimizer.epsilon == 1e-7 and optimizer.beta_1 == 0.9 and optimizer.beta_2 == 0.999
    for grads in steps:
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables, strict=True))
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _optax_style_adam(params, steps, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    m = [np.zeros_like(p, np.float64) for p in params]
    v = [np.zeros_like(p, np.float64) for p in params]
    out = [p.astype(np.float64) for p in params]
    for t, grads in enumerate(steps, start=1):
        for i, g in enumerate(grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            out[i] -= lr * (m[i] / (1 - b1**t)) / (np.sqrt(v[i] / (1 - b2**t)) + eps)
    return out


def test_jax_adam_matches_keras_adam():
    import jax.numpy as jnp

    params, steps = _adam_problem()
    expected = _keras_adam(params, steps)
    p = {str(i): jnp.asarray(x) for i, x in enumerate(params)}
    m = {k: jnp.zeros_like(x) for k, x in p.items()}
    v = {k: jnp.zeros_like(x) for k, x in p.items()}
    for iteration, grads in enumerate(steps):
        p, m, v = jax_adam_update(p, {str(i): jnp.asarray(g) for i, g in enumerate(grads)}, m, v,
                                  jnp.int32(iteration))
    for i, want in enumerate(expected):
        np.testing.assert_allclose(np.asarray(p[str(i)]), want, rtol=0, atol=1e-6)
    # The check has teeth: optax's placement of eps misses Keras by far more than the tolerance.
    optax_style = _optax_style_adam(params, steps)
    assert max(np.abs(o - w).max() for o, w in zip(optax_style, expected, strict=True)) > 1e-5


def test_tensorflow_and_torch_adam_match_keras_adam():
    import tensorflow as tf
    import torch

    params, steps = _adam_problem()
    expected = _keras_adam(params, steps)
    tf_p = [tf.Variable(x) for x in params]
    tf_m, tf_v = [tf.Variable(tf.zeros_like(x)) for x in params], [tf.Variable(tf.zeros_like(x)) for x in params]
    torch_p = [torch.tensor(x) for x in params]
    torch_m, torch_v = [torch.zeros_like(x) for x in torch_p], [torch.zeros_like(x) for x in torch_p]
    for iteration, grads in enumerate(steps):
        tf_adam_update(tf_p, [tf.constant(g) for g in grads], tf_m, tf_v, tf.constant(iteration, tf.int64))
        torch_adam_update(torch_p, [torch.tensor(g) for g in grads], torch_m, torch_v, iteration)
    for i, want in enumerate(expected):
        np.testing.assert_allclose(tf_p[i].numpy(), want, rtol=0, atol=1e-6)
        np.testing.assert_allclose(torch_p[i].numpy(), want, rtol=0, atol=1e-6)


def test_init_is_glorot_uniform_with_zero_biases():
    params = init_params(0)
    assert [params[k].shape for k in ("w1", "w2", "w3")] == [(784, 512), (512, 256), (256, 10)]
    for (fan_in, fan_out), k in zip([(784, 512), (512, 256), (256, 10)], ("w1", "w2", "w3"), strict=True):
        limit = math.sqrt(6 / (fan_in + fan_out))
        assert np.abs(params[k]).max() <= limit and params[k].std() == pytest.approx(limit / math.sqrt(3), rel=0.05)
    assert not any(params[b].any() for b in ("b1", "b2", "b3"))
    assert all(v.dtype == np.float32 for v in params.values())


# --------------------------------------------------------------------------- one case, in process


@pytest.fixture(scope="module")
def synthetic():
    return load(DataSpec("synthetic", None, None, "test", 0))


def test_jax_case_in_process_is_a_complete_record(synthetic):
    config = _config(backend=["jax"])
    inventory = devices.configure("jax", 1, simulate=True)
    for case in native_cases(config):
        record = run_native_case(case, config, synthetic, inventory, FakeBenchmark()).to_dict()
        assert record["status"] == "ok", record["reason"]
        m = record["metrics"]
        assert m["variant"] == case.variant and m["device"] == inventory.logical[0]
        assert len(m["round_s"]) == 3 and m["samples_per_round"] == m["steps_per_round"] * 64
        assert m["samples_per_second"]["median"] > 0 and m["compile_s"] > 0
        assert 0 < m["final_loss"] < math.log(10) + 0.5
        assert m["timing_check"]["rel_diff"] < 0.05
        assert m["gpu_metrics"]["status"] == "unavailable"
        assert record["devices"] == {"strategy": "none (native)", "devices": [inventory.logical[0]], "replicas": 1,
                                     "kind": "cpu", "simulated": True}


def test_failures_and_skips_are_records(synthetic, monkeypatch):
    config = _config(backend=["jax"], precision=["mixed_float16"])
    inventory = devices.configure("jax", 1, simulate=True)
    case = native_cases(config)[0]
    assert run_native_case(case, config, synthetic, inventory, FakeBenchmark()).status == "skipped"

    no_gpu = DeviceInventory("jax", "cpu", 0, [], False, "no GPU visible to JAX")
    skipped = run_native_case(NativeCase("jax", 64, "float32", "step"), config, synthetic, no_gpu, FakeBenchmark())
    assert skipped.status == "skipped" and "0 visible" in skipped.reason and skipped.devices is None

    monkeypatch.setenv("BENCH_FAULTS", "native/jax/*=nan")
    failed = run_native_case(NativeCase("jax", 64, "float32", "step"), config, synthetic, inventory,
                             FakeBenchmark())
    assert failed.status == "failed" and failed.error.type == "NonFiniteLoss"
    monkeypatch.delenv("BENCH_FAULTS")

    too_big = run_native_case(NativeCase("jax", 10**6, "float32", "step"), config, synthetic, inventory,
                              FakeBenchmark())
    assert too_big.status == "skipped" and "larger than" in too_big.reason

    def explode(*args):
        raise RuntimeError("CUDA_ERROR_ILLEGAL_ADDRESS\nmore lines")

    monkeypatch.setitem(native_mod._RUNNERS, "jax", explode)
    broken = run_native_case(NativeCase("jax", 64, "float32", "step"), config, synthetic, inventory,
                             FakeBenchmark())
    assert broken.status == "failed" and broken.to_dict()["error"] == {"type": "RuntimeError",
                                                                       "message": "CUDA_ERROR_ILLEGAL_ADDRESS"}


def test_jax_and_torch_paths_never_import_tensorflow(tmp_path):
    """A GPU machine may have JAX and torch but no TensorFlow: blocking the import must not matter."""
    script = tmp_path / "no_tf.py"
    script.write_text(textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None  # any "import tensorflow" now raises ImportError
        from bench.measure import devices
        from bench.config import parse_config
        from bench.measure.data import DataSpec, load
        from bench.cases import native_cases
        from bench.measure.native import run_native_case
        from tests.test_native import FakeBenchmark
        data = load(DataSpec("synthetic", None, None, "test", 0))
        for backend in ("jax", "torch"):
            config = parse_config({"train": {"backend": [backend], "global_batch": [64]},
                                   "measure": {"warmup_steps": 2, "rounds": 2, "min_round_s": 0.02}})
            inventory = devices.configure(backend, 1, simulate=True)
            for case in native_cases(config):
                record = run_native_case(case, config, data, inventory, FakeBenchmark())
                assert record.status == "ok", record.reason
        print("ok", "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None)
    """))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "ok False"


# --------------------------------------------------------------------------- end to end


SWEEP = """
name = "native-e2e"
suites = ["train", "native"]

[train]
backend = ["tensorflow", "jax", "torch"]
gpus = [1]
global_batch = [128]
precision = ["float32"]
jit_compile = [true, false]
# XLA for TF and JAX; torch.compile takes ~60 s on this CPU, so torch trains eagerly.
exclude = [{backend = "torch", jit_compile = true}, {backend = "tensorflow", jit_compile = false},
           {backend = "jax", jit_compile = false}]

[measure]
warmup_steps = 3
rounds = 3
min_round_s = 0.1
processes = 1  # the pooling of processes is tested in test_train_sweep and test_drift
max_steps_per_round = 200
seed = 1

[data]
source = "synthetic"

[devices]
simulate = true
"""


@pytest.mark.slow
def test_cli_runs_native_next_to_train_and_ratios_attach(tmp_path):
    config = tmp_path / "native.toml"
    config.write_text(SWEEP)
    proc = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "results"), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = load_run(Path(proc.stdout.strip().splitlines()[-1]))
    cases = run["cases"]
    natives = [c for c in cases if c["suite"] == "native"]
    assert sorted(c["case_id"] for c in natives) == sorted([
        "native/tensorflow/batch=128/float32/step", "native/jax/batch=128/float32/step",
        "native/jax/batch=128/float32/epoch_scan", "native/torch/batch=128/float32/step",
    ])
    for case in natives:
        assert case["status"] == "ok", (case["case_id"], case["reason"])
        m = case["metrics"]
        assert m["samples_per_second"]["median"] > 0 and len(m["round_s"]) == 3
        assert m["final_loss"] < math.log(10), (case["case_id"], m["final_loss"])  # it learns
        assert m["timing_check"]["rel_diff"] < 0.02
        assert case["devices"]["strategy"] == "none (native)" and case["flags"]["synthetic_data"]
    train = [c for c in cases if c["suite"] == "train"]
    assert len(train) == 3 and all(c["status"] == "ok" for c in train), [c["reason"] for c in train]
    for case in train:  # attached by the run's finalisation (bench/commands/run.py), not by this test
        m = case["metrics"]
        backend = case["params"]["backend"]
        assert m["native_case_id"] == f"native/{backend}/batch=128/float32/step"
        assert m["native_ratio"] > 0 and m["native_ratio_ceiling"] > 0
        assert m["native_ceiling_case_id"] == "native/jax/batch=128/float32/epoch_scan"
    print({c["case_id"]: round(c["metrics"]["samples_per_second"]["median"]) for c in cases})
