"""The HTML report, built from the committed fixture runs and checked against numbers computed here,
directly from the JSON with pandas (not through ``bench.report``).

Fixtures (tests/fixtures/report/, written by generate.py next to them):
``cpu_only.json`` (simulated devices, synthetic data, no NVML), ``gpu_4x_h100.json`` (4x H100, MNIST, all four
training axes, NVML), ``failures.json`` (interrupted; failed, skipped and wrong cases; no NVML) and
``multi_backend.json`` (TensorFlow, JAX and torch on one CPU: train, native, cpu_predict). Beside them, a copy of
a real run: ``gpu_h200_jax.json`` (one H200, Keras 3.15.1 on JAX: train + native + cpu_predict, NVML with the
monitor's own overhead), from results/reference/20261126T012241Z-gpu-jax-eb7d50.json.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from bench.analyze.text import rate, rate_value
from bench.cli import main as cli_main
from bench.report.build import build_report
from bench.store.results import load_run
from bench.store.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "report"
GENERATED_NAMES = ("cpu_only", "gpu_4x_h100", "failures", "multi_backend")
REFERENCE = "gpu_h200_jax"  # a real GPU run, copied (not generated)
NAMES = (*GENERATED_NAMES, REFERENCE)
NATIVE_NAMES = ("multi_backend", REFERENCE)
GENERATED = "2025-11-22T12:00:00Z"
NOT_MEASURED = "not measured in this run"


# --------------------------------------------------------------------------- helpers


class Page(HTMLParser):
    """What the tests need from a report: per-section text and <svg> counts, findings (keyed ``key``, or
    ``backend/key`` for a backend's own), warnings, notes and the cells of every table with an id."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.open_sections: list[str] = []
        self.svg_count: dict[str, int] = {}
        self.section_text: dict[str, list[str]] = {}
        self.findings: dict[str, dict] = {}
        self.warnings: list[dict[str, str]] = []
        self.notes: dict[str, str] = {}
        self.tables: dict[str, dict[str, list]] = {}
        self._finding: str | None = None
        self._note: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.open_sections.append(attrs.get("id", ""))
            self.svg_count.setdefault(attrs.get("id", ""), 0)
            self.section_text.setdefault(attrs.get("id", ""), [])
        elif tag == "svg":
            for section in self.open_sections:
                self.svg_count[section] += 1
        elif tag == "li" and "data-finding" in attrs:
            backend = attrs.get("data-backend")
            self._finding = f"{backend}/{attrs['data-finding']}" if backend else attrs["data-finding"]
            self.findings[self._finding] = {"measured": attrs["data-measured"] == "true", "backend": backend,
                                            "values": json.loads(attrs["data-values"]), "text": ""}
        elif tag == "li" and "data-warning" in attrs:
            self.warnings.append({"kind": attrs["data-warning"], "run": attrs["data-run"]})
        elif tag == "div" and "data-note" in attrs:
            self._note = attrs["data-note"]
            self.notes[self._note] = ""
        elif tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = {"header": [], "rows": []}
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "section":
            self.open_sections.pop()
        elif tag == "li":
            self._finding = None
        elif tag == "div":
            self._note = None
        elif tag in ("td", "th") and self._table and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._table:
            if self._row:
                part = "header" if not self.tables[self._table]["header"] else "rows"
                if part == "header":
                    self.tables[self._table]["header"] = self._row
                else:
                    self.tables[self._table]["rows"].append(self._row)
            self._row = []
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        for section in self.open_sections:
            self.section_text[section].append(data)
        if self._finding:
            self.findings[self._finding]["text"] += data
        if self._note:
            self.notes[self._note] += data
        if self._cell is not None:
            self._cell.append(data)

    def text(self, section: str) -> str:
        return " ".join("".join(self.section_text[section]).split())

    def warning_kinds(self, run: str = "r1") -> set[str]:
        return {w["kind"] for w in self.warnings if w["run"] == run}

    def table(self, table_id: str) -> list[dict[str, str]]:
        """A table's body rows as {header: cell text}."""
        found = self.tables[table_id]
        return [dict(zip(found["header"], row, strict=True)) for row in found["rows"]]


def document(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def cases(doc: dict, suite: str) -> pd.DataFrame:
    rows = [c for c in doc["cases"] if c["suite"] == suite]
    return pd.json_normalize(rows) if rows else pd.DataFrame()


def ok_train(doc: dict) -> pd.DataFrame:
    train = cases(doc, "train")
    return train[train["status"] == "ok"].copy()


def quartiles(values: pd.Series) -> dict[str, float]:
    return {"median": values.median(), "min": values.min(), "max": values.max(),
            "q1": values.quantile(0.25), "q3": values.quantile(0.75), "n": len(values)}


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, tuple[str, Page]]:
    out = tmp_path_factory.mktemp("report")
    built = {}
    for name in NAMES:
        path = build_report([FIXTURES / f"{name}.json"], out / f"{name}.html", generated_utc=GENERATED)
        text = path.read_text(encoding="utf-8")
        built[name] = (text, Page(text))
    return built


# --------------------------------------------------------------------------- the fixtures themselves

RUN_FIELDS = {"kind", "schema_version", "run_id", "created_utc", "finished_utc", "complete", "tool", "config",
              "environment", "data", "cases"}
ENV_FIELDS = {"python", "platform", "machine", "cpu", "cpu_count", "hostname", "packages", "gpus", "driver_version",
              "cuda_driver_version", "nvml", "env_vars", "git_commit", "git_dirty", "config_sha256", "seed"}
CASE_FIELDS = {"suite", "case_id", "params", "status", "reason", "error", "data_source", "flags", "devices",
               "started_utc", "duration_s", "metrics"}
TRAIN_METRICS = {"per_replica_batch", "global_batch", "replicas", "jit_compile_resolved", "compile_s", "warmup_steps",
                 "steps_per_round", "samples_per_round", "round_s", "samples_per_second", "step_time_s",
                 "final_loss", "final_accuracy", "timing_check", "gpu_metrics"}
CPU_METRICS = {"train_device", "train_device_stand_in", "prepare_s", "first_predict_s", "steady_round_s", "steady_s",
               "total_s", "max_abs_diff", "tolerance", "predict_device", "variable_devices", "peak_rss_mib"}
NATIVE_METRICS = {"variant", "device", "implementation", "global_batch", "compile_s", "steps_per_round",
                  "samples_per_round", "round_s", "samples_per_second", "step_time_s", "final_loss", "gpu_metrics"}
PARAMS = {"train": {"backend", "gpus", "global_batch", "precision", "jit_compile"},
          "native": {"backend", "global_batch", "precision", "variant"},
          "cpu_predict": {"backend", "precision", "train_jit_compile", "predict_batch", "method"}}
STATUSES = {"train": {"ok", "skipped", "failed"}, "native": {"ok", "skipped", "failed"},
            "cpu_predict": {"ok", "skipped", "failed", "wrong", "not_on_cpu"}}


@pytest.mark.parametrize("name", NAMES)
def test_fixtures_follow_the_results_schema(name):
    doc = load_run(FIXTURES / f"{name}.json")
    assert RUN_FIELDS <= set(doc) and doc["kind"] == "keras-gpu-bench/run" and doc["schema_version"] == SCHEMA_VERSION
    assert ENV_FIELDS <= set(doc["environment"])
    assert doc["config"]["sha256"] == doc["environment"]["config_sha256"]
    for case in doc["cases"]:
        assert CASE_FIELDS <= set(case), case["case_id"]
        assert set(case["params"]) == PARAMS[case["suite"]]
        assert case["status"] in STATUSES[case["suite"]]
        # docs/results.md: an ok carries a reason only where training ran on the predict device itself.
        same_device = case["metrics"].get("train_device_is_predict_device") is True
        assert (case["reason"] is None) == (case["status"] == "ok" and not same_device), case["case_id"]
        if case["status"] == "ok" and case["suite"] in ("train", "native"):
            metrics = case["metrics"]
            assert (TRAIN_METRICS if case["suite"] == "train" else NATIVE_METRICS) <= set(metrics)
            per_round = [metrics["samples_per_round"] / r for r in metrics["round_s"]]
            assert metrics["samples_per_second"]["median"] == pytest.approx(pd.Series(per_round).median())
        if case["status"] in ("ok", "wrong", "not_on_cpu") and case["suite"] == "cpu_predict":
            metrics = case["metrics"]
            assert CPU_METRICS <= set(metrics)
            assert metrics["total_s"] == pytest.approx(
                metrics["prepare_s"] + metrics["first_predict_s"] + metrics["steady_s"]["median"])


def test_fixtures_are_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("report_fixture_generator", FIXTURES / "generate.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    for name in GENERATED_NAMES:
        fresh, committed = json.loads(generator.render(f"{name}.json")), document(name)
        # The config block is bench.config's parse of the fixture's TOML with every default filled in, so it
        # grows when a config field is added; an older file lacking it is still valid, so it is not compared.
        assert fresh.pop("config")["sha256"] == committed.pop("config")["sha256"]
        assert fresh == committed, f"{name}.json is stale: run python tests/fixtures/report/generate.py"


# --------------------------------------------------------------------------- headline numbers


def backends_of(doc: dict, suite: str | None = None) -> list[str]:
    """Backends in sweep order (each backend's findings are computed from its own cases only)."""
    return list(dict.fromkeys(c["params"]["backend"] for c in doc["cases"] if suite in (None, c["suite"])))


def page_answer(html: str, key: str) -> dict:
    """The first screen's answer ``key`` of run 1: its text and its numbers (``data-values``)."""
    match = re.search(rf"""<dd class="answer[^"]*" data-answer="{key}" data-values='([^']*)'>(.*?)</dd>""", html, re.S)
    assert match, key
    values = json.loads(match.group(1).replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&"))
    return {"values": values, "text": match.group(2)}


def for_backend(frame: pd.DataFrame, backend: str) -> pd.DataFrame:
    return frame[frame["params.backend"] == backend].copy()


@pytest.mark.parametrize("name", NAMES)
def test_best_configuration(pages, name):
    doc = document(name)
    for backend in backends_of(doc, "train"):
        ok = for_backend(ok_train(doc), backend)
        best = ok.loc[ok["metrics.samples_per_second.median"].idxmax()]
        finding = pages[name][1].findings[f"{backend}/best"]
        assert finding["values"]["case_id"] == best["case_id"]
        assert finding["values"]["samples_per_second"] == pytest.approx(best["metrics.samples_per_second.median"])
        # "Best" only when its interval over the runner-up excludes 1; one process each (these files): "fastest".
        lead = "Best configuration on" if finding["values"]["verdict"] == "best" else "Fastest measured on"
        assert f"{lead} {backend}:" in finding["text"] and finding["values"]["verdict"] != "best"
        assert rate(best["metrics.samples_per_second.median"]) in finding["text"]  # the page's one format
        # The first screen names the same case (one source of "best" on the page).
        assert page_answer(pages[name][0], "best")["values"]["backends"][backend]["case_id"] == best["case_id"]


def _expected_xla(ok: pd.DataFrame) -> dict | None:
    # XLA on = explicit true or "auto" resolved to true (the fixtures have no cell with both).
    ok["on"] = ok["metrics.jit_compile_resolved"].astype(bool)
    wide = ok.pivot_table(index=["params.gpus", "params.global_batch", "params.precision"], columns="on",
                          values="metrics.samples_per_second.median")
    if True not in wide or False not in wide:
        return None
    return quartiles((wide[True] / wide[False]).dropna())


def _expected_mixed(ok: pd.DataFrame) -> dict[str, dict]:
    # The headline compares each precision at its best configuration (input path, steps_per_execution,
    # jit_compile) per GPU count and batch: what a user who tunes both sides gains (issue #11).
    wide = ok.pivot_table(index=["params.gpus", "params.global_batch"], columns="params.precision",
                          values="metrics.samples_per_second.median", aggfunc="max")
    return {p: quartiles((wide[p] / wide["float32"]).dropna())
            for p in wide.columns if p.startswith("mixed") and "float32" in wide}


@pytest.mark.parametrize("name", NAMES)
def test_xla_and_mixed_precision_speedups(pages, name):
    page = pages[name][1]
    doc = document(name)
    for backend in backends_of(doc, "train"):
        xla = _expected_xla(for_backend(ok_train(doc), backend))
        found = page.findings[f"{backend}/xla"]
        if xla is None:
            assert not found["measured"] and NOT_MEASURED in found["text"]
        else:
            for key, value in xla.items():
                assert found["values"][key] == pytest.approx(value), key
            assert f"median {xla['median']:.2f}×" in found["text"] and f"on {backend}:" in found["text"]
        mixed = _expected_mixed(for_backend(ok_train(doc), backend))
        if not mixed:
            assert not page.findings[f"{backend}/mixed"]["measured"]
        for policy, expected in mixed.items():
            finding = page.findings[f"{backend}/mixed:{policy}"]
            for key, value in expected.items():
                assert finding["values"][key] == pytest.approx(value), (policy, key)
            assert f"on {backend}: median {expected['median']:.2f}×" in finding["text"]


@pytest.mark.parametrize("name", NAMES)
def test_scaling_efficiency(pages, name):
    doc = document(name)
    for backend in backends_of(doc, "train"):
        ok = for_backend(ok_train(doc), backend)
        keys = ["params.global_batch", "params.precision", "jit"]
        ok["jit"] = ok["params.jit_compile"].astype(str)
        t1 = ok[ok["params.gpus"] == 1].set_index(keys)["metrics.samples_per_second.median"]
        many = ok[ok["params.gpus"] > 1].copy()
        many["t1"] = [t1.get(tuple(k)) for k in many[keys].itertuples(index=False)]
        many = many.dropna(subset=["t1"])
        many["eff"] = many["metrics.samples_per_second.median"] / (many["params.gpus"] * many["t1"])
        expected = {f"batch={b}/gpus={n}": e
                    for (b, n), e in many.groupby(["params.global_batch", "params.gpus"])["eff"].median().items()}
        finding = pages[name][1].findings[f"{backend}/scaling"]
        if not expected:
            assert not finding["measured"]
            continue
        assert finding["values"].keys() == expected.keys()
        for key, value in expected.items():
            assert finding["values"][key] == pytest.approx(value)
            batch, gpus = re.match(r"batch=(\d+)/gpus=(\d+)", key).groups()
            assert f"{gpus} GPUs {value:.0%}" in finding["text"]


@pytest.mark.parametrize("name", NAMES)
def test_gpu_starvation(pages, name):
    doc = document(name)
    for backend in backends_of(doc, "train"):
        ok = for_backend(ok_train(doc), backend)
        finding = pages[name][1].findings[f"{backend}/starved"]
        measured = ok[ok["metrics.gpu_metrics.status"] == "ok"] if "metrics.gpu_metrics.status" in ok else ok.iloc[:0]
        if measured.empty:
            assert not finding["measured"] and NOT_MEASURED in finding["text"]
            continue
        util = measured["metrics.gpu_metrics.aggregate.utilization_pct_mean"]
        assert finding["values"]["measured"] == len(measured)
        assert finding["values"]["starved"] == int((util < 50).sum())
        assert finding["values"]["min_util_pct"] == pytest.approx(util.min())
        assert f"in {int((util < 50).sum())} of {len(measured)} measured cases" in finding["text"]


@pytest.mark.parametrize("name", NAMES)
def test_cpu_prediction_findings(pages, name):
    doc = document(name)
    page = pages[name][1]
    for backend in backends_of(doc, "cpu_predict"):
        cpu = for_backend(cases(doc, "cpu_predict"), backend)
        ok = cpu[(cpu["status"] == "ok") & (cpu["params.method"] != "naive")]
        totals = ok.groupby("params.method")["metrics.total_s"].median()
        cheapest = page.findings[f"{backend}/cpu_cheapest"]
        if totals.empty:
            assert cheapest["values"]["method"] is None
        else:
            assert cheapest["values"]["method"] == totals.idxmin()
            assert cheapest["values"]["total_s"] == pytest.approx(totals.min())
            assert f"workaround on {backend}: {totals.idxmin()} —" in cheapest["text"]

        naive = cpu[cpu["params.method"] == "naive"]
        found = page.findings[f"{backend}/cpu_naive"]
        assert found["values"]["failed"] == int((naive["status"] == "failed").sum())
        # keras.device is the scope every backend documents; the backend is named.
        assert f'The naive path on {backend} (predict under keras.device("cpu:0")' in found["text"]
        assert "tf.device('/CPU:0') after" not in found["text"]
        if (naive["status"] == "failed").any():
            assert f"failed in {int((naive['status'] == 'failed').sum())} of {len(naive)} settings" in found["text"]
        if (naive["status"] == "ok").all():
            assert ("worked in its one setting" if len(naive) == 1 else f"worked in all {len(naive)} settings") \
                in found["text"]

        strategy = cpu[cpu["params.method"] == "strategy"]
        off_cpu = strategy[strategy["status"] == "not_on_cpu"]
        finding = page.findings[f"{backend}/cpu_strategy"]
        if not off_cpu.empty:
            device = off_cpu["metrics.predict_device"].iloc[0]
            assert ("building under a tf.distribute strategy does not move prediction to the CPU: its MatMuls ran on "
                    f"{device}") in finding["text"]
        elif backend != "tensorflow" and (strategy["status"] == "skipped").all():
            # Not a failure: the method does not exist off TensorFlow. Said quietly, not as a result.
            assert not finding["measured"] and f"does not apply on {backend}" in finding["text"]
    if not any(c["status"] == "not_on_cpu" and c["params"]["method"] == "strategy" for c in doc["cases"]):
        assert "does not move prediction" not in page.text("r1-findings")


# --------------------------------------------------------------------------- Keras vs native, the monitor's cost


def expected_native_table(doc: dict) -> pd.DataFrame:
    """From the JSON alone: each one-GPU ok Keras case beside the native step of its backend and the JAX
    epoch_scan at its batch and precision; ratios = Keras median / native median."""
    keras = ok_train(doc)
    keras = keras[keras["params.gpus"] == 1]
    native = cases(doc, "native")
    native = native[native["status"] == "ok"]
    median = "metrics.samples_per_second.median"
    util = "metrics.gpu_metrics.aggregate.utilization_pct_mean"
    step = native[native["params.variant"] == "step"].set_index(["params.backend", "params.global_batch",
                                                                  "params.precision"])
    ceiling = native[(native["params.variant"] == "epoch_scan") & (native["params.backend"] == "jax")]
    ceiling = ceiling.set_index(["params.global_batch", "params.precision"])
    rows = []
    for _, case in keras.iterrows():
        key = (case["params.backend"], case["params.global_batch"], case["params.precision"])
        row = {"case_id": case["case_id"], "backend": key[0], "batch": key[1], "precision": key[2],
               "xla": "on" if case["metrics.jit_compile_resolved"] else "off", "keras": case[median],
               "keras_q1": case["metrics.samples_per_second.q1"], "keras_q3": case["metrics.samples_per_second.q3"],
               "keras_util": case.get(util), "recorded_ratio": case.get("metrics.native_ratio")}
        if key in step.index:
            row.update(native=step.loc[key, median], native_util=step.loc[key].get(util))
            row["ratio"] = row["keras"] / row["native"]
        if key[1:] in ceiling.index:
            row.update(ceiling=ceiling.loc[key[1:], median], ceiling_util=ceiling.loc[key[1:]].get(util))
            row["ratio_ceiling"] = row["keras"] / row["ceiling"]
        rows.append(row)
    return pd.DataFrame(rows)


def _num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _pct2(fraction: float) -> str:
    value = fraction * 100
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2g}"


@pytest.mark.parametrize("name", NATIVE_NAMES)
def test_native_table_numbers_are_the_files_numbers(pages, name):
    doc = document(name)
    page = pages[name][1]
    expected = expected_native_table(doc)
    shown = page.table("r1-native-table")
    assert len(shown) == len(expected)
    by_cell = {(r["backend"], r["global batch"], r["precision"], r["jit_compile"]): r for r in shown}
    for row in expected.itertuples():
        # jit_compile is labelled with what it compiles with on the backend: XLA, or torch.compile on torch.
        jit = "torch.compile" if row.backend == "torch" else "XLA"
        cell = by_cell[(row.backend, _num(row.batch), row.precision, f"{jit} {row.xla}")]
        assert cell["Keras samples/s"] == rate_value(row.keras)
        assert (cell["Keras q1"], cell["Keras q3"]) == (rate_value(row.keras_q1), rate_value(row.keras_q3))
        assert cell["native step samples/s"] == rate_value(row.native)
        assert cell["Keras / native"] == f"{row.ratio * 100:.3g}%"
        assert cell["epoch_scan samples/s"] == rate_value(row.ceiling)
        assert cell["Keras / epoch_scan"] == f"{row.ratio_ceiling * 100:.3g}%"
        # The ratio the harness attached when it finalised the run is the same number.
        assert row.recorded_ratio == pytest.approx(row.ratio)
        if name == REFERENCE:  # NVML: utilisation of both sides
            assert cell["GPU util % Keras"] == _num(row.keras_util, 1)
            assert (cell["GPU util % native"], cell["GPU util % epoch_scan"]) == (
                _num(row.native_util, 1), _num(row.ceiling_util, 1))
        else:
            assert "GPU util % Keras" not in cell  # no NVML: no columns of dashes
    for backend, group in expected.groupby("backend", sort=False):
        finding = page.findings[f"{backend}/native"]
        jit = "torch.compile" if backend == "torch" else "XLA"  # what jit_compile=True means there
        on = group[group["xla"] == "on"]
        assert finding["measured"] and finding["values"]["jit_on"]["median"] == pytest.approx(on["ratio"].median())
        assert finding["values"]["jit_on"]["min"] == pytest.approx(on["ratio"].min())
        assert finding["values"]["jit_on"]["max"] == pytest.approx(on["ratio"].max())
        assert finding["values"]["ceiling"]["max"] == pytest.approx(on["ratio_ceiling"].max())
        text = finding["text"]
        assert f"Keras fit on {backend} reached {_pct2(on['ratio'].min())}–{_pct2(on['ratio'].max())} %" in text
        assert f"median {_pct2(on['ratio'].median())} %" in text
        off = group[group["xla"] == "off"]
        if len(off) == 1:
            assert f"{_pct2(off['ratio'].iloc[0])} % with {jit} off" in text
    assert page.svg_count["r1-native"] == 1 and NOT_MEASURED not in page.text("r1-native").lower()


def test_native_headline_for_the_gpu_reference_run(pages):
    doc = document(REFERENCE)
    finding = pages[REFERENCE][1].findings["jax/native"]["text"]
    expected = expected_native_table(doc)
    on = expected[expected["xla"] == "on"]
    native = cases(doc, "native")
    step = native[native["params.variant"] == "step"]["metrics.gpu_metrics.aggregate.utilization_pct_mean"]
    assert "of a hand-written jax.jit step's samples/s with XLA on" in finding
    assert f"batch {on['batch'].min()}–{on['batch'].max()}" in finding
    assert (f"the GPU was busy {on['keras_util'].min():.0f}–{on['keras_util'].max():.0f} % with XLA on" in finding)
    assert f"vs {step.min():.0f}–{step.max():.0f} % for the native step" in finding


def test_keras_faster_than_native_is_said_the_right_way_round(tmp_path):
    # On a small CPU the native step can lose to Keras (seen on a 2-core box); the sentence must not say
    # "the native loop was 0.4× faster".
    doc = document("multi_backend")
    for case in doc["cases"]:
        if case["suite"] == "native" and case["params"]["backend"] == "tensorflow":
            case["metrics"]["samples_per_second"]["median"] /= 4
    source = tmp_path / "run.json"
    source.write_text(json.dumps(doc))
    page = Page(build_report([source], tmp_path / "index.html", generated_utc=GENERATED).read_text())
    text = page.findings["tensorflow/native"]["text"]
    assert "Keras was" in text and "faster than the native loop" in text and "native loop was" not in text
    assert all(float(row["Keras / native"].rstrip("%")) > 100
               for row in page.table("r1-native-table") if row["backend"] == "tensorflow")


@pytest.mark.parametrize("name", ("cpu_only", "gpu_4x_h100", "failures"))
def test_native_section_says_not_measured_on_runs_without_it(pages, name):
    page = pages[name][1]
    assert NOT_MEASURED in page.text("r1-native").lower() and "native suite did not run" in page.text("r1-native")
    assert page.svg_count["r1-native"] == 0 and "r1-native-table" not in page.tables
    assert not page.findings["native"]["measured"] and NOT_MEASURED in page.findings["native"]["text"]


def expected_overhead(doc: dict) -> pd.DataFrame:
    timed = pd.concat([cases(doc, "train"), cases(doc, "native")], ignore_index=True)
    timed = timed[(timed["status"] == "ok") & (timed["metrics.gpu_metrics.status"] == "ok")]
    return timed.assign(
        overhead=timed.get("metrics.monitor_overhead.overhead_pct"),
        noise=100 * timed[["metrics.samples_per_second.cv",
                           "metrics.monitor_overhead.off_samples_per_second.cv"]].max(axis=1),
    )


def test_monitor_overhead_column_and_headline(pages):
    doc = document(REFERENCE)
    page = pages[REFERENCE][1]
    expected = expected_overhead(doc)
    shown = {row["case"]: row for row in page.table("r1-nvml-table")}
    assert set(shown) == set(expected["case_id"])  # training and native cases with NVML data
    for row in expected.itertuples():
        cell = shown[row.case_id]
        assert cell["monitor overhead %"] == f"{row.overhead:+.2f}"
        assert cell["rounds CV %"] == f"{100 * doc_cv(doc, row.case_id):.2f}"
        within = abs(row.overhead) <= row.noise
        assert (cell["overhead vs CV"] == "within noise") == within, row.case_id
    finding = page.findings["monitor_overhead"]
    overhead = expected["overhead"]
    assert finding["measured"]
    assert finding["values"]["median"] == pytest.approx(overhead.median())
    assert finding["values"]["min"] == pytest.approx(overhead.min())
    assert finding["values"]["within_noise"] == int((overhead.abs() <= expected["noise"]).sum())
    steady = expected[expected["noise"] < 1.0]
    assert finding["values"]["steady"] == len(steady)
    assert finding["values"]["steady_max_abs_pct"] == pytest.approx(steady["overhead"].abs().max())
    assert f"median {overhead.median():+.2f} %" in finding["text"]
    assert "it is noise, not a measurable cost" in finding["text"] and "≤ 1 % target" in finding["text"]
    # The same sentence heads the NVML section, next to the per-case column.
    assert finding["text"] in page.text("r1-nvml")


def doc_cv(doc: dict, case_id: str) -> float:
    case = next(c for c in doc["cases"] if c["case_id"] == case_id)
    return case["metrics"]["samples_per_second"]["cv"]


def test_monitor_overhead_not_measured_without_it(pages):
    page = pages["gpu_4x_h100"][1]  # NVML, but measure_overhead was off
    assert {row["monitor overhead %"] for row in page.table("r1-nvml-table")} == {"—"}
    assert not page.findings["monitor_overhead"]["measured"]
    assert NOT_MEASURED in page.findings["monitor_overhead"]["text"]


def test_findings_are_grouped_by_backend(pages):
    doc = document("multi_backend")
    text, page = pages["multi_backend"]
    names = backends_of(doc)
    assert names == ["tensorflow", "jax", "torch"]
    findings = page.text("r1-findings")
    positions = [findings.index(f"Backend: {b}") for b in names]
    assert positions == sorted(positions)
    for backend in names:
        for key in ("best", "xla", "native", "cpu_cheapest", "cpu_naive", "cpu_strategy"):
            finding = page.findings[f"{backend}/{key}"]
            assert finding["backend"] == backend and backend in finding["text"], (backend, key)
    # The cross-backend line: each backend's best median, fastest first.
    ok = ok_train(doc)
    best = ok.groupby("params.backend")["metrics.samples_per_second.median"].max()
    across = page.findings["backends"]
    assert across["values"] == pytest.approx(best.to_dict())
    assert f"Fastest backend at its best configuration: {best.idxmax()}" in across["text"]
    # The ceiling is JAX's epoch_scan for every backend.
    table = page.table("r1-native-table")
    assert {row["backend"] for row in table} == set(names)
    assert all(row["epoch_scan samples/s"] != "—" for row in table)
    # Charts pool no backends: panels and heat-map rows are named by backend.
    train_svg = text[text.index('id="r1-train"'):text.index('id="r1-native"')]
    for backend in names:
        assert f"{backend} · 1 GPU" in train_svg
    # strategy off TensorFlow is listed quietly, not warned about; TensorFlow's not_on_cpu still is.
    skipped = [c["case_id"] for c in doc["cases"] if c["status"] == "skipped"]
    assert skipped and all(c.split("/")[1] != "tensorflow" and c.endswith("/strategy") for c in skipped)
    assert "skipped" not in page.warning_kinds() and "not_on_cpu" in page.warning_kinds()
    for case_id in skipped:
        assert case_id in page.notes["not_applicable"]
    assert "n/a" in text[text.index('id="r1-chart-cpu-predict"'):]
    # torch trained on the CPU it predicted on: the ok carries the caveat wherever it is summarised.
    assert "same_device" in page.warning_kinds() and "torch" in page.notes["same_device"]
    assert "not a move off the training device" in page.findings["torch/cpu_naive"]["text"]
    assert "not a move off the training device" not in page.findings["jax/cpu_naive"]["text"]


def test_reference_run_names_its_backend_and_does_not_shout_about_strategy(pages):
    page = pages[REFERENCE][1]
    assert "Backend: jax" in page.text("r1-findings")
    assert page.findings["jax/cpu_naive"]["text"].startswith(
        'The naive path on jax (predict under keras.device("cpu:0") after training on the GPU) worked in all 2')
    warned = " ".join(page.text("warnings").split())
    assert "/strategy" not in warned
    assert "Skipped cases: 7 case(s)" in warned  # the 2-GPU cases on a 1-GPU machine still are


# --------------------------------------------------------------------------- warnings


def expected_warnings(doc: dict) -> set[str]:
    threshold = doc["config"]["measure"]["cv_threshold"]
    found = set()
    if doc["complete"] is False:
        found.add("incomplete")
    if doc["data"]["synthetic"] or any(c["data_source"] == "synthetic" or c["flags"].get("synthetic_data")
                                       for c in doc["cases"]):
        found.add("synthetic_data")
    for case in doc["cases"]:
        metrics, flags = case["metrics"], case["flags"]
        if case["suite"] == "train" and (flags.get("simulated") or case["devices"].get("simulated")):
            found.add("simulated_devices")
        if case["suite"] == "cpu_predict" and (flags.get("stand_in_device") or metrics.get("train_device_stand_in")):
            found.add("stand_in_device")
        cv = (metrics.get("samples_per_second") or metrics.get("steady_s") or {}).get("cv")
        if flags.get("unstable") or (cv is not None and cv > threshold):
            found.add("unstable")
        gpu = metrics.get("gpu_metrics") or {}
        if flags.get("gpu_metrics_unreliable") or (gpu.get("status") == "ok" and gpu.get("reliable") is False):
            found.add("gpu_metrics_unreliable")
        if case["status"] == "ok" and metrics.get("train_device_is_predict_device") is True:
            found.add("same_device")
        # strategy off TensorFlow does not exist: listed in its section, not warned about.
        not_applicable = (case["suite"] == "cpu_predict" and case["params"]["method"] == "strategy"
                          and case["params"]["backend"] != "tensorflow" and case["status"] == "skipped")
        if case["status"] != "ok" and not not_applicable:
            found.add("known_limitation" if known_limitation(case) else case["status"])
    return found


def known_limitation(case: dict) -> bool:
    """The registry's conditions, read off the JSON: XLA with 2+ replicas under MirroredStrategy
    (keras-team/keras#19005) and naive CPU prediction after GPU training on TensorFlow (#20308), both the
    cross-device resource error; torch clone/saved_model under keras.device("cpu:0")."""
    p, text = case["params"], f"{(case.get('error') or {}).get('message') or ''} {case.get('reason') or ''}"
    cross = "Trying to access resource" in text and "located in device" in text
    if case["status"] != "failed":
        return False
    return bool(
        (case["suite"] == "train" and p.get("backend") == "tensorflow" and p.get("jit_compile") is True
         and p.get("gpus", 1) >= 2 and cross)
        or (case["suite"] == "cpu_predict" and p.get("backend") == "tensorflow" and p.get("method") == "naive" and cross)
        or (case["suite"] == "cpu_predict" and p.get("backend") == "torch" and p.get("method") in ("clone", "saved_model")
            and "can require gradients" in text))


@pytest.mark.parametrize("name", NAMES)
def test_warnings_appear_exactly_when_their_condition_holds(pages, name):
    text, page = pages[name]
    expected = expected_warnings(document(name))
    assert page.warning_kinds() == expected
    # The box is at the top of the page, before any run section.
    assert text.index('id="warnings"') < text.index('id="r1"')


def test_the_fixtures_exercise_every_warning(pages):
    every = {"incomplete", "synthetic_data", "simulated_devices", "stand_in_device", "same_device", "unstable",
             "gpu_metrics_unreliable", "failed", "known_limitation", "skipped", "wrong", "not_on_cpu"}
    assert set().union(*(pages[n][1].warning_kinds() for n in NAMES)) == every


# --------------------------------------------------------------------------- charts and empty sections

# Charts per section: r1-train = throughput + scaling (needs 1 and N GPUs) + speedup heat-map (needs pairs);
# r1-native = Keras vs native (needs native cases).
CHARTS = {
    "gpu_4x_h100": {"r1-train": 3, "r1-time-goes": 1, "r1-native": 0, "r1-nvml": 1, "r1-cpu-predict": 1,
                    "comparison": 0},
    "cpu_only": {"r1-train": 3, "r1-time-goes": 1, "r1-native": 0, "r1-nvml": 0, "r1-cpu-predict": 1, "comparison": 0},
    "failures": {"r1-train": 2, "r1-time-goes": 1, "r1-native": 0, "r1-nvml": 0, "r1-cpu-predict": 1, "comparison": 0},
    "multi_backend": {"r1-train": 2, "r1-time-goes": 1, "r1-native": 1, "r1-nvml": 0, "r1-cpu-predict": 1,
                      "comparison": 0},
    REFERENCE: {"r1-train": 2, "r1-time-goes": 1, "r1-native": 1, "r1-nvml": 1, "r1-cpu-predict": 1, "comparison": 0},
}
SECTION_NOT_MEASURED = "Not measured in this run:"  # a whole section or chart without data (findings say it inline)


@pytest.mark.parametrize("name", NAMES)
def test_every_chart_is_present_and_missing_ones_say_so(pages, name):
    text, page = pages[name]
    for section, count in CHARTS[name].items():
        assert page.svg_count[section] == count, section
    assert page.svg_count["r1"] == sum(v for k, v in CHARTS[name].items() if k.startswith("r1-"))
    for section in ("r1-nvml", "r1-native", "comparison"):
        assert (SECTION_NOT_MEASURED in page.text(section)) == (page.svg_count[section] == 0), section
    if name in ("failures", "multi_backend", REFERENCE):
        assert NOT_MEASURED in page.text("r1-train").lower()  # no scaling: no finished N-GPU case
    assert text.count("<svg") == page.svg_count["r1"]


@pytest.mark.parametrize("keep", ["train", "cpu_predict", "none", "all failed"])
def test_sections_without_data_render_not_measured(tmp_path, keep):
    doc = document("cpu_only")
    if keep == "all failed":
        for case in doc["cases"]:
            case.update(status="failed", reason="RuntimeError: boom", metrics={})
    else:
        doc["cases"] = [c for c in doc["cases"] if c["suite"] == keep]
    source = tmp_path / "run.json"
    source.write_text(json.dumps(doc))
    page = Page(build_report([source], tmp_path / "index.html", generated_utc=GENERATED).read_text())
    if keep != "train":
        for section in ("r1-train", "r1-nvml"):
            assert NOT_MEASURED in page.text(section).lower() and page.svg_count[section] == 0
    if keep != "cpu_predict":
        assert NOT_MEASURED in page.text("r1-cpu-predict").lower() and page.svg_count["r1-cpu-predict"] == 0
    assert NOT_MEASURED in page.text("r1-native").lower() and page.svg_count["r1-native"] == 0
    assert NOT_MEASURED in page.text("comparison").lower()
    if keep == "all failed":
        assert page.svg_count["r1"] == 0 and "failed" in page.warning_kinds()
        assert all(not f["measured"] for k, f in page.findings.items() if not k.split("/")[-1].startswith("cpu_"))


# --------------------------------------------------------------------------- page properties


@pytest.mark.parametrize("name", NAMES)
def test_page_is_self_contained(pages, name):
    text, page = pages[name]
    # Nothing loads from outside the file; the only outside links are <a> to a known limitation's upstream issue.
    assert not re.search(r"""\bsrc\s*=\s*["'](?!#|data:)""", text)
    hrefs = re.findall(r"""<(\w+)[^>]*\bhref\s*=\s*["']([^"']*)""", text)
    assert all(url.startswith(("#", "data:")) or (tag == "a" and url.startswith("https://github.com/keras-team/"))
               for tag, url in hrefs), hrefs
    assert "<link rel=\"stylesheet\"" not in text and "<script src" not in text and "@import" not in text
    assert "Content-Security-Policy" in text and "@media print" in text
    # Header: where and how the numbers were made.
    doc = document(name)
    header = page.text("r1-summary")
    assert (doc["environment"]["git_commit"] or "unknown")[:12] in header
    assert doc["config"]["name"] in header and doc["config"]["sha256"][:12] in header
    packages = doc["environment"]["packages"]
    assert f"Keras {packages['keras']}" in header
    for backend in backends_of(doc):
        assert f"{backend} ({backend} {packages[backend]}" in header
    for gpu in doc["environment"]["gpus"][:1]:
        assert f"{len(doc['environment']['gpus'])} × {gpu['name']}" in header
    assert '<table id="r1-train-cases" class="sortable cases">' in text
    shown = [row["case"] for row in page.table("r1-train-cases")]
    assert shown == [c["case_id"] for c in doc["cases"] if c["suite"] == "train"]


def test_text_from_results_is_escaped(tmp_path):
    doc = document("failures")
    doc["cases"][2]["reason"] = "<script>alert(1)</script> & <b>bold</b>"
    source = tmp_path / "run.json"
    source.write_text(json.dumps(doc))
    text = build_report([source], tmp_path / "index.html", generated_utc=GENERATED).read_text()
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_same_input_gives_the_same_page(tmp_path):
    first = build_report([FIXTURES / "failures.json"], tmp_path / "a.html", generated_utc=GENERATED).read_text()
    second = build_report([FIXTURES / "failures.json"], tmp_path / "b.html", generated_utc=GENERATED).read_text()
    assert first == second


def test_several_runs_share_one_page(tmp_path):
    names = ("cpu_only", "failures")
    paths = [FIXTURES / f"{n}.json" for n in names]
    page = Page(build_report(paths, tmp_path / "index.html", generated_utc=GENERATED).read_text())
    for index, name in enumerate(names, start=1):
        assert page.svg_count[f"r{index}"] == sum(v for k, v in CHARTS[name].items() if k.startswith("r1-"))
        assert page.warning_kinds(f"r{index}") == expected_warnings(document(name))
        assert document(name)["run_id"] in page.text("sources")
    # Side by side: cases matched on their parameters without each run's own settings (a parameter with
    # one value within every run); run 1 is the reference.
    docs = [document(n) for n in names]
    expected = []
    for suite, metric in (("train", "samples_per_second"), ("native", "samples_per_second"), ("cpu_predict", "total_s")):
        suite_cases = [[c for c in doc["cases"] if c["suite"] == suite] for doc in docs]
        names_ = {k for cs in suite_cases for c in cs for k in c["params"]}
        drop = {k for k in names_ if all(len({json.dumps(c["params"][k]) for c in cs}) <= 1 for cs in suite_cases if cs)}
        keyed = [{tuple((k, json.dumps(v)) for k, v in c["params"].items() if k not in drop): c for c in cs}
                 for cs in suite_cases]
        for key, first in keyed[0].items():
            if key in keyed[1]:
                second = keyed[1][key]
                ratio = None
                if first["status"] == second["status"] == "ok":
                    a, b = first["metrics"][metric], second["metrics"][metric]
                    # A speed ratio: samples/s of run 2 over run 1, or run 1's seconds over run 2's.
                    ratio = b["median"] / a["median"] if metric != "total_s" else a / b
                expected.append((suite, first["status"], second["status"], ratio))
    shown = page.table("side-by-side-table")
    assert len(shown) == len(expected) >= 2 and page.svg_count["side-by-side"] == 1
    assert [r["suite"] for r in shown] == [e[0] for e in expected]
    for row, (_, first, second, ratio) in zip(shown, expected, strict=True):
        assert (row["run 1 (tensorflow)"] == first) == (first != "ok")
        assert (row["run 2 (tensorflow)"] == second) == (second != "ok")
        assert row["speed, run 2 ÷ run 1"] == ("—" if ratio is None else f"{ratio:.3g}×")


@pytest.mark.parametrize("name", NAMES)
def test_side_by_side_needs_two_runs(pages, name):
    page = pages[name][1]
    assert "side-by-side-table" not in page.tables and page.svg_count["side-by-side"] == 0
    assert f"{NOT_MEASURED}: side by side needs two or more result files" in page.text("side-by-side").lower()


def test_best_configuration_against_its_runner_up_says_how_it_was_judged(tmp_path):
    # The reference run's top two (16384 mixed_bfloat16 and float32) each ran in one process: the ratio is
    # given and no interval is claimed. Slow the runner-up by 10 % and the ratio follows, still unjudged.
    doc = document(REFERENCE)
    ok = sorted((c for c in doc["cases"] if c["suite"] == "train" and c["status"] == "ok"),
                key=lambda c: -c["metrics"]["samples_per_second"]["median"])
    runner_up = ok[1]["metrics"]
    runner_up["round_s"] = [r * 1.1 for r in runner_up["round_s"]]
    for stat in ("median", "q1", "q3", "min", "max", "mean"):
        runner_up["samples_per_second"][stat] /= 1.1
    source = tmp_path / "run.json"
    source.write_text(json.dumps(doc))
    html = build_report([source], tmp_path / "index.html", generated_utc=GENERATED).read_text()
    finding = Page(html).findings["jax/best"]
    ranked = sorted(ok, key=lambda c: -c["metrics"]["samples_per_second"]["median"])  # a new runner-up may lead
    ratio = ranked[0]["metrics"]["samples_per_second"]["median"] / ranked[1]["metrics"]["samples_per_second"]["median"]
    assert finding["values"]["case_id"] == ok[0]["case_id"] == ranked[0]["case_id"]
    assert finding["values"]["runner_up_case_id"] == ranked[1]["case_id"]
    assert finding["values"]["runner_up_ratio"] == pytest.approx(ratio) and finding["values"]["ci_low"] is None
    assert f"{ratio:.2f}×, one process each: not told apart" in finding["text"] and "tied" not in finding["text"]
    assert finding["text"].startswith("Fastest measured on jax: 1 GPU, global batch 16384")
    assert f"{ratio:.2f}× the runner-up, one process each" in page_answer(html, "best")["text"]


def test_unfinished_case_log_is_shown_as_incomplete(tmp_path):
    doc = document("gpu_4x_h100")
    header = {k: v for k, v in doc.items() if k not in ("cases", "finished_utc", "complete")}
    log = tmp_path / f"{doc['run_id']}.partial.jsonl"
    lines = [json.dumps({"header": header})] + [json.dumps({"case": c}) for c in doc["cases"][:5]]
    log.write_text("\n".join(lines) + "\n" + '{"case": {"trunc')  # a torn last line, as after kill -9
    page = Page(build_report([log], tmp_path / "index.html", generated_utc=GENERATED).read_text())
    assert "incomplete" in page.warning_kinds()
    assert "5 finished cases" in page.text("warnings")


# --------------------------------------------------------------------------- the command line


def test_cli_defaults_to_the_newest_result_file(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "older.json").write_text((FIXTURES / "gpu_4x_h100.json").read_text())
    (results / "newer.json").write_text((FIXTURES / "failures.json").read_text())
    now = time.time()
    os.utime(results / "older.json", (now - 100, now - 100))
    os.utime(results / "newer.json", (now, now))
    monkeypatch.chdir(tmp_path)
    assert cli_main(["report"]) == 0
    text = (tmp_path / "report" / "index.html").read_text()
    assert document("failures")["run_id"] in text and document("gpu_4x_h100")["run_id"] not in text
    assert "wrote report/index.html" in capsys.readouterr().out


def test_cli_results_dir_option(tmp_path, monkeypatch):
    runs = tmp_path / "elsewhere"
    runs.mkdir()
    (runs / "run.json").write_text((FIXTURES / "failures.json").read_text())
    monkeypatch.chdir(tmp_path)
    assert cli_main(["report", "--results-dir", "elsewhere", "-o", "out/page.html"]) == 0
    assert document("failures")["run_id"] in (tmp_path / "out" / "page.html").read_text()


@pytest.mark.parametrize("args, message", [
    ([], "no result files in results/"),
    (["missing.json"], "results file not found: missing.json"),
    (["bad.json"], "not valid JSON"),
    (["good.json", "--baseline-comparison", "nope.json"], "comparison file not found: nope.json"),
    (["--results-dir", "void"], "no result files in void/"),
])
def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text('{"kind": "keras-gpu-bench/run", ')
    (tmp_path / "good.json").write_text((FIXTURES / "failures.json").read_text())
    assert cli_main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_comparison_document_is_rendered_when_given(tmp_path):
    comparison = json.loads((FIXTURES / "comparison.json").read_text())
    text = build_report([FIXTURES / "failures.json"], tmp_path / "index.html", comparison=FIXTURES / "comparison.json",
                        generated_utc=GENERATED).read_text()
    page = Page(text)
    assert page.svg_count["comparison"] == 1
    assert NOT_MEASURED not in page.text("comparison").lower()
    counts = pd.Series([r["verdict"] for r in comparison["rows"]]).value_counts()
    sentence = page.text("comparison")
    assert f"Against baseline {comparison['baseline']['run_id']} [h100-main]" in sentence
    assert f"{counts['regression']} regressions, {counts['improvement']} improvement" in sentence
    assert "the build fails (exit 1)" in sentence
    table = text[text.index('id="comparison-table"'):]
    table = table[table.index("<tbody>"):table.index("</table>")]
    assert table.count("<tr>") == len(comparison["rows"])  # body rows
    assert table.count("status-regression") == counts["regression"]
    regressed = [r for r in comparison["rows"] if r["verdict"] == "regression"]
    for row in regressed:
        assert f"{row['ratio'] - 1:.1%}" in table


def test_comparison_file_of_another_kind_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text(json.dumps({"kind": "something-else", "rows": []}))
    assert cli_main(["report", str(FIXTURES / "failures.json"), "--baseline-comparison", "c.json"]) == 2
    assert "not a comparison document" in capsys.readouterr().err


# The measuring side (TensorFlow, Keras, the sweep and its workers) must never be imported by the report.
NO_FRAMEWORKS = textwrap.dedent("""
    import sys
    {body}
    frameworks = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch"))
    assert not frameworks, frameworks
    print(sorted(m for m in sys.modules if m == "bench" or m.startswith("bench.")))
""")


def test_report_command_imports_no_framework_and_no_measuring_code(tmp_path):
    body = (f"import argparse\nfrom bench.commands import report\n"
            f"parser = argparse.ArgumentParser()\nreport.configure(parser)\n"
            f"report.run(parser.parse_args([{str(FIXTURES / 'failures.json')!r}, '-o', {str(tmp_path / 'a.html')!r}]))")
    out = subprocess.run([sys.executable, "-c", NO_FRAMEWORKS.format(body=body)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    allowed = {"bench", "bench.errors", "bench.store", "bench.analyze", "bench.config", "bench.cases", "bench.commands",
               "bench.commands.report", "bench.mlp_spec"}
    # The report reads files and presents what bench.analyze derived: no measuring, running or probing code.
    assert {m for m in loaded if not m.startswith(("bench.report", "bench.store.", "bench.analyze."))} <= allowed


def test_python_m_bench_report_imports_no_framework(tmp_path):
    body = (f"from bench.cli import main\n"
            f"assert main(['report', {str(FIXTURES / 'failures.json')!r}, '-o', {str(tmp_path / 'b.html')!r}]) == 0")
    out = subprocess.run([sys.executable, "-c", NO_FRAMEWORKS.format(body=body)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "b.html").stat().st_size > 10_000


def test_environment_section_shows_what_each_framework_saw(tmp_path):
    """The doctor's facts recorded by `bench run` (environment.frameworks, selection) are on the page."""
    document = json.loads((FIXTURES / "cpu_only.json").read_text())
    document["selection"] = {"overrides": ["measure.rounds=3"], "k": "gpus=1", "planned_cases": 9,
                             "selected_cases": 4}
    facts = {"status": "ok", "version": "2.21.0", "reason": None, "probe_s": 5.0,
             "build": {"cuda": "12.5.1", "cudnn": "9", "cuda_build": True}, "runtime": None, "gpu_packages": {},
             "gpus": [], "gpu_error": "Could not find cuda drivers on your machine, GPU will not be used.",
             "keras": {"version": "3.15.1", "backend": "tensorflow", "jit_compile_auto": False,
                       "jit_compile_auto_without_strategy": False}, "errors": []}
    document["environment"]["frameworks"] = {
        "probe": {"timeout_s": 180.0, "wall_s": 5.0, "probed": ["tensorflow"]},
        "gpus": [{"nvml_index": 0, "uuid": "GPU-1", "name": "NVIDIA H200", "compute_capability": "9.0",
                  "memory_total_mib": 143771, "fp16_tensor_cores": True, "bf16_tensor_cores": True}],
        "tensorflow": facts, "jax": {"status": "not_installed", "version": None, "reason": "not installed"},
        "verdict": {"runnable": False, "line": "NVML sees 1 GPUs but TensorFlow sees none: install tensorflow[and-cuda]",
                    "findings": [{"level": "problem", "text": "NVML sees 1 GPUs but TensorFlow sees none",
                                  "fix": "install tensorflow[and-cuda]"}]}}
    source = tmp_path / "run.json"
    source.write_text(json.dumps(document))
    page = build_report([source], output=tmp_path / "r.html").read_text()
    env = page[page.index('id="r1-environment"'):]
    env = env[:env.index("</section>")]
    assert "TensorFlow 2.21.0: built for CUDA 12.5.1, cuDNN 9; sees no GPU (Could not find cuda drivers" in env
    assert 'jit_compile=&#34;auto&#34; → no XLA' in env and "JAX: not installed" in env
    assert "compute capability 9.0, 143771 MiB, tensor cores: fp16, bf16" in env
    assert "not ready" in env and "install tensorflow[and-cuda]" in env
    assert "--set measure.rounds=3" in env and "-k &#39;gpus=1&#39;: 4 of 9 cases" in env
    assert "frameworks" not in [row.split("<")[0] for row in env.split('<th scope="row">')[1:]]  # not a JSON blob


def test_keras_versions_section_presents_the_stored_rows_side_by_side(tmp_path, pages):
    _, page = pages["cpu_only"]
    assert NOT_MEASURED in page.text("r1-keras-versions").lower()  # one environment: nothing side by side
    from bench.analyze.current import with_current_derived

    doc, _ = with_current_derived(document("cpu_only"))  # a current derived block, shown as stored
    common = {"backend": "jax", "global_batch": 16, "precision": "float32", "jit_compile": True, "input": "device",
              "steps_per_execution": 32, "status": "ok", "host_share": 0.1, "wall_vs_default": 0.5,
              "native_case_id": "native/jax/batch=16/float32/step", "native_host_us_per_step": 55.0,
              "native_wall_us_per_step": 300.0, "device_case_id": "native/jax/batch=16/float32/epoch_scan",
              "device_us_per_step": 250.0}
    doc["derived"]["keras_environments"] = [
        {**common, "environment": "default", "keras_version": "3.15.1", "development": False, "case_id": "a",
         "samples_per_second": 1000.0, "host_us_per_step": 147.0, "wall_us_per_step": 400.0, "host_vs_default": 1.0,
         "sentence": None},
        {**common, "environment": "nightly", "keras_version": "3.16.0.dev1", "development": True, "case_id": "b",
         "samples_per_second": 2000.0, "host_us_per_step": 33.0, "wall_us_per_step": 200.0,
         "host_vs_default": 33 / 147, "sentence": "the stored sentence"},
    ]
    path = tmp_path / "two-keras.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    two = Page(build_report([path], tmp_path / "two.html", generated_utc=GENERATED).read_text(encoding="utf-8"))
    rows = two.table("r1-keras-versions-table")
    assert [(r["environment"], r["Keras"], r["host CPU µs/step"], r["wall µs/step"]) for r in rows] == [
        ("default", "3.15.1", "147", "400"), ("nightly", "3.16.0.dev1 (development build)", "33", "200")]
    assert rows[1]["device µs/step (native epoch_scan)"] == "250" and rows[1]["native step loop: host µs/step"] == "55"
    assert "the stored sentence" in two.text("r1-keras-versions")
