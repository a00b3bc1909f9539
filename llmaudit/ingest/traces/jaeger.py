"""Jaeger JSON: the UI's "download" and the query API's /api/traces response."""

from __future__ import annotations

import orjson

from llmaudit.ingest.core import Format, Reject
from llmaudit.ingest.traces.spans import SPAN_KEY, BadRecord, SpanColumns, check_id, read_document, text_value

# Jaeger keeps the OTLP kind and status in tags (set by the OTLP receiver / SDK exporters).
_KIND_TAG = {"client": "client", "server": "server", "producer": "producer", "consumer": "consumer", "internal": "internal"}


def _tag_value(tag: dict):
    t = (tag.get("type") or "string").lower()
    v = tag.get("value")
    if t in ("int64", "int"):
        return int(v)
    if t in ("float64", "float"):
        return float(v)
    if t == "bool":
        return v if type(v) is bool else str(v).lower() == "true"
    return v


def _tags(tags) -> dict:
    out = {}
    for tag in tags or ():
        if type(tag) is not dict or type(tag.get("key")) is not str:
            raise BadRecord("tag without a string key")
        text = text_value(_tag_value(tag))
        if text is not None:
            out[tag["key"]] = text
    return out


def _trace_id(value) -> str:
    # Jaeger drops leading zeros of 64-bit ids; pad back to the OTLP width.
    if type(value) is str and 0 < len(value) < 32:
        value = value.rjust(32, "0")
    return check_id(value, 32, "traceID")


def _span_id(value, what: str) -> str:
    if type(value) is str and 0 < len(value) < 16:
        value = value.rjust(16, "0")
    return check_id(value, 16, what)


def sniff_jaeger(head: bytes, name: str) -> bool:
    h = head.lstrip()
    return h.startswith(b"{") and b'"traceID"' in h and b'"data"' in h


def parse_document(data: bytes) -> tuple[SpanColumns, list, int]:
    cols = SpanColumns()
    rejects: list = []
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return cols, [Reject(None, None, None, f"invalid JSON: {exc}")], 0
    traces = doc.get("data") if type(doc) is dict else None
    if type(traces) is not list:
        return cols, [Reject(None, 0, None, "not a Jaeger export: no data list")], 0
    seen = 0
    for ti, trace in enumerate(traces):
        if type(trace) is not dict:
            rejects.append(Reject(None, None, f"data[{ti}]", "trace is not an object"))
            continue
        processes = trace.get("processes") or {}
        proc_cache: dict = {}
        for si, sp in enumerate(trace.get("spans") or ()):
            seen += 1
            try:
                if type(sp) is not dict:
                    raise BadRecord("span is not an object")
                trace_id = _trace_id(sp.get("traceID") or trace.get("traceID"))
                span_id = _span_id(sp.get("spanID"), "spanID")
                parent = None
                for ref in sp.get("references") or ():
                    if ref.get("refType", "CHILD_OF") == "CHILD_OF" and ref.get("spanID"):
                        parent = _span_id(ref["spanID"], "references.spanID")
                        break
                if parent is None and sp.get("parentSpanID") not in (None, "", "0"):
                    parent = _span_id(sp["parentSpanID"], "parentSpanID")
                start = sp.get("startTime")
                if type(start) is not int:
                    raise BadRecord("startTime must be an integer of microseconds")
                duration = sp.get("duration") or 0
                if type(duration) not in (int, float):
                    raise BadRecord("duration must be a number of microseconds")
                attrs = _tags(sp.get("tags"))
                pid = sp.get("processID")
                if pid not in proc_cache:
                    proc = (processes.get(pid) if pid is not None else sp.get("process")) or {}
                    res = _tags(proc.get("tags"))
                    service = proc.get("serviceName")
                    if service is not None:
                        res.setdefault("service.name", service)
                    proc_cache[pid] = (service, orjson.dumps(res).decode())
                service, res_json = proc_cache[pid]
                kind = _KIND_TAG.get(attrs.pop("span.kind", "").lower(), "unspecified")
                status_code = "unset"
                otel_status = attrs.pop("otel.status_code", "").upper()
                if otel_status == "ERROR" or attrs.get("error") == "true":
                    status_code = "error"
                elif otel_status == "OK":
                    status_code = "ok"
                status_message = attrs.pop("otel.status_description", None)
                scope_name = attrs.pop("otel.library.name", None) or attrs.pop("otel.scope.name", None)
                events = None
                if sp.get("logs"):
                    events = orjson.dumps(
                        [
                            {
                                "name": next((f.get("value") for f in log.get("fields") or () if f.get("key") == "event"), None),
                                "time_ns": int(log.get("timestamp", 0)) * 1000,
                                "attributes": _tags(log.get("fields")),
                            }
                            for log in sp["logs"]
                        ]
                    ).decode()
            except (BadRecord, AttributeError, TypeError, ValueError) as exc:
                rejects.append(Reject(None, None, f"data[{ti}].spans[{si}]", str(exc) or type(exc).__name__))
                continue
            cols.trace_id.append(trace_id)
            cols.span_id.append(span_id)
            cols.parent_span_id.append(parent)
            name = sp.get("operationName")
            cols.name.append(name if type(name) is str else None)
            cols.kind.append(kind)
            cols.start_us.append(start)
            cols.end_us.append(start + int(duration))
            cols.status_code.append(status_code)
            cols.status_message.append(status_message)
            cols.service.append(service)
            cols.scope_name.append(scope_name)
            cols.attributes.append(orjson.dumps(attrs))
            cols.resource_ids.append(cols.resource_index(res_json))
            cols.events.append(events)
    return cols, rejects, seen


FORMAT = Format("jaeger-json", "traces", "spans", SPAN_KEY, sniff_jaeger, read_document(parse_document))
