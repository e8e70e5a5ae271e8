"""Old run documents brought up to the current schema by named functions, one per version step.

asv's habit (``asv/results.py``, ``update_to_N``): a file says which version wrote it; reading it runs
``update_to_2``, then ``update_to_3``, ... in order, so each function only knows its own step. Unknown
versions are refused with one line. Each function takes and returns plain JSON data (never the models:
they describe only the current version).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bench.errors import ResultsError
from bench.store.schema import SCHEMA_VERSION

FLAG_NAMES = ("simulated", "synthetic_data", "unstable", "stand_in_device", "gpu_metrics_unreliable")


def update_to_2(document: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2.

    - ``devices`` of a case that ended before it was placed: ``{}`` -> ``null`` (an empty object claimed a
      placement that has no strategy, devices or kind).
    - ``flags``: every flag present, false unless set (version 1 wrote only the flags its suite sets, so
      a missing ``stand_in_device`` on a train case read like an unknown).
    - ``derived``: always present, ``{}`` when nothing was derived.
    """
    document = copy.deepcopy(document)
    for case in document.get("cases") or []:
        if not isinstance(case, dict):
            continue  # left for validation to refuse with its position
        if case.get("devices") == {}:
            case["devices"] = None
        flags = case.get("flags")
        if isinstance(flags, dict):
            case["flags"] = {**dict.fromkeys(FLAG_NAMES, False), **flags}
    document.setdefault("derived", {})
    document["schema_version"] = 2
    return document


# version found in the file -> the function that lifts it one step.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: update_to_2}


def upgrade(document: dict[str, Any], where: str) -> dict[str, Any]:
    """The document at :data:`SCHEMA_VERSION`; one line for a version this tool cannot read."""
    version = document.get("schema_version")
    while version != SCHEMA_VERSION:
        step = UPGRADES.get(version) if isinstance(version, int) and not isinstance(version, bool) else None
        if step is None:
            raise ResultsError(
                f"{where}: schema_version {version!r} is not supported (this tool reads {SCHEMA_VERSION} and "
                f"upgrades {', '.join(str(v) for v in sorted(UPGRADES))}); upgrade the tool or regenerate the file"
            )
        document = step(document)
        version = document["schema_version"]
    return document
