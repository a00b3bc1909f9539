"""otlp-json: one ExportTraceServiceRequest as a whole file (an SDK's JSON exporter, often pretty-printed)."""

from __future__ import annotations

from functools import partial

from llmaudit.ingest.core import Format
from llmaudit.ingest.traces.otlp import RESOURCE_SPANS_KEY, parse_document
from llmaudit.ingest.traces.otlp_fast import add_line
from llmaudit.ingest.traces.spans import SPAN_KEY, read_document


def sniff_otlp_json(head: bytes, name: str) -> bool:
    return head.lstrip().startswith(b"{") and bool(RESOURCE_SPANS_KEY.search(head))


FORMAT = Format("otlp-json", "traces", "spans", SPAN_KEY, sniff_otlp_json,
                read_document(partial(parse_document, fast=add_line)))
