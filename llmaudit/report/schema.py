"""The JSON Schemas of what llmaudit writes as JSON, generated from the pydantic models.

report_templates/report.schema.json (the audit document, `analyze --json`), replay.schema.json (a
replay's outcome, `replay --json`) and plan.schema.json (`plan -f json`) are committed so that consumers (dashboards, other CI steps) can
validate them without installing llmaudit. They are never edited by hand: a test fails when one
differs from the models, and this script rewrites them.

    python -m llmaudit.report.schema --check     # exit 1 if a committed file is stale
    python -m llmaudit.report.schema --write     # regenerate them
    python -m llmaudit.report.schema             # print the audit document's
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmaudit.plan.document import PlanDocument
from llmaudit.report.baseline import Comparison
from llmaudit.report.document import SCHEMA_VERSION, AuditDocument
from llmaudit.report.redact import RedactionInfo
from llmaudit.resources import data_dir

SCHEMA_FILE = "report.schema.json"
REPLAY_SCHEMA_FILE = "replay.schema.json"
PLAN_SCHEMA_FILE = "plan.schema.json"
# Sections of `extras` that llmaudit's own report modules write; other keys stay free-form.
KNOWN_EXTRAS = {"baseline": Comparison, "redaction": RedactionInfo, "plan": PlanDocument}


def schema_path(name: str = SCHEMA_FILE) -> Path:
    return data_dir("report_templates") / name


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


def replay_schema() -> dict:
    from llmaudit.replay.workflow import SCHEMA_VERSION as REPLAY_VERSION
    from llmaudit.replay.workflow import ReplayOutcome

    schema = ReplayOutcome.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "llmaudit replay outcome",
        "description": f"Output of `llmaudit replay --json` (schema_version {REPLAY_VERSION}). Generated from "
        "llmaudit.replay.workflow.ReplayOutcome by `python -m llmaudit.report.schema --write`; do not edit.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def plan_schema() -> dict:
    from llmaudit.plan.document import SCHEMA_VERSION as PLAN_VERSION

    schema = PlanDocument.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "llmaudit plan",
        "description": f"Output of `llmaudit plan -f json` and extras.plan of `analyze --plan` (schema_version "
        f"{PLAN_VERSION}). Generated from llmaudit.plan.document.PlanDocument by `python -m llmaudit.report.schema "
        "--write`; do not edit.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


SCHEMAS = {SCHEMA_FILE: document_schema, REPLAY_SCHEMA_FILE: replay_schema, PLAN_SCHEMA_FILE: plan_schema}


def render_schema(name: str = SCHEMA_FILE) -> str:
    return json.dumps(SCHEMAS[name](), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmaudit.report.schema", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 when the committed schema file is stale")
    group.add_argument("--write", action="store_true", help="rewrite the committed schema file")
    parser.add_argument("--which", choices=sorted(SCHEMAS), default=None, help="only this schema (default: all)")
    args = parser.parse_args(argv)
    names = [args.which] if args.which else list(SCHEMAS)
    if not (args.write or args.check):
        sys.stdout.write(render_schema(args.which or SCHEMA_FILE))
        return 0
    stale = 0
    for name in names:
        path, text = schema_path(name), render_schema(name)
        if args.write:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        elif (path.read_text(encoding="utf-8") if path.exists() else "") != text:
            print(f"{path} is stale: run `python -m llmaudit.report.schema --write`", file=sys.stderr)
            stale += 1
        else:
            print(f"{path} is up to date")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
