"""Trace formats: how each is recognised and read into span batches."""

from __future__ import annotations

import re
from collections import deque
from functools import partial
from typing import Iterator

import pyarrow as pa

from llmaudit.ingest import jaeger, otlp, otlp_fast, zipkin
from llmaudit.ingest.formats import Batch, Format, ReadContext
from llmaudit.ingest.sources import (
    Source,
    iter_line_blocks,
    iter_line_ranges,
    read_all,
    read_range,
)
from llmaudit.ingest.spans import Reject

# Files at least this large (decompressed estimate) are parsed by worker processes.
PARALLEL_MIN_BYTES = 16 << 20
_RESOURCE_SPANS = re.compile(rb'"resource_?[sS]pans"\s*:')


def _first_line(head: bytes) -> bytes:
    cut = head.find(b"\n")
    return head if cut < 0 else head[:cut]


def sniff_otlp_jsonl(head: bytes, name: str) -> bool:
    line = _first_line(head).strip()
    return line.startswith(b"{") and bool(_RESOURCE_SPANS.search(line))


def sniff_otlp_json(head: bytes, name: str) -> bool:
    return head.lstrip().startswith(b"{") and bool(_RESOURCE_SPANS.search(head))


def sniff_jaeger(head: bytes, name: str) -> bool:
    h = head.lstrip()
    return h.startswith(b"{") and b'"traceID"' in h and b'"data"' in h


def sniff_zipkin(head: bytes, name: str) -> bool:
    h = head.lstrip()
    return h.startswith(b"[") and b'"traceId"' in h and (b'"id"' in h or b'"localEndpoint"' in h)


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
    cols, rejects, seen = otlp.parse_lines(block, 1, offset, fast=otlp_fast.add_line)
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


def _read_document(parse):
    def read(source: Source, ctx: ReadContext) -> Iterator[Batch]:
        data, error = read_all(source)
        cols, rejects, seen = parse(data)
        if error:
            rejects.append(Reject(None, len(data), None, error))
        yield Batch(cols.to_arrow(ctx.file_id), rejects, seen, len(data), {"resources": cols.resources()})

    return read


SPAN_KEY = ("trace_id", "span_id")

FORMATS = [
    Format("otlp-jsonl", "traces", "spans", SPAN_KEY, sniff_otlp_jsonl, read_otlp_jsonl, PARALLEL_MIN_BYTES),
    Format("otlp-json", "traces", "spans", SPAN_KEY, sniff_otlp_json, _read_document(partial(otlp.parse_document, fast=otlp_fast.add_line))),
    Format("jaeger-json", "traces", "spans", SPAN_KEY, sniff_jaeger, _read_document(jaeger.parse_document)),
    Format("zipkin-json", "traces", "spans", SPAN_KEY, sniff_zipkin, _read_document(zipkin.parse_document)),
]
