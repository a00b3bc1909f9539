"""A columnar builder for span rows, shared by the OTLP, Jaeger and Zipkin readers, and the reader of a
whole-document trace file.

Readers append plain Python values to lists (the fastest thing Python can do per span) and the
builder turns the lists into one Arrow record batch that DuckDB inserts in bulk.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from llmaudit.ingest.core import Batch, ReadContext, Reject, short
from llmaudit.ingest.sources import Source, read_all

SPAN_KEY = ("trace_id", "span_id")  # a span stored once, whichever file holds it again
SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_CODES = ("unset", "ok", "error")

RESOURCE_SCHEMA = pa.schema([("resource_id", pa.string()), ("attributes", pa.string())])

SPAN_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("start_time", pa.timestamp("us")),
        ("end_time", pa.timestamp("us")),
        ("duration_ms", pa.float64()),
        ("status_code", pa.string()),
        ("status_message", pa.string()),
        ("service", pa.string()),
        ("scope_name", pa.string()),
        ("attributes", pa.string()),
        ("resource_id", pa.dictionary(pa.int32(), pa.string())),
        ("events", pa.string()),
        ("file_id", pa.int32()),
    ]
)


class BadRecord(ValueError):
    """A record that cannot be stored; the message says why."""


_HEX = frozenset("0123456789abcdef")


def check_id(value, length: int, what: str) -> str:
    """A trace/span id as lowercase hex of the given length."""
    if type(value) is not str or len(value) != length:
        raise BadRecord(f"{what} must be {length} hex digits, got {short(value)}")
    value = value.lower()
    if not _HEX.issuperset(value):
        raise BadRecord(f"{what} must be {length} hex digits, got {short(value)}")
    return value


def text_value(value) -> str | None:
    """Attribute value as stored: strings as-is, numbers decimal, bools true/false, rest JSON."""
    if value is None:
        return None
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, float):
        return repr(value)
    return orjson.dumps(value).decode()


def resource_id(resource_json: str) -> str:
    """A resource's id: a hash of its attributes' JSON text (the same resource gets the same id in every file)."""
    return hashlib.blake2b(resource_json.encode(), digest_size=8).hexdigest()


def shared_client_id(trace_id: str, span_id: str) -> str:
    """The id the client half of a shared span is stored under: a hash of the trace id, the shared id and
    "client", so the same half gets the same id from every file (re-ingesting it adds nothing)."""
    return hashlib.blake2b(f"{trace_id}{span_id}client".encode(), digest_size=8).hexdigest()


SHARED_ID_ATTRIBUTE = "llmaudit.shared_span_id"  # on a client half: the span id it shared with its server half


def split_shared(rows: list[dict]) -> int:
    """Zipkin-style RPCs report the client and the server half of a call under one span id (the server
    half marked `shared`, or told apart by kind). Both are real spans: the server half keeps the id (its
    children point to it), the client half is given shared_client_id() with the shared id kept in its
    attributes, and becomes the server half's parent. Rows are dicts with trace_id, span_id,
    parent_span_id, kind, attributes (a dict) and shared; changed in place. Returns the halves split."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["trace_id"], row["span_id"]), []).append(row)
    split = 0
    for (trace_id, span_id), halves in groups.items():
        if len(halves) < 2:
            continue
        servers = [r for r in halves if r.get("shared")]
        if servers:  # the flag marks the server's half: the others are the client's
            clients = [r for r in halves if not r.get("shared")]
        else:
            servers = [r for r in halves if r["kind"] == "server"]
            clients = [r for r in halves if r["kind"] == "client"]
        if not servers or not clients:
            continue  # the same span reported twice: stored once
        client_id = shared_client_id(trace_id, span_id)
        # A half reported twice is still one span: every copy is changed alike (and stored once).
        for client in clients:
            client["span_id"] = client_id
            client["attributes"][SHARED_ID_ATTRIBUTE] = span_id
        for server in servers:
            server["parent_span_id"] = client_id
        split += 1
    return split


def inherit_starts(trace_ids: list, span_ids: list, parent_ids: list, starts: list) -> list:
    """Start times with each missing one taken from the nearest ancestor in the same rows that has one
    (a child cannot start before its parent), else left None (unknown)."""
    if None not in starts:
        return starts
    index: dict = {}
    for i, key in enumerate(zip(trace_ids, span_ids)):
        index.setdefault(key, i)
    out = list(starts)
    for i, start in enumerate(starts):
        if start is not None:
            continue
        j = i
        for _ in range(len(starts)):  # bounded: a parent cycle ends the walk
            parent = parent_ids[j]
            k = index.get((trace_ids[j], parent)) if parent is not None else None
            if k is None or k == j:
                break
            j = k
            if out[j] is not None:
                break
        out[i] = out[j]
    return out


class SpanColumns:
    """Accumulates span rows column by column."""

    def __init__(self) -> None:
        self.trace_id: list = []
        self.span_id: list = []
        self.parent_span_id: list = []
        self.name: list = []
        self.kind: list = []
        self.start_us: list = []
        self.end_us: list = []
        self.status_code: list = []
        self.status_message: list = []
        self.service: list = []
        self.scope_name: list = []
        self.attributes: list = []  # JSON object per span, as UTF-8 bytes (orjson's output, not decoded)
        # Spans of one resource share its attributes: stored once, referenced by index.
        self.resource_ids: list = []
        self._resources: dict[str, int] = {}
        self._ids: list[str] = []  # resource_id of each, in index order (hashed once)
        self.events: list = []
        self.missing_start = False  # a span without a start time was added: inherit_starts() fills it

    def resource_index(self, resource_json: str) -> int:
        index = self._resources.get(resource_json)
        if index is None:
            index = self._resources[resource_json] = len(self._resources)
        return index

    def _resource_ids(self) -> list[str]:
        if len(self._ids) != len(self._resources):
            self._ids = [resource_id(t) for t in self._resources]
        return self._ids

    def resources(self) -> pa.Table:
        """The resources the spans point to: stored once (table resources), not once per span."""
        return pa.table([pa.array(self._resource_ids(), pa.string()), pa.array(list(self._resources), pa.string())],
                        schema=RESOURCE_SCHEMA)

    def __len__(self) -> int:
        return len(self.trace_id)

    # The row's columns in the order appenders() gives their list.append.
    _ROW = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_us", "end_us", "status_code",
            "status_message", "service", "scope_name", "events", "attributes", "resource_ids")

    def appenders(self) -> tuple:
        """Each column's bound list.append, in _ROW order: readers bind them to locals once per batch."""
        return tuple(getattr(self, name).append for name in self._ROW)

    def add_row(self, row: dict) -> None:
        """Append one span given as a dict (readers that look at a document's spans together before
        storing them): the columns' names, with start/end in microseconds, attributes as a dict and
        resource as its JSON text."""
        self.trace_id.append(row["trace_id"])
        self.span_id.append(row["span_id"])
        self.parent_span_id.append(row["parent_span_id"])
        self.name.append(row["name"])
        self.kind.append(row["kind"])
        self.start_us.append(row["start"])
        self.end_us.append(row["end"])
        self.status_code.append(row["status_code"])
        self.status_message.append(row["status_message"])
        self.service.append(row["service"])
        self.scope_name.append(row["scope_name"])
        self.attributes.append(orjson.dumps(row["attributes"]))
        self.resource_ids.append(self.resource_index(row["resource"]))
        self.events.append(row["events"])

    def mark(self) -> tuple[int, int]:
        return len(self.trace_id), len(self._resources)

    def truncate(self, mark: tuple[int, int]) -> None:
        """Drop what was added since mark() (a line that turned out to be for another reader)."""
        rows, resources = mark
        for name in self._ROW:
            del getattr(self, name)[rows:]
        for key in list(self._resources)[resources:]:
            del self._resources[key]

    def to_arrow(self, file_id: int) -> pa.RecordBatch:
        if self.missing_start:  # set by a reader that met a span without a start time
            self.start_us = inherit_starts(self.trace_id, self.span_id, self.parent_span_id, self.start_us)
        start = pa.array(self.start_us, pa.int64())
        end = pa.array(self.end_us, pa.int64())
        duration = pc.divide(pc.subtract(end, start).cast(pa.float64()), 1000.0)
        n = len(self.trace_id)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(self.trace_id, pa.string()),
                pa.array(self.span_id, pa.string()),
                pa.array(self.parent_span_id, pa.string()),
                pa.array(self.name, pa.string()),
                pa.array(self.kind, pa.string()),
                start.cast(pa.timestamp("us")),
                end.cast(pa.timestamp("us")),
                duration,
                pa.array(self.status_code, pa.string()),
                pa.array(self.status_message, pa.string()),
                pa.array(self.service, pa.string()),
                pa.array(self.scope_name, pa.string()),
                pa.array(self.attributes, pa.binary()).cast(pa.string()),
                pa.DictionaryArray.from_arrays(pa.array(self.resource_ids, pa.int32()),
                                               pa.array(self._resource_ids(), pa.string())),
                pa.array(self.events, pa.string()),
                pa.array([file_id] * n, pa.int32()),
            ],
            schema=SPAN_SCHEMA,
        )


def read_document(parse: Callable[[bytes], tuple[SpanColumns, list, int]]):
    """A reader for a format whose file is one document: parse(whole content) -> (columns, rejects, spans)."""

    def read(source: Source, ctx: ReadContext) -> Iterator[Batch]:
        data, error = read_all(source)
        cols, rejects, seen = parse(data)
        if error:
            rejects.append(Reject(None, len(data), None, error))
        yield Batch(cols.to_arrow(ctx.file_id), rejects, seen, len(data), {"resources": cols.resources()})

    return read
