"""`--focus-out FILE`: the findings as FOCUS-shaped rows (CSV), so FinOps tools that read FOCUS show waste
beside spend.

One row per finding. Waste is not a charge: it is part of spend already billed (the calls it names), so
BilledCost, EffectiveCost, ListCost and ContractedCost are 0 and ChargeCategory is `Adjustment` (FOCUS's
category for rows that modify billing data, and one that no tool, llmaudit included, adds to usage). The
dollars are in the `x_` columns: x_WasteUsd over the finding's window, x_WasteUsdPerMonth. The charge period
is the finding's window (else the audit's), ProviderName the model's provider (from the finding's evidence,
else the calls of that model in this audit), ServiceName the service that made the calls.

The file passes the FOCUS reader's own column checks: `llmaudit ingest` reads every row (test_focus_out).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import orjson

from llmaudit.findings.model import Finding

COLUMNS = [
    "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
    "ChargeClass", "ChargeFrequency", "ChargeDescription", "ProviderName", "PublisherName", "ServiceName",
    "ServiceCategory", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency", "Tags",
    "x_Model", "x_RuleId", "x_RuleName", "x_Category", "x_Fingerprint", "x_Severity", "x_Confidence", "x_WasteUsd",
    "x_WasteUsdPerMonth", "x_WasteTokens", "x_WasteGpuHours", "x_MeasuredUsdPerMonth", "x_Feature", "x_Tenant",
    "x_Service", "x_Title",
]
CHARGE_CATEGORY = "Adjustment"
SERVICE_CATEGORY = "AI and Machine Learning"


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month(value: datetime | None) -> tuple[str, str]:
    """The calendar month (billing period) a charge period starts in."""
    if value is None:
        return "", ""
    start = value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return _iso(start), _iso(end)


def _number(value) -> str:
    return "" if value is None else repr(round(float(value), 6)) if not float(value).is_integer() else str(int(value))


def _providers(doc) -> dict[tuple, str]:
    """("model", name) and ("feature", name) -> the provider with the most spend among the audit's calls."""
    spend: dict[tuple, dict[str, float]] = {}
    for feature in doc.spend_detail:
        for cell in feature.cells:
            if cell.provider:
                for key in (("model", cell.model), ("feature", feature.feature)):
                    by = spend.setdefault(key, {})
                    by[cell.provider] = by.get(cell.provider, 0.0) + cell.input_usd + cell.output_usd
    return {key: min(by, key=lambda p: (-by[p], p)) for key, by in spend.items()}


def focus_row(f: Finding, doc, providers: dict) -> dict:
    start = f.scope.window_start or doc.window.start
    end = f.scope.window_end or doc.window.end
    bp_start, bp_end = _month(start)
    provider = f.evidence.get("provider") if isinstance(f.evidence.get("provider"), str) else None
    provider = (provider or (providers.get(("model", f.scope.model)) if f.scope.model else None)
                or providers.get(("feature", f.scope.feature)) or "unknown")
    tags = {k: v for k, v in (("feature", f.scope.feature), ("tenant", f.scope.tenant), ("service", f.scope.service)) if v}
    return {
        "BillingPeriodStart": bp_start, "BillingPeriodEnd": bp_end,
        "ChargePeriodStart": _iso(start), "ChargePeriodEnd": _iso(end),
        "ChargeCategory": CHARGE_CATEGORY, "ChargeClass": "", "ChargeFrequency": "Usage-Based",
        "ChargeDescription": f.message, "ProviderName": provider, "PublisherName": provider,
        "ServiceName": f.scope.service or provider, "ServiceCategory": SERVICE_CATEGORY,
        "BilledCost": "0", "EffectiveCost": "0", "ListCost": "0", "ContractedCost": "0", "BillingCurrency": "USD",
        "Tags": orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode() if tags else "",
        "x_Model": f.scope.model or "", "x_RuleId": f.rule_id, "x_RuleName": f.rule_name, "x_Category": f.category,
        "x_Fingerprint": f.fingerprint, "x_Severity": f.severity, "x_Confidence": f.confidence,
        "x_WasteUsd": _number(f.waste.usd), "x_WasteUsdPerMonth": _number(f.waste.usd_per_month),
        "x_WasteTokens": _number(f.waste.tokens), "x_WasteGpuHours": _number(f.waste.gpu_hours),
        "x_MeasuredUsdPerMonth": _number(f.measured.usd_per_month if f.measured else None),
        "x_Feature": f.scope.feature or "", "x_Tenant": f.scope.tenant or "", "x_Service": f.scope.service or "",
        "x_Title": f.title,
    }


def render_focus(doc) -> str:
    """The findings (already redacted where asked) as FOCUS CSV, in the report's order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    providers = _providers(doc)
    for f in doc.findings:
        writer.writerow(focus_row(f, doc, providers))
    return buffer.getvalue()
