"""AWS Cost and Usage Reports, CSV or Parquet: CUR 2.0 (Data Exports: snake_case columns and a `product`
map column) and legacy CUR ("lineItem/UsageType" headers, renamed to their CUR 2.0 names).

Every line item is stored, FOCUS-shaped: charge category from the line item type, billed cost = the
unblended cost, effective cost = AWS's amortized cost. Amazon Bedrock model usage, found by service,
usage type and operation, also gets its model and token type."""

from __future__ import annotations

import re

import orjson

from llmaudit.ingest.billing.tabular import ColumnMap, has_all, header_line, tabular_format
from llmaudit.ingest.billing.values import BadRow, as_number, as_text, blank, token_type_in_text
from llmaudit.ingest.core import short

# AWS CUR 2.0 column -> billing column. Effective cost, charge category and frequency, provider and the
# Bedrock columns are worked out in cur_row; every other column is kept in extras.
CUR_MAP: list[tuple[str, str, str]] = [
    ("line_item_usage_start_date", "charge_period_start", "time"),
    ("line_item_usage_end_date", "charge_period_end", "time"),
    ("bill_billing_period_start_date", "billing_period_start", "time"),
    ("bill_billing_period_end_date", "billing_period_end", "time"),
    ("line_item_line_item_description", "charge_description", "text"),
    ("line_item_legal_entity", "publisher", "text"),
    ("product_product_name", "service_name", "text"),
    ("product_servicename", "service_name", "text"),
    ("product_sku", "sku_id", "text"),
    ("pricing_rate_id", "sku_price_id", "text"),
    ("line_item_usage_type", "sku_meter", "text"),
    ("line_item_resource_id", "resource_id", "text"),
    ("product_region_code", "region_id", "text"),
    ("product_region", "region_id", "text"),
    ("line_item_usage_amount", "pricing_quantity", "number"),
    ("pricing_unit", "pricing_unit", "text"),
    ("line_item_usage_amount", "consumed_quantity", "number"),
    ("pricing_unit", "consumed_unit", "text"),
    ("pricing_public_on_demand_rate", "list_unit_price", "number"),
    ("line_item_unblended_cost", "billed_cost", "number"),
    ("pricing_public_on_demand_cost", "list_cost", "number"),
    ("line_item_currency_code", "currency", "currency"),
    ("bill_payer_account_id", "billing_account_id", "text"),
    ("line_item_usage_account_id", "sub_account_id", "text"),
    ("resource_tags", "tags", "json"),
]

# Line item type -> (FOCUS ChargeCategory, ChargeFrequency), as AWS's own FOCUS export maps them; a
# frequency of None is read from the bill type (CUR_BILL_FREQUENCY). An unknown type is an Adjustment.
CUR_LINE_ITEM_TYPES: dict[str, tuple[str, str | None]] = {
    "Usage": ("Usage", "Usage-Based"), "DiscountedUsage": ("Usage", "Usage-Based"),
    "SavingsPlanCoveredUsage": ("Usage", "Usage-Based"), "SavingsPlanNegation": ("Usage", "Usage-Based"),
    "Tax": ("Tax", None), "Credit": ("Credit", None), "Refund": ("Credit", "One-Time"),
    "BundledDiscount": ("Credit", None), "Discount": ("Credit", None), "EdpDiscount": ("Credit", None),
    "PrivateRateDiscount": ("Credit", None), "DistributorDiscount": ("Credit", None),
    "Fee": ("Purchase", None), "RIFee": ("Purchase", "Recurring"),
    "SavingsPlanRecurringFee": ("Purchase", "Recurring"), "SavingsPlanUpfrontFee": ("Purchase", "One-Time"),
}
CUR_BILL_FREQUENCY = {"Anniversary": "Recurring", "Purchase": "One-Time", "Refund": "One-Time"}

# AWS's amortized cost (Cost Explorer's "amortized", the EffectiveCost of AWS's FOCUS export), by line item
# type: the sum of these (column, sign) terms. A type not listed costs its unblended cost; so does a listed
# type whose columns the export lacks. Covered usage carries its share of the commitment, the commitment
# fees only their unused part, and what is negated or paid upfront counts 0 on its own line.
CUR_AMORTIZED: dict[str, list[tuple[str, int]]] = {
    "SavingsPlanCoveredUsage": [("savings_plan_savings_plan_effective_cost", 1)],
    "SavingsPlanRecurringFee": [("savings_plan_total_commitment_to_date", 1), ("savings_plan_used_commitment", -1)],
    "SavingsPlanNegation": [],
    "SavingsPlanUpfrontFee": [],
    "DiscountedUsage": [("reservation_effective_cost", 1)],
    "RIFee": [("reservation_unused_amortized_upfront_fee_for_billing_period", 1), ("reservation_unused_recurring_fee", 1)],
}
# A "Fee" line that names a reservation is its upfront payment: amortized into the usage, 0 here.
CUR_RESERVATION_FEE = ("Fee", "reservation_reservation_a_r_n")

# Amazon Bedrock, as a CUR names it: in the product code or service, or a model sold through AWS
# Marketplace as "Claude Sonnet 4.5 (Amazon Bedrock Edition)" (such rows carry a "prod-..." code).
CUR_BEDROCK_COLUMNS = ("line_item_product_code", "product_servicecode", "product_product_name", "product_servicename")
CUR_BEDROCK = re.compile(r"bedrock", re.I)
# Operations that run a model: InvokeModelInference, InvokeModelStreamingInference, Converse...
CUR_INFERENCE_OPERATION = re.compile(r"^(InvokeModel|Converse)", re.I)
# Bedrock usage types are REGION-MODEL-TOKENS[-TIER]: USE1-Claude3Sonnet-input-tokens,
# USE1-NovaLite-cache-read-input-token-count, ...-mantle-output-tokens-..., and the Marketplace
# spelling USE1-MP:USE1_InputTokenCount-Units.
CUR_REGION_PREFIX = re.compile(r"^[A-Z]{2,4}\d{0,2}-")
CUR_TOKEN_SUFFIX = re.compile(
    r"[-_]((cache-?(read|write)-)?(mantle-)?(input|output)-tokens?(-count)?(-.*)?|"
    r"(Cache(Read|Write))?(Input|Output)TokenCount.*)$",
    re.I,
)
CUR_MODEL_RESOURCE = re.compile(r"(?:foundation-model|inference-profile)/([^/]+)$")
CUR_PRODUCT_EDITION = re.compile(r"\s*\(Amazon Bedrock Edition\)\s*$", re.I)
# Claude in a usage type or product name ("Claude3.5Sonnet", "Claude4.5Sonnet", "Claude Sonnet 4.5") ->
# Anthropic's model id spelling: claude-3-5-sonnet, but family first from Claude 4 on (claude-sonnet-4-5).
CUR_CLAUDE = re.compile(
    r"^claude[-\s]*(?:(?P<v1>\d+(?:[.-]\d+)?)[-\s]*(?P<f1>sonnet|opus|haiku)|(?P<f2>sonnet|opus|haiku)[-\s]*(?P<v2>\d+(?:[.-]\d+)?))"
    r"(?P<rest>.*)$",
    re.I,
)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _cur_name(name: str) -> str:
    """Legacy CUR header -> its CUR 2.0 name: "lineItem/UsageStartDate" -> line_item_usage_start_date,
    "reservation/ReservationARN" -> reservation_reservation_a_r_n (each capital starts a word, as AWS
    renames them), "resourceTags/user:team" -> resource_tags_user:team."""
    if "/" not in name and name == name.lower():
        return name
    head, _, tail = name.partition("/")
    if head == "resourceTags":
        return "resource_tags_" + tail
    snake = lambda s: re.sub(r"(?<!^)([A-Z])", r"_\1", s).lower()  # noqa: E731
    return f"{snake(head)}_{snake(tail)}" if tail else snake(head)


def _cur_value(cmap: ColumnMap, values: list, product: dict, name: str):
    """A CUR column, or the same attribute inside CUR 2.0's `product` map column."""
    value = cmap.value(values, name)
    if blank(value) and name.startswith("product_"):
        value = product.get(name[len("product_"):])
    return value


def _cur_product(cmap: ColumnMap, values: list) -> dict:
    raw = cmap.value(values, "product")
    if blank(raw):
        return {}
    if isinstance(raw, list):  # Parquet MAP
        return dict(raw)
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise BadRow(f"product: not a JSON object: {short(raw)}") from None
    return parsed if isinstance(parsed, dict) else {}


def _amortized(cmap: ColumnMap, values: list, item_type: str | None, billed):
    """The line's amortized cost by CUR_AMORTIZED; the unblended cost where the rule does not apply."""
    fee_type, arn_column = CUR_RESERVATION_FEE
    if item_type == fee_type and not blank(cmap.value(values, arn_column)):
        return 0.0
    terms = CUR_AMORTIZED.get(item_type or "")
    if terms is None or (terms and all(cmap.index(col) is None for col, _ in terms)):
        return billed
    return sum(sign * (as_number(cmap.value(values, col), col) or 0.0) for col, sign in terms)


def cur_row(cmap: ColumnMap, values: list) -> dict:
    """One CUR line item as a billing row (every line item is one)."""
    product = _cur_product(cmap, values)
    row = cmap.apply(values)
    # CUR 2.0 keeps many product attributes in its `product` map; the product code is the last resort.
    for column, target in (("product_product_name", "service_name"), ("line_item_product_code", "service_name"),
                           ("product_region_code", "region_id"), ("product_region", "region_id")):
        if row.get(target) is None:
            row[target] = as_text(_cur_value(cmap, values, product, column), column)
    item_type = as_text(cmap.value(values, "line_item_line_item_type"), "line_item_line_item_type")
    category, frequency = CUR_LINE_ITEM_TYPES.get(item_type or "", ("Adjustment" if item_type else None, None))
    if frequency is None:
        frequency = CUR_BILL_FREQUENCY.get(as_text(cmap.value(values, "bill_bill_type"), "bill_bill_type") or "")
    row["charge_category"], row["charge_frequency"] = category, frequency
    row["effective_cost"] = _amortized(cmap, values, item_type, row.get("billed_cost"))
    row["provider"] = "aws"
    _bedrock(cmap, values, product, row)
    # Legacy CUR spreads tags over resourceTags/user:team columns: gather them into one object, keyed
    # as CUR 2.0 keys its resource_tags map (user_team).
    spread = {cmap.header[i][len("resource_tags_"):].replace(":", "_"): values[i] for i in cmap.unmapped
              if cmap.header[i].startswith("resource_tags_") and not blank(values[i])}
    if spread and row.get("tags") is None:
        row["tags"] = orjson.dumps(spread, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return row


def _bedrock(cmap: ColumnMap, values: list, product: dict, row: dict) -> None:
    """Fill the model columns of an Amazon Bedrock line item: its service category always; model and token
    type when it is model usage (a token usage type, or an inference operation)."""
    usage_type = row.get("sku_meter") or ""
    operation = as_text(cmap.value(values, "line_item_operation"), "line_item_operation") or ""
    tokens = bool(CUR_TOKEN_SUFFIX.search(usage_type))
    inference = bool(CUR_INFERENCE_OPERATION.match(operation))
    named = any(not blank(v := _cur_value(cmap, values, product, col)) and CUR_BEDROCK.search(str(v))
                for col in CUR_BEDROCK_COLUMNS)
    if not (named or inference):
        return
    row["service_category"] = "AI and Machine Learning"
    row["service_subcategory"] = "Generative AI"
    if not (tokens or inference):
        return  # Bedrock, but not a model's usage (Guardrails, Knowledge Bases, storage, ...)
    row["token_type"] = token_type_in_text(usage_type) if tokens else None
    row["model"] = cur_model(usage_type, row.get("resource_id"), _cur_value(cmap, values, product, "product_model"),
                             _cur_value(cmap, values, product, "product_product_name"))


def bedrock_model_name(text: str) -> str:
    """A model as a usage type or product name writes it, spelled as model ids are (so that bills meet
    traces): Claude3.5Sonnet -> claude-3.5-sonnet, Claude4.5Sonnet -> claude-sonnet-4.5, NovaLite ->
    nova-lite, Llama3-3-70B -> llama3-3-70b, "Claude Sonnet 4.5" -> claude-sonnet-4.5."""
    text = CUR_PRODUCT_EDITION.sub("", text).strip()
    claude = CUR_CLAUDE.match(text)
    if claude:
        version = (claude["v1"] or claude["v2"]).replace("-", ".")
        family = (claude["f1"] or claude["f2"]).lower()
        major = int(version.split(".")[0])
        text = (f"claude-{family}-{version}" if major >= 4 else f"claude-{version}-{family}") + claude["rest"]
    return re.sub(r"[\s_]+", "-", _CAMEL.sub("-", text)).strip("-").lower()


def cur_model(usage_type: str, resource_id, product_model, product_name) -> str | None:
    """A Bedrock model's name: from the resource ARN (its id, as is), the product's model, the usage type,
    else the product name."""
    if resource_id:
        found = CUR_MODEL_RESOURCE.search(str(resource_id))
        if found:
            return found.group(1)
    if not blank(product_model):
        return bedrock_model_name(str(product_model))
    middle = CUR_TOKEN_SUFFIX.sub("", CUR_REGION_PREFIX.sub("", usage_type))
    if middle and not middle.startswith("MP:") and re.search(r"[A-Za-z]{2}", middle):
        return bedrock_model_name(middle)
    if not blank(product_name) and CUR_PRODUCT_EDITION.search(str(product_name)):
        return bedrock_model_name(str(product_name)) or None
    return None


_CUR_HEADERS = ((b"line_item_usage_type", b"line_item_unblended_cost"), (b"lineItem/UsageType", b"lineItem/UnblendedCost"))


def sniff_cur(head: bytes, name: str) -> bool:
    if head.startswith(b"PAR1"):
        return any(has_all(head, names) for names in _CUR_HEADERS) or bool(re.search(r"(^|[^a-z])cur([^a-z]|$)", name.lower()))
    return any(has_all(header_line(head), names) for names in _CUR_HEADERS)


FORMAT = tabular_format("aws-cur", sniff_cur, CUR_MAP, cur_row, _cur_name)
