"""otlp-jsonl: one ExportTraceServiceRequest per line (the Collector's file exporter). A large file is
parsed in blocks of lines by worker processes (parse_jsonl_block, parse_jsonl_range: the pool calls
them by this module's path), a small one inline; batches come back in file order either way."""

from __future__ import annotations

from collections import deque
from typing import Iterator

import pyarrow as pa

from llmaudit.ingest.core import Batch, Format, ReadContext, Reject
from llmaudit.ingest.sources import Source, iter_line_blocks, iter_line_ranges, read_range
from llmaudit.ingest.traces.otlp import RESOURCE_SPANS_KEY, parse_lines
from llmaudit.ingest.traces.otlp_fast import add_line
from llmaudit.ingest.traces.spans import SPAN_KEY

# Files at least this large (decompressed estimate) are parsed by worker processes.
PARALLEL_MIN_BYTES = 16 << 20


def sniff_otlp_jsonl(head: bytes, name: str) -> bool:
    cut = head.find(b"\n")
    line = (head if cut < 0 else head[:cut]).strip()
    return line.startswith(b"{") and bool(RESOURCE_SPANS_KEY.search(line))


def parse_jsonl_block(parts: list[bytes], offset: int, file_id: int):
    """Worker entry point: a block of OTLP JSON lines to (span rows, resource rows, rejects, records, lines).

    Reject line numbers are relative to the block (1 = its first line); the caller rebases them.
    """
    block = parts[0] if len(parts) == 1 else b"".join(parts)
    return _parse_block(block, offset, file_id)


def parse_jsonl_range(path: str, offset: int, length: int, file_id: int):
    """Worker entry point for an uncompressed file: the worker reads its block itself."""
    return _parse_block(read_range(path, offset, length), offset, file_id)


def _parse_block(block: bytes, offset: int, file_id: int):
    cols, rejects, seen = parse_lines(block, 1, offset, fast=add_line)
    return cols.to_arrow(file_id), cols.resources(), rejects, seen, block.count(b"\n")


def read_otlp_jsonl(source: Source, ctx: ReadContext) -> Iterator[Batch]:
    pool = ctx.pool() if source.estimated_size() >= PARALLEL_MIN_BYTES else None
    jobs = _jsonl_jobs(source, ctx, pool)
    line_base = 0  # lines before the current block
    stored_resources: set[str] = set()  # most blocks repeat the same few resources: stored once
    for job in jobs:
        kind, payload, done = job
        if kind == "error":
            yield Batch(None, [Reject(line_base + 1, done, None, payload)], 0, done)
            continue
        rows, resources, rejects, seen, lines = payload.result() if kind == "future" else payload
        for r in rejects:
            r.line += line_base
        line_base += lines
        ids = resources.column("resource_id").to_pylist()
        new = [i for i, rid in enumerate(ids) if rid not in stored_resources]
        stored_resources.update(ids)
        if len(new) < len(ids):
            resources = resources.take(pa.array(new, pa.int64())) if new else None
        yield Batch(rows, rejects, seen, done, {"resources": resources})


def _jsonl_jobs(source: Source, ctx: ReadContext, pool):
    """Parse blocks inline, or in the pool with bounded read-ahead; always in file order."""
    if pool is None:
        for parts, offset, error in iter_line_blocks(source, ctx.block_size):
            if error:
                yield "error", error, offset
            else:
                yield "done", parse_jsonl_block(parts, offset, ctx.file_id), offset + sum(map(len, parts))
        return
    pending: deque = deque()
    window = 2 * ctx.workers + 1
    try:
        for call, offset, end, error in _worker_calls(source, ctx):
            pending.append(("error", error, offset) if error else ("future", pool.submit(*call), end))
            while len(pending) >= window:
                yield pending.popleft()
        while pending:
            yield pending.popleft()
    finally:
        for kind, fut, _ in pending:
            if kind == "future":
                fut.cancel()


def _worker_calls(source: Source, ctx: ReadContext):
    """(worker call, block offset, block end, error) per block. Workers read the blocks of an uncompressed
    file themselves (no bytes through pipes); a gzip stream is inflated here and its blocks sent."""
    if not source.is_gzip():
        path = str(source.path)
        for offset, length in iter_line_ranges(source, ctx.block_size):
            yield (parse_jsonl_range, path, offset, length, ctx.file_id), offset, offset + length, None
        return
    for parts, offset, error in iter_line_blocks(source, ctx.block_size):
        yield (parse_jsonl_block, parts, offset, ctx.file_id), offset, offset + sum(map(len, parts)), error


FORMAT = Format("otlp-jsonl", "traces", "spans", SPAN_KEY, sniff_otlp_jsonl, read_otlp_jsonl, PARALLEL_MIN_BYTES)
