"""The one analysis call of a reader: a run document with ``derived`` as the current rules compute it.

A finished run stores its ``derived`` block (``bench.analyze.derive.derive_run`` at finalise time, stamped
with ``derived.version``). A partial case log has none, and a file written by older rules has an older
(or no) version: for those, :func:`with_current_derived` runs the same ``derive_run`` on the (upgraded)
cases, so the report and the terminal never compute a number themselves, and an old file reads like a new
one. A current ``derived`` block is used as stored — even when someone edited it: the page shows what the
file says.
"""

from __future__ import annotations

from typing import Any

from bench.analyze.derive import derive_run
from bench.analyze.run_tables import DERIVED_VERSION
from bench.store.results import jsonable
from bench.store.schema import Derived, case_record

SUITES = ("train", "native", "cpu_predict", "converge")


def is_current(document: dict[str, Any]) -> bool:
    return (document.get("derived") or {}).get("version") == DERIVED_VERSION


def with_current_derived(document: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the document with a current ``derived`` block, whether it had to be derived here)."""
    if is_current(document):
        return document, False
    suites = (document.get("config") or {}).get("suites") or [
        s for s in SUITES if any(c.get("suite") == s for c in document.get("cases") or [])]
    cases, tables = derive_run(list(suites), [case_record(c) for c in document.get("cases") or []], header=document)
    derived = Derived.model_validate(jsonable(tables)).to_dict()
    return {**document, "cases": [case.to_dict() for case in cases], "derived": derived}, True
