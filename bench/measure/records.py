"""Building case records and describing failures, shared by every suite.

A case's measuring code fills a plain dict started by :func:`base_record`; its one exit, :func:`finish`
(or :func:`measure_into`), turns it into the frozen, schema-checked record of its suite
(:mod:`bench.store.schema`), the only thing the case log accepts. So a skipped or failed case looks the
same wherever it came from, and a field the schema does not know is caught at the case that wrote it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from bench.store.results import jsonable
from bench.store.schema import CaseRecord, case_record, undeclared_fields, utc_now, validation_message

# Lines that carry the cause in TensorFlow/XLA/Keras messages, most specific first. TensorFlow's
# InvalidArgumentError starts with "Graph execution error:", which says nothing.
_KEY_LINE_PATTERNS = [
    r"Trying to access resource",
    r"OOM when allocating|ResourceExhausted|out of memory|RESOURCE_EXHAUSTED",
    r"non-finite|NaN|nan loss",
    r"timed out|timeout",
    r"XLA|xla",
]
_BORING = {"graph execution error:", "detected at node", ""}


class CaseSkipped(Exception):
    """The case cannot run on this machine; the reason is the message (a result, not an error)."""


def key_line(message: str, limit: int = 400) -> str:
    """The one line of an exception message a person needs to see."""
    lines = [ln.strip() for ln in str(message).splitlines()]
    for pattern in _KEY_LINE_PATTERNS:
        for line in lines:
            if re.search(pattern, line):
                return line[:limit]
    for line in lines:
        if line.lower() not in _BORING and not line.lower().startswith("detected at node"):
            return line[:limit]
    return ""


class CaseClock:
    """Wall time of a whole case (set-up included), on the monotonic clock."""

    def __init__(self) -> None:
        self.started_utc = utc_now()
        self._t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0


def describe_exception(exc: BaseException) -> dict[str, str]:
    """``{"type", "message"}`` of an exception: its class and the one line a person needs to see."""
    return {"type": type(exc).__name__, "message": key_line(str(exc))}


def base_record(suite: str, case_id: str, params: dict[str, Any], data_source: str, clock: CaseClock,
                flags: dict[str, bool] | None = None, devices: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mutable draft of a case record, filled by the suite's code and closed by :func:`finish`."""
    return {
        "suite": suite,
        "case_id": case_id,
        "params": params,
        "status": "ok",
        "reason": None,
        "error": None,
        "data_source": data_source,
        "flags": {"simulated": False, "synthetic_data": data_source == "synthetic", "unstable": False,
                  "stand_in_device": False, "gpu_metrics_unreliable": False, **(flags or {})},
        "devices": devices or None,
        "started_utc": clock.started_utc,
        "duration_s": None,
        "metrics": {},
    }


def finish(record: dict[str, Any], clock: CaseClock, status: str = "ok", reason: str | None = None,
           error: BaseException | None = None, error_message: str | None = None) -> CaseRecord:
    """Close a draft: status, reason, the error's key line (or ``error_message``) and the case's duration.

    Returns the frozen record. A draft the schema refuses (a wrong type, a field it does not declare) is a
    bug in the measuring code: the case becomes ``failed`` with the schema's message as its reason and its
    metrics dropped, so the sweep goes on and the message says what to fix.
    """
    draft = dict(record)
    draft["status"] = status
    if error is not None:
        draft["error"] = {**describe_exception(error), **({"message": error_message} if error_message else {})}
        reason = reason or f"{draft['error']['type']}: {draft['error']['message']}"
    draft["reason"] = reason
    draft["duration_s"] = round(clock.elapsed(), 3)
    try:
        built = case_record(jsonable(draft))
        undeclared = ", ".join(undeclared_fields(built))
        problem = f"undeclared fields {undeclared}" if undeclared else ""
    except ValidationError as exc:
        problem = validation_message(exc)
    if not problem:
        return built
    message = f"the case's record does not match bench/store/schema.py: {problem}"
    return case_record(jsonable({**draft, "status": "failed", "reason": message, "metrics": {},
                                 "error": {"type": "SchemaError", "message": message}}))


def measure_into(record: dict[str, Any], clock: CaseClock,
                 body: Callable[[], tuple[str, str] | None]) -> CaseRecord:
    """Run a case's body; a skip (``CaseSkipped``) or any framework error becomes the record's status.

    Every suite's case ends here, so a failing case is always a result with its exception's key line,
    never a crashed worker. A body that measured fine but whose outcome is not ``ok`` (converge:
    ``not_converged``) returns ``(status, reason)``.
    """
    try:
        outcome = body()
    except CaseSkipped as exc:
        return finish(record, clock, "skipped", str(exc))
    except Exception as exc:  # noqa: BLE001 - any framework error is this case's result
        return finish(record, clock, "failed", error=exc)
    if outcome is not None:
        return finish(record, clock, *outcome)
    return finish(record, clock)
