"""The load the plan is built on, read from the store with SQL: the window, each feature's calls per model,
their arrivals by hour and minute, requests in flight, and the self-hosted model servers.

A "group" is a feature's calls to one model (feature None: every feature's calls to that model, which is
what a self-hosted model server carries). Times are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from llmaudit.replay.capacity import HOURS_PER_MONTH
from llmaudit.store import Store

ALL = object()  # a group over every feature of a model


@dataclass(frozen=True)
class Window:
    start: datetime | None
    end: datetime | None
    hours: float

    @property
    def month_factor(self) -> float:
        return HOURS_PER_MONTH / self.hours if self.hours > 0 else 0.0

    @property
    def days(self) -> float:
        return self.hours / 24.0


@dataclass(frozen=True)
class CallGroup:
    feature: str | None
    model: str
    provider: str | None
    self_hosted: bool
    embeddings: bool            # every call is an embedding: not a generation workload
    calls: int
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float             # priced calls only
    unpriced: int
    first: datetime
    last: datetime
    mean_service_s: float | None  # mean duration of the calls that succeeded

    @property
    def mean_input(self) -> float:
        return self.input_tokens / self.calls if self.calls else 0.0

    @property
    def mean_output(self) -> float:
        return self.output_tokens / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class HourLoad:
    hour: datetime
    calls: int
    peak_minute_calls: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Server:
    """A self-hosted model and the hosts (replicas) that serve it, with their GPUs."""

    model: str
    hosts: list[str]
    gpus_per_host: float
    gpu_model: str | None
    accelerator: str | None
    usd_per_hour: float | None   # per GPU, from gpu_device_prices
    has_serving_metrics: bool


def window(store: Store) -> Window:
    """From the first to the last thing the store saw: model calls and metric samples."""
    parts = []
    if store.table_exists("llm_calls"):
        parts.append("SELECT min(start_time) AS a, max(coalesce(end_time, start_time)) AS b FROM llm_calls")
    if store.table_exists("metric_samples"):
        parts.append("SELECT min(time) AS a, max(time) AS b FROM metric_samples")
    if not parts:
        return Window(None, None, 0.0)
    start, end = store.con.execute(f"SELECT min(a), max(b) FROM ({' UNION ALL '.join(parts)})").fetchone()
    hours = (end - start).total_seconds() / 3600 if start and end else 0.0
    return Window(start, end, hours)


def call_groups(store: Store) -> list[CallGroup]:
    if not store.table_exists("llm_calls"):
        return []
    rows = store.con.execute("""
        SELECT feature, model, mode(provider), bool_or(coalesce(self_hosted, FALSE)),
               bool_and(coalesce(operation, '') = 'embeddings'),
               count(*), count(DISTINCT trace_id), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
               coalesce(sum(cached_input_tokens), 0), coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE cost_usd IS NULL),
               min(start_time), max(coalesce(end_time, start_time)),
               avg(duration_ms) FILTER (WHERE NOT coalesce(is_error, FALSE)) / 1000
        FROM llm_calls WHERE model IS NOT NULL
        GROUP BY feature, model
        ORDER BY feature NULLS LAST, model""").fetchall()
    return [CallGroup(f, m, p, bool(sh), bool(emb), int(n), int(r), int(i), int(o), int(c), float(cost), int(u), a, b, s)
            for f, m, p, sh, emb, n, r, i, o, c, cost, u, a, b, s in rows]


_FILTER = "model = $model AND ($all OR feature IS NOT DISTINCT FROM $feature)"


def _params(model: str, feature) -> dict:
    every = feature is ALL
    return {"model": model, "feature": None if every else feature, "all": every}


def hourly(store: Store, model: str, feature=ALL) -> list[HourLoad]:
    """Calls per calendar hour that had any, with the busiest minute of each hour."""
    rows = store.con.execute(f"""
        WITH m AS (
            SELECT date_trunc('minute', start_time) AS minute, count(*) AS n,
                   coalesce(sum(input_tokens), 0) AS i, coalesce(sum(output_tokens), 0) AS o
            FROM llm_calls WHERE {_FILTER} GROUP BY 1
        )
        SELECT date_trunc('hour', minute) AS hour, sum(n), max(n), sum(i), sum(o)
        FROM m GROUP BY 1 ORDER BY 1""", _params(model, feature)).fetchall()
    return [HourLoad(h, int(n), int(pk), int(i), int(o)) for h, n, pk, i, o in rows]


def peak_minute(store: Store, model: str, feature=ALL) -> tuple[datetime | None, int]:
    row = store.con.execute(f"""
        SELECT date_trunc('minute', start_time) AS minute, count(*) AS n FROM llm_calls WHERE {_FILTER}
        GROUP BY 1 ORDER BY n DESC, minute LIMIT 1""", _params(model, feature)).fetchone()
    return (row[0], int(row[1])) if row else (None, 0)


def concurrency(store: Store, model: str, start: datetime, end: datetime, feature=ALL) -> tuple[float | None, float | None]:
    """Requests in flight between start and end: (95th percentile, time-weighted; maximum). Each call
    counts from its start to its end; the level between two events holds for the time between them."""
    row = store.con.execute(f"""
        WITH c AS (
            SELECT greatest(start_time, CAST($start AS TIMESTAMP)) AS a, least(end_time, CAST($end AS TIMESTAMP)) AS b
            FROM llm_calls WHERE {_FILTER} AND end_time IS NOT NULL
              AND end_time > CAST($start AS TIMESTAMP) AND start_time < CAST($end AS TIMESTAMP)
        ),
        ev AS (
            SELECT a AS t, 1 AS d FROM c WHERE b > a
            UNION ALL SELECT b, -1 FROM c WHERE b > a
            UNION ALL SELECT CAST($start AS TIMESTAMP), 0
            UNION ALL SELECT CAST($end AS TIMESTAMP), 0
        ),
        lvl AS (
            SELECT t, sum(d) OVER (ORDER BY t, d ROWS UNBOUNDED PRECEDING) AS level,
                   lead(t) OVER (ORDER BY t, d) AS t_next
            FROM ev
        ),
        dur AS (
            SELECT level, sum(epoch(t_next - t)) AS s FROM lvl WHERE t_next IS NOT NULL GROUP BY level
        ),
        cum AS (
            SELECT level, sum(s) OVER (ORDER BY level) / nullif(sum(s) OVER (), 0) AS share FROM dur
        )
        SELECT (SELECT min(level) FROM cum WHERE share >= 0.95), (SELECT max(level) FROM lvl)
        """, {**_params(model, feature), "start": start, "end": end}).fetchone()
    return (float(row[0]) if row[0] is not None else None, float(row[1]) if row[1] is not None else None)


def arrivals_per_minute(store: Store, model: str, start: datetime, minutes: int, feature=ALL) -> list[int]:
    """Calls started in each minute from `start` (the first minute of the window), `minutes` long."""
    rows = store.con.execute(f"""
        SELECT CAST(floor(epoch(start_time - CAST($start AS TIMESTAMP)) / 60) AS BIGINT) AS m, count(*)
        FROM llm_calls WHERE {_FILTER} AND start_time >= CAST($start AS TIMESTAMP)
        GROUP BY 1""", {**_params(model, feature), "start": start}).fetchall()
    out = [0] * minutes
    for m, n in rows:
        if 0 <= m < minutes:
            out[int(m)] += int(n)
    return out


def call_intervals(store: Store, model: str, feature=ALL) -> list[tuple[datetime, datetime]]:
    rows = store.con.execute(f"""
        SELECT start_time, coalesce(end_time, start_time) FROM llm_calls WHERE {_FILTER}
        ORDER BY start_time, end_time""", _params(model, feature)).fetchall()
    return [(a, b) for a, b in rows]


def union_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    """Length of the union of [start, end) intervals, in seconds (requests in flight at once count once)."""
    total = 0.0
    cur_a = cur_b = None
    for a, b in sorted(intervals):
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += (cur_b - cur_a).total_seconds()
            cur_a, cur_b = a, b
        elif b > cur_b:
            cur_b = b
    if cur_b is not None:
        total += (cur_b - cur_a).total_seconds()
    return total


def root_kinds(store: Store) -> dict[str | None, dict[str, int]]:
    """Per feature: how many of its requests have a root span of each kind (server = someone waits on it)."""
    if not store.table_exists("requests"):
        return {}
    rows = store.con.execute("""
        SELECT r.feature, coalesce(s.kind, 'unspecified'), count(*)
        FROM requests r LEFT JOIN spans s ON s.trace_id = r.trace_id AND s.span_id = r.root_span_id
        GROUP BY ALL""").fetchall()
    out: dict = {}
    for feature, kind, n in rows:
        out.setdefault(feature, {})[kind] = int(n)
    return out


def servers(store: Store, groups: list[CallGroup]) -> list[Server]:
    """Self-hosted models and their hosts: the hosts whose vLLM metrics name the model; else, with exactly
    one GPU host and one self-hosted model, that host."""
    served: dict[str, list[str]] = {}
    if store.table_exists("serving_samples"):
        for model, host in store.con.execute("""
                SELECT DISTINCT model_name, host FROM serving_samples
                WHERE metric = 'requests_running' AND model_name IS NOT NULL AND host IS NOT NULL
                ORDER BY 1, 2""").fetchall():
            served.setdefault(model, []).append(host)
    # Self-hosted models the traces call, and models vLLM metrics show served (with or without traces).
    models = sorted({g.model for g in groups if g.self_hosted} | set(served))
    if not models:
        return []
    gpus: dict[str, list[tuple]] = {}
    if store.table_exists("gpu_device_prices"):
        for host, device, gpu_model, acc, usd in store.con.execute(
                "SELECT host, device, gpu_model, accelerator, usd_per_hour FROM gpu_device_prices ORDER BY 1, 2").fetchall():
            gpus.setdefault(host, []).append((device, gpu_model, acc, usd))
    out = []
    for model in models:
        hosts = served.get(model, [])
        metrics = bool(hosts)
        if not hosts and len(models) == 1 and len(gpus) == 1:
            hosts = list(gpus)
        devices = [d for h in hosts for d in gpus.get(h, [])]
        per_host = len(devices) / len(hosts) if hosts and devices else 1.0
        prices = {d[3] for d in devices if d[3] is not None}
        out.append(Server(model=model, hosts=hosts, gpus_per_host=per_host,
                          gpu_model=devices[0][1] if devices else None, accelerator=devices[0][2] if devices else None,
                          usd_per_hour=prices.pop() if len(prices) == 1 else None, has_serving_metrics=metrics))
    return out


def provisioned_gpu_hours(store: Store, hosts: list[str]) -> float:
    """GPU-hours the hosts' GPUs were seen (gpu_busy_intervals coverage)."""
    if not hosts or not store.table_exists("gpu_busy_intervals"):
        return 0.0
    v = store.con.execute("SELECT coalesce(sum(seconds), 0) / 3600 FROM gpu_busy_intervals WHERE host IN (SELECT unnest($h))",
                          {"h": hosts}).fetchone()[0]
    return float(v or 0.0)


def serving_intervals(store: Store, hosts: list[str], model: str) -> list[tuple]:
    """Per scrape interval of the model's servers: (host, start, seconds, generated tokens, requests
    completed, running, waiting). Counter increases across a restart count from zero."""
    if not hosts or not store.table_exists("serving_counter_increase"):
        return []
    return store.con.execute("""
        WITH inc AS (
            SELECT host, prev_time, time, epoch(time - prev_time) AS s,
                   sum(increase) FILTER (WHERE metric = 'generation_tokens') AS gen,
                   sum(increase) FILTER (WHERE metric = 'requests_succeeded') AS done
            FROM serving_counter_increase
            WHERE host IN (SELECT unnest($h)) AND model_name = $m AND increase IS NOT NULL
              AND metric IN ('generation_tokens', 'requests_succeeded')
            GROUP BY host, prev_time, time
        ),
        g AS (
            SELECT host, time, sum(value) FILTER (WHERE metric = 'requests_running') AS running,
                   sum(value) FILTER (WHERE metric = 'requests_waiting') AS waiting
            FROM serving_samples WHERE host IN (SELECT unnest($h)) AND model_name = $m
              AND metric IN ('requests_running', 'requests_waiting')
            GROUP BY host, time
        )
        SELECT inc.host, inc.prev_time, inc.s, inc.gen, inc.done, g.running, g.waiting
        FROM inc LEFT JOIN g ON g.host = inc.host AND g.time = inc.time
        WHERE inc.s > 0
        ORDER BY inc.prev_time, inc.host""", {"h": hosts, "m": model}).fetchall()


def metrics_load(store: Store, hosts: list[str], model: str) -> list[tuple[datetime, float, float, float]]:
    """Without traces, the load from the vLLM counters: per scrape time, over the model's hosts,
    (start of the interval, seconds, requests completed, prompt + generated tokens)."""
    if not hosts or not store.table_exists("serving_counter_increase"):
        return []
    rows = store.con.execute("""
        SELECT prev_time, max(epoch(time - prev_time)),
               coalesce(sum(increase) FILTER (WHERE metric = 'requests_succeeded'), 0),
               coalesce(sum(increase) FILTER (WHERE metric IN ('prompt_tokens', 'generation_tokens')), 0)
        FROM serving_counter_increase
        WHERE host IN (SELECT unnest($h)) AND model_name = $m AND increase IS NOT NULL
          AND metric IN ('requests_succeeded', 'prompt_tokens', 'generation_tokens')
        GROUP BY prev_time HAVING max(epoch(time - prev_time)) > 0 ORDER BY prev_time""",
                                 {"h": hosts, "m": model}).fetchall()
    return [(t, float(s), float(done), float(tok)) for t, s, done, tok in rows]


def replicas_over_time(store: Store, hosts: list[str], model: str, bucket_s: int = 300) -> list[tuple[int, int]]:
    """How many of the model's hosts reported in each bucket (numbered epoch seconds // bucket_s): the replica
    count the metrics show."""
    if not hosts or not store.table_exists("serving_samples"):
        return []
    rows = store.con.execute("""
        SELECT CAST(floor(epoch(time) / $b) AS BIGINT) AS bucket, count(DISTINCT host)
        FROM serving_samples WHERE host IN (SELECT unnest($h)) AND model_name = $m AND metric = 'requests_running'
        GROUP BY 1 ORDER BY 1""", {"h": hosts, "m": model, "b": bucket_s}).fetchall()
    return [(int(b), int(n)) for b, n in rows]


def epoch_s(t: datetime) -> float:
    """Seconds since the epoch of a store time (UTC, without a zone)."""
    return t.replace(tzinfo=timezone.utc).timestamp() if t.tzinfo is None else t.timestamp()


def minute_floor(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def minutes_between(a: datetime, b: datetime) -> int:
    return int((minute_floor(b) - minute_floor(a)) / timedelta(minutes=1)) + 1
