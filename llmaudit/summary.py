"""What the store holds, in numbers: the ingest summary shown after `ingest` and atop `analyze`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from llmaudit.metrics_capacity import Inventory, inventory
from llmaudit.store import Store


class ModelUsage(BaseModel):
    provider: str | None
    model: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    estimated_calls: int


class FormatCount(BaseModel):
    format: str
    files: int
    records: int


class BilledTotal(BaseModel):
    currency: str | None
    rows: int
    billed_cost: float
    effective_cost: float | None
    period_start: datetime | None
    period_end: datetime | None
    providers: list[str]


class MetricsSource(BaseModel):
    source: str              # dcgm | nvidia-smi | vllm | prometheus
    samples: int
    series: int
    hosts: list[str]
    devices: int
    start: datetime | None
    end: datetime | None


class MetricFile(BaseModel):
    path: str
    format: str
    samples: int                  # stored from this file
    scrapes: int                  # distinct sample times among them
    time_source: str              # sample timestamps | # scrape lines | --scrape-time | file modification time
    scrape_time: datetime | None  # the time given to samples without one (--scrape-time or the file's time)
    blank_values: int             # DCGM blank sentinels stored as NULL


class StoreSummary(BaseModel):
    files: list[FormatCount]
    spans: int
    traces: int
    llm_calls: int
    retrievals: int
    rejects: int
    orphan_spans: int
    window_start: datetime | None
    window_end: datetime | None
    services: list[str]
    models: list[ModelUsage]
    billing: list[BilledTotal] = []       # one per currency: never added across currencies
    metrics: list[MetricsSource] = []
    metric_files: list[MetricFile] = []
    inventory: Inventory = Inventory([], [])


def summarize(store: Store) -> StoreSummary:
    q = store.con.execute
    files = [
        FormatCount(format=f, files=n, records=r)
        for f, n, r in q(
            "SELECT format, count(*), coalesce(sum(records_read), 0) FROM ingest_log GROUP BY format ORDER BY format"
        ).fetchall()
    ]
    spans, traces, start, end = q(
        "SELECT count(*), count(DISTINCT trace_id), min(start_time), max(coalesce(end_time, start_time)) FROM spans"
    ).fetchone()
    services = [r[0] for r in q("SELECT DISTINCT service FROM spans WHERE service IS NOT NULL ORDER BY 1").fetchall()]
    derived = store.table_exists("llm_calls")
    models = []
    llm_calls = retrievals = orphans = 0
    if derived:
        models = [
            ModelUsage(provider=p, model=m, calls=c, input_tokens=i, output_tokens=o, cached_input_tokens=ci, estimated_calls=e)
            for p, m, c, i, o, ci, e in q(
                """SELECT provider, model, count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
                          coalesce(sum(cached_input_tokens), 0), count(*) FILTER (WHERE tokens_estimated)
                   FROM llm_calls GROUP BY ALL ORDER BY 4 DESC, 2"""
            ).fetchall()
        ]
        llm_calls = q("SELECT count(*) FROM llm_calls").fetchone()[0]
        retrievals = q("SELECT count(*) FROM retrievals").fetchone()[0]
        orphans = q("SELECT coalesce(sum(orphan_spans), 0) FROM requests").fetchone()[0]
    return StoreSummary(
        files=files,
        spans=spans,
        traces=traces,
        llm_calls=llm_calls,
        retrievals=retrievals,
        rejects=q("SELECT count(*) FROM rejects").fetchone()[0],
        orphan_spans=int(orphans),
        window_start=start,
        window_end=end,
        services=services,
        models=models,
        billing=[
            BilledTotal(currency=c, rows=n, billed_cost=round(b or 0.0, 2), effective_cost=None if e is None else round(e, 2),
                        period_start=ps, period_end=pe, providers=list(p or []))
            for c, n, b, e, ps, pe, p in q(
                """SELECT currency, count(*), sum(billed_cost), sum(effective_cost), min(charge_period_start),
                          max(charge_period_end), list_sort(list(DISTINCT provider) FILTER (WHERE provider IS NOT NULL))
                   FROM billing GROUP BY currency ORDER BY currency NULLS LAST""").fetchall()
        ],
        metrics=[
            MetricsSource(source=src, samples=n, series=k, hosts=list(h or []), devices=d, start=t0, end=t1)
            for src, n, k, h, d, t0, t1 in q(
                """SELECT source, count(*), count(DISTINCT series_key),
                          list_sort(list(DISTINCT host) FILTER (WHERE host IS NOT NULL)),
                          count(DISTINCT (host, device)) FILTER (WHERE device IS NOT NULL), min(time), max(time)
                   FROM metric_samples GROUP BY source ORDER BY source""").fetchall()
        ],
        metric_files=[
            MetricFile(path=p, format=f, samples=n or 0, scrapes=k or 0,
                       time_source=t or "not recorded (ingested by an older llmaudit)", scrape_time=st, blank_values=b or 0)
            for p, f, n, k, t, st, b in q(
                """SELECT l.path, l.format, l.rows_stored, c.scrapes, m.time_source, m.scrape_time, m.blank_values
                   FROM ingest_log l
                   LEFT JOIN metric_files m USING (file_id)
                   LEFT JOIN (SELECT file_id, count(DISTINCT time) AS scrapes FROM metric_samples GROUP BY file_id) c
                     USING (file_id)
                   WHERE l.kind = 'metrics' AND (m.file_id IS NOT NULL OR c.file_id IS NOT NULL)
                   ORDER BY l.path, l.file_id""").fetchall()
        ],
        inventory=inventory(store),
    )
