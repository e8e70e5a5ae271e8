"""Config parsing and validation: every mistake is one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cases import TrainCase, train_cases
from bench.cli import main
from bench.config import ConfigError, load_config, parse_config, shipped_config
from bench.config_overrides import load_config_with_overrides

REPO = Path(__file__).resolve().parents[1]

GOOD = """
name = "t"
suites = ["train"]
[train]
gpus = [1, 2]
global_batch = [64, 128]
precision = ["float32", "mixed_bfloat16"]
jit_compile = [false, true, "auto"]
exclude = [{gpus = 2, jit_compile = true}]
"""


def test_shipped_configs_parse():
    for path in sorted((REPO / "configs").glob("*.toml")):
        config = load_config(path)
        assert config.sha256 and config.path == str(path)
        assert train_cases(config)


def test_shipped_configs_are_found_without_the_source_tree_layout():
    assert shipped_config("quick.toml") == REPO / "configs" / "quick.toml"  # source tree: the repo's configs/
    assert shipped_config("no-such.toml") is None


def test_logical_gpu_memory_is_a_devices_setting(write_config):
    config = load_config(write_config("name = 't'\n[devices]\nsimulate = true\nlogical_gpu_memory_mib = 2048\n"))
    assert config.devices.logical_gpu_memory_mib == 2048
    assert parse_config({"name": "t"}).devices.logical_gpu_memory_mib == 4096


def test_quick_config_varies_every_axis():
    config = load_config(REPO / "configs" / "quick.toml")
    cases = train_cases(config)
    for axis in ("gpus", "global_batch", "precision", "jit_compile"):
        assert len({repr(getattr(c, axis)) for c in cases}) > 1, axis
    assert config.devices.simulate


def test_default_config_is_full_factorial():
    config = load_config(REPO / "configs" / "default.toml")
    t = config.train
    # The core sweep (device input, steps_per_execution 1) is the full factorial; [[train.add]] adds input paths.
    core = [c for c in train_cases(config) if (c.input, c.steps_per_execution) == ("device", 1)]
    assert len(core) == len(t.gpus) * len(t.global_batch) * len(t.precision) * len(t.jit_compile)
    assert set(t.precision) == {"float32", "mixed_float16", "mixed_bfloat16"}
    assert set(map(repr, t.jit_compile)) == {"False", "True", "'auto'"}


def test_product_and_exclude(write_config):
    config = load_config(write_config(GOOD))
    cases = train_cases(config)
    assert len(cases) == 2 * 2 * 2 * 3 - 2 * 2  # gpus=2 & jit=true excluded for both batches/precisions
    assert TrainCase("tensorflow", 2, 64, "float32", True) not in cases
    # jit_compile=true must not match gpus=1 (bool is an int in Python)
    assert TrainCase("tensorflow", 1, 64, "float32", True) in cases
    assert cases[0].case_id == "train/tensorflow/gpus=1/batch=64/float32/jit=false/input=device/spe=1"
    assert TrainCase("tensorflow", 2, 64, "float32", "auto").per_replica_batch == 32


def test_config_round_trips_through_dict(write_config):
    from bench.config import config_from_dict

    config = load_config(write_config(GOOD))
    again = config_from_dict(config.to_dict())
    assert again == config


@pytest.mark.parametrize(
    "text, message",
    [
        ("name = 't'\nbogus = 1\n", "unknown key 'bogus'"),
        ("name = 't'\n[train]\nprecision = ['fp16']\n", "unknown value 'fp16'"),
        ("name = 't'\n[train]\njit_compile = ['yes']\n", "unknown value 'yes'"),
        ("name = 't'\n[train]\nbackend = ['mxnet']\n", "unknown value 'mxnet'"),
        ("name = 't'\n[train]\ngpus = []\n", "is empty"),
        ("name = 't'\n[train]\nglobal_batch = [0]\n", "must be positive"),
        ("name = 't'\n[train]\nglobal_batch = [-64]\n", "must be positive"),
        ("name = 't'\n[train]\nglobal_batch = [12.5]\n", "must be integers"),
        ("name = 't'\n[train]\ngpus = [3]\nglobal_batch = [128]\n", "not divisible by gpus = 3"),
        ("name = 't'\n[measure]\nrounds = 'five'\n", "must be an integer"),
        ("name = 't'\n[measure]\nrounds = 0\n", "must be positive"),
        ("name = 't'\n[measure]\nmin_round_s = -1\n", "must be positive"),
        ("name = 't'\n[measure]\nunknown = 1\n", "[measure] unknown key 'unknown'"),
        ("name = 't'\n[data]\nsource = 'imagenet'\n", "unknown value 'imagenet'"),
        ("name = 't'\n[data]\nsource = 'npz'\n", "needs path"),
        ("name = 't'\n[devices]\nsimulate = 'yes'\n", "must be true or false"),
        ("name = 't'\n[devices]\nlogical_gpu_memory_mib = 0\n", "[devices] logical_gpu_memory_mib must be positive"),
        ("name = 't'\n[train]\nexclude = [{gpus = 1}]\ngpus = [1]\n", "every case is excluded"),
        ("name = 't'\n[train]\nexclude = [{color = 'red'}]\n", "unknown key 'color'"),
        ("name = 't'\n[train]\ngpus = [1, 1]\n", "lists a value twice"),
        ("name = 't'\nsuites = ['inference']\n", "unknown value 'inference'"),
    ],
)
def test_invalid_configs_fail_with_one_line(write_config, text, message):
    path = write_config(text)
    with pytest.raises(ConfigError) as err:
        load_config_with_overrides(path)  # how every command loads a sweep: the file, then its cases
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)


def test_invalid_toml(write_config):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write_config("name = [unclosed\n"))


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/sweep.toml")


def test_parse_rejects_non_table_section():
    with pytest.raises(ConfigError, match=r"'train' must be a table"):
        parse_config({"name": "t", "train": 3})


@pytest.mark.parametrize(
    "text",
    ["name = 't'\n[train]\nprecision = ['fp16']\n", "name = [\n"],
)
def test_cli_prints_one_line_and_exits_2(write_config, capsys, tmp_path, text):
    code = main(["run", "--config", str(write_config(text)), "--results-dir", str(tmp_path / "r")])
    captured = capsys.readouterr()
    assert code == 2
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in captured.err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_cli_missing_config_exits_2(capsys):
    assert main(["run", "--config", "/nonexistent.toml"]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_cli_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--no-such-option"])
    assert exit_info.value.code == 2
