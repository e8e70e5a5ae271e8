"""Choosing cases: -k expressions, --set overrides, --list, --dry-run, and --resume with them."""

from __future__ import annotations

import json

import pytest

from bench import cli
from bench.config import ConfigError, load_config
from bench.config_overrides import OverrideError, load_config_with_overrides, parse_override
from bench.run.estimate import COMPILE_S, ROUND_HEADROOM, WORKER_START_S, estimate, previous_durations
from bench.run.plan import plan_cases
from bench.run.select import SelectionError, compile_expression
from bench.store.results import CaseLog
from tests.conftest import REPO

IDS = [
    "train/tensorflow/gpus=1/batch=128/float32/jit=false",
    "train/tensorflow/gpus=2/batch=128/float32/jit=true",
    "train/tensorflow/gpus=2/batch=512/mixed_bfloat16/jit=false",
    "train/jax/gpus=16/batch=512/float32/jit=auto",
    "cpu_predict/tensorflow/float32/train_jit=true/batch=32/naive",
    "native/jax/batch=512/float32/epoch_scan",
]

SMALL = """
name = "small"
suites = ["train", "cpu_predict"]
[train]
gpus = [1, 2]
global_batch = [128, 512]
precision = ["float32"]
jit_compile = [false, true]
[measure]
rounds = 5
min_round_s = 0.5
[devices]
simulate = true
[cpu_predict]
predict_batch = [32]
methods = ["naive", "recompile"]
"""


def chosen(expression: str) -> list[str]:
    matcher = compile_expression(expression)
    return [i for i in IDS if matcher(i)]


# --------------------------------------------------------------------------- -k


@pytest.mark.parametrize("expression, expected", [
    ("gpus=2", [1, 2]),
    ("gpus=2 and not jit=true", [2]),
    ("GPUS=1", [0, 3]),  # case-insensitive substrings, as pytest -k: gpus=1 also matches gpus=16
    ("gpus=1/", [0]),
    ("cpu_predict or native", [4, 5]),
    ("not train", [5]),  # "train" is also in cpu_predict's train_jit=...
    ("not train/", [4, 5]),
    ("train and (jax or batch=128)", [0, 1, 3]),
    ("train and jax or batch=128", [0, 1, 3]),  # 'and' binds tighter than 'or'
    ("not not native", [5]),
    ("mixed_bfloat16 or epoch_scan and float32", [2, 5]),
])
def test_expressions_select_like_pytest_k(expression, expected):
    assert chosen(expression) == [IDS[i] for i in expected]


@pytest.mark.parametrize("expression, message", [
    ("gpus=2 and", "expected a word, 'not' or '(' but the expression ended at column 11"),
    ("(gpus=2", "expected ')'"),
    ("gpus=2)", "unexpected ')' at column 7"),
    ("and jax", "found 'and' at column 1"),
    ("   ", "-k needs an expression"),
])
def test_bad_expressions_are_one_line(expression, message):
    with pytest.raises(SelectionError) as err:
        compile_expression(expression)
    assert message in str(err.value) and "\n" not in str(err.value) and err.value.exit_code == 2


# --------------------------------------------------------------------------- --set


@pytest.mark.parametrize("text, keys, value", [
    ("measure.rounds=10", ("measure", "rounds"), 10),
    ("train.global_batch=[256, 1024]", ("train", "global_batch"), [256, 1024]),
    ('train.jit_compile=[false, "auto"]', ("train", "jit_compile"), [False, "auto"]),
    ("data.source=synthetic", ("data", "source"), "synthetic"),
    ('data.path="/tmp/my mnist.npz"', ("data", "path"), "/tmp/my mnist.npz"),
    ("devices.simulate=true", ("devices", "simulate"), True),
    ("measure.min_round_s=0.5", ("measure", "min_round_s"), 0.5),
    ("name=mine", ("name",), "mine"),
])
def test_values_are_toml(text, keys, value):
    override = parse_override(text)
    assert (override.keys, override.value) == (keys, value)


def test_overrides_are_validated_and_recorded(write_config):
    path = write_config(SMALL)
    plain = load_config(path)
    config = load_config_with_overrides(path, ["measure.rounds=10", "train.global_batch=[256]", "measure.rounds=7"])
    assert config.measure.rounds == 7 and config.train.global_batch == (256,)  # the later --set wins
    assert config.sha256 != plain.sha256 and config.path == plain.path
    assert load_config_with_overrides(path, []).sha256 == plain.sha256
    # What the results file records is the resolved config.
    assert config.to_dict()["train"]["global_batch"] == [256]


@pytest.mark.parametrize("override, message", [
    ("measure.roundz=3", "with --set measure.roundz=3: [measure] unknown key 'roundz'; allowed: case_timeout_s"),
    ("measur.rounds=3", "with --set measur.rounds=3: unknown key 'measur'; allowed: cluster, control, converge, cpu_predict"),
    ("measure.rounds=1", "[measure] rounds must be at least 2"),
    ("measure.rounds=ten", "[measure] rounds must be an integer, got 'ten'"),
    ("train.global_batch=[101]", "[train] global_batch 101 is not divisible by gpus = 2"),
    ("train.precision=[float8]", "'[float8]' is not a TOML value"),
    ('train.precision=["float8"]', "train.precision: unknown value 'float8'"),
    ("measure.rounds", "expected section.key=value"),
    ("measure..rounds=2", "expected section.key=value"),
    ("measure.rounds.max=2", "'measure.rounds' is a value, not a table"),
])
def test_bad_overrides_are_one_line(write_config, override, message):
    with pytest.raises(ConfigError) as err:
        load_config_with_overrides(write_config(SMALL), [override])
    assert message in str(err.value) and "\n" not in str(err.value) and err.value.exit_code == 2


def test_bad_set_on_the_command_line_exits_2_with_one_line(write_config, capsys):
    assert cli.main(["run", "--config", str(write_config(SMALL)), "--set", "measure.rounds=[5", "--list"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert isinstance(OverrideError("x"), ConfigError)


# --------------------------------------------------------------------------- --list and --dry-run


def test_list_prints_the_planned_ids_after_k_and_set(write_config, capsys):
    path = write_config(SMALL)
    assert cli.main(["run", "--config", str(path), "--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == [c.case_id for c in plan_cases(load_config(path))] and len(listed) == 8 + 2
    assert cli.main(["run", "--config", str(path), "--list", "--set", "train.gpus=[2]", "-k", "/jit=true or naive"]) == 0
    assert capsys.readouterr().out.split() == [
        "train/tensorflow/gpus=2/batch=128/float32/jit=true/input=device/spe=1",
        "train/tensorflow/gpus=2/batch=512/float32/jit=true/input=device/spe=1",
        "cpu_predict/tensorflow/float32/train_jit=true/batch=32/naive"]
    assert cli.main(["run", "--config", str(path), "--list", "-k", "gpus=4"]) == 2
    assert "selects none of the 10 planned cases" in capsys.readouterr().err


def test_dry_run_estimates_and_runs_nothing(write_config, tmp_path, capsys):
    results = tmp_path / "results"
    assert cli.main(["run", "--config", str(write_config(SMALL)), "--dry-run", "--results-dir", str(results),
                     "-k", "train and jit=false"]) == 0
    out = capsys.readouterr().out
    # Two device layouts x [measure] processes (3 by default) interleaved passes.
    assert out.startswith("dry run of ") and "4 cases (4 train) in 6 worker process(es); nothing is run" in out
    assert "estimated duration: about" in out and "An estimate" in out
    assert not results.exists()


def test_estimate_is_the_sum_of_its_stated_parts(write_config):
    config = load_config(write_config(SMALL))
    planned = [c for c in plan_cases(config) if c.suite == "train" and c.params["jit_compile"] is False]
    est = estimate(planned, config, visible_gpus=1)
    # 4 cases x 3 processes, each 5 timed rounds and a warm-up round, and a compile per process.
    assert est.seconds["timed and warm-up rounds"] == pytest.approx(4 * 3 * 6 * ROUND_HEADROOM * 0.5)
    assert est.seconds["compile allowance"] == pytest.approx(4 * 3 * COMPILE_S)
    assert est.seconds["worker start allowance"] == pytest.approx(2 * 3 * WORKER_START_S)
    one = load_config_with_overrides(write_config(SMALL, "one.toml"), ["measure.processes=1"])
    assert estimate(planned, one, visible_gpus=1).seconds["compile allowance"] == pytest.approx(4 * COMPILE_S)
    assert est.total_s == pytest.approx(sum(est.seconds.values()))
    real_gpus = load_config_with_overrides(write_config(SMALL, "real.toml"), ["devices.simulate=false"])
    assert estimate(planned, real_gpus, visible_gpus=1).skipped == 2  # the gpus=2 cases skip at once


def test_estimate_counts_the_processes_the_sweep_starts():
    """One per device layout (keras flavour and workers included) and pass, plus each cluster case's own workers
    (a cluster case runs once)."""
    config = load_config(REPO / "configs" / "multiworker.toml")
    planned = plan_cases(config)
    clusters = [c for c in planned if c.workers > 1]
    layouts = {(c.suite, c.backend, c.replicas, c.keras) for c in planned if c.workers == 1}
    assert clusters and len(layouts) == 3  # TensorFlow Keras 3, TensorFlow tf_keras, JAX
    est = estimate(planned, config, visible_gpus=0)
    assert est.workers == config.measure.processes * len(layouts) + sum(c.workers for c in clusters)
    assert est.seconds["worker start allowance"] == pytest.approx(est.workers * WORKER_START_S)


def test_estimate_uses_an_earlier_run_of_the_same_config_on_this_host(write_config, tmp_path):
    import socket

    config = load_config(write_config(SMALL))
    planned = plan_cases(config)
    doc = {"complete": True, "config": {"name": "small"}, "environment": {"hostname": socket.gethostname()},
           "cases": [{"case_id": planned[0].case_id, "duration_s": 42.0}]}
    (tmp_path / "old.json").write_text(json.dumps(doc))
    durations, source = previous_durations(tmp_path, config)
    est = estimate(planned[:1], config, 1, durations, source)
    assert est.seconds["earlier run's durations"] == 42.0 and est.from_previous == 1 and source.endswith("old.json")


# --------------------------------------------------------------------------- --resume


def _partial(tmp_path, done: int):
    """A run log like an interrupted `bench run -k train/` left: its header, ``done`` finished cases."""
    from bench.commands.run import _header
    from bench.measure.records import CaseClock, base_record, finish

    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    config = load_config(path)
    planned = [c for c in plan_cases(config) if c.suite == "train"]
    selection = {"overrides": [], "k": "train/", "planned_cases": 10, "selected_cases": len(planned)}
    from bench.measure.data import DataSpec

    data = DataSpec("synthetic", None, None, "test", 0).to_dict()
    frameworks = {"probe": {"timeout_s": 1.0, "wall_s": 0.0, "probed": []}, "gpus": []}
    log = CaseLog.create(tmp_path / "r" / "run-x.partial.jsonl", _header(config, data, "run-x", frameworks, selection,
                                                                             {"intra_op": 1, "inter_op": 1, "source": "test"}))
    for case in planned[:done]:
        clock = CaseClock()
        log.append(finish(base_record("train", case.case_id, case.params, "synthetic", clock), clock, "skipped", "test"))
    return log, planned


def test_resume_refuses_set_and_k(tmp_path, capsys):
    log, _ = _partial(tmp_path, 1)
    assert cli.main(["run", "--resume", str(log.path), "--set", "measure.rounds=3"]) == 2
    assert cli.main(["run", "--resume", str(log.path), "-k", "gpus=1"]) == 2
    assert "--resume continues a run exactly as it was planned" in capsys.readouterr().err


def test_resume_dry_run_leaves_the_finished_cases_out(tmp_path, capsys):
    log, planned = _partial(tmp_path, 2)
    assert cli.main(["run", "--resume", str(log.path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{len(planned) - 2} cases" in out and "(2 case(s) already finished in the log are not counted)" in out


def test_resume_keeps_the_logged_selection_and_counts_progress_from_zero(tmp_path, capsys, monkeypatch):
    """Done cases of the earlier run are not this run's progress: [1/6] ... [6/6], not [3/8] ... [8/8] (a case
    skipped in its first process is not measured again, so each counts once)."""
    from bench.measure.records import CaseClock, base_record, finish
    from bench.run.sweep import Sweep

    def fake_slot(self, slot):  # the worker process, faked: it finishes each case as skipped
        for case_id in self._todo(slot):
            case = next(c for c in self.planned if c.case_id == case_id)
            clock = CaseClock()
            self.log.append(finish(base_record(case.suite, case_id, case.params, "synthetic", clock), clock,
                                   "skipped", "fake worker"))
            self._case_done(case_id, slot.pass_index)

    monkeypatch.setattr(Sweep, "_run_slot", fake_slot)
    log, planned = _partial(tmp_path, 2)
    assert cli.main(["run", "--resume", str(log.path), "--list"]) == 0
    assert capsys.readouterr().out.split() == [c.case_id for c in planned]  # -k train/, as logged: no cpu_predict
    assert cli.main(["run", "--resume", str(log.path)]) == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    counts = [tuple(int(n) for n in line[1:line.index("]")].split("/")) for line in progress]
    # Later passes are planned until a case's first process is skipped, so the total shrinks to this run's 6.
    assert [done for done, _ in counts] == list(range(1, 7)) and counts[-1] == (6, 6)
    assert all(a[1] >= b[1] for a, b in zip(counts, counts[1:], strict=False))
    final = json.loads((tmp_path / "r" / "run-x.json").read_text())
    assert [c["case_id"] for c in final["cases"]] == [c.case_id for c in planned]
    assert final["selection"]["k"] == "train/"


def test_default_configs_plan_and_list(capsys):
    assert cli.main(["run", "--config", str(REPO / "configs" / "quick.toml"), "--list"]) == 0
    assert len(capsys.readouterr().out.split()) == len(plan_cases(load_config(REPO / "configs" / "quick.toml")))
