"""Zipkin v2 JSON: a list of spans (POST /api/v2/spans, GET /api/v2/trace/{id}), a list of such lists
(GET /api/v2/traces), or one span object. Tag values are always strings.

Quirks of real exports: a client span and its server span may share one id (the server half marked
`shared`): both are kept (spans.split_shared). `timestamp` and `duration` may be absent: the start is
taken from the parent, else unknown (NULL), and the end is unknown without a duration.
"""

from __future__ import annotations

import orjson

from llmaudit.ingest.core import Format, Reject
from llmaudit.ingest.traces.spans import (
    SPAN_KEY,
    BadRecord,
    SpanColumns,
    check_id,
    inherit_starts,
    read_document,
    split_shared,
)

_KINDS = {"CLIENT": "client", "SERVER": "server", "PRODUCER": "producer", "CONSUMER": "consumer"}
# Keys only a Zipkin span has: a single span object is told from other JSON objects by them.
_SPAN_OBJECT_KEYS = (b'"localEndpoint"', b'"remoteEndpoint"')


def sniff_zipkin(head: bytes, name: str) -> bool:
    h = head.lstrip()
    if h.startswith(b"["):
        return b'"traceId"' in h and (b'"id"' in h or b'"localEndpoint"' in h)
    return (h.startswith(b"{") and b'"traceId"' in h and b'"id"' in h
            and any(k in h for k in _SPAN_OBJECT_KEYS))


def _id(value, length: int, what: str) -> str:
    # Zipkin ids are 16 or 32 hex digits; some clients drop leading zeros: pad back to the OTLP width.
    if type(value) is str and 0 < len(value) < length:
        value = value.rjust(length, "0")
    return check_id(value, length, what)


def _spans(doc) -> list[tuple[str, object]]:
    """(where, span) of every span in the document, whichever of the three shapes it has."""
    if type(doc) is dict:
        return [("", doc)]
    out = []
    for i, item in enumerate(doc):
        if type(item) is list:  # /api/v2/traces: one list per trace
            out.extend((f"[{i}][{j}]", sp) for j, sp in enumerate(item))
        else:
            out.append((f"[{i}]", item))
    return out


def _row(sp, res_cache: dict) -> dict:
    if type(sp) is not dict:
        raise BadRecord("span is not an object")
    trace_id = _id(sp.get("traceId"), 32, "traceId")  # 64-bit trace ids are legal in Zipkin
    span_id = _id(sp.get("id"), 16, "id")
    parent = sp.get("parentId")
    parent = _id(parent, 16, "parentId") if parent else None
    start = sp.get("timestamp")
    if start is not None and type(start) is not int:
        raise BadRecord("timestamp must be an integer of microseconds")
    duration = sp.get("duration")
    if duration is not None and type(duration) not in (int, float):
        raise BadRecord("duration must be a number of microseconds")
    tags = sp.get("tags") or {}
    if type(tags) is not dict or not all(type(v) is str for v in tags.values()):
        raise BadRecord("tags must be an object of strings")
    attrs = dict(tags)
    endpoint = sp.get("localEndpoint") or {}
    service = endpoint.get("serviceName")
    if service not in res_cache:
        res_cache[service] = orjson.dumps({"service.name": service} if service else {}).decode()
    events = None
    if sp.get("annotations"):
        events = orjson.dumps(
            [{"name": a.get("value"), "time_ns": int(a.get("timestamp", 0)) * 1000, "attributes": {}} for a in sp["annotations"]]
        ).decode()
    name = sp.get("name")
    return {
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent,
        "name": name if type(name) is str else None,
        "kind": _KINDS.get(str(sp.get("kind", "")).upper(), "unspecified"),
        "start": start, "duration": duration, "shared": sp.get("shared") is True,
        "status_code": "error" if "error" in attrs or attrs.get("otel.status_code") == "ERROR" else "unset",
        "status_message": attrs.get("error") or attrs.get("otel.status_description"),
        "service": service, "scope_name": attrs.get("otel.library.name") or attrs.get("otel.scope.name"),
        "attributes": attrs, "resource": res_cache[service], "events": events,
    }


def parse_document(data: bytes) -> tuple[SpanColumns, list, int]:
    cols = SpanColumns()
    rejects: list = []
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return cols, [Reject(None, None, None, f"invalid JSON: {exc}")], 0
    if type(doc) not in (list, dict):
        return cols, [Reject(None, 0, None, "not a Zipkin v2 export: expected a list of spans or one span object")], 0
    spans = _spans(doc)
    res_cache: dict = {}
    rows = []
    for where, sp in spans:
        try:
            rows.append(_row(sp, res_cache))
        except (BadRecord, AttributeError, TypeError, ValueError) as exc:
            # A file of one span object: the record is the file, from byte 0.
            rejects.append(Reject(None, None if where else 0, where or None, str(exc) or type(exc).__name__))
    split_shared(rows)
    starts = inherit_starts([r["trace_id"] for r in rows], [r["span_id"] for r in rows],
                            [r["parent_span_id"] for r in rows], [r["start"] for r in rows])
    for row, start in zip(rows, starts):
        duration = row["duration"]
        row["start"] = start
        row["end"] = start + int(duration) if start is not None and duration is not None else None
        cols.add_row(row)
    return cols, rejects, len(spans)


FORMAT = Format("zipkin-json", "traces", "spans", SPAN_KEY, sniff_zipkin, read_document(parse_document))
