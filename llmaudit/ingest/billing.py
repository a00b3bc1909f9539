"""Billing formats: FOCUS (CSV, Parquet), OpenAI usage and costs pages, Anthropic usage and cost reports,
and AWS CUR (Bedrock rows), all read into the FOCUS-shaped `billing` table.

Every source column is mapped by a data table (source name -> billing column and value kind), not by
branches in code; columns a table does not map are kept in `extras`. A row that cannot be read
becomes a reject naming its physical line (CSV) or its record path (JSON, Parquet), and the rest of
the file is read.

The de-duplication key (`row_key`) is the sha256 of a row's source content plus the number of times
the same content appeared before it in the file: overlapping exports of the same period add nothing
twice, while two identical charges inside one file are both kept.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict, deque
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator

import orjson
import pyarrow as pa

from llmaudit.ingest.formats import Batch, Format, ReadContext
from llmaudit.ingest.sources import BrokenStream, Source, read_all
from llmaudit.ingest.spans import Reject

BATCH_ROWS = 50_000

BILLING_SCHEMA = pa.schema(
    [
        ("file_id", pa.int32()),
        ("row_key", pa.string()),
        ("source_format", pa.string()),
        ("charge_period_start", pa.timestamp("us")),
        ("charge_period_end", pa.timestamp("us")),
        ("billing_period_start", pa.timestamp("us")),
        ("billing_period_end", pa.timestamp("us")),
        ("charge_category", pa.string()),
        ("charge_class", pa.string()),
        ("charge_frequency", pa.string()),
        ("charge_description", pa.string()),
        ("provider", pa.string()),
        ("publisher", pa.string()),
        ("service_name", pa.string()),
        ("service_category", pa.string()),
        ("service_subcategory", pa.string()),
        ("sku_id", pa.string()),
        ("sku_price_id", pa.string()),
        ("sku_meter", pa.string()),
        ("resource_id", pa.string()),
        ("resource_name", pa.string()),
        ("resource_type", pa.string()),
        ("region_id", pa.string()),
        ("model", pa.string()),
        ("token_type", pa.string()),
        ("pricing_quantity", pa.float64()),
        ("pricing_unit", pa.string()),
        ("consumed_quantity", pa.float64()),
        ("consumed_unit", pa.string()),
        ("list_unit_price", pa.float64()),
        ("contracted_unit_price", pa.float64()),
        ("billed_cost", pa.float64()),
        ("effective_cost", pa.float64()),
        ("list_cost", pa.float64()),
        ("contracted_cost", pa.float64()),
        ("currency", pa.string()),
        ("billing_account_id", pa.string()),
        ("sub_account_id", pa.string()),
        ("tags", pa.string()),
        ("extras", pa.string()),
    ]
)
COLUMNS = [f.name for f in BILLING_SCHEMA]
_FILLED_BY_BUILDER = {"file_id", "row_key", "source_format"}


class BadRow(ValueError):
    """A source row that cannot be stored; the message names the field and the value."""


# --------------------------------------------------------------------------------------------------
# Value kinds: how a source value becomes a billing value. Each accepts text (CSV, JSON) and typed
# values (Parquet); empty text is NULL.
# --------------------------------------------------------------------------------------------------

def _short(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _blank(value) -> bool:
    return value is None or value == "" or (type(value) is str and not value.strip())


def as_text(value, field: str):
    if type(value) is str:  # the common case (CSV, JSON): no other test needed
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value).strip() or None


_INFINITE = (float("inf"), float("-inf"))


def as_number(value, field: str):
    if type(value) is str:
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            raise BadRow(f"{field}: not a number: {_short(value)}") from None
    elif value is None:
        return None
    elif type(value) is bool or not isinstance(value, (int, float, Decimal)):
        raise BadRow(f"{field}: not a number: {_short(value)}")
    else:
        number = float(value)
    if number != number or number in _INFINITE:
        raise BadRow(f"{field}: not a finite number: {_short(value)}")
    return number


_UNIX_SECONDS = re.compile(r"\d{9,11}(\.\d+)?")


@lru_cache(maxsize=8192)
def _time_from_text(text: str) -> datetime | None:
    """A timestamp text to UTC without zone; None if it is not one. Cached: a billing export repeats
    the same few period boundaries on every row."""
    if _UNIX_SECONDS.fullmatch(text):  # unix seconds, as the OpenAI pages write them
        return datetime.fromtimestamp(float(text), timezone.utc).replace(tzinfo=None)
    try:
        moment = datetime.fromisoformat(text.replace(" UTC", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def as_time(value, field: str):
    """UTC, without zone. Accepts ISO 8601 / RFC 3339 text, datetime, date, or unix seconds."""
    if type(value) is str:
        text = value.strip()
        if not text:
            return None
        moment = _time_from_text(text)
        if moment is None:
            raise BadRow(f"{field}: not a date-time: {_short(value)}")
        return moment
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and type(value) is not bool:
        moment = datetime.fromtimestamp(value, timezone.utc)
    else:
        raise BadRow(f"{field}: not a date-time: {_short(value)}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


_CURRENCY = re.compile(r"[A-Za-z]{3}")


def as_currency(value, field: str):
    text = as_text(value, field)
    if text is None:
        return None
    if not _CURRENCY.fullmatch(text):
        raise BadRow(f"{field}: not an ISO 4217 currency code: {_short(value)}")
    return text.upper()


# Provider display names (FOCUS ProviderName / ServiceProviderName, ...) -> the short lowercase code
# used everywhere in the store. Matched on the lowercased name; an unknown name is kept lowercased.
PROVIDER_CODES = {
    "amazon web services": "aws", "aws": "aws", "amazon": "aws", "amazon bedrock": "aws",
    "microsoft": "azure", "microsoft azure": "azure", "azure": "azure", "microsoft corporation": "azure",
    "google cloud": "gcp", "google cloud platform": "gcp", "google": "gcp", "gcp": "gcp",
    "oracle": "oci", "oracle cloud infrastructure": "oci", "oci": "oci",
    "openai": "openai", "openai, llc": "openai", "anthropic": "anthropic", "anthropic, pbc": "anthropic",
    "mistral ai": "mistral", "mistral": "mistral", "cohere": "cohere", "databricks": "databricks",
    "snowflake": "snowflake", "ibm cloud": "ibm", "alibaba cloud": "alibaba",
}


def as_provider(value, field: str):
    text = as_text(value, field)
    if text is None:
        return None
    return PROVIDER_CODES.get(text.lower(), text.lower())


def as_json_object(value, field: str):
    """A JSON object (FOCUS Tags, CUR resource_tags) as sorted JSON text."""
    if _blank(value):
        return None
    if isinstance(value, list):  # Arrow MAP columns arrive as [(key, value), ...]
        value = dict(value)
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise BadRow(f"{field}: not a JSON object: {_short(value)}") from None
    if not isinstance(value, dict):
        raise BadRow(f"{field}: not a JSON object: {_short(value)}")
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


KINDS: dict[str, Callable[[Any, str], Any]] = {
    "text": as_text,
    "number": as_number,
    "time": as_time,
    "currency": as_currency,
    "provider": as_provider,
    "json": as_json_object,
}


# --------------------------------------------------------------------------------------------------
# Model and token type, from text a source writes about a charge (SKU meters, descriptions, usage types)
# --------------------------------------------------------------------------------------------------

# Model names as they appear inside free text ("gpt-4o-2024-08-06 input tokens", "Claude Sonnet 4.5 ...").
MODEL_IN_TEXT = re.compile(
    r"(?<![a-z0-9])((?:gpt|chatgpt|o[1-9]|claude|gemini|gemma|text-embedding|omni-moderation|mistral|"
    r"mixtral|codestral|ministral|magistral|pixtral|llama|command|titan|nova|grok|deepseek|qwen)"
    r"(?:[a-z0-9.:@_]|-(?=[a-z0-9]))*)",
)

# Token type from the words of a meter, description or usage type; first match wins (cache words
# before plain input/output, since "cache read input tokens" also says "input").
TOKEN_TYPE_WORDS = [
    (re.compile(r"cache[\s_.-]*read|cached[\s_.-]*input|cache[\s_.-]*hit"), "cached_input"),
    (re.compile(r"(cache[\s_.-]*(write|creation)|cache[\s_.-]*create).*(1h|1[\s_-]*hour)"), "cache_write_1h"),
    (re.compile(r"cache[\s_.-]*(write|creation)|cache[\s_.-]*create"), "cache_write"),
    (re.compile(r"(?<![a-z])(input|prompt|inp)(?![a-z])"), "input"),
    (re.compile(r"(?<![a-z])(output|completion|outp|generated)(?![a-z])"), "output"),
]


def model_in_text(*texts) -> str | None:
    """The first model-like name in the texts; a bare vendor word ("Claude", "Nova") is not a model."""
    for text in texts:
        if text:
            for found in MODEL_IN_TEXT.finditer(str(text).lower()):
                name = found.group(1).rstrip(".:_@")
                if re.search(r"[0-9-]", name):
                    return name
    return None


def token_type_in_text(*texts) -> str | None:
    for text in texts:
        if text:
            lowered = str(text).lower().replace("tokencount", " token count").replace("inputtoken", "input token")
            for pattern, token_type in TOKEN_TYPE_WORDS:
                if pattern.search(lowered):
                    return token_type
    return None


# --------------------------------------------------------------------------------------------------
# Rows -> Arrow
# --------------------------------------------------------------------------------------------------

class RowBuilder:
    """Accumulates billing rows column by column; keys rows by content and repeat number."""

    def __init__(self, file_id: int, source_format: str):
        self.file_id = file_id
        self.source_format = source_format
        self.columns: dict[str, list] = {name: [] for name in COLUMNS}
        self._targets = [(name, self.columns[name]) for name in COLUMNS if name not in _FILLED_BY_BUILDER]
        self._seen: dict[bytes, int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self.columns["row_key"])

    def add(self, content: bytes, row: dict) -> None:
        digest = hashlib.sha256(content).digest()
        repeat = self._seen[digest]
        self._seen[digest] = repeat + 1
        key = hashlib.sha256(digest + repeat.to_bytes(8, "big")).hexdigest() if repeat else digest.hex()
        cols = self.columns
        cols["file_id"].append(self.file_id)
        cols["row_key"].append(key)
        cols["source_format"].append(self.source_format)
        get = row.get
        for name, values in self._targets:
            values.append(get(name))

    def take(self) -> pa.Table:
        table = pa.table({name: pa.array(values, BILLING_SCHEMA.field(name).type) for name, values in self.columns.items()},
                         schema=BILLING_SCHEMA)
        for values in self.columns.values():
            values.clear()
        return table


def canonical(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)


def _extras(items: Iterable[tuple[str, Any]]) -> str | None:
    kept = {k: v for k, v in items if not _blank(v)}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS, default=str).decode() if kept else None


# --------------------------------------------------------------------------------------------------
# Tabular sources (FOCUS, CUR): a column map applied to each row
# --------------------------------------------------------------------------------------------------

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


class ColumnMap:
    """Applies one of the maps above to rows of a given header."""

    def __init__(self, header: list[str], mapping: list[tuple[str, str, str]]):
        lookup = {name.lower(): i for i, name in reversed(list(enumerate(header)))}
        self.header = header
        self.plan: list[tuple[int, str, str, Callable]] = []
        mapped: set[int] = set()
        for source, target, kind in mapping:
            index = lookup.get(source.lower())
            if index is not None:
                self.plan.append((index, target, header[index], KINDS[kind]))
                mapped.add(index)
        self.unmapped = [i for i in range(len(header)) if i not in mapped]
        self.lookup = lookup

        self._indices: dict[tuple, list[int]] = {}

    def index(self, name: str) -> int | None:
        return self.lookup.get(name.lower())

    def value(self, values: list, name: str):
        i = self.lookup.get(name.lower())
        return None if i is None else values[i]

    def present(self, names: tuple[str, ...]) -> list[int]:
        """Positions of those of the names that the header has, in the names' order (memoized)."""
        found = self._indices.get(names)
        if found is None:
            found = self._indices[names] = [i for i in (self.lookup.get(n.lower()) for n in names) if i is not None]
        return found

    def first(self, values: list, names: tuple[str, ...]):
        """The first non-empty value among the named columns."""
        for i in self.present(names):
            value = values[i]
            if value is not None and value != "" and not (type(value) is str and not value.strip()):
                return value
        return None

    def apply(self, values: list) -> dict:
        row: dict = {}
        for index, target, field, convert in self.plan:
            value = values[index]
            if value is not None and value != "" and row.get(target) is None:
                row[target] = convert(value, field)
        header = self.header
        kept = {header[i]: values[i] for i in self.unmapped if values[i] is not None and values[i] != ""}
        row["extras"] = _extras(kept.items()) if kept else None
        return row


def focus_row(cmap: ColumnMap, values: list) -> dict | None:
    for name in FOCUS_REQUIRED:
        i = cmap.index(name)
        if i is not None and _blank(values[i]):
            raise BadRow(f"{name} is empty")
    row = cmap.apply(values)
    usage_type = as_text(cmap.first(values, FOCUS_USAGE_TYPE), "x_UsageType")
    model = as_text(cmap.first(values, FOCUS_MODEL_COLUMNS), "model")
    texts = None
    # Only charges for model services are searched for a model name: an EC2 instance called
    # "llama-server-1" is compute, not a model charge.
    if model is None and (row.get("service_category") in FOCUS_MODEL_CATEGORIES or row.get("provider") in MODEL_PROVIDERS):
        found = CUR_MODEL_RESOURCE.search(row.get("resource_id") or "")
        if found:
            model = found.group(1)
        elif usage_type and CUR_TOKEN_SUFFIX.search(usage_type):
            model = _cur_model(usage_type, None, None, None)
        if model is None:
            texts = [values[i] for i in cmap.present(FOCUS_MODEL_TEXT)]
            model = model_in_text(*texts)
    row["model"] = model
    token = as_text(cmap.first(values, FOCUS_TOKEN_COLUMNS), "token type")
    # Token words mean something only on a model charge ("input" also appears in data-transfer SKUs).
    if token is None and model:
        texts = texts if texts is not None else [values[i] for i in cmap.present(FOCUS_MODEL_TEXT)]
        token = token_type_in_text(usage_type, *texts)
    row["token_type"] = token
    return row


def _cur_value(cmap: ColumnMap, values: list, product: dict, name: str):
    """A CUR column, or the same attribute inside CUR 2.0's `product` map column."""
    value = cmap.value(values, name)
    if _blank(value) and name.startswith("product_"):
        value = product.get(name[len("product_"):])
    return value


def _cur_product(cmap: ColumnMap, values: list) -> dict:
    raw = cmap.value(values, "product")
    if _blank(raw):
        return {}
    if isinstance(raw, list):  # Parquet MAP
        return dict(raw)
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise BadRow(f"product: not a JSON object: {_short(raw)}") from None
    return parsed if isinstance(parsed, dict) else {}


def cur_row(cmap: ColumnMap, values: list) -> dict | None:
    """A Bedrock row of a CUR, or None for the rows of other services (counted, not stored)."""
    product = _cur_product(cmap, values)
    if not any(not _blank(v := _cur_value(cmap, values, product, col)) and pattern.search(str(v))
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
    row["model"] = _cur_model(usage_type, row.get("resource_id"), _cur_value(cmap, values, product, "product_model"),
                              _cur_value(cmap, values, product, "product_product_name"))
    # Legacy CUR spreads tags over resourceTags/user:team columns: gather them into one object, keyed
    # as CUR 2.0 keys its resource_tags map (user_team).
    spread = {cmap.header[i][len("resource_tags_"):].replace(":", "_"): values[i] for i in cmap.unmapped
              if cmap.header[i].startswith("resource_tags_") and not _blank(values[i])}
    if spread and row.get("tags") is None:
        row["tags"] = orjson.dumps(spread, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return row


def _cur_model(usage_type: str, resource_id, product_model, product_name) -> str | None:
    if resource_id:
        found = CUR_MODEL_RESOURCE.search(str(resource_id))
        if found:
            return found.group(1)
    if not _blank(product_model):
        return str(product_model).strip()
    middle = CUR_TOKEN_SUFFIX.sub("", CUR_REGION_PREFIX.sub("", usage_type))
    if middle and not middle.startswith("MP:") and re.search(r"[A-Za-z]{2}", middle):
        return middle
    if not _blank(product_name):
        return CUR_PRODUCT_EDITION.sub("", str(product_name)).strip() or None
    return None


# --------------------------------------------------------------------------------------------------
# CSV: physical line numbers, quoted fields across lines, invalid UTF-8 named by line
# --------------------------------------------------------------------------------------------------

class _Lines:
    """Decoded lines of a source with their byte offsets; remembers lines that were not UTF-8."""

    def __init__(self, source: Source):
        self.source = source
        self.recent: deque = deque()  # (line number, byte offset) of lines not yet claimed by a record
        self.bad: set[int] = set()
        self.error: str | None = None
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        pending = b""
        offset = 0
        number = 0
        try:
            for chunk in self.source.chunks(1 << 20):
                self.bytes_read += len(chunk)
                parts = (pending + chunk).split(b"\n")
                pending = parts.pop()
                for raw in parts:
                    number += 1
                    yield self._decode(raw + b"\n", number, offset)
                    offset += len(raw) + 1
        except BrokenStream as exc:
            self.error = str(exc)
        if pending:
            number += 1
            yield self._decode(pending, number, offset)

    def claim(self, first: int) -> int | None:
        """Byte offset of line `first` (a record's first line); forgets the lines before it.

        The csv reader asks for lines one record at a time, so only a few are ever held here."""
        recent = self.recent
        while recent and recent[0][0] < first:
            recent.popleft()
        return recent[0][1] if recent and recent[0][0] == first else None

    def _decode(self, raw: bytes, number: int, offset: int) -> str:
        self.recent.append((number, offset))
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad.add(number)
            return raw.decode("utf-8", errors="replace")


def _read_csv(source: Source, ctx: ReadContext, fmt_name: str, mapping, make_row, rename) -> Iterator[Batch]:
    import csv

    csv.field_size_limit(1 << 24)
    lines = _Lines(source)
    reader = csv.reader(iter(lines))
    builder = RowBuilder(ctx.file_id, fmt_name)
    rejects: list[Reject] = []
    records = 0
    header: list[str] | None = None
    cmap: ColumnMap | None = None
    last_line = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start = last_line + 1
            rejects.append(Reject(start, lines.claim(start), None, f"malformed CSV: {exc}"))
            last_line = reader.line_num
            continue
        start, last_line = last_line + 1, reader.line_num
        offset = lines.claim(start)
        if header is None:
            header = [rename(h.strip()) for h in values]
            cmap = ColumnMap(header, mapping)
            continue
        if not values or (len(values) == 1 and not values[0].strip()):
            continue  # blank line
        records += 1
        try:
            if lines.bad and any(n in lines.bad for n in range(start, last_line + 1)):
                raise BadRow("not valid UTF-8 text")
            if len(values) != len(header):
                raise BadRow(f"expected {len(header)} fields (as in the header), got {len(values)}")
            row = make_row(cmap, values)
        except BadRow as exc:
            rejects.append(Reject(start, offset, None, str(exc)))
            continue
        if row is not None:
            builder.add(canonical(dict(zip(header, values))), row)
        if len(builder) >= BATCH_ROWS:
            yield Batch(builder.take(), rejects, records, lines.bytes_read)
            rejects, records = [], 0
    if lines.error:
        rejects.append(Reject(last_line + 1, lines.bytes_read, None, lines.error))
    if header is None and not lines.error:
        rejects.append(Reject(1, 0, None, "no header line"))
    yield Batch(builder.take(), rejects, records, lines.bytes_read)


# --------------------------------------------------------------------------------------------------
# Parquet: columns typed by the file; a bad row is named by its row number
# --------------------------------------------------------------------------------------------------

def _read_parquet(source: Source, ctx: ReadContext, fmt_name: str, mapping, make_row, rename) -> Iterator[Batch]:
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(source.path)
    except (pa.ArrowInvalid, OSError) as exc:
        yield Batch(None, [Reject(None, 0, None, f"not a readable Parquet file: {exc}")], 0, 0)
        return
    header = [rename(n) for n in pfile.schema_arrow.names]
    cmap = ColumnMap(header, mapping)
    builder = RowBuilder(ctx.file_id, fmt_name)
    rejects: list[Reject] = []
    records = 0
    row_number = 0
    size = source.size
    groups = max(1, pfile.metadata.num_row_groups)
    for group in range(pfile.metadata.num_row_groups):
        table = pfile.read_row_group(group)
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        for values in zip(*columns):
            values = list(values)
            records += 1
            try:
                row = make_row(cmap, values)
            except BadRow as exc:
                rejects.append(Reject(None, None, f"row {row_number}", str(exc)))
                row = None
            else:
                if row is not None:
                    builder.add(canonical(dict(zip(header, values))), row)
            row_number += 1
        yield Batch(builder.take(), rejects, records, size * (group + 1) // groups)
        rejects, records = [], 0
    if pfile.metadata.num_row_groups == 0:
        yield Batch(None, [], 0, size)


def _tabular(fmt_name: str, mapping, make_row, rename=lambda name: name):
    """A reader for CSV (plain or gzip) or Parquet, told apart by the Parquet magic bytes."""

    def read(source: Source, ctx: ReadContext) -> Iterator[Batch]:
        if source.head(4) == b"PAR1":
            yield from _read_parquet(source, ctx, fmt_name, mapping, make_row, rename)
        else:
            yield from _read_csv(source, ctx, fmt_name, mapping, make_row, rename)

    return read


# --------------------------------------------------------------------------------------------------
# JSON report pages (OpenAI organization usage/costs, Anthropic Admin API usage/cost reports)
# --------------------------------------------------------------------------------------------------

def _documents(data: bytes) -> Iterator[tuple[int | None, Any, str | None]]:
    """(line, document, error): one JSON document, or JSON lines of them (one page per line)."""
    try:
        yield None, orjson.loads(data), None
        return
    except orjson.JSONDecodeError as whole_error:
        lines = data.split(b"\n")
        first = next((line for line in lines if line.strip()), b"")
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            # Not JSON lines either: one broken document (say, cut short), reported once at the
            # line where parsing stopped.
            yield whole_error.lineno, None, f"not valid JSON: {whole_error}"
            return
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield number, orjson.loads(line), None
            except orjson.JSONDecodeError as exc:
                yield number, None, f"not valid JSON: {exc}"


def _buckets(doc) -> Iterator[tuple[str, Any]]:
    """(path, bucket) of a page {"data": [bucket...]}, a list of pages, or a bare list of buckets."""
    pages = doc if isinstance(doc, list) else [doc]
    for p, page in enumerate(pages):
        prefix = f"[{p}]." if isinstance(doc, list) else ""
        if isinstance(page, dict) and "data" in page:
            data = page["data"]
            if not isinstance(data, list):
                yield f"{prefix}data", None
                continue
            for b, bucket in enumerate(data):
                yield f"{prefix}data[{b}]", bucket
        elif isinstance(page, dict) and "results" in page:
            yield prefix.rstrip(".") or "bucket", page
        else:
            yield prefix.rstrip(".") or "document", None


def _read_report(parse_result: Callable, fmt_name: str, bucket_times: tuple[str, str]):
    """A reader for report pages: parse_result(result, start, end) -> list of (row, content-extra)."""

    def read(source: Source, ctx: ReadContext) -> Iterator[Batch]:
        data, error = read_all(source)
        builder = RowBuilder(ctx.file_id, fmt_name)
        rejects: list[Reject] = []
        records = 0
        for line, doc, doc_error in _documents(data):
            if doc_error:
                rejects.append(Reject(line, None, None, doc_error))
                continue
            for path, bucket in _buckets(doc):
                if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
                    records += 1
                    rejects.append(Reject(line, None, path, "not a time bucket with a results list"))
                    continue
                try:
                    start = as_time(bucket.get(bucket_times[0]), bucket_times[0])
                    end = as_time(bucket.get(bucket_times[1]), bucket_times[1])
                except BadRow as exc:
                    records += len(bucket["results"]) or 1
                    rejects.append(Reject(line, None, path, str(exc)))
                    continue
                for r, result in enumerate(bucket["results"]):
                    records += 1
                    where = f"{path}.results[{r}]"
                    try:
                        if not isinstance(result, dict):
                            raise BadRow("a result must be a JSON object")
                        rows = parse_result(result, start, end)
                    except BadRow as exc:
                        rejects.append(Reject(line, None, where, str(exc)))
                        continue
                    base = canonical([bucket.get(bucket_times[0]), bucket.get(bucket_times[1]), result])
                    for row, part in rows:
                        row.setdefault("charge_period_start", start)
                        row.setdefault("charge_period_end", end)
                        builder.add(base + part.encode(), row)
        if error:
            rejects.append(Reject(None, len(data), None, error))
        yield Batch(builder.take(), rejects, records, len(data))

    return read


LLM_SERVICE = {"service_category": "AI and Machine Learning", "service_subcategory": "Generative AI",
               "charge_category": "Usage", "charge_frequency": "Usage-Based"}


def _count(result: dict, field: str) -> float | None:
    return as_number(_dig(result, field), field)


def _dig(obj: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


# OpenAI usage endpoints: what each result counts. `uncached` lists what to subtract from the total
# when the page has no explicit uncached count (input_tokens includes cached and cache-write tokens).
OPENAI_USAGE_QUANTITIES: dict[str, list[dict]] = {
    "organization.usage.completions.result": [
        {"token_type": "input", "field": "input_uncached_tokens", "total": "input_tokens",
         "minus": ["input_cached_tokens", "input_cache_write_tokens"], "unit": "tokens"},
        {"token_type": "cached_input", "field": "input_cached_tokens", "unit": "tokens"},
        {"token_type": "cache_write", "field": "input_cache_write_tokens", "unit": "tokens"},
        {"token_type": "output", "field": "output_tokens", "unit": "tokens"},
    ],
    "organization.usage.embeddings.result": [{"token_type": "input", "field": "input_tokens", "unit": "tokens"}],
    "organization.usage.moderations.result": [{"token_type": "input", "field": "input_tokens", "unit": "tokens"}],
    "organization.usage.images.result": [{"token_type": None, "field": "images", "unit": "images"}],
    "organization.usage.audio_speeches.result": [{"token_type": None, "field": "characters", "unit": "characters"}],
    "organization.usage.audio_transcriptions.result": [{"token_type": None, "field": "seconds", "unit": "seconds"}],
    "organization.usage.vector_stores.result": [{"token_type": None, "field": "usage_bytes", "unit": "bytes"}],
    "organization.usage.code_interpreter_sessions.result": [{"token_type": None, "field": "num_sessions", "unit": "sessions"}],
}
OPENAI_USAGE_DEFAULT = "organization.usage.completions.result"
# Result fields that are grouping keys or the quantities above; the rest go to extras.
OPENAI_USAGE_KEYS = {"object", "model", "project_id"}


def parse_openai_usage(result: dict, start, end) -> list[tuple[dict, str]]:
    kind = result.get("object") or OPENAI_USAGE_DEFAULT
    plan = OPENAI_USAGE_QUANTITIES.get(kind)
    if plan is None:
        raise BadRow(f"unknown usage result object {_short(kind)}")
    model = as_text(result.get("model"), "model")
    endpoint = kind.removeprefix("organization.usage.").removesuffix(".result")
    used = {q["field"] for q in plan} | {f for q in plan for f in q.get("minus", [])} | {q.get("total") for q in plan}
    extras = _extras((k, v) for k, v in sorted(result.items()) if k not in OPENAI_USAGE_KEYS and k not in used)
    rows = []
    for q in plan:
        quantity = _count(result, q["field"])
        if quantity is None and q.get("total"):
            total = _count(result, q["total"])
            if total is not None:
                quantity = total - sum(_count(result, f) or 0 for f in q["minus"])
        if not quantity:
            continue  # absent or zero: nothing was used
        if quantity < 0:
            raise BadRow(f"{q['field']}: negative quantity {quantity:g}")
        meter = f"{endpoint} {q['token_type'] or q['unit']}".replace("_", " ")
        rows.append(({
            **LLM_SERVICE, "provider": "openai", "publisher": "openai", "service_name": "OpenAI API",
            "sku_meter": meter, "charge_description": f"{model or endpoint} {meter}",
            "model": model, "token_type": q["token_type"],
            "pricing_quantity": quantity, "pricing_unit": q["unit"],
            "consumed_quantity": quantity, "consumed_unit": q["unit"],
            "sub_account_id": as_text(result.get("project_id"), "project_id"), "extras": extras,
        }, q["field"]))
    return rows


# OpenAI cost line items read "<model>, <kind>" (e.g. "gpt-4o-2024-08-06, cached input"); kind -> token type.
OPENAI_LINE_ITEM = re.compile(r"^\s*(?P<model>[^,]+?)\s*,\s*(?P<kind>[^,]+?)\s*$")
OPENAI_LINE_KINDS = {
    "input": "input", "output": "output", "cached input": "cached_input", "cached_input": "cached_input",
    "cache write": "cache_write", "cached write": "cache_write", "cache creation": "cache_write",
    "input (batch)": "input", "output (batch)": "output", "cached input (batch)": "cached_input",
}


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
    extras = _extras((k, v) for k, v in sorted(result.items()) if k not in {"object", "amount", "line_item", "project_id"})
    return [({
        **LLM_SERVICE, "provider": "openai", "publisher": "openai", "service_name": "OpenAI API",
        "sku_meter": line_item, "charge_description": line_item, "model": model, "token_type": token_type,
        "billed_cost": value, "effective_cost": value, "currency": currency,
        "sub_account_id": as_text(result.get("project_id"), "project_id"), "extras": extras,
    }, "")]


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
    extras = _extras((k, v) for k, v in sorted(result.items()) if k not in ANTHROPIC_USAGE_KEYS)
    rows = []
    for field, token_type, unit in ANTHROPIC_USAGE_QUANTITIES:
        quantity = _count(result, field)
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
    if _blank(raw):
        raise BadRow("amount is missing")
    # The report gives the amount as a decimal string in the currency's lowest unit (cents for USD).
    try:
        cents = Decimal(str(raw).strip())
    except InvalidOperation:
        raise BadRow(f"amount: not a decimal number of cents: {_short(raw)}") from None
    if not cents.is_finite():
        raise BadRow(f"amount: not a finite number: {_short(raw)}")
    currency = as_currency(result.get("currency"), "currency")
    if currency is None:
        raise BadRow("currency is missing")
    dollars = float(cents / 100)
    token = as_text(result.get("token_type"), "token_type")
    description = as_text(result.get("description"), "description")
    extras = _extras((k, v) for k, v in sorted(result.items()) if k not in ANTHROPIC_COST_KEYS)
    return [({
        **LLM_SERVICE, "provider": "anthropic", "publisher": "anthropic", "service_name": "Claude API",
        "sku_meter": token or as_text(result.get("cost_type"), "cost_type"), "charge_description": description,
        "model": as_text(result.get("model"), "model"),
        "token_type": ANTHROPIC_COST_TOKEN_TYPES.get(token, token) if token else None,
        "billed_cost": dollars, "effective_cost": dollars, "currency": currency,
        "sub_account_id": as_text(result.get("workspace_id"), "workspace_id"), "extras": extras,
    }, "")]


# --------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------

def _header(head: bytes) -> bytes:
    line = head.split(b"\n", 1)[0]
    return line[3:] if line.startswith(b"\xef\xbb\xbf") else line


def _has_all(text: bytes, names: Iterable[bytes]) -> bool:
    return all(n in text for n in names)


def sniff_focus_csv(head: bytes, name: str) -> bool:
    return _has_all(_header(head), (b"BilledCost", b"ChargePeriodStart"))


def sniff_focus_parquet(head: bytes, name: str) -> bool:
    # Column names live in the footer, which the first bytes hold only for small files; a large
    # Parquet file is taken as FOCUS when its name says so (else use --input-format focus-parquet).
    if not head.startswith(b"PAR1"):
        return False
    return _has_all(head, (b"BilledCost", b"ChargePeriodStart")) or "focus" in name.lower()


_CUR_HEADERS = ((b"line_item_usage_type", b"line_item_unblended_cost"), (b"lineItem/UsageType", b"lineItem/UnblendedCost"))


def sniff_cur(head: bytes, name: str) -> bool:
    if head.startswith(b"PAR1"):
        return any(_has_all(head, names) for names in _CUR_HEADERS) or bool(re.search(r"(^|[^a-z])cur([^a-z]|$)", name.lower()))
    return any(_has_all(_header(head), names) for names in _CUR_HEADERS)


def _json_like(head: bytes) -> bytes | None:
    h = head.lstrip()
    return h if h[:1] in (b"{", b"[") else None


def _openai_page(head: bytes) -> bool:
    h = _json_like(head)
    return h is not None and b'"bucket"' in h and b'"object"' in h and b'"start_time"' in h


def sniff_openai_costs(head: bytes, name: str) -> bool:
    if not _openai_page(head):
        return False
    return b"organization.costs.result" in head or (b"organization.usage." not in head and "cost" in name.lower())


def sniff_openai_usage(head: bytes, name: str) -> bool:
    return _openai_page(head) and not sniff_openai_costs(head, name)


def _anthropic_report(head: bytes) -> bool:
    h = _json_like(head)
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


BILLING_KEY = ("row_key",)

FORMATS = [
    Format("focus-csv", "billing", "billing", BILLING_KEY, sniff_focus_csv, _tabular("focus-csv", FOCUS_MAP, focus_row)),
    Format("focus-parquet", "billing", "billing", BILLING_KEY, sniff_focus_parquet,
           _tabular("focus-parquet", FOCUS_MAP, focus_row)),
    Format("aws-cur", "billing", "billing", BILLING_KEY, sniff_cur, _tabular("aws-cur", CUR_MAP, cur_row, _cur_name)),
    Format("openai-costs-json", "billing", "billing", BILLING_KEY, sniff_openai_costs,
           _read_report(parse_openai_cost, "openai-costs-json", ("start_time", "end_time"))),
    Format("openai-usage-json", "billing", "billing", BILLING_KEY, sniff_openai_usage,
           _read_report(parse_openai_usage, "openai-usage-json", ("start_time", "end_time"))),
    Format("anthropic-cost-json", "billing", "billing", BILLING_KEY, sniff_anthropic_cost,
           _read_report(parse_anthropic_cost, "anthropic-cost-json", ("starting_at", "ending_at"))),
    Format("anthropic-usage-json", "billing", "billing", BILLING_KEY, sniff_anthropic_usage,
           _read_report(parse_anthropic_usage, "anthropic-usage-json", ("starting_at", "ending_at"))),
]
