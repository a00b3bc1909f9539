"""OTLP/JSON traces: ExportTraceServiceRequest documents, alone or one per line (Collector file exporter).

Written for speed: this loop runs once per span of a week of production traces, so it touches each
field once, binds list appends to locals, and takes the common (camelCase, spec-following) path
first, falling back to snake_case and older field names only when a field is missing.
"""

from __future__ import annotations

import base64
import re
from typing import Callable

import orjson

from llmaudit.ingest.core import Reject, short
from llmaudit.ingest.traces.spans import (
    SPAN_KINDS,
    STATUS_CODES,
    BadRecord,
    SpanColumns,
    check_id,
    text_value,
)

# What makes a JSON text an OTLP trace export, in either spelling: the formats' sniffers look for it.
RESOURCE_SPANS_KEY = re.compile(rb'"resource_?[sS]pans"\s*:')

_LOWER_HEX = frozenset("0123456789abcdef")
_is_hex = _LOWER_HEX.issuperset  # ids in canonical form pass here; the rest go the slow way


def _field(obj: dict, camel: str, snake: str):
    value = obj.get(camel)
    if value is None:
        value = obj.get(snake)
    return value


def any_value(v):
    """Python value of an OTLP AnyValue (camelCase or snake_case keys)."""
    if type(v) is not dict:
        raise BadRecord(f"attribute value must be an AnyValue object, got {type(v).__name__}")
    for key, inner in v.items():
        if key in ("stringValue", "string_value"):
            return inner
        if key in ("intValue", "int_value"):
            return int(inner)
        if key in ("doubleValue", "double_value"):
            return float(inner)
        if key in ("boolValue", "bool_value"):
            return bool(inner)
        if key in ("arrayValue", "array_value"):
            return [any_value(x) for x in (inner or {}).get("values", [])]
        if key in ("kvlistValue", "kvlist_value"):
            return {kv["key"]: any_value(kv.get("value") or {}) for kv in (inner or {}).get("values", [])}
        if key in ("bytesValue", "bytes_value"):
            return inner
    return None


def _attr_text(v) -> str | None:
    """Stored text of an AnyValue; strings and integers (the common cases) take the short path."""
    s = v.get("stringValue")
    if s is not None and type(s) is str:
        return s
    i = v.get("intValue")
    if i is not None:
        if type(i) is str and i.lstrip("-").isdigit():
            return i
        if type(i) is int:
            return str(i)
        raise BadRecord(f"intValue must be an integer, got {i!r:.40}")
    return text_value(any_value(v))


def _attributes(attrs) -> dict:
    """{key: stored text} of an OTLP KeyValue list."""
    out: dict = {}
    if not attrs:
        return out
    if type(attrs) is not list:
        raise BadRecord("attributes must be a list of KeyValue")
    for kv in attrs:
        try:
            key = kv["key"]
            value = kv["value"]
            text = value.get("stringValue")
            if text is None:
                text = value.get("intValue")
                if type(text) is int:
                    text = str(text)
        except (KeyError, TypeError, AttributeError):
            key, value, text = _slow_kv(kv)
        if type(text) is not str:
            if not value:
                continue
            text = _attr_text(value)
            if text is None:
                continue
        if type(key) is not str:
            raise BadRecord(f"attribute key must be a string, got {key!r:.40}")
        out[key] = text
    return out


def _slow_kv(kv):
    if type(kv) is not dict:
        raise BadRecord("attribute is not a KeyValue object")
    value = kv.get("value")
    if value is not None and type(value) is not dict:
        raise BadRecord(f"attribute {kv.get('key')!r:.40} has a value that is not an AnyValue")
    return kv.get("key"), value, None


def _time_us(value, what: str) -> int:
    if type(value) is str:
        if not value.isdigit():
            raise BadRecord(f"{what} must be an integer of nanoseconds, got {value!r:.40}")
        return int(value) // 1000
    if type(value) is int:
        return value // 1000
    if type(value) is float and value.is_integer():
        return int(value) // 1000
    raise BadRecord(f"{what} must be an integer of nanoseconds, got {value!r:.40}")


def _ident(value, length: int, what: str) -> str:
    # The JSON mapping says hex; some exporters write the protobuf JSON default (base64) instead.
    if type(value) is str and len(value) != length and value:
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raw = b""
        if len(raw) * 2 == length:
            return raw.hex()
    return check_id(value, length, what)


def _events(events) -> str | None:
    if not events:
        return None
    out = []
    for ev in events:
        attrs = {}
        for kv in ev.get("attributes") or ():
            attrs[kv.get("key")] = any_value(kv.get("value") or {})
        out.append({"name": ev.get("name"), "time_ns": _field(ev, "timeUnixNano", "time_unix_nano"), "attributes": attrs})
    return orjson.dumps(out).decode()


def _unwrap(doc: dict):
    """The resourceSpans of an export inside a wrapper: Jaeger's v3 query API (grpc-gateway) answers
    {"result": <TracesData>}, one such object per line when it streams, and {"error": {...}} when it
    has nothing to give."""
    result = doc.get("result")
    if type(result) is dict:
        return _field(result, "resourceSpans", "resource_spans")
    error = doc.get("error")
    if type(error) is dict and len(doc) == 1:
        raise BadRecord(f"Jaeger query API error: {short(error.get('message') or error, 200)}")
    return None


def add_request(doc, cols: SpanColumns, rejects: list, line: int | None, offset: int | None) -> int:
    """Append the spans of one ExportTraceServiceRequest; returns how many span records it held."""
    if type(doc) is not dict:
        raise BadRecord("not a JSON object")
    resource_spans = _field(doc, "resourceSpans", "resource_spans")
    if resource_spans is None:
        resource_spans = _unwrap(doc)
    if type(resource_spans) is not list:
        raise BadRecord("not an OTLP trace export: no resourceSpans list")
    seen = 0
    # Local bindings: attribute lookups cost more than the work itself in this loop.
    (a_trace, a_span, a_parent, a_name, a_kind, a_start, a_end, a_scode, a_smsg, a_service, a_scope, a_events,
     a_attrs, a_res) = cols.appenders()
    dumps = orjson.dumps
    for ri, rs in enumerate(resource_spans):
        try:
            resource = (rs.get("resource") or {}) if type(rs) is dict else None
            if resource is None:
                raise BadRecord("resourceSpans entry is not an object")
            r_attrs = _attributes(resource.get("attributes"))
        except (BadRecord, AttributeError, TypeError, ValueError) as exc:
            rejects.append(Reject(line, offset, f"resourceSpans[{ri}]", f"bad resource: {exc}"))
            continue
        service = r_attrs.get("service.name")
        r_id = cols.resource_index(dumps(r_attrs).decode())
        scope_spans = _field(rs, "scopeSpans", "scope_spans")
        if scope_spans is None:
            scope_spans = _field(rs, "instrumentationLibrarySpans", "instrumentation_library_spans") or []
        for si, ss in enumerate(scope_spans):
            scope = (ss.get("scope") or ss.get("instrumentationLibrary") or {}) if type(ss) is dict else {}
            scope_name = scope.get("name") if type(scope) is dict else None
            spans = ss.get("spans") if type(ss) is dict else None
            if not spans:
                continue
            for pi, sp in enumerate(spans):
                seen += 1
                try:
                    if type(sp) is not dict:
                        raise BadRecord("span is not an object")
                    trace_id = sp.get("traceId")
                    if type(trace_id) is not str or len(trace_id) != 32 or not _is_hex(trace_id):
                        trace_id = _ident(_field(sp, "traceId", "trace_id"), 32, "traceId")
                    span_id = sp.get("spanId")
                    if type(span_id) is not str or len(span_id) != 16 or not _is_hex(span_id):
                        span_id = _ident(_field(sp, "spanId", "span_id"), 16, "spanId")
                    parent = _field(sp, "parentSpanId", "parent_span_id") or None
                    if parent and (type(parent) is not str or len(parent) != 16 or not _is_hex(parent)):
                        parent = _ident(parent, 16, "parentSpanId")
                    start = _field(sp, "startTimeUnixNano", "start_time_unix_nano")
                    if start is not None:
                        start = _time_us(start, "startTimeUnixNano")
                    else:  # omitted as the proto default (Jaeger's v3 API does): taken from the parent
                        cols.missing_start = True
                    end = _field(sp, "endTimeUnixNano", "end_time_unix_nano")
                    end = _time_us(end, "endTimeUnixNano") if end is not None else None
                    kind = sp.get("kind", 0)
                    if type(kind) is int and 0 <= kind < 6:
                        kind = SPAN_KINDS[kind]
                    elif type(kind) is str:  # proto enum names: SPAN_KIND_CLIENT
                        kind = kind.lower().removeprefix("span_kind_")
                    else:
                        raise BadRecord(f"bad span kind {kind!r:.20}")
                    status = sp.get("status") or {}
                    code = status.get("code", 0)
                    if type(code) is int and 0 <= code < 3:
                        code = STATUS_CODES[code]
                    elif type(code) is str:
                        code = code.lower().removeprefix("status_code_")
                    else:
                        raise BadRecord(f"bad status code {code!r:.20}")
                    attrs = dumps(_attributes(sp.get("attributes")))
                    events = _events(sp.get("events"))
                    name = sp.get("name")
                except (BadRecord, AttributeError, TypeError, ValueError, KeyError) as exc:
                    rejects.append(
                        Reject(line, offset, f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]", str(exc) or type(exc).__name__)
                    )
                    continue
                a_trace(trace_id)
                a_span(span_id)
                a_parent(parent)
                a_name(name if type(name) is str else None)
                a_kind(kind)
                a_start(start)
                a_end(end)
                a_scode(code)
                a_smsg(status.get("message") or None)
                a_service(service)
                a_scope(scope_name)
                a_events(events)
                a_attrs(attrs)
                a_res(r_id)
    return seen


# fast(raw, cols) -> spans: a typed decoder that appends a line's spans or raises Unsupported.
FastPath = Callable[[bytes, SpanColumns], int]


class Unsupported(Exception):
    """A fast path's answer for a line that is for the general reader (this module)."""


def parse_lines(block: bytes, first_line: int, base_offset: int,
                fast: FastPath | None = None) -> tuple[SpanColumns, list, int]:
    """Parse a block of JSON lines, each an ExportTraceServiceRequest. Lines go to `fast` first when
    given; what it hands back (and every line without it) is read here."""
    cols = SpanColumns()
    rejects: list = []
    seen = 0
    offset = base_offset
    loads = orjson.loads
    for i, raw in enumerate(block.split(b"\n")):
        line_no = first_line + i
        line_offset = offset
        offset += len(raw) + 1
        if not raw.strip():
            continue
        if fast is not None:
            try:
                seen += fast(raw, cols)
                continue
            except Unsupported:
                pass
        try:
            doc = loads(raw)
        except orjson.JSONDecodeError as exc:
            rejects.append(Reject(line_no, line_offset, None, f"invalid JSON: {exc}"))
            continue
        try:
            seen += add_request(doc, cols, rejects, line_no, line_offset)
        except BadRecord as exc:
            rejects.append(Reject(line_no, line_offset, None, str(exc)))
    return cols, rejects, seen


def parse_document(data: bytes, fast: FastPath | None = None) -> tuple[SpanColumns, list, int]:
    """Parse one (possibly pretty-printed) ExportTraceServiceRequest."""
    cols = SpanColumns()
    rejects: list = []
    if fast is not None and data.strip():
        try:
            return cols, rejects, fast(data, cols)
        except Unsupported:
            pass
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return cols, [Reject(None, None, None, f"invalid JSON: {exc}")], 0
    try:
        seen = add_request(doc, cols, rejects, None, None)
    except BadRecord as exc:
        return cols, [Reject(None, 0, None, str(exc))], 0
    return cols, rejects, seen
