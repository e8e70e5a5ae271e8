"""[train] environment: another Keras beside this one, in its own worker processes, checked before the sweep.

The installed Keras is the boundary here: a folder holding a ``keras`` package stands in for a
``pip install --target`` of keras-nightly. Everything else — config, plan, the probe processes, the CLI and
(slow) a real JAX sweep in both environments — runs for real.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from bench.cases import train_cases
from bench.config import ConfigError, config_from_dict, parse_config, tomllib
from bench.environment.keras_envs import KerasEnvironmentError, resolve
from bench.run.plan import group_layouts, plan_cases, worker_env
from bench.store.results import load_run
from tests.conftest import run_cli

# A keras package that is the real one under another version: it loads the Keras the tool's own Python has
# (the next folder on sys.path) and marks it as a development build, so a real sweep can run in it.
SHIM = '''
import importlib.machinery, importlib.util, os, sys
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
spec = importlib.machinery.PathFinder.find_spec("keras", rest)
real = importlib.util.module_from_spec(spec)
sys.modules["keras"] = real
spec.loader.exec_module(real)
real.__version__ = real.__version__ + ".dev0+shim"
'''


def _fake_keras(folder: Path, body: str) -> Path:
    (folder / "keras").mkdir(parents=True)
    (folder / "keras" / "__init__.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return folder


def _config(pythonpath: str = "/nonexistent/keras-next", environment: str = '["default", "next"]',
            extra: str = "") -> dict:
    return tomllib.loads(textwrap.dedent(f"""
        name = "envs"
        [train]
        backend = ["jax"]
        global_batch = [64]
        steps_per_execution = [1, 8]
        environment = {environment}
        {extra}
        [environments.next]
        pythonpath = "{pythonpath}"
        label = "the next Keras"
    """))


def test_case_ids_gain_the_environment_only_off_default():
    config = parse_config(_config())
    ids = [c.case_id for c in train_cases(config)]
    assert ids == [
        "train/jax/gpus=1/batch=64/float32/jit=auto/input=device/spe=1",
        "train/jax/gpus=1/batch=64/float32/jit=auto/input=device/spe=1/env=next",
        "train/jax/gpus=1/batch=64/float32/jit=auto/input=device/spe=8",
        "train/jax/gpus=1/batch=64/float32/jit=auto/input=device/spe=8/env=next",
    ]
    assert [c.params()["environment"] for c in train_cases(config)] == ["default", "next"] * 2
    # The config travels to workers as a dict: the environments come back the same.
    again = config_from_dict(config.to_dict())
    assert again.environments == config.environments and again.train.environment == ("default", "next")
    excluded = parse_config(_config(extra='exclude = [{environment = "next", steps_per_execution = 8}]'))
    assert [c.case_id.endswith("env=next") for c in train_cases(excluded)] == [False, True, False]


@pytest.mark.parametrize(("raw", "message"), [
    (_config(environment='["default", "nightly"]'), "unknown environment 'nightly'; define [environments.nightly]"),
    ({**_config(), "environments": {"default": {"pythonpath": "/x"}}}, "not 'default'"),
    ({**_config(), "environments": {"next": {"label": "no folder"}}}, "needs pythonpath"),
    ({**_config(), "environments": {"next": {"pythonpath": "/x", "python": "/usr/bin/python3"}}}, "unknown key 'python'"),
    (_config(environment='["default", "a/b"]'), "environment names"),
])
def test_bad_environments_are_one_line(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw)


def test_each_environment_gets_its_own_workers_with_its_folder_first_on_pythonpath(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative pythonpath is taken from where the command runs
    config = parse_config({**_config(pythonpath="envs/next"), "suites": ["train", "native"]})
    groups = group_layouts(plan_cases(config))
    assert [(g.suite, g.environment, len(g.case_ids)) for g in groups] == [
        ("train", "default", 2), ("train", "next", 2), ("native", "default", 2)]
    default, nxt = groups[0], groups[1]
    assert nxt.label == "train-jax-1dev-env=next" and default.label == "train-jax-1dev"
    base = {"PYTHONPATH": "/tool/src", "PATH": "/usr/bin"}
    assert worker_env(nxt, False, base)["PYTHONPATH"] == f"{tmp_path / 'envs' / 'next'}{os.pathsep}/tool/src"
    assert worker_env(default, False, base)["PYTHONPATH"] == "/tool/src"
    assert worker_env(nxt, False, {"PATH": "/usr/bin"})["PYTHONPATH"] == str(tmp_path / "envs" / "next")


def test_probe_reads_each_keras_and_labels_a_development_build(tmp_path):
    folder = _fake_keras(tmp_path / "next", '__version__ = "3.99.0.dev2027010100"\n')
    config = parse_config(_config(pythonpath=str(folder)))
    found = resolve(config, plan_cases(config), timeout_s=120)
    by_name = {env["name"]: env for env in found}
    assert by_name["next"]["keras_version"] == "3.99.0.dev2027010100" and by_name["next"]["development"] is True
    assert by_name["next"]["label"] == "the next Keras" and by_name["next"]["pythonpath_resolved"] == str(folder)
    assert by_name["next"]["keras_path"] == str(folder / "keras" / "__init__.py")
    import keras

    assert by_name["default"]["keras_version"] == keras.__version__
    assert by_name["default"]["pythonpath"] is None
    # A run without the axis probes nothing.
    assert resolve(parse_config(_config(environment='["default"]')), []) is None


def test_a_missing_folder_or_a_keras_that_does_not_import_is_refused(tmp_path):
    config = parse_config(_config(pythonpath=str(tmp_path / "absent")))
    with pytest.raises(KerasEnvironmentError, match="is not a folder here"):
        resolve(config, plan_cases(config))
    broken = _fake_keras(tmp_path / "broken", 'raise ImportError("keras needs a newer ml_dtypes")\n')
    config = parse_config(_config(pythonpath=str(broken)))
    with pytest.raises(KerasEnvironmentError, match="Keras does not import with .* first on PYTHONPATH: "
                                                    "ImportError: keras needs a newer ml_dtypes"):
        resolve(config, plan_cases(config), timeout_s=120)


def test_cli_refuses_a_missing_environment_in_one_line_before_anything_runs(tmp_path, write_config):
    config = write_config(f"""
        name = "envs"
        [train]
        backend = ["jax"]
        environment = ["default", "next"]
        [environments.next]
        pythonpath = "{tmp_path / 'absent'}"
    """)
    proc = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "results"), timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "[environments.next] pythonpath" in lines[0] and "Traceback" not in proc.stderr
    assert not list((tmp_path / "results").glob("*"))


@pytest.mark.slow
def test_a_real_sweep_runs_each_keras_in_its_own_workers_and_derives_them_side_by_side(tmp_path, write_config):
    shim = _fake_keras(tmp_path / "shim", SHIM)
    config = write_config(f"""
        name = "envs"
        suites = ["train", "native"]
        [train]
        backend = ["jax"]
        global_batch = [64]
        jit_compile = [true]
        steps_per_execution = [1]
        environment = ["default", "shim"]
        [environments.shim]
        pythonpath = "{shim}"
        label = "Keras from the shim folder"
        [measure]
        warmup_steps = 4
        rounds = 3
        min_round_s = 0.05
        processes = 1  # the pooling of processes is tested in test_train_sweep and test_drift
        max_steps_per_round = 200
        [data]
        source = "synthetic"
        [devices]
        simulate = true
    """)
    proc = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "results"), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = load_run(Path(proc.stdout.strip().splitlines()[-1]))
    cases = {c["case_id"]: c for c in run["cases"]}
    default = cases["train/jax/gpus=1/batch=64/float32/jit=true/input=device/spe=1"]
    shimmed = cases["train/jax/gpus=1/batch=64/float32/jit=true/input=device/spe=1/env=shim"]
    assert default["status"] == shimmed["status"] == "ok", (default["reason"], shimmed["reason"])
    assert shimmed["metrics"]["keras_version"] == default["metrics"]["keras_version"] + ".dev0+shim"
    for case in (default, shimmed, cases["native/jax/batch=64/float32/step"]):
        m = case["metrics"]
        assert len(m["round_host_cpu_s"]) == len(m["round_s"]) == 3
        assert all(0 < h for h in m["round_host_cpu_s"])
    envs = {e["name"]: e for e in run["environment"]["keras_environments"]}
    assert envs["shim"]["development"] is True and envs["shim"]["pythonpath"] == str(shim)
    derived = run["derived"]
    assert {r["case_id"] for r in derived["case_stats"]} == set(cases)
    rows = derived["keras_environments"]
    assert [r["environment"] for r in rows] == ["default", "shim"]
    assert all(r["host_us_per_step"] > 0 and r["wall_us_per_step"] > 0 for r in rows)
    assert rows[1]["development"] and "(development build)" in rows[1]["sentence"]
    assert rows[0]["native_host_us_per_step"] > 0 and rows[0]["device_us_per_step"] > 0
    assert [r["environment"] for r in derived["where_the_time_goes"]] == ["default", "shim"]
    print(json.dumps([{k: r[k] for k in ("environment", "host_us_per_step", "wall_us_per_step")} for r in rows]))
