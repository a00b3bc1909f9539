"""FOCUS (FinOps Open Cost and Usage Specification) exports, CSV or Parquet: one row per charge, read
through FOCUS_MAP; the model and token type of a model charge come from its SkuPriceDetails (ModelId,
TokenDirection, TokenCacheAction), else from provider extension columns, else from its SKU and
description text."""

from __future__ import annotations

import re

import orjson

from llmaudit.ingest.billing.cur import CUR_MODEL_RESOURCE, CUR_TOKEN_SUFFIX, cur_model
from llmaudit.ingest.billing.tabular import ColumnMap, has_all, header_line, tabular_format
from llmaudit.ingest.billing.values import BadRow, as_text, blank, model_in_text, token_type_in_text

# FOCUS column -> (billing column, kind). Several source columns may feed one billing column: the first
# non-empty one in this order wins (FOCUS 1.2+ names before the 1.0/1.1 names they succeed).
FOCUS_MAP: list[tuple[str, str, str]] = [
    ("ChargePeriodStart", "charge_period_start", "time"),
    ("ChargePeriodEnd", "charge_period_end", "time"),
    ("BillingPeriodStart", "billing_period_start", "time"),
    ("BillingPeriodEnd", "billing_period_end", "time"),
    ("ChargeCategory", "charge_category", "text"),
    ("ChargeClass", "charge_class", "text"),
    ("ChargeFrequency", "charge_frequency", "text"),
    ("ChargeDescription", "charge_description", "text"),
    ("ServiceProviderName", "provider", "provider"),
    ("ProviderName", "provider", "provider"),
    ("PublisherName", "publisher", "text"),
    ("ServiceName", "service_name", "text"),
    ("ServiceCategory", "service_category", "text"),
    ("ServiceSubcategory", "service_subcategory", "text"),
    ("SkuId", "sku_id", "text"),
    ("SkuPriceId", "sku_price_id", "text"),
    ("SkuMeter", "sku_meter", "text"),
    ("SkuPriceDetails", "sku_price_details", "json"),
    ("PricingCategory", "pricing_category", "text"),
    ("CommitmentDiscountId", "commitment_discount_id", "text"),
    ("CommitmentDiscountCategory", "commitment_discount_category", "text"),
    ("CommitmentDiscountType", "commitment_discount_type", "text"),
    ("CommitmentDiscountStatus", "commitment_discount_status", "text"),
    ("ResourceId", "resource_id", "text"),
    ("ResourceName", "resource_name", "text"),
    ("ResourceType", "resource_type", "text"),
    ("RegionId", "region_id", "text"),
    ("PricingQuantity", "pricing_quantity", "number"),
    ("PricingUnit", "pricing_unit", "text"),
    ("ConsumedQuantity", "consumed_quantity", "number"),
    ("ConsumedUnit", "consumed_unit", "text"),
    ("ListUnitPrice", "list_unit_price", "number"),
    ("ContractedUnitPrice", "contracted_unit_price", "number"),
    ("BilledCost", "billed_cost", "number"),
    ("EffectiveCost", "effective_cost", "number"),
    ("ListCost", "list_cost", "number"),
    ("ContractedCost", "contracted_cost", "number"),
    ("BillingCurrency", "currency", "currency"),
    ("BillingAccountId", "billing_account_id", "text"),
    ("SubAccountId", "sub_account_id", "text"),
    ("Tags", "tags", "json"),
]
# Where a FOCUS row names its model: provider extension columns first, then text fields to search.
FOCUS_MODEL_COLUMNS = ("x_Model", "x_ModelName", "x_ModelId", "x_model", "x_model_name", "x_model_id")
FOCUS_MODEL_TEXT = ("SkuMeter", "x_SkuMeterName", "x_SkuDescription", "ResourceName", "ChargeDescription")
FOCUS_TOKEN_COLUMNS = ("x_TokenType", "x_token_type")
FOCUS_USAGE_TYPE = ("x_UsageType",)  # AWS's FOCUS export carries the CUR usage type here
FOCUS_MODEL_CATEGORIES = {"AI and Machine Learning"}
MODEL_PROVIDERS = {"openai", "anthropic", "mistral", "cohere", "xai", "deepseek"}
FOCUS_REQUIRED = ("ChargePeriodStart",)

# An AI model SKU's SkuPriceDetails (FOCUS 1.3: ModelId, TokenDirection, TokenCacheAction) -> token_type.
# A direction without a cache action is plain input or output; "Other" cache actions are read from the
# meter's words. Keys are matched in lower case.
SKU_TOKEN_TYPES = {
    ("input", None): "input", ("input", "uncached"): "input", ("input", "read"): "cached_input",
    ("input", "write"): "cache_write", ("output", None): "output", ("output", "uncached"): "output",
}
# The FOCUS 1.2 working drafts wrote one TokenType property instead (letters only, lower case).
SKU_DRAFT_TOKEN_TYPES = {"input": "input", "output": "output", "cacheread": "cached_input", "cachedinput": "cached_input",
                         "cachewrite": "cache_write", "cachecreation": "cache_write"}


def sku_model_and_token(details_json: str | None, texts: list) -> tuple[str | None, str | None]:
    """The model and token type an AI SKU's SkuPriceDetails names (None where it names none)."""
    if not details_json:
        return None, None
    details = {str(k).lower(): v for k, v in orjson.loads(details_json).items()}
    model = as_text(details.get("modelid"), "SkuPriceDetails.ModelId")
    direction = as_text(details.get("tokendirection"), "SkuPriceDetails.TokenDirection")
    cache = as_text(details.get("tokencacheaction"), "SkuPriceDetails.TokenCacheAction")
    token = None
    if direction:
        key = (direction.lower(), cache.lower() if cache else None)
        token = SKU_TOKEN_TYPES.get(key) or token_type_in_text(*texts) or SKU_TOKEN_TYPES.get((key[0], None))
    elif (draft := as_text(details.get("tokentype"), "SkuPriceDetails.TokenType")) is not None:
        token = SKU_DRAFT_TOKEN_TYPES.get(re.sub(r"[^a-z]", "", draft.lower())) or token_type_in_text(draft, *texts)
    if token == "cache_write" and token_type_in_text(*texts) == "cache_write_1h":
        token = "cache_write_1h"  # the one-hour cache is priced apart; only the meter's words tell it
    return model, token


def focus_row(cmap: ColumnMap, values: list) -> dict | None:
    for name in FOCUS_REQUIRED:
        i = cmap.index(name)
        if i is not None and blank(values[i]):
            raise BadRow(f"{name} is empty")
    row = cmap.apply(values)
    usage_type = as_text(cmap.first(values, FOCUS_USAGE_TYPE), "x_UsageType")
    texts = None
    sku_model = sku_token = None
    if row.get("sku_price_details"):
        texts = [values[i] for i in cmap.present(FOCUS_MODEL_TEXT)]
        sku_model, sku_token = sku_model_and_token(row["sku_price_details"], texts)
    model = sku_model or as_text(cmap.first(values, FOCUS_MODEL_COLUMNS), "model")
    # Only charges for model services are searched for a model name: an EC2 instance called
    # "llama-server-1" is compute, not a model charge.
    if model is None and (row.get("service_category") in FOCUS_MODEL_CATEGORIES or row.get("provider") in MODEL_PROVIDERS):
        # AWS's FOCUS export names a Bedrock model as its CUR does (resource ARN, usage type).
        found = CUR_MODEL_RESOURCE.search(row.get("resource_id") or "")
        if found:
            model = found.group(1)
        elif usage_type and CUR_TOKEN_SUFFIX.search(usage_type):
            model = cur_model(usage_type, None, None, None)
        if model is None:
            texts = [values[i] for i in cmap.present(FOCUS_MODEL_TEXT)]
            model = model_in_text(*texts)
    row["model"] = model
    token = sku_token or as_text(cmap.first(values, FOCUS_TOKEN_COLUMNS), "token type")
    # Token words mean something only on a model charge ("input" also appears in data-transfer SKUs).
    if token is None and model:
        texts = texts if texts is not None else [values[i] for i in cmap.present(FOCUS_MODEL_TEXT)]
        token = token_type_in_text(usage_type, *texts)
    row["token_type"] = token
    return row


def sniff_focus_csv(head: bytes, name: str) -> bool:
    return has_all(header_line(head), (b"BilledCost", b"ChargePeriodStart"))


def sniff_focus_parquet(head: bytes, name: str) -> bool:
    # Column names live in the footer, which the first bytes hold only for small files; a large
    # Parquet file is taken as FOCUS when its name says so (else use --input-format focus-parquet).
    if not head.startswith(b"PAR1"):
        return False
    return has_all(head, (b"BilledCost", b"ChargePeriodStart")) or "focus" in name.lower()


CSV = tabular_format("focus-csv", sniff_focus_csv, FOCUS_MAP, focus_row)
PARQUET = tabular_format("focus-parquet", sniff_focus_parquet, FOCUS_MAP, focus_row)
