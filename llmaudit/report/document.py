"""The audit document: one versioned structure that every output format renders.

JSON output is this model dumped as is (schema: report_templates/report.schema.json); Markdown,
HTML and the terminal read the same object, so the formats cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from llmaudit import __version__
from llmaudit.findings.model import NOT_WASTE, Finding
from llmaudit.report.finding_charts import FindingChart, finding_charts
from llmaudit.report.numbers import money_text
from llmaudit.report.spend_change import CellSpend, FeatureSpend
from llmaudit.rules.engine import RunResult, as_utc
from llmaudit.store import Store

SCHEMA_VERSION = "1.1"  # 1.1: spend_detail (what a later run needs to explain a change in spend)


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


class SpendParts(BaseModel):
    """Spend in the window, on the basis waste is measured against: what the model calls cost, plus the
    GPUs the self-hosted models run on for as long as they were provisioned."""

    model_apis_usd: float = Field(description="API calls priced per token (trace-estimated at catalog prices)")
    self_hosted_gpu_time_usd: float = Field(description="self-hosted calls: the GPU time while they ran, at the GPU-hour price")
    provisioned_idle_usd: float = Field(description=(
        "provisioned GPU time the self-hosted calls do not carry (before and after them), from the GPU metrics "
        "x GPU-hour price; idle-capacity waste is part of it and of the calls' GPU time"))
    gpu_provisioned_usd: float | None = Field(None, description="all provisioned GPU time (metrics x GPU-hour price), if metrics were given")


class Totals(BaseModel):
    requests: int
    spans: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    spend_usd: float | None = Field(description=(
        "spend in the window: model APIs + self-hosted GPU time + provisioned idle GPU time (spend_parts); the "
        "waste total is never above it"))
    spend_parts: SpendParts | None = None
    unpriced_calls: int = Field(description="calls whose model has no price: not counted as $0")
    estimated_waste_usd: float = Field(description=(
        "waste findings over the window, counted once per mechanism and feature: where several findings "
        "of one category share a service and feature (e.g. a call budget and a loop on the same calls), "
        "only the largest counts; cost_reconciliation findings are not waste (see unexplained_spend_usd); "
        "GPU waste is at most the GPU spend and API waste at most the API spend"))
    estimated_waste_usd_per_month: float = Field(description="the same, extrapolated to 30 days")
    counted_findings: list[str] = Field(default_factory=list, description="fingerprints of the findings the waste total counts")
    unexplained_spend_usd: float = Field(0.0, description=(
        "billed spend the traces do not explain (cost_reconciliation findings): to investigate, not proven waste"))
    findings: int
    rejects: int


class PriceProvenance(BaseModel):
    """The prices every figure of the audit used."""

    catalog: str = "bundled"
    as_of: str | None = None
    source: str | None = None
    sha256: str = Field(description="sha256 of the bundled catalog file (llmaudit/pricing/prices.yaml)")
    gpu_hour_as_of: str | None = None
    gpu_hour_source: str | None = None
    prices_file: str | None = Field(None, description="the user's price file (--prices or `prices` in the config)")
    prices_file_sha256: str | None = None
    accelerator: str | None = Field(None, description="--accelerator: the GPU self-hosted time was priced as")
    contracts: list[str] = Field(default_factory=list, description="contract terms of the price file applied (discounts, committed rates, volume tiers)")
    service_tiers: dict[str, int] = Field(default_factory=dict, description="calls per service tier they were priced at (standard, batch, flex, priority)")


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
    charts: dict[str, FindingChart] = Field(default_factory=dict, description="each finding's chart data, by fingerprint")
    tag_keys: dict[str, list[str]] = Field(default_factory=dict, description=(
        "the attributes a request's feature and tenant were read from (config feature_keys, tenant_keys): calls with "
        "none of them are untagged"))
    prices: PriceProvenance | None = None
    spend_detail: list[FeatureSpend] = Field(default_factory=list, description=(
        "per feature: requests, and per provider, model and call kind the calls, tokens and spend (input and output "
        "apart); a later run given this report as --baseline explains its change in spend from it"))
    token_creep_threshold: float = Field(0.2, description=(
        "input tokens per request growing more than this share is token creep (rule LLMA018's min_growth)"))
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


def spend_detail(store: Store) -> list[FeatureSpend]:
    """Per feature, the requests and, per provider, model and call kind, calls, tokens and spend split into input
    and output (output tokens at the call's output price; the rest of its cost is input's)."""
    if not store.table_exists("llm_calls"):
        return []
    rows = store.con.execute("""
        WITH c AS (
            SELECT feature, provider, model, call_kind, trace_id, coalesce(input_tokens, 0) AS input_tokens,
                   coalesce(output_tokens, 0) AS output_tokens, coalesce(cached_input_tokens, 0) AS cached,
                   CASE WHEN cost_usd IS NULL THEN 0 ELSE coalesce(output_tokens, 0) * coalesce(output_price_per_mtok, 0) / 1e6 END AS out_usd,
                   coalesce(cost_usd, 0) AS usd
            FROM llm_calls
        ),
        f AS (SELECT feature, count(DISTINCT trace_id) AS requests FROM c GROUP BY feature)
        SELECT c.feature, any_value(f.requests), c.provider, c.model, c.call_kind, count(*), sum(c.input_tokens),
               sum(c.output_tokens), sum(c.cached),
               -- exact decimal sums: a float sum depends on the order DuckDB's threads add in, and the
               -- report must be the same bytes on every run
               CAST(sum(CAST(c.usd AS DECIMAL(38, 12))) - sum(CAST(c.out_usd AS DECIMAL(38, 12))) AS DOUBLE),
               CAST(sum(CAST(c.out_usd AS DECIMAL(38, 12))) AS DOUBLE)
        FROM c JOIN f ON f.feature IS NOT DISTINCT FROM c.feature
        GROUP BY c.feature, c.provider, c.model, c.call_kind
        ORDER BY c.feature NULLS LAST, c.provider NULLS LAST, c.model NULLS LAST, c.call_kind NULLS LAST""").fetchall()
    features: dict = {}
    for feature, requests, provider, model, kind, calls, tin, tout, cached, in_usd, out_usd in rows:
        features.setdefault(feature, (requests, []))[1].append(CellSpend(
            provider=provider, model=model, call_kind=kind, calls=calls, input_tokens=int(tin), output_tokens=int(tout),
            cached_input_tokens=int(cached), input_usd=round(in_usd, 6), output_usd=round(out_usd, 6)))
    return [FeatureSpend(feature=k, requests=r, calls=sum(c.calls for c in cells),
                         input_tokens=sum(c.input_tokens for c in cells), output_tokens=sum(c.output_tokens for c in cells),
                         spend_usd=round(sum(c.input_usd + c.output_usd for c in cells), 6), cells=cells)
            for k, (r, cells) in features.items()]


def _r(value, digits: int = 2):
    return None if value is None else round(float(value), digits)




def _trace_days(store: Store) -> tuple | None:
    """First and last UTC day of the traced model calls (the days reconciliation compares)."""
    if not store.table_exists("llm_calls"):
        return None
    first, last = store.con.execute("SELECT CAST(min(start_time) AS DATE), CAST(max(start_time) AS DATE) FROM llm_calls").fetchone()
    return (first, last) if first is not None else None


def _billing_sections(store: Store, headline: dict, extras: dict) -> None:
    """Billed spend over the traced days, by kind and currency, and the reconciliation of model spend: the
    views billed_summary, commitments_in_window and reconciliation_by_* (store/report_views.yaml) in words.

    Amounts are amortized (view billing_spend): usage drawn from a prepaid commitment counts at its
    effective cost, so the commitment's purchase is listed apart, whole, and never spread into usage."""
    q = store.con.execute
    if not store.table_exists("billed_summary"):
        return  # no bill in this store
    rows = q("""SELECT currency, model_api_usage, charge_kind, service_category, provider, amount FROM billed_summary
                ORDER BY currency NULLS LAST, model_api_usage DESC, charge_kind, service_category, provider NULLS LAST""").fetchall()
    purchases = q("""SELECT currency, provider, description, commitment_discount_id, charge_frequency, charge_period_start,
                            charge_period_end, billed FROM commitments_in_window
                     ORDER BY currency NULLS LAST, billed DESC, provider NULLS LAST, description, commitment_discount_id""").fetchall()
    if not rows and not purchases:
        return
    recon = by_model = []
    if store.table_exists("reconciliation_by_provider"):
        recon = q("""SELECT provider, currency, billed, traced, unexplained, explained_share FROM reconciliation_by_provider
                     ORDER BY provider NULLS LAST, currency""").fetchall()
        by_model = q("""SELECT provider, model, currency, billed, traced, unexplained, from_commitments
                        FROM reconciliation_by_model
                        ORDER BY billed DESC NULLS LAST, provider NULLS LAST, model, currency LIMIT 50""").fetchall()
    days = _trace_days(store)
    start, end = (days[0], days[1]) if days else (None, None)
    texts = []
    for currency in dict.fromkeys(r[0] for r in rows):
        money = lambda v, c=currency: money_text(v, c or "?")  # noqa: E731
        mine = [r for r in rows if r[0] == currency]
        total = sum(r[5] for r in mine)
        llm = sum(r[5] for r in mine if r[1])
        other = sum(r[5] for r in mine if not r[1] and r[2] == "usage")
        unused = sum(r[5] for r in mine if r[2] == "unused_commitment")
        credits = sum(r[5] for r in mine if r[2] in ("tax", "credit", "adjustment"))
        explained = [(b, t) for p, c, b, t, g, _ in recon if c == currency and b]
        parts = []
        if llm:
            part = f"model APIs {money(llm)}"
            if currency == "USD" and explained:
                billed = sum(b for b, _ in explained)
                traced = sum(t or 0 for _, t in explained)
                part += f": traces explain {traced / billed:.0%}" if billed > 0 else ""
            parts.append(part)
        if other:
            parts.append(f"other {money(other)}")
        if unused:
            parts.append(f"unused commitments {money(unused)}")
        if credits:
            parts.append(f"tax, credits and adjustments {money(credits)}")
        texts.append(f"{money(total)} ({'; '.join(parts)})")
    scope = f" on the traced days {start} to {end}" if days else ""
    text = (", ".join(texts) if texts else "no usage") + scope
    bought: dict = {}
    for c, *_, v in purchases:
        bought[c] = bought.get(c, 0.0) + v
    if bought:
        text += (f"; commitments and purchases {'covering them ' if days else ''}"
                 f"{', '.join(money_text(v, c or '?') for c, v in bought.items())}, billed apart (not usage)")
    headline["Billed"] = text
    extras["reconciliation"] = {
        "days": {"first": str(start), "last": str(end)} if days else None,
        "note": ("billed cost prorated to the traced days, amortized (EffectiveCost, else BilledCost): usage drawn from a "
                 "commitment at its share of it, commitment purchases listed apart in full (not usage); currencies are "
                 "never converted; trace estimates are USD list prices"),
        "billed": [{"currency": c, "model_api": bool(llm), "charge_kind": kind, "service_category": cat, "provider": p,
                    "billed": _r(v)} for c, llm, kind, cat, p, v in rows],
        "commitments": [{"currency": c, "provider": p, "description": what, "commitment_discount_id": cid,
                         "charge_frequency": freq, "period_start": str(ps), "period_end": str(pe) if pe else None,
                         "billed": _r(v)} for c, p, what, cid, freq, ps, pe, v in purchases],
        "by_provider": [{"provider": p, "currency": c, "billed": _r(b), "traced": _r(t), "unexplained": _r(g),
                         "explained_share": _r(share, 4)} for p, c, b, t, g, share in recon],
        "by_model": [{"provider": p, "model": m, "currency": c, "billed": _r(b), "traced": _r(t), "unexplained": _r(g),
                      "from_commitments": _r(k)}
                     for p, m, c, b, t, g, k in by_model],
    }


def _gpu_sections(store: Store, headline: dict, extras: dict, result: RunResult) -> None:
    """Provisioned and busy GPU-hours (by host and hour of day), serving peaks, and the self-hosted calls
    priced from GPU time."""
    from llmaudit.metrics_capacity import inventory, serving_peak_concurrency

    hours = store.table_exists("gpu_hosts") and bool(store.scalar("SELECT count(*) FROM gpu_hosts"))
    peaks = serving_peak_concurrency(store) if store.table_exists("serving_samples") else []
    seen = inventory(store)
    if not hours and not peaks and not seen.gpus:
        return
    section: dict = {}
    if not hours and seen.gpus and all(g.scrapes < 2 for g in seen.gpus):
        # GPUs seen, but in one scrape each: no time is covered, so there are no GPU-hours to show.
        models = sorted({g.gpu_model or "unknown model" for g in seen.gpus})
        headline["GPU"] = (f"{len(seen.gpus)} GPU{'s' if len(seen.gpus) != 1 else ''} ({', '.join(models)}) seen in one "
                           "scrape each (a snapshot): GPU-hours need more than one scrape")
    if hours:
        host_rows = [{"host": host, "gpus": gpus, "gpu_model": model, "provisioned_gpu_hours": _r(prov, 3),
                      "busy_gpu_hours": _r(busy, 3), "busy_share": _r(share, 4), "provisioned_usd": _r(usd)}
                     for host, gpus, model, prov, busy, share, usd in store.con.execute("""
                        SELECT host, gpus, gpu_model, provisioned_gpu_hours, busy_gpu_hours, busy_share, provisioned_usd
                        FROM gpu_hosts ORDER BY host NULLS LAST""").fetchall()]
        provisioned = sum(h["provisioned_gpu_hours"] for h in host_rows)
        busy = sum(h["busy_gpu_hours"] for h in host_rows)
        gpus = sum(h["gpus"] for h in host_rows)
        section["hosts"] = host_rows
        section["by_hour_of_day"] = [{"hour": hod, "provisioned_gpu_hours": _r(p, 3), "busy_gpu_hours": _r(b, 3),
                                      "busy_share": _r(share, 4)} for hod, p, b, share in store.con.execute("""
                                         SELECT hour, provisioned_gpu_hours, busy_gpu_hours, busy_share
                                         FROM gpu_by_hour_of_day ORDER BY hour""").fetchall()]
        # busy = SM activity x time (the share of its compute a GPU used), not the hours with a request
        text = (f"{provisioned:,.0f} GPU-hours provisioned on {gpus} GPU{'s' if gpus != 1 else ''}, "
                f"compute {busy / provisioned:.1%} used (SM activity)") if provisioned else "no GPU time covered"
        idle = [f for f in result.findings if f.category == "idle_capacity" and f.waste.gpu_hours]
        if idle:
            idle_h = sum(f.waste.gpu_hours or 0 for f in idle)
            idle_usd = sum(f.waste.usd or 0 for f in idle)
            text += (f"; {idle_h:,.0f} GPU-hours an hour-of-day schedule would not have held (${idle_usd:,.2f}, "
                     f"{', '.join(sorted({f.rule_id for f in idle}))})")
        headline["GPU"] = text
    if peaks:
        section["serving"] = [{"host": p.host, "model": p.model_name, "peak_running": _r(p.peak_running, 1),
                               "peak_running_at": as_utc(p.peak_running_at).isoformat().replace("+00:00", "Z") if p.peak_running_at else None,
                               "mean_running": _r(p.mean_running, 3), "p95_running": _r(p.p95_running, 2),
                               "peak_waiting": _r(p.peak_waiting, 1)} for p in peaks]
        top = max(peaks, key=lambda p: (p.peak_running or 0, p.host or "", p.model_name or ""))
        where = f" ({top.model_name} on {top.host or 'a server with no host label'})" if top.model_name else ""
        if all(p.samples < 2 for p in peaks):  # one scrape: its load then, not a peak over time
            headline["Serving"] = (f"{len(peaks)} model server(s) seen in one scrape (a snapshot): "
                                   f"{top.peak_running or 0:,.0f} request(s) running then{where}; a peak needs more "
                                   "than one scrape")
        else:
            headline["Serving"] = f"{len(peaks)} model server(s); peak {top.peak_running or 0:,.0f} request(s) running{where}"
    if store.table_exists("llm_calls"):
        calls, priced, cost = store.con.execute("""
            SELECT count(*), count(cost_usd), sum(cost_usd) FROM llm_calls WHERE coalesce(self_hosted, FALSE)""").fetchone()
        if calls:
            section["self_hosted_calls"] = {"calls": calls, "priced_from_gpu_time": priced, "cost_usd": _r(cost)}
    extras["gpu"] = section


def summary_extras(store: Store, result: RunResult) -> dict:
    """extras["headline"] (short lines the terminal, Markdown and HTML show under the header) and the
    "reconciliation" and "gpu" sections with their numbers, where the store has bills or metrics."""
    headline: dict[str, str] = {}
    extras: dict = {}
    _billing_sections(store, headline, extras)
    _gpu_sections(store, headline, extras, result)
    if headline:
        extras["headline"] = headline
    return extras


@dataclass
class WasteTotals:
    usd: float
    usd_per_month: float
    unexplained_usd: float
    counted: list[str]               # fingerprints counted in the total
    capped: list[str]                # which basis was capped at its spend ("GPU", "API")


def waste_totals(findings, *, gpu_models: set[str] | frozenset = frozenset(), api_spend: float | None = None,
                 gpu_spend: float | None = None) -> WasteTotals:
    """The waste total, without counting one waste twice and never above the spend it is part of.

    Findings of one mechanism (category) on one service and feature describe the same calls from
    different angles (a call budget and a runaway loop; idle hours and surplus replicas), so only the
    largest of them counts. Reconciliation gaps are spend to investigate, not waste. Waste on GPU time
    (idle capacity, and findings on self-hosted models, `gpu_models`) is capped at the GPU spend, the
    rest at the API spend, where those are known."""
    largest: dict[tuple, Any] = {}
    unexplained = 0.0
    for f in findings:
        if f.category == "cost_reconciliation":
            unexplained += f.waste.usd or 0.0
            continue
        if f.category in NOT_WASTE:  # a budget overrun is spend past a limit, not waste
            continue
        key = (f.category, f.scope.service, f.scope.feature)
        rank = (f.waste.usd or 0.0, f.waste.usd_per_month or 0.0, f.fingerprint)
        if key not in largest or rank > largest[key][0]:
            largest[key] = (rank, f)
    counted = [f for _, f in largest.values() if f.waste.usd or f.waste.usd_per_month]
    usd = month = 0.0
    capped = []
    for basis, spend in (("GPU", gpu_spend), ("API", api_spend)):
        mine = [f for f in counted if (f.category == "idle_capacity" or f.scope.model in gpu_models) == (basis == "GPU")]
        u, m = sum(f.waste.usd or 0.0 for f in mine), sum(f.waste.usd_per_month or 0.0 for f in mine)
        if spend is not None and u > spend > 0:
            m, u = m * spend / u, spend
            capped.append(basis)
        usd, month = usd + u, month + m
    return WasteTotals(usd, month, unexplained, sorted(f.fingerprint for f in counted), capped)


def spend_parts(store: Store) -> SpendParts | None:
    """Model API spend, the self-hosted calls' GPU time, and the provisioned GPU time beyond it (view gpu_hosts)."""
    if not store.table_exists("llm_calls"):
        return None
    api, hosted = store.con.execute("""
        SELECT coalesce(sum(cost_usd) FILTER (WHERE NOT coalesce(self_hosted, FALSE)), 0),
               coalesce(sum(cost_usd) FILTER (WHERE coalesce(self_hosted, FALSE)), 0)
        FROM llm_calls""").fetchone()
    provisioned = None
    if store.table_exists("gpu_hosts"):
        hosts, priced, total = store.con.execute(
            "SELECT count(*), count(provisioned_usd), sum(provisioned_usd) FROM gpu_hosts").fetchone()
        provisioned = total if hosts and hosts == priced else None  # a GPU without a price: no total
    idle = max((provisioned or 0.0) - hosted, 0.0)
    return SpendParts(model_apis_usd=round(api, 2), self_hosted_gpu_time_usd=round(hosted, 2),
                      provisioned_idle_usd=round(idle, 2),
                      gpu_provisioned_usd=round(provisioned, 2) if provisioned is not None else None)


def _creep_threshold(settings) -> float:
    """Rule LLMA018's min_growth as the config sets it (else the rule's default)."""
    from llmaudit.rules.engine import all_rules

    rule = next((r for r in all_rules() if r.id == CREEP_RULE), None)
    value = (getattr(settings, "params", None) or {}).get(CREEP_RULE, {}).get("min_growth")
    return float(value if value is not None else (rule.params["min_growth"].default if rule else 0.2))


CREEP_RULE = "LLMA018"


def build_document(store: Store, result: RunResult, settings=None) -> AuditDocument:
    from llmaudit.pricing.catalog import load_catalog

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
    parts = spend_parts(store)
    gpu_models = {m for (m,) in q("SELECT DISTINCT model FROM llm_calls WHERE coalesce(self_hosted, FALSE) AND model IS NOT NULL").fetchall()}
    gpu_spend = None
    if parts is not None:
        gpu_spend = parts.self_hosted_gpu_time_usd + parts.provisioned_idle_usd
        spend = parts.model_apis_usd + gpu_spend if spend is not None or gpu_spend else spend
    w = waste_totals(result.findings, gpu_models=gpu_models, api_spend=parts.model_apis_usd if parts else None,
                     gpu_spend=gpu_spend)
    totals = Totals(
        requests=requests, spans=spans, llm_calls=calls, input_tokens=int(tin), output_tokens=int(tout),
        cached_input_tokens=int(tcached), spend_usd=round(spend, 2) if spend is not None else None, spend_parts=parts,
        unpriced_calls=unpriced, estimated_waste_usd=round(w.usd, 2), estimated_waste_usd_per_month=round(w.usd_per_month, 2),
        counted_findings=w.counted, unexplained_spend_usd=round(w.unexplained_usd, 2),
        findings=len(result.findings), rejects=q("SELECT count(*) FROM rejects").fetchone()[0],
    )
    catalog = load_catalog(settings=settings)
    tiers = dict(q("""SELECT priced_tier, count(*) FROM llm_calls WHERE priced_tier IS NOT NULL
                        GROUP BY ALL ORDER BY priced_tier""").fetchall())
    prices = PriceProvenance(**catalog.provenance(), accelerator=getattr(settings, "accelerator", None), service_tiers=tiers)
    return AuditDocument(
        inputs=inputs,
        window=Window(start=as_utc(start), end=as_utc(end), days=round(result.window_days, 3) if result.window_days else None),
        totals=totals,
        findings=result.findings,
        skipped_rules=dict(sorted(result.skipped.items())),
        rule_errors=dict(sorted(result.errors.items())),
        breakdowns={name: _breakdown(store, expr) for name, expr in _BREAKDOWNS.items()},
        charts=finding_charts(store, result.findings),
        tag_keys={"feature": list(getattr(settings, "feature_keys", None) or []),
                  "tenant": list(getattr(settings, "tenant_keys", None) or [])},
        prices=prices,
        spend_detail=spend_detail(store),
        token_creep_threshold=_creep_threshold(settings),
        extras=summary_extras(store, result),
    )
