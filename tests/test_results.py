"""The results store: crash-safe case log, atomic final document, strict reading, tidy DataFrame."""

from __future__ import annotations

import errno
import json
from datetime import datetime, timedelta, timezone

import pytest

from bench.cases import CpuPredictCase, TrainCase
from bench.measure.records import CaseClock, base_record, finish
from bench.store import results
from bench.store.results import (
    CaseLog,
    ResultsError,
    cases_frame,
    finalize_run,
    load_run,
    read_run,
    write_json_atomic,
)
from bench.store.schema import RunHeader, run_id_stamp, utc_now

HEADER = RunHeader.model_validate({
    "kind": results.RUN_KIND, "schema_version": results.SCHEMA_VERSION, "run_id": "r1",
    "created_utc": "2026-01-01T00:00:00Z", "tool": {"name": "keras-gpu-bench", "version": "0.1.0"}, "config": {},
    "environment": {"python": "3.11.7", "platform": "Linux", "machine": "x86_64", "cpu": "cpu", "cpu_count": 2,
                    "hostname": "h", "packages": {}, "gpus": [], "driver_version": None,
                    "cuda_driver_version": None, "nvml": "no NVML", "env_vars": {}, "git_commit": None,
                    "git_dirty": None, "config_sha256": "", "seed": 0},
    "data": {"source": "synthetic", "synthetic": True, "path": None, "sha256": None, "train_samples": 60000,
             "test_samples": 10000, "note": "test"},
})
FINISHED = "2026-01-01T00:10:00Z"


def _case(batch: int, status: str = "ok", sps: float = 100.0, **metrics):
    """A train record through the one exit every measured case takes (records.finish)."""
    case = TrainCase("tensorflow", 1, batch, "float32", False)
    draft = base_record("train", case.case_id, case.params(), "synthetic", CaseClock(), flags={"simulated": True})
    draft["devices"] = {"strategy": "MirroredStrategy", "devices": ["/cpu:0"], "replicas": 1, "kind": "cpu",
                        "simulated": True}
    draft["metrics"] = {"samples_per_second": {"n": 2, "median": sps, "q1": sps, "q3": sps, "iqr": 0.0, "min": sps,
                                               "max": sps, "mean": sps, "stdev": 0.0, "cv": 0.01},
                        "round_s": [0.1, 0.2], **metrics}
    return finish(draft, CaseClock(), status, None if status == "ok" else "boom")


def _id(batch: int) -> str:
    return TrainCase("tensorflow", 1, batch, "float32", False).case_id


def _document(*cases) -> dict:
    return {**HEADER.to_dict(), "finished_utc": FINISHED, "complete": True, "cases": [c.to_dict() for c in cases]}


def test_log_then_finalize(tmp_path):
    log = CaseLog.create(tmp_path / "r1.partial.jsonl", HEADER)
    log.append(_case(1))
    log.append(_case(2, "failed"))
    final = finalize_run(log, tmp_path / "r1.json", FINISHED, order=[_id(2), _id(1)])
    doc = load_run(final)
    assert [c["case_id"] for c in doc["cases"]] == [_id(2), _id(1)]
    assert doc["complete"] is True and doc["schema_version"] == 2 and not log.path.exists()


def test_interrupted_run_is_a_document_marked_incomplete_next_to_its_kept_log(tmp_path):
    log = CaseLog.create(tmp_path / "r1.partial.jsonl", HEADER)
    log.append(_case(1))
    final = finalize_run(log, tmp_path / "r1.json", FINISHED, complete=False)
    assert load_run(final)["complete"] is False and [c.case_id for c in read_run(final).cases] == [_id(1)]
    assert log.path.exists()  # kept for --resume, which finalises the same file again
    log.append(_case(2))
    assert load_run(finalize_run(log, final, FINISHED))["complete"] is True and not log.path.exists()


def test_log_takes_records_only(tmp_path):
    log = CaseLog.create(tmp_path / "r1.partial.jsonl", HEADER)
    with pytest.raises(TypeError, match="CaseRecord"):
        log.append(_case(1).to_dict())
    with pytest.raises(TypeError, match="RunHeader"):
        CaseLog.create(tmp_path / "r2.partial.jsonl", HEADER.to_dict())


def test_log_refuses_to_overwrite(tmp_path):
    CaseLog.create(tmp_path / "x.partial.jsonl", HEADER)
    with pytest.raises(ResultsError, match="already exists; use --resume"):
        CaseLog.create(tmp_path / "x.partial.jsonl", HEADER)


def test_torn_last_line_is_dropped_but_middle_corruption_is_refused(tmp_path):
    log = CaseLog.create(tmp_path / "r.partial.jsonl", HEADER)
    log.append(_case(1))
    with open(log.path, "a") as fh:
        fh.write('{"case": {"case_id": "b", "sta')  # killed mid-write
    header, cases = log.read()
    assert header.run_id == "r1" and [c.case_id for c in cases] == [_id(1)]
    with open(log.path, "a") as fh:
        fh.write("\n" + json.dumps({"case": _case(3).to_dict()}) + "\n")
    with pytest.raises(ResultsError, match="line 3 is corrupt"):
        log.read()


def test_a_damaged_line_in_the_log_names_its_line_and_field(tmp_path):
    log = CaseLog.create(tmp_path / "r.partial.jsonl", HEADER)
    log.append(_case(1))
    damaged = _case(2).to_dict()
    damaged["duration_s"] = "slow"
    with open(log.path, "a") as fh:
        fh.write(json.dumps({"case": damaged}) + "\n")
    with pytest.raises(ResultsError) as err:
        log.read()
    assert "line 3: duration_s: Input should be a valid number" in str(err.value) and "\n" not in str(err.value)


def test_last_record_of_a_case_wins(tmp_path):
    log = CaseLog.create(tmp_path / "r.partial.jsonl", HEADER)
    log.append(_case(1, "failed"))
    log.append(_case(1, "ok"))
    doc = load_run(finalize_run(log, tmp_path / "r.json", FINISHED))
    assert [(c["case_id"], c["status"]) for c in doc["cases"]] == [(_id(1), "ok")]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"kind": "something-else"}', "not a results file of this tool"),
        (json.dumps({**HEADER.to_dict(), "schema_version": 99, "cases": []}), "schema_version 99 is not supported"),
        (json.dumps({**HEADER.to_dict(), "finished_utc": FINISHED, "complete": True, "cases": {}}),
         "cases: Input should be a valid list"),
        (json.dumps({**HEADER.to_dict(), "finished_utc": FINISHED, "complete": True, "cases": [{"case_id": "x"}]}),
         "cases.0: Unable to extract tag using discriminator 'suite'"),
        (json.dumps({**HEADER.to_dict(), "finished_utc": FINISHED, "complete": True,
                     "cases": [{**_case(1).to_dict(), "suite": "mystery"}]}),
         "cases.0: Input tag 'mystery' found using 'suite' does not match any of the expected tags"),
    ],
)
def test_load_run_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError) as err:
        load_run(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_wrong_types_are_refused_not_coerced(tmp_path):
    document = _document(_case(1))
    document["cases"][0]["params"]["gpus"] = "1"
    document["cases"][0]["metrics"]["round_s"] = [0.1, True]
    path = write_json_atomic(tmp_path / "r.json", document)
    with pytest.raises(ResultsError) as err:
        load_run(path)
    assert "cases.0.params.gpus: Input should be a valid integer (got '1')" in str(err.value)
    assert "cases.0.metrics.round_s.1: Input should be a valid number (got True)" in str(err.value)


def test_truncated_results_file(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", _document(_case(1)))
    path.write_text(path.read_text()[:40])
    with pytest.raises(ResultsError, match="truncated or corrupt"):
        load_run(path)


def test_atomic_write_keeps_old_file_on_disk_full(tmp_path, monkeypatch):
    path = write_json_atomic(tmp_path / "r.json", {"v": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", full)
    with pytest.raises(ResultsError, match="disk full"):
        write_json_atomic(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def test_unwritable_directory(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    try:
        if _can_write(target):
            pytest.skip("running as a user who can write anywhere (root without CAP restrictions)")
        with pytest.raises(ResultsError, match="not writable"):
            CaseLog.create(target / "r.partial.jsonl", HEADER)
    finally:
        target.chmod(0o700)


def _can_write(path):
    try:
        (path / ".probe").write_text("x")
        (path / ".probe").unlink()
        return True
    except OSError:
        return False


def test_cases_frame_is_tidy(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", _document(_case(1), _case(2, sps=50.0)))
    frame = cases_frame(path)
    assert list(frame["case_id"]) == [_id(1), _id(2)]
    assert list(frame["samples_per_second.median"]) == [100.0, 50.0]
    for column in ("gpus", "global_batch", "precision", "jit_compile", "status", "data_source", "simulated",
                   "synthetic_data", "devices.strategy"):
        assert column in frame.columns
    assert frame["round_s"][0] == [0.1, 0.2]
    assert cases_frame(path, suite="cpu_predict").empty
    assert cases_frame(read_run(path)).equals(frame)


def test_repair_cuts_only_a_torn_tail(tmp_path):
    log = CaseLog.create(tmp_path / "r.partial.jsonl", HEADER)
    log.append(_case(1))
    intact = log.path.read_bytes()
    assert log.repair() == 0 and log.path.read_bytes() == intact
    with open(log.path, "a") as fh:
        fh.write('{"case": {"case_id": "b"')
    assert log.repair() > 0 and log.path.read_bytes() == intact
    log.append(_case(3))
    assert [c.case_id for c in log.read()[1]] == [_id(1), _id(3)]


def test_written_files_are_not_private(tmp_path):
    import os
    import stat

    path = write_json_atomic(tmp_path / "r.json", {"v": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_cases_frame_keeps_integer_columns_integer_across_suites(tmp_path):
    predict = CpuPredictCase("tensorflow", "float32", True, 32, "clone")
    draft = base_record("cpu_predict", predict.case_id, predict.params(), "synthetic", CaseClock())
    draft["metrics"] = {"total_s": 0.5}
    other = finish(draft, CaseClock())
    path = write_json_atomic(tmp_path / "r.json", _document(_case(1), other))
    frame = cases_frame(path)
    assert str(frame["gpus"].dtype) == "Int64" and frame["gpus"][0] == 1 and frame["gpus"].isna()[1]
    assert str(frame["predict_batch"].dtype) == "Int64"
    assert frame["jit_compile"].dtype == object  # booleans are not integers


def test_timestamps_have_one_format():
    local = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert utc_now(local) == "2026-01-02T03:04:05Z" and run_id_stamp(local) == "20260102T030405Z"
