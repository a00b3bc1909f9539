"""OpenAI organization usage and costs pages (the Admin API's /organization/usage/* and /organization/costs),
as saved from the API: one page, a list of pages, or one page per line."""

from __future__ import annotations

import re

from llmaudit.ingest.billing.reports import LLM_SERVICE, json_like, number_at, report_format
from llmaudit.ingest.billing.rows import extras_json
from llmaudit.ingest.billing.values import BadRow, as_currency, as_number, as_text, model_in_text

# OpenAI usage endpoints: what each result counts. Without an explicit uncached count, uncached input is
# `total` less the `minus` fields (input_tokens includes cached and cache-write tokens).
OPENAI_COMPLETIONS = [
    {"token_type": "input", "field": "input_uncached_tokens", "total": "input_tokens",
     "minus": ["input_cached_tokens", "input_cache_write_tokens"], "unit": "tokens"},
    {"token_type": "cached_input", "field": "input_cached_tokens", "unit": "tokens"},
    {"token_type": "cache_write", "field": "input_cache_write_tokens", "unit": "tokens"},
    {"token_type": "output", "field": "output_tokens", "unit": "tokens"},
]
OPENAI_USAGE_QUANTITIES: dict[str, list[dict]] = {
    "organization.usage.completions.result": OPENAI_COMPLETIONS,
    "organization.usage.embeddings.result": [{"token_type": "input", "field": "input_tokens", "unit": "tokens"}],
    "organization.usage.moderations.result": [{"token_type": "input", "field": "input_tokens", "unit": "tokens"}],
    "organization.usage.images.result": [{"token_type": None, "field": "images", "unit": "images"}],
    "organization.usage.audio_speeches.result": [{"token_type": None, "field": "characters", "unit": "characters"}],
    "organization.usage.audio_transcriptions.result": [{"token_type": None, "field": "seconds", "unit": "seconds"}],
    "organization.usage.vector_stores.result": [{"token_type": None, "field": "usage_bytes", "unit": "bytes"}],
    "organization.usage.code_interpreter_sessions.result": [{"token_type": None, "field": "num_sessions", "unit": "sessions"}],
    # The file search and web search call endpoints name their results file_searches / web_searches.
    "organization.usage.file_searches.result": [{"token_type": None, "field": "num_requests", "unit": "requests"}],
    "organization.usage.web_searches.result": [{"token_type": None, "field": "num_requests", "unit": "requests"}],
}
OPENAI_USAGE_DEFAULT = "organization.usage.completions.result"
# A result object of a type not listed above is stored, not rejected: as completions when it counts input
# or output tokens, else with its first count among these, else its first numeric field (by name).
OPENAI_TOKEN_FIELDS = ("input_tokens", "output_tokens")
OPENAI_COUNT_FIELDS = ("num_requests", "num_calls", "num_sessions", "num_model_requests")
# Result fields that are grouping keys or the quantities above; the rest go to extras.
OPENAI_USAGE_KEYS = {"object", "model", "project_id"}


def _usage_plan(kind: str, result: dict) -> list[dict]:
    plan = OPENAI_USAGE_QUANTITIES.get(kind)
    if plan is not None:
        return plan
    if any(f in result for f in OPENAI_TOKEN_FIELDS):
        return OPENAI_COMPLETIONS
    numeric = [k for k in OPENAI_COUNT_FIELDS if k in result]
    numeric += sorted(k for k, v in result.items() if k not in numeric and isinstance(v, (int, float))
                      and not isinstance(v, bool))
    if not numeric:
        return [{"token_type": None, "field": None, "unit": None}]  # nothing counted: the result is still kept
    field = numeric[0]
    return [{"token_type": None, "field": field, "unit": field.removeprefix("num_").replace("_", " ")}]


def parse_openai_usage(result: dict, start, end) -> list[tuple[dict, str]]:
    kind = as_text(result.get("object"), "object") or OPENAI_USAGE_DEFAULT
    plan = _usage_plan(kind, result)
    model = as_text(result.get("model"), "model")
    endpoint = kind.removeprefix("organization.usage.").removesuffix(".result")
    used = {q["field"] for q in plan} | {f for q in plan for f in q.get("minus", [])} | {q.get("total") for q in plan}
    extras = extras_json((k, v) for k, v in sorted(result.items()) if k not in OPENAI_USAGE_KEYS and k not in used)
    rows = []
    for q in plan:
        quantity = number_at(result, q["field"]) if q["field"] else None
        if quantity is None and q.get("total"):
            total = number_at(result, q["total"])
            if total is not None:
                quantity = total - sum(number_at(result, f) or 0 for f in q["minus"])
        if q["field"] and not quantity:
            continue  # absent or zero: nothing was used
        if quantity is not None and quantity < 0:
            raise BadRow(f"{q['field']}: negative quantity {quantity:g}")
        meter = f"{endpoint} {q['token_type'] or q['unit'] or 'usage'}".replace("_", " ")
        rows.append(({
            **LLM_SERVICE, "provider": "openai", "publisher": "openai", "service_name": "OpenAI API",
            "sku_meter": meter, "charge_description": f"{model or endpoint} {meter}",
            "model": model, "token_type": q["token_type"],
            "pricing_quantity": quantity, "pricing_unit": q["unit"],
            "consumed_quantity": quantity, "consumed_unit": q["unit"],
            "sub_account_id": as_text(result.get("project_id"), "project_id"), "extras": extras,
        }, q["field"] or ""))
    return rows


# OpenAI cost line items read "<model>, <kind>" (e.g. "gpt-4o-2024-08-06, cached input"); kind -> token type.
OPENAI_LINE_ITEM = re.compile(r"^\s*(?P<model>[^,]+?)\s*,\s*(?P<kind>[^,]+?)\s*$")
OPENAI_LINE_KINDS = {
    "input": "input", "output": "output", "cached input": "cached_input", "cached_input": "cached_input",
    "cache write": "cache_write", "cached write": "cache_write", "cache creation": "cache_write",
    "input (batch)": "input", "output (batch)": "output", "cached input (batch)": "cached_input",
}


OPENAI_COST_KEYS = {"object", "amount", "line_item", "project_id", "quantity", "quantity_unit"}


def parse_openai_cost(result: dict, start, end) -> list[tuple[dict, str]]:
    amount = result.get("amount")
    if not isinstance(amount, dict):
        raise BadRow("amount must be an object {value, currency}")
    value = as_number(amount.get("value"), "amount.value")
    currency = as_currency(amount.get("currency"), "amount.currency")
    if value is None or currency is None:
        raise BadRow("amount needs both value and currency")
    line_item = as_text(result.get("line_item"), "line_item")
    model = token_type = None
    if line_item:
        parts = OPENAI_LINE_ITEM.match(line_item)
        if parts and parts["kind"].lower() in OPENAI_LINE_KINDS:
            model, token_type = parts["model"], OPENAI_LINE_KINDS[parts["kind"].lower()]
        else:
            model = model_in_text(line_item)
    quantity = as_number(result.get("quantity"), "quantity")
    unit = as_text(result.get("quantity_unit"), "quantity_unit")
    extras = extras_json((k, v) for k, v in sorted(result.items()) if k not in OPENAI_COST_KEYS)
    return [({
        **LLM_SERVICE, "provider": "openai", "publisher": "openai", "service_name": "OpenAI API",
        "sku_meter": line_item, "charge_description": line_item, "model": model, "token_type": token_type,
        "pricing_quantity": quantity, "pricing_unit": unit, "consumed_quantity": quantity, "consumed_unit": unit,
        "billed_cost": value, "effective_cost": value, "currency": currency,
        "sub_account_id": as_text(result.get("project_id"), "project_id"), "extras": extras,
    }, "")]


# A page of no bucket at all (a period without usage) is still a page of these APIs.
_EMPTY_PAGE = (re.compile(rb'"object"\s*:\s*"page"'), re.compile(rb'"data"\s*:\s*\[\s*\]'))


def _openai_page(head: bytes) -> bool:
    h = json_like(head)
    if h is None:
        return False
    return (b'"bucket"' in h and b'"object"' in h and b'"start_time"' in h) or all(p.search(h) for p in _EMPTY_PAGE)


def sniff_openai_costs(head: bytes, name: str) -> bool:
    if not _openai_page(head):
        return False
    return b"organization.costs.result" in head or (b"organization.usage." not in head and "cost" in name.lower())


def sniff_openai_usage(head: bytes, name: str) -> bool:
    return _openai_page(head) and not sniff_openai_costs(head, name)


COSTS = report_format("openai-costs-json", sniff_openai_costs, parse_openai_cost, ("start_time", "end_time"))
USAGE = report_format("openai-usage-json", sniff_openai_usage, parse_openai_usage, ("start_time", "end_time"))
