"""The read loop of the line-at-a-time metric formats (prom-text, nvidia-smi-csv): a parser is fed each
line with its number and byte offset; a bad line becomes a reject naming it, and the rest of the file
is read."""

from __future__ import annotations

import codecs
from abc import ABC, abstractmethod
from typing import Iterator

from llmaudit.ingest.core import Batch, ReadContext, Reject
from llmaudit.ingest.metrics.samples import BATCH_ROWS, SampleColumns
from llmaudit.ingest.sources import Source, iter_line_blocks


class LineParser(ABC):
    """A format's state across lines, and what it gathered since its last batch."""

    def __init__(self, file_id: int) -> None:
        self.cols = SampleColumns(file_id)
        self.rejects: list = []
        self.records = 0

    @abstractmethod
    def line(self, raw: bytes, line_no: int, offset: int) -> None:
        """Read one line (without its newline)."""

    def end(self) -> None:
        """The input ends, or breaks off, here: a format that holds lines back settles them now."""

    def take(self, bytes_done: int, last: bool = False) -> Batch:
        rows = self.cols.take() if len(self.cols) else None
        batch = Batch(rows, self.rejects, self.records, bytes_done)
        if last:
            batch.related = self.cols.file_related()
        self.rejects = []
        self.records = 0
        return batch


def read_lines(parser: LineParser, source: Source, ctx: ReadContext) -> Iterator[Batch]:
    line_no = 0
    done = 0
    pending = parser.cols.time_us  # cleared in place by take()
    for parts, offset, error in iter_line_blocks(source, ctx.block_size):
        if error:
            parser.end()
            parser.rejects.append(Reject(line_no + 1, offset, None, error))
            yield parser.take(offset, last=True)
            return
        block = parts[0] if len(parts) == 1 else b"".join(parts)
        lines = block.split(b"\n")
        if block.endswith(b"\n"):
            lines.pop()
        pos = offset
        if offset == 0 and lines and lines[0].startswith(codecs.BOM_UTF8):
            lines[0] = lines[0][len(codecs.BOM_UTF8):]  # a Windows editor's byte-order mark
            pos += len(codecs.BOM_UTF8)
        for raw in lines:
            line_no += 1
            parser.line(raw, line_no, pos)
            pos += len(raw) + 1
            if len(pending) >= BATCH_ROWS:
                yield parser.take(min(pos, offset + len(block)))
        done = offset + len(block)
        yield parser.take(done)
    parser.end()
    yield parser.take(done, last=True)
