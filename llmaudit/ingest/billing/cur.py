"""AWS Cost and Usage Reports (CUR 2.0, and legacy CUR's "lineItem/UsageType" headers), CSV or Parquet:
only Bedrock rows are stored (the rest are counted), each with its model and token type read from the
usage type, resource or product."""

from __future__ import annotations

import re

import orjson

from llmaudit.ingest.billing.tabular import ColumnMap, has_all, header_line, tabular_format
from llmaudit.ingest.billing.values import BadRow, as_text, blank, token_type_in_text
from llmaudit.ingest.core import short

# AWS CUR 2.0 column (snake_case; legacy CUR "lineItem/UsageType" names are converted to it) -> billing.
CUR_MAP: list[tuple[str, str, str]] = [
    ("line_item_usage_start_date", "charge_period_start", "time"),
    ("line_item_usage_end_date", "charge_period_end", "time"),
    ("bill_billing_period_start_date", "billing_period_start", "time"),
    ("bill_billing_period_end_date", "billing_period_end", "time"),
    ("line_item_line_item_description", "charge_description", "text"),
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
    ("line_item_net_unblended_cost", "effective_cost", "number"),
    ("line_item_unblended_cost", "effective_cost", "number"),
    ("pricing_public_on_demand_cost", "list_cost", "number"),
    ("line_item_currency_code", "currency", "currency"),
    ("bill_payer_account_id", "billing_account_id", "text"),
    ("line_item_usage_account_id", "sub_account_id", "text"),
    ("resource_tags", "tags", "json"),
]
# CUR line item type -> FOCUS ChargeCategory (AWS's own FOCUS export maps them the same way).
CUR_CHARGE_CATEGORY = {
    "Usage": "Usage", "DiscountedUsage": "Usage", "SavingsPlanCoveredUsage": "Usage",
    "SavingsPlanNegation": "Usage", "Tax": "Tax", "Credit": "Credit", "Refund": "Credit",
    "BundledDiscount": "Credit", "Discount": "Credit", "EdpDiscount": "Credit", "PrivateRateDiscount": "Credit",
    "Fee": "Purchase", "RIFee": "Purchase", "SavingsPlanRecurringFee": "Purchase",
    "SavingsPlanUpfrontFee": "Purchase",
}
# A CUR row is a Bedrock row when one of these holds (Anthropic models on Bedrock are billed through
# AWS Marketplace under their own product codes, "... (Amazon Bedrock Edition)").
CUR_BEDROCK_WHEN = [
    ("line_item_product_code", re.compile(r"bedrock", re.I)),
    ("product_servicecode", re.compile(r"bedrock", re.I)),
    ("product_product_name", re.compile(r"bedrock", re.I)),
    ("line_item_usage_type", re.compile(r"(input|output)-tokens|tokencount|token-count", re.I)),
]
# Bedrock usage types are REGION-MODEL-TOKENS ("USE1-Claude4.5Sonnet-cache-read-input-token-count").
CUR_REGION_PREFIX = re.compile(r"^[A-Z]{2,4}\d{0,2}-")
CUR_TOKEN_SUFFIX = re.compile(
    r"-?((cache-?read|cache-?write)-input-token-count|(mantle-)?(input|output)-tokens?(-.*)?|"
    r"(Cache(Read|Write))?(Input|Output)TokenCount.*)$",
    re.I,
)
CUR_MODEL_RESOURCE = re.compile(r"(?:foundation-model|inference-profile)/([^/]+)$")
CUR_PRODUCT_EDITION = re.compile(r"\s*\(Amazon Bedrock Edition\)\s*$", re.I)


def _cur_name(name: str) -> str:
    """Legacy CUR header ("lineItem/UsageStartDate", "resourceTags/user:team") -> CUR 2.0 snake_case."""
    if "/" not in name and name == name.lower():
        return name
    head, _, tail = name.partition("/")
    if head == "resourceTags":
        return "resource_tags_" + tail
    snake = lambda s: re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", s).lower()  # noqa: E731
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


def cur_row(cmap: ColumnMap, values: list) -> dict | None:
    """A Bedrock row of a CUR, or None for the rows of other services (counted, not stored)."""
    product = _cur_product(cmap, values)
    if not any(not blank(v := _cur_value(cmap, values, product, col)) and pattern.search(str(v))
               for col, pattern in CUR_BEDROCK_WHEN):
        return None
    row = cmap.apply(values)
    # CUR 2.0 keeps many product attributes in its `product` map; the product code is the last resort.
    for column, target in (("product_product_name", "service_name"), ("line_item_product_code", "service_name"),
                           ("product_region_code", "region_id")):
        if row.get(target) is None:
            row[target] = as_text(_cur_value(cmap, values, product, column), column)
    item_type = as_text(cmap.value(values, "line_item_line_item_type"), "line_item_line_item_type")
    row["charge_category"] = CUR_CHARGE_CATEGORY.get(item_type or "", "Adjustment" if item_type else None)
    row["charge_frequency"] = "Usage-Based" if row["charge_category"] == "Usage" else None
    row["provider"] = "aws"
    row["service_category"] = "AI and Machine Learning"
    row["service_subcategory"] = "Generative AI"
    usage_type = row.get("sku_meter") or ""
    row["token_type"] = token_type_in_text(usage_type)
    row["model"] = cur_model(usage_type, row.get("resource_id"), _cur_value(cmap, values, product, "product_model"),
                             _cur_value(cmap, values, product, "product_product_name"))
    # Legacy CUR spreads tags over resourceTags/user:team columns: gather them into one object, keyed
    # as CUR 2.0 keys its resource_tags map (user_team).
    spread = {cmap.header[i][len("resource_tags_"):].replace(":", "_"): values[i] for i in cmap.unmapped
              if cmap.header[i].startswith("resource_tags_") and not blank(values[i])}
    if spread and row.get("tags") is None:
        row["tags"] = orjson.dumps(spread, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return row


def cur_model(usage_type: str, resource_id, product_model, product_name) -> str | None:
    """A Bedrock model's name: from the resource ARN, the product's model, the usage type, else the product name."""
    if resource_id:
        found = CUR_MODEL_RESOURCE.search(str(resource_id))
        if found:
            return found.group(1)
    if not blank(product_model):
        return str(product_model).strip()
    middle = CUR_TOKEN_SUFFIX.sub("", CUR_REGION_PREFIX.sub("", usage_type))
    if middle and not middle.startswith("MP:") and re.search(r"[A-Za-z]{2}", middle):
        return middle
    if not blank(product_name):
        return CUR_PRODUCT_EDITION.sub("", str(product_name)).strip() or None
    return None


_CUR_HEADERS = ((b"line_item_usage_type", b"line_item_unblended_cost"), (b"lineItem/UsageType", b"lineItem/UnblendedCost"))


def sniff_cur(head: bytes, name: str) -> bool:
    if head.startswith(b"PAR1"):
        return any(has_all(head, names) for names in _CUR_HEADERS) or bool(re.search(r"(^|[^a-z])cur([^a-z]|$)", name.lower()))
    return any(has_all(header_line(head), names) for names in _CUR_HEADERS)


FORMAT = tabular_format("aws-cur", sniff_cur, CUR_MAP, cur_row, _cur_name)
