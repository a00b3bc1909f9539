"""otel-js-json: spans of the OpenTelemetry JavaScript SDK written out as JSON: a list of ReadableSpan
objects (what tests and debugging scripts save from an InMemorySpanExporter), or one of them.

A ReadableSpan names things its own way: ids in `spanContext` (`_spanContext` when the span object
itself was serialized), the parent in `parentSpanContext` (SDK 2) or `parentSpanId` (SDK 1), times as
HrTime `[seconds, nanoseconds]`, attributes as a plain object, and the JS SpanKind enum, which counts
from INTERNAL = 0 (OTLP counts from UNSPECIFIED = 0).
"""

from __future__ import annotations

import orjson

from llmaudit.ingest.core import Format, Reject, short
from llmaudit.ingest.traces.spans import (
    SPAN_KEY,
    STATUS_CODES,
    BadRecord,
    SpanColumns,
    check_id,
    inherit_starts,
    read_document,
    text_value,
)

# @opentelemetry/api SpanKind
_KINDS = ("internal", "server", "client", "producer", "consumer")


def sniff_otel_js(head: bytes, name: str) -> bool:
    h = head.lstrip()
    # The ids come first in a ReadableSpan; times may follow attributes larger than the head.
    return h[:1] in (b"[", b"{") and (b'"spanContext"' in h or b'"_spanContext"' in h) and b'"traceId"' in h


def _hrtime_us(value, what: str) -> int | None:
    """Microseconds of an HrTime [seconds, nanoseconds]; None when absent."""
    if value is None:
        return None
    if (type(value) is list and len(value) == 2 and all(type(v) is int for v in value)
            and 0 <= value[1] < 1_000_000_000):
        return value[0] * 1_000_000 + value[1] // 1000
    raise BadRecord(f"{what} must be an HrTime [seconds, nanoseconds], got {short(value)}")


def _attributes(attrs, what: str) -> dict:
    if attrs is None:
        return {}
    if type(attrs) is not dict:
        raise BadRecord(f"{what} must be an object")
    out = {}
    for key, value in attrs.items():
        text = text_value(value)
        if text is not None:
            out[key] = text
    return out


def _resource(span: dict) -> dict:
    """Resource attributes: `attributes` of a plain copy, `_attributes` / `_rawAttributes` of a
    serialized Resource object (SDK 1 / SDK 2)."""
    res = span.get("resource")
    if type(res) is not dict:
        return {}
    attrs = res.get("attributes", res.get("_attributes"))
    if attrs is None and type(res.get("_rawAttributes")) is list:
        attrs = {kv[0]: kv[1] for kv in res["_rawAttributes"] if type(kv) is list and len(kv) == 2}
    return _attributes(attrs, "resource attributes")


def _events(events) -> str | None:
    if not events:
        return None
    out = []
    for ev in events:
        if type(ev) is not dict:
            raise BadRecord("event is not an object")
        time_us = _hrtime_us(ev.get("time"), "event time")
        out.append({"name": ev.get("name"), "time_ns": time_us * 1000 if time_us is not None else None,
                    "attributes": ev.get("attributes") or {}})
    return orjson.dumps(out).decode()


def _row(sp) -> dict:
    if type(sp) is not dict:
        raise BadRecord("span is not an object")
    ctx = sp.get("spanContext") or sp.get("_spanContext")
    if type(ctx) is not dict:
        raise BadRecord("span has no spanContext")
    trace_id = check_id(ctx.get("traceId"), 32, "spanContext.traceId")
    span_id = check_id(ctx.get("spanId"), 16, "spanContext.spanId")
    parent_ctx = sp.get("parentSpanContext")
    parent = parent_ctx.get("spanId") if type(parent_ctx) is dict else sp.get("parentSpanId", sp.get("parentId"))
    parent = check_id(parent, 16, "parent span id") if parent else None
    start = _hrtime_us(sp.get("startTime"), "startTime")
    end = _hrtime_us(sp.get("endTime"), "endTime")
    if end is None and start is not None and sp.get("duration") is not None:
        end = start + _hrtime_us(sp["duration"], "duration")
    kind = sp.get("kind")
    if kind is None:
        kind = "unspecified"
    elif type(kind) is int and 0 <= kind < len(_KINDS):
        kind = _KINDS[kind]
    else:
        raise BadRecord(f"kind must be a SpanKind number 0-4, got {short(kind)}")
    status = sp.get("status") or {}
    code = status.get("code", 0) if type(status) is dict else None
    if type(code) is not int or not 0 <= code < len(STATUS_CODES):
        raise BadRecord(f"status.code must be 0, 1 or 2, got {short(code)}")
    resource = _resource(sp)
    scope = sp.get("instrumentationScope") or sp.get("instrumentationLibrary") or {}
    name = sp.get("name")
    return {
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent,
        "name": name if type(name) is str else None, "kind": kind, "start": start, "end": end,
        "status_code": STATUS_CODES[code], "status_message": status.get("message") or None,
        "service": resource.get("service.name"), "scope_name": scope.get("name") if type(scope) is dict else None,
        "attributes": _attributes(sp.get("attributes"), "attributes"),
        "resource": orjson.dumps(resource).decode(), "events": _events(sp.get("events")),
    }


def parse_document(data: bytes) -> tuple[SpanColumns, list, int]:
    cols = SpanColumns()
    rejects: list = []
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return cols, [Reject(None, None, None, f"invalid JSON: {exc}")], 0
    if type(doc) is dict:
        spans = [(None, doc)]
    elif type(doc) is list:
        spans = [(f"[{i}]", sp) for i, sp in enumerate(doc)]
    else:
        return cols, [Reject(None, 0, None, "not an OpenTelemetry JS span dump: expected a list of spans")], 0
    rows = []
    for where, sp in spans:
        try:
            rows.append(_row(sp))
        except (BadRecord, AttributeError, TypeError, ValueError) as exc:
            rejects.append(Reject(None, None if where else 0, where, str(exc) or type(exc).__name__))
    starts = inherit_starts([r["trace_id"] for r in rows], [r["span_id"] for r in rows],
                            [r["parent_span_id"] for r in rows], [r["start"] for r in rows])
    for row, start in zip(rows, starts):
        row["start"] = start
        cols.add_row(row)
    return cols, rejects, len(spans)


FORMAT = Format("otel-js-json", "traces", "spans", SPAN_KEY, sniff_otel_js, read_document(parse_document))
