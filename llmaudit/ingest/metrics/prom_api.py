"""prom-api-json: Prometheus HTTP API answers (`query_range` matrix, `query` vector), one document or
several concatenated; read series by series, so memory holds one series, not the file.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Iterator

from llmaudit.ingest.core import Batch, Format, ReadContext, Reject, short
from llmaudit.ingest.metrics.samples import (
    BATCH_ROWS,
    METRIC_KEY,
    BadLine,
    SampleColumns,
    make_series,
    parse_value,
    unix_to_us,
)
from llmaudit.ingest.sources import BrokenStream, Source

_MAX_OBJECT_CHARS = 256 << 20  # no real series is this large (the API caps a series at 11,000 points)
_RESULT_OR_ERROR = re.compile(r'"result"\s*:\s*\[|"status"\s*:\s*"error"')
_ERROR_TEXT = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')
_RESYNC = re.compile(r'\{\s*"(?:metric|values?)"\s*:')
_SKIP = re.compile(r"[\s,]*")


class _TextReader:
    """Decoded text of a source, read on demand; knows the line number at its read position."""

    def __init__(self, source: Source) -> None:
        self._chunks = source.chunks(1 << 20)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.error: str | None = None
        self.bytes_done = 0

    def more(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = next(self._chunks)
        except StopIteration:
            chunk = None
        except BrokenStream as exc:
            self.error = str(exc)
            chunk = None
        if chunk is None:
            self.eof = True
            text = self._decoder.decode(b"", final=True)
        else:
            self.bytes_done += len(chunk)
            text = self._decoder.decode(chunk)
        if self.pos:
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += text
        return True

    def advance(self, new_pos: int) -> None:
        self.line += self.buf.count("\n", self.pos, new_pos)
        self.pos = new_pos

    def line_at(self, index: int) -> int:
        return self.line + self.buf.count("\n", self.pos, index)

    def ensure(self, n: int) -> None:
        """At least n characters after pos, unless the stream ends first."""
        while len(self.buf) - self.pos < n and self.more():
            pass


def _decode_value(reader: _TextReader, decoder: json.JSONDecoder):
    """(value, end) of the JSON value at reader.pos, reading more as needed; (None, error) if invalid."""
    while True:
        try:
            return decoder.raw_decode(reader.buf, reader.pos), None
        except json.JSONDecodeError as exc:
            pending = len(reader.buf) - reader.pos
            incomplete = exc.msg.startswith("Unterminated string") or exc.pos >= len(reader.buf) - 8
            if incomplete and not reader.eof and pending < _MAX_OBJECT_CHARS:
                reader.ensure(2 * pending + (1 << 20))  # doubling keeps the re-parses linear overall
                continue
            return None, exc


def _points_of(obj: dict):
    if "values" in obj:
        return obj["values"], "values"
    if "value" in obj:
        return [obj["value"]], "value"
    return None, None


def _add_series(obj, where: str, line: int, cols: SampleColumns, rejects: list) -> int:
    """Samples of one result element; returns how many records it held."""
    if not isinstance(obj, dict):
        rejects.append(Reject(line, None, where, "result element is not a series object (scalar and string results have no series)"))
        return 1
    labels = obj.get("metric")
    points, field = _points_of(obj)
    if not isinstance(labels, dict) or not isinstance(points, list):
        rejects.append(Reject(line, None, where, "series needs a 'metric' object and a 'values' list or 'value' pair"))
        return 1
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        rejects.append(Reject(line, None, where, "series labels must be strings"))
        return max(1, len(points))
    labels = dict(labels)
    name = labels.pop("__name__", None)
    if not name:
        rejects.append(Reject(line, None, where,
                              "series has no __name__ label: it is an expression's result, not a stored metric "
                              "(export the metric itself, or name it with label_replace)"))
        return max(1, len(points))
    series = make_series(name, labels)
    for j, point in enumerate(points):
        try:
            if not isinstance(point, list) or len(point) != 2:
                raise BadLine(f"a point must be [unix seconds, \"value\"], got {short(point)}")
            ts, raw = point
            if isinstance(raw, str):
                value = parse_value(raw)
            elif type(raw) is not bool and isinstance(raw, (int, float)):
                value = None if raw != raw else float(raw)
            else:
                raise BadLine(f"value {short(raw)} is not a number")
            cols.add(series, unix_to_us(ts), value)
            cols.time_sources.add("sample timestamps")
        except BadLine as exc:
            path = f"{where}.{field}[{j}]" if field == "values" else f"{where}.value"
            rejects.append(Reject(line, None, path, str(exc)))
    return len(points)


def read_prom_api_json(source: Source, ctx: ReadContext) -> Iterator[Batch]:
    reader = _TextReader(source)
    decoder = json.JSONDecoder()
    cols = SampleColumns(ctx.file_id)
    rejects: list = []
    records = 0
    doc = -1

    def batch() -> Batch:
        nonlocal rejects, records
        b = Batch(cols.take() if len(cols) else None, rejects, records, reader.bytes_done)
        rejects, records = [], 0
        return b

    while True:
        m = _RESULT_OR_ERROR.search(reader.buf, reader.pos)
        if m is None:
            if reader.eof:
                break
            reader.advance(max(reader.pos, len(reader.buf) - 64))  # a key may straddle two chunks
            reader.more()
            continue
        doc += 1
        prefix = f"document[{doc}]." if doc else ""
        token = len(m.group())
        reader.advance(m.start())  # positions in buf change when more is read: keep none across it
        if m.group().startswith('"status"'):
            reader.ensure(token + 4096)
            found = _ERROR_TEXT.search(reader.buf, reader.pos + token, reader.pos + token + 4096)
            message = json.loads(f'"{found.group(1)}"')[:200] if found else "no message"
            rejects.append(Reject(reader.line, None, f"{prefix}status",
                                  f"the Prometheus API answered with an error: {message}"))
            reader.advance(reader.pos + token)
            continue
        reader.advance(reader.pos + token)
        index = 0
        while True:
            reader.ensure(1)
            skip = _SKIP.match(reader.buf, reader.pos)
            reader.advance(skip.end())
            if reader.pos >= len(reader.buf):
                if not reader.more():
                    rejects.append(Reject(reader.line, None, f"{prefix}data.result",
                                          "the file ends inside the result list"))
                    break
                continue
            if reader.buf[reader.pos] == "]":
                reader.advance(reader.pos + 1)
                break
            start_line = reader.line
            where = f"{prefix}data.result[{index}]"
            decoded, error = _decode_value(reader, decoder)
            if error is not None:
                rejects.append(Reject(reader.line_at(min(error.pos, len(reader.buf))), None, where,
                                      f"invalid JSON: {error.msg}"))
                records += 1
                # Carry on at the next series object (in this or a later document).
                resync = _RESYNC.search(reader.buf, max(error.pos, reader.pos + 1))
                while resync is None and not reader.eof:
                    reader.advance(max(reader.pos, len(reader.buf) - 64))
                    reader.more()
                    resync = _RESYNC.search(reader.buf, reader.pos + 1)
                if resync is None:
                    reader.advance(len(reader.buf))
                    break
                reader.advance(resync.start())
                index += 1
                continue
            obj, end = decoded
            reader.advance(end)
            records += _add_series(obj, where, start_line, cols, rejects)
            index += 1
            if not isinstance(obj, dict):
                # A scalar or string result: one reject says it; skip the rest of this list.
                close = reader.buf.find("]", reader.pos)
                while close < 0 and reader.more():
                    close = reader.buf.find("]", reader.pos)
                reader.advance(close + 1 if close >= 0 else len(reader.buf))
                break
            if len(cols) >= BATCH_ROWS:
                yield batch()
    if reader.error:
        rejects.append(Reject(reader.line, None, None, reader.error))
    if doc < 0 and not rejects:
        rejects.append(Reject(None, None, None, "no 'result' list found: not a Prometheus API answer"))
    last = batch()
    last.related = cols.file_related()
    yield last


_SNIFF_API = re.compile(rb'"resultType"\s*:\s*"(matrix|vector)"|"result"\s*:\s*\[\s*\{\s*"metric"\s*:')


def sniff_prom_api_json(head: bytes, name: str) -> bool:
    return head.removeprefix(codecs.BOM_UTF8).lstrip()[:1] == b"{" and bool(_SNIFF_API.search(head))


FORMAT = Format("prom-api-json", "metrics", "metric_samples", METRIC_KEY, sniff_prom_api_json, read_prom_api_json)
