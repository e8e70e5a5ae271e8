"""The results store: one run = one versioned JSON document (models in :mod:`bench.store.schema`).

While a sweep runs, every finished case is appended to ``<run_id>.partial.jsonl`` (one JSON object per
line, flushed and fsync'd), so a ``kill -9`` loses at most the case in flight. When the sweep ends — or is
interrupted, then marked ``complete: false`` and the log kept for ``--resume`` — the log is folded into
``<run_id>.json`` through a temporary file and an atomic rename; readers never see half a file. Both are
checked against the schema when written and when read. Compare and report read these files only.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bench.errors import ResultsError
from bench.store.schema import (
    RUN_KIND,
    SCHEMA_VERSION,
    CaseRecord,
    Derived,
    RunDocument,
    RunHeader,
    case_record,
    undeclared_fields,
    validation_message,
)
from bench.store.upgrade import upgrade

__all__ = ["DEFAULT_RESULTS_DIR", "PARTIAL_SUFFIX", "RUN_KIND", "SCHEMA_VERSION", "CaseLog", "ResultsError", "cases_frame",
           "finalize_run", "load_run", "parse_run", "read_run", "record_pass", "write_json_atomic", "write_text_atomic"]

PARTIAL_SUFFIX = ".partial.jsonl"
DEFAULT_RESULTS_DIR = Path("results")
# derive(cases) -> (the cases, possibly new records with cross-case fields; tables for ``derived``)
Derive = Callable[[list[CaseRecord]], tuple[list[CaseRecord], Mapping[str, Any]]]


# --------------------------------------------------------------------------- writing


def write_text_atomic(path: Path, text: str, option: str = "--results-dir") -> Path:
    """Write next to ``path`` then rename over it: a reader sees the old file or the new one, never a mix.

    ``option`` names the command-line option that chooses the place, for the error message.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ResultsError(_write_failure(path.parent, exc, option)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; results, baselines and reports are meant to be shared like any file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ResultsError(_write_failure(path, exc, option)) from None
    return path


def write_json_atomic(path: Path, document: Mapping[str, Any] | list[Any] | BaseModel,
                      option: str = "--results-dir") -> Path:
    """A JSON document (a model is written as its stored form) through :func:`write_text_atomic`."""
    data = document.to_dict() if hasattr(document, "to_dict") else document
    text = json.dumps(data, indent=1, default=_json_default, allow_nan=True) + "\n"
    return write_text_atomic(path, text, option)


def _write_failure(where: Path, exc: OSError, option: str) -> str:
    if exc.errno == errno.ENOSPC:
        return f"cannot write {where}: disk full; free space and retry (a run's finished cases are kept for --resume)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: not writable; choose another {option}"
    return f"cannot write {where}: {exc.strerror or exc}"


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays sneak in from frameworks; store them as plain numbers.
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", ()) == ():
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def jsonable(data: Any) -> Any:
    """``data`` as it will read back from a file: numpy scalars to numbers, tuples to lists, paths to text."""
    return json.loads(json.dumps(data, default=_json_default, allow_nan=True))


def _check_declared(model: BaseModel, what: str) -> None:
    unknown = list(undeclared_fields(model))
    if unknown:
        raise ValueError(f"{what} has fields bench/store/schema.py does not declare: {', '.join(unknown)} "
                         "(declare them there; see its docstring)")


class CaseLog:
    """Append-only log of finished cases for one run: the crash-safe half of the store."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, header: RunHeader) -> CaseLog:
        if not isinstance(header, RunHeader):
            raise TypeError(f"CaseLog.create takes a RunHeader, got {type(header).__name__}")
        _check_declared(header, "the run header")
        log = cls(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as fh:
                fh.write(json.dumps({"header": header.to_dict()}, default=_json_default, allow_nan=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except FileExistsError:
            raise ResultsError(f"{path} already exists; use --resume {path} to continue that run") from None
        except OSError as exc:
            raise ResultsError(_write_failure(path, exc, "--results-dir")) from None
        return log

    def append(self, record: CaseRecord) -> None:
        """Append one finished case; only records (``bench.measure.records.finish``) are accepted."""
        if not isinstance(record, CaseRecord):
            raise TypeError(f"the case log takes CaseRecord (bench.measure.records.finish), got {type(record).__name__}")
        _check_declared(record, f"case {record.case_id}")
        line = json.dumps({"case": record.to_dict()}, default=_json_default, allow_nan=True) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise ResultsError(_write_failure(self.path, exc, "--results-dir")) from None

    def repair(self) -> int:
        """Cut a torn final line (the process was killed mid-write) so appends start on a clean line.

        Returns the number of bytes removed. Only the tail is ever touched: a corrupt line in the
        middle is refused by :meth:`read`, not repaired.
        """
        try:
            with open(self.path, "rb+") as fh:
                blob = fh.read()
                good = len(blob)
                if blob and not blob.endswith(b"\n"):
                    good = blob.rfind(b"\n") + 1
                else:
                    last_start = blob.rstrip(b"\n").rfind(b"\n") + 1
                    try:
                        json.loads(blob[last_start:])
                    except json.JSONDecodeError:
                        good = last_start
                if good < len(blob):
                    fh.truncate(good)
                return len(blob) - good
        except OSError as exc:
            raise ResultsError(_write_failure(self.path, exc, "--results-dir")) from None

    def read(self) -> tuple[RunHeader, list[CaseRecord]]:
        """Header and every complete case, checked; a torn last line (killed mid-write) is dropped."""
        header, numbered = self._read_lines()
        numbers = [number for number, _ in numbered]
        document = upgrade({**header, "finished_utc": None, "complete": False,
                            "cases": [case for _, case in numbered]}, str(self.path))
        cases = document.pop("cases")
        for key in ("finished_utc", "complete", "derived"):
            document.pop(key, None)
        try:
            parsed_header = RunHeader.model_validate(document)
        except ValidationError as exc:
            raise ResultsError(f"{self.path}: header: {validation_message(exc)}") from None
        return parsed_header, [self._case(case, number) for number, case in zip(numbers, cases, strict=True)]

    def written_version(self) -> Any:
        """The ``schema_version`` the log's header was written with (before any upgrade)."""
        return self._read_lines()[0].get("schema_version")

    def _read_lines(self) -> tuple[dict[str, Any], list[tuple[int, Any]]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ResultsError(f"cannot read {self.path}: {getattr(exc, 'strerror', None) or exc}") from None
        header: dict[str, Any] | None = None
        cases: list[tuple[int, Any]] = []
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break  # torn final write: that case is simply not finished
                raise ResultsError(f"{self.path}: line {number} is corrupt; the log cannot be resumed") from None
            if isinstance(entry, dict) and isinstance(entry.get("header"), dict):
                header = entry["header"]
            elif isinstance(entry, dict) and "case" in entry:
                cases.append((number, entry["case"]))
        if header is None or header.get("kind") != RUN_KIND:
            raise ResultsError(f"{self.path}: no run header; not a run log of this tool")
        return header, cases

    def _case(self, case: Any, number: int) -> CaseRecord:
        try:
            return case_record(case)
        except ValidationError as exc:
            raise ResultsError(f"{self.path}: line {number}: {validation_message(exc)}") from None


def finalize_run(log: CaseLog, final_path: Path, finished_utc: str, complete: bool = True,
                 order: Iterable[str] | None = None, derive: Derive | None = None) -> Path:
    """Fold a case log into the run document; the log is removed only once a complete run is written.

    ``derive`` returns the cases (new records where it adds cross-case fields, e.g. Keras-vs-native
    ratios) and tables for ``derived``; it never changes the raw samples. An interrupted sweep is
    finalised with ``complete=False``: the document shows what finished, and the log stays for ``--resume``.
    """
    header, cases = log.read()
    cases = _dedupe(cases)
    tables: Mapping[str, Any] = {}
    if derive is not None:
        cases, tables = derive(cases)
    if order is not None:
        rank = {case_id: i for i, case_id in enumerate(order)}
        cases.sort(key=lambda c: rank.get(c.case_id, len(rank)))
    try:
        document = RunDocument.model_validate({
            **header.to_dict(), "finished_utc": finished_utc, "complete": complete, "cases": cases,
            "derived": Derived.model_validate(jsonable(dict(tables))),
        })
    except ValidationError as exc:
        raise ValueError(f"the run document does not match bench/store/schema.py: {validation_message(exc)}") from exc
    _check_declared(document, "the run document")
    write_json_atomic(final_path, document)
    if complete:
        log.path.unlink(missing_ok=True)
    return final_path


def record_pass(record: CaseRecord) -> int:
    """The process (pass) a case-log record was measured in: ``metrics.process.pass_index``, else 0 (suites
    measured once, and every record written before processes were samples)."""
    process = getattr(record.metrics, "process", None)
    return int(process.pass_index) if process is not None else 0


def _dedupe(cases: list[CaseRecord]) -> list[CaseRecord]:
    """Last record of each (case, pass) wins (a resumed case replaces its earlier crash record)."""
    by_key: dict[tuple[str, int], CaseRecord] = {}
    for case in cases:
        key = (case.case_id, record_pass(case))
        by_key.pop(key, None)
        by_key[key] = case
    return list(by_key.values())


# --------------------------------------------------------------------------- reading


def read_run(path: str | Path) -> RunDocument:
    """The one loader of runs: a run document (or baseline) or an unfinished ``.partial.jsonl`` log.

    Checked against the schema, older versions upgraded (:mod:`bench.store.upgrade`); anything else is
    one line (:class:`ResultsError`). A case log reads as a document with ``complete: false``.
    """
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file not found: {path}")
    if path.name.endswith(PARTIAL_SUFFIX):
        header, cases = CaseLog(path).read()
        return RunDocument.model_validate({**header.to_dict(), "finished_utc": None, "complete": False,
                                           "cases": cases})
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON (truncated or corrupt?): {exc.msg} at line {exc.lineno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read: {exc}") from None
    return parse_run(document, str(path))


def load_run(path: str | Path) -> dict[str, Any]:
    """:func:`read_run` as plain JSON data, for readers that index it (compare, report, pandas)."""
    return read_run(path).to_dict()


def parse_run(document: Any, where: str = "<run>") -> RunDocument:
    """Check (and upgrade) run-document data that is already in memory."""
    if isinstance(document, RunDocument):
        return document
    if not isinstance(document, Mapping) or document.get("kind") != RUN_KIND:
        raise ResultsError(f"{where}: not a results file of this tool (no kind = {RUN_KIND!r})")
    document = upgrade(dict(document), where)
    try:
        return RunDocument.model_validate(document)
    except ValidationError as exc:
        raise ResultsError(f"{where}: {validation_message(exc)}; the file is damaged or was not written by "
                           "this tool") from None


def run_created(path: Path) -> str | None:
    """``created_utc`` of a run document, or None for any other file (a comparison, a corrupt file)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("kind") != RUN_KIND:
        return None
    created = document.get("created_utc")
    return created if isinstance(created, str) else ""


def cases_frame(run: RunDocument | Mapping[str, Any] | str | Path, suite: str | None = None):
    """A tidy pandas DataFrame, one row per case.

    Columns: ``params.*`` flattened to their names (gpus, global_batch, ...), then status, reason,
    data_source, flags (``simulated``, ``synthetic_data``, ...), and every measurement field as a dotted
    column (``samples_per_second.median``). Raw per-round lists stay as list cells.
    """
    document = load_run(run) if isinstance(run, (str, Path)) else parse_run(run).to_dict()
    return frame_of_cases(document["cases"], document.get("run_id"), suite)


def frame_of_cases(cases: Iterable[Mapping[str, Any]], run_id: str | None = None, suite: str | None = None):
    """:func:`cases_frame` for case records already checked (plain data), e.g. while a run is finalised."""
    import pandas as pd

    rows = []
    for case in cases:
        if suite is not None and case["suite"] != suite:
            continue
        row: dict[str, Any] = {"run_id": run_id, "case_id": case["case_id"], "suite": case["suite"]}
        row.update(case["params"])
        row["status"] = case["status"]
        row["reason"] = case.get("reason")
        row["data_source"] = case.get("data_source")
        for flag, value in (case.get("flags") or {}).items():
            row[flag] = value
        for key, value in _flatten(case.get("metrics") or {}).items():
            row[key] = value
        for key, value in _flatten(case.get("devices") or {}, "devices").items():
            row[key] = value
        rows.append(row)
    frame = pd.DataFrame(rows)
    # Cases of several suites leave holes (a cpu_predict case has no gpus); keep integer columns integer
    # (pandas' nullable Int64) instead of letting the holes turn them into floats.
    for column in frame.columns:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[column] = frame[column].astype("Int64")
    return frame


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            out.update(_flatten(value, name))
        else:
            out[name] = value
    return out
