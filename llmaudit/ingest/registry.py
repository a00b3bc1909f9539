"""The registry of input formats: every family's formats, most specific first (detection takes the first
that claims a file). It imports the families; they import llmaudit.ingest.core, never this module."""

from __future__ import annotations

from llmaudit.ingest import billing, metrics, traces
from llmaudit.ingest.core import Format

FORMATS: list[Format] = [*traces.FORMATS, *billing.FORMATS, *metrics.FORMATS]


def by_name(name: str) -> Format:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    known = ", ".join(f.name for f in FORMATS)
    raise KeyError(f"unknown format {name!r}; known formats: {known}")


def detect(head: bytes, name: str) -> Format | None:
    for fmt in FORMATS:
        if fmt.sniff(head, name):
            return fmt
    return None
