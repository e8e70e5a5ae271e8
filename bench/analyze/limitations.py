"""Known framework limitations: failures a case is expected to hit, told apart from a broken setup.

A registry keyed by the error and the conditions it appears under. A failed case that matches an entry is
a *known limitation* (shown with the upstream link and one sentence); anything else that failed is a
*failure*, which is what a user must look at. The suite records both the same way — status ``failed``,
the exception's key line — because the failure *is* the measurement (the CPU-prediction suite exists to
show keras-team/keras#20308); this module only classifies, at finalise time, for the report and the
terminal.

Exception text is shortened for the page and machine paths are stripped (``/home/...``, ``/work/...``,
``.../site-packages/``): a report is shared, and a path says nothing about the failure but where the
tool happened to be installed. The full key line stays in the case record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Case = Mapping[str, Any]

# "located in device .../CPU:1 from device .../CPU:0": a variable XLA cannot reach on another device.
CROSS_DEVICE = r"Trying to access resource .* located in device .* from device"


def _param(case: Case, key: str, default: Any = None) -> Any:
    return (case.get("params") or {}).get(key, default)


@dataclass(frozen=True)
class Limitation:
    """One known limitation: where it applies, what its error looks like, and where it is tracked."""

    key: str
    issue: str | None  # "keras-team/keras#19005"; None where no upstream issue tracks it
    url: str
    title: str
    sentence: str
    error: str  # regular expression searched in "<type>: <message>" and the reason
    applies: Callable[[Case], bool]


REGISTRY: tuple[Limitation, ...] = (
    Limitation(
        "keras-19005", "keras-team/keras#19005", "https://github.com/keras-team/keras/issues/19005",
        "explicit jit_compile=True with 2+ replicas under MirroredStrategy",
        "Keras 3 on TensorFlow cannot XLA-compile a step whose variables are mirrored on other devices; "
        'jit_compile="auto" (or one device) trains.',
        CROSS_DEVICE,
        lambda c: (c.get("suite") == "train" and _param(c, "backend") == "tensorflow"
                   and _param(c, "jit_compile") is True and int(_param(c, "gpus", 1) or 1) >= 2),
    ),
    Limitation(
        "keras-20308", "keras-team/keras#20308", "https://github.com/keras-team/keras/issues/20308",
        'naive CPU prediction after GPU/XLA training on TensorFlow',
        'Predicting under keras.device("cpu:0") with the model trained on the GPU reaches variables that live '
        "on the GPU; the workarounds (recompile, clone, saved_model) rebuild it on the CPU.",
        CROSS_DEVICE,
        lambda c: (c.get("suite") == "cpu_predict" and _param(c, "backend") == "tensorflow"
                   and _param(c, "method") == "naive"),
    ),
    Limitation(
        "keras-20585", "keras-team/keras#20585", "https://github.com/keras-team/keras/issues/20585",
        "Keras 3 fit under MultiWorkerMirroredStrategy",
        "Keras 3's fit hands a PerReplica value to a tensor conversion under MultiWorkerMirroredStrategy; "
        "tf_keras (Keras 2) trains the same cluster.",
        r"PerReplica",
        lambda c: (c.get("suite") == "train" and _param(c, "backend") == "tensorflow"
                   and int(_param(c, "workers", 1) or 1) > 1 and _param(c, "keras", "keras3") == "keras3"),
    ),
    Limitation(
        "keras-torch-device-copy", None,
        "https://github.com/keras-team/keras/blob/v3.15.1/keras/src/backend/torch/core.py",
        'clone / saved_model under keras.device("cpu:0") on torch',
        'Keras 3.15.1\'s torch Variable copies itself to "cpu:0" as a plain tensor, and the Dropout seed '
        'state is re-wrapped as a gradient-requiring Parameter; keras.device("cpu") works (no upstream '
        "issue found; the link is the code).",
        r"Only Tensors of floating point and complex dtype can require gradients",
        lambda c: (c.get("suite") == "cpu_predict" and _param(c, "backend") == "torch"
                   and _param(c, "method") in ("clone", "saved_model")),
    ),
)

# --------------------------------------------------------------------------- text for a shared page

# Any absolute path up to and including site-packages/ or dist-packages/: what follows names the package.
_PACKAGES = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s\\/'\"():,;]+)+[\\/](?:site|dist)-packages[\\/]")
# Absolute paths with a place installs and homes live anywhere in them (CI checks out under /check/work/...),
# down to their last part ("/work/x/y.json" -> ".../y.json"). Not after "/", ":" or a word character, so a
# URL's path and a TensorFlow device name ("/job:localhost/...") stay.
_SEGMENT = r"/[^\s/'\"():,;]+"
_MACHINE = re.compile(rf"(?<![\w:./])(?:{_SEGMENT})*?"
                      r"/(?:home|work|tmp|root|Users|mnt|scratch|data|opt|srv|var|private|nfs|check|builds|runner)"
                      rf"(?:{_SEGMENT})*/([^\s/'\"():,;]+)")
SHORT_CHARS = 160


def strip_paths(text: str | None) -> str | None:
    """``text`` without machine paths: packages named from their package root, other paths as ``…/name``."""
    if text is None:
        return None
    text = _PACKAGES.sub("", str(text))
    return _MACHINE.sub(lambda m: f"…/{m.group(1)}", text)


def shorten(text: str | None, limit: int = SHORT_CHARS) -> str | None:
    """One line of at most ``limit`` characters, cut at a space where one is near, paths stripped."""
    if text is None:
        return None
    line = " ".join(strip_paths(text).split())
    if len(line) <= limit:
        return line
    cut = line[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.6 else cut).rstrip(" ,;:") + " …"


# --------------------------------------------------------------------------- classification


def match(case: Case) -> Limitation | None:
    """The registry entry a failed case matches (its conditions and its error), or None."""
    if case.get("status") != "failed":
        return None
    error = case.get("error") or {}
    text = f"{error.get('type') or ''}: {error.get('message') or ''} {case.get('reason') or ''}"
    return next((entry for entry in REGISTRY if entry.applies(case) and re.search(entry.error, text)), None)


KINDS = {"failed": "failure", "skipped": "skipped", "wrong": "wrong result", "not_on_cpu": "not on the CPU",
         "not_converged": "not converged"}


def classify(cases: Iterable[Case]) -> list[dict[str, Any]]:
    """One row per case that did not finish ``ok``: ``kind`` is "known limitation", "failure" (anything
    failed that the registry does not know), "skipped", "not applicable" (a method that does not exist
    on the backend), "wrong result", "not on the CPU" or "not converged"; a known limitation carries its issue, link, title and sentence; ``reason_short`` is the
    reason for a shared page (paths stripped, cut to one line)."""
    rows = []
    for case in cases:
        status = case.get("status")
        if status == "ok":
            continue
        known = match(case)
        error = case.get("error") or {}
        kind = "known limitation" if known else KINDS.get(str(status), str(status))
        if status == "skipped" and _param(case, "method") == "strategy" and _param(case, "backend") != "tensorflow":
            kind = "not applicable"  # tf.distribute exists only on TensorFlow: by design, not a gap
        rows.append({
            "case_id": case.get("case_id"), "suite": case.get("suite"), "status": status,
            "backend": _param(case, "backend"),
            "kind": kind,
            "limitation": known.key if known else None, "issue": known.issue if known else None,
            "url": known.url if known else None, "title": known.title if known else None,
            "sentence": known.sentence if known else None,
            "error_type": error.get("type"),
            "reason_short": shorten(case.get("reason")),
        })
    return rows


def summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per kind, and per known limitation its cases (for the first screen and the terminal)."""
    rows = list(rows)
    counts: dict[str, int] = {}
    known: dict[str, dict[str, Any]] = {}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
        if row["limitation"]:
            entry = known.setdefault(row["limitation"], {key: row[key] for key in ("issue", "url", "title",
                                                                                   "sentence")})
            entry.setdefault("cases", []).append(row["case_id"])
    return {"counts": counts, "known": known,
            "failures": [row["case_id"] for row in rows if row["kind"] == "failure"]}
