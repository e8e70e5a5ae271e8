"""A framework that is not installed: its cases are skipped with the install line, never failed; a config none of
whose cases can run here is refused before anything runs (one line, exit 2).

Only the installation is faked (``installed_version``, ``find_spec``: what pip put on this machine); the probes,
the sweep and its workers run for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cli
from bench.commands.run import _not_installed
from bench.config import load_config
from bench.environment import frameworks as fw
from bench.measure import flavour
from bench.run.plan import plan_cases
from bench.store.results import load_run

TINY = """
name = "{name}"
suites = {suites}
[train]
backend = {backends}
gpus = [1]
global_batch = [64]
precision = ["float32"]
jit_compile = [true]
input = ["numpy"]
[measure]
warmup_steps = 2
rounds = 2
min_round_s = 0.05
max_steps_per_round = 20
[control]
enabled = false
[data]
source = "synthetic"
[devices]
simulate = true
"""


@pytest.fixture
def without(monkeypatch):
    """Make the named frameworks look uninstalled to the parent (the probe is then never started)."""
    def hide(*names: str) -> None:
        real = fw.installed_version
        monkeypatch.setattr(fw, "installed_version", lambda name: None if name in names else real(name))

    return hide


def test_a_config_none_of_whose_cases_can_run_is_refused_with_the_install_line(write_config, without, tmp_path,
                                                                               capsys):
    without("jax")
    config = write_config(TINY.format(name="jax-only", suites='["train", "native"]', backends='["jax"]'))
    results = tmp_path / "results"
    code = cli.main(["run", "--config", str(config), "--results-dir", str(results)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"error: none of the 3 case(s) of {config} can run here: JAX is not installed: pip install")
    assert err[-1].endswith(f"(or: nox -s bench -- --config {config}, which installs what a config needs)")
    assert not any(results.glob("*.json*")), "a refused run writes nothing"


def test_missing_tf_keras_is_a_reason_for_its_cases_only(write_config, monkeypatch):
    real = flavour.importlib.util.find_spec
    monkeypatch.setattr(flavour.importlib.util, "find_spec", lambda name: None if name == "tf_keras" else real(name))
    config = load_config(write_config(TINY.format(name="k", suites='["train"]', backends='["tensorflow", "jax"]')
                                      .replace("[train]\n", '[train]\nkeras = ["keras3", "tf_keras"]\n'
                                               'exclude = [{backend = "jax", keras = "tf_keras"}]\n')))
    planned = plan_cases(config)
    facts = {"tensorflow": {"status": "ok"}, "jax": {"status": "not_installed"}}
    found = _not_installed(planned, facts, {"gpus": []})
    assert found == {"jax": "JAX is not installed: pip install jax",
                     "tf_keras": "tf_keras is not installed (pip install tf_keras, the release matching TensorFlow's)"}
    # Keras 3 on TensorFlow still runs: not every case is covered, so the run is not refused.
    assert any(c.backend == "tensorflow" and c.keras == "keras3" for c in planned)


@pytest.mark.slow
def test_cases_of_a_missing_framework_are_skipped_and_the_others_run(write_config, without, tmp_path, capsys):
    without("jax")
    config = write_config(TINY.format(name="mixed", suites='["native"]', backends='["tensorflow", "jax"]'))
    results = tmp_path / "results"
    code = cli.main(["run", "--config", str(config), "--results-dir", str(results), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert "skipped: 2 jax case(s): JAX is not installed: pip install" in captured.err
    run = load_run(Path(captured.out.strip().splitlines()[-1]))
    by_id = {c["case_id"]: c for c in run["cases"]}
    assert by_id["native/tensorflow/batch=64/float32/step"]["status"] == "ok"
    for case_id in ("native/jax/batch=64/float32/step", "native/jax/batch=64/float32/epoch_scan"):
        assert by_id[case_id]["status"] == "skipped"
        assert by_id[case_id]["reason"].startswith("JAX is not installed: pip install")
    # No worker was started for them (a worker that cannot import JAX would have failed them).
    logs = next(results.glob("*.logs"))
    assert not list(logs.glob("native-jax-*")), sorted(p.name for p in logs.iterdir())
    assert run["environment"]["frameworks"]["jax"]["status"] == "not_installed"
