"""Capacity figures from the metrics views, for the idle-capacity rules and the report.

gpu_hours: how long each GPU was provisioned (seen by its exporter) and how much of that it was busy,
by hour of day. Coverage and the busy signal come from the `gpu_busy_intervals` view (schema_metrics.sql):
a sample covers the time to the next one unless that gap exceeds 3x the GPU's median scrape interval,
then it covers one median interval; busy is SM_ACTIVE where present, else GPU_UTIL / 100.

serving_peak_concurrency: per server (host) and model, the most requests running at once, when that
first happened, and the spread (mean, p95), with waiting requests alongside.

Both accept a DuckDB connection or a Store, and optional start/end bounds (datetime, aware or UTC-naive,
or ISO 8601 text): start inclusive, end exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class GpuHours:
    host: str | None
    device: str | None
    hour_of_day: int                # 0-23, UTC
    days: int                       # distinct dates that contributed to this hour of day
    provisioned_gpu_hours: float    # covered by samples
    busy_gpu_hours: float           # sum of busy fraction x covered time
    measured_gpu_hours: float       # the part of provisioned time that had a busy signal
    busy_signal: str | None         # sm_active | gpu_util | mixed (both, at different times) | None


@dataclass(frozen=True)
class ServingPeak:
    host: str | None
    model_name: str | None
    samples: int
    peak_running: float | None
    peak_running_at: datetime | None  # first time the peak was reached
    mean_running: float | None
    p95_running: float | None
    peak_waiting: float | None
    peak_in_system: float | None      # running + waiting, at one time


def _con(con):
    return getattr(con, "con", con)


def _utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


_GPU_HOURS_SQL = """
WITH iv AS (
    SELECT host, device, busy, busy_signal,
           greatest(start_time, coalesce(CAST($start AS TIMESTAMP), start_time)) AS a,
           least(end_time, coalesce(CAST($end AS TIMESTAMP), end_time)) AS b
    FROM gpu_busy_intervals
    WHERE seconds > 0
),
pieces AS (
    -- an interval that crosses o'clock is split so each part counts toward its own hour
    SELECT iv.host, iv.device, iv.busy, iv.busy_signal, h.hour_start,
           date_diff('microsecond', greatest(iv.a, h.hour_start),
                     least(iv.b, h.hour_start + INTERVAL 1 HOUR)) / 3600e6 AS hours
    FROM iv,
         LATERAL (SELECT unnest(generate_series(date_trunc('hour', iv.a), iv.b, INTERVAL 1 HOUR)) AS hour_start) AS h
    WHERE iv.b > iv.a
)
SELECT host, device, CAST(hour(hour_start) AS INTEGER) AS hour_of_day,
       CAST(count(DISTINCT CAST(hour_start AS DATE)) AS INTEGER) AS days,
       sum(hours) AS provisioned_gpu_hours,
       coalesce(sum(hours * busy), 0) AS busy_gpu_hours,
       coalesce(sum(hours) FILTER (WHERE busy IS NOT NULL), 0) AS measured_gpu_hours,
       CASE WHEN count(DISTINCT busy_signal) > 1 THEN 'mixed' ELSE max(busy_signal) END AS busy_signal
FROM pieces
WHERE hours > 0
GROUP BY host, device, hour_of_day
ORDER BY host NULLS FIRST, device NULLS FIRST, hour_of_day
"""


def gpu_hours(con, start=None, end=None) -> list[GpuHours]:
    """Provisioned and busy GPU-hours per host, device and hour of day (UTC) within [start, end)."""
    rows = _con(con).execute(_GPU_HOURS_SQL, {"start": _utc(start), "end": _utc(end)}).fetchall()
    return [GpuHours(*row) for row in rows]


_PEAK_SQL = """
WITH per_time AS (
    -- engines of one server (data parallel) are scraped together: their sum is the server's load
    SELECT host, model_name, time,
           sum(value) FILTER (WHERE metric = 'requests_running') AS running,
           sum(value) FILTER (WHERE metric = 'requests_waiting') AS waiting
    FROM serving_samples
    WHERE metric IN ('requests_running', 'requests_waiting')
      AND ($start IS NULL OR time >= CAST($start AS TIMESTAMP))
      AND ($end IS NULL OR time < CAST($end AS TIMESTAMP))
    GROUP BY host, model_name, time
),
ranked AS (
    SELECT *, max(running) OVER (PARTITION BY host, model_name) AS peak FROM per_time
)
SELECT host, model_name, CAST(count(*) AS INTEGER) AS samples,
       max(running) AS peak_running,
       min(time) FILTER (WHERE running = peak) AS peak_running_at,
       avg(running) AS mean_running,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY running) AS p95_running,
       max(waiting) AS peak_waiting,
       max(coalesce(running, 0) + coalesce(waiting, 0)) AS peak_in_system
FROM ranked
GROUP BY host, model_name
ORDER BY host NULLS FIRST, model_name NULLS FIRST
"""


def serving_peak_concurrency(con, start=None, end=None) -> list[ServingPeak]:
    """Peak, mean and p95 of running requests per host and model, with waiting requests."""
    rows = _con(con).execute(_PEAK_SQL, {"start": _utc(start), "end": _utc(end)}).fetchall()
    return [ServingPeak(*row) for row in rows]
