"""Metric formats, all read into `metric_samples` (one row per sample):

- prom-text: Prometheus text exposition / OpenMetrics, one scrape or many concatenated (DCGM exporter,
  vLLM /metrics, node exporters, ...). Each sample's time is its own timestamp when it has one
  (integer milliseconds as Prometheus writes them; OpenMetrics seconds are told apart by magnitude:
  below 1e11 is seconds). Samples without one take the time of the nearest separator line above:

      # scrape 2025-11-22T08:00:00Z                    (ISO 8601; no zone means UTC)
      # scrape 2025-11-22T08:00:00Z {instance="gpu-node-1:9400"}
      # time: 1763798400.0                             (unix seconds)

  A label set after the time is added to every sample of that scrape (a raw scrape carries no
  host label; a sample's own label of the same name wins). `# EOF` ends a scrape: until the next separator, timestamp-less samples have no time.
  Such samples are not guessed a time (from file times or an assumed interval): each run of them
  is rejected once, naming its lines.
- prom-api-json: Prometheus HTTP API answers (`query_range` matrix, `query` vector), one document or
  several concatenated; read series by series, so memory holds one series, not the file.
- nvidia-smi-csv: `nvidia-smi --query-gpu=timestamp,... --format=csv [-l N]`, header required (its
  `[unit]` suffixes are how numeric columns are told from text ones; `noheader` output cannot be
  recognised or read). Timestamps are the host's local time without a zone: they are taken as UTC.
  The output names no host, so a GPU's device is its UUID (else its index); text columns other than
  the GPU's identity (pstate, driver_version, ...) are not stored.

A sample's source is told by its metric name (DCGM_ -> dcgm, vllm: -> vllm, nvidia_smi_ -> nvidia-smi,
else prometheus). NaN values are stored as NULL. Bad lines become rejects with their line numbers and
the rest of the file is read.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Iterator, NamedTuple

import orjson
import pyarrow as pa

from llmaudit.ingest.formats import Batch, Format, ReadContext
from llmaudit.ingest.sources import BrokenStream, Source, iter_line_blocks
from llmaudit.ingest.spans import Reject

BATCH_ROWS = 50_000
_SERIES_CACHE_MAX = 100_000  # distinct label sets remembered; cleared when full to bound memory

METRIC_SCHEMA = pa.schema(
    [
        ("file_id", pa.int32()),
        ("time", pa.timestamp("us")),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("host", pa.string()),
        ("device", pa.string()),
        ("labels", pa.string()),
        ("source", pa.string()),
        ("series_key", pa.string()),
    ]
)
METRIC_KEY = ("series_key", "time")

# Metric name prefix -> source; first match wins.
SOURCE_PREFIXES = (("DCGM_", "dcgm"), ("vllm:", "vllm"), ("nvidia_smi_", "nvidia-smi"))
# Labels naming the machine, in priority order; True: drop a ":port" (Prometheus' instance label).
HOST_LABELS = (("Hostname", False), ("hostname", False), ("host", False), ("node", False),
               ("nodename", False), ("kubernetes_node", False), ("instance", True))
# Labels naming the GPU, in priority order (DCGM: gpu index, UUID; nvidia_gpu_exporter: uuid).
DEVICE_LABELS = ("gpu", "UUID", "uuid", "gpu_uuid")
MIG_LABEL = "GPU_I_ID"  # DCGM labels a MIG instance's samples with its GPU instance id

_MIN_US = 0                          # 1970-01-01
_MAX_US = 7_258_118_400 * 1_000_000  # 2200-01-01: anything later is a unit mistake, not a time
_MS_THRESHOLD = 1e11                 # a timestamp at least this large is milliseconds (year > 5138 as seconds)


class BadLine(ValueError):
    """A line or record that cannot be read; the message says why."""


class Series(NamedTuple):
    metric: str
    key: str
    labels: str
    host: str | None
    device: str | None
    source: str


_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:]*):\d+")


def make_series(metric: str, labels: dict, source: str | None = None) -> Series:
    """Identity of a series: sorted labels as JSON, a hash of name + labels, host, device, source."""
    ordered = dict(sorted(labels.items()))
    labels_json = orjson.dumps(ordered).decode()
    key = hashlib.blake2b(metric.encode() + b"\x00" + labels_json.encode(), digest_size=16).hexdigest()
    host = None
    for name, strip_port in HOST_LABELS:
        value = ordered.get(name)
        if value:
            m = _HOST_PORT.fullmatch(value) if strip_port else None
            host = m.group(1) if m else value
            break
    device = next((ordered[name] for name in DEVICE_LABELS if ordered.get(name)), None)
    if device is not None and ordered.get(MIG_LABEL):
        device = f"{device}:mig{ordered[MIG_LABEL]}"
    if source is None:
        source = next((src for prefix, src in SOURCE_PREFIXES if metric.startswith(prefix)), "prometheus")
    return Series(metric, key, labels_json, host, device, source)


class SampleColumns:
    """Accumulates metric rows column by column."""

    def __init__(self, file_id: int) -> None:
        self.file_id = file_id
        self.time_us: list = []
        self.value: list = []
        self.series: list = []

    def __len__(self) -> int:
        return len(self.time_us)

    def add(self, series: Series, time_us: int, value: float | None) -> None:
        self.series.append(series)
        self.time_us.append(time_us)
        self.value.append(value)

    def take(self) -> pa.RecordBatch:
        s = self.series
        n = len(s)
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array([self.file_id] * n, pa.int32()),
                pa.array(self.time_us, pa.int64()).cast(pa.timestamp("us")),
                pa.array([x.metric for x in s], pa.string()),
                pa.array(self.value, pa.float64()),
                pa.array([x.host for x in s], pa.string()),
                pa.array([x.device for x in s], pa.string()),
                pa.array([x.labels for x in s], pa.string()),
                pa.array([x.source for x in s], pa.string()),
                pa.array([x.key for x in s], pa.string()),
            ],
            schema=METRIC_SCHEMA,
        )
        self.time_us.clear()
        self.value.clear()
        self.series.clear()
        return batch


def _short(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_value(text: str) -> float | None:
    """A sample value: decimal or float text, NaN (-> None), +Inf, -Inf."""
    try:
        value = float(text)
    except ValueError:
        raise BadLine(f"value {_short(text)} is not a number") from None
    if "_" in text:  # Python's float() accepts 1_000; no exposition format does
        raise BadLine(f"value {_short(text)} is not a number")
    return None if value != value else value


def _check_range(us: int, text) -> int:
    if not _MIN_US <= us < _MAX_US:
        raise BadLine(f"timestamp {_short(text)} is outside 1970-2200")
    return us


def unix_to_us(value, text=None) -> int:
    """Unix time in seconds (int, float or numeric text) to microseconds."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadLine(f"timestamp {_short(value)} is not a number") from None
    if type(value) is bool or not isinstance(value, (int, float)) or value != value:
        raise BadLine(f"timestamp {_short(value)} is not a number")
    if value in (float("inf"), float("-inf")):
        raise BadLine(f"timestamp {_short(value)} is outside 1970-2200")
    return _check_range(round(value * 1_000_000), text if text is not None else value)


def exposition_ts_to_us(text: str) -> int:
    """A sample timestamp: Prometheus milliseconds or OpenMetrics seconds, told apart by size."""
    if text.isdigit():
        n = int(text)
        return _check_range(n * 1000 if n >= _MS_THRESHOLD else n * 1_000_000, text)
    try:
        f = float(text)
    except ValueError:
        raise BadLine(f"timestamp {_short(text)} is not a number") from None
    if f != f or "_" in text:
        raise BadLine(f"timestamp {_short(text)} is not a number")
    if f in (float("inf"), float("-inf")):
        raise BadLine(f"timestamp {_short(text)} is outside 1970-2200")
    return _check_range(round(f * 1000) if abs(f) >= _MS_THRESHOLD else round(f * 1_000_000), text)


def datetime_to_us(moment: datetime) -> int:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    delta = moment - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def scrape_time_to_us(text: str) -> int:
    """A separator's time: ISO 8601 (no zone = UTC) or unix seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return unix_to_us(float(text), text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadLine(f"scrape time {_short(text)} is neither ISO 8601 nor unix seconds") from None
    return _check_range(datetime_to_us(moment), text)


# --------------------------------------------------------------------------------------------------
# Prometheus text exposition / OpenMetrics
# --------------------------------------------------------------------------------------------------

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*')
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "\\": "\\", '"': '"'}
_SEPARATOR = re.compile(r"#[ \t]*(?:scrape:?[ \t]+|time:[ \t]*)([^{]+?)[ \t]*(\{.*\})?[ \t]*")
_EOF = re.compile(rb"#[ \t]*EOF[ \t]*")


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text)


def parse_labels(text: str, start: int) -> tuple[dict, int]:
    """The label set opening at text[start] == '{': (labels, index after the closing brace)."""
    labels: dict = {}
    i = start + 1
    n = len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == "}":
            return labels, i + 1
        m = _LABEL.match(text, i)
        if m is None:
            if i < n and text[i] == '"':
                raise BadLine("quoted (UTF-8) label names are not supported")
            raise BadLine(f"malformed label set at column {i + 1}: expected name=\"value\"")
        name, value = m.group(1), m.group(2)
        if "\\" in value:
            value = _unescape(value)
        if name in labels:
            raise BadLine(f"label {name!r} appears twice")
        labels[name] = value
        i = m.end()
        if i < n and text[i] == ",":
            i += 1
        elif not (i < n and text[i] == "}"):
            raise BadLine(f"malformed label set at column {i + 1}: expected ',' or '}}'")


_FAST_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[ \t]*(\{[^}]*\})?[ \t]+([^ \t#]+)(?:[ \t]+([^ \t#]+))?[ \t]*")


def split_sample(text: str) -> tuple[str, str, dict, str, str | None]:
    """(name, label set text, labels, value text, timestamp text or None) of a sample line."""
    m = _METRIC_NAME.match(text)
    if m is None:
        if text.startswith("{"):
            raise BadLine("quoted (UTF-8) metric names are not supported")
        raise BadLine(f"not a sample line: expected a metric name, got {_short(text)}")
    name = m.group()
    i = m.end()
    while i < len(text) and text[i] in " \t":
        i += 1
    labels: dict = {}
    label_text = ""
    if i < len(text) and text[i] == "{":
        labels, end = parse_labels(text, i)
        label_text = text[i:end]
        i = end
    rest = text[i:]
    fields = rest.partition("#")[0].split()  # '#' starts an OpenMetrics exemplar
    if not fields or len(fields) > 2 or (label_text and rest[:1] not in (" ", "\t")):
        raise BadLine(f"expected a value and an optional timestamp after the series, got {_short(rest.strip())}")
    return name, label_text, labels, fields[0], fields[1] if len(fields) == 2 else None


class PromTextParser:
    """Line-at-a-time state of a prom-text read: scrape time, scrape labels, series cache, rows."""

    def __init__(self, file_id: int) -> None:
        self.cols = SampleColumns(file_id)
        self.rejects: list = []
        self.records = 0
        self.scrape_us: int | None = None
        self.scrape_labels: dict = {}
        self.scrape_labels_text = ""
        self._series: dict = {}
        self._untimed: list | None = None  # [first line, its offset, last line, count]

    def line(self, raw: bytes, line_no: int, offset: int) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        stripped = raw.strip()
        if not stripped:
            return
        if stripped[:1] == b"#":
            self._comment(stripped, line_no, offset)
            return
        self.records += 1
        try:
            text = stripped.decode("utf-8")
            self._sample(text, line_no, offset)
        except UnicodeDecodeError:
            self.rejects.append(Reject(line_no, offset, None, "line is not UTF-8"))
        except BadLine as exc:
            self.rejects.append(Reject(line_no, offset, None, str(exc)))

    def _comment(self, line: bytes, line_no: int, offset: int) -> None:
        if line.startswith((b"# HELP ", b"# TYPE ")):
            return
        if _EOF.fullmatch(line):
            self._end_scrape()
            return
        if b"scrape" not in line[:12] and b"time:" not in line[:12]:
            return  # HELP, TYPE, UNIT and free comments carry nothing a sample row needs
        text = line.decode("utf-8", "replace")
        m = _SEPARATOR.fullmatch(text)
        if m is None:
            return
        self._end_scrape()
        try:
            time_us = scrape_time_to_us(m.group(1))
            labels = parse_labels(m.group(2), 0)[0] if m.group(2) else {}
        except BadLine as exc:
            # The samples below must not inherit the previous scrape's time.
            self.rejects.append(Reject(line_no, offset, None, f"bad scrape separator: {exc}"))
            return
        self.scrape_us = time_us
        self.scrape_labels = labels
        self.scrape_labels_text = m.group(2) or ""

    def _end_scrape(self) -> None:
        self.flush_untimed()
        self.scrape_us = None
        self.scrape_labels = {}
        self.scrape_labels_text = ""

    def flush_untimed(self) -> None:
        run = self._untimed
        if run is None:
            return
        first, offset, last, count = run
        where = f"line {first}" if first == last else f"lines {first}-{last}"
        self.rejects.append(Reject(
            first, offset, where,
            f"{count} sample(s) on {where} have no timestamp and no '# scrape <ISO 8601 time>' or "
            "'# time: <unix seconds>' line before them, so their time is unknown",
        ))
        self._untimed = None

    def _sample(self, text: str, line_no: int, offset: int) -> None:
        m = _FAST_SAMPLE.fullmatch(text)
        if m is not None:
            name, label_text, value_text, ts_text = m.groups()
            try:
                self._store(name, label_text or "", None, value_text, ts_text, line_no, offset)
                return
            except BadLine:
                pass  # e.g. a '}' inside a label value fooled the fast pattern: the full parse decides
        name, label_text, labels, value_text, ts_text = split_sample(text)
        self._store(name, label_text, labels, value_text, ts_text, line_no, offset)

    def _store(self, name, label_text, labels, value_text, ts_text, line_no, offset) -> None:
        value = parse_value(value_text)
        if ts_text is not None:
            time_us = exposition_ts_to_us(ts_text)
        elif self.scrape_us is not None:
            time_us = self.scrape_us
        else:
            run = self._untimed
            if run is None:
                self._untimed = [line_no, offset, line_no, 1]
            else:
                run[2] = line_no
                run[3] += 1
            return
        # A label set seen before (the usual case in repeated scrapes) is not parsed again.
        cache_key = (name, label_text, self.scrape_labels_text)
        series = self._series.get(cache_key)
        if series is None:
            if labels is None:
                labels = parse_labels(label_text, 0)[0] if label_text else {}
            merged = {**self.scrape_labels, **labels} if self.scrape_labels else labels
            series = make_series(name, merged)
            if len(self._series) >= _SERIES_CACHE_MAX:
                self._series.clear()
            self._series[cache_key] = series
        self.cols.add(series, time_us, value)

    def take(self, bytes_done: int) -> Batch:
        rows = self.cols.take() if len(self.cols) else None
        batch = Batch(rows, self.rejects, self.records, bytes_done)
        self.rejects = []
        self.records = 0
        return batch


def read_prom_text(source: Source, ctx: ReadContext) -> Iterator[Batch]:
    parser = PromTextParser(ctx.file_id)
    line_no = 0
    done = 0
    pending = parser.cols.time_us  # cleared in place by take()
    for parts, offset, error in iter_line_blocks(source, ctx.block_size):
        if error:
            parser.flush_untimed()
            parser.rejects.append(Reject(line_no + 1, offset, None, error))
            yield parser.take(offset)
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
    parser.flush_untimed()
    yield parser.take(done)


_SNIFF_SAMPLE = re.compile(
    rb"[a-zA-Z_:][a-zA-Z0-9_:]*[ \t]*(\{.*\})?[ \t]+[-+]?(\d|\.\d|nan|inf)[^ \t]*([ \t]+[-+]?[\d.eE+-]+)?([ \t]+#.*)?",
    re.IGNORECASE,
)
_SNIFF_META = re.compile(rb"#[ \t]*(HELP|TYPE|UNIT)[ \t]+[a-zA-Z_:][a-zA-Z0-9_:]*|#[ \t]*(scrape:?[ \t]|time:)")


def sniff_prom_text(head: bytes, name: str) -> bool:
    """Sample lines, with HELP/TYPE or separator comments; a few bad lines are allowed beside those
    (they become rejects), none without them (then nothing else says the file is an exposition)."""
    head = head.removeprefix(codecs.BOM_UTF8)
    if head.lstrip()[:1] in (b"{", b"["):
        return False
    lines = head.split(b"\n")
    if len(head) >= 65536 and len(lines) > 1:
        lines.pop()  # the head may end mid-line
    samples = meta = other = 0
    for raw in lines[:400]:
        line = raw.strip()
        if not line:
            continue
        if line[:1] == b"#":
            if _SNIFF_META.match(line):
                meta += 1
            continue
        if _SNIFF_SAMPLE.fullmatch(line):
            samples += 1
        else:
            other += 1
    if meta:
        return samples >= other and samples + meta > other
    return samples > 0 and other == 0


# --------------------------------------------------------------------------------------------------
# Prometheus HTTP API JSON (query_range / query answers)
# --------------------------------------------------------------------------------------------------

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
                raise BadLine(f"a point must be [unix seconds, \"value\"], got {_short(point)}")
            ts, raw = point
            if isinstance(raw, str):
                value = parse_value(raw)
            elif type(raw) is not bool and isinstance(raw, (int, float)):
                value = None if raw != raw else float(raw)
            else:
                raise BadLine(f"value {_short(raw)} is not a number")
            cols.add(series, unix_to_us(ts), value)
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
    yield batch()


_SNIFF_API = re.compile(rb'"resultType"\s*:\s*"(matrix|vector)"|"result"\s*:\s*\[\s*\{\s*"metric"\s*:')


def sniff_prom_api_json(head: bytes, name: str) -> bool:
    return head.removeprefix(codecs.BOM_UTF8).lstrip()[:1] == b"{" and bool(_SNIFF_API.search(head))


# --------------------------------------------------------------------------------------------------
# nvidia-smi --query-gpu CSV
# --------------------------------------------------------------------------------------------------

# Columns that identify a GPU: kept as labels (and so part of the series identity).
SMI_IDENTITY = {"name", "gpu_name", "uuid", "gpu_uuid", "index", "pci.bus_id", "gpu_bus_id", "serial", "gpu_serial"}
# The device column, in priority order. nvidia-smi output names no host, so the globally unique UUID
# comes first: GPU 0 of two machines must not become one device.
SMI_DEVICE = ("uuid", "gpu_uuid", "index", "pci.bus_id", "gpu_bus_id")
# Numeric fields that nvidia-smi prints without a [unit] in the header.
SMI_UNITLESS_NUMERIC = {"temperature.gpu", "temperature.memory", "count", "pcie.link.gen.current",
                        "pcie.link.gen.max", "pcie.link.width.current", "pcie.link.width.max",
                        "encoder.stats.sessionCount", "encoder.stats.averageFps", "encoder.stats.averageLatency"}
# Fields used to recognise a header (with the above, and any field with a [unit]).
SMI_KNOWN = SMI_IDENTITY | SMI_UNITLESS_NUMERIC | {
    "timestamp", "utilization.gpu", "utilization.memory", "memory.used", "memory.total", "memory.free",
    "memory.reserved", "power.draw", "power.draw.instant", "power.draw.average", "power.limit",
    "clocks.sm", "clocks.mem", "clocks.gr", "clocks.current.sm", "clocks.max.sm", "fan.speed", "pstate",
    "driver_version", "vbios_version", "compute_mode", "persistence_mode",
}
_SMI_HEADER_CELL = re.compile(r"([a-z][a-zA-Z0-9_.]*)(?:\s*\[([^\]]+)\])?")
_SMI_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)\s*([A-Za-z%]+)?")
_SMI_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S")


class _SmiColumn(NamedTuple):
    field: str
    unit: str | None
    role: str  # time | label | metric | ignore


def parse_smi_header(line: str) -> list[_SmiColumn] | None:
    """The columns of an nvidia-smi CSV header, or None if the line is not one."""
    columns = []
    for cell in line.split(","):
        m = _SMI_HEADER_CELL.fullmatch(cell.strip())
        if m is None:
            return None
        field, unit = m.group(1), m.group(2)
        if field == "timestamp":
            role = "time"
        elif field in SMI_IDENTITY:
            role = "label"
        elif unit is not None or field in SMI_UNITLESS_NUMERIC:
            role = "metric"
        else:
            role = "ignore"  # text fields (pstate, driver_version, ...): not a number, not an identity
        columns.append(_SmiColumn(field, unit, role))
    fields = {c.field for c in columns}
    known = fields & SMI_KNOWN
    if len(known) < 2 or not any(c.unit or "." in c.field for c in columns if c.field in SMI_KNOWN):
        return None
    return columns


def _smi_time(text: str) -> int:
    for fmt in _SMI_TIME_FORMATS:
        try:
            return _check_range(datetime_to_us(datetime.strptime(text, fmt)), text)
        except ValueError:
            continue
    raise BadLine(f"timestamp {_short(text)} is not YYYY/MM/DD HH:MM:SS[.fff]")


class SmiParser:
    def __init__(self, file_id: int) -> None:
        self.cols = SampleColumns(file_id)
        self.rejects: list = []
        self.records = 0
        self.columns: list[_SmiColumn] | None = None
        self._time_cache: tuple[str, int] | None = None
        self._series: dict = {}

    def line(self, raw: bytes, line_no: int, offset: int) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return
        header = parse_smi_header(text) if text[:1].isalpha() and text[:1].islower() else None
        if header is not None:  # the first line, or a header repeated by an appended run
            if not any(c.role == "time" for c in header):
                self.columns = None
                self.rejects.append(Reject(line_no, offset, "header",
                                           "nvidia-smi CSV needs a timestamp column (add timestamp to --query-gpu)"))
            else:
                self.columns = header
            return
        self.records += 1
        if self.columns is None:
            self.rejects.append(Reject(line_no, offset, None,
                                       "no usable header line above this row: use nvidia-smi --format=csv "
                                       "(noheader output cannot be read) with a timestamp column"))
            return
        cells = [c.strip() for c in text.split(",")]
        if len(cells) != len(self.columns):
            self.rejects.append(Reject(line_no, offset, None,
                                       f"expected {len(self.columns)} fields as in the header, got {len(cells)}"))
            return
        labels = {}
        time_us = None
        try:
            for col, cell in zip(self.columns, cells):
                if col.role == "time":
                    cached = self._time_cache
                    if cached is not None and cached[0] == cell:
                        time_us = cached[1]
                    else:
                        time_us = _smi_time(cell)
                        self._time_cache = (cell, time_us)
                elif col.role == "label" and cell and not cell.startswith("["):
                    labels[col.field] = cell
        except BadLine as exc:
            self.rejects.append(Reject(line_no, offset, None, str(exc)))
            return
        device = next((labels[f] for f in SMI_DEVICE if labels.get(f)), None)
        ident = tuple(sorted(labels.items()))
        for col, cell in zip(self.columns, cells):
            if col.role != "metric":
                continue
            if cell.startswith("[") and cell.endswith("]"):
                continue  # [N/A], [Not Supported]: the GPU does not report this field
            m = _SMI_NUMBER.fullmatch(cell)
            if m is None:
                self.rejects.append(Reject(line_no, offset, col.field, f"{col.field}: not a number: {_short(cell)}"))
                continue
            unit = m.group(2)
            if unit is not None and col.unit is not None and unit != col.unit:
                self.rejects.append(Reject(line_no, offset, col.field,
                                           f"{col.field}: unit {unit!r} differs from the header's [{col.unit}]"))
                continue
            key = (col.field, ident)
            series = self._series.get(key)
            if series is None:
                series = make_series(col.field, labels, "nvidia-smi")._replace(device=device, host=None)
                if len(self._series) >= _SERIES_CACHE_MAX:
                    self._series.clear()
                self._series[key] = series
            self.cols.add(series, time_us, float(m.group(1)))

    def take(self, bytes_done: int) -> Batch:
        rows = self.cols.take() if len(self.cols) else None
        batch = Batch(rows, self.rejects, self.records, bytes_done)
        self.rejects = []
        self.records = 0
        return batch


def read_nvidia_smi_csv(source: Source, ctx: ReadContext) -> Iterator[Batch]:
    parser = SmiParser(ctx.file_id)
    line_no = 0
    done = 0
    pending = parser.cols.time_us  # cleared in place by take()
    for parts, offset, error in iter_line_blocks(source, ctx.block_size):
        if error:
            parser.rejects.append(Reject(line_no + 1, offset, None, error))
            yield parser.take(offset)
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
    yield parser.take(done)


def sniff_nvidia_smi_csv(head: bytes, name: str) -> bool:
    first = head.removeprefix(codecs.BOM_UTF8).lstrip().split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return bool(first) and parse_smi_header(first) is not None


FORMATS = [
    Format("nvidia-smi-csv", "metrics", "metric_samples", METRIC_KEY, sniff_nvidia_smi_csv, read_nvidia_smi_csv),
    Format("prom-api-json", "metrics", "metric_samples", METRIC_KEY, sniff_prom_api_json, read_prom_api_json),
    Format("prom-text", "metrics", "metric_samples", METRIC_KEY, sniff_prom_text, read_prom_text),
]
