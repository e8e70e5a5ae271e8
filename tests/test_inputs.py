"""The input and steps_per_execution axes: config, case ids, and Keras on JAX fed every input for real on
the CPU — in a process where TensorFlow cannot be imported, as on the GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bench.cases import TrainCase, native_cases, train_cases
from bench.config import ConfigError, config_from_dict, parse_config
from tests.conftest import REPO


def test_axes_parse_and_name_every_case():
    config = parse_config({"train": {"input": ["numpy", "device"], "steps_per_execution": [1, 8],
                                     "exclude": [{"input": "numpy", "steps_per_execution": 8}]}})
    ids = [c.case_id for c in train_cases(config)]
    assert ids == ["train/tensorflow/gpus=1/batch=256/float32/jit=auto/input=numpy/spe=1",
                   "train/tensorflow/gpus=1/batch=256/float32/jit=auto/input=device/spe=1",
                   "train/tensorflow/gpus=1/batch=256/float32/jit=auto/input=device/spe=8"]
    case = TrainCase("jax", 1, 512, "float32", True)
    assert (case.input, case.steps_per_execution) == ("device", 1)
    assert case.params()["input"] == "device" and case.params()["steps_per_execution"] == 1


def test_added_sweeps_extend_the_product_once_and_reach_native():
    config = parse_config({
        "suites": ["train", "native"],
        "train": {"backend": ["jax"], "global_batch": [256], "exclude": [{"input": "numpy_uint8", "global_batch": 512}],
                  "add": [{"input": ["numpy", "numpy_uint8"], "global_batch": [256, 512]},
                          {"steps_per_execution": [1, 32]}]},
    })
    ids = [c.case_id for c in train_cases(config)]
    assert ids == ["train/jax/gpus=1/batch=256/float32/jit=auto/input=device/spe=1",
                   "train/jax/gpus=1/batch=256/float32/jit=auto/input=numpy/spe=1",
                   "train/jax/gpus=1/batch=256/float32/jit=auto/input=numpy_uint8/spe=1",
                   "train/jax/gpus=1/batch=512/float32/jit=auto/input=numpy/spe=1",
                   "train/jax/gpus=1/batch=256/float32/jit=auto/input=device/spe=32"]
    # A batch that only an added sweep has still gets its native reference.
    assert "native/jax/batch=512/float32/step" in [c.case_id for c in native_cases(config)]
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize("train, measure, message", [
    ({"input": ["pandas"]}, {}, "train.input: unknown value 'pandas'"),
    ({"steps_per_execution": [0]}, {}, "train.steps_per_execution values must be positive"),
    ({"add": [{"add": [{"gpus": [2]}]}]}, {}, "[train.add[0]] unknown key 'add'"),
    ({"add": [{"exclude": [{"colour": "red"}]}]}, {}, "[train.add[0].exclude] unknown key 'colour'"),
    ({"add": {"gpus": [2]}}, {}, "[train] add must be a list of tables"),
    ({}, {"steps_per_execution": 8}, "[measure] steps_per_execution is now an axis"),
])
def test_bad_axes_are_one_line(train, measure, message):
    with pytest.raises(ConfigError) as err:
        parse_config({"name": "t", "train": train, "measure": measure})
    assert message in str(err.value) and "\n" not in str(err.value)


JAX_WITHOUT_TF = textwrap.dedent("""
    import importlib.abc, json, sys

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        # As on the GPU machine: TensorFlow is not installed. (Not sys.modules["tensorflow"] = None: Keras
        # takes a "tensorflow" key in sys.modules to mean it is there.)
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ImportError("No module named 'tensorflow'")

    sys.meta_path.insert(0, NoTensorFlow())
    import numpy as np
    from bench.cases import train_cases
    from bench.config import parse_config
    from bench.measure import devices
    from bench.measure.data import DataSpec, Mnist, load
    from bench.measure.train import run_train_case
    from tests.test_native import FakeBenchmark

    full = load(DataSpec("synthetic", None, None, "test", 0))
    # 4096 samples: a pass is 16 steps of 256, so pass-timed inputs stay fast.
    data = Mnist(full.x_train[:4096], full.y_train[:4096], full.x_test[:512], full.y_test[:512], full.spec)
    config = parse_config({"train": {"backend": ["jax"], "global_batch": [256], "jit_compile": [True],
                                     "input": ["numpy", "numpy_uint8", "device", "tf_data"],
                                     "steps_per_execution": [1, 4]},
                           "measure": {"warmup_steps": 2, "rounds": 2, "min_round_s": 0.05, "seed": 1}})
    inventory = devices.configure("jax", 1, simulate=True)
    records = [run_train_case(case, config, data, inventory, FakeBenchmark()).to_dict() for case in train_cases(config)]

    # The device feed hands over arrays that already live on the device, in order.
    import jax
    from bench.measure.devices import place
    from bench.measure.inputs import make_feed
    feed = make_feed("device", "jax", data, 256, place(inventory, 1), 0)
    on_device = all(isinstance(x, jax.Array) and x.devices() == {jax.devices()[0]} for x, _ in feed.batches)
    first = bool(np.array_equal(np.asarray(feed.batches[1][0]), data.x_train[256:512]))

    # uint8 pixels + Rescaling(1/255) in the model: the same outputs as feeding pixels / 255.
    from bench.measure.inputs import to_uint8
    from bench.measure.model import build_model
    x = data.x_train[:64]
    diff = float(np.abs(np.asarray(build_model(seed=3, uint8_input=True)(to_uint8(x), training=False))
                        - np.asarray(build_model(seed=3)(x, training=False))).max())
    print(json.dumps({"records": records, "on_device": on_device, "in_order": first, "uint8_diff": diff,
                      "tensorflow": "tensorflow" in sys.modules}))
""")


@pytest.fixture(scope="module")
def jax_run():
    env = dict(os.environ, PYTHONPATH=str(REPO), KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    proc = subprocess.run([sys.executable, "-c", JAX_WITHOUT_TF], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_jax_feeds_run_without_tensorflow_and_record_what_they_fed(jax_run):
    assert jax_run["tensorflow"] is False
    by_id = {r["case_id"]: r for r in jax_run["records"]}
    for spe in (1, 4):
        skipped = by_id[f"train/jax/gpus=1/batch=256/float32/jit=true/input=tf_data/spe={spe}"]
        assert skipped["status"] == "skipped" and "TensorFlow only" in skipped["reason"]
    ok = [r for r in jax_run["records"] if r["status"] != "skipped"]
    assert len(ok) == 6 and all(r["status"] == "ok" for r in ok), [r["reason"] for r in ok]
    for record in ok:
        m, p = record["metrics"], record["params"]
        fed = m["input_fed"]
        assert fed["value"] == p["input"] and fed["description"] == m["input_pipeline"]
        assert m["steps_per_execution_resolved"] == p["steps_per_execution"]
        # warm-up = 2 steps rounded up to whole executions of spe steps; one execution per spe steps.
        assert m["warmup_steps"] == max(2, p["steps_per_execution"])
        assert m["warmup_executions"] == m["warmup_steps"] // p["steps_per_execution"]
        assert m["final_loss"] > 0 and math_finite(m["final_loss"])
        assert len(m["round_s"]) == 2 and m["timing_check"]["rel_diff"] < 0.05
        if p["input"] == "device":
            assert fed["location"] == "device" and fed["round_unit"] == "steps" and not fed["shuffled"]
            assert m["samples_per_round"] == m["steps_per_round"] * 256
            assert m["steps_per_round"] % p["steps_per_execution"] == 0
        else:
            assert fed["location"] == "host" and fed["round_unit"] == "pass" and fed["shuffled"]
            assert fed["dtype"] == ("uint8" if p["input"] == "numpy_uint8" else "float32")
            assert (fed["samples_per_pass"], fed["steps_per_pass"]) == (4096, 16)
            assert m["samples_per_round"] == m["units_per_round"] * 4096
            assert m["steps_per_round"] == m["units_per_round"] * 16


def math_finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def test_device_batches_live_on_the_device_in_order_and_uint8_is_the_same_maths(jax_run):
    assert jax_run["on_device"] is True and jax_run["in_order"] is True
    assert jax_run["uint8_diff"] < 1e-5
