"""Time to accuracy (the converge suite): config and cases, the epoch protocol with a fake clock, the
convergence rules, the compare metric, the warm-up that keeps compile time apart (real Keras, in
process), and one real run through ``python -m bench run`` on real MNIST (skipped without it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.analyze.compare import PRIMARY_METRIC
from bench.analyze.regression import METRICS, RegressionCheck, p_worse
from bench.cases import ConvergeCase, check_cases, converge_cases, suite_cases
from bench.config import ConfigError, ConvergeSettings, parse_config
from bench.measure.converge import EpochRecorder, case_outcome, seed_summary, summarize_seeds
from bench.measure.records import CaseClock, base_record, measure_into
from bench.report.terminal import case_headline
from bench.run.plan import group_layouts, plan_cases
from bench.store.results import load_run
from tests.conftest import run_cli


def _config(**converge):
    return parse_config({"name": "c", "suites": ["converge"], "converge": converge})


# --------------------------------------------------------------------------- config and cases


def test_defaults_and_the_product_of_the_axes():
    config = _config(global_batch=[256, 4096], precision=["float32", "mixed_bfloat16"],
                     lr_scaling=["none", "sqrt"], exclude=[{"global_batch": 256, "lr_scaling": "sqrt"}])
    s = config.converge
    assert (s.target_accuracy, s.max_epochs, s.seeds, s.stop_at_target, s.holdout) == (0.97, 30, "auto", True, 0)
    assert s.reference_batch == 256 and s.reference_accuracy is None
    cases = converge_cases(config)
    assert len(cases) == 2 * 2 * 2 - 2 and cases == suite_cases("converge", config)
    assert cases[0].case_id == "converge/tensorflow/gpus=1/batch=256/float32/jit=auto/lr=none"
    assert set(cases[0].params()) == {"backend", "gpus", "global_batch", "precision", "jit_compile", "lr_scaling"}
    assert config.to_dict()["converge"]["lr_scaling"] == ["none", "sqrt"]


def test_learning_rate_scaling_against_the_reference_batch():
    def lr(rule, batch):
        return ConvergeCase("jax", 1, batch, "float32", True, rule).learning_rate(1e-3, 256)

    assert lr("none", 4096) == 1e-3
    assert lr("linear", 4096) == pytest.approx(16e-3) and lr("linear", 128) == pytest.approx(0.5e-3)
    assert lr("sqrt", 4096) == pytest.approx(4e-3) and lr("sqrt", 256) == pytest.approx(1e-3)


@pytest.mark.parametrize("converge, data, message", [
    ({"lr_scaling": ["cubic"]}, {}, "converge.lr_scaling: unknown value 'cubic'"),
    ({"seeds": 0}, {}, 'seeds must be a positive integer or "auto"'),
    ({"seeds": "many"}, {}, 'seeds must be a positive integer or "auto"'),
    ({"target_accuracy": 1.5}, {}, "target_accuracy is a test accuracy in (0, 1]"),
    ({"holdout": 60_000}, {}, "leaves no MNIST training images"),
    ({"gpus": [2], "global_batch": [129]}, {}, "global_batch 129 is not divisible by gpus = 2"),
    ({"global_batch": [64], "exclude": [{"global_batch": 64}]}, {}, "[converge] every case is excluded"),
    ({"epochs": 3}, {}, "[converge] unknown key 'epochs'"),
    ({"exclude": [{"seed": 1}]}, {}, "[converge.exclude] unknown key 'seed'"),
    ({"reference_accuracy": 96.85}, {}, "reference_accuracy is a test accuracy"),
    ({}, {"source": "synthetic"}, "converge suite refuses [data] source = 'synthetic'"),
])
def test_bad_converge_settings_are_one_line(converge, data, message):
    with pytest.raises(ConfigError) as err:
        check_cases(parse_config({"name": "c", "suites": ["converge"], "converge": converge, "data": data}))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_synthetic_is_fine_when_the_suite_is_not_run():
    config = parse_config({"name": "t", "suites": ["train"], "data": {"source": "synthetic"}})
    assert isinstance(config.converge, ConvergeSettings)


def test_shipped_configs():
    from bench.config import load_config
    from tests.conftest import REPO

    gpu = load_config(REPO / "configs" / "converge.toml")
    cases = converge_cases(gpu)
    assert {c.global_batch for c in cases} == {256, 4096, 16384} and len(cases) == 10
    assert {c.precision for c in cases} == {"float32", "mixed_bfloat16"} and {c.backend for c in cases} == {"jax"}
    assert gpu.converge.seeds == "auto" and gpu.data.source == "mnist"
    tutorial = load_config(REPO / "configs" / "tutorial.toml")
    (case,) = converge_cases(tutorial)
    assert case.global_batch == 64 * case.gpus and case.backend == "tensorflow"
    s = tutorial.converge
    assert (s.max_epochs, s.stop_at_target, s.holdout, s.reference_accuracy) == (5, False, 5000, 0.9685)


def test_the_sweep_plans_one_worker_per_layout_with_the_case_replicas():
    config = _config(gpus=[1, 2], global_batch=[512])
    planned = plan_cases(config)
    assert [(p.suite, p.replicas) for p in planned] == [("converge", 1), ("converge", 2)]
    assert [g.label for g in group_layouts(planned)] == ["converge-tensorflow-1dev", "converge-tensorflow-2dev"]


# --------------------------------------------------------------------------- one seed, fake clock


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _drive(accuracies, target=0.97, stop=True, losses=None, train_s=2.0, eval_s=0.5):
    clock = FakeClock()
    scores = iter(accuracies)
    synced = []

    def evaluate():
        clock.now += eval_s
        return {"test_loss": 0.1, "test_accuracy": next(scores)}

    recorder = EpochRecorder(clock, evaluate, target, stop, sync=lambda: synced.append(clock.now))
    for i, _ in enumerate(accuracies):
        recorder.begin()
        clock.now += train_s
        loss = (losses or [0.3] * len(accuracies))[i]
        if recorder.end({"loss": loss, "accuracy": 0.9}):
            break
    return recorder, synced


def test_epochs_are_timed_without_evaluation_and_stop_at_the_target():
    recorder, synced = _drive([0.95, 0.965, 0.972, 0.98])
    assert len(recorder.epochs) == 3 and len(synced) == 3  # stopped at the first epoch at the target
    first, _, third = recorder.epochs
    assert first["train_s"] == pytest.approx(2.0) and first["eval_s"] == pytest.approx(0.5)
    assert third["cumulative_s"] == pytest.approx(6.0)  # train seconds only
    assert third["test_accuracy"] == 0.972 and third["epoch"] == 3
    summary = seed_summary(7, recorder.epochs, 0.97)
    assert summary["converged"] and summary["epochs_to_target"] == 3
    assert summary["seconds_to_target"] == pytest.approx(6.0)
    assert summary["wall_to_target_s"] == pytest.approx(7.5)  # with the evaluations
    assert summary["final_test_accuracy"] == 0.972 and summary["seed"] == 7


def test_without_stopping_every_epoch_runs_and_the_first_hit_counts():
    recorder, _ = _drive([0.95, 0.972, 0.968, 0.975, 0.98], stop=False)
    summary = seed_summary(0, recorder.epochs, 0.97)
    assert summary["epochs_run"] == 5 and summary["epochs_to_target"] == 2
    assert summary["final_test_accuracy"] == 0.98 and summary["best_test_accuracy"] == 0.98


def test_a_non_finite_loss_is_a_diverged_seed_not_a_crash():
    recorder, _ = _drive([0.5, 0.6, 0.7], losses=[2.0, math.nan, 1.0])
    assert recorder.diverged and len(recorder.epochs) == 2
    assert recorder.epochs[-1]["train_loss"] is None and recorder.epochs[-1]["test_accuracy"] is None
    summary = seed_summary(0, recorder.epochs, 0.97, recorder.diverged)
    assert not summary["converged"] and summary["diverged"] and summary["seconds_to_target"] is None


# --------------------------------------------------------------------------- a case over its seeds


def _seed(seed, epochs_to_target, epoch_s=2.0, reached=True, max_epochs=5):
    accuracies = [0.9 + 0.01 * e for e in range(1, max_epochs + 1)]
    if reached:
        accuracies[epochs_to_target - 1:] = [0.975] * (max_epochs - epochs_to_target + 1)
        accuracies = accuracies[:epochs_to_target]
    epochs = [{"epoch": i + 1, "train_s": epoch_s, "cumulative_s": epoch_s * (i + 1), "eval_s": 0.3,
               "train_loss": 0.2, "train_accuracy": 0.95, "test_loss": 0.1, "test_accuracy": a}
              for i, a in enumerate(accuracies)]
    return dict(seed_summary(seed, epochs, 0.97), fit_setup_s=0.1)


@pytest.mark.parametrize("reached, status", [
    ([True, True, False], None),  # 2 of 3
    ([True, False, False], "not_converged"),  # 1 of 3: fewer than half
    ([True, True, False, False], None),  # exactly half is not fewer than half
    ([True, True, False, False, False], "not_converged"),
])
def test_fewer_than_half_converging_is_not_converged(reached, status):
    seeds = [_seed(i, 3, reached=r) for i, r in enumerate(reached)]
    outcome = case_outcome(seeds, ConvergeSettings(max_epochs=5))
    assert (outcome[0] if outcome else None) == status
    if outcome:
        assert outcome[1].startswith(f"{sum(reached)} of {len(reached)} seeds reached test accuracy 0.97 within 5")


def test_case_metrics_keep_the_per_seed_samples():
    seeds = [_seed(0, 2), _seed(1, 3), _seed(2, 4, reached=False)]
    m = summarize_seeds(seeds)
    assert m["seconds_to_target"] == [4.0, 6.0]  # converged seeds only, seed order
    assert m["time_to_target_s"]["median"] == 5.0 and m["time_to_target_s"]["n"] == 2
    assert m["epochs_to_target"]["median"] == 2.5 and (m["seeds_run"], m["seeds_converged"]) == (3, 2)
    assert m["epoch_train_s"]["n"] == 2 + 3 + 5


def test_a_not_converged_outcome_becomes_the_record_status():
    clock = CaseClock()
    case = ConvergeCase("tensorflow", 1, 1024, "float32", False, "none")
    record = base_record("converge", case.case_id, case.params(), "mnist", clock)
    done = measure_into(record, clock, lambda: ("not_converged", "0 of 3 seeds reached test accuracy 0.97")).to_dict()
    assert done["status"] == "not_converged" and done["reason"].startswith("0 of 3")
    assert done["flags"]["synthetic_data"] is False and done["duration_s"] is not None
    ok = measure_into(base_record("converge", case.case_id, case.params(), "mnist", clock), clock,
                      lambda: None).to_dict()
    assert ok["status"] == "ok" and ok["reason"] is None


def test_terminal_headline():
    metrics = dict(summarize_seeds([_seed(0, 2), _seed(1, 3)]), target_accuracy=0.97, compile_s=1.5)
    line = case_headline({"suite": "converge", "status": "ok", "metrics": metrics})
    assert "5.00s to 0.97" in line and "2.5 epochs" in line and "2/2 seeds" in line


# --------------------------------------------------------------------------- compare


def test_time_to_target_is_compared_per_seed_like_round_timings():
    metric = METRICS[PRIMARY_METRIC["converge"]]
    assert (metric.name, metric.unit, metric.bigger_is_better, metric.per_round) == ("seconds_to_target", "s",
                                                                                      False, True)
    base = summarize_seeds([_seed(i, 3, epoch_s=2.0 + 0.02 * i) for i in range(5)])["seconds_to_target"]
    slower = summarize_seeds([_seed(i, 4, epoch_s=2.0 + 0.02 * i) for i in range(5)])["seconds_to_target"]
    check = RegressionCheck(0.05, 0.05, metric.bigger_is_better)
    assert check.fails(base, slower)  # one epoch more on every seed: 33 % slower, significant
    assert check.fails(base, base) is None and p_worse(base, slower, False) < 0.01


def _converge_run(seed, epochs_to_target, status="ok"):
    from tests.factories import make_run

    run = make_run(seed, {"name": "ci", "suites": ["train"], "train": {"global_batch": [256]}})
    case = ConvergeCase("tensorflow", 1, 4096, "float32", "auto", "sqrt")
    seeds = [_seed(i, epochs_to_target, epoch_s=2.0 + 0.02 * ((i + seed) % 5)) for i in range(5)]
    record = dict(run["cases"][0], suite="converge", case_id=case.case_id, params=case.params(), status=status,
                  metrics=dict(summarize_seeds(seeds), seeds=seeds, target_accuracy=0.97))
    return dict(run, cases=[record])


def test_compare_judges_converge_cases_on_their_seeds():
    from bench.analyze.compare import compare_runs

    (same,) = compare_runs(_converge_run(0, 3), _converge_run(1, 3))["rows"]
    assert same["metric"] == "seconds_to_target" and same["verdict"] == "no change"
    assert same["current"]["samples"] == _converge_run(1, 3)["cases"][0]["metrics"]["seconds_to_target"]
    (slower,) = compare_runs(_converge_run(0, 3), _converge_run(1, 4))["rows"]
    assert slower["verdict"] == "regression" and slower["fails_build"] and slower["ratio"] == pytest.approx(4 / 3,
                                                                                                          rel=0.02)
    (lost,) = compare_runs(_converge_run(0, 3), _converge_run(1, 3, status="not_converged"))["rows"]
    assert lost["verdict"] == "failed" and lost["fails_build"]


# --------------------------------------------------------------------------- real Keras, in process


def test_a_seed_on_the_warmed_up_model_trains_exactly_like_a_fresh_model():
    """Compile time is taken apart by one warm-up per case; each seed must still train as a fresh model."""
    import keras

    from bench.measure.converge import CaseModel
    from bench.measure.data import DataSpec, Mnist
    from bench.measure.model import build_model, compile_model

    rng = np.random.default_rng(0)
    x, x_test = rng.random((300, 784), dtype=np.float32), rng.random((150, 784), dtype=np.float32)
    y, y_test = rng.integers(0, 10, 300).astype(np.int32), rng.integers(0, 10, 150).astype(np.int32)
    data = Mnist(x, y, x_test, y_test, DataSpec("npz", None, None, "test", 0))
    case = ConvergeCase(keras.backend.backend(), 1, 128, "float32", False, "sqrt")
    clock = FakeClock()
    trainer = CaseModel(case, ConvergeSettings(), data, 2e-3, 1, clock)
    model = trainer.model
    assert model.optimizer.iterations.numpy() > 0  # the warm-up trained
    trainer.start(7)
    assert int(model.optimizer.iterations.numpy()) == 0
    model.fit(x, y, batch_size=128, epochs=2, shuffle=True, verbose=0)

    fresh = build_model(seed=7)
    compile_model(fresh, False)
    fresh.optimizer.learning_rate = 2e-3
    keras.utils.set_random_seed(7)
    fresh.fit(x, y, batch_size=128, epochs=2, shuffle=True, verbose=0)
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(2e-3)
    for a, b in zip(model.trainable_variables, fresh.trainable_variables, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- through the CLI

CI_RUN = """
name = "converge-ci"
suites = ["converge"]
[converge]
backend = ["tensorflow"]
gpus = [1]
global_batch = [1024]
precision = ["float32"]
jit_compile = ["auto"]
lr_scaling = ["sqrt"]
target_accuracy = 0.97
max_epochs = 4
seeds = 2
[measure]
case_timeout_s = 300
[data]
source = "mnist"
[devices]
simulate = true
"""


@pytest.mark.slow
def test_a_real_mnist_run_reaches_the_target_with_per_epoch_accuracy(real_mnist, write_config, tmp_path):
    proc = run_cli("run", "--config", str(write_config(CI_RUN)), "--results-dir", str(tmp_path / "r"), "--quiet",
                   timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = load_run(Path(proc.stdout.strip().splitlines()[-1]))
    assert run["data"]["source"] == "mnist" and not run["data"]["synthetic"]
    (case,) = run["cases"]
    assert case["status"] == "ok", case["reason"]
    assert case["data_source"] == "mnist" and case["devices"]["strategy"] == "MirroredStrategy"
    m = case["metrics"]
    assert m["learning_rate"] == pytest.approx(2e-3) and m["learning_rate_resolved"] == pytest.approx(2e-3)
    assert m["seeds_run"] == 2 and [s["seed"] for s in m["seeds"]] == [0, 1] and m["compile_s"] > 0
    for seed in m["seeds"]:
        accuracies = [e["test_accuracy"] for e in seed["epochs"]]
        assert 1 <= len(accuracies) <= 4 and all(0.9 < a < 1 for a in accuracies)  # every epoch evaluated
        assert all(e["train_s"] > 0 and e["eval_s"] > 0 for e in seed["epochs"])
        if seed["converged"]:
            assert accuracies[-1] >= 0.97 and max(accuracies[:-1], default=0) < 0.97  # stopped at the target
            assert seed["seconds_to_target"] == pytest.approx(sum(e["train_s"] for e in seed["epochs"]))
    assert m["seeds_converged"] >= 1 and max(s["best_test_accuracy"] for s in m["seeds"]) >= 0.97
    assert m["seconds_to_target"] == [s["seconds_to_target"] for s in m["seeds"] if s["converged"]]

    from bench.report.convergence import section

    report = section(run)
    assert report.curves_chart.startswith("<svg") and report.time_chart.startswith("<svg")
    assert report.table.loc[0, "converged"] == m["seeds_converged"]

    # The HTML report shows the section: both charts and the case's row.
    page = tmp_path / "report.html"
    proc = run_cli("report", proc.stdout.strip().splitlines()[-1], "-o", str(page))
    assert proc.returncode == 0, proc.stderr
    html = page.read_text()
    section_html = html[html.index('id="r1-converge"'):]
    section_html = section_html[:section_html.index("</section>")]
    assert 'id="r1-chart-converge-time"' in section_html and 'id="r1-chart-converge-curves"' in section_html
    assert case["case_id"] in section_html and f"{m['seeds_converged']} / 2" in section_html


def test_synthetic_data_is_refused_before_the_sweep(write_config, tmp_path):
    explicit = write_config(CI_RUN.replace('source = "mnist"', 'source = "synthetic"'), "explicit.toml")
    proc = run_cli("run", "--config", str(explicit), "--results-dir", str(tmp_path / "r1"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "converge suite refuses [data] source = 'synthetic'" in proc.stderr and "Traceback" not in proc.stderr

    # "auto" with no MNIST anywhere falls back to synthetic data, which this suite refuses too.
    offline = {"KERAS_HOME": str(tmp_path / "empty"), "https_proxy": "http://127.0.0.1:9",
               "HTTPS_PROXY": "http://127.0.0.1:9"}
    auto = write_config(CI_RUN.replace('source = "mnist"', 'source = "auto"\ndownload_timeout_s = 2'), "auto.toml")
    proc = run_cli("run", "--config", str(auto), "--results-dir", str(tmp_path / "r2"), env=offline)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr[-2000:]
    assert "the converge suite needs real MNIST" in proc.stderr and "download failed" in proc.stderr
    assert not list((tmp_path / "r2").glob("*.json*"))  # nothing started, nothing written
