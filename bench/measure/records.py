"""Building case records (the shape is documented in docs/results.md) and describing failures.

Shared by every suite so that a skipped or failed case looks the same wherever it came from.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

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


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def describe_exception(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": key_line(str(exc))}


class CaseClock:
    """Wall time of a whole case (set-up included), on the monotonic clock."""

    def __init__(self) -> None:
        self.started_utc = utc_now()
        self._t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0


def base_record(suite: str, case_id: str, params: dict[str, Any], data_source: str, clock: CaseClock,
                flags: dict[str, bool] | None = None, devices: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "suite": suite,
        "case_id": case_id,
        "params": params,
        "status": "ok",
        "reason": None,
        "error": None,
        "data_source": data_source,
        "flags": {"simulated": False, "synthetic_data": data_source == "synthetic", **(flags or {})},
        "devices": devices or {},
        "started_utc": clock.started_utc,
        "duration_s": None,
        "metrics": {},
    }


def finish(record: dict[str, Any], clock: CaseClock, status: str = "ok", reason: str | None = None,
           error: BaseException | None = None) -> dict[str, Any]:
    record["status"] = status
    if error is not None:
        record["error"] = describe_exception(error)
        reason = reason or f"{record['error']['type']}: {record['error']['message']}"
    record["reason"] = reason
    record["duration_s"] = round(clock.elapsed(), 3)
    return record


# Every status a case record can carry (docs/results.md says which suite uses which).
STATUSES = ("ok", "skipped", "failed", "wrong", "not_on_cpu", "not_converged")


def measure_into(record: dict[str, Any], clock: CaseClock,
                 body: Callable[[], tuple[str, str] | None]) -> dict[str, Any]:
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
