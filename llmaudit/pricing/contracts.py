"""Contract terms on top of list prices: a percentage discount and volume tiers (a price file's
`contracts:`). Committed rates are price rows (llmaudit.pricing.rows); this applies what scales a
call's cost.

Each call takes the terms of one contract in force at its start: its model's own, else its
provider's. Volume tiers count the tokens (input + output) of the calls under the same contract in
the same calendar month (UTC), in start order: the part of a call past a threshold gets that tier's
discount, the part below it the tier below's. Only the calls in the store are counted: a month that
began before the audited window counts from the window's start.
"""

from __future__ import annotations

import duckdb

from llmaudit.pricing.catalog import Catalog, PriceEntry

_TABLES = """
CREATE OR REPLACE TEMP TABLE _contracts (
    provider VARCHAR, model VARCHAR, contract_id INTEGER, per_model BOOLEAN, eff_from DATE, eff_to DATE,
    discount_pct DOUBLE, label VARCHAR);
CREATE OR REPLACE TEMP TABLE _volume_tiers (contract_id INTEGER, lo BIGINT, hi BIGINT, discount_pct DOUBLE);
"""

# The contract of each call (a model's own over its provider's, then the first listed), its monthly
# token count before the call, and the share of the call's tokens in each volume tier.
_TERMS = """
CREATE OR REPLACE TEMP TABLE _call_terms AS
WITH matched AS (
    SELECT x.trace_id, x.span_id, x.start_time,
           coalesce(x.input_tokens, 0) + coalesce(x.output_tokens, 0) AS tokens,
           arg_min(k.contract_id, (NOT k.per_model, k.contract_id)) AS contract_id
    FROM _call_cost x
    JOIN llm_calls c ON c.trace_id = x.trace_id AND c.span_id = x.span_id
    JOIN _contracts k
      ON k.provider IS NOT DISTINCT FROM c.provider AND k.model IS NOT DISTINCT FROM c.model
     AND (CASE WHEN x.start_time IS NULL THEN k.eff_to IS NULL
               ELSE coalesce(x.start_time >= k.eff_from, TRUE) AND coalesce(x.start_time < k.eff_to, TRUE) END)
    GROUP BY ALL
),
counted AS (
    SELECT m.*,
           sum(tokens) OVER (PARTITION BY contract_id, date_trunc('month', start_time)
                             ORDER BY start_time, trace_id, span_id ROWS UNBOUNDED PRECEDING) - tokens AS before
    FROM matched m
),
tiered AS (
    SELECT n.trace_id, n.span_id,
           sum(greatest(0, least(n.before + n.tokens, coalesce(v.hi, n.before + n.tokens)) - greatest(n.before, v.lo))
               * v.discount_pct / 100.0) AS discounted_tokens,
           sum(greatest(0, least(n.before + n.tokens, coalesce(v.hi, n.before + n.tokens)) - greatest(n.before, v.lo)))
               AS tokens_past
    FROM counted n JOIN _volume_tiers v ON v.contract_id = n.contract_id
    WHERE n.start_time IS NOT NULL
    GROUP BY ALL
)
SELECT n.trace_id, n.span_id, k.label, k.discount_pct, n.tokens, coalesce(t.tokens_past, 0) AS tokens_past,
       (1 - coalesce(k.discount_pct, 0) / 100.0)
       * CASE WHEN n.tokens > 0 THEN 1 - coalesce(t.discounted_tokens, 0) / n.tokens ELSE 1 END AS factor
FROM counted n
JOIN (SELECT DISTINCT contract_id, discount_pct, label FROM _contracts) k USING (contract_id)
LEFT JOIN tiered t ON t.trace_id = n.trace_id AND t.span_id = n.span_id
"""

_APPLY = """
UPDATE _call_cost SET
    cost_usd = _call_cost.cost_usd * t.factor,
    batch_cost_usd = _call_cost.batch_cost_usd * t.factor,
    in_p = _call_cost.in_p * t.factor, cached_p = _call_cost.cached_p * t.factor, out_p = _call_cost.out_p * t.factor,
    price_source = _call_cost.price_source || '; ' || t.label
        || CASE WHEN t.discount_pct > 0 THEN ': ' || t.discount_pct || '% off' ELSE '' END
        || CASE WHEN t.tokens_past > 0 THEN '; volume tier: ' || t.tokens_past || ' of ' || t.tokens
                || ' tokens past a monthly threshold' ELSE '' END
FROM _call_terms t
WHERE t.trace_id = _call_cost.trace_id AND t.span_id = _call_cost.span_id
"""


def apply_contracts(con: duckdb.DuckDBPyConnection, catalog: Catalog, covered: dict[tuple, PriceEntry]) -> None:
    """Scale the costs in _call_cost by the contract terms of each call. covered: (provider, model) as
    llm_calls writes them -> their catalog entry."""
    if not any(c.discount_pct or c.volume_tiers for c in catalog.contracts):
        return
    # Every covering contract takes part (one with committed rates only still wins over its provider's discount).
    rows, tiers = [], []
    for (provider, model), entry in covered.items():
        for index, per_model, contract in catalog.contracts_for(entry):
            rows.append((provider, model, index, per_model, contract.effective_from, contract.effective_to,
                         contract.discount_pct, contract.label()))
    if not rows:
        return
    for index, contract in enumerate(catalog.contracts):
        bands = sorted(contract.volume_tiers, key=lambda t: t.above_tokens)
        for i, band in enumerate(bands):
            hi = bands[i + 1].above_tokens if i + 1 < len(bands) else None
            tiers.append((index, band.above_tokens, hi, band.discount_pct))
    con.execute(_TABLES)
    con.executemany("INSERT INTO _contracts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    if tiers:
        con.executemany("INSERT INTO _volume_tiers VALUES (?, ?, ?, ?)", tiers)
    con.execute(_TERMS)
    con.execute(_APPLY)
    for table in ("_call_terms", "_contracts", "_volume_tiers"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
