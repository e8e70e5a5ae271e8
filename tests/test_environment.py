"""Environment fingerprint and the CUDA_VISIBLE_DEVICES preflight (NVML faked at the boundary)."""

from __future__ import annotations

import pytest

from bench.environment.fingerprint import check_cuda_visible_devices, fingerprint
from bench.monitor.inventory import GpuMappingError
from tests.fake_pynvml import FakeGpu, FakeNvml


def _two_gpus():
    return FakeNvml([FakeGpu(uuid="GPU-aaaa-1111", bus_id="00000000:18:00.0"),
                     FakeGpu(uuid="GPU-bbbb-2222", bus_id="00000000:3B:00.0")])


@pytest.mark.parametrize("value", ["7", "0,9", "GPU-ffff-0000", "banana"])
def test_cuda_visible_devices_pointing_at_nothing_is_refused(value):
    with pytest.raises(GpuMappingError) as err:
        check_cuda_visible_devices({"CUDA_VISIBLE_DEVICES": value}, nvml_module=_two_gpus())
    assert "\n" not in str(err.value) and err.value.exit_code == 2


@pytest.mark.parametrize("value", ["0", "1,0", "GPU-bbbb", "0,1"])
def test_cuda_visible_devices_naming_real_gpus_passes(value):
    assert check_cuda_visible_devices({"CUDA_VISIBLE_DEVICES": value}, nvml_module=_two_gpus()) is None


@pytest.mark.parametrize("value", ["", "-1", " "])
def test_hiding_every_gpu_is_a_note_not_an_error(value):
    note = check_cuda_visible_devices({"CUDA_VISIBLE_DEVICES": value}, nvml_module=_two_gpus())
    assert note and "hides every GPU" in note


def test_without_nvml_nothing_is_checked():
    from tests.fake_pynvml import NVMLError_LibraryNotFound

    fake = FakeNvml([], init_error=NVMLError_LibraryNotFound)
    assert check_cuda_visible_devices({"CUDA_VISIBLE_DEVICES": "3"}, nvml_module=fake) is None
    assert check_cuda_visible_devices({}, nvml_module=fake) is None


def test_fingerprint_has_what_comparisons_need(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    monkeypatch.setenv("UNRELATED_SECRET", "nope")
    fp = fingerprint("abc", 3)
    assert fp["packages"]["tensorflow"] and fp["packages"]["keras"] and fp["packages"]["numpy"]
    assert fp["env_vars"]["TF_CPP_MIN_LOG_LEVEL"] == "1" and fp["env_vars"]["XLA_FLAGS"]
    assert "UNRELATED_SECRET" not in fp["env_vars"]
    assert fp["config_sha256"] == "abc" and fp["seed"] == 3
    assert fp["cpu"] and fp["cpu_count"] >= 1 and fp["python"]
    assert len(fp["git_commit"] or "") in (0, 40)
    assert isinstance(fp["gpus"], list) and fp["nvml"]


def test_commit_from_the_environment_when_there_is_no_git(tmp_path, monkeypatch):
    from bench.environment.fingerprint import git_state

    monkeypatch.setenv("BENCH_GIT_COMMIT", "a" * 40)
    assert git_state(tmp_path) == ("a" * 40, None)
