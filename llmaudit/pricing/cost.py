"""Put dollars on model calls, reconcile them with bills, and break the spend down.

`price_calls` fills llm_calls.cost_usd / price_source / unit prices and requests.cost_usd:

* API calls are priced from their tokens at the catalog's prices (USD per 1M tokens). Token counts
  follow the GenAI semantic conventions, where input_tokens INCLUDES cached reads and cache writes:
  uncached input = input_tokens - cached_input_tokens - cache_creation_tokens, at the input price;
  cached reads at the cached-input price; cache writes at the cache-write price (both fall back to
  the input price when the model has none, which is what a provider without that discount charges);
  output tokens at the output price. When input_tokens is smaller than the cached counts, the
  instrumentation reported the provider's own exclusive count (Anthropic's API does) and
  input_tokens is taken as the uncached part. A call whose input exceeds the model's long-context
  threshold is priced at the long-context tier. A model the catalog does not know stays NULL with
  price_source 'unpriced': never $0.
* Self-hosted calls (llm_calls.self_hosted) are priced from GPU time: the GPU-hours the metrics show
  provisioned while those calls ran (each GPU's sample coverage, view gpu_busy_intervals, inside the
  window from the first call's start to the last call's end), at the catalog's GPU-hour price for the
  GPU's model name (DCGM modelName, or an accelerator named by the caller), shared among the calls in
  proportion to their duration. Duration
  is the share because a served request occupies batch slots and KV cache for as long as it runs,
  whatever its token counts; idle GPU time is carried by the calls, which is what it costs to serve
  them. Without GPU samples the calls stay NULL with price_source 'self-hosted: no GPU data'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from llmaudit.pricing.catalog import Catalog, base_model, canon
from llmaudit.pricing.charges import create_billing_spend
from llmaudit.pricing.contracts import apply_contracts
from llmaudit.pricing.rows import TABLE_SQL, price_rows

UNPRICED = "unpriced"
NO_GPU_DATA = "self-hosted: no GPU data"


@dataclass
class PricingResult:
    priced_calls: int = 0
    unpriced_calls: int = 0
    self_hosted_calls: int = 0
    self_hosted_priced: int = 0
    gpu_hours: float | None = None
    gpu_cost_usd: float | None = None
    unknown_models: list[tuple[str | None, str | None]] = field(default_factory=list)  # (provider, model)


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0])


# --------------------------------------------------------------------------------------------------
# API calls
# --------------------------------------------------------------------------------------------------

def _unit(p: str) -> str:
    """Unit prices of the rates joined as `p` (long-context tier past its threshold). Cached reads and
    cache writes fall back to the input price, 1-hour writes to the 5-minute price."""
    lc = f"({p}.lc_above IS NOT NULL AND coalesce(c.input_tokens, 0) > {p}.lc_above)"
    return f"""{lc} AS {p}_long,
           CASE WHEN {lc} THEN coalesce({p}.lc_input, {p}.input) ELSE {p}.input END AS {p}_in,
           CASE WHEN {lc} THEN coalesce({p}.lc_cached_input, {p}.cached_input, {p}.lc_input, {p}.input)
                ELSE coalesce({p}.cached_input, {p}.input) END AS {p}_cached,
           CASE WHEN {lc} THEN coalesce({p}.lc_cache_write, {p}.cache_write, {p}.lc_input, {p}.input)
                ELSE coalesce({p}.cache_write, {p}.input) END AS {p}_write,
           CASE WHEN {lc} THEN coalesce({p}.lc_cache_write_1h, {p}.cache_write_1h, {p}.lc_cache_write, {p}.cache_write,
                                        {p}.lc_input, {p}.input)
                ELSE coalesce({p}.cache_write_1h, {p}.cache_write, {p}.input) END AS {p}_write1h,
           CASE WHEN {lc} THEN coalesce({p}.lc_output, {p}.output) ELSE {p}.output END AS {p}_out"""


def _cost(p: str) -> str:
    """The cost of a call at the unit prices `p`: NULL when a kind of token it has has no price."""
    return f"""CASE WHEN input_tokens IS NULL AND output_tokens IS NULL THEN NULL
            WHEN (uncached + cached + written > 0 AND {p}_in IS NULL) OR (coalesce(output_tokens, 0) > 0 AND {p}_out IS NULL) THEN NULL
            ELSE (uncached * coalesce({p}_in, 0) + cached * coalesce({p}_cached, 0)
                  + (written - written_1h) * coalesce({p}_write, 0) + written_1h * coalesce({p}_write1h, 0)
                  + coalesce(output_tokens, 0) * coalesce({p}_out, 0)) / 1e6 END"""


def _in_force(p: str) -> str:
    """The price row `p` is in force at the call's start (a call without a start time: the current one)."""
    return (f"(CASE WHEN c.start_time IS NULL THEN {p}.eff_to IS NULL ELSE coalesce(c.start_time >= {p}.eff_from, TRUE) "
            f"AND coalesce(c.start_time < {p}.eff_to, TRUE) END)")


# Per call: the rates of its service tier where the catalog has them (else the standard ones) in
# force at its start time, the long-context tier past its threshold, and the cost; beside it the
# cost at the batch tier (for LLMA016). Joins, not a per-call loop: date ranges of one model and tier
# do not overlap, so each join finds at most one row.
_CALL_COST = f"""
CREATE OR REPLACE TEMP TABLE _call_cost AS
WITH calls AS (
    SELECT c.trace_id, c.span_id, c.start_time, c.input_tokens, c.output_tokens,
           coalesce(c.service_tier, 'standard') AS tier,
           coalesce(c.cached_input_tokens, 0) AS cached, coalesce(c.cache_creation_tokens, 0) AS written,
           least(coalesce(c.cache_write_1h_tokens, 0), coalesce(c.cache_creation_tokens, 0)) AS written_1h,
           s.source AS s_source, t.source AS t_source, b.source AS b_source,
           {_unit('s')}, {_unit('t')}, {_unit('b')}
    FROM llm_calls c
    JOIN _model_prices s
      ON s.provider IS NOT DISTINCT FROM c.provider AND s.model IS NOT DISTINCT FROM c.model AND s.tier = 'standard'
     AND {_in_force('s')}
    LEFT JOIN _model_prices t
      ON t.provider IS NOT DISTINCT FROM c.provider AND t.model IS NOT DISTINCT FROM c.model
     AND t.tier = c.service_tier AND c.service_tier <> 'standard' AND {_in_force('t')}
    LEFT JOIN _model_prices b
      ON b.provider IS NOT DISTINCT FROM c.provider AND b.model IS NOT DISTINCT FROM c.model AND b.tier = 'batch'
     AND {_in_force('b')}
    WHERE NOT coalesce(c.self_hosted, FALSE)
),
unit AS (
    SELECT *,
           t_source IS NOT NULL AS tiered,
           CASE WHEN input_tokens IS NULL THEN 0
                WHEN input_tokens >= cached + written THEN input_tokens - cached - written
                ELSE input_tokens END AS uncached
    FROM calls
),
priced AS (
    SELECT *,
           CASE WHEN tiered THEN t_in ELSE s_in END AS in_p,
           CASE WHEN tiered THEN t_cached ELSE s_cached END AS cached_p,
           CASE WHEN tiered THEN t_out ELSE s_out END AS out_p,
           CASE WHEN tiered THEN t_long ELSE s_long END AS long_ctx,
           CASE WHEN tiered THEN t_source ELSE s_source END AS source,
           CASE WHEN tiered THEN {_cost('t')} ELSE {_cost('s')} END AS cost_usd,
           CASE WHEN tiered THEN tier ELSE 'standard' END AS priced_tier,
           {_cost('b')} AS batch_cost_usd
    FROM unit
)
SELECT trace_id, span_id, start_time, input_tokens, output_tokens, in_p, cached_p, out_p, cost_usd, priced_tier,
       batch_cost_usd,
       CASE WHEN input_tokens IS NULL AND output_tokens IS NULL THEN source || ' (no token counts)'
            WHEN cost_usd IS NULL THEN 'unpriced: the catalog entry ' || source || ' lacks a price for some of its tokens'
            ELSE source || CASE WHEN long_ctx THEN ' (long context)' ELSE '' END
                 || CASE WHEN tier <> 'standard' AND NOT tiered
                         THEN ' (' || tier || ' tier: no catalog rates, priced at standard)' ELSE '' END
       END AS price_source
FROM priced
"""

_APPLY_CALLS = """
UPDATE llm_calls SET
    input_price_per_mtok = x.in_p, cached_input_price_per_mtok = x.cached_p, output_price_per_mtok = x.out_p,
    cost_usd = x.cost_usd, price_source = x.price_source, priced_tier = x.priced_tier, batch_cost_usd = x.batch_cost_usd
FROM _call_cost x
WHERE x.trace_id = llm_calls.trace_id AND x.span_id = llm_calls.span_id
"""

_APPLY = """
UPDATE llm_calls SET
    input_price_per_mtok = x.in_p, cached_input_price_per_mtok = x.cached_p, output_price_per_mtok = x.out_p,
    cost_usd = x.cost_usd, price_source = x.price_source
FROM {table} x
WHERE x.trace_id = llm_calls.trace_id AND x.span_id = llm_calls.span_id
"""


def price_calls(con: duckdb.DuckDBPyConnection, catalog: Catalog, *, accelerator: str | None = None) -> PricingResult:
    """Price every model call in llm_calls, then each request (requests.cost_usd = sum of its priced
    calls). Run it inside the store's transaction, after llmaudit.normalize.derive.

    accelerator: price self-hosted GPU time as this catalog GPU ("H100") instead of the GPU model
    names found in the metrics.
    """
    result = PricingResult()
    if not _exists(con, "llm_calls"):
        return result
    con.execute("""UPDATE llm_calls SET cost_usd = NULL, price_source = NULL, input_price_per_mtok = NULL,
                   cached_input_price_per_mtok = NULL, output_price_per_mtok = NULL, priced_tier = NULL,
                   batch_cost_usd = NULL""")
    pairs = con.execute("""SELECT DISTINCT provider, model FROM llm_calls WHERE NOT coalesce(self_hosted, FALSE)
                           ORDER BY provider NULLS FIRST, model NULLS FIRST""").fetchall()
    rows, covered = [], {}
    for provider, model in pairs:
        entry = catalog.resolve(model, provider)
        if entry is None:
            result.unknown_models.append((provider, model))
            continue
        rows += price_rows(catalog, entry, provider, model)
        covered[(provider, model)] = entry
    con.execute(TABLE_SQL)
    if rows:
        con.executemany(f"INSERT INTO _model_prices VALUES ({', '.join(['?'] * len(rows[0]))})", rows)
    con.execute(_CALL_COST)
    apply_contracts(con, catalog, covered)
    con.execute(_APPLY_CALLS)
    # A known model with no price in force at the call's start (before its first effective date).
    con.execute("""UPDATE llm_calls SET price_source = 'unpriced: no price of ' || p.source || ' in force on '
                       || strftime(llm_calls.start_time, '%Y-%m-%d')
                   FROM (SELECT provider, model, any_value(source ORDER BY eff_to NULLS FIRST) AS source FROM _model_prices
                         GROUP BY ALL) p
                   WHERE llm_calls.price_source IS NULL AND NOT coalesce(llm_calls.self_hosted, FALSE)
                     AND p.provider IS NOT DISTINCT FROM llm_calls.provider AND p.model IS NOT DISTINCT FROM llm_calls.model""")
    con.execute("UPDATE llm_calls SET price_source = ? WHERE price_source IS NULL AND NOT coalesce(self_hosted, FALSE)",
                [UNPRICED])
    _price_self_hosted(con, catalog, accelerator, result)
    if _exists(con, "requests"):
        con.execute("""
            UPDATE requests SET cost_usd = s.cost
            FROM (SELECT trace_id, sum(cost_usd) AS cost FROM llm_calls GROUP BY trace_id) s
            WHERE s.trace_id = requests.trace_id""")
    counts = con.execute("""
        SELECT count(*) FILTER (WHERE cost_usd IS NOT NULL AND NOT coalesce(self_hosted, FALSE)),
               count(*) FILTER (WHERE cost_usd IS NULL AND NOT coalesce(self_hosted, FALSE)),
               count(*) FILTER (WHERE coalesce(self_hosted, FALSE)),
               count(*) FILTER (WHERE cost_usd IS NOT NULL AND coalesce(self_hosted, FALSE))
        FROM llm_calls""").fetchone()
    result.priced_calls, result.unpriced_calls, result.self_hosted_calls, result.self_hosted_priced = counts
    con.execute("DROP TABLE IF EXISTS _model_prices")
    con.execute("DROP TABLE IF EXISTS _call_cost")
    return result


# --------------------------------------------------------------------------------------------------
# Self-hosted calls: GPU time
# --------------------------------------------------------------------------------------------------

def _price_self_hosted(con, catalog: Catalog, accelerator: str | None, result: PricingResult) -> None:
    window = con.execute("""SELECT min(start_time), max(coalesce(end_time, start_time)), count(*)
                            FROM llm_calls WHERE coalesce(self_hosted, FALSE)""").fetchone()
    if not window[2]:
        return
    start, end = window[0], window[1]
    # GPU presence comes from the metrics schema (schema_metrics.sql): gpu_busy_intervals says when
    # each GPU was covered by samples (a gap of more than 3 scrape intervals means it was gone), and
    # gpu_samples carries its model name (DCGM modelName). A GPU's seconds are its covered time
    # inside the window of the self-hosted calls.
    devices = []
    if _exists(con, "gpu_busy_intervals") and _exists(con, "gpu_samples"):
        devices = con.execute("""
            WITH names AS (SELECT host, device, max(gpu_model) AS gpu_model FROM gpu_samples GROUP BY host, device)
            SELECT i.host, i.device, any_value(n.gpu_model) AS gpu_model,
                   sum(greatest(0, epoch(least(i.end_time, ?::TIMESTAMP) - greatest(i.start_time, ?::TIMESTAMP)))) AS seconds
            FROM gpu_busy_intervals i
            LEFT JOIN names n ON n.host IS NOT DISTINCT FROM i.host AND n.device IS NOT DISTINCT FROM i.device
            WHERE i.end_time > ?::TIMESTAMP AND i.start_time < ?::TIMESTAMP
            GROUP BY i.host, i.device HAVING seconds > 0
            ORDER BY i.host NULLS FIRST, i.device NULLS FIRST
        """, [end, start, start, end]).fetchall()
    if not devices:
        con.execute("UPDATE llm_calls SET price_source = ? WHERE coalesce(self_hosted, FALSE)", [NO_GPU_DATA])
        return
    override = catalog.gpu(accelerator) if accelerator else None
    if accelerator and override is None:
        raise ValueError(f"unknown accelerator {accelerator!r}; known: {', '.join(g.name for g in catalog.gpus())}")
    hours = cost = 0.0
    kinds: dict[str, float] = {}
    missing: list[str] = []
    for host, device, gpu_name, seconds in devices:
        gpu = override or catalog.gpu(gpu_name)
        if gpu is None:
            missing.append(gpu_name or f"{host}/{device} (no GPU model name)")
            continue
        h = (seconds or 0.0) / 3600.0
        hours += h
        cost += h * gpu.price.usd_per_hour
        kinds[gpu.name] = gpu.price.usd_per_hour
    if missing:
        source = f"self-hosted: no GPU-hour price for {', '.join(sorted(set(missing)))} (name an accelerator)"
        con.execute("UPDATE llm_calls SET price_source = ? WHERE coalesce(self_hosted, FALSE)", [source])
        return
    rates = ", ".join(f"{name} ${rate:g}/h" for name, rate in sorted(kinds.items()))
    source = f"self-hosted: {hours:.3f} GPU-hours x {rates}, shared by call duration"
    result.gpu_hours, result.gpu_cost_usd = hours, cost
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _gpu_cost AS
        WITH c AS (
            SELECT trace_id, span_id, duration_ms,
                   sum(duration_ms) OVER () AS total_ms,
                   sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) OVER () AS total_tokens
            FROM llm_calls WHERE coalesce(self_hosted, FALSE)
        )
        SELECT trace_id, span_id,
               -- a blended price per token, for rules that price tokens they find wasted
               CASE WHEN total_tokens > 0 THEN ? / total_tokens * 1e6 END AS in_p,
               CASE WHEN total_tokens > 0 THEN ? / total_tokens * 1e6 END AS cached_p,
               CASE WHEN total_tokens > 0 THEN ? / total_tokens * 1e6 END AS out_p,
               CASE WHEN duration_ms IS NOT NULL AND total_ms > 0 THEN ? * duration_ms / total_ms END AS cost_usd,
               CASE WHEN duration_ms IS NULL THEN 'self-hosted: no duration' ELSE ? END AS price_source
        FROM c
    """, [cost, cost, cost, cost, source])
    con.execute(_APPLY.format(table="_gpu_cost"))
    con.execute("DROP TABLE IF EXISTS _gpu_cost")


# --------------------------------------------------------------------------------------------------
# GPU-hour prices for SQL: the catalog's accelerators, and each GPU the metrics show, priced
# --------------------------------------------------------------------------------------------------

def write_gpu_prices(con: duckdb.DuckDBPyConnection, catalog: Catalog, *, accelerator: str | None = None) -> int:
    """Write two tables that rules read to put dollars on GPU time:

    * `gpu_hour_prices` (accelerator, usd_per_hour, basis, match_patterns, origin): the catalog's
      GPU-hour prices, a user's price file included;
    * `gpu_device_prices` (host, device, gpu_model, accelerator, usd_per_hour, price_source): every
      GPU seen in gpu_samples, resolved here with the catalog's own matching (Python regexes, the
      same as self-hosted call pricing uses) rather than re-implemented in each rule's SQL, where the
      regex dialect differs. With `accelerator` (--accelerator) every GPU is priced as that one. A GPU
      the catalog does not know keeps usd_per_hour NULL: rules then fall back to their parameter.

    Both tables are always (re)created, empty if need be, so rule SQL can rely on them.
    Returns the number of GPUs priced."""
    con.execute("""CREATE OR REPLACE TABLE gpu_hour_prices (
                       accelerator VARCHAR, usd_per_hour DOUBLE, basis VARCHAR, match_patterns VARCHAR[], origin VARCHAR)""")
    rows = [(g.name, g.price.usd_per_hour, g.price.basis, list(g.price.match), g.origin)
            for g in sorted(catalog.gpus(), key=lambda g: g.name)]
    if rows:
        con.executemany("INSERT INTO gpu_hour_prices VALUES (?, ?, ?, ?, ?)", rows)
    con.execute("""CREATE OR REPLACE TABLE gpu_device_prices (
                       host VARCHAR, device VARCHAR, gpu_model VARCHAR, accelerator VARCHAR, usd_per_hour DOUBLE,
                       price_source VARCHAR)""")
    if not _exists(con, "gpu_samples"):
        return 0
    devices = con.execute("""SELECT host, device, max(gpu_model) FROM gpu_samples GROUP BY host, device
                             ORDER BY host NULLS FIRST, device NULLS FIRST""").fetchall()
    override = catalog.gpu(accelerator) if accelerator else None
    out, priced = [], 0
    for host, device, gpu_model in devices:
        gpu = override or catalog.gpu(gpu_model)
        if gpu is None:
            out.append((host, device, gpu_model, None, None,
                        f"no catalog GPU-hour price for {gpu_model!r}" if gpu_model else "the metrics name no GPU model"))
            continue
        how = f"--accelerator {accelerator}" if override else f"GPU model {gpu_model!r}"
        out.append((host, device, gpu_model, gpu.name, gpu.price.usd_per_hour,
                    f"{gpu.origin}: {gpu.name} ${gpu.price.usd_per_hour:g}/h ({how})"))
        priced += 1
    if out:
        con.executemany("INSERT INTO gpu_device_prices VALUES (?, ?, ?, ?, ?, ?)", out)
    return priced


# --------------------------------------------------------------------------------------------------
# Reconciliation with bills
# --------------------------------------------------------------------------------------------------

_RECONCILE = """
CREATE OR REPLACE TABLE reconciliation AS
WITH trace AS (
    SELECT coalesce(pm.bills_as, c.provider) AS provider, coalesce(mm.shown, '(no model)') AS model,
           CAST(c.start_time AS DATE) AS day, 'USD' AS currency,
           count(*) AS trace_calls,
           count(*) FILTER (WHERE c.cost_usd IS NULL) AS trace_unpriced_calls,
           sum(c.cost_usd) AS trace_cost,
           sum(coalesce(c.input_tokens, 0) + coalesce(c.output_tokens, 0)) AS trace_tokens
    FROM llm_calls c
    LEFT JOIN _recon_providers pm ON pm.provider IS NOT DISTINCT FROM c.provider
    LEFT JOIN _recon_models mm ON mm.model = c.model
    WHERE NOT coalesce(c.self_hosted, FALSE)
    GROUP BY ALL
),
-- Usage of model APIs only (billing_spend): purchases, unused commitments, tax, credits and
-- infrastructure are not what traced calls cost.
bill_rows AS (
    SELECT b.*, coalesce(mm.shown, '(no model)') AS model_key
    FROM billing_spend b LEFT JOIN _recon_models mm ON mm.model = b.model
    WHERE b.model_api AND b.charge_kind = 'usage' AND b.charge_period_start IS NOT NULL
),
-- A charge whose period spans several days is spread over them in proportion to time.
bill_days AS (
    SELECT r.*, d.day,
           CASE WHEN r.charge_period_end IS NULL OR r.charge_period_end <= r.charge_period_start THEN 1.0
                ELSE epoch(least(r.charge_period_end, d.day + INTERVAL 1 DAY) - greatest(r.charge_period_start, d.day))
                     / epoch(r.charge_period_end - r.charge_period_start) END AS share
    FROM bill_rows r,
         LATERAL (SELECT unnest(generate_series(date_trunc('day', r.charge_period_start),
                                                 CASE WHEN r.charge_period_end > r.charge_period_start
                                                      THEN r.charge_period_end - INTERVAL 1 MICROSECOND
                                                      ELSE r.charge_period_start END,
                                                 INTERVAL 1 DAY)) AS day) d
),
bill AS (
    SELECT provider, model_key AS model, CAST(day AS DATE) AS day, currency,
           sum(billed_cost * share) AS billed_cost,
           sum(effective_cost * share) AS effective_cost,
           sum(amortized_cost * share) AS usage_cost,
           sum(amortized_cost * share) FILTER (WHERE committed) AS committed_cost,
           sum(billed_tokens * share) AS billed_tokens
    FROM bill_days GROUP BY ALL
),
window_days AS (SELECT min(day) AS first_day, max(day) AS last_day FROM trace)
SELECT coalesce(t.provider, b.provider) AS provider,
       coalesce(t.model, b.model) AS model,
       coalesce(t.day, b.day) AS day,
       coalesce(t.currency, b.currency) AS currency,
       coalesce(t.trace_calls, 0) AS trace_calls,
       coalesce(t.trace_unpriced_calls, 0) AS trace_unpriced_calls,
       t.trace_cost,
       coalesce(t.trace_tokens, 0) AS trace_tokens,
       b.billed_cost,
       b.effective_cost,
       b.usage_cost,
       b.committed_cost,
       b.billed_tokens,
       CASE WHEN b.usage_cost IS NOT NULL AND coalesce(t.currency, b.currency) = 'USD'
            THEN b.usage_cost - coalesce(t.trace_cost, 0) END AS gap,
       CASE WHEN b.usage_cost > 0 AND coalesce(t.currency, b.currency) = 'USD'
            THEN coalesce(t.trace_cost, 0) / b.usage_cost END AS explained_share,
       coalesce(coalesce(t.day, b.day) BETWEEN w.first_day AND w.last_day, FALSE) AS in_trace_window
FROM trace t
FULL OUTER JOIN bill b
  ON b.provider IS NOT DISTINCT FROM t.provider AND b.model = t.model AND b.day = t.day AND b.currency = t.currency
CROSS JOIN window_days w
ORDER BY day, provider, model, currency
"""


def reconcile(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> list[dict]:
    """Build table `reconciliation`: per provider (as bills name it), model, day and currency, the
    trace-estimated cost, the bill's model-API usage (usage_cost: amortized, EffectiveCost else
    BilledCost, so usage drawn from a prepaid commitment counts at its share of it; billed_cost and
    effective_cost beside it), the gap
    (usage_cost - estimated) and the share of it the traces explain. Purchases (commitments), unused
    commitments, tax, credits and infrastructure are left out (view billing_spend). Models are
    matched on their base name (gpt-4o-2024-08-06 and gpt-4o meet), and providers by who bills them
    (aws.bedrock calls meet aws bills). Traces are priced in USD, so bills in another currency get no
    gap. Returns the totals per provider and currency over the days the traces cover."""
    if not _exists(con, "llm_calls"):
        return []
    con.execute("CREATE OR REPLACE TEMP TABLE _recon_providers (provider VARCHAR, bills_as VARCHAR)")
    # model as written -> the key bills and traces are matched on, and the name shown for that key
    con.execute("CREATE OR REPLACE TEMP TABLE _recon_models (model VARCHAR, key VARCHAR, shown VARCHAR)")
    providers = [r[0] for r in con.execute("SELECT DISTINCT provider FROM llm_calls ORDER BY 1 NULLS FIRST").fetchall()]
    if providers:
        con.executemany("INSERT INTO _recon_providers VALUES (?, ?)", [(p, catalog.bills_as(p)) for p in providers])
    models = [r[0] for r in con.execute("""SELECT DISTINCT model FROM (SELECT model FROM llm_calls UNION SELECT model FROM billing)
                                           WHERE model IS NOT NULL ORDER BY 1""").fetchall()]
    if models:
        bases = {m: base_model(m) for m in models}
        shown: dict[str, str] = {}
        for base in sorted(bases.values()):
            shown.setdefault(canon(base), base)
        con.executemany("INSERT INTO _recon_models VALUES (?, ?, ?)",
                        [(m, canon(b), shown[canon(b)]) for m, b in bases.items()])
    create_billing_spend(con)
    con.execute(_RECONCILE)
    totals = con.execute("""
        SELECT provider, currency, sum(trace_calls), sum(trace_cost), sum(usage_cost), sum(gap),
               CASE WHEN sum(usage_cost) > 0 AND currency = 'USD' THEN coalesce(sum(trace_cost), 0) / sum(usage_cost) END
        FROM reconciliation WHERE in_trace_window
        GROUP BY provider, currency ORDER BY provider NULLS FIRST, currency NULLS FIRST""").fetchall()
    con.execute("DROP TABLE IF EXISTS _recon_providers")
    con.execute("DROP TABLE IF EXISTS _recon_models")
    keys = ("provider", "currency", "trace_calls", "trace_cost", "usage_cost", "gap", "explained_share")
    return [dict(zip(keys, row)) for row in totals]


# --------------------------------------------------------------------------------------------------
# Where the money goes
# --------------------------------------------------------------------------------------------------

# View name -> the llm_calls columns it groups by.
COST_VIEWS = {
    "cost_by_feature": ["feature"],
    "cost_by_tenant": ["tenant"],
    "cost_by_model": ["provider", "model"],
    "cost_by_provider": ["provider"],
    "cost_by_day": ["CAST(start_time AS DATE) AS day"],
    "cost_by_service": ["service"],
}


def create_cost_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create the cost_by_* views over llm_calls (priced calls' dollars, unpriced calls counted apart,
    each group's share of the priced total). Returns the view names."""
    for name, group in COST_VIEWS.items():
        keys = ", ".join(group)
        order = ", ".join(g.split(" AS ")[-1] for g in group)
        con.execute(f"""
            CREATE OR REPLACE VIEW {name} AS
            SELECT {keys},
                   count(*) AS calls,
                   count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls,
                   coalesce(sum(input_tokens), 0) AS input_tokens,
                   coalesce(sum(cached_input_tokens), 0) AS cached_input_tokens,
                   coalesce(sum(output_tokens), 0) AS output_tokens,
                   sum(cost_usd) AS cost_usd,
                   sum(cost_usd) / nullif(sum(sum(cost_usd)) OVER (), 0) AS share_of_cost
            FROM llm_calls
            GROUP BY ALL
            ORDER BY cost_usd DESC NULLS LAST, calls DESC, {order} NULLS LAST
        """)
    return list(COST_VIEWS)


def cost_breakdown(con: duckdb.DuckDBPyConnection, by: str) -> list[dict]:
    """Rows of cost_by_<by> (feature, tenant, model, provider, day, service) as dicts."""
    name = f"cost_by_{by}"
    if name not in COST_VIEWS:
        raise ValueError(f"unknown breakdown {by!r}; choose from {', '.join(v[len('cost_by_'):] for v in COST_VIEWS)}")
    create_cost_views(con)
    cursor = con.execute(f"SELECT * FROM {name}")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
