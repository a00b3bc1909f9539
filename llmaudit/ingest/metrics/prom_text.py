"""prom-text: Prometheus text exposition / OpenMetrics, one scrape or many concatenated (DCGM exporter,
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
"""

from __future__ import annotations

import codecs
import re
from datetime import datetime
from typing import Iterator

from llmaudit.ingest.core import Batch, Format, ReadContext, Reject, short
from llmaudit.ingest.metrics.lines import LineParser, read_lines
from llmaudit.ingest.metrics.samples import (
    METRIC_KEY,
    SERIES_CACHE_MAX,
    BadLine,
    check_range,
    datetime_to_us,
    make_series,
    parse_value,
    unix_to_us,
)
from llmaudit.ingest.sources import Source

_MS_THRESHOLD = 1e11  # a timestamp at least this large is milliseconds (year > 5138 as seconds)


def exposition_ts_to_us(text: str) -> int:
    """A sample timestamp: Prometheus milliseconds or OpenMetrics seconds, told apart by size."""
    if text.isdigit():
        n = int(text)
        return check_range(n * 1000 if n >= _MS_THRESHOLD else n * 1_000_000, text)
    try:
        f = float(text)
    except ValueError:
        raise BadLine(f"timestamp {short(text)} is not a number") from None
    if f != f or "_" in text:
        raise BadLine(f"timestamp {short(text)} is not a number")
    if f in (float("inf"), float("-inf")):
        raise BadLine(f"timestamp {short(text)} is outside 1970-2200")
    return check_range(round(f * 1000) if abs(f) >= _MS_THRESHOLD else round(f * 1_000_000), text)


def scrape_time_to_us(text: str) -> int:
    """A separator's time: ISO 8601 (no zone = UTC) or unix seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return unix_to_us(float(text), text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadLine(f"scrape time {short(text)} is neither ISO 8601 nor unix seconds") from None
    return check_range(datetime_to_us(moment), text)


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
        raise BadLine(f"not a sample line: expected a metric name, got {short(text)}")
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
        raise BadLine(f"expected a value and an optional timestamp after the series, got {short(rest.strip())}")
    return name, label_text, labels, fields[0], fields[1] if len(fields) == 2 else None


class PromTextParser(LineParser):
    """Line-at-a-time state of a prom-text read: scrape time, scrape labels, series cache, rows."""

    def __init__(self, file_id: int) -> None:
        super().__init__(file_id)
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
            if len(self._series) >= SERIES_CACHE_MAX:
                self._series.clear()
            self._series[cache_key] = series
        self.cols.add(series, time_us, value)

    def end(self) -> None:
        self.flush_untimed()


def read_prom_text(source: Source, ctx: ReadContext) -> Iterator[Batch]:
    yield from read_lines(PromTextParser(ctx.file_id), source, ctx)


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


FORMAT = Format("prom-text", "metrics", "metric_samples", METRIC_KEY, sniff_prom_text, read_prom_text)
