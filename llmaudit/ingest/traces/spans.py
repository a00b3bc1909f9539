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
