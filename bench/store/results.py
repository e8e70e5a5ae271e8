"""The results store: one run = one versioned JSON document (schema in ``docs/results.md``).

While a sweep runs, every finished case is appended to ``<run_id>.partial.jsonl`` (one JSON object per
line, flushed and fsync'd), so a ``kill -9`` loses at most the case in flight. When the sweep ends the
log is folded into ``<run_id>.json`` through a temporary file and an atomic rename; readers never see
half a file. Compare and report read these files only.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.errors import UserError

SCHEMA_VERSION = 1
RUN_KIND = "keras-gpu-bench/run"
PARTIAL_SUFFIX = ".partial.jsonl"


class ResultsError(UserError):
    """A results file that cannot be read or written as asked."""


# --------------------------------------------------------------------------- writing


def write_json_atomic(path: Path, document: Mapping[str, Any]) -> Path:
    """Write JSON next to ``path`` then rename over it: the old file or the new one, never a mix."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ResultsError(_write_failure(path.parent, exc)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=1, sort_keys=False, default=_json_default, allow_nan=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; results and baselines are meant to be shared like any file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ResultsError(_write_failure(path, exc)) from None
    return path


def _write_failure(where: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"cannot write {where}: disk full; free space and rerun with --resume (finished cases are kept)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: not writable; choose another --results-dir"
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


class CaseLog:
    """Append-only log of finished cases for one run: the crash-safe half of the store."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, header: Mapping[str, Any]) -> CaseLog:
        log = cls(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as fh:
                fh.write(json.dumps({"header": header}, default=_json_default) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except FileExistsError:
            raise ResultsError(f"{path} already exists; use --resume {path} to continue that run") from None
        except OSError as exc:
            raise ResultsError(_write_failure(path, exc)) from None
        return log

    def append(self, case: Mapping[str, Any]) -> None:
        line = json.dumps({"case": case}, default=_json_default) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise ResultsError(_write_failure(self.path, exc)) from None

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
            raise ResultsError(_write_failure(self.path, exc)) from None

    def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Header and every complete case line; a torn last line (killed mid-write) is dropped."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ResultsError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        header: dict[str, Any] | None = None
        cases: list[dict[str, Any]] = []
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break  # torn final write: that case is simply not finished
                raise ResultsError(f"{self.path}: line {number} is corrupt; the log cannot be resumed") from None
            if "header" in entry:
                header = entry["header"]
            elif "case" in entry:
                cases.append(entry["case"])
        if header is None:
            raise ResultsError(f"{self.path}: no run header; not a results log of this tool")
        return header, cases


def finalize_run(log: CaseLog, final_path: Path, finished_utc: str, complete: bool = True,
                 order: Iterable[str] | None = None,
                 derive: Callable[[list[dict[str, Any]]], dict[str, Any] | None] | None = None) -> Path:
    """Fold a case log into the run document; the log is removed only after the rename succeeded.

    ``derive`` may add fields computed across cases (e.g. Keras-vs-native ratios) and return tables
    computed from them (stored under ``derived``); it never changes the raw samples.
    """
    header, cases = log.read()
    cases = _dedupe(cases)
    derived = derive(cases) if derive is not None else None
    if order is not None:
        rank = {case_id: i for i, case_id in enumerate(order)}
        cases.sort(key=lambda c: rank.get(c.get("case_id"), len(rank)))
    document = dict(header)
    document["finished_utc"] = finished_utc
    document["complete"] = complete
    document["cases"] = cases
    if derived:
        document["derived"] = derived
    write_json_atomic(final_path, document)
    if complete:
        log.path.unlink(missing_ok=True)
    return final_path


def _dedupe(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Last record of each case wins (a resumed case replaces its earlier crash record)."""
    by_id: dict[str, dict[str, Any]] = {}
    for case in cases:
        by_id.pop(case["case_id"], None)
        by_id[case["case_id"]] = case
    return list(by_id.values())


# --------------------------------------------------------------------------- reading


def load_run(path: str | Path) -> dict[str, Any]:
    """Read and check a run document (or a baseline, which is the same thing)."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file not found: {path}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON (truncated or corrupt?): {exc.msg} at line {exc.lineno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read: {exc}") from None
    return check_run(document, str(path))


def check_run(document: Any, where: str = "<run>") -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("kind") != RUN_KIND:
        raise ResultsError(f"{where}: not a results file of this tool (no kind = {RUN_KIND!r})")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        upgrade = _UPGRADES.get(version)
        if upgrade is None:
            raise ResultsError(
                f"{where}: schema_version {version!r} is not supported (this tool reads {SCHEMA_VERSION}); "
                "upgrade the tool or regenerate the file"
            )
        document = upgrade(document)
    if not isinstance(document.get("cases"), list):
        raise ResultsError(f"{where}: 'cases' is missing or not a list")
    for i, case in enumerate(document["cases"]):
        if not isinstance(case, dict) or not {"case_id", "suite", "params", "status"} <= set(case):
            raise ResultsError(f"{where}: case #{i} lacks case_id/suite/params/status")
    return document


# Old schema versions are upgraded by named functions, never silently (asv's update_to_N habit).
_UPGRADES: dict[Any, Any] = {}


def cases_frame(run: Mapping[str, Any] | str | Path, suite: str | None = None):
    """A tidy pandas DataFrame, one row per case.

    Columns: ``params.*`` flattened to their names (gpus, global_batch, ...), then status, reason,
    data_source, flags (``simulated``, ``synthetic_data``, ...), and every measurement field as a dotted
    column (``samples_per_second.median``). Raw per-round lists stay as list cells.
    """
    import pandas as pd

    document = load_run(run) if isinstance(run, (str, Path)) else check_run(dict(run))
    rows = []
    for case in document["cases"]:
        if suite is not None and case["suite"] != suite:
            continue
        row: dict[str, Any] = {"run_id": document.get("run_id"), "case_id": case["case_id"], "suite": case["suite"]}
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
