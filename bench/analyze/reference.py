"""Reference context: a run's key cases beside the committed reference runs (``results/reference/``) made on the
same GPU model with the same backend — "your H200: X; reference H200: Y", Lambda's habit — or a sentence
saying that no such reference exists.

Cross-run, so it is not stored in a run's ``derived``: the report calls :func:`context` with the reference
documents it found. A case matches a reference case when suite, backend, GPU count, global batch,
precision, jit_compile, input, steps_per_execution and the native variant agree; the values are each file's own samples/s for
the case (``derived.summary`` where the run has it, else the median of its rounds). The ratio is yours /
the reference's: different machines and days, so no interval — a large gap says "look", not "regressed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.analyze.flops import gpu_model
from bench.analyze.paired import case_value as median_value
from bench.analyze.peaks import find_device

Doc = Mapping[str, Any]
KEY = ("backend", "gpus", "global_batch", "precision", "jit_compile", "input", "steps_per_execution", "variant")
# Files from before the input axis fed fit a tf.data pipeline or a cycling PyDataset: "unrecorded", never taken for
# device input (bench.analyze.bottleneck's rule).
DEFAULTS = {"input": "unrecorded", "steps_per_execution": 1, "gpus": 1}
SHOWN = 3


def _key(case: Mapping[str, Any]) -> tuple[Any, ...]:
    params = {**DEFAULTS, **(case.get("params") or {})}
    return (case.get("suite"), *(repr(params.get(k)) for k in KEY))


def _model(doc: Doc) -> str | None:
    name = gpu_model(doc.get("environment"))
    device = find_device(name)
    return device.model if device else name


def _backends(doc: Doc) -> list[str]:
    return list(dict.fromkeys(str((c.get("params") or {}).get("backend")) for c in doc.get("cases") or []
                              if c.get("suite") == "train" and c.get("status") == "ok"))


def _values(doc: Doc) -> dict[str, float]:
    summary = {row["case_id"]: row.get("value") for row in (doc.get("derived") or {}).get("summary") or []}
    out = {}
    for case in doc.get("cases") or []:
        found = summary.get(case["case_id"]) if case["case_id"] in summary else median_value(case)
        if found:
            out[case["case_id"]] = float(found)
    return out


def _label(doc: Doc) -> str:
    return f"{_model(doc) or 'no GPU'} · {', '.join(_backends(doc)) or 'no training case'}"


def context(document: Doc, references: Sequence[Doc]) -> dict[str, Any]:
    """``{"sentence", "rows": [{"case_id", "yours", "reference", "ratio", "reference_run"}], "references"}``."""
    known = [r for r in references if r.get("run_id") != document.get("run_id")]
    listing = "; ".join(_label(r) for r in known) or "none"
    if len(known) < len(references):
        return {"sentence": "This is a committed reference run.", "rows": [], "references": listing}
    model = _model(document)
    category = ((document.get("derived") or {}).get("category") or {}).get("devices")
    if model is None or category not in (None, "real GPU"):
        return {"sentence": f"No reference for this run: the committed reference runs are real GPUs ({listing}).",
                "rows": [], "references": listing}
    mine = _values(document)
    best_ids = [row["case_id"] for row in (document.get("derived") or {}).get("best_configurations") or []]
    rows = []
    for reference in known:
        if _model(reference) != model:
            continue
        theirs = {_key(c): c for c in reference.get("cases") or [] if c.get("status") == "ok"}
        their_values = _values(reference)
        matched = [c for c in document.get("cases") or [] if c["case_id"] in mine and _key(c) in theirs
                   and theirs[_key(c)]["case_id"] in their_values]
        matched.sort(key=lambda c: (c["case_id"] not in best_ids, -mine[c["case_id"]]))
        for case in matched[:SHOWN]:
            ref = their_values[theirs[_key(case)]["case_id"]]
            rows.append({"case_id": case["case_id"], "yours": mine[case["case_id"]], "reference": ref,
                         "ratio": mine[case["case_id"]] / ref, "reference_run": reference.get("run_id")})
    if not rows:
        return {"sentence": f"No committed reference run matches this {model} and backend ({', '.join(_backends(document))}"
                            f"); the references: {listing}.", "rows": [], "references": listing}
    return {"sentence": f"Your {model} beside the committed reference run(s) on the same GPU and backend (yours / "
                        "reference; different machines and days, so no interval):", "rows": rows,
            "references": listing}
