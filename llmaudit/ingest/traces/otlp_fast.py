"""The fast path for OTLP/JSON lines: a typed decode of spec-following export requests.

msgspec decodes a line straight into the typed structs below (OTLP's JSON mapping, camelCase, every
field of the trace protos), which costs about a quarter of building dicts with orjson and walking
them. It takes only what it can store exactly as the general reader (otlp.add_request) would: a line
with anything else (snake_case or older field names, unknown fields, base64 or upper-case ids, a bad
time or kind, a value of an unexpected type) is handed back, and the general reader parses it and
words its rejects. The fast path never rejects anything itself, so both paths store the same rows;
tests compare them on the same files.
"""

from __future__ import annotations

import msgspec
import orjson
from msgspec import UNSET, UnsetType

from llmaudit.ingest.traces.otlp import Unsupported, _attr_text, _events
from llmaudit.ingest.traces.spans import SPAN_KINDS, STATUS_CODES, SpanColumns

_HEX = frozenset("0123456789abcdef").issuperset


_NO_RAW = msgspec.Raw(b"")  # a Raw field's default: absent (Raw cannot be part of a union)


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    """A struct that refuses unknown fields: the general reader decides what those mean."""


class AnyValue(_Strict):
    # UNSET, not None, when absent: an explicit null is a different case (the general reader's).
    stringValue: str | UnsetType = UNSET
    intValue: str | int | UnsetType = UNSET
    doubleValue: float | str | UnsetType = UNSET
    boolValue: bool | UnsetType = UNSET
    arrayValue: msgspec.Raw = _NO_RAW   # rare: the general conversion reads them
    kvlistValue: msgspec.Raw = _NO_RAW
    bytesValue: str | UnsetType = UNSET


class KeyValue(_Strict):
    key: str
    value: AnyValue | None = None


class Status(_Strict):
    code: int | str = 0
    message: str | None = None


class Span(_Strict):
    traceId: str
    spanId: str
    startTimeUnixNano: str | int
    traceState: str | None = None
    parentSpanId: str | None = None
    flags: int | None = None
    name: str | None = None
    kind: int | str = 0
    endTimeUnixNano: str | int | None = None
    attributes: list[KeyValue] | None = None
    droppedAttributesCount: int | None = None
    events: msgspec.Raw = _NO_RAW
    droppedEventsCount: int | None = None
    links: msgspec.Raw = _NO_RAW
    droppedLinksCount: int | None = None
    status: Status | None = None


class Scope(_Strict):
    name: str | None = None
    version: str | None = None
    attributes: msgspec.Raw = _NO_RAW
    droppedAttributesCount: int | None = None


class ScopeSpans(_Strict):
    scope: Scope | None = None
    spans: list[Span] | None = None
    schemaUrl: str | None = None


class Resource(_Strict):
    attributes: list[KeyValue] | None = None
    droppedAttributesCount: int | None = None
    entityRefs: msgspec.Raw = _NO_RAW


class ResourceSpans(_Strict):
    scopeSpans: list[ScopeSpans]
    resource: Resource | None = None
    schemaUrl: str | None = None


class ExportTraceServiceRequest(_Strict):
    resourceSpans: list[ResourceSpans]


_decode = msgspec.json.Decoder(ExportTraceServiceRequest).decode
_RAW_FIELDS = ("arrayValue", "kvlistValue")


def _other_text(v: AnyValue) -> str | None:
    """Stored text of a value that is not a string or an integer, by the general reader's rules."""
    as_dict = {}
    for name in AnyValue.__struct_fields__:
        inner = getattr(v, name)
        if name in _RAW_FIELDS:
            if inner:
                as_dict[name] = orjson.loads(bytes(inner))
        elif inner is not UNSET:
            as_dict[name] = inner
    if len(as_dict) > 1:  # which one counts depends on the order in the line: the general reader's case
        raise Unsupported
    return _attr_text(as_dict) if as_dict else None


def _attributes(kvs: list[KeyValue] | None) -> dict:
    out: dict = {}
    if not kvs:
        return out
    for kv in kvs:
        v = kv.value
        if v is None:
            continue
        text = v.stringValue
        if text is UNSET:
            text = v.intValue
            if text is UNSET:
                text = v.doubleValue
                if type(text) is float and v.boolValue is UNSET and not v.arrayValue and not v.kvlistValue \
                        and v.bytesValue is UNSET:
                    text = repr(text)
                else:
                    text = _other_text(v)
                    if text is None:
                        continue
            elif type(text) is int:
                text = str(text)
        out[kv.key] = text
    return out


def _unsupported():
    raise Unsupported


def _time_us(value) -> int:
    if type(value) is int:
        return value // 1000
    if value.isdigit():
        return int(value) // 1000
    raise Unsupported


def add_line(raw: bytes, cols: SpanColumns) -> int:
    """Append the spans of one line; returns how many it held. Raises Unsupported, having appended
    nothing, for a line the general reader must take."""
    try:
        request = _decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise Unsupported from None
    mark = cols.mark()
    try:
        return _add(request, cols)
    except (Unsupported, ValueError, TypeError, AttributeError, KeyError):
        cols.truncate(mark)
        raise Unsupported from None


def _add(request: ExportTraceServiceRequest, cols: SpanColumns) -> int:
    seen = 0
    # Local bindings: attribute lookups cost more than the work itself in this loop.
    (a_trace, a_span, a_parent, a_name, a_kind, a_start, a_end, a_scode, a_smsg, a_service, a_scope, a_events,
     a_attrs, a_res) = cols.appenders()
    dumps = orjson.dumps
    for rs in request.resourceSpans:
        r_attrs = _attributes(rs.resource.attributes if rs.resource is not None else None)
        service = r_attrs.get("service.name")
        r_id = cols.resource_index(dumps(r_attrs).decode())
        for ss in rs.scopeSpans:
            spans = ss.spans
            if not spans:
                continue
            scope_name = ss.scope.name if ss.scope is not None else None
            for sp in spans:
                seen += 1
                trace_id, span_id, parent = sp.traceId, sp.spanId, sp.parentSpanId or None
                if (len(trace_id) != 32 or len(span_id) != 16 or not _HEX(trace_id) or not _HEX(span_id)
                        or (parent is not None and (len(parent) != 16 or not _HEX(parent)))):
                    raise Unsupported
                kind = sp.kind
                if type(kind) is int:
                    kind = SPAN_KINDS[kind] if 0 <= kind < 6 else _unsupported()
                else:  # proto enum names: SPAN_KIND_CLIENT
                    kind = kind.lower().removeprefix("span_kind_")
                status = sp.status
                if status is None:
                    code, message = "unset", None
                else:
                    code, message = status.code, status.message or None
                    if type(code) is int:
                        code = STATUS_CODES[code] if 0 <= code < 3 else _unsupported()
                    else:
                        code = code.lower().removeprefix("status_code_")
                end = sp.endTimeUnixNano
                a_trace(trace_id)
                a_span(span_id)
                a_parent(parent)
                a_name(sp.name)
                a_kind(kind)
                a_start(_time_us(sp.startTimeUnixNano))
                a_end(_time_us(end) if end is not None else None)
                a_scode(code)
                a_smsg(message)
                a_service(service)
                a_scope(scope_name)
                a_events(_events(orjson.loads(bytes(sp.events))) if sp.events else None)
                a_attrs(dumps(_attributes(sp.attributes)))
                a_res(r_id)
    return seen
