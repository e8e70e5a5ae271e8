"""The results store: crash-safe case log, atomic final document, strict reading, tidy DataFrame."""

from __future__ import annotations

import errno
import json

import pytest

from bench.store import results
from bench.store.results import CaseLog, ResultsError, cases_frame, finalize_run, load_run, write_json_atomic

HEADER = {"kind": results.RUN_KIND, "schema_version": results.SCHEMA_VERSION, "run_id": "r1",
          "config": {}, "environment": {}, "data": {"source": "synthetic"}}


def _case(case_id: str, status: str = "ok", sps: float = 100.0) -> dict:
    return {"suite": "train", "case_id": case_id, "status": status, "reason": None, "data_source": "synthetic",
            "params": {"backend": "tensorflow", "gpus": 1, "global_batch": 64, "precision": "float32",
                       "jit_compile": False},
            "flags": {"simulated": True, "synthetic_data": True},
            "devices": {"strategy": "MirroredStrategy", "replicas": 1},
            "metrics": {"samples_per_second": {"median": sps, "cv": 0.01}, "round_s": [0.1, 0.2]}}


def test_log_then_finalize(tmp_path):
    log = CaseLog.create(tmp_path / "r1.partial.jsonl", HEADER)
    log.append(_case("a"))
    log.append(_case("b", "failed"))
    final = finalize_run(log, tmp_path / "r1.json", "2026-01-01T00:00:00Z", order=["b", "a"])
    doc = load_run(final)
    assert [c["case_id"] for c in doc["cases"]] == ["b", "a"]
    assert doc["complete"] is True and not log.path.exists()


def test_log_refuses_to_overwrite(tmp_path):
    CaseLog.create(tmp_path / "x.partial.jsonl", HEADER)
    with pytest.raises(ResultsError, match="already exists; use --resume"):
        CaseLog.create(tmp_path / "x.partial.jsonl", HEADER)


def test_torn_last_line_is_dropped_but_middle_corruption_is_refused(tmp_path):
    log = CaseLog.create(tmp_path / "r.partial.jsonl", HEADER)
    log.append(_case("a"))
    with open(log.path, "a") as fh:
        fh.write('{"case": {"case_id": "b", "sta')  # killed mid-write
    header, cases = log.read()
    assert header["run_id"] == "r1" and [c["case_id"] for c in cases] == ["a"]
    with open(log.path, "a") as fh:
        fh.write("\n" + json.dumps({"case": _case("c")}) + "\n")
    with pytest.raises(ResultsError, match="line 3 is corrupt"):
        log.read()


def test_last_record_of_a_case_wins(tmp_path):
    log = CaseLog.create(tmp_path / "r.partial.jsonl", HEADER)
    log.append(_case("a", "failed"))
    log.append(_case("a", "ok"))
    doc = load_run(finalize_run(log, tmp_path / "r.json", "t"))
    assert [(c["case_id"], c["status"]) for c in doc["cases"]] == [("a", "ok")]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"kind": "something-else"}', "not a results file of this tool"),
        (json.dumps({**HEADER, "schema_version": 99, "cases": []}), "schema_version 99 is not supported"),
        (json.dumps({**HEADER, "cases": {}}), "'cases' is missing or not a list"),
        (json.dumps({**HEADER, "cases": [{"case_id": "x"}]}), "lacks case_id/suite/params/status"),
    ],
)
def test_load_run_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError) as err:
        load_run(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_truncated_results_file(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", {**HEADER, "cases": [_case("a")]})
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
        if (target / "probe").parent.stat().st_mode and _can_write(target):
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
    path = write_json_atomic(tmp_path / "r.json", {**HEADER, "cases": [_case("a"), _case("b", sps=50.0)]})
    frame = cases_frame(path)
    assert list(frame["case_id"]) == ["a", "b"]
    assert list(frame["samples_per_second.median"]) == [100.0, 50.0]
    for column in ("gpus", "global_batch", "precision", "jit_compile", "status", "data_source", "simulated",
                   "synthetic_data", "devices.strategy"):
        assert column in frame.columns
    assert frame["round_s"][0] == [0.1, 0.2]
    assert cases_frame(path, suite="cpu_predict").empty


def test_repair_cuts_only_a_torn_tail(tmp_path):
    log = CaseLog.create(tmp_path / "r.partial.jsonl", HEADER)
    log.append(_case("a"))
    intact = log.path.read_bytes()
    assert log.repair() == 0 and log.path.read_bytes() == intact
    with open(log.path, "a") as fh:
        fh.write('{"case": {"case_id": "b"')
    assert log.repair() > 0 and log.path.read_bytes() == intact
    log.append(_case("c"))
    assert [c["case_id"] for c in log.read()[1]] == ["a", "c"]


def test_written_files_are_not_private(tmp_path):
    import os
    import stat

    path = write_json_atomic(tmp_path / "r.json", {"v": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_cases_frame_keeps_integer_columns_integer_across_suites(tmp_path):
    other = {"suite": "cpu_predict", "case_id": "p", "status": "ok", "params": {"predict_batch": 32, "method": "clone"},
             "metrics": {"total_s": 0.5}}
    path = write_json_atomic(tmp_path / "r.json", {**HEADER, "cases": [_case("a"), other]})
    frame = cases_frame(path)
    assert str(frame["gpus"].dtype) == "Int64" and frame["gpus"][0] == 1 and frame["gpus"].isna()[1]
    assert str(frame["predict_batch"].dtype) == "Int64"
    assert frame["jit_compile"].dtype == object  # booleans are not integers
