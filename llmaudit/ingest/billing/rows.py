"""The billing table's rows: the FOCUS-shaped columns every billing format is read into, and the builder
that keys and batches them.

The de-duplication key (`row_key`) is the sha256 of a row's source content plus the number of times
the same content appeared before it in the file: overlapping exports of the same period add nothing
twice, while two identical charges inside one file are both kept.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any, Iterable

import orjson
import pyarrow as pa

from llmaudit.ingest.billing.values import blank

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
        ("pricing_category", pa.string()),
        ("commitment_discount_id", pa.string()),
        ("commitment_discount_category", pa.string()),
        ("commitment_discount_type", pa.string()),
        ("commitment_discount_status", pa.string()),
        ("sku_price_details", pa.string()),
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

BILLING_KEY = ("row_key",)


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


def extras_json(items: Iterable[tuple[str, Any]]) -> str | None:
    """The non-empty source fields that no column holds, as sorted JSON (None when there are none)."""
    kept = {k: v for k, v in items if not blank(v)}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS, default=str).decode() if kept else None

