"""The rows of `metric_samples`, one per sample, whatever the format: the series a sample belongs to
(metric name, labels, host, device, source), its time and its value.

A sample's source is told by its metric name (DCGM_ -> dcgm, vllm: -> vllm, nvidia_smi_ -> nvidia-smi,
else prometheus). NaN values are stored as NULL, and so are DCGM's blank sentinels (see DCGM_BLANKS).

Each file also gets one `metric_files` row: where its samples' times came from (TIME_SOURCES), the one
time given to samples that had none, and how many DCGM blanks it held.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime, timezone
from typing import NamedTuple

import orjson
import pyarrow as pa

from llmaudit.ingest.core import short

BATCH_ROWS = 50_000
SERIES_CACHE_MAX = 100_000  # distinct label sets remembered; cleared when full to bound memory

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

# DCGM writes a field it could not read as a sentinel at or above the "blank" base of the field's type,
# the low bits saying why (not found, not supported, not permitted): dcgm_structs.h, DCGM_*_IS_BLANK.
#   DCGM_INT32_BLANK 0x7FFFFFF0, up to INT32_MAX (an int32 holds no more; larger values are real int64s
#                    such as the energy counter);
#   DCGM_FP64_BLANK  2**47 = 140737488355328.0 and above, which also covers
#   DCGM_INT64_BLANK 0x7FFFFFFFFFFFFFF0 = 9223372036854775792 and above.
# The exposition does not say a field's type (and Prometheus rewrites 140737488355328.000000 as
# 140737488355328), so the ranges apply to every DCGM value. A blank is stored as NULL, like NaN, not
# rejected: the sample still says which GPU reports the field, and when.
DCGM_BLANKS = ((float(0x7FFFFFF0), float(0x7FFFFFFF)), (140737488355328.0, math.inf))

# Where a file's sample times came from, in the order a summary names them.
TIME_SOURCES = ("sample timestamps", "# scrape lines", "--scrape-time", "file modification time")

METRIC_FILES_SCHEMA = pa.schema(
    [
        ("file_id", pa.int32()),
        ("time_source", pa.string()),
        ("scrape_time", pa.timestamp("us")),
        ("blank_values", pa.int64()),
    ]
)

_MIN_US = 0                          # 1970-01-01
_MAX_US = 7_258_118_400 * 1_000_000  # 2200-01-01: anything later is a unit mistake, not a time


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


def is_dcgm_blank(value: float) -> bool:
    return any(low <= value <= high for low, high in DCGM_BLANKS)


class SampleColumns:
    """Accumulates metric rows column by column; counts the DCGM blanks it turned into NULL and, for
    the file's `metric_files` row, the time sources its readers used."""

    def __init__(self, file_id: int) -> None:
        self.file_id = file_id
        self.time_us: list = []
        self.value: list = []
        self.series: list = []
        self.blanks = 0                      # over the whole file (take() keeps it)
        self.time_sources: set[str] = set()  # TIME_SOURCES used by stored samples
        self.scrape_time_us: int | None = None  # the time given to samples without one, if any was

    def __len__(self) -> int:
        return len(self.time_us)

    def add(self, series: Series, time_us: int, value: float | None) -> None:
        if value is not None and series.source == "dcgm" and value >= DCGM_BLANKS[0][0] and is_dcgm_blank(value):
            value = None
            self.blanks += 1
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

    def file_related(self) -> dict[str, pa.Table]:
        """The file's `metric_files` row (as Batch.related), once it stored a sample; else nothing."""
        if not self.time_sources:
            return {}
        row = {
            "file_id": [self.file_id],
            "time_source": [" + ".join(t for t in TIME_SOURCES if t in self.time_sources)],
            "scrape_time": [self.scrape_time_us],
            "blank_values": [self.blanks],
        }
        table = pa.Table.from_pydict(
            {**row, "scrape_time": pa.array(row["scrape_time"], pa.int64()).cast(pa.timestamp("us"))},
            schema=METRIC_FILES_SCHEMA)
        return {"metric_files": table}


def parse_value(text: str) -> float | None:
    """A sample value: decimal or float text, NaN (-> None), +Inf, -Inf."""
    try:
        value = float(text)
    except ValueError:
        raise BadLine(f"value {short(text)} is not a number") from None
    if "_" in text:  # Python's float() accepts 1_000; no exposition format does
        raise BadLine(f"value {short(text)} is not a number")
    return None if value != value else value


def check_range(us: int, text) -> int:
    """The time in microseconds, if it is within 1970-2200 (`text` is what the source wrote)."""
    if not _MIN_US <= us < _MAX_US:
        raise BadLine(f"timestamp {short(text)} is outside 1970-2200")
    return us


def unix_to_us(value, text=None) -> int:
    """Unix time in seconds (int, float or numeric text) to microseconds."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadLine(f"timestamp {short(value)} is not a number") from None
    if type(value) is bool or not isinstance(value, (int, float)) or value != value:
        raise BadLine(f"timestamp {short(value)} is not a number")
    if value in (float("inf"), float("-inf")):
        raise BadLine(f"timestamp {short(value)} is outside 1970-2200")
    return check_range(round(value * 1_000_000), text if text is not None else value)


def datetime_to_us(moment: datetime) -> int:
    """A datetime (naive: UTC) as microseconds since 1970."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    delta = moment - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
