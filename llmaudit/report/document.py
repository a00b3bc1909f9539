"""The audit document: one versioned structure that every output format renders.

JSON output is this model dumped as is (schema: report_templates/report.schema.json); Markdown,
HTML and the terminal read the same object, so the formats cannot disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from llmaudit import __version__
from llmaudit.findings.model import Finding
from llmaudit.rules.engine import RunResult, as_utc
from llmaudit.store import Store

SCHEMA_VERSION = "1.0"


class InputFile(BaseModel):
    path: str
    sha256: str
    format: str
    kind: str
    records: int
    stored: int
    rejects: int


class Window(BaseModel):
    start: datetime | None
    end: datetime | None
    days: float | None


class Totals(BaseModel):
    requests: int
    spans: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    spend_usd: float | None = Field(description="trace-estimated spend of priced calls")
    unpriced_calls: int = Field(description="calls whose model has no price: not counted as $0")
    estimated_waste_usd: float
    estimated_waste_usd_per_month: float
    findings: int
    rejects: int


class BreakdownRow(BaseModel):
    key: str | None
    requests: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    spend_usd: float | None
    share_of_spend: float | None


class AuditDocument(BaseModel):
    schema_version: str = SCHEMA_VERSION
    tool: dict[str, str] = Field(default_factory=lambda: {"name": "llmaudit", "version": __version__})
    inputs: list[InputFile]
    window: Window
    totals: Totals
    findings: list[Finding]
    skipped_rules: dict[str, str]
    rule_errors: dict[str, str]
    breakdowns: dict[str, list[BreakdownRow]]
    extras: dict[str, Any] = Field(default_factory=dict, description="sections added by other modules (billing, GPU, replay)")


_BREAKDOWNS = {
    "feature": "feature",
    "model": "model",
    "provider": "provider",
    "tenant": "tenant",
    "service": "service",
    "day": "strftime(start_time, '%Y-%m-%d')",
}


def _breakdown(store: Store, expr: str) -> list[BreakdownRow]:
    rows = store.con.execute(
        f"""
        WITH c AS (SELECT {expr} AS key, * FROM llm_calls),
        total AS (SELECT sum(cost_usd) AS spend FROM llm_calls)
        SELECT key, count(DISTINCT trace_id), count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
               sum(cost_usd), sum(cost_usd) / nullif(any_value(total.spend), 0)
        FROM c, total GROUP BY key ORDER BY sum(cost_usd) DESC NULLS LAST, count(*) DESC, key NULLS LAST
        """
    ).fetchall()
    return [
        BreakdownRow(key=k, requests=r, llm_calls=n, input_tokens=i, output_tokens=o,
                     spend_usd=round(s, 4) if s is not None else None, share_of_spend=round(sh, 4) if sh is not None else None)
        for k, r, n, i, o, s, sh in rows
    ]


def build_document(store: Store, result: RunResult) -> AuditDocument:
    q = store.con.execute
    inputs = [
        InputFile(path=p, sha256=h, format=f, kind=k, records=r or 0, stored=s or 0, rejects=j or 0)
        for p, h, f, k, r, s, j in q(
            "SELECT path, content_sha256, format, kind, records_read, rows_stored, rejects FROM ingest_log ORDER BY path, file_id"
        ).fetchall()
    ]
    start, end = q("SELECT min(start_time), max(coalesce(end_time, start_time)) FROM spans").fetchone()
    requests, spans = q("SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM spans)").fetchone()
    calls, tin, tout, tcached, spend, unpriced = q(
        """SELECT count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
                  coalesce(sum(cached_input_tokens), 0), sum(cost_usd), count(*) FILTER (WHERE cost_usd IS NULL)
           FROM llm_calls"""
    ).fetchone()
    waste = sum(f.waste.usd or 0.0 for f in result.findings)
    waste_month = sum(f.waste.usd_per_month or 0.0 for f in result.findings)
    totals = Totals(
        requests=requests, spans=spans, llm_calls=calls, input_tokens=int(tin), output_tokens=int(tout),
        cached_input_tokens=int(tcached), spend_usd=round(spend, 2) if spend is not None else None,
        unpriced_calls=unpriced, estimated_waste_usd=round(waste, 2), estimated_waste_usd_per_month=round(waste_month, 2),
        findings=len(result.findings), rejects=q("SELECT count(*) FROM rejects").fetchone()[0],
    )
    return AuditDocument(
        inputs=inputs,
        window=Window(start=as_utc(start), end=as_utc(end), days=round(result.window_days, 3) if result.window_days else None),
        totals=totals,
        findings=result.findings,
        skipped_rules=dict(sorted(result.skipped.items())),
        rule_errors=dict(sorted(result.errors.items())),
        breakdowns={name: _breakdown(store, expr) for name, expr in _BREAKDOWNS.items()},
    )
