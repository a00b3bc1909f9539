"""nvidia-smi-csv: `nvidia-smi --query-gpu=timestamp,... --format=csv [-l N]`, header required (its
`[unit]` suffixes are how numeric columns are told from text ones; `noheader` output cannot be
recognised or read). Timestamps are the host's local time without a zone: they are taken as UTC.
The output names no host, so a GPU's device is its UUID (else its index); text columns other than
the GPU's identity (pstate, driver_version, ...) are not stored.
"""

from __future__ import annotations

import codecs
import re
from datetime import datetime
from typing import Iterator, NamedTuple

from llmaudit.ingest.core import Batch, Format, ReadContext, Reject, short
from llmaudit.ingest.metrics.lines import LineParser, read_lines
from llmaudit.ingest.metrics.samples import METRIC_KEY, SERIES_CACHE_MAX, BadLine, check_range, datetime_to_us, make_series
from llmaudit.ingest.sources import Source

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
            return check_range(datetime_to_us(datetime.strptime(text, fmt)), text)
        except ValueError:
            continue
    raise BadLine(f"timestamp {short(text)} is not YYYY/MM/DD HH:MM:SS[.fff]")


class SmiParser(LineParser):
    def __init__(self, file_id: int) -> None:
        super().__init__(file_id)
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
                self.rejects.append(Reject(line_no, offset, col.field, f"{col.field}: not a number: {short(cell)}"))
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
                if len(self._series) >= SERIES_CACHE_MAX:
                    self._series.clear()
                self._series[key] = series
            self.cols.add(series, time_us, float(m.group(1)))
            self.cols.time_sources.add("sample timestamps")


def read_nvidia_smi_csv(source: Source, ctx: ReadContext) -> Iterator[Batch]:
    yield from read_lines(SmiParser(ctx.file_id), source, ctx)


def sniff_nvidia_smi_csv(head: bytes, name: str) -> bool:
    first = head.removeprefix(codecs.BOM_UTF8).lstrip().split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return bool(first) and parse_smi_header(first) is not None


FORMAT = Format("nvidia-smi-csv", "metrics", "metric_samples", METRIC_KEY, sniff_nvidia_smi_csv, read_nvidia_smi_csv)
