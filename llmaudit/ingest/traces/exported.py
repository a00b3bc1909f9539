"""What the readers of LLM-observability exports (Langfuse, Arize Phoenix) share.

Their files are JSON documents or JSON lines (or data frames saved as CSV/Parquet) of span-like
records, with ISO 8601 times and ids that need not be OpenTelemetry hex: Langfuse ids are often UUIDs
or names the application chose. Such an id is stored as a stable hash of the right width (the same id
gives the same hash in every file, so parents still match) and the reader keeps the original in an
attribute.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import orjson

from llmaudit.ingest.core import Reject, short
from llmaudit.ingest.traces.spans import BadRecord, SpanColumns, text_value

_HEX = frozenset("0123456789abcdef")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc) - _EPOCH


def json_values(data: bytes) -> tuple[list[tuple[int | None, int, object]], list[Reject]]:
    """The file's JSON values as (line, byte offset, value): the whole document (line None) when it is
    one JSON text, else one value per non-empty line (JSON lines); a line that is not JSON is a reject."""
    try:
        return [(None, 0, orjson.loads(data))], []
    except orjson.JSONDecodeError as exc:
        whole_error = exc
    lines = data.split(b"\n")
    first = next((line for line in lines if line.strip()), b"")
    try:  # JSON lines start with a whole JSON value; a broken document (one value over many lines) does not
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return [], [Reject(None, 0, None, f"invalid JSON: {whole_error}")]
    values, rejects = [], []
    offset = 0
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                values.append((number, offset, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                rejects.append(Reject(number, offset, None, f"invalid JSON: {exc}"))
        offset += len(line) + 1
    return values, rejects


def time_us(value, what: str) -> int:
    """Microseconds since the epoch (UTC) of an ISO 8601 text or a datetime; a time without a zone is UTC.
    Numbers are epoch times in the unit their size says (s, ms, µs or ns), as pandas' to_json writes them."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadRecord(f"{what} is not an ISO 8601 time: {short(value)}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return (value - _EPOCH) // _ONE_US
    if type(value) in (int, float) and value == value:
        magnitude = abs(value)
        scale = 1e-3 if magnitude >= 1e17 else 1 if magnitude >= 1e14 else 1e3 if magnitude >= 1e11 else 1e6
        return int(round(value * scale))
    raise BadRecord(f"{what} must be an ISO 8601 time, got {short(value)}")



def export_id(value, width: int, what: str) -> str:
    """A trace (width 32) or span (width 16) id as lowercase hex: hex ids of that width as they are, a UUID
    trace id without its dashes, anything else as a hash of its text."""
    if type(value) is int and not isinstance(value, bool):
        value = str(value)
    if type(value) is not str or not value.strip():
        raise BadRecord(f"{what} is missing" if value in (None, "") else f"{what} must be a string, got {short(value)}")
    text = value.strip().lower()
    if len(text) == width and _HEX.issuperset(text):
        return text
    if width == 32 and len(text) == 36 and text.count("-") == 4:
        plain = text.replace("-", "")
        if len(plain) == 32 and _HEX.issuperset(plain):
            return plain
    return hashlib.blake2b(value.encode(), digest_size=width // 2).hexdigest()


def flatten(prefix: str, value, out: dict, json_text_keys: tuple[str, ...] = ()) -> None:
    """Attributes in OpenTelemetry's flat form (`llm.input_messages.0.message.content`) from nested
    objects and lists of objects, as exports and data frames nest them. Values under keys ending in one
    of json_text_keys (attributes whose value is a JSON document) are kept as JSON text; lists of plain
    values stay lists; None is no attribute."""
    if value is None or (type(value) is float and value != value):  # NaN: a data frame's empty cell
        return
    if type(value) is dict:
        if prefix and prefix.endswith(json_text_keys):
            out[prefix] = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
            return
        for key, inner in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), inner, out, json_text_keys)
        return
    if type(value) in (list, tuple) and any(type(v) is dict for v in value):
        for i, inner in enumerate(value):
            flatten(f"{prefix}.{i}", inner, out, json_text_keys)
        return
    if isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = text_value(list(value) if type(value) is tuple else value)
    if text is not None and prefix:
        out[prefix] = text


def add_span(cols: SpanColumns, *, trace_id: str, span_id: str, parent: str | None, name, start: int, end: int,
             status_code: str, status_message, service, scope_name, attributes: dict, resource_json: str,
             events: str | None, kind: str = "unspecified") -> None:
    cols.trace_id.append(trace_id)
    cols.span_id.append(span_id)
    cols.parent_span_id.append(parent)
    cols.name.append(name if type(name) is str else None)
    cols.kind.append(kind)
    cols.start_us.append(start)
    cols.end_us.append(end)
    cols.status_code.append(status_code)
    cols.status_message.append(status_message if type(status_message) is str and status_message else None)
    cols.service.append(service)
    cols.scope_name.append(scope_name)
    cols.attributes.append(orjson.dumps(attributes))
    cols.resource_ids.append(cols.resource_index(resource_json))
    cols.events.append(events)
