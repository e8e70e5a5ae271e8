"""The setup doctor and bench run's refusal, with NVML and the framework probes faked at their boundary.

NVML is ``tests.fake_pynvml``; a framework probe is a real child process that prints the JSON line a
real probe would (``bench.environment.probe``), so the runner, the parser, the NVML matching and the
verdict all run for real.
"""

from __future__ import annotations

import json
import sys

import pytest

from bench import cli
from bench.config import load_config, parse_config
from bench.environment import frameworks as fw
from bench.environment.doctor import judge
from bench.environment.fingerprint import relevant_env_vars
from bench.environment.probe import MARKER
from bench.environment.screen import format_screen
from bench.monitor.inventory import gpu_inventory
from tests.conftest import REPO
from tests.fake_pynvml import FakeGpu, FakeNvml, NVMLError_LibraryNotFound

UUIDS = ("GPU-aaaa1111-0000-0000-0000-000000000001", "GPU-bbbb2222-0000-0000-0000-000000000002")
BUSES = ("00000000:18:00.0", "00000000:3B:00.0")
MISSING_CUDA_WHEELS = {"nvidia-cudnn-cu12": None, "nvidia-cublas-cu12": None}


def two_gpus(**kwargs) -> FakeNvml:
    return FakeNvml([FakeGpu(uuid=UUIDS[0], bus_id=BUSES[0], **kwargs),
                     FakeGpu(uuid=UUIDS[1], bus_id=BUSES[1], **kwargs)], cuda_driver_version=12040)


def probe_output(framework: str, gpus: list[dict] | None = None, **extra) -> dict:
    """What ``python -m bench.environment.probe FRAMEWORK`` prints, as bench.environment.probe builds it."""
    build = {"tensorflow": {"cuda": "12.5.1", "cudnn": "9", "cuda_build": True},
             "jax": {"cuda": "12.8", "cudnn": "9.8.0", "cuda_build": True},
             "torch": {"cuda": "12.8", "cudnn": "9.10.2", "cuda_build": True}}[framework]
    out = {"framework": framework, "version": {"tensorflow": "2.21.0", "jax": "0.10.2", "torch": "2.13.0"}[framework],
           "build": build, "runtime": None, "gpus": gpus or [], "gpu_error": None, "errors": [], "seconds": 1.0,
           "keras": {"version": "3.15.1", "backend": framework, "jit_compile_auto": framework == "jax",
                     "jit_compile_auto_without_strategy": framework != "torch"}}
    out.update(extra)
    return out


def gpu(ordinal: int, **ids) -> dict:
    return {"ordinal": ordinal, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "uuid": None,
            "pci_bus_id": None, **ids}


def fake_probe(outputs: dict[str, dict]):
    """A probe command: a child process that prints noise and then the given JSON line."""
    def command(framework: str) -> list[str]:
        line = MARKER + json.dumps(outputs[framework])
        return [sys.executable, "-c", f"print('2026 I tensorflow noise'); print({line!r})"]

    return command


@pytest.fixture
def gpu_config(write_config):
    return load_config(write_config("""
        name = "gpu"
        suites = ["train"]
        [train]
        gpus = [1, 2]
        global_batch = [256]
        precision = ["float32", "mixed_float16", "mixed_bfloat16"]
        [devices]
        simulate = false
        """, "gpu.toml"))


# --------------------------------------------------------------------------- the probe runner


def test_probe_line_is_found_among_framework_noise_and_matched_by_bus_id():
    nvml = two_gpus()
    out = probe_output("tensorflow", [gpu(0, pci_bus_id="0000:3b:00.0"), gpu(1, pci_bus_id="0000:18:00.0")])
    facts = fw.collect(["tensorflow"], nvml=nvml, env={}, command=fake_probe({"tensorflow": out}))
    tf = facts["tensorflow"]
    assert tf["status"] == "ok" and tf["version"] == "2.21.0" and tf["build"]["cuda"] == "12.5.1"
    assert [(g["nvml_index"], g["nvml_uuid"], g["matched_by"]) for g in tf["gpus"]] == [
        (1, UUIDS[1], "pci_bus_id"), (0, UUIDS[0], "pci_bus_id")]
    # Identical GPUs: CUDA numbers them in bus order, so TensorFlow's GPU 0 "should" be NVML 0; it is not.
    assert [g["monitor_nvml_index"] for g in tf["gpus"]] == [0, 1]
    assert facts["jax"]["status"] in ("not_probed", "not_installed") and facts["probe"]["probed"] == ["tensorflow"]
    assert [(g["compute_capability"], g["fp16_tensor_cores"], g["bf16_tensor_cores"]) for g in facts["gpus"]] == [
        ("9.0", True, True)] * 2


def test_a_hung_probe_times_out_and_a_crashing_one_reports_its_last_line():
    def command(framework: str) -> list[str]:
        if framework == "tensorflow":
            return [sys.executable, "-c", "import time; time.sleep(60)"]
        return [sys.executable, "-c", "import sys; sys.stderr.write('ImportError: libcudnn.so.9: cannot open\\n'); sys.exit(1)"]

    results = fw.run_probes(["tensorflow", "torch"], timeout_s=1.0, command=command, env={})
    assert results["tensorflow"]["status"] == "timeout" and "within 1 s" in results["tensorflow"]["reason"]
    assert results["tensorflow"]["probe_s"] < 10
    assert results["torch"]["status"] == "failed"
    assert results["torch"]["reason"] == "importing PyTorch failed (exit code 1): ImportError: libcudnn.so.9: cannot open"


# --------------------------------------------------------------------------- verdicts


def test_nvml_sees_gpus_tensorflow_none_is_one_line_with_the_fix(gpu_config, monkeypatch):
    monkeypatch.setattr(fw, "gpu_packages", lambda name: MISSING_CUDA_WHEELS if name == "tensorflow" else {})
    nvml = two_gpus()
    facts = fw.collect(["tensorflow"], nvml=nvml, env={}, command=fake_probe({"tensorflow": probe_output("tensorflow")}))
    verdict = judge(gpu_config, facts, gpu_inventory(nvml), {})
    assert not verdict.runnable
    assert verdict.line == "NVML sees 2 GPUs but TensorFlow sees none: install tensorflow[and-cuda]"
    assert verdict.gpus_unseen and "\n" not in verdict.line


@pytest.mark.parametrize("build, env, fix", [
    ({"cuda": "13.0", "cudnn": "9", "cuda_build": True}, {},
     "the driver (550.54.15) supports CUDA 12.4 but TensorFlow was built for CUDA 13.0: upgrade the NVIDIA driver"),
    ({"cuda": None, "cudnn": None, "cuda_build": False}, {},
     'this TensorFlow is a CPU-only build: pip install "tensorflow[and-cuda]"'),
    ({"cuda": "12.5.1", "cudnn": "9", "cuda_build": True}, {"CUDA_VISIBLE_DEVICES": ""},
     "CUDA_VISIBLE_DEVICES='' hides every GPU: unset it"),
])
def test_the_fix_names_the_cause(gpu_config, monkeypatch, build, env, fix):
    monkeypatch.setattr(fw, "gpu_packages", lambda name: MISSING_CUDA_WHEELS)
    nvml = two_gpus()
    facts = fw.collect(["tensorflow"], nvml=nvml, env=env,
                       command=fake_probe({"tensorflow": probe_output("tensorflow", build=build)}))
    assert judge(gpu_config, facts, gpu_inventory(nvml), env).line == f"NVML sees 2 GPUs but TensorFlow sees none: {fix}"


def test_matching_uuids_are_ok(write_config):
    config = load_config(write_config('name = "t"\n[train]\nbackend = ["torch"]\ngpus = [1]\n'))
    nvml = two_gpus()
    out = probe_output("torch", [gpu(0, uuid=UUIDS[0]), gpu(1, uuid=UUIDS[1])])
    facts = fw.collect(["torch"], nvml=nvml, env={}, command=fake_probe({"torch": out}))
    assert [(g["nvml_index"], g["matched_by"], g["monitor_nvml_index"]) for g in facts["torch"]["gpus"]] == [
        (0, "uuid", 0), (1, "uuid", 1)]
    verdict = judge(config, facts, gpu_inventory(nvml), {})
    assert verdict.runnable and not verdict.gpus_unseen
    assert verdict.line.endswith("can run here (PyTorch sees 2 of 2 NVML GPU(s))")
    assert not [f for f in verdict.findings if f.level != "note"]


def test_a_gpu_the_monitor_would_confuse_is_a_warning_with_the_fix(gpu_config):
    nvml = two_gpus()
    out = probe_output("tensorflow", [gpu(0, pci_bus_id=BUSES[1]), gpu(1, pci_bus_id=BUSES[0])])
    facts = fw.collect(["tensorflow"], nvml=nvml, env={}, command=fake_probe({"tensorflow": out}))
    verdict = judge(gpu_config, facts, gpu_inventory(nvml), {})
    assert verdict.runnable
    warnings = [f.line for f in verdict.findings if f.level == "warning"]
    assert any("GPU metrics would describe the wrong GPU: export CUDA_DEVICE_ORDER=PCI_BUS_ID" in w for w in warnings)


def test_old_gpus_are_warned_about_missing_tensor_cores(gpu_config):
    nvml = FakeNvml([FakeGpu(uuid=UUIDS[0], name="Tesla P100-PCIE-16GB", compute_capability=(6, 0))])
    out = probe_output("tensorflow", [gpu(0, pci_bus_id=BUSES[0])])
    facts = fw.collect(["tensorflow"], nvml=nvml, env={}, command=fake_probe({"tensorflow": out}))
    lines = [f.line for f in judge(gpu_config, facts, gpu_inventory(nvml), {}).findings]
    assert any("no float16 tensor cores" in line for line in lines)
    assert any("no bfloat16 tensor cores" in line for line in lines)


def test_cpu_box_says_plainly_there_is_no_gpu(write_config, monkeypatch):
    nvml = FakeNvml([], init_error=NVMLError_LibraryNotFound)
    facts = fw.collect(["tensorflow"], nvml=nvml, env={}, command=fake_probe({"tensorflow": probe_output("tensorflow")}))
    inventory = gpu_inventory(nvml)
    default = judge(load_config(REPO / "configs" / "default.toml"), facts, inventory, {})
    assert not default.runnable and not default.gpus_unseen  # bench run records skips here, as before
    assert default.line.startswith("no NVIDIA GPU here (NVML: NVML library (libnvidia-ml.so.1) not found")
    assert default.line.endswith("python -m bench run --config configs/quick.toml")
    assert judge(load_config(REPO / "configs" / "quick.toml"), facts, inventory, {}).runnable


def test_a_framework_not_installed_is_said_plainly(gpu_config):
    nvml = two_gpus()
    facts = fw.collect([], nvml=nvml, env={})
    facts["tensorflow"] = {**facts["tensorflow"], "status": "not_installed", "version": None}
    verdict = judge(gpu_config, facts, gpu_inventory(nvml), {})
    assert verdict.line == 'TensorFlow: not installed: pip install "tensorflow[and-cuda]"'
    screen = format_screen("gpu.toml", gpu_inventory(nvml), facts, verdict, env={})
    assert "  TensorFlow: not installed" in screen.splitlines()


def test_screen_shows_gpus_frameworks_jit_and_variables(gpu_config):
    nvml = two_gpus()
    out = probe_output("tensorflow", [gpu(0, pci_bus_id=BUSES[0]), gpu(1, pci_bus_id=BUSES[1])])
    facts = fw.collect(["tensorflow"], nvml=nvml, env={}, command=fake_probe({"tensorflow": out}))
    env = {"XLA_FLAGS": "--xla_gpu_autotune_level=0", "TF_CPP_MIN_LOG_LEVEL": "2", "TF_TOKEN_app": "secret"}
    verdict = judge(gpu_config, facts, gpu_inventory(nvml), env)
    screen = format_screen("gpu.toml", gpu_inventory(nvml), facts, verdict, env=env)
    assert "NVIDIA driver  550.54.15, supports CUDA 12.4 (NVML)" in screen
    assert "tensor cores: float16 yes, bfloat16 yes" in screen
    assert "TensorFlow 2.21.0: built for CUDA 12.5.1, cuDNN 9; sees 2 GPUs: 0 -> NVML 0 (pci_bus_id)" in screen
    assert 'jit_compile="auto"' in screen and "tensorflow: no XLA (under MirroredStrategy" in screen
    assert "Variables that change results: XLA_FLAGS=--xla_gpu_autotune_level=0" in screen
    assert "secret" not in screen and "TF_CPP_MIN_LOG_LEVEL" not in screen
    assert screen.splitlines()[-1].startswith("Verdict: ready (exit 0): ")


def test_recorded_variables_leave_out_other_tools_and_secrets():
    env = {"XLA_FLAGS": "x", "NCCL_DEBUG": "INFO", "TF_GPU_ALLOCATOR": "cuda_malloc_async",
           "TF_CLI_CONFIG_FILE": "/root/.terraformrc", "TF_TOKEN_app_terraform_io": "abc", "HOME": "/root"}
    assert relevant_env_vars(env) == {"NCCL_DEBUG": "INFO", "TF_GPU_ALLOCATOR": "cuda_malloc_async", "XLA_FLAGS": "x"}


# --------------------------------------------------------------------------- the commands


@pytest.fixture
def gpu_host(monkeypatch):
    """Two NVML GPUs; TensorFlow installed without its CUDA wheels sees none; JAX and torch see none either."""
    monkeypatch.setitem(sys.modules, "pynvml", two_gpus())
    monkeypatch.setattr(fw, "gpu_packages", lambda name: MISSING_CUDA_WHEELS if name == "tensorflow" else {})
    monkeypatch.setattr(fw, "probe_command", fake_probe({name: probe_output(name) for name in fw.FRAMEWORKS}))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_doctor_exits_1_with_the_verdict_line(gpu_host, capsys):
    code = cli.main(["doctor", "--config", str(REPO / "configs" / "default.toml")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[-1] == ("Verdict: NOT READY (exit 1): NVML sees 2 GPUs but TensorFlow sees none: "
                                    "install tensorflow[and-cuda]")
    assert "GPU 0          NVIDIA H100 80GB HBM3 · compute capability 9.0 · 81,920 MiB" in out


def test_bench_run_of_a_gpu_config_refuses_and_writes_nothing(gpu_host, write_config, tmp_path, capsys):
    config = write_config('name = "gpu"\nsuites = ["train"]\n[train]\ngpus = [1]\n[devices]\nsimulate = false\n'
                          '[data]\nsource = "auto"\ndownload_timeout_s = 0.01\n')
    results = tmp_path / "results"
    code = cli.main(["run", "--config", str(config), "--results-dir", str(results)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: NVML sees 2 GPUs but TensorFlow sees none: install tensorflow[and-cuda]; ")
    assert "--set devices.simulate=true" in err[-1]
    assert not results.exists() or not any(results.iterdir())


def test_simulation_allowed_explicitly_is_not_refused(gpu_config, monkeypatch):
    monkeypatch.setattr(fw, "gpu_packages", lambda name: MISSING_CUDA_WHEELS)
    nvml = two_gpus()
    raw = {k: v for k, v in gpu_config.to_dict().items() if k not in ("path", "sha256")}
    raw["devices"] = {"simulate": True}
    simulated = parse_config(raw, source="gpu.toml")
    facts = fw.collect(["tensorflow"], nvml=nvml, env={}, command=fake_probe({"tensorflow": probe_output("tensorflow")}))
    verdict = judge(simulated, facts, gpu_inventory(nvml), {})
    assert verdict.runnable and not verdict.gpus_unseen
    assert any("simulate = true" in f.line for f in verdict.findings if f.level == "warning")


def test_real_probe_of_the_installed_tensorflow():
    """The one real probe: the installed TensorFlow and Keras, in a child process."""
    facts = fw.run_probes(["tensorflow"])["tensorflow"]
    assert facts["status"] == "ok", facts["reason"]
    assert facts["version"] == fw.installed_version("tensorflow") and facts["build"]["cuda_build"] is not None
    if not gpu_inventory()["gpus"]:
        assert facts["gpus"] == []
    # Under MirroredStrategy (how the suite builds every TensorFlow case) "auto" never means XLA.
    assert facts["keras"]["jit_compile_auto"] is False
