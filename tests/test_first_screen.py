"""The first screen's layer (issue 22): FLOPs from the layer shapes, datasheet peaks, known limitations, the
overview's answers built from issue 20's contract rows (with intervals), reference context — and the report
holding no derivation: it shows whatever a current ``derived`` block says, and derives again an old one."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from bench import mlp_spec
from bench.analyze import flops, limitations, peaks
from bench.analyze.current import with_current_derived
from bench.analyze.reference import context
from bench.analyze.run_tables import DERIVED_VERSION, derive_tables
from bench.report.build import build_report
from bench.store.results import load_run
from tests.factories import make_run

REPO = Path(__file__).resolve().parents[1]
REFERENCE_JAX = REPO / "results" / "reference" / "20261126T012241Z-gpu-jax-eb7d50.json"
CONFIG = {"name": "ci", "suites": ["train"],
          "train": {"gpus": [1], "global_batch": [256, 1024], "precision": ["float32", "mixed_bfloat16"]}}


# --------------------------------------------------------------------------- the physical limit


def test_flops_per_sample_come_from_the_layer_shapes():
    assert mlp_spec.DENSE_SHAPES == ((784, 512), (512, 256), (256, 10))
    # forward 2·in·out per layer, weight gradient the same, input gradient for every layer but the first
    forward = 2 * (784 * 512 + 512 * 256 + 256 * 10)
    expected = 2 * forward + 2 * (512 * 256 + 256 * 10)
    assert flops.training_flops_per_sample() == expected == 2_407_424
    assert flops.model_flops()["forward_flops_per_sample"] == forward
    # Not typed in: a different spec gives a different count.
    assert flops.training_flops_per_sample(((10, 20),)) == 2 * 2 * 10 * 20


@pytest.mark.parametrize(("name", "model"), [
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA H200 NVL", "H200 NVL"), ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"), ("NVIDIA A10", "A10"), ("Tesla V100-SXM2-16GB", "V100 SXM2"),
    ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"), ("NVIDIA A10G", None), ("NVIDIA T4", None), (None, None),
])
def test_gpu_names_find_their_datasheet_entry(name, model):
    found = peaks.find_device(name)
    assert (found.model if found else None) == model


def test_every_peak_is_cited_and_dense():
    for entry in peaks.PEAKS:
        assert entry.source.startswith("https://") and "nvidia.com" in entry.source
        assert entry.fp32 > 0 and all(v is None or v >= entry.fp32 for v in (entry.tf32, entry.bf16, entry.fp16))
    h200 = peaks.find_device("NVIDIA H200")
    assert (h200.tf32, h200.bf16) == (989 / 2, 1979 / 2)  # the datasheet prints them with sparsity


def test_the_peak_follows_precision_and_backend():
    assert peaks.peak_for("NVIDIA H200", "mixed_bfloat16", "jax")["label"] == "BF16 tensor"
    assert peaks.peak_for("NVIDIA H200", "float32", "jax")["label"] == "TF32 tensor"
    assert peaks.peak_for("NVIDIA H200", "float32", "tensorflow")["label"] == "TF32 tensor"
    assert peaks.peak_for("NVIDIA H200", "float32", "torch")["label"] == "FP32"  # allow_tf32 is off in torch
    v100 = peaks.peak_for("Tesla V100-SXM2-16GB", "mixed_bfloat16", "tensorflow")
    assert v100["tflops"] is None and "no BF16 tensor" in v100["why"]
    unknown = peaks.peak_for("NVIDIA T4", "float32", "jax")
    assert unknown["tflops"] is None and "T4" in unknown["why"]


def test_mfu_is_achieved_over_peak_times_devices_and_unknown_off_a_gpu():
    found = flops.utilisation(1e6, 2, "mixed_bfloat16", "jax", "NVIDIA H200", on_gpu=True)
    assert found["achieved_tflops"] == pytest.approx(1e6 * 2_407_424 / 1e12)
    assert found["peak_tflops"] == pytest.approx(2 * 989.5)
    assert found["mfu"] == pytest.approx(found["achieved_tflops"] / (2 * 989.5))
    cpu = flops.utilisation(1e6, 1, "float32", "tensorflow", None, on_gpu=False)
    assert cpu["mfu"] is None and cpu["achieved_tflops"] > 0 and "not a GPU" in cpu["mfu_unknown_why"]


# --------------------------------------------------------------------------- known limitations


def _failed(suite, params, message, status="failed"):
    _failed.count = getattr(_failed, "count", 0) + 1
    return {"suite": suite, "case_id": f"{suite}/x/{_failed.count}", "params": params, "status": status,
            "reason": f"InvalidArgumentError: {message}", "error": {"type": "InvalidArgumentError", "message": message}}


CROSS = ("Trying to access resource mnist_mlp/dense/kernel/4 (defined @ /home/me/venv/lib/python3.11/site-packages/"
         "keras/src/backend/tensorflow/core.py:43) located in device /job:localhost/replica:0/task:0/device:GPU:0 "
         "from device /job:localhost/replica:0/task:0/device:CPU:0")


def test_known_limitations_are_keyed_by_error_and_conditions():
    xla = _failed("train", {"backend": "tensorflow", "gpus": 2, "jit_compile": True}, CROSS)
    one_gpu = _failed("train", {"backend": "tensorflow", "gpus": 1, "jit_compile": True}, CROSS)
    naive = _failed("cpu_predict", {"backend": "tensorflow", "method": "naive"}, CROSS)
    other = _failed("train", {"backend": "tensorflow", "gpus": 2, "jit_compile": True}, "CUDA_ERROR_OUT_OF_MEMORY")
    torch = _failed("cpu_predict", {"backend": "torch", "method": "clone"},
                    "Only Tensors of floating point and complex dtype can require gradients")
    rows = {r["case_id"]: r for r in limitations.classify([xla, one_gpu, naive, other, torch])}
    assert rows[xla["case_id"]]["issue"] == "keras-team/keras#19005"
    assert rows[naive["case_id"]]["issue"] == "keras-team/keras#20308"
    assert rows[torch["case_id"]]["kind"] == "known limitation" and rows[torch["case_id"]]["issue"] is None
    # The same error outside its conditions, and another error under them, are genuine failures.
    assert rows[one_gpu["case_id"]]["kind"] == rows[other["case_id"]]["kind"] == "failure"
    short = rows[xla["case_id"]]["reason_short"]
    assert "/home/" not in short and "site-packages" not in short and "keras/src/backend" in short
    assert len(short) <= limitations.SHORT_CHARS + 2
    summary = limitations.summary(rows.values())
    assert summary["failures"] == [one_gpu["case_id"], other["case_id"]]


def test_machine_paths_are_stripped_but_device_names_kept():
    text = limitations.strip_paths("/work/main/.nox/tests/lib/python3.11/site-packages/keras/a.py on "
                                   "/job:localhost/replica:0/task:0/device:CPU:1, file /tmp/r1/run.json")
    assert text == "keras/a.py on /job:localhost/replica:0/task:0/device:CPU:1, file …/run.json"
    # CI checks out under /check/work/main: a machine root deeper in the path is still a machine path;
    # a URL's path is not.
    assert limitations.strip_paths("baseline /check/work/main/tests/fixtures/report/comparison.json") == \
        "baseline …/comparison.json"
    assert limitations.strip_paths("https://github.com/work/home/x") == "https://github.com/work/home/x"


# --------------------------------------------------------------------------- the answers, from contract rows


def _document(**kwargs):
    doc = make_run(config=CONFIG, **kwargs)
    doc["environment"]["frameworks"] = {"probe": {"timeout_s": 1, "wall_s": 1, "probed": ["tensorflow"]}, "gpus": [],
                                        "verdict": {"runnable": True, "line": "ci can run here", "findings": []}}
    return doc


def _contract_rows(doc):
    """issue 20's rows for this run, with 3 processes each: the best tied with its runner-up; mixed precision
    1.31x [1.22, 1.40] at the best's batch; batch 1024 vs 256 with an interval that holds 1."""
    ids = {(c["params"]["global_batch"], c["params"]["precision"]): c["case_id"] for c in doc["cases"]}
    best, runner = ids[(1024, "mixed_bfloat16")], ids[(1024, "float32")]
    comparisons = [
        {"kind": "best", "axis": "runner_up", "backend": "tensorflow", "context": {}, "a_case_id": best,
         "b_case_id": runner, "a_label": "best", "b_label": "runner-up", "ratio": 1.02, "ci_low": 0.97,
         "ci_high": 1.07, "pairs": 3, "method": "paired t on log ratios", "verdict": "tied", "sentence": "s"},
        {"kind": "axis", "axis": "precision", "backend": "tensorflow", "context": {"global_batch": 1024},
         "a_case_id": best, "b_case_id": runner, "a_label": "mixed_bfloat16", "b_label": "float32", "ratio": 1.31,
         "ci_low": 1.22, "ci_high": 1.40, "pairs": 3, "method": "paired t on log ratios", "verdict": "faster",
         "sentence": "s"},
        {"kind": "axis", "axis": "global_batch", "backend": "tensorflow", "context": {"precision": "mixed_bfloat16"},
         "a_case_id": best, "b_case_id": ids[(256, "mixed_bfloat16")], "a_label": "batch 1024",
         "b_label": "batch 256", "ratio": 1.05, "ci_low": 0.95, "ci_high": 1.16, "pairs": 3,
         "method": "paired t on log ratios", "verdict": "no measurable difference", "sentence": "s"},
    ]
    stats = [{"case_id": cid, "processes": 3, "value": 1.0e6, "ci_low": 0.9e6, "ci_high": 1.1e6,
              "between_process_cv": 0.04, "within_process_cv": 0.01, "normalized_by_control": False}
             for cid in ids.values()]
    return best, comparisons, stats


def test_the_answers_carry_the_contract_intervals():
    doc = _document(speed={})
    best, comparisons, stats = _contract_rows(doc)
    from bench.analyze.bottleneck import derive_tables as bottleneck_tables

    derived = {**bottleneck_tables(doc["cases"]), "comparisons": comparisons, "case_stats": stats,
               "machine_speed": {"sentence": "Machine speed: steady."}}
    derived["best_configurations"] = [{**derived["best_configurations"][0], "case_id": best}]
    out = derive_tables(doc, doc["cases"], derived)
    assert "comparisons" not in out  # the contract's rows are kept, not replaced
    lines = {line["key"]: line for line in out["overview"]["lines"]}
    assert list(lines) == ["ready", "scope", "best", "axes", "time", "cpu_predict", "regression"]
    assert lines["ready"]["answer"].startswith("Yes — ci can run here") and lines["ready"]["level"] == "ok"
    assert lines["scope"]["answer"].startswith("Real GPUs (1 × NVIDIA H100 80GB HBM3)")
    assert "1.00 M samples/s [900.0 k, 1.10 M]" in lines["best"]["answer"]
    assert "tied with the runner-up (1.02× [0.97, 1.07]: the interval holds 1)" in lines["best"]["answer"]
    axes = lines["axes"]["answer"]
    assert "mixed_bfloat16 vs float32: 1.31× [1.22, 1.40]" in axes
    assert "batch 1024 vs 256: no measurable difference (1.05× [0.95, 1.16])" in axes
    assert "not varied: GPUs" in axes
    assert "python -m bench compare" in lines["regression"]["answer"]
    assert out["overview"]["drift"] == "Machine speed: steady."
    row = next(r for r in out["summary"] if r["case_id"] == best)
    assert (row["value"], row["ci_low"], row["processes"], row["noise"]) == (1.0e6, 0.9e6, 3, 0.04)
    assert row["mfu"] == pytest.approx(1.0e6 * 2_407_424 / 1e12 / 989.5)  # H100 SXM, BF16 tensor
    assert row["category"]["label"] == "real GPU · real MNIST"


def test_a_simulated_run_says_what_it_can_tell():
    doc = _document(simulated=True, data_source="synthetic")
    for case in doc["cases"]:
        case["devices"] = {**case["devices"], "kind": "cpu", "simulated": True}
    doc["data"]["synthetic"] = True
    out, _ = with_current_derived(doc)
    category = out["derived"]["category"]
    assert category["devices"] == "simulated on CPU" and "GPU benchmark" not in category["title"]
    scope = next(line for line in out["derived"]["overview"]["lines"] if line["key"] == "scope")
    assert scope["answer"].startswith("CPU with simulated devices: checks that the suite works, says nothing about "
                                      "GPU speed")
    assert all(r["mfu"] is None for r in out["derived"]["summary"])


# --------------------------------------------------------------------------- reference context


def test_reference_context_pairs_the_same_gpu_and_backend():
    reference = load_run(REFERENCE_JAX)
    assert context(reference, [reference])["sentence"] == "This is a committed reference run."
    mine = copy.deepcopy(reference)
    mine["run_id"] = "20270101T000000Z-gpu-jax-000000"
    for case in mine["cases"]:
        if case["status"] == "ok" and case["suite"] in ("train", "native"):
            case["metrics"]["samples_per_second"]["median"] *= 0.9
            case["metrics"]["round_s"] = [r / 0.9 for r in case["metrics"]["round_s"]]  # the raw samples too
    mine, _ = with_current_derived(mine)
    found = context(mine, [reference])
    assert found["rows"] and all(r["ratio"] == pytest.approx(0.9) for r in found["rows"])
    best = mine["derived"]["best_configurations"][0]["case_id"]
    assert found["rows"][0]["case_id"] == best  # the best configuration first
    cpu = _document(simulated=True)
    for case in cpu["cases"]:
        case["devices"] = {**case["devices"], "kind": "cpu", "simulated": True}
    cpu["environment"]["gpus"] = []
    cpu, _ = with_current_derived(cpu)
    assert context(cpu, [reference])["sentence"].startswith("No reference for this run")
    other = _document()  # an H100 on TensorFlow: no reference made there
    other, _ = with_current_derived(other)
    assert context(other, [reference])["sentence"].startswith("No committed reference run matches this H100 SXM")


# --------------------------------------------------------------------------- the report holds no derivation


def test_the_report_shows_whatever_a_current_derived_block_says(tmp_path):
    doc, _ = with_current_derived(load_run(REFERENCE_JAX))
    derived = doc["derived"]
    assert derived["version"] == DERIVED_VERSION
    best_id = derived["best_configurations"][0]["case_id"]
    # Alter numbers every section shows; the cases (and their raw rounds) stay as they are.
    for line in derived["overview"]["lines"]:
        if line["key"] == "best":
            line["answer"] = "jax: altered best at 123.45 M samples/s"
    for row in derived["summary"]:
        if row["case_id"] == best_id:
            row.update(value=7_654_321.0, mfu=0.4321, peak_kind="BF16 tensor", achieved_tflops=42.5)
    for finding in derived["findings"]:
        if finding["key"] == "best":
            finding["text"] = "Best configuration on jax: altered sentence 99.9 k samples/s."
    derived["native_table"][0]["keras"] = 1_111_111.0
    derived["where_the_time_goes"][0]["best_samples_per_second"] = 2_222_222.0
    derived["where_the_time_goes"][0]["sentence"] = "altered bottleneck sentence"
    derived["cpu_methods"][0]["total_s.range"] = [8.765, 9.876]
    source = tmp_path / "altered.json"
    source.write_text(json.dumps(doc))
    html = build_report([source], tmp_path / "page.html", generated_utc="2026-01-01T00:00:00Z").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    for shown in ("jax: altered best at 123.45 M samples/s", "7.65 M", "43 % of BF16 tensor", "42.500",
                  "altered sentence 99.9 k samples/s", "1.11 M", "2.22 M", "altered bottleneck sentence",
                  "8.765–9.876"):
        assert shown in text, shown


def test_an_older_derived_block_is_derived_again(tmp_path):
    doc, _ = with_current_derived(load_run(REFERENCE_JAX))
    doc["derived"]["version"] = DERIVED_VERSION - 1
    for line in doc["derived"]["overview"]["lines"]:
        line["answer"] = "stale answer"
    source = tmp_path / "old.json"
    source.write_text(json.dumps(doc))
    html = build_report([source], tmp_path / "page.html").read_text()
    assert "stale answer" not in html and "3.38 M samples/s" in html
