"""The JSON Schema of the audit document, generated from the pydantic models.

report_templates/report.schema.json is committed so that consumers (dashboards, other CI steps) can
validate a report without installing llmaudit. It is never edited by hand: a test fails when it differs
from the models, and this script rewrites it.

    python -m llmaudit.report.schema --check     # exit 1 if the committed file is stale
    python -m llmaudit.report.schema --write     # regenerate it
    python -m llmaudit.report.schema             # print it
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmaudit.report.baseline import Comparison
from llmaudit.report.document import SCHEMA_VERSION, AuditDocument
from llmaudit.report.redact import RedactionInfo
from llmaudit.resources import data_dir

SCHEMA_FILE = "report.schema.json"
# Sections of `extras` that llmaudit's own report modules write; other keys stay free-form.
KNOWN_EXTRAS = {"baseline": Comparison, "redaction": RedactionInfo}


def schema_path() -> Path:
    return data_dir("report_templates") / SCHEMA_FILE


def document_schema() -> dict:
    # Serialization mode: the schema describes the JSON we write (model_dump_json), not what we accept.
    schema = AuditDocument.model_json_schema(mode="serialization")
    defs = schema.setdefault("$defs", {})
    extras_props = {}
    for name, model in KNOWN_EXTRAS.items():
        sub = model.model_json_schema(mode="serialization")
        for def_name, definition in sub.pop("$defs", {}).items():
            if def_name in defs and defs[def_name] != definition:
                raise RuntimeError(f"two different schema definitions named {def_name}")
            defs[def_name] = definition
        defs[model.__name__] = sub
        extras_props[name] = {"$ref": f"#/$defs/{model.__name__}"}
    extras = schema["properties"]["extras"]
    extras["properties"] = extras_props
    extras.setdefault("additionalProperties", True)
    schema["$defs"] = dict(sorted(defs.items()))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "llmaudit audit document",
        "description": f"Output of `llmaudit analyze --json` (schema_version {SCHEMA_VERSION}). Generated from "
        "llmaudit.report.document.AuditDocument by `python -m llmaudit.report.schema --write`; do not edit.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def render_schema() -> str:
    return json.dumps(document_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmaudit.report.schema", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 when the committed schema file is stale")
    group.add_argument("--write", action="store_true", help="rewrite the committed schema file")
    parser.add_argument("--path", type=Path, default=None, help=f"schema file (default: report_templates/{SCHEMA_FILE})")
    args = parser.parse_args(argv)
    path = args.path or schema_path()
    text = render_schema()
    if args.write:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
        return 0
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run `python -m llmaudit.report.schema --write`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
