"""Anthropic Admin API usage and cost reports (/v1/organizations/usage_report/messages and /cost_report),
as saved from the API: one page, a list of pages, or one page per line."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from llmaudit.ingest.billing.reports import LLM_SERVICE, json_like, number_at, report_format
from llmaudit.ingest.billing.rows import extras_json
from llmaudit.ingest.billing.values import BadRow, as_currency, as_text, blank
from llmaudit.ingest.core import short

# Anthropic messages usage report: result field -> token type.
ANTHROPIC_USAGE_QUANTITIES = [
    ("uncached_input_tokens", "input", "tokens"),
    ("cache_read_input_tokens", "cached_input", "tokens"),
    ("cache_creation.ephemeral_5m_input_tokens", "cache_write", "tokens"),
    ("cache_creation.ephemeral_1h_input_tokens", "cache_write_1h", "tokens"),
    ("output_tokens", "output", "tokens"),
    ("server_tool_use.web_search_requests", None, "web search requests"),
]
ANTHROPIC_USAGE_KEYS = {"model", "workspace_id", "uncached_input_tokens", "cache_read_input_tokens",
                        "cache_creation", "output_tokens", "server_tool_use"}


def parse_anthropic_usage(result: dict, start, end) -> list[tuple[dict, str]]:
    model = as_text(result.get("model"), "model")
    extras = extras_json((k, v) for k, v in sorted(result.items()) if k not in ANTHROPIC_USAGE_KEYS)
    rows = []
    for field, token_type, unit in ANTHROPIC_USAGE_QUANTITIES:
        quantity = number_at(result, field)
        if not quantity:
            continue
        if quantity < 0:
            raise BadRow(f"{field}: negative quantity {quantity:g}")
        meter = field.replace("_", " ").replace(".", " ")
        rows.append(({
            **LLM_SERVICE, "provider": "anthropic", "publisher": "anthropic", "service_name": "Claude API",
            "sku_meter": meter, "charge_description": f"{model or 'messages'} {meter}",
            "model": model, "token_type": token_type,
            "pricing_quantity": quantity, "pricing_unit": unit, "consumed_quantity": quantity, "consumed_unit": unit,
            "sub_account_id": as_text(result.get("workspace_id"), "workspace_id"), "extras": extras,
        }, field))
    return rows


# Anthropic cost report token_type values -> ours.
ANTHROPIC_COST_TOKEN_TYPES = {
    "uncached_input_tokens": "input", "output_tokens": "output", "cache_read_input_tokens": "cached_input",
    "cache_creation.ephemeral_5m_input_tokens": "cache_write",
    "cache_creation.ephemeral_1h_input_tokens": "cache_write_1h",
}
ANTHROPIC_COST_KEYS = {"amount", "currency", "model", "token_type", "description", "workspace_id"}


def parse_anthropic_cost(result: dict, start, end) -> list[tuple[dict, str]]:
    raw = result.get("amount")
    if blank(raw):
        raise BadRow("amount is missing")
    # The report gives the amount as a decimal string in the currency's lowest unit (cents for USD).
    try:
        cents = Decimal(str(raw).strip())
    except InvalidOperation:
        raise BadRow(f"amount: not a decimal number of cents: {short(raw)}") from None
    if not cents.is_finite():
        raise BadRow(f"amount: not a finite number: {short(raw)}")
    currency = as_currency(result.get("currency"), "currency")
    if currency is None:
        raise BadRow("currency is missing")
    dollars = float(cents / 100)
    token = as_text(result.get("token_type"), "token_type")
    description = as_text(result.get("description"), "description")
    extras = extras_json((k, v) for k, v in sorted(result.items()) if k not in ANTHROPIC_COST_KEYS)
    return [({
        **LLM_SERVICE, "provider": "anthropic", "publisher": "anthropic", "service_name": "Claude API",
        "sku_meter": token or as_text(result.get("cost_type"), "cost_type"), "charge_description": description,
        "model": as_text(result.get("model"), "model"),
        "token_type": ANTHROPIC_COST_TOKEN_TYPES.get(token, token) if token else None,
        "billed_cost": dollars, "effective_cost": dollars, "currency": currency,
        "sub_account_id": as_text(result.get("workspace_id"), "workspace_id"), "extras": extras,
    }, "")]


def _anthropic_report(head: bytes) -> bool:
    h = json_like(head)
    return h is not None and b'"starting_at"' in h and b'"results"' in h


def sniff_anthropic_cost(head: bytes, name: str) -> bool:
    if not _anthropic_report(head):
        return False
    # token_type values in a cost report spell usage field names, so test for cost fields first.
    if b'"amount"' in head or b'"cost_type"' in head:
        return True
    return b"input_tokens" not in head and "cost" in name.lower()


def sniff_anthropic_usage(head: bytes, name: str) -> bool:
    return _anthropic_report(head) and not sniff_anthropic_cost(head, name)


COST = report_format("anthropic-cost-json", sniff_anthropic_cost, parse_anthropic_cost, ("starting_at", "ending_at"))
USAGE = report_format("anthropic-usage-json", sniff_anthropic_usage, parse_anthropic_usage, ("starting_at", "ending_at"))
