"""Jaeger JSON: the query API's /api/traces response and the UI's download ({"data": [trace, ...]}), one
trace object without that wrapper ({"traceID", "spans", "processes"}), and the list of spans that
jaeger-anonymizer writes (each span with its "process" inline). The v3 API's {"result": {...}} is OTLP
inside `result`: the OTLP readers take it."""

from __future__ import annotations

import orjson

from llmaudit.ingest.core import Format, Reject, short
from llmaudit.ingest.traces.spans import (
    SPAN_KEY,
    BadRecord,
    SpanColumns,
    check_id,
    read_document,
    split_shared,
    text_value,
)

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
    if b'"traceID"' not in h:
        return False
    if h.startswith(b"{"):
        return b'"data"' in h or b'"spans"' in h
    return h.startswith(b"[") and b'"spanID"' in h


def _traces(doc) -> tuple[list | None, str]:
    """The trace objects of a document and the path its records are named under, or (None, why not)."""
    if type(doc) is dict:
        data = doc.get("data")
        if type(data) is list:
            return data, "data"
        if type(doc.get("spans")) is list:  # one trace, as the UI downloads it
            return [doc], "trace"
        errors = doc.get("errors")
        if errors:  # the query API's answer when it has no trace to give
            return None, f"Jaeger query API error: {short(errors, 200)}"
        return None, "not a Jaeger export: no data list and no spans"
    if type(doc) is list:
        if all(type(t) is dict and "spans" in t for t in doc):
            return doc, ""
        return [{"spans": doc}], "anonymized"  # jaeger-anonymizer: spans carry their process inline
    return None, "not a Jaeger export: expected a JSON object or list"


def _parent(sp: dict, trace_id: str) -> str | None:
    """As Jaeger reads it: the first CHILD_OF reference into the span's own trace, else the first
    FOLLOWS_FROM one; older exports give parentSpanID instead."""
    follows = None
    for ref in sp.get("references") or ():
        ref_trace = ref.get("traceID")
        if not ref.get("spanID") or (ref_trace and str(ref_trace).lower().rjust(32, "0") != trace_id):
            continue
        ref_type = ref.get("refType", "CHILD_OF")
        if ref_type == "CHILD_OF":
            return _span_id(ref["spanID"], "references.spanID")
        if follows is None and ref_type == "FOLLOWS_FROM":
            follows = ref["spanID"]
    if follows is not None:
        return _span_id(follows, "references.spanID")
    if sp.get("parentSpanID") not in (None, "", "0"):
        return _span_id(sp["parentSpanID"], "parentSpanID")
    return None


def parse_document(data: bytes) -> tuple[SpanColumns, list, int]:
    cols = SpanColumns()
    rejects: list = []
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return cols, [Reject(None, None, None, f"invalid JSON: {exc}")], 0
    traces, path = _traces(doc)
    if traces is None:
        return cols, [Reject(None, 0, None, path)], 0
    seen = 0
    rows: list[dict] = []
    for ti, trace in enumerate(traces):
        # How a record is named in a reject: its path in the document.
        where = {"data": f"data[{ti}].spans", "trace": "spans", "anonymized": ""}.get(path, f"[{ti}].spans")
        if type(trace) is not dict:
            rejects.append(Reject(None, None, where.removesuffix(".spans"), "trace is not an object"))
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
                parent = _parent(sp, trace_id)
                start = sp.get("startTime")
                if type(start) is not int:
                    raise BadRecord("startTime must be an integer of microseconds")
                duration = sp.get("duration") or 0
                if type(duration) not in (int, float):
                    raise BadRecord("duration must be a number of microseconds")
                attrs = _tags(sp.get("tags"))
                pid = sp.get("processID")
                if pid is None or pid not in proc_cache:
                    proc = (processes.get(pid) if pid is not None else sp.get("process")) or {}
                    res = _tags(proc.get("tags"))
                    service = proc.get("serviceName")
                    if service is not None:
                        res.setdefault("service.name", service)
                    proc_cache[pid] = (service, orjson.dumps(res).decode())
                service, res_json = proc_cache[pid]
                if pid is None:  # an inline process belongs to its span alone
                    del proc_cache[pid]
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
                rejects.append(Reject(None, None, f"{where}[{si}]", str(exc) or type(exc).__name__))
                continue
            name = sp.get("operationName")
            rows.append({"trace_id": trace_id, "span_id": span_id, "parent_span_id": parent,
                         "name": name if type(name) is str else None, "kind": kind, "start": start,
                         "end": start + int(duration), "status_code": status_code, "status_message": status_message,
                         "service": service, "scope_name": scope_name, "attributes": attrs, "resource": res_json,
                         "events": events})
    split_shared(rows)  # Zipkin-style client and server halves under one id, stored in Jaeger as they came
    for row in rows:
        cols.add_row(row)
    return cols, rejects, seen


FORMAT = Format("jaeger-json", "traces", "spans", SPAN_KEY, sniff_jaeger, read_document(parse_document))
