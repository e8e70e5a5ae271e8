"""End to end on the CPU: a run covering the input and steps_per_execution axes (TensorFlow, with the native
loop) records both per case, derives where the time goes, and the report shows that section."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.analyze.paired import case_value
from bench.store.results import load_run
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

SWEEP = """
name = "time-goes"
suites = ["train", "native"]

[train]
gpus = [1]
global_batch = [1024]
precision = ["float32"]
jit_compile = [false]
input = ["device"]
steps_per_execution = [1, 8]

# A host-fed input the tutorial's users write, at one steps_per_execution (timed in whole passes: at batch 1024
# a pass is 58 steps, short enough for CI).
[[train.add]]
input = ["tf_data"]
steps_per_execution = [1]

[measure]
warmup_steps = 8
rounds = 3
min_round_s = 0.2
processes = 1  # the pooling of processes is tested in test_train_sweep and test_drift
max_steps_per_round = 2000

[data]
source = "synthetic"

[devices]
simulate = true

[control]
enabled = false
"""


def test_input_and_spe_axes_are_recorded_derived_and_reported(tmp_path):
    config = tmp_path / "time-goes.toml"
    config.write_text(SWEEP)
    proc = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "results"), "--quiet",
                   timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    path = Path(proc.stdout.strip().splitlines()[-1])
    run = load_run(path)
    train = {c["case_id"]: c for c in run["cases"] if c["suite"] == "train"}
    assert sorted((c["params"]["input"], c["params"]["steps_per_execution"]) for c in train.values()) == [
        ("device", 1), ("device", 8), ("tf_data", 1)]
    for case in train.values():
        assert case["status"] == "ok", case["reason"]
        m = case["metrics"]
        assert m["input_fed"]["value"] == case["params"]["input"]
        assert m["steps_per_execution_resolved"] == case["params"]["steps_per_execution"]
        assert m["round_unit"] == ("pass" if case["params"]["input"] == "tf_data" else "steps")
        assert m["native_ratio"] > 0  # against the native step loop at the same batch and precision
    (row,) = run["derived"]["where_the_time_goes"]
    assert (row["backend"], row["global_batch"], row["precision"]) == ("tensorflow", 1024, "float32")
    assert row["best_case_id"] in train and row["native_ratio"] > 0
    # The ranking value every derivation uses (the geometric mean of the case's process values).
    spe = {c["params"]["steps_per_execution"]: case_value(c)
           for c in train.values() if c["params"]["input"] == "device"}
    if row["best_input"] == "device":  # spe_gain compares steps_per_execution within the best case's input
        assert row["spe_gain"] == pytest.approx(spe[8] / spe[1])
    else:
        assert row["spe_gain"] is None
    assert row["sentence"].startswith("tensorflow, batch 1024, float32: ")
    assert set(row["by_input"]) == {"device", "tf_data"}

    page = tmp_path / "report.html"
    proc = run_cli("report", str(path), "-o", str(page))
    assert proc.returncode == 0, proc.stderr
    html = page.read_text()
    section = html[html.index('id="r1-time-goes"'):]
    section = section[:section.index("</section>")]
    assert 'id="r1-time-goes-table"' in section and 'id="r1-chart-inputs"' in section
    assert row["sentence"].split(":")[0] in section and row["best_config"] in section
