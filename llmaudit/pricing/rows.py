"""The rows of the price table that SQL prices calls from: one per model, service tier and date range.

A catalog entry holds its current price, its earlier prices (history, each with a date range) and,
within each, its service-tier rates. A contract's committed rates replace the standard rates over the
contract's dates. Flattened here into rows so that choosing the price of a call (its model, its tier,
the price in force at its start time) is a join in SQL, not a loop over calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from llmaudit.pricing.catalog import Catalog, Contract, PriceEntry, PriceRow, Rates

# Columns of a row after (provider, model, tier, eff_from, eff_to); then `source`.
RATE_COLUMNS = ("input", "cached_input", "cache_write", "cache_write_1h", "output",
                "lc_above", "lc_input", "lc_cached_input", "lc_cache_write", "lc_cache_write_1h", "lc_output")

TABLE_SQL = """
CREATE OR REPLACE TEMP TABLE _model_prices (
    provider VARCHAR, model VARCHAR, tier VARCHAR, eff_from DATE, eff_to DATE,
    input DOUBLE, cached_input DOUBLE, cache_write DOUBLE, cache_write_1h DOUBLE, output DOUBLE,
    lc_above BIGINT, lc_input DOUBLE, lc_cached_input DOUBLE, lc_cache_write DOUBLE, lc_cache_write_1h DOUBLE,
    lc_output DOUBLE, source VARCHAR
)
"""


@dataclass(frozen=True)
class Span:
    start: date | None  # inclusive; None: unbounded
    end: date | None    # exclusive; None: unbounded


def _rates(r: Rates) -> tuple:
    lc = r.long_context
    return (r.input, r.cached_input, r.cache_write, r.cache_write_1h, r.output,
            lc.above_input_tokens if lc else None, lc.input if lc else None, lc.cached_input if lc else None,
            lc.cache_write if lc else None, lc.cache_write_1h if lc else None, lc.output if lc else None)


def usable(r: Rates) -> bool:
    """A tier prices a call only when it has both an input and an output rate."""
    return r.input is not None and r.output is not None


def _cut(spans: list[tuple[Span, object]], hole: Span) -> list[tuple[Span, object]]:
    """The spans with the part inside `hole` removed (a span may split in two)."""
    out = []
    for s, payload in spans:
        if hole.start is not None and (s.start is None or s.start < hole.start):
            end = hole.start if s.end is None or s.end > hole.start else s.end
            out.append((Span(s.start, end), payload))
        if hole.end is not None and (s.end is None or s.end > hole.end):
            start = hole.end if s.start is None or s.start < hole.end else s.start
            out.append((Span(start, s.end), payload))
    return [(s, p) for s, p in out if s.start is None or s.end is None or s.start < s.end]


def price_rows(catalog: Catalog, entry: PriceEntry, provider: str | None, model: str | None) -> list[tuple]:
    """The rows for the calls written (provider, model) that resolve to this entry."""
    rows: list[tuple] = []
    versions: list[PriceRow] = entry.price.rows()
    standard: list[tuple[Span, tuple]] = []
    for v in versions:
        span = Span(v.effective_from, v.effective_to)
        dated = "" if span == Span(None, None) else f" [{v.effective_from or '...'} to {v.effective_to or '...'})"
        standard.append((span, (_rates(v), entry.source + dated)))
        for tier, rates in sorted(v.tiers.items()):
            if usable(rates):
                rows.append((provider, model, tier, span.start, span.end, *_rates(rates),
                             f"{entry.source} ({tier} tier){dated}"))
    for _, _, contract in [c for c in catalog.contracts_for(entry) if c[2].rates is not None]:
        hole = Span(contract.effective_from, contract.effective_to)
        standard = _cut(standard, hole) + [(hole, (_committed(contract, versions[0]), f"{entry.source}, {contract.label()}: "
                                                   f"committed rates"))]
    for span, (rates, source) in standard:
        rows.append((provider, model, "standard", span.start, span.end, *rates, source))
    return rows


def _committed(contract: Contract, current: PriceRow) -> tuple:
    """Committed rates; a kind of token they leave out keeps the list price."""
    given = contract.rates.model_dump(exclude_unset=True)
    merged = Rates.model_validate({**current.model_dump(include=set(Rates.model_fields)), **given})
    return _rates(merged)
