"""``python -m bench compare`` / ``promote``: verdicts, statistics on realistic noise, refusals, exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.analyze.compare import (
    COMPARISON_KIND,
    COMPARISON_SCHEMA_VERSION,
    VERDICTS,
    CompareSettings,
    EnvironmentMismatch,
    compare_runs,
)
from bench.analyze.regression import MinimumEffectCheck, RegressionCheck, SignificanceCheck, StatusCheck
from bench.cli import main
from bench.errors import EXIT_OK, EXIT_REGRESSION, EXIT_USAGE
from bench.store.comparisons import load_comparison

try:
    from tests.factories import cpu_predict_case_id, in_processes, make_run, write_run
except ImportError:  # tests/ on sys.path instead of the repository root
    from factories import cpu_predict_case_id, in_processes, make_run, write_run

ROOT = Path(__file__).resolve().parents[1]
# How github-action-benchmark reads "range" (src/extractRangeInfo.ts) before Number() of the value.
GITHUB_RANGE = re.compile(r"^(\+-|±)\s*(?P<value>\d.+)$")
FIXTURES = Path(__file__).parent / "fixtures" / "compare"

TRAIN_256 = "train/tensorflow/gpus=1/batch=256/float32/jit=auto/input=device/spe=1"
TRAIN_1024 = "train/tensorflow/gpus=1/batch=1024/float32/jit=auto/input=device/spe=1"
TRAIN_4096 = "train/tensorflow/gpus=1/batch=4096/float32/jit=auto/input=device/spe=1"
RECOMPILE = cpu_predict_case_id("tensorflow", "float32", True, 1024, "recompile")
ALL_METHODS = ("naive", "recompile", "strategy", "clone", "saved_model")

# One train case and one CPU-prediction workaround: the unit the statistics act on, twice over.
ONE_OF_EACH = {"name": "ci", "suites": ["train", "cpu_predict"], "train": {"gpus": [1], "global_batch": [256]},
               "cpu_predict": {"methods": ["recompile"]}}
THREE_BATCHES = {"name": "ci", "suites": ["train"], "train": {"gpus": [1], "global_batch": [256, 1024, 4096]}}
EVERY_METHOD = {"name": "ci", "suites": ["cpu_predict"], "cpu_predict": {"methods": list(ALL_METHODS)}}


ROUNDS_WARNING = "warning: the round-level test compares the rounds of two runs"
NOT_JUDGED_WARNING = re.compile(r"^warning: \d+ case\(s\) not judged: measured in one process per run")


def cli(capsys, *args: str) -> tuple[int, str, list[str]]:
    """Run the CLI in-process; stderr lines without the standing warnings of the round-level test and of cases
    two runs cannot judge (one process each: the CPU-prediction cases here)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines()
                                if not line.startswith(ROUNDS_WARNING) and not NOT_JUDGED_WARNING.match(line)]


def verdicts(document) -> dict[str, str]:
    return {row["case_id"]: row["verdict"] for row in document["rows"]}


def one_hiccup(trial: int) -> tuple[dict[str, int], dict[str, int]]:
    """Occasional outliers, placed so both sides get some: a 30 % slower round in the baseline on
    trials 1, 6, 11, 16 and in the current run on trials 3, 8, 13, 18."""
    hit = {TRAIN_256: trial % 5, RECOMPILE: (trial + 2) % 5}
    return (hit if trial % 5 == 1 else {}), (hit if trial % 5 == 3 else {})


# --------------------------------------------------------------------------- the checks themselves


def test_checks_are_small_objects_that_return_a_reason_or_none():
    base = [100.0, 101.0, 99.0, 100.5, 99.5]
    slower = [90.0, 91.0, 89.0, 90.5, 89.5]
    reason = RegressionCheck().fails(base, slower)
    assert reason is not None and "-10.0%" in reason and "p = " in reason
    assert RegressionCheck().fails(base, [100.2, 99.1, 100.9, 99.7, 100.4]) is None
    assert MinimumEffectCheck(0.05).fails(base, [96.0, 97.0, 95.0, 96.5, 95.5]) is None  # -4 %: too small
    assert SignificanceCheck(0.05).fails(base, [96.0, 97.0, 95.0, 96.5, 95.5]) is not None  # but real
    noisy = [100.0, 130.0, 70.0, 115.0, 85.0]
    assert MinimumEffectCheck(0.05).fails(noisy, [v * 0.9 for v in noisy]) is not None
    assert RegressionCheck().fails(noisy, [90.0, 121.0, 60.0, 104.0, 76.0]) is None  # -10 %, but noise
    seconds = [0.120, 0.121, 0.119, 0.1205, 0.1195]
    assert RegressionCheck(bigger_is_better=False).fails(seconds, [s * 1.1 for s in seconds]) is not None
    assert RegressionCheck(bigger_is_better=False).fails(seconds, [s * 0.9 for s in seconds]) is None
    assert RegressionCheck(bigger_is_better=False).improvement().fails(seconds, [s * 0.9 for s in seconds])
    assert StatusCheck().fails({"status": "ok"}, {"status": "wrong", "params": {"method": "clone"}, "reason": "x"})
    assert StatusCheck().fails({"status": "ok"}, {"status": "ok"}) is None
    assert StatusCheck().fails({"status": "failed"}, {"status": "ok"}) is None


# --------------------------------------------------------------------------- statistics on realistic noise


def test_a_a_identical_configuration_is_never_a_regression():
    """Same configuration twice, 3 % log-normal noise and occasional 30 % hiccups: 20 of 20 clean."""
    flagged = []
    for trial in range(20):
        hiccups_b, hiccups_c = one_hiccup(trial)
        baseline = make_run(1000 + trial, ONE_OF_EACH, hiccups=hiccups_b)
        current = make_run(2000 + trial, ONE_OF_EACH, hiccups=hiccups_c)
        document = compare_runs(baseline, current)
        flagged += [(trial, row["case_id"]) for row in document["rows"] if row["verdict"] == "regression"]
    assert flagged == [], f"A/A trials flagged as regressions: {flagged}"


def test_a_ten_percent_slowdown_is_caught():
    """The same noise with every round 10 % slower: caught in at least 19 of 20 trials, per suite."""
    caught = {TRAIN_256: 0, RECOMPILE: 0}
    for trial in range(20):
        hiccups_b, hiccups_c = one_hiccup(trial)
        baseline = make_run(1000 + trial, ONE_OF_EACH, hiccups=hiccups_b)
        current = make_run(2000 + trial, ONE_OF_EACH, hiccups=hiccups_c, speed={TRAIN_256: 0.9, RECOMPILE: 0.9})
        found = verdicts(compare_runs(baseline, current))
        for case_id in caught:
            caught[case_id] += found[case_id] == "regression"
    assert caught[TRAIN_256] >= 19, caught
    assert caught[RECOMPILE] >= 19, caught


def test_an_improvement_is_reported_and_does_not_fail_the_build():
    baseline = make_run(1, ONE_OF_EACH)
    current = make_run(2, ONE_OF_EACH, speed={TRAIN_256: 1.15})
    document = compare_runs(baseline, current)
    assert verdicts(document)[TRAIN_256] == "improvement"
    assert document["summary"]["exit_code"] == EXIT_OK


def test_threshold_is_configurable_per_metric(tmp_path, capsys):
    base = write_run(tmp_path, in_processes(make_run(1, ONE_OF_EACH, rounds=15)))
    slow = write_run(tmp_path, in_processes(make_run(2, ONE_OF_EACH, rounds=15, speed={TRAIN_256: 0.9})))
    assert cli(capsys, "compare", base, slow)[0] == EXIT_REGRESSION
    assert cli(capsys, "compare", base, slow, "--threshold", "samples_per_second=15%")[0] == EXIT_OK
    assert cli(capsys, "compare", base, slow, "--threshold", "15")[0] == EXIT_OK
    code, out, err = cli(capsys, "compare", base, slow, "--threshold", "step_time=5%")
    assert code == EXIT_USAGE and len(err) == 1 and "unknown metric 'step_time'" in err[0] and out == ""
    code, _, err = cli(capsys, "compare", base, slow, "--threshold", "samples_per_second=lots")
    assert code == EXIT_USAGE and len(err) == 1


# --------------------------------------------------------------------------- verdicts


def test_missing_new_and_failed_cases(tmp_path, capsys):
    baseline = make_run(1, THREE_BATCHES, drop=[TRAIN_4096])
    current = make_run(2, THREE_BATCHES, drop=[TRAIN_1024], statuses={TRAIN_256: "failed"})
    document = compare_runs(baseline, current)
    assert verdicts(document) == {TRAIN_256: "failed", TRAIN_4096: "new", TRAIN_1024: "missing"}
    rows = {row["case_id"]: row for row in document["rows"]}
    assert rows[TRAIN_256]["fails_build"] and "was ok in the baseline" in rows[TRAIN_256]["reason"]
    assert not rows[TRAIN_4096]["fails_build"] and not rows[TRAIN_1024]["fails_build"]

    code, out, err = cli(capsys, "compare", write_run(tmp_path, baseline), write_run(tmp_path, current))
    assert code == EXIT_REGRESSION and err == []
    lines = out.splitlines()
    assert any(line.startswith(TRAIN_1024) and "missing" in line for line in lines)
    assert "1 new" in lines[-1] and "1 missing" in lines[-1] and "1 failed" in lines[-1]


def test_a_case_failing_in_both_runs_or_skipped_does_not_fail_the_build():
    baseline = make_run(1, THREE_BATCHES, statuses={TRAIN_256: "failed", TRAIN_1024: "ok"})
    current = make_run(2, THREE_BATCHES, statuses={TRAIN_256: "failed", TRAIN_1024: "skipped"})
    document = compare_runs(baseline, current)
    assert verdicts(document)[TRAIN_256] == "failed"
    assert verdicts(document)[TRAIN_1024] == "missing"
    assert document["summary"]["exit_code"] == EXIT_OK


def test_cpu_predict_status_changes_are_flagged(tmp_path, capsys):
    baseline = make_run(1, EVERY_METHOD, statuses={"naive": "not_on_cpu", "strategy": "not_on_cpu"})
    current = make_run(2, EVERY_METHOD, statuses={"naive": "ok", "recompile": "wrong", "strategy": "failed",
                                                  "clone": "not_on_cpu"})
    document = compare_runs(baseline, current)
    found = {row["params"]["method"]: row for row in document["rows"]}
    assert found["naive"]["verdict"] == "improvement" and "naive started working" in found["naive"]["reason"]
    assert found["recompile"]["verdict"] == "regression" and "ok -> wrong" in found["recompile"]["reason"]
    assert found["clone"]["verdict"] == "regression" and "ok -> not_on_cpu" in found["clone"]["reason"]
    assert found["strategy"]["verdict"] == "failed" and not found["strategy"]["fails_build"]
    assert found["saved_model"]["verdict"] == "no change"

    code, out, _ = cli(capsys, "compare", write_run(tmp_path, baseline), write_run(tmp_path, current))
    assert code == EXIT_REGRESSION and "recompile stopped working: ok -> wrong" in out

    fixed = make_run(3, EVERY_METHOD, statuses={"naive": "not_on_cpu", "strategy": "ok"})
    assert verdicts(compare_runs(baseline, fixed))[cpu_predict_case_id("tensorflow", "float32", True, 1024,
                                                                        "strategy")] == "improvement"


# --------------------------------------------------------------------------- environment fingerprint


def test_mismatched_fingerprints_are_refused_with_the_fields_named(tmp_path, capsys):
    base = write_run(tmp_path, in_processes(make_run(1, ONE_OF_EACH, rounds=15)))
    other = write_run(tmp_path, in_processes(make_run(2, ONE_OF_EACH, rounds=15, gpu_name="NVIDIA A100-SXM4-80GB",
                                                      packages={"tensorflow": "2.20.0"})))
    code, out, err = cli(capsys, "compare", base, other)
    assert code == EXIT_USAGE and out == "" and len(err) == 1
    assert err[0].startswith("error: environments differ in gpu_model (")
    assert "tensorflow ('2.21.0' vs '2.20.0')" in err[0] and "--force" in err[0]
    assert "keras" not in err[0].split(";")[0]

    code, out, err = cli(capsys, "compare", base, other, "--allow-diff", "tensorflow")
    assert code == EXIT_USAGE and "gpu_model" in err[0] and "tensorflow (" not in err[0]

    code, out, err = cli(capsys, "compare", base, other, "--force")
    assert code == EXIT_OK and len(err) == 1 and err[0].startswith("warning:")
    assert "gpu_model" in err[0] and "tensorflow" in err[0] and "verdict" in out

    code, _, err = cli(capsys, "compare", base, other, "--allow-diff", "gpu_model,tensorflow", "--json",
                       tmp_path / "c.json")
    assert code == EXIT_OK and len(err) == 1 and err[0].startswith("note:")
    environment = load_comparison(tmp_path / "c.json")["environment"]
    assert [d["field"] for d in environment["differs"]] == ["gpu_model", "tensorflow"]
    assert environment["allowed"] == ["gpu_model", "tensorflow"] and environment["forced"] is False

    code, _, err = cli(capsys, "compare", base, other, "--allow-diff", "drivers")
    assert code == EXIT_USAGE and len(err) == 1 and "unknown field 'drivers'" in err[0]


@pytest.mark.parametrize(("change", "field"), [
    ({"gpu_count": 2}, "gpu_count"),
    ({"packages": {"keras": "3.16.0"}}, "keras"),
    ({"data_source": "npz"}, "data_source"),
    ({"gpu_count": 0}, "gpu_count"),
])
def test_each_fingerprint_field_that_matters(change, field):
    with pytest.raises(EnvironmentMismatch, match=f"differ in .*{field} \\("):
        compare_runs(make_run(1, ONE_OF_EACH), make_run(2, ONE_OF_EACH, **change))


def test_what_does_not_matter_is_reported_not_refused():
    baseline = make_run(1, ONE_OF_EACH)
    current = make_run(2, ONE_OF_EACH, packages={"torch": "2.9.0", "numpy": "2.5.0"})
    current["environment"]["driver_version"] = "580.65.06"
    environment = compare_runs(baseline, current)["environment"]
    assert environment["differs"] == []  # torch only on one side and not a backend here; numpy not compared
    assert environment["info"] == [{"field": "driver_version", "baseline": "570.124.06", "current": "580.65.06"}]


def test_cpu_model_matters_only_without_a_gpu():
    cpu_a = make_run(1, ONE_OF_EACH, gpu_count=0)
    cpu_b = make_run(2, ONE_OF_EACH, gpu_count=0)
    cpu_b["environment"]["cpu"] = "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"
    with pytest.raises(EnvironmentMismatch, match="cpu_model"):
        compare_runs(cpu_a, cpu_b)
    gpu_a, gpu_b = make_run(1, ONE_OF_EACH), make_run(2, ONE_OF_EACH)
    gpu_b["environment"]["cpu"] = "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"
    assert compare_runs(gpu_a, gpu_b, CompareSettings())["environment"]["differs"] == []


# --------------------------------------------------------------------------- bad input


def _truncated(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _wrong_schema(path: Path) -> None:
    document = json.loads(path.read_text())
    document["schema_version"] = 99
    path.write_text(json.dumps(document))


def _not_a_run(path: Path) -> None:
    path.write_text(json.dumps([{"name": "x", "unit": "s", "value": 1}]))


def _damaged_case(path: Path) -> None:
    document = json.loads(path.read_text())
    del document["cases"][0]["metrics"]["round_s"]
    path.write_text(json.dumps(document))


def _binary(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")


@pytest.mark.parametrize("damage", [_truncated, _wrong_schema, _not_a_run, _damaged_case, _binary,
                                    lambda p: p.write_text("")])
@pytest.mark.parametrize("side", ["baseline", "current"])
def test_bad_files_give_one_line_and_exit_2(tmp_path, capsys, damage, side):
    base = write_run(tmp_path, make_run(1, ONE_OF_EACH))
    cur = write_run(tmp_path, make_run(2, ONE_OF_EACH))
    damage(base if side == "baseline" else cur)
    code, out, err = cli(capsys, "compare", base, cur)
    assert code == EXIT_USAGE
    assert out == ""
    assert len(err) == 1 and err[0].startswith("error: ") and str(base if side == "baseline" else cur) in err[0]


def test_missing_inputs_give_one_line_and_exit_2(tmp_path, capsys):
    results = tmp_path / "results"
    code, _, err = cli(capsys, "compare", "nightly", "--results-dir", results)
    assert code == EXIT_USAGE and len(err) == 1 and "baseline not found: 'nightly'" in err[0]
    base = write_run(tmp_path, make_run(1, ONE_OF_EACH))
    code, _, err = cli(capsys, "compare", base, "--results-dir", results)
    assert code == EXIT_USAGE and len(err) == 1 and "no run documents" in err[0]
    code, _, err = cli(capsys, "compare", base, tmp_path / "nope.json")
    assert code == EXIT_USAGE and len(err) == 1 and "not found" in err[0]
    code, _, err = cli(capsys, "compare", base, base, "--alpha", "5")
    assert code == EXIT_USAGE and len(err) == 1


# --------------------------------------------------------------------------- outputs


def test_current_defaults_to_the_newest_run(tmp_path, capsys):
    results = tmp_path / "results"
    base = write_run(results / "baselines", make_run(1, ONE_OF_EACH), "main.json")
    older = make_run(2, ONE_OF_EACH, run_index=10)
    newer = make_run(3, ONE_OF_EACH, run_index=20)
    write_run(results, newer)
    write_run(results, older)
    (results / "comparison.json").write_text("{}")  # not a run document: never picked
    code, out, _ = cli(capsys, "compare", "main", "--results-dir", results)
    assert code == EXIT_OK
    assert f"baseline: {make_run(1, ONE_OF_EACH)['run_id']} [main] ({base})" in out
    assert f"current:  {newer['run_id']}" in out


def test_json_and_github_benchmark_exports(tmp_path, capsys):
    base = write_run(tmp_path, make_run(1, EVERY_METHOD | {"suites": ["train", "cpu_predict"]}))
    cur = write_run(tmp_path, make_run(2, EVERY_METHOD | {"suites": ["train", "cpu_predict"]},
                                       speed={TRAIN_256: 0.88}))
    out_dir = tmp_path / "out"
    code, out, _ = cli(capsys, "compare", base, cur, "--method", "rounds", "--json", out_dir / "comparison.json",
                       "--github-benchmark", out_dir / "throughput.json",
                       "--github-benchmark-smaller", out_dir / "seconds.json")
    assert code == EXIT_REGRESSION

    def strict(path: Path):
        return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds {c}"))

    document = strict(out_dir / "comparison.json")
    assert document == load_comparison(out_dir / "comparison.json")
    assert document["kind"] == COMPARISON_KIND and document["schema_version"] == COMPARISON_SCHEMA_VERSION
    assert set(document) >= {"method", "baseline", "current", "environment", "summary", "rows"}
    assert document["summary"]["exit_code"] == EXIT_REGRESSION and document["summary"]["counts"]["regression"] == 1
    row = next(r for r in document["rows"] if r["case_id"] == TRAIN_256)
    assert row["verdict"] == "regression" and row["metric"] == "samples_per_second" and row["unit"] == "samples/s"
    assert 0.85 < row["ratio"] < 0.91 and row["p_worse"] < 0.05 and len(row["current"]["samples"]) == 5
    assert {r["verdict"] for r in document["rows"]} <= set(VERDICTS)

    throughput = strict(out_dir / "throughput.json")
    assert isinstance(throughput, list) and len(throughput) == 1
    assert set(throughput[0]) == {"name", "unit", "value", "range", "extra"}
    assert throughput[0]["unit"] == "samples/s" and throughput[0]["name"].startswith(TRAIN_256)
    assert isinstance(throughput[0]["value"], float) and "verdict: regression" in throughput[0]["extra"]
    assert GITHUB_RANGE.match(throughput[0]["range"]), throughput[0]["range"]
    seconds = strict(out_dir / "seconds.json")
    names = [entry["name"] for entry in seconds]
    assert all(entry["unit"] == "s" for entry in seconds)
    assert f"{RECOMPILE} steady_round_s" in names and f"{RECOMPILE} total_s" in names
    assert not any("/naive " in name for name in names)  # not_on_cpu: its timing is no CPU timing

    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("case "))
    assert lines[lines.index(header) + 1].index("samples_per_second") == header.index("metric")
    assert lines[-1].endswith("-> exit 1")


def test_saved_fixtures_still_compare_the_same():
    """tests/fixtures/compare/ holds a baseline, a current run and their comparison for the HTML report."""
    saved = load_comparison(FIXTURES / "comparison.json")
    from bench.store.results import load_run

    fresh = compare_runs(load_run(FIXTURES / "baseline.json"), load_run(FIXTURES / "current.json"))
    assert verdicts(fresh) == verdicts(saved)
    assert set(verdicts(saved).values()) == set(VERDICTS)


# --------------------------------------------------------------------------- promote


def test_promote_appends_to_a_history_then_compare_by_name(tmp_path, capsys):
    results = tmp_path / "results"
    run = write_run(results, make_run(1, ONE_OF_EACH))
    code, out, err = cli(capsys, "promote", run, "--name", "h100-tf2.21", "--results-dir", results)
    assert code == EXIT_OK and err == [] and "promoted" in out and "1 run(s); the between-run test needs 4 more" in out
    target = results / "baselines" / "h100-tf2.21" / run.name
    assert json.loads(target.read_text()) == json.loads(run.read_text())

    code, _, err = cli(capsys, "promote", run, "--name", "h100-tf2.21", "--results-dir", results)
    assert code == EXIT_USAGE and len(err) == 1 and "already exists" in err[0] and "--force" in err[0]
    code, out, _ = cli(capsys, "promote", run.stem, "--name", "h100-tf2.21", "--results-dir", results, "--force")
    assert code == EXIT_OK and out.startswith("replaced")
    for seed in range(2, 6):
        code, out, _ = cli(capsys, "promote", write_run(results, make_run(seed, ONE_OF_EACH)), "--name",
                           "h100-tf2.21", "--results-dir", results)
    assert code == EXIT_OK and "5 run(s); enough for the between-run test, the change-point mode 1 more" in out

    code, out, _ = cli(capsys, "compare", "h100-tf2.21", write_run(results, make_run(9, ONE_OF_EACH)),
                       "--results-dir", results)
    assert code == EXIT_OK and "history [h100-tf2.21] of 5 runs" in out
    code, out, _ = cli(capsys, "promote", run, "--name", "h100-tf2.21", "--results-dir", results, "--reset")
    assert code == EXIT_OK and "1 run(s)" in out and len(list(target.parent.glob("*.json"))) == 1


def test_a_single_run_baseline_moves_into_the_history(tmp_path, capsys):
    results = tmp_path / "results"
    old = make_run(1, ONE_OF_EACH)
    write_run(results / "baselines", old, "main.json")
    code, out, _ = cli(capsys, "compare", "main", write_run(results, make_run(2, ONE_OF_EACH)), "--results-dir", results)
    assert code == EXIT_OK and f"baseline: {old['run_id']} [main]" in out  # still usable as is
    code, out, err = cli(capsys, "promote", write_run(results, make_run(3, ONE_OF_EACH)), "--name", "main",
                         "--results-dir", results)
    assert code == EXIT_OK and "2 run(s)" in out and "moved the single-run baseline" in err[0]
    assert not (results / "baselines" / "main.json").exists()
    assert (results / "baselines" / "main" / f"{old['run_id']}.json").is_file()


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"complete": False}, "incomplete run"),
    ({"data_source": "synthetic"}, "synthetic data"),
    ({"simulated": True}, "simulated devices in 2 case(s)"),
])
def test_promote_refuses_doubtful_runs(tmp_path, capsys, kwargs, why):
    results = tmp_path / "results"
    run = write_run(results, make_run(1, ONE_OF_EACH, **kwargs))
    code, out, err = cli(capsys, "promote", run, "--name", "main", "--results-dir", results)
    assert code == EXIT_USAGE and out == "" and len(err) == 1
    assert err[0].startswith("error: refusing to promote") and why in err[0] and "--allow-doubtful" in err[0]
    assert not (results / "baselines" / "main").exists()
    code, out, err = cli(capsys, "promote", run, "--name", "main", "--results-dir", results, "--allow-doubtful")
    assert code == EXIT_OK and len(err) == 1 and err[0].startswith("warning: promoted despite") and why in err[0]


def test_promote_rejects_bad_names_and_missing_runs(tmp_path, capsys):
    run = write_run(tmp_path, make_run(1, ONE_OF_EACH))
    code, _, err = cli(capsys, "promote", run, "--name", "../main", "--results-dir", tmp_path)
    assert code == EXIT_USAGE and len(err) == 1 and "not usable" in err[0]
    code, _, err = cli(capsys, "promote", tmp_path / "missing.json", "--name", "main", "--results-dir", tmp_path)
    assert code == EXIT_USAGE and len(err) == 1 and "not found" in err[0]


# --------------------------------------------------------------------------- boundaries


def test_compare_never_imports_a_framework():
    code = ("import sys, bench.analyze.compare, bench.analyze.regression, bench.analyze.history, bench.analyze.ab, "
            "bench.store.baselines, bench.commands.compare, bench.commands.promote, bench.commands.export, bench.commands.ab, "
            "bench.report.compare_table, bench.report.export; "
            "loaded = sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules); "
            "print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unequal_round_counts_and_suites_without_a_metric():
    baseline = make_run(1, ONE_OF_EACH)
    current = make_run(2, ONE_OF_EACH, rounds=8, speed={TRAIN_256: 0.9})  # Welch's correction path
    assert verdicts(compare_runs(baseline, current))[TRAIN_256] == "regression"

    probe = {"suite": "probe", "case_id": "probe/tensorflow/batch=256", "params": {"backend": "tensorflow"},
              "status": "ok", "metrics": {}}
    baseline["cases"].append(probe)
    current["cases"].append(dict(probe, status="failed", reason="boom"))
    rows = {row["case_id"]: row for row in compare_runs(baseline, make_run(3, ONE_OF_EACH) | {
        "cases": make_run(3, ONE_OF_EACH)["cases"] + [probe]})["rows"]}
    assert rows["probe/tensorflow/batch=256"]["verdict"] == "no change"
    assert rows["probe/tensorflow/batch=256"]["metric"] is None
    failed = {row["case_id"]: row for row in compare_runs(baseline, current)["rows"]}["probe/tensorflow/batch=256"]
    assert failed["verdict"] == "failed" and failed["fails_build"]


def test_native_reference_cases_are_compared_on_throughput():
    from bench.analyze.compare import PRIMARY_METRIC

    assert PRIMARY_METRIC["native"] == PRIMARY_METRIC["train"] == "samples_per_second"


@pytest.mark.parametrize("command", ["compare", "promote", "export", "ab"])
def test_help_renders(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m bench " + command in capsys.readouterr().out
