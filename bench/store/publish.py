"""Write the JSON Schema of the result files into ``docs/schema/``: ``python -m bench.store.publish [DIR]``.

Generated from the models (:mod:`bench.store.schema`, :mod:`bench.store.comparisons`), never edited by
hand; tests/test_schema.py fails when the committed files differ from what the models generate, so a
model change and its published schema land together.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pydantic

from bench.store.comparisons import COMPARISON_KIND, COMPARISON_SCHEMA_VERSION, ComparisonDocument
from bench.store.schema import RUN_KIND, SCHEMA_VERSION, RunDocument

DOCS_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schema"
# Pydantic's output format can change between its versions, so the files say which one wrote them.
GENERATED_BY = "generated from bench/store/schema.py by python -m bench.store.publish with pydantic"


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (draft 2020-12) of every versioned document this tool writes."""
    found = {}
    for kind, version, model in ((RUN_KIND, SCHEMA_VERSION, RunDocument),
                                 (COMPARISON_KIND, COMPARISON_SCHEMA_VERSION, ComparisonDocument)):
        name = f"{kind.rsplit('/', 1)[1]}-v{version}.json"
        schema = model.model_json_schema()
        # The case log's lines are {"header": RunHeader} and {"case": <Suite>CaseRecord}: $defs of the run's.
        found[name] = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                       "$comment": f"{GENERATED_BY} {pydantic.VERSION}; do not edit", **schema,
                       "title": f"{kind} (schema_version {version})"}
    return found


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DOCS_SCHEMA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (folder / name).write_text(render(schema), encoding="utf-8")
        print(folder / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
