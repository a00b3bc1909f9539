"""Capacity figures from the metrics views, for the idle-capacity rules and the report.

gpu_hours: how long each GPU was provisioned (seen by its exporter) and how much of that it was busy,
by hour of day. Coverage and the busy signal come from the `gpu_busy_intervals` view (schema_metrics.sql):
a sample covers the time to the next one unless that gap exceeds 3x the GPU's median scrape interval,
then it covers one median interval; busy is SM_ACTIVE where present, else GPU_UTIL / 100.

serving_peak_concurrency: per server (host) and model, the most requests running at once, when that
first happened, and the spread (mean, p95), with waiting requests alongside.

Both accept a DuckDB connection or a Store, and optional start/end bounds (datetime, aware or UTC-naive,
or ISO 8601 text): start inclusive, end exclusive. Both measure between scrapes: a GPU seen in one scrape
covers no time (it has no GPU-hours), and a server's "peak" over one scrape is just its load then.

inventory: what one scrape already shows (views gpu_inventory, served_models, serving_counter_totals):
the GPUs, the models served with their counters since start, and how many scrapes each was seen in.
`Inventory.snapshot` is true when something was seen and nothing in more than one scrape: then whatever
needs a time series (idle GPU-hours, replicas over time) says so instead of measuring nothing.
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




def gpu_hours(con, start=None, end=None) -> list[GpuHours]:
    """Provisioned and busy GPU-hours per host, device and hour of day (UTC) within [start, end)."""
    rows = _con(con).execute("SELECT * FROM gpu_hours_between(?, ?)", [_utc(start), _utc(end)]).fetchall()
    return [GpuHours(*row) for row in rows]




def serving_peak_concurrency(con, start=None, end=None) -> list[ServingPeak]:
    """Peak, mean and p95 of running requests per host and model, with waiting requests."""
    rows = _con(con).execute("SELECT * FROM serving_peaks_between(?, ?)", [_utc(start), _utc(end)]).fetchall()
    return [ServingPeak(*row) for row in rows]


@dataclass(frozen=True)
class GpuSeen:
    host: str | None
    device: str
    gpu_model: str | None
    uuid: str | None
    scrapes: int                    # distinct sample times
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class ServerSeen:
    host: str | None                # NULL for a raw /metrics scrape (vLLM names no host)
    model_name: str
    scrapes: int
    first_seen: datetime
    last_seen: datetime
    since_start: dict[str, float]   # serving counters at the last scrape (prompt_tokens, requests_succeeded, ...)


@dataclass(frozen=True)
class Inventory:
    gpus: list[GpuSeen]
    servers: list[ServerSeen]

    @property
    def snapshot(self) -> bool:
        """Something was seen, and nothing in more than one scrape."""
        seen = [*self.gpus, *self.servers]
        return bool(seen) and all(x.scrapes < 2 for x in seen)

    @property
    def snapshot_times(self) -> tuple[datetime, datetime] | None:
        times = [x.first_seen for x in (*self.gpus, *self.servers)]
        return (min(times), max(times)) if times else None


def _exists(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])


def inventory(con) -> Inventory:
    """The GPUs and model servers in the metrics, with how many scrapes each was seen in."""
    con = _con(con)
    if not _exists(con, "gpu_inventory"):
        return Inventory([], [])
    gpus = [GpuSeen(*row) for row in con.execute("""
        SELECT host, device, gpu_model, uuid, scrapes, first_seen, last_seen FROM gpu_inventory
        ORDER BY host NULLS FIRST, device""").fetchall()]
    counters: dict = {}
    for host, model, metric, value in con.execute("""
            SELECT host, model_name, metric, value FROM serving_counter_totals
            ORDER BY host NULLS FIRST, model_name, metric""").fetchall():
        counters.setdefault((host, model), {})[metric] = value
    servers = [ServerSeen(host, model, scrapes, first, last, counters.get((host, model), {}))
               for host, model, scrapes, first, last in con.execute("""
                   SELECT host, model_name, scrapes, first_seen, last_seen FROM served_models
                   ORDER BY host NULLS FIRST, model_name""").fetchall()]
    return Inventory(gpus, servers)
