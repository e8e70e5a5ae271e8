"""The HTML report, built from the committed fixture runs and checked against numbers computed here,
directly from the JSON with pandas (not through ``bench.reporting``).

Fixtures (tests/fixtures/report/, written by generate.py next to them):
``cpu_only.json`` (simulated devices, synthetic data, no NVML), ``gpu_4x_h100.json`` (4x H100, MNIST, all four
training axes, NVML) and ``failures.json`` (interrupted; failed, skipped and wrong cases; no NVML).
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

from bench.cli import main as cli_main
from bench.reporting.build import build_report
from bench.results import load_run

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "report"
NAMES = ("cpu_only", "gpu_4x_h100", "failures")
GENERATED = "2025-11-22T12:00:00Z"
NOT_MEASURED = "not measured in this run"


# --------------------------------------------------------------------------- helpers


class Page(HTMLParser):
    """What the tests need from a report: per-section text and <svg> counts, findings, warnings."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.open_sections: list[str] = []
        self.svg_count: dict[str, int] = {}
        self.section_text: dict[str, list[str]] = {}
        self.findings: dict[str, dict] = {}
        self.warnings: list[dict[str, str]] = []
        self._finding: str | None = None
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
            self._finding = attrs["data-finding"]
            self.findings[self._finding] = {"measured": attrs["data-measured"] == "true",
                                            "values": json.loads(attrs["data-values"]), "text": ""}
        elif tag == "li" and "data-warning" in attrs:
            self.warnings.append({"kind": attrs["data-warning"], "run": attrs["data-run"]})

    def handle_endtag(self, tag):
        if tag == "section":
            self.open_sections.pop()
        elif tag == "li":
            self._finding = None

    def handle_data(self, data):
        for section in self.open_sections:
            self.section_text[section].append(data)
        if self._finding:
            self.findings[self._finding]["text"] += data

    def text(self, section: str) -> str:
        return " ".join("".join(self.section_text[section]).split())

    def warning_kinds(self, run: str = "r1") -> set[str]:
        return {w["kind"] for w in self.warnings if w["run"] == run}


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
PARAMS = {"train": {"backend", "gpus", "global_batch", "precision", "jit_compile"},
          "cpu_predict": {"backend", "precision", "train_jit_compile", "predict_batch", "method"}}
STATUSES = {"train": {"ok", "skipped", "failed"},
            "cpu_predict": {"ok", "skipped", "failed", "wrong", "not_on_cpu"}}


@pytest.mark.parametrize("name", NAMES)
def test_fixtures_follow_the_results_schema(name):
    doc = load_run(FIXTURES / f"{name}.json")
    assert RUN_FIELDS <= set(doc) and doc["kind"] == "keras-gpu-bench/run" and doc["schema_version"] == 1
    assert ENV_FIELDS <= set(doc["environment"])
    assert doc["config"]["sha256"] == doc["environment"]["config_sha256"]
    for case in doc["cases"]:
        assert CASE_FIELDS <= set(case), case["case_id"]
        assert set(case["params"]) == PARAMS[case["suite"]]
        assert case["status"] in STATUSES[case["suite"]]
        assert (case["reason"] is None) == (case["status"] == "ok")
        if case["status"] == "ok" and case["suite"] == "train":
            metrics = case["metrics"]
            assert TRAIN_METRICS <= set(metrics)
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
    for name in NAMES:
        fresh, committed = json.loads(generator.render(f"{name}.json")), document(name)
        # The config block is bench.config's parse of the fixture's TOML with every default filled in, so it
        # grows when a config field is added; an older file lacking it is still valid, so it is not compared.
        assert fresh.pop("config")["sha256"] == committed.pop("config")["sha256"]
        assert fresh == committed, f"{name}.json is stale: run python tests/fixtures/report/generate.py"


# --------------------------------------------------------------------------- headline numbers


@pytest.mark.parametrize("name", NAMES)
def test_best_configuration(pages, name):
    ok = ok_train(document(name))
    best = ok.loc[ok["metrics.samples_per_second.median"].idxmax()]
    finding = pages[name][1].findings["best"]
    assert finding["values"]["case_id"] == best["case_id"]
    assert finding["values"]["samples_per_second"] == pytest.approx(best["metrics.samples_per_second.median"])
    assert f"{best['metrics.samples_per_second.median']:,.0f} samples/s" in finding["text"]


def _expected_xla(doc: dict) -> dict | None:
    ok = ok_train(doc)
    # XLA on = explicit true or "auto" resolved to true (the fixtures have no cell with both).
    ok["on"] = ok["metrics.jit_compile_resolved"].astype(bool)
    wide = ok.pivot_table(index=["params.gpus", "params.global_batch", "params.precision"], columns="on",
                          values="metrics.samples_per_second.median")
    if True not in wide or False not in wide:
        return None
    return quartiles((wide[True] / wide[False]).dropna())


def _expected_mixed(doc: dict) -> dict[str, dict]:
    ok = ok_train(doc)
    ok["jit"] = ok["params.jit_compile"].astype(str)
    wide = ok.pivot_table(index=["params.gpus", "params.global_batch", "jit"], columns="params.precision",
                          values="metrics.samples_per_second.median")
    return {p: quartiles((wide[p] / wide["float32"]).dropna())
            for p in wide.columns if p.startswith("mixed") and "float32" in wide}


@pytest.mark.parametrize("name", NAMES)
def test_xla_and_mixed_precision_speedups(pages, name):
    page = pages[name][1]
    doc = document(name)
    xla = _expected_xla(doc)
    if xla is None:
        assert not page.findings["xla"]["measured"] and NOT_MEASURED in page.findings["xla"]["text"]
    else:
        for key, value in xla.items():
            assert page.findings["xla"]["values"][key] == pytest.approx(value), key
        assert f"median {xla['median']:.2f}×" in page.findings["xla"]["text"]
    mixed = _expected_mixed(doc)
    if not mixed:
        assert not page.findings["mixed"]["measured"]
    for policy, expected in mixed.items():
        finding = page.findings[f"mixed:{policy}"]
        for key, value in expected.items():
            assert finding["values"][key] == pytest.approx(value), (policy, key)
        assert f"median {expected['median']:.2f}×" in finding["text"]


@pytest.mark.parametrize("name", NAMES)
def test_scaling_efficiency(pages, name):
    ok = ok_train(document(name))
    keys = ["params.global_batch", "params.precision", "jit"]
    ok["jit"] = ok["params.jit_compile"].astype(str)
    t1 = ok[ok["params.gpus"] == 1].set_index(keys)["metrics.samples_per_second.median"]
    many = ok[ok["params.gpus"] > 1].copy()
    many["t1"] = [t1.get(tuple(k)) for k in many[keys].itertuples(index=False)]
    many = many.dropna(subset=["t1"])
    many["eff"] = many["metrics.samples_per_second.median"] / (many["params.gpus"] * many["t1"])
    expected = {f"batch={b}/gpus={n}": e for (b, n), e in many.groupby(["params.global_batch", "params.gpus"])["eff"].median().items()}
    finding = pages[name][1].findings["scaling"]
    if not expected:
        assert not finding["measured"]
        return
    assert finding["values"].keys() == expected.keys()
    for key, value in expected.items():
        assert finding["values"][key] == pytest.approx(value)
        batch, gpus = re.match(r"batch=(\d+)/gpus=(\d+)", key).groups()
        assert f"{gpus} GPUs {value:.0%}" in finding["text"]


@pytest.mark.parametrize("name", NAMES)
def test_gpu_starvation(pages, name):
    ok = ok_train(document(name))
    finding = pages[name][1].findings["starved"]
    measured = ok[ok["metrics.gpu_metrics.status"] == "ok"] if "metrics.gpu_metrics.status" in ok else ok.iloc[:0]
    if measured.empty:
        assert not finding["measured"] and NOT_MEASURED in finding["text"]
        return
    util = measured["metrics.gpu_metrics.aggregate.utilization_pct_mean"]
    assert finding["values"]["measured"] == len(measured)
    assert finding["values"]["starved"] == int((util < 50).sum())
    assert finding["values"]["min_util_pct"] == pytest.approx(util.min())
    assert f"in {int((util < 50).sum())} of {len(measured)} measured cases" in finding["text"]


@pytest.mark.parametrize("name", NAMES)
def test_cpu_prediction_findings(pages, name):
    cpu = cases(document(name), "cpu_predict")
    page = pages[name][1]
    ok = cpu[(cpu["status"] == "ok") & (cpu["params.method"] != "naive")]
    totals = ok.groupby("params.method")["metrics.total_s"].median()
    cheapest = page.findings["cpu_cheapest"]
    assert cheapest["values"]["method"] == totals.idxmin()
    assert cheapest["values"]["total_s"] == pytest.approx(totals.min())
    assert f"workaround: {totals.idxmin()} —" in cheapest["text"]

    naive = cpu[cpu["params.method"] == "naive"]
    assert page.findings["cpu_naive"]["values"]["failed"] == int((naive["status"] == "failed").sum())
    if (naive["status"] == "failed").any():
        assert f"failed in {int((naive['status'] == 'failed').sum())} of {len(naive)} settings" in page.findings["cpu_naive"]["text"]

    strategy = cpu[(cpu["params.method"] == "strategy") & (cpu["status"] == "not_on_cpu")]
    if strategy.empty:
        assert "does not move prediction" not in page.text("r1-findings")
    else:
        device = strategy["metrics.predict_device"].iloc[0]
        assert ("building under a tf.distribute strategy does not move prediction to the CPU: its MatMuls ran on "
                f"{device}") in page.findings["cpu_strategy"]["text"]


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
        if case["status"] != "ok":
            found.add(case["status"])
    return found


@pytest.mark.parametrize("name", NAMES)
def test_warnings_appear_exactly_when_their_condition_holds(pages, name):
    text, page = pages[name]
    expected = expected_warnings(document(name))
    assert page.warning_kinds() == expected
    # The box is at the top of the page, before any run section.
    assert text.index('id="warnings"') < text.index('id="r1"')


def test_the_fixtures_exercise_every_warning(pages):
    every = {"incomplete", "synthetic_data", "simulated_devices", "stand_in_device", "unstable",
             "gpu_metrics_unreliable", "failed", "skipped", "wrong", "not_on_cpu"}
    assert set().union(*(pages[n][1].warning_kinds() for n in NAMES)) == every


# --------------------------------------------------------------------------- charts and empty sections

# Charts per section: r1-train = throughput + scaling (needs 1 and N GPUs) + speedup heat-map (needs pairs).
CHARTS = {
    "gpu_4x_h100": {"r1-train": 3, "r1-nvml": 1, "r1-cpu-predict": 1, "comparison": 0},
    "cpu_only": {"r1-train": 3, "r1-nvml": 0, "r1-cpu-predict": 1, "comparison": 0},
    "failures": {"r1-train": 2, "r1-nvml": 0, "r1-cpu-predict": 1, "comparison": 0},
}


@pytest.mark.parametrize("name", NAMES)
def test_every_chart_is_present_and_missing_ones_say_so(pages, name):
    text, page = pages[name]
    for section, count in CHARTS[name].items():
        assert page.svg_count[section] == count, section
    assert page.svg_count["r1"] == sum(v for k, v in CHARTS[name].items() if k.startswith("r1-"))
    for section in ("r1-nvml", "comparison"):
        assert (NOT_MEASURED in page.text(section).lower()) == (page.svg_count[section] == 0), section
    if name == "failures":
        assert NOT_MEASURED in page.text("r1-train").lower()  # no scaling: the 2-GPU cases were skipped
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
    assert NOT_MEASURED in page.text("comparison").lower()
    if keep == "all failed":
        assert page.svg_count["r1"] == 0 and "failed" in page.warning_kinds()
        assert all(not f["measured"] for k, f in page.findings.items() if not k.startswith("cpu_"))


# --------------------------------------------------------------------------- page properties


@pytest.mark.parametrize("name", NAMES)
def test_page_is_self_contained(pages, name):
    text, page = pages[name]
    assert not re.search(r"""\b(?:src|href)\s*=\s*["'](?!#|data:)""", text)
    assert "<link rel=\"stylesheet\"" not in text and "<script src" not in text and "@import" not in text
    assert "Content-Security-Policy" in text and "@media print" in text
    # Header: where and how the numbers were made.
    doc = document(name)
    header = page.text("r1-summary")
    assert doc["environment"]["git_commit"][:12] in header
    assert doc["config"]["name"] in header and doc["config"]["sha256"][:12] in header
    assert doc["environment"]["packages"]["tensorflow"] in header
    for gpu in doc["environment"]["gpus"][:1]:
        assert f"{len(doc['environment']['gpus'])} × {gpu['name']}" in header
    assert '<table class="dataframe sortable cases" id="r1-train-cases">' in text
    assert len(re.findall(r"<tr>\s*<td>train/", text)) == sum(c["suite"] == "train" for c in doc["cases"])


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
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == len(comparison["rows"])  # body rows (the header row carries a style)
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
    allowed = {"bench", "bench.errors", "bench.results", "bench.stats", "bench.config", "bench.commands",
               "bench.commands.report"}
    assert {m for m in loaded if not m.startswith("bench.reporting")} <= allowed


def test_python_m_bench_report_imports_no_framework(tmp_path):
    body = (f"from bench.cli import main\n"
            f"assert main(['report', {str(FIXTURES / 'failures.json')!r}, '-o', {str(tmp_path / 'b.html')!r}]) == 0")
    out = subprocess.run([sys.executable, "-c", NO_FRAMEWORKS.format(body=body)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "b.html").stat().st_size > 10_000
