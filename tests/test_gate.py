"""The regression gate on CI: history, control normalisation, A/B interleaving, exit codes through nox, exports."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.analyze.ab import compare_pairs
from bench.analyze.compare import CompareSettings, compare_runs
from bench.analyze.cusum import DEFAULT_HORIZON, analyse, first_alarm, mde_after, threshold
from bench.analyze.history import HistoryTooShort, compare_history
from bench.analyze.judge import GateCheck, bonferroni_level, case_levels, pairs_needed
from bench.analyze.judge import mde as judge_mde
from bench.analyze.regression import MIN_HISTORY_RUNS, history_estimate, paired_estimate
from bench.cli import main
from bench.config import FaultSettings, parse_config, tomllib
from bench.errors import EXIT_OK, EXIT_REGRESSION, EXIT_USAGE
from bench.report.compare_table import render_table
from bench.report.export import github_benchmark_entries, markdown_summary
from bench.run.ab import Side, run_session, schedule, units
from tests.conftest import run_cli
from tests.factories import in_processes, make_run, write_run

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"name": "ci", "suites": ["train"], "train": {"gpus": [1], "global_batch": [256, 1024]}}
T256 = "train/tensorflow/gpus=1/batch=256/float32/jit=auto/input=device/spe=1"
T1024 = "train/tensorflow/gpus=1/batch=1024/float32/jit=auto/input=device/spe=1"
GITHUB_RANGE = re.compile(r"^(\+-|±)\s*(?P<value>\d.+)$")  # github-action-benchmark's extractRangeInfo


def drifted(run: dict, machine: float, control_noise: float = 0.0, seed: int = 0) -> dict:
    """The run as measured on a machine ``machine`` times as fast: every case and its control scale alike.

    Each case gets a control record of six rounds (``bench.measure.control`` shape) at 50,000 samples/s on
    a 1x machine, with a little noise of its own.
    """
    rng = np.random.default_rng(seed)
    run = copy.deepcopy(run)
    for case in run["cases"]:
        if case["status"] != "ok":
            continue
        case["metrics"]["round_s"] = [r / machine for r in case["metrics"]["round_s"]]
        sps = 50_000 * machine * np.exp(rng.normal(0, control_noise, 6))
        case["control"] = {"status": "ok", "workload": "test", "backend": "tensorflow", "device": "/cpu:0", "batch": 256, "steps_per_round": 20,
                           "samples_per_round": 5120, "round_s": [5120 / s for s in sps],
                           "position": ["before"] * 3 + ["after"] * 3}
    return run


def history_of(n: int, spread: float = 0.03, config=TRAIN, offset: int = 0) -> list[dict]:
    """``n`` runs of one setup on a machine whose speed drifts between runs (log-normal, ``spread``)."""
    rng = np.random.default_rng(42 + offset)
    return [drifted(make_run(100 + offset + i, config, run_index=i), float(np.exp(rng.normal(0, spread))),
                    control_noise=0.005, seed=i) for i in range(n)]


def cli(capsys, *args) -> tuple[int, str, list[str]]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.splitlines()


def verdicts(document) -> dict[str, str]:
    return {row["case_id"]: row["verdict"] for row in document["rows"]}


# --------------------------------------------------------------------------- the between-run test


def test_prediction_interval_widens_with_few_runs_and_uses_student_t():
    history = [100.0, 103.0, 97.0, 101.0, 99.0]
    estimate = history_estimate(history, 88.0)
    logs = np.log(history)
    assert estimate.ratio == pytest.approx(88.0 / np.exp(logs.mean()))
    assert estimate.se == pytest.approx(logs.std(ddof=1) * np.sqrt(1.2)) and estimate.df == 4
    # t(0.99, 4) = 3.747: the bound sits 3.75 * sd * sqrt(1 + 1/5) below the mean
    check = GateCheck(0.05, 0.01)
    assert -np.log1p(check.bound(estimate)) == pytest.approx(3.7469 * logs.std(ddof=1) * np.sqrt(1.2), rel=1e-3)
    assert check.fails(estimate) is not None
    assert check.fails(history_estimate(history, 96.0)) is None  # -4 %: below the threshold
    assert check.fails(history_estimate([100.0, 130.0, 75.0, 110.0, 90.0], 80.0)) is None  # within the spread


def test_history_keeps_an_unchanged_run_quiet_where_the_round_test_false_alarms():
    """Between-run drift of 8 % with tight rounds: the round-level test flags the unchanged run, the history
    test does not; a 40 % slowdown is beyond the drift and is caught."""
    history = history_of(8, spread=0.08)
    unchanged = drifted(make_run(300, TRAIN, run_index=9), 0.88, control_noise=0.005)  # a slow moment of the machine
    rounds = compare_runs(history[-1], unchanged, CompareSettings())
    assert "regression" in verdicts(rounds).values()
    quiet = compare_history(history, unchanged, CompareSettings(alpha=0.01))
    assert set(verdicts(quiet).values()) == {"no change"} and quiet["summary"]["exit_code"] == EXIT_OK
    slow = drifted(make_run(301, TRAIN, speed={T256: 0.6, T1024: 0.6}, run_index=9), 1.0)
    caught = compare_history(history, slow, CompareSettings(alpha=0.01))
    assert verdicts(caught) == {T256: "regression", T1024: "regression"}
    row = caught["rows"][0]
    assert row["baseline"]["runs"] == 8 and row["history"]["runs"] == 8 and "over 8 history runs" in row["reason"]
    assert caught["method"]["name"] == "history" and caught["baseline"]["history"][0]["run_id"] == history[0]["run_id"]


def test_control_normalisation_turns_a_uniformly_slower_machine_into_no_regression():
    history = history_of(6, spread=0.01)
    slower_machine = drifted(make_run(400, TRAIN, run_index=9), 0.8, control_noise=0.005)
    raw = compare_history(history, slower_machine, CompareSettings(alpha=0.01, normalize="none"))
    assert verdicts(raw) == {T256: "regression", T1024: "regression"}
    normalised = compare_history(history, slower_machine, CompareSettings(alpha=0.01, normalize="control"))
    assert set(verdicts(normalised).values()) == {"no change"}
    assert all(row["normalized"] for row in normalised["rows"])
    assert all(0.75 < row["raw_ratio"] < 0.85 and 0.97 < row["ratio"] < 1.03 for row in normalised["rows"])
    assert normalised["control"]["ratio"] == pytest.approx(0.8, rel=0.03)
    # The same machine with the case itself 20 % slower is still a regression once normalised.
    slower_case = drifted(make_run(401, TRAIN, speed={T256: 0.8}, run_index=9), 0.8, control_noise=0.005)
    assert verdicts(compare_history(history, slower_case, CompareSettings(alpha=0.01, normalize="control"))) == {
        T256: "regression", T1024: "no change"}
    # And the round-level test normalises the same way.
    rounds = compare_runs(history[-1], slower_machine, CompareSettings(normalize="control"))
    assert set(verdicts(rounds).values()) == {"no change"}


def test_a_history_with_too_few_runs_is_bad_input_with_a_clear_message(tmp_path, capsys):
    results = tmp_path / "results"
    for run in history_of(MIN_HISTORY_RUNS - 2):
        write_run(results / "baselines" / "main", run)
    current = write_run(results, make_run(500, TRAIN, run_index=20))
    code, out, err = cli(capsys, "compare", "main", current, "--results-dir", results)
    assert code == EXIT_USAGE and out == "" and len(err) == 1
    assert f"holds {MIN_HISTORY_RUNS - 2} run(s); the between-run test needs at least {MIN_HISTORY_RUNS}" in err[0]
    assert "add 2 more with python -m bench promote" in err[0] and "python -m bench ab" in err[0]
    with pytest.raises(HistoryTooShort):
        compare_history(history_of(2), make_run(501, TRAIN), min_runs=MIN_HISTORY_RUNS)
    # --method rounds falls back to the newest run of the history, and says so.
    code, out, err = cli(capsys, "compare", "main", current, "--results-dir", results, "--method", "rounds")
    assert code == EXIT_OK and any("newest run of the history" in line for line in err)
    assert any(line.startswith("warning: the round-level test") for line in err)


def test_a_case_in_too_few_history_runs_is_new_not_judged():
    history = history_of(5)
    for run in history[:3]:
        run["cases"] = [c for c in run["cases"] if c["case_id"] != T1024]
    document = compare_history(history, make_run(600, TRAIN, run_index=9))
    row = {r["case_id"]: r for r in document["rows"]}[T1024]
    assert row["verdict"] == "new" and not row["fails_build"]
    assert row["reason"] == "measured ok in 2 of the history's 5 runs; the between-run test needs at least 5"


def test_history_from_several_files_and_a_window(tmp_path, capsys):
    paths = [write_run(tmp_path / "h", run) for run in history_of(7)]
    current = write_run(tmp_path, drifted(make_run(700, TRAIN, run_index=30), 1.0))
    code, out, _ = cli(capsys, "compare", *paths, current, "--window", "5", "--json", tmp_path / "c.json")
    assert code == EXIT_OK and "history of 5 runs" in out
    document = json.loads((tmp_path / "c.json").read_text())
    assert [h["run_id"] for h in document["baseline"]["history"]] == [json.loads(p.read_text())["run_id"]
                                                                     for p in paths[-5:]]


# --------------------------------------------------------------------------- the known slowdown


def test_slowdown_callback_sleeps_the_asked_fraction_of_each_step():
    from bench.measure.faults import slowdown_callbacks

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    record = {"flags": {}, "metrics": {}}
    (callback,) = slowdown_callbacks("train/x", FaultSettings(slowdown=0.1), record, clock=lambda: now[0], sleep=sleep)
    callback.set_params({"steps": 10, "epochs": 1, "verbose": 0})
    for step in range(10):
        callback.on_train_batch_begin(step)
        now[0] += 0.005  # a 5 ms step
        callback.on_train_batch_end(step)
    assert sum(slept) == pytest.approx(0.1 * 10 * 0.005)
    assert all(s >= 0.002 for s in slept[:-1])  # paid in slices of at least 2 ms, the rest on the last step
    assert record["flags"] == {"injected_slowdown": True}
    info = record["metrics"]["injected_slowdown"]
    assert info["steps"] == 10 and info["step_s"] == pytest.approx(0.05) and info["fraction"] == 0.1
    assert slowdown_callbacks("native/x", FaultSettings(slowdown=0.1), {"flags": {}, "metrics": {}}) == []
    assert slowdown_callbacks("train/x", FaultSettings(), {"flags": {}, "metrics": {}}) == []


def test_a_slowed_run_can_never_pass_for_a_real_one(tmp_path, capsys):
    results = tmp_path / "results"
    slowed = make_run(800, TRAIN)
    slowed["config"]["faults"] = {"slowdown": 0.1, "slowdown_cases": "train/*"}
    for case in slowed["cases"]:
        case["flags"]["injected_slowdown"] = True
        case["metrics"]["injected_slowdown"] = {"fraction": 0.1, "method": "Keras callback: sleep after each training step, sized from its duration"}
    path = write_run(results, slowed)
    code, out, err = cli(capsys, "promote", path, "--name", "main", "--results-dir", results, "--allow-doubtful")
    assert code == EXIT_USAGE and "injected slowdown" in err[0] and "no flag overrides this" in err[0]
    history = [write_run(tmp_path / "h", run) for run in history_of(5)]
    code, _, err = cli(capsys, "compare", *history[:-1], path, history[-1])
    assert code == EXIT_USAGE and "a gate test cannot be part of a baseline" in err[0]
    code, out, _ = cli(capsys, "compare", tmp_path / "h", path)
    assert code == EXIT_REGRESSION or "injected slowdown" in out  # judged, and labelled in every row
    assert "current run has an injected slowdown" in out
    code, _, err = cli(capsys, "export", path, "--format", "github-action-benchmark", "--output", tmp_path / "gh")
    assert code == EXIT_USAGE and "not exported" in err[0] and not (tmp_path / "gh").exists()
    with pytest.raises(Exception, match="slowdown"):
        parse_config({"name": "x", "faults": {"slowdown": 12}})


# --------------------------------------------------------------------------- A/B


class FakeRunner:
    """Stands in for the processes: records the calls, writes a one-case run per call (side b 10 % slower)."""

    def __init__(self, tmp_path: Path, b_speed: float = 0.9):
        self.calls: list[tuple[str, str]] = []
        self.tmp_path, self.b_speed, self.prepared, self.closed = tmp_path, b_speed, [], False

    def prepare(self, side: Side) -> None:
        self.prepared.append(side.label)

    def run(self, side: Side, config_path: Path, results_dir: Path) -> Path:
        text = config_path.read_text()
        unit = text.splitlines()[0].removeprefix("# ")
        self.calls.append((side.label, unit))
        seed = len(self.calls)
        run = make_run(seed, tomllib.loads(text), speed={unit: self.b_speed} if side.label == "b" else {},
                       run_index=seed)
        return write_run(results_dir, run)

    def close(self) -> None:
        self.closed = True


def test_ab_session_interleaves_case_by_case_in_alternating_order(tmp_path):
    config = parse_config(TRAIN | {"suites": ["train"]})
    runner = FakeRunner(tmp_path)
    session = run_session(config, Side("a"), Side("b", revision="HEAD"), runner, tmp_path / "ab", 3)
    assert runner.prepared == ["a", "b"] and runner.closed
    assert runner.calls == [
        ("a", T256), ("b", T256), ("b", T1024), ("a", T1024),  # repeat 0
        ("b", T256), ("a", T256), ("a", T1024), ("b", T1024),  # repeat 1
        ("a", T256), ("b", T256), ("b", T1024), ("a", T1024),  # repeat 2
    ]
    assert [s.order for s in schedule(2, 2)] == [("a", "b"), ("b", "a"), ("b", "a"), ("a", "b")]
    assert len(session.pairs) == 6 and [e["side"] for e in session.log[:4]] == ["a", "b", "b", "a"]
    document = compare_pairs(session.pairs, CompareSettings())
    assert verdicts(document) == {T256: "regression", T1024: "regression"}
    assert document["method"]["name"] == "interleaved" and document["method"]["pairs"] == 6
    row = document["rows"][0]
    assert row["baseline"]["runs"] == 3 and 0.87 < row["ratio"] < 0.93 and "interleaved pairs" in row["reason"]
    same = compare_pairs(run_session(config, Side("a"), Side("b"), FakeRunner(tmp_path, 1.0), tmp_path / "aa",
                                     3).pairs, CompareSettings())
    assert set(verdicts(same).values()) == {"no change"}


def test_ab_units_are_single_cell_configs():
    config = parse_config({"name": "q", "suites": ["train", "cpu_predict"],
                           "train": {"gpus": [1, 2], "global_batch": [256], "jit_compile": [False]},
                           "cpu_predict": {"methods": ["recompile", "clone"]}, "data": {"path": "x/mnist.npz"}})
    plan = units(config)
    assert [u.label for u in plan][:2] == ["train/tensorflow/gpus=1/batch=256/float32/jit=false/input=device/spe=1",
                                           "train/tensorflow/gpus=2/batch=256/float32/jit=false/input=device/spe=1"]
    assert len(plan) == 4
    for unit in plan:
        one = parse_config(unit.config)
        from bench.cases import suite_cases

        assert sum(len(suite_cases(s, one)) for s in one.suites) == 1
        assert Path(one.data.path).is_absolute()


def test_ab_refuses_identical_sides(capsys, tmp_path):
    code, _, err = cli(capsys, "ab", "--config", ROOT / "configs" / "gate.toml", "--results-dir", tmp_path)
    assert code == EXIT_USAGE and "both sides are the same" in err[0]


# --------------------------------------------------------------------------- exit codes through the CI invocation


@pytest.mark.parametrize(("case", "expected"), [("unchanged", EXIT_OK), ("slower", EXIT_REGRESSION),
                                                ("damaged", EXIT_USAGE)])
def test_exit_codes_survive_nox_compare(tmp_path, case, expected):
    """The workflow's own line, ``nox -s compare -- ...``: nox's exit status is compare's (0 / 1 / 2).

    ``--no-venv --no-install`` runs the noxfile's real session in this interpreter instead of building a
    virtualenv (which needs the network); everything after that is what CI runs."""
    pytest.importorskip("nox")
    history = tmp_path / "results" / "baselines" / "main"
    for run in history_of(5):
        write_run(history, run)
    speed = {T256: 0.7, T1024: 0.7} if case == "slower" else {}
    current = write_run(tmp_path / "results", drifted(make_run(900, TRAIN, speed=speed, run_index=40), 1.0))
    if case == "damaged":
        current.write_text(current.read_text()[:200])
    env = dict(os.environ, PYTHONPATH=str(ROOT),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run([sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "--no-venv", "--no-install",
                             "-s", "compare", "--", "main", str(current), "--results-dir", str(tmp_path / "results")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == expected, result.stdout[-2000:] + result.stderr[-2000:]
    if case == "damaged":
        output = result.stdout + result.stderr  # nox passes the command's output through
        assert "error: " in output and "not valid JSON" in output and "nox exits 2 too" in output


# --------------------------------------------------------------------------- exports and the table


def test_export_of_a_train_only_run_writes_throughput_only(tmp_path, capsys):
    run = write_run(tmp_path / "results", make_run(1000, TRAIN))
    out = tmp_path / "gh"
    code, stdout, err = cli(capsys, "export", run, "--format", "github-action-benchmark", "--output", out)
    assert code == EXIT_OK and err == []
    entries = json.loads((out / "github-benchmark-throughput.json").read_text())
    assert [e["name"] for e in entries] == [f"{T256} samples_per_second", f"{T1024} samples_per_second"]
    for entry in entries:
        match = GITHUB_RANGE.match(entry["range"])
        assert match and float(match["value"]) > 0 and "," not in entry["range"]
        assert isinstance(entry["value"], float) and entry["unit"] == "samples/s"
    assert not (out / "github-benchmark-seconds.json").exists()
    assert "customSmallerIsBetter: " in stdout and "has no CPU-prediction seconds" in stdout and "not written" in stdout
    # The newest run is the default source, and a run with nothing to export writes nothing.
    failed = make_run(1001, TRAIN, statuses={T256: "failed", T1024: "failed"}, run_index=5000)
    write_run(tmp_path / "results", failed)
    code, stdout, _ = cli(capsys, "export", "--format", "github-action-benchmark", "--results-dir",
                          tmp_path / "results", "--output", tmp_path / "none")
    assert code == EXIT_OK and not (tmp_path / "none").exists() and stdout.count("not written") == 2
    assert github_benchmark_entries(failed, "bigger") == []


def test_markdown_summary_only_changed_rows_and_the_table_wraps(tmp_path, capsys):
    history = history_of(6, spread=0.01)
    current = drifted(make_run(1100, TRAIN, speed={T256: 0.7}, run_index=50), 1.0)
    document = compare_history(history, current, CompareSettings(alpha=0.01))
    text = markdown_summary(document)
    assert text.startswith("### Benchmark gate fails the build (exit 1)")
    assert f"`{T256}`" in text and "| **regression** |" in text
    # The unchanged case is listed only because six runs cannot see its threshold, and it says so.
    (unchanged,) = [line for line in text.splitlines() if f"`{T1024}`" in line]
    assert "no change, blind below" in unchanged
    quieter = copy.deepcopy(document)
    quieter["rows"][1]["detect"]["blind_below"] = None  # as on a quieter runner
    quiet = markdown_summary(quieter)
    assert f"`{T1024}`" not in quiet and "1 case(s) with no change (and able to see their threshold) are not listed" in quiet
    table = render_table(document, only_changed=True, width=100)
    lines = table.splitlines()
    assert not any(line.startswith(T1024) for line in lines) and "1 unchanged case(s) not shown" in table
    assert all(len(line) <= 100 for line in lines if not line.startswith(("case ", "train/")))  # only cells run over
    reason = document["rows"][0]["reason"]
    assert reason.split()[-1].rstrip(")") in table  # the end of the long reason is there, on a wrapped line
    json_path = tmp_path / "c.json"
    json_path.write_text(json.dumps(document))
    code, stdout, _ = cli(capsys, "export", json_path, "--format", "markdown")
    assert code == EXIT_OK and stdout == text


def test_real_run_records_control_and_injected_slowdown(tmp_path, write_config):
    """One tiny real case: the control next to it and the slowdown's flag end up in the results file."""
    config = write_config("""
        name = "gate-e2e"
        suites = ["train"]
        [train]
        gpus = [1]
        global_batch = [256]
        jit_compile = [false]
        [measure]
        warmup_steps = 2
        rounds = 2
        processes = 2
        min_round_s = 0.05
        [data]
        source = "synthetic"
        [devices]
        simulate = true
        [control]
        rounds = 2
        min_round_s = 0.02
        [faults]
        slowdown = 0.5
    """)
    result = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "results"), "--quiet",
                     timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    run = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    (case,) = run["cases"]
    assert case["status"] == "ok" and case["flags"]["injected_slowdown"] is True
    injected = case["metrics"]["injected_slowdown"]
    assert injected["steps"] > 0 and injected["sleep_s"] == pytest.approx(0.5 * injected["step_s"], rel=0.05, abs=0.003)
    control = case["control"]
    # Each of the case's two processes timed the control twice before and twice after it, same round length.
    assert control["status"] == "ok" and control["position"] == ["before", "before", "after", "after"] * 2
    assert control["round_pass"] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert len(control["round_s"]) == 8 and control["samples_per_second"]["median"] > 0
    assert run["config"]["faults"]["slowdown"] == 0.5


def test_ab_units_cover_the_input_and_steps_per_execution_axes():
    config = parse_config({"name": "q", "suites": ["train"],
                           "train": {"gpus": [1], "global_batch": [256], "jit_compile": [False], "input": ["device"],
                                     "steps_per_execution": [1],
                                     "add": [{"input": ["numpy", "device"], "steps_per_execution": [8]}]},
                           "data": {"source": "synthetic"}})
    from bench.cases import suite_cases

    plan = units(config)
    assert [u.label for u in plan] == [c.case_id for c in suite_cases("train", config)]
    assert len(plan) == 3
    for unit in plan:
        (only,) = suite_cases("train", parse_config(unit.config))
        assert only.case_id == unit.label


def test_ab_units_cover_the_workers_keras_and_converge_axes():
    """Every axis of a case pins its unit (workers and keras too), and converge cases get units of their own."""
    from bench.cases import suite_cases

    config = parse_config({"name": "q", "suites": ["train", "converge"],
                           "train": {"global_batch": [256], "jit_compile": [False], "workers": [1, 2],
                                     "keras": ["keras3", "tf_keras"]},
                           "converge": {"global_batch": [512, 1024], "lr_scaling": ["none", "sqrt"]}})
    plan = units(config)
    train_ids = [c.case_id for c in suite_cases("train", config)]
    converge_ids = [c.case_id for c in suite_cases("converge", config)]
    assert len(train_ids) == 4 and len(converge_ids) == 4
    assert [u.label for u in plan] == train_ids + converge_ids
    for unit in plan:
        one = parse_config(unit.config)
        assert [c.case_id for s in one.suites for c in suite_cases(s, one)] == [unit.label]


# --------------------------------------------------------------------------- the one judge, and what it can see


def test_holm_splits_the_budget_over_the_cases_and_caps_each_case():
    # 3 cases tested, 2 % cap: the budget is min(5 %, 3 x 2 %) = 5 %; the smallest p gets 5/3 %, the next 2.5 %
    # capped at 2 % (it fails: every later case keeps 2 % and cannot pass it either); an untested case does not count.
    assert case_levels([0.001, 0.02, 0.5, None], alpha=0.05, cap=0.02) == pytest.approx([0.05 / 3, 0.02, 0.02, 0.05 / 3])
    assert max(case_levels([0.0001, 0.0002, 0.0003, 0.5], alpha=0.05, cap=0.01)) == 0.01  # never above the cap
    assert case_levels([0.5] * 130)[0] == pytest.approx(0.05 / 130)  # 130 cases: 5 % per run, not 130 %
    assert bonferroni_level(4) == pytest.approx(0.01) and bonferroni_level(130) == pytest.approx(0.05 / 130)
    # One check object for every method: a reason or None.
    estimate = paired_estimate([100.0, 101, 99, 100, 102, 98, 100, 101], [90.0, 91, 89, 90, 92, 88, 90, 91])
    assert "8 interleaved pairs" in GateCheck(0.05, 0.01).fails(estimate)
    assert GateCheck(0.05, 0.01).improvement().fails(estimate) is None
    assert GateCheck(0.12, 0.01).fails(estimate) is None  # -10 %: below a 12 % threshold


def test_mde_formula_on_synthetic_data():
    """At the stated minimum detectable effect the check catches about 90 % of slowdowns, at half of it far fewer."""
    rng = np.random.default_rng(5)
    k, spread, level = 10, 0.04, 0.01
    mde = GateCheck(0.0, level).mde(history_estimate(np.exp(rng.normal(0, spread, k)), 1.0))
    nominal = judge_mde(spread * np.sqrt(1 + 1 / k), k - 1, level)  # at the true spread

    def detected(slowdown: float, trials: int = 3000) -> float:
        hits = 0
        for _ in range(trials):
            history = np.exp(rng.normal(0, spread, k))
            current = float(np.exp(rng.normal(np.log1p(slowdown), spread)))
            hits += GateCheck(0.0, level).fails(history_estimate(history, current)) is not None
        return hits / trials

    assert -0.25 < mde < -0.08 and -0.17 < nominal < -0.15  # (t(0.99, 9) + t(0.9, 9)) x 4 % x sqrt(1.1)
    assert 0.86 <= detected(nominal) <= 0.94
    assert detected(nominal / 2) < 0.5
    # Pairs: the smallest n whose paired t-test catches 10 % with 90 % power at this pair spread.
    n = pairs_needed(0.09, 0.10, level=0.0125)
    assert n == 12
    for pairs, low, high in ((n, 0.88, 0.94), (n - 3, 0.6, 0.86)):
        hits = sum(GateCheck(0.0, 0.0125).fails(paired_estimate(np.ones(pairs), np.exp(rng.normal(np.log(0.9), 0.09, pairs))))
                   is not None for _ in range(3000))
        assert low <= hits / 3000 <= high, (pairs, hits)
    # The change-point mode: caught within 8 runs about 90 % of the time at its stated limit.
    shift = mde_after(0.04, 10, 8, DEFAULT_HORIZON, 0.01)
    assert shift is not None and -0.12 < shift < -0.06
    hits = 0
    for _ in range(1000):
        logs = rng.normal(0, 0.04, 10 + 8)
        logs[10:] += np.log1p(shift)
        series = analyse(logs, 10, DEFAULT_HORIZON, down=True)
        hits += first_alarm(series, 10, threshold(10, DEFAULT_HORIZON, 0.01, series.allowance)) is not None
    assert 0.85 <= hits / 1000 <= 0.95
    assert mde_after(0.04, 10, 1, DEFAULT_HORIZON, 0.01) is None  # one run adds at most 3 - k: out of reach


def test_cusum_finds_a_planted_step_at_the_right_run():
    rng = np.random.default_rng(11)
    found = []
    for _ in range(20):
        logs = rng.normal(0, 0.03, 30)
        logs[18:] += np.log(0.9)  # a persistent 10 % slowdown from run 18 (0-based) on
        series = analyse(logs, 10, DEFAULT_HORIZON, down=True)
        alarm = first_alarm(series, 10, threshold(10, DEFAULT_HORIZON, 0.01, series.allowance))
        found.append((alarm, series.start, series.log_shift))
    assert all(alarm is not None and 18 <= alarm <= 24 for alarm, _, _ in found), found
    assert sorted(alarm for alarm, _, _ in found)[10] <= 20  # median: within three runs of the change
    assert sum(start == 18 for _, start, _ in found) >= 15 and all(abs(start - 18) <= 1 for _, start, _ in found)
    assert all(-0.14 < np.expm1(shift) < -0.06 for _, _, shift in found)


def test_cusum_stays_quiet_on_a_heavy_tailed_aa_series():
    """Student-t noise with 2 degrees of freedom (a run caught by a whole-run burst now and then): at a 1 % level
    per series the alarms over 20 monitored runs stay near 1 %, because each run's z is clipped at 3."""
    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(1000):
        logs = 0.03 * rng.standard_t(2, 30)
        series = analyse(logs, 10, DEFAULT_HORIZON, down=True)
        alarms += first_alarm(series, 10, threshold(10, DEFAULT_HORIZON, 0.01, series.allowance)) is not None
    assert alarms / 1000 <= 0.025, alarms


def nightly(n: int, spread: float, step_at: int | None = None, seed: int = 0, heavy: bool = False) -> list[dict]:
    """``n`` nightly runs whose machine drifts (log-normal, or Student-t 2 when ``heavy``); from ``step_at`` on, the
    batch-256 case is 10 % slower (the control is not)."""
    rng = np.random.default_rng(seed)
    runs = []
    for i in range(n):
        speed = {T256: 0.9} if step_at is not None and i >= step_at else {}
        noise = spread * (rng.standard_t(2) if heavy else rng.normal())
        runs.append(drifted(make_run(5000 + seed * 100 + i, TRAIN, speed=speed, run_index=i), float(np.exp(noise)),
                            control_noise=0.05, seed=i))
    return runs


def test_changepoint_mode_over_a_promoted_history(tmp_path, capsys):
    results = tmp_path / "results"
    runs = nightly(24, 0.03, step_at=17)
    for run in runs:
        write_run(results / "baselines" / "nightly", run)
    code, out, err = cli(capsys, "compare", "nightly", results / "baselines" / "nightly" / f"{runs[-1]['run_id']}.json",
                         "--method", "changepoint", "--results-dir", results, "--json", tmp_path / "c.json",
                         "--markdown", tmp_path / "c.md")
    assert code == EXIT_REGRESSION, out
    document = json.loads((tmp_path / "c.json").read_text())
    rows = {r["case_id"]: r for r in document["rows"]}
    assert rows[T256]["verdict"] == "regression" and rows[T1024]["verdict"] == "no change"
    start = rows[T256]["changepoint"]["worse"]["start"]
    # The window is the newest 10 + 20 runs (all 24 here): the shift began at run 17 (0-based) of it.
    assert abs(start["index"] - 17) <= 1 and start["run_id"] in {r["run_id"] for r in runs[16:19]}
    assert f"the shift began at run {start['run_id']}" in rows[T256]["reason"]
    assert set(rows[T256]["detect"]["after_runs"]) == {"4", "8", "16"}
    assert document["method"]["name"] == "changepoint" and document["method"]["reference_runs"] == 10
    assert document["suite"]["case_id"].startswith("suite: geometric mean of 2 case(s)")
    assert "suite: geometric mean" in out and "series:   24 runs" in out
    assert "the shift began at run" in (tmp_path / "c.md").read_text()
    # Unchanged nights with heavy-tailed machine noise: quiet.
    quiet = tmp_path / "quiet"
    for run in nightly(24, 0.03, seed=7, heavy=True):
        write_run(quiet, run)
    code, out, _ = cli(capsys, "compare", quiet, "--method", "changepoint", "--results-dir", quiet)
    assert code == EXIT_OK, out
    # Too short a history for a reference: bad input, saying how many runs to add.
    short = tmp_path / "short"
    for run in nightly(4, 0.03):
        write_run(short, run)
    code, out, err = cli(capsys, "compare", short, "--method", "changepoint", "--results-dir", short)
    assert code == EXIT_USAGE and "needs at least 5 reference runs" in err[0] and "add 2 more" in err[0]


def test_two_files_never_gate_blindly(tmp_path, capsys):
    """compare A.json B.json: one process per case cannot tell a change from drift, so those cases are not judged
    (and it says what it needs); with several processes it judges, states what it can see, and an unchanged
    commit on a machine that was slower as a whole stays green."""
    base = write_run(tmp_path, drifted(make_run(1, TRAIN, run_index=1), 1.0))
    drift = write_run(tmp_path, drifted(make_run(2, TRAIN, run_index=2), 0.8))  # the machine 20 % slower
    code, out, err = cli(capsys, "compare", base, drift)
    assert code == EXIT_OK and "not judged" in out and "2 no change (2 not judged)" in out
    assert any("2 case(s) not judged" in line and "promote" in line and "ab" in line for line in err)

    def run(seed: int, machine: float, speed: dict | None = None) -> Path:
        document = drifted(make_run(seed, TRAIN, rounds=15, speed=speed, run_index=seed), machine, control_noise=0.01,
                           seed=seed)
        return write_run(tmp_path / "p", in_processes(document))

    a = run(10, 1.0)
    code, out, err = cli(capsys, "compare", a, run(11, 1.0), "--json", tmp_path / "same.json")
    assert code == EXIT_OK and err == []
    same = json.loads((tmp_path / "same.json").read_text())
    for row in same["rows"]:
        assert row["detect"]["judged"] and row["detect"]["spread_of"] == "processes" and row["detect"]["mde"] < 0
        assert row["current"]["processes"] == 3 and row["detect"]["ab_pairs_10pct"] >= 2
    code, out, _ = cli(capsys, "compare", a, run(12, 0.8), "--json", tmp_path / "slower.json")
    assert code == EXIT_OK, out  # the whole machine 20 % slower: the control moved, the cases relative to it did not
    slower = json.loads((tmp_path / "slower.json").read_text())
    assert all(r["normalized"] and "the control moved -" in r["normalization"]["why"] and "machine differed as a whole"
               in r["normalization"]["why"] for r in slower["rows"])
    code, out, _ = cli(capsys, "compare", a, run(13, 1.0, {T256: 0.7}))
    assert code == EXIT_REGRESSION and "3 vs 3 processes" in out


def test_control_normalisation_is_chosen_per_case_where_it_lowers_the_spread():
    # The machine drifts 8 % between runs and the control follows it: dividing removes the drift.
    tracked = compare_history(history_of(10, spread=0.08), drifted(make_run(900, TRAIN, run_index=20), 0.9,
                                                                   control_noise=0.005),
                              CompareSettings(normalize="auto"))
    assert all(r["normalized"] and "lowers the spread over the 10 history runs" in r["normalization"]["why"]
               for r in tracked["rows"])
    # Picking the smaller of two estimated spreads underestimates it: the choice costs half the case's level.
    assert all(r["normalization"]["chosen"] and r["alpha"] == pytest.approx(0.005) for r in tracked["rows"])
    forced = compare_history(history_of(10, spread=0.08), drifted(make_run(900, TRAIN, run_index=20), 0.9,
                                                                  control_noise=0.005), CompareSettings(normalize="control"))
    assert all(not r["normalization"]["chosen"] and r["alpha"] == pytest.approx(0.01) for r in forced["rows"])
    # A quiet machine with a control that jumps around by itself: dividing would add its noise; raw it is.
    rng = np.random.default_rng(1)
    noisy = [drifted(make_run(700 + i, TRAIN, run_index=i), 1.0, control_noise=0.0, seed=i) for i in range(10)]
    for run in noisy:
        for case in run["cases"]:
            case["control"]["round_s"] = [r * float(np.exp(rng.normal(0, 0.15))) for r in case["control"]["round_s"]]
    quiet = compare_history(noisy, make_run(800, TRAIN, run_index=30) | {"cases": noisy[0]["cases"]},
                            CompareSettings(normalize="auto"))
    assert not any(r["normalized"] for r in quiet["rows"])
    assert all(r["normalization"]["why"].startswith("raw: dividing by the control would not") for r in quiet["rows"])


class NoisyRunner(FakeRunner):
    """Side b runs each unit ``b_speed`` times as fast, its machine alternating through ``b_factors`` (pairs that
    disagree by a known amount), plus a little log-normal noise on every process; the clock advances 30 s per
    process."""

    def __init__(self, tmp_path: Path, b_speed: dict[str, float], b_factors: tuple[float, ...] = (1.0,),
                 noise: float = 0.005, seed: int = 0):
        super().__init__(tmp_path)
        self.b_speeds, self.b_factors, self.noise = b_speed, b_factors, noise
        self.rng, self.now, self.b_runs = np.random.default_rng(seed), 0.0, 0

    def clock(self) -> float:
        return self.now

    def run(self, side: Side, config_path: Path, results_dir: Path) -> Path:
        text = config_path.read_text()
        unit = text.splitlines()[0].removeprefix("# ")
        self.calls.append((side.label, unit))
        self.now += 30.0
        machine = float(np.exp(self.rng.normal(0, self.noise)))
        speed = {}
        if side.label == "b":
            speed = {unit: self.b_speeds.get(unit, 1.0)}
            machine *= self.b_factors[self.b_runs % len(self.b_factors)]
            self.b_runs += 1
        run = drifted(make_run(len(self.calls), tomllib.loads(text), speed=speed, run_index=len(self.calls)),
                      machine, seed=len(self.calls))
        return write_run(results_dir, run)


def test_ab_stops_early_on_a_clear_case_and_extends_an_unclear_one(tmp_path):
    from bench.commands.ab import unclear_units

    config = parse_config(TRAIN | {"suites": ["train"]})
    settings = CompareSettings()
    looks = (8, 16, 24)
    # batch 256: 40 % slower, clear after 8 pairs; batch 1024: 3 % slower with pairs +-10 % apart (pair sd 10 %),
    # so neither "slower beyond the 5 % threshold" nor "clearly within it" holds, even at the last look.
    runner = NoisyRunner(tmp_path, {T256: 0.6, T1024: 0.97}, b_factors=(1.1, 1.1, 0.9, 0.9))
    session = run_session(config, Side("a"), Side("b", revision="HEAD"), runner, tmp_path / "ab", looks,
                          decide=lambda s: unclear_units(s, settings, looks), clock=runner.clock)
    per_unit = {unit: sum(u == unit for _, u in runner.calls) // 2 for unit in (T256, T1024)}
    assert per_unit == {T256: 8, T1024: 24}
    document = compare_pairs(session.pairs, settings, looks=looks, seconds=session.seconds())
    rows = {r["case_id"]: r for r in document["rows"]}
    assert rows[T256]["verdict"] == "regression" and rows[T256]["detect"]["pairs"] == 8
    assert rows[T256]["detect"]["minutes"] == pytest.approx(8 * 2 * 30 / 60)
    assert rows[T1024]["detect"]["pairs"] == 24 and rows[T1024]["verdict"] == "no change"
    assert any(note.startswith("unclear after 24 pairs") for note in rows[T1024]["notes"])
    assert document["method"]["looks"] == [8, 16, 24] and document["method"]["minutes"] == pytest.approx(32 * 2 * 30 / 60)
    table = render_table(document, width=200)
    assert "32 pairs, 32.0 min" in table and "at 8 pairs" in table
    # An A/A unit on a quiet machine is clearly unchanged after the first look.
    quiet = NoisyRunner(tmp_path, {}, seed=3)
    run_session(config, Side("a"), Side("b", revision="HEAD"), quiet, tmp_path / "aa", looks,
                decide=lambda s: unclear_units(s, settings, looks), clock=quiet.clock)
    assert len(quiet.calls) == 2 * 2 * 8


def test_gate_benchmark_analysis_on_a_synthetic_collection(tmp_path):
    """scripts/gate_benchmark.py analyze on runs shaped like collect's (adjacent pairs, some loaded, processes):
    every table comes out, with intervals, and a 20 % slowdown on a quiet synthetic machine is caught."""
    from scripts.gate_benchmark import schedule
    from scripts.gate_rates import analyze, wilson

    rng = np.random.default_rng(0)
    entries = []
    for index in range(16):
        kind, loaded, pair = schedule(index)
        doc = make_run(20_000 + index, TRAIN, rounds=15, run_index=index,
                       speed={T256: float(np.exp(rng.normal(0, 0.01))), T1024: float(np.exp(rng.normal(0, 0.01)))})
        if kind == "slow":
            for case in doc["cases"]:
                case["metrics"]["round_s"] = [r / 0.8 for r in case["metrics"]["round_s"]]
        machine = float(np.exp(rng.normal(0, 0.03) - (0.1 if loaded else 0.0)))
        path = write_run(tmp_path / "runs", in_processes(drifted(doc, machine, control_noise=0.01, seed=index)))
        entries.append({"index": index, "kind": kind, "loaded": loaded, "pair": pair, "run": str(path), "wall_s": 40.0,
                        "loadavg_1min_before": 1.5})
    entries += [{"index": None, "kind": "unit", "case_id": c, "run": str(path), "wall_s": 20.0} for c in (T256, T1024)]
    assert [schedule(i)[:2] for i in range(4)] == [("normal", False), ("slow", False), ("normal", False),
                                                    ("normal", False)] and schedule(4)[1]
    text = analyze(tmp_path, entries, comparisons=20, series=4, sessions=4, seed=1)
    assert (tmp_path / "summary.md").read_text() == text
    for heading in ("### Single run against a history", "### Change point over nightly runs", "### Adaptive A/B",
                    "### Spread of a case's run value"):
        assert heading in text
    assert "a smoke test of the analysis, not a measurement" in text  # 12 unchanged runs, not 40
    caught = next(line for line in text.splitlines() if line.startswith("| measured slowed runs caught, per case"))
    assert caught.startswith("| measured slowed runs caught, per case | 40/40 (100.0%; 95 %")
    assert "| 10 % slowdown caught, per case | 8/8" in text  # the A/B sessions, 2 cases x 4 sessions
    low, high = wilson(0, 300, 40)
    assert low == 0.0 and 0.08 < high < 0.09  # 0 of 300 comparisons from 40 runs: up to 8.8 %


def test_a_case_timed_while_another_job_loaded_the_machine_is_neither_judged_nor_part_of_a_spread(tmp_path):
    """flags.contention (the sweep's /proc/stat reading): a loaded current run is not judged, loaded history runs
    and nights are left out, and every row says so."""
    history = history_of(8, spread=0.02)
    for run in history[:2]:
        for case in run["cases"]:
            case["flags"]["contention"] = True
    loaded = drifted(make_run(950, TRAIN, speed={T256: 0.6}, run_index=30), 1.0)
    for case in loaded["cases"]:
        case["flags"]["contention"] = True
    document = compare_history(history, loaded, CompareSettings(normalize="none"))
    rows = {r["case_id"]: r for r in document["rows"]}
    assert rows[T256]["verdict"] == "no change" and not rows[T256]["detect"]["judged"]
    assert any(n.startswith("not judged: another job loaded the machine") for n in rows[T256]["notes"])
    assert any(n.startswith("2 history run(s) left out") for n in rows[T256]["notes"])
    assert rows[T256]["baseline"]["runs"] == 6 and document["summary"]["not_judged"] == 2
    judged = compare_history(history, loaded, CompareSettings(normalize="none", skip_contended=False))  # --judge-contended
    assert verdicts(judged)[T256] == "regression" and judged["rows"][0]["baseline"]["runs"] == 8
    quiet = drifted(make_run(951, TRAIN, speed={T256: 0.6}, run_index=31), 1.0)
    assert verdicts(compare_history(history, quiet, CompareSettings(normalize="none")))[T256] == "regression"
