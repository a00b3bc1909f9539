"""prom-text: Prometheus text exposition / OpenMetrics, one scrape or many concatenated (DCGM exporter,
vLLM /metrics, node exporters, ...). Each sample's time is its own timestamp when it has one
(integer milliseconds as Prometheus writes them; OpenMetrics seconds are told apart by magnitude:
below 1e11 is seconds). Samples without one take the time of the nearest separator line above:

    # scrape 2025-11-22T08:00:00Z                    (ISO 8601; no zone means UTC)
    # scrape 2025-11-22T08:00:00Z {instance="gpu-node-1:9400"}
    # time: 1763798400.0                             (unix seconds)

A label set after the time is added to every sample of that scrape (a raw scrape carries no
host label; a sample's own label of the same name wins). `# EOF` ends a scrape: until the next
separator, timestamp-less samples have no time, and each run of them is rejected once, naming its lines.

A file with no separator line at all is what `curl /metrics` saves: one scrape, no timestamps. Its
samples take the scrape time the run was given (`--scrape-time`, ReadContext.options["scrape_time_us"]),
else the file's modification time (when curl finished writing it). That time covers one scrape only: a
series met again (or samples after `# EOF`) starts a second scrape whose time nobody wrote, and those
samples are rejected. The time source used is recorded per file (metric_files.time_source).
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
from llmaudit.ingest.sources import BrokenStream, Source

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


_SEPARATOR_LINE = re.compile(rb"^(?:\xef\xbb\xbf)?[ \t]*#[ \t]*(?:scrape:?[ \t]|time:)", re.MULTILINE)


def has_separator_lines(source: Source) -> bool:
    """Whether any line of the file is a '# scrape' / '# time:' separator (a scan that stops at the first)."""
    tail = b""
    try:
        for chunk in source.chunks(1 << 20):
            block = tail + chunk
            cut = block.rfind(b"\n") + 1
            if _SEPARATOR_LINE.search(block, 0, cut):
                return True
            tail = block[cut:]
    except BrokenStream:
        pass  # the read itself reports the broken end
    return bool(_SEPARATOR_LINE.search(tail))


# Why a run of timestamp-less samples has no time, by what the file offers (see the module docstring).
_UNTIMED_REASONS = {
    "no separator": "{count} sample(s) on {where} have no timestamp and no '# scrape <ISO 8601 time>' or "
                    "'# time: <unix seconds>' line before them, so their time is unknown",
    "second scrape": "{count} sample(s) on {where} have no timestamp and belong to a second scrape (a series "
                     "seen already, or after '# EOF'): only a file's first scrape takes {fallback}; put a "
                     "'# scrape <ISO 8601 time>' line before each scrape",
}


class PromTextParser(LineParser):
    """Line-at-a-time state of a prom-text read: scrape time, scrape labels, series cache, rows, and the
    fallback time of a file without separators (`fallback()` -> (time in us, TIME_SOURCES name))."""

    def __init__(self, file_id: int, fallback=None, has_separators=None) -> None:
        super().__init__(file_id)
        self.scrape_us: int | None = None
        self.scrape_labels: dict = {}
        self.scrape_labels_text = ""
        self._series: dict = {}
        self._untimed: list | None = None  # [first line, its offset, last line, count, reason key]
        self._fallback = fallback
        self._has_separators = has_separators
        self._separators: bool | None = None  # known once a separator is met, or the file was scanned
        self._fallback_us: int | None = None
        self._fallback_source = ""
        self._fallback_seen: set | None = None  # series keys of the scrape the fallback time went to
        self._fallback_closed = False

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
            if self._fallback_seen:
                self._fallback_closed = True  # what follows is another scrape
            return
        if b"scrape" not in line[:12] and b"time:" not in line[:12]:
            return  # HELP, TYPE, UNIT and free comments carry nothing a sample row needs
        text = line.decode("utf-8", "replace")
        m = _SEPARATOR.fullmatch(text)
        if m is None:
            return
        self._separators = True
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
        first, offset, last, count, why = run
        where = f"line {first}" if first == last else f"lines {first}-{last}"
        reason = _UNTIMED_REASONS[why].format(count=count, where=where, fallback=self._fallback_source)
        self.rejects.append(Reject(first, offset, where, reason))
        self._untimed = None

    def _untimed_sample(self, line_no: int, offset: int, why: str) -> None:
        run = self._untimed
        if run is not None and run[4] != why:
            self.flush_untimed()
            run = None
        if run is None:
            self._untimed = [line_no, offset, line_no, 1, why]
        else:
            run[2] = line_no
            run[3] += 1

    def _fallback_time(self, series) -> int | None:
        """The time for a sample with neither a timestamp nor a separator above it: the fallback, if the
        file has no separators and this sample belongs to its first scrape; else None."""
        if self._fallback_closed or self._fallback is None:
            return None
        if self._separators is None:
            self._separators = self._has_separators()
        if self._separators:
            return None
        seen = self._fallback_seen
        if seen is None:
            self._fallback_us, self._fallback_source = self._fallback()
            self.cols.scrape_time_us = self._fallback_us
            seen = self._fallback_seen = set()
        elif series.key in seen:
            self._fallback_closed = True  # the series again: a second scrape began
            return None
        seen.add(series.key)
        return self._fallback_us

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
        # Everything that can reject the line comes first: the state below changes only for a good line.
        value = parse_value(value_text)
        time_us = exposition_ts_to_us(ts_text) if ts_text is not None else None
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
        if time_us is not None:
            used = "sample timestamps"
        elif self.scrape_us is not None:
            time_us, used = self.scrape_us, "# scrape lines"
        else:
            time_us = self._fallback_time(series)
            if time_us is None:
                self._untimed_sample(line_no, offset, "second scrape" if self._fallback_closed else "no separator")
                return
            used = self._fallback_source
        self.cols.time_sources.add(used)
        self.cols.add(series, time_us, value)

    def end(self) -> None:
        self.flush_untimed()


def fallback_scrape_time(source: Source, options: dict) -> tuple[int, str]:
    """The time of a scrape that wrote none: --scrape-time, else the file's modification time."""
    given = options.get("scrape_time_us")
    if given is not None:
        return given, "--scrape-time"
    mtime_us = source.path.stat().st_mtime_ns // 1_000_000_000 * 1_000_000  # to the second: a scrape's precision
    return check_range(mtime_us, f"modification time of {source.path.name}"), "file modification time"


def read_prom_text(source: Source, ctx: ReadContext) -> Iterator[Batch]:
    parser = PromTextParser(ctx.file_id, fallback=lambda: fallback_scrape_time(source, ctx.options),
                            has_separators=lambda: has_separator_lines(source))
    yield from read_lines(parser, source, ctx)


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
