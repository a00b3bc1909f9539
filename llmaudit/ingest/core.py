"""What every reader shares: the Format it is registered as, the Batch it yields, the ReadContext it is
given and the Reject it records. Readers import this module; it imports none of them (the list of
formats is llmaudit.ingest.registry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import pyarrow as pa


@dataclass
class Reject:
    line: int | None
    byte_offset: int | None
    record: str | None
    reason: str

    def as_tuple(self):
        return (self.line, self.byte_offset, self.record, self.reason)


@dataclass
class Batch:
    rows: pa.RecordBatch | pa.Table | None  # columns named as in the destination table
    rejects: list[Reject]
    records: int                           # records seen (stored, duplicate or rejected)
    bytes_done: int                        # decompressed bytes consumed so far, for progress
    # Rows for other tables that the main rows refer to (e.g. the resources of spans), by table; a
    # row already stored (same key) is kept as it is.
    related: dict[str, pa.Table] = field(default_factory=dict)
    # What the reader has to say about the file as a whole, shown with its name: why it stored nothing,
    # an export that is incomplete.
    notes: list[str] = field(default_factory=list)


@dataclass
class ReadContext:
    file_id: int
    workers: int
    pool: Callable[[], object | None]  # a concurrent.futures executor, started on first use
    block_size: int = 4 << 20
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Format:
    name: str
    kind: str                     # traces | billing | metrics
    table: str                    # destination table
    key: tuple[str, ...]          # columns that identify a row: re-ingesting adds nothing twice
    sniff: Callable[[bytes, str], bool]   # (first decompressed bytes, file name) -> is it mine
    read: Callable[..., Iterator[Batch]]  # (Source, ReadContext) -> batches
    parallel_from: int | None = None      # files at least this large are parsed by worker processes


def short(value, limit: int = 40) -> str:
    """A value as quoted in a reject's reason: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
