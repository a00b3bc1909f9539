"""How a source value becomes a billing value: typed kinds (text, number, time, currency, provider, JSON
object), and the model and token type that a charge's free text names.

Each kind accepts text (CSV, JSON) and typed values (Parquet); empty text is NULL.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable

import orjson

from llmaudit.ingest.core import short


class BadRow(ValueError):
    """A source row that cannot be stored; the message names the field and the value."""


# How tabular exports write a null besides an empty cell: FOCUS-Sample-Data writes an unquoted NULL,
# the FOCUS specification's scenario files write null. No billing field means the word itself.
NULL_TEXTS = frozenset({"NULL", "null", "Null"})


def blank(value) -> bool:
    return value is None or value == "" or (type(value) is str and not value.strip())


def nulls_to_none(values: list) -> list:
    """A row's cells with the null spellings (NULL_TEXTS) as None, for every column alike."""
    return [None if type(v) is str and v in NULL_TEXTS else v for v in values]


def as_text(value, field: str):
    if type(value) is str:  # the common case (CSV, JSON): no other test needed
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value).strip() or None


_INFINITE = (float("inf"), float("-inf"))

# Money as a spreadsheet re-saves it (FOCUS_Spec's simple_saas_agreements files): "$10,000.00 ", "-$2.50",
# "(1,234.56)" for a negative. Commas are read as thousands separators only beside a currency symbol or
# in parentheses (the English-locale money formats), so a decimal comma ("1,5", "1,500") is never misread.
_SPREADSHEET_NUMBER = re.compile(r"(-)?([$€£¥])?(-)?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)")


def _spreadsheet_number(text: str) -> float | None:
    negative = text.startswith("(") and text.endswith(")")
    found = _SPREADSHEET_NUMBER.fullmatch(text[1:-1].strip() if negative else text)
    if found is None:
        return None
    sign_before, symbol, sign_after, digits = found.groups()
    signs = (negative, bool(sign_before), bool(sign_after)).count(True)
    if signs > 1 or ("," in digits and not (symbol or negative)):
        return None
    number = float(digits.replace(",", ""))
    return -number if signs else number


def as_number(value, field: str):
    if type(value) is str:
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            number = _spreadsheet_number(text)
            if number is None:
                raise BadRow(f"{field}: not a number: {short(value)}") from None
    elif value is None:
        return None
    elif type(value) is bool or not isinstance(value, (int, float, Decimal)):
        raise BadRow(f"{field}: not a number: {short(value)}")
    else:
        number = float(value)
    if number != number or number in _INFINITE:
        raise BadRow(f"{field}: not a finite number: {short(value)}")
    return number


_UNIX_SECONDS = re.compile(r"\d{9,11}(\.\d+)?")

# Dates that are not ISO 8601, as spreadsheets re-save exports (FOCUS_Spec's saas_spend_agreements files
# write 4/1/25). Month first: the order US-locale spreadsheets write, and the only one seen in exports.
DATE_FORMATS = ("%m/%d/%y", "%m/%d/%Y", "%m/%d/%y %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S",
                "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S")


@lru_cache(maxsize=8192)
def _time_from_text(text: str) -> datetime | None:
    """A timestamp text to UTC without zone; None if it is not one. Cached: a billing export repeats
    the same few period boundaries on every row."""
    if _UNIX_SECONDS.fullmatch(text):  # unix seconds, as the OpenAI pages write them
        return datetime.fromtimestamp(float(text), timezone.utc).replace(tzinfo=None)
    try:
        moment = datetime.fromisoformat(text.replace(" UTC", "Z"))
    except ValueError:
        for fmt in DATE_FORMATS:
            try:
                return datetime.strptime(text, fmt)
            except ValueError:
                continue
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
            raise BadRow(f"{field}: not a date-time: {short(value)}")
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
        raise BadRow(f"{field}: not a date-time: {short(value)}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


_CURRENCY = re.compile(r"[A-Za-z]{3}")


def as_currency(value, field: str):
    text = as_text(value, field)
    if text is None:
        return None
    if not _CURRENCY.fullmatch(text):
        raise BadRow(f"{field}: not an ISO 4217 currency code: {short(value)}")
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
    if blank(value):
        return None
    if isinstance(value, list):  # Arrow MAP columns arrive as [(key, value), ...]
        value = dict(value)
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise BadRow(f"{field}: not a JSON object: {short(value)}") from None
    if not isinstance(value, dict):
        raise BadRow(f"{field}: not a JSON object: {short(value)}")
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
