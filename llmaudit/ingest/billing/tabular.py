"""Tabular billing sources (FOCUS, AWS CUR): CSV (plain or gzip) or Parquet, each row read through a column
map (source column -> billing column and value kind); columns the map does not name are kept in
`extras`. A cell written NULL or null is a null (values.NULL_TEXTS). A row that cannot be read becomes a
reject naming its physical line (CSV) or its row number (Parquet), and the rest of the file is read.

CSV is read with Python's csv module rather than DuckDB's read_csv: DuckDB's reject table numbers rows
by record, so a quoted field spanning lines shifts every later line number, and rejects must name the
physical line."""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator

import pyarrow as pa

from llmaudit.ingest.billing.rows import BILLING_KEY, RowBuilder, canonical, extras_json
from llmaudit.ingest.billing.values import KINDS, BadRow, nulls_to_none
from llmaudit.ingest.core import Batch, Format, ReadContext, Reject
from llmaudit.ingest.sources import BrokenStream, Source

BATCH_ROWS = 50_000
NO_ROWS = "a header line and no rows: nothing to store"


def header_line(head: bytes) -> bytes:
    """A CSV's first line, without a UTF-8 byte-order mark: what the sniffers look at."""
    line = head.split(b"\n", 1)[0]
    return line[3:] if line.startswith(b"\xef\xbb\xbf") else line


def has_all(text: bytes, names: Iterable[bytes]) -> bool:
    return all(n in text for n in names)


class ColumnMap:
    """Applies a format's column map (source column, billing column, kind) to rows of a given header."""

    def __init__(self, header: list[str], mapping: list[tuple[str, str, str]]):
        lookup = {name.lower(): i for i, name in reversed(list(enumerate(header)))}
        self.header = header
        self.plan: list[tuple[int, str, str, Callable]] = []
        mapped: set[int] = set()
        for source, target, kind in mapping:
            index = lookup.get(source.lower())
            if index is not None:
                self.plan.append((index, target, header[index], KINDS[kind]))
                mapped.add(index)
        self.unmapped = [i for i in range(len(header)) if i not in mapped]
        self.lookup = lookup

        self._indices: dict[tuple, list[int]] = {}

    def index(self, name: str) -> int | None:
        return self.lookup.get(name.lower())

    def value(self, values: list, name: str):
        i = self.lookup.get(name.lower())
        return None if i is None else values[i]

    def present(self, names: tuple[str, ...]) -> list[int]:
        """Positions of those of the names that the header has, in the names' order (memoized)."""
        found = self._indices.get(names)
        if found is None:
            found = self._indices[names] = [i for i in (self.lookup.get(n.lower()) for n in names) if i is not None]
        return found

    def first(self, values: list, names: tuple[str, ...]):
        """The first non-empty value among the named columns."""
        for i in self.present(names):
            value = values[i]
            if value is not None and value != "" and not (type(value) is str and not value.strip()):
                return value
        return None

    def apply(self, values: list) -> dict:
        row: dict = {}
        for index, target, field, convert in self.plan:
            value = values[index]
            if value is not None and value != "" and row.get(target) is None:
                row[target] = convert(value, field)
        header = self.header
        kept = {header[i]: values[i] for i in self.unmapped if values[i] is not None and values[i] != ""}
        row["extras"] = extras_json(kept.items()) if kept else None
        return row


# --------------------------------------------------------------------------------------------------
# CSV: physical line numbers, quoted fields across lines, invalid UTF-8 named by line
# --------------------------------------------------------------------------------------------------

class _Lines:
    """Decoded lines of a source with their byte offsets; remembers lines that were not UTF-8."""

    def __init__(self, source: Source):
        self.source = source
        self.recent: deque = deque()  # (line number, byte offset) of lines not yet claimed by a record
        self.bad: set[int] = set()
        self.error: str | None = None
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        pending = b""
        offset = 0
        number = 0
        try:
            for chunk in self.source.chunks(1 << 20):
                self.bytes_read += len(chunk)
                parts = (pending + chunk).split(b"\n")
                pending = parts.pop()
                for raw in parts:
                    number += 1
                    yield self._decode(raw + b"\n", number, offset)
                    offset += len(raw) + 1
        except BrokenStream as exc:
            self.error = str(exc)
        if pending:
            number += 1
            yield self._decode(pending, number, offset)

    def claim(self, first: int) -> int | None:
        """Byte offset of line `first` (a record's first line); forgets the lines before it.

        The csv reader asks for lines one record at a time, so only a few are ever held here."""
        recent = self.recent
        while recent and recent[0][0] < first:
            recent.popleft()
        return recent[0][1] if recent and recent[0][0] == first else None

    def _decode(self, raw: bytes, number: int, offset: int) -> str:
        self.recent.append((number, offset))
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad.add(number)
            return raw.decode("utf-8", errors="replace")


def _read_csv(source: Source, ctx: ReadContext, fmt_name: str, mapping, make_row, rename) -> Iterator[Batch]:
    import csv

    csv.field_size_limit(1 << 24)
    lines = _Lines(source)
    reader = csv.reader(iter(lines))
    builder = RowBuilder(ctx.file_id, fmt_name)
    rejects: list[Reject] = []
    records = 0
    header: list[str] | None = None
    cmap: ColumnMap | None = None
    last_line = 0
    any_rows = False
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start = last_line + 1
            rejects.append(Reject(start, lines.claim(start), None, f"malformed CSV: {exc}"))
            last_line = reader.line_num
            continue
        start, last_line = last_line + 1, reader.line_num
        offset = lines.claim(start)
        if header is None:
            header = [rename(h.strip()) for h in values]
            cmap = ColumnMap(header, mapping)
            continue
        if not values or (len(values) == 1 and not values[0].strip()):
            continue  # blank line
        records += 1
        any_rows = True
        try:
            if lines.bad and any(n in lines.bad for n in range(start, last_line + 1)):
                raise BadRow("not valid UTF-8 text")
            if len(values) != len(header):
                raise BadRow(f"expected {len(header)} fields (as in the header), got {len(values)}")
            row = make_row(cmap, nulls_to_none(values))
        except BadRow as exc:
            rejects.append(Reject(start, offset, None, str(exc)))
            continue
        if row is not None:
            builder.add(canonical(dict(zip(header, values))), row)
        if len(builder) >= BATCH_ROWS:
            yield Batch(builder.take(), rejects, records, lines.bytes_read)
            rejects, records = [], 0
    if lines.error:
        rejects.append(Reject(last_line + 1, lines.bytes_read, None, lines.error))
    if header is None and not lines.error:
        rejects.append(Reject(1, 0, None, "no header line"))
    notes = [NO_ROWS] if header is not None and not any_rows and not lines.error else []
    yield Batch(builder.take(), rejects, records, lines.bytes_read, notes=notes)


# --------------------------------------------------------------------------------------------------
# Parquet: columns typed by the file; a bad row is named by its row number
# --------------------------------------------------------------------------------------------------

def _read_parquet(source: Source, ctx: ReadContext, fmt_name: str, mapping, make_row, rename) -> Iterator[Batch]:
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(source.path)
    except (pa.ArrowInvalid, OSError) as exc:
        yield Batch(None, [Reject(None, 0, None, f"not a readable Parquet file: {exc}")], 0, 0)
        return
    header = [rename(n) for n in pfile.schema_arrow.names]
    cmap = ColumnMap(header, mapping)
    builder = RowBuilder(ctx.file_id, fmt_name)
    rejects: list[Reject] = []
    records = 0
    row_number = 0
    size = source.size
    groups = max(1, pfile.metadata.num_row_groups)
    for group in range(pfile.metadata.num_row_groups):
        table = pfile.read_row_group(group)
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        for values in zip(*columns):
            values = list(values)
            records += 1
            try:
                row = make_row(cmap, nulls_to_none(values))
            except BadRow as exc:
                rejects.append(Reject(None, None, f"row {row_number}", str(exc)))
                row = None
            else:
                if row is not None:
                    builder.add(canonical(dict(zip(header, values))), row)
            row_number += 1
        yield Batch(builder.take(), rejects, records, size * (group + 1) // groups)
        rejects, records = [], 0
    if not row_number:
        yield Batch(None, [], 0, size, notes=["no rows: nothing to store"])


def tabular_format(fmt_name: str, sniff: Callable[[bytes, str], bool], mapping, make_row,
                   rename=lambda name: name) -> Format:
    """A format read from CSV (plain or gzip) or Parquet, told apart by the Parquet magic bytes:
    make_row(column map, values) -> billing row, or None to skip it; rename(header name) -> mapped name."""

    def read(source: Source, ctx: ReadContext) -> Iterator[Batch]:
        if source.head(4) == b"PAR1":
            yield from _read_parquet(source, ctx, fmt_name, mapping, make_row, rename)
        else:
            yield from _read_csv(source, ctx, fmt_name, mapping, make_row, rename)

    return Format(fmt_name, "billing", "billing", BILLING_KEY, sniff, read)
