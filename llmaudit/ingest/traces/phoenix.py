"""Arize Phoenix span exports: span JSON as its REST API returns it (`/v1/projects/{id}/spans`: a page
`{"data": [...]}`, a list, or the UI's JSON lines download), and the spans data frame
(`get_spans_dataframe()`) saved as Parquet, CSV or JSON records.

A span's attributes are OpenInference attributes, read by conventions.yaml as they are. Phoenix takes
`openinference.span.kind` out of them into `span_kind`: it is put back. Attributes arrive flat
(`llm.token_count.prompt`), nested (`{"llm": {"token_count": ...}}`) or, in a data frame, as lists of
message or document objects; all are stored flat, as OpenTelemetry writes them.
"""

from __future__ import annotations

import ast
import csv
import io

import orjson
import pyarrow as pa

from llmaudit.ingest.core import Batch, Format, ReadContext, Reject, short
from llmaudit.ingest.sources import Source, read_all
from llmaudit.ingest.traces.exported import add_span, export_id, flatten, json_values, time_us
from llmaudit.ingest.traces.spans import SPAN_KEY, BadRecord, SpanColumns, read_document

SPAN_KIND = "openinference.span.kind"
# Attributes whose value is a JSON document (Phoenix loads some of them into objects in its data
# frames): stored as JSON text, as instrumentations write them, not flattened.
JSON_TEXT_KEYS = ("metadata", "invocation_parameters", "prompt_template.variables", "tool.parameters",
                  "json_schema", "function.arguments", "input.value", "output.value")
STATUS = {"OK": "ok", "ERROR": "error", "UNSET": "unset"}
# The span fields of a data frame row (columns) or a span object (keys, `context` nested).
TRACE_ID = ("context.trace_id", "trace_id")
SPAN_ID = ("context.span_id", "span_id")
ATTRIBUTES = "attributes."
# The ids Phoenix exports are OpenTelemetry's; other ids (test fixtures, hand-made frames) are hashed
# and kept here.
ORIGINAL_IDS = {"trace": "phoenix.trace_id", "span": "phoenix.span_id"}


def _first(row: dict, names: tuple[str, ...]):
    for name in names:
        value = row.get(name)
        if value not in (None, "") and not (type(value) is float and value != value):
            return value
    return None


def _events(value) -> str | None:
    if type(value) is str:
        value = _literal(value)
    if not value or type(value) not in (list, tuple):
        return None
    out = []
    for ev in value:
        if type(ev) is not dict:
            raise BadRecord(f"event is not an object: {short(ev)}")
        stamp = ev.get("timestamp")
        attrs: dict = {}
        flatten("", ev.get("attributes") or {}, attrs, JSON_TEXT_KEYS)
        out.append({"name": ev.get("name"), "time_ns": time_us(stamp, "event timestamp") * 1000 if stamp is not None else None,
                    "attributes": attrs})
    return orjson.dumps(out).decode()


def _literal(text: str, key: str = ""):
    """A data frame cell saved as text: lists and objects are JSON, or the Python literal pandas writes
    for them. A JSON document under a JSON-text key stays the text it was."""
    stripped = text.strip()
    if not stripped.startswith(("[", "{")):
        return text
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
    return text if type(value) is dict and key.endswith(JSON_TEXT_KEYS) else value


def span_row(row: dict, cols: SpanColumns, text_cells: bool = False) -> None:
    """Add one span, given as a span object or as a data frame row (its columns as keys). text_cells: the
    row came from CSV, where lists and objects are written as text."""
    context = row.get("context") if type(row.get("context")) is dict else {}
    raw_trace = _first(context, ("trace_id",)) or _first(row, TRACE_ID)
    raw_span = _first(context, ("span_id",)) or _first(row, SPAN_ID)
    trace_id = export_id(raw_trace, 32, "context.trace_id")
    span_id = export_id(raw_span, 16, "context.span_id")
    parent = _first(row, ("parent_id", "parent_span_id"))
    parent = export_id(parent, 16, "parent_id") if parent is not None else None
    start = _first(row, ("start_time",))
    if start is None:
        raise BadRecord("start_time is missing")
    start_us = time_us(start, "start_time")
    end = _first(row, ("end_time",))
    end_us = time_us(end, "end_time") if end is not None else start_us

    attrs: dict = {}
    nested = row.get("attributes")
    if type(nested) is str and text_cells:
        nested = _literal(nested)
    if type(nested) is dict:
        flatten("", nested, attrs, JSON_TEXT_KEYS)
    for column, value in row.items():
        if column.startswith(ATTRIBUTES):
            if text_cells and type(value) is str:
                if value == "":
                    continue
                value = _literal(value, column)
            flatten(column[len(ATTRIBUTES):], value, attrs, JSON_TEXT_KEYS)
    kind = _first(row, ("span_kind",))
    if SPAN_KIND not in attrs and type(kind) is str and kind and kind.upper() != "UNKNOWN":
        attrs[SPAN_KIND] = kind
    if str(raw_trace).strip().lower() != trace_id:
        attrs[ORIGINAL_IDS["trace"]] = str(raw_trace)
    if str(raw_span).strip().lower() != span_id:
        attrs[ORIGINAL_IDS["span"]] = str(raw_span)
    status = _first(row, ("status_code",))
    add_span(cols, trace_id=trace_id, span_id=span_id, parent=parent, name=row.get("name"), start=start_us,
             end=end_us, status_code=STATUS.get(str(status).upper(), "unset") if status is not None else "unset",
             status_message=_first(row, ("status_message",)), service=None, scope_name=None, attributes=attrs,
             resource_json="{}", events=_events(row.get("events")))


# --------------------------------------------------------------------------------------------------
# JSON: REST API pages, span lists, JSON lines, data frame records
# --------------------------------------------------------------------------------------------------

def sniff_phoenix_json(head: bytes, name: str) -> bool:
    h = head.lstrip()
    return h.startswith((b"{", b"[")) and b'"span_kind"' in h and (
        (b'"context"' in h and b'"span_id"' in h) or b'"context.span_id"' in h)


def _spans(value, where: str):
    """(locator, span) for each span inside one JSON value."""
    if type(value) is dict and type(value.get("data")) is list:
        yield from ((f"{where}data[{i}]", s) for i, s in enumerate(value["data"]))
    elif type(value) is list:
        yield from ((f"{where}[{i}]", s) for i, s in enumerate(value))
    elif type(value) is dict and ("context" in value or "context.span_id" in value):
        yield (where or None, value)
    else:
        raise BadRecord("not a Phoenix span export: expected spans with a context and a span_kind")


def parse_json(data: bytes) -> tuple[SpanColumns, list, int]:
    cols = SpanColumns()
    values, rejects = json_values(data)
    seen = len(rejects)  # lines that are not JSON are records too
    for line, offset, value in values:
        try:
            spans = list(_spans(value, ""))
        except BadRecord as exc:
            seen += 1
            rejects.append(Reject(line, offset, None, str(exc)))
            continue
        for where, span in spans:
            seen += 1
            mark = cols.mark()
            try:
                if type(span) is not dict:
                    raise BadRecord("span is not an object")
                span_row(span, cols)
            except (BadRecord, TypeError, ValueError) as exc:
                cols.truncate(mark)
                rejects.append(Reject(line, offset if line is not None else None, where, str(exc) or type(exc).__name__))
    if not seen and not rejects:
        rejects.append(Reject(None, 0, None, "no spans in this export"))
    return cols, rejects, seen


# --------------------------------------------------------------------------------------------------
# Data frames saved as CSV or Parquet
# --------------------------------------------------------------------------------------------------

def _is_frame_header(names) -> bool:
    return "context.span_id" in names and "context.trace_id" in names


def sniff_phoenix_csv(head: bytes, name: str) -> bool:
    line = head.split(b"\n", 1)[0].lstrip(b"\xef\xbb\xbf")
    return b"context.span_id" in line and b"context.trace_id" in line and not line.lstrip().startswith((b"{", b"["))


def sniff_phoenix_parquet(head: bytes, name: str) -> bool:
    # Column names live in the footer, which the first bytes hold only for small files; a large
    # Parquet file is taken as Phoenix's when its name says so (else use --input-format phoenix-parquet).
    return head.startswith(b"PAR1") and (b"context.span_id" in head or "phoenix" in name.lower())


def _read_csv(source: Source, ctx: ReadContext):
    data, error = read_all(source)
    cols = SpanColumns()
    rejects: list[Reject] = []
    try:
        text = data.decode("utf-8-sig")
        bad_lines: set[int] = set()
    except UnicodeDecodeError:
        bad_lines = set()
        for number, raw in enumerate(data.split(b"\n"), 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_lines.add(number)
        text = data.decode("utf-8-sig", errors="replace")
    csv.field_size_limit(1 << 24)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = None
    seen = last = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rejects.append(Reject(last + 1, None, None, f"malformed CSV: {exc}"))
            last = reader.line_num
            continue
        first, last = last + 1, reader.line_num
        if header is None:
            header = [h.strip() for h in values]
            if not _is_frame_header(header):
                rejects.append(Reject(1, 0, None, "not a Phoenix spans data frame: no context.span_id and context.trace_id columns"))
                break
            continue
        if not values or (len(values) == 1 and not values[0].strip()):
            continue
        seen += 1
        mark = cols.mark()
        try:
            if bad_lines and any(n in bad_lines for n in range(first, last + 1)):
                raise BadRecord("not valid UTF-8 text")
            if len(values) != len(header):
                raise BadRecord(f"expected {len(header)} fields (as in the header), got {len(values)}")
            row: dict = {}
            for name, value in zip(header, values):  # a column saved twice (the index too): first non-empty
                if value != "" and row.get(name) in (None, ""):
                    row[name] = value
            span_row(row, cols, text_cells=True)
        except (BadRecord, TypeError, ValueError) as exc:
            cols.truncate(mark)
            rejects.append(Reject(first, None, None, str(exc) or type(exc).__name__))
    if header is None:
        rejects.append(Reject(1, 0, None, "no header line"))
    if error:
        rejects.append(Reject(None, len(data), None, error))
    yield Batch(cols.to_arrow(ctx.file_id), rejects, seen, len(data), {"resources": cols.resources()})


def _read_parquet(source: Source, ctx: ReadContext):
    import pyarrow.parquet as pq

    data, error = read_all(source)
    cols = SpanColumns()
    rejects: list[Reject] = []
    try:
        pfile = pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        yield Batch(None, [Reject(None, 0, None, f"not a readable Parquet file: {exc}")], 0, len(data))
        return
    names = pfile.schema_arrow.names
    if not _is_frame_header(names):
        yield Batch(None, [Reject(None, 0, None, "not a Phoenix spans data frame: no context.span_id and "
                                                  "context.trace_id columns")], 0, len(data))
        return
    seen = 0
    for group in range(pfile.metadata.num_row_groups):
        table = pfile.read_row_group(group)
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        for values in zip(*columns):
            row: dict = {}
            for name, value in zip(names, values):
                if row.get(name) is None:
                    row[name] = value
            mark = cols.mark()
            try:
                span_row(row, cols)
            except (BadRecord, TypeError, ValueError) as exc:
                cols.truncate(mark)
                rejects.append(Reject(None, None, f"row {seen}", str(exc) or type(exc).__name__))
            seen += 1
    if error:
        rejects.append(Reject(None, len(data), None, error))
    yield Batch(cols.to_arrow(ctx.file_id), rejects, seen, len(data), {"resources": cols.resources()})


JSON = Format("phoenix-json", "traces", "spans", SPAN_KEY, sniff_phoenix_json, read_document(parse_json))
CSV = Format("phoenix-csv", "traces", "spans", SPAN_KEY, sniff_phoenix_csv, _read_csv)
PARQUET = Format("phoenix-parquet", "traces", "spans", SPAN_KEY, sniff_phoenix_parquet, _read_parquet)
