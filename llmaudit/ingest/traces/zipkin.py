"""Zipkin v2 JSON: a list of spans; tag values are always strings."""

from __future__ import annotations

import orjson

from llmaudit.ingest.core import Format, Reject
from llmaudit.ingest.traces.spans import SPAN_KEY, BadRecord, SpanColumns, check_id, read_document

_KINDS = {"CLIENT": "client", "SERVER": "server", "PRODUCER": "producer", "CONSUMER": "consumer"}


def sniff_zipkin(head: bytes, name: str) -> bool:
    h = head.lstrip()
    return h.startswith(b"[") and b'"traceId"' in h and (b'"id"' in h or b'"localEndpoint"' in h)


def parse_document(data: bytes) -> tuple[SpanColumns, list, int]:
    cols = SpanColumns()
    rejects: list = []
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return cols, [Reject(None, None, None, f"invalid JSON: {exc}")], 0
    if type(doc) is not list:
        return cols, [Reject(None, 0, None, "not a Zipkin v2 export: expected a list of spans")], 0
    res_cache: dict = {}
    for i, sp in enumerate(doc):
        try:
            if type(sp) is not dict:
                raise BadRecord("span is not an object")
            tid = sp.get("traceId")
            if type(tid) is str and len(tid) == 16:  # 64-bit trace ids are legal in Zipkin
                tid = tid.rjust(32, "0")
            trace_id = check_id(tid, 32, "traceId")
            span_id = check_id(sp.get("id"), 16, "id")
            parent = sp.get("parentId")
            parent = check_id(parent, 16, "parentId") if parent else None
            start = sp.get("timestamp")
            if type(start) is not int:
                raise BadRecord("timestamp must be an integer of microseconds")
            duration = sp.get("duration") or 0
            if type(duration) not in (int, float):
                raise BadRecord("duration must be a number of microseconds")
            tags = sp.get("tags") or {}
            if type(tags) is not dict or not all(type(v) is str for v in tags.values()):
                raise BadRecord("tags must be an object of strings")
            attrs = dict(tags)
            endpoint = sp.get("localEndpoint") or {}
            service = endpoint.get("serviceName")
            if service not in res_cache:
                res_cache[service] = orjson.dumps({"service.name": service} if service else {}).decode()
            status_code = "error" if "error" in attrs or attrs.get("otel.status_code") == "ERROR" else "unset"
            status_message = attrs.get("error") or attrs.get("otel.status_description")
            events = None
            if sp.get("annotations"):
                events = orjson.dumps(
                    [{"name": a.get("value"), "time_ns": int(a.get("timestamp", 0)) * 1000, "attributes": {}} for a in sp["annotations"]]
                ).decode()
        except (BadRecord, AttributeError, TypeError, ValueError) as exc:
            rejects.append(Reject(None, None, f"[{i}]", str(exc) or type(exc).__name__))
            continue
        cols.trace_id.append(trace_id)
        cols.span_id.append(span_id)
        cols.parent_span_id.append(parent)
        name = sp.get("name")
        cols.name.append(name if type(name) is str else None)
        cols.kind.append(_KINDS.get(str(sp.get("kind", "")).upper(), "unspecified"))
        cols.start_us.append(start)
        cols.end_us.append(start + int(duration))
        cols.status_code.append(status_code)
        cols.status_message.append(status_message)
        cols.service.append(service)
        cols.scope_name.append(attrs.get("otel.library.name") or attrs.get("otel.scope.name"))
        cols.attributes.append(orjson.dumps(attrs))
        cols.resource_ids.append(cols.resource_index(res_cache[service]))
        cols.events.append(events)
    return cols, rejects, len(doc)


FORMAT = Format("zipkin-json", "traces", "spans", SPAN_KEY, sniff_zipkin, read_document(parse_document))
