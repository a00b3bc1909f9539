"""The registry of input formats. Each reader module lists its formats; detection tries them in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import pyarrow as pa


@dataclass
class Batch:
    rows: pa.RecordBatch | pa.Table | None  # columns named as in the destination table
    rejects: list                          # llmaudit.ingest.spans.Reject
    records: int                           # records seen (stored, duplicate or rejected)
    bytes_done: int                        # decompressed bytes consumed so far, for progress
    # Rows for other tables that the main rows refer to (e.g. the resources of spans), by table; a
    # row already stored (same key) is kept as it is.
    related: dict[str, pa.Table] = field(default_factory=dict)


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


def all_formats() -> list[Format]:
    """Every reader's formats, most specific first (detection takes the first that claims a file)."""
    from llmaudit.ingest import billing, metrics, traces

    return [*traces.FORMATS, *billing.FORMATS, *metrics.FORMATS]


def by_name(name: str) -> Format:
    for fmt in all_formats():
        if fmt.name == name:
            return fmt
    known = ", ".join(f.name for f in all_formats())
    raise KeyError(f"unknown format {name!r}; known formats: {known}")


def detect(head: bytes, name: str) -> Format | None:
    for fmt in all_formats():
        if fmt.sniff(head, name):
            return fmt
    return None
