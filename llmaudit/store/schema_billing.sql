-- Billing: one row per charge, FOCUS-shaped (FinOps Open Cost and Usage Specification 1.0-1.2), whatever
-- the source: FOCUS CSV/Parquet, OpenAI usage and costs pages, Anthropic usage and cost reports, AWS CUR.
-- Times are UTC. Money is DOUBLE in the row's own currency: rows are never converted, and every sum
-- over billing groups by currency. Usage-only sources (token counts without prices) give rows with
-- quantities and NULL costs.
CREATE TABLE IF NOT EXISTS billing (
    file_id               INTEGER,            -- ingest_log.file_id
    row_key               VARCHAR NOT NULL,   -- sha256 of the source row's content (+ its repeat number
                                              -- within the file): overlapping exports add nothing twice
    source_format         VARCHAR NOT NULL,   -- focus-csv, openai-costs-json, aws-cur, ...
    charge_period_start   TIMESTAMP,          -- inclusive
    charge_period_end     TIMESTAMP,          -- exclusive
    billing_period_start  TIMESTAMP,
    billing_period_end    TIMESTAMP,
    charge_category       VARCHAR,            -- Usage | Purchase | Tax | Credit | Adjustment
    charge_class          VARCHAR,            -- Correction or NULL
    charge_frequency      VARCHAR,            -- One-Time | Recurring | Usage-Based
    charge_description    VARCHAR,
    provider              VARCHAR,            -- normalized: openai, anthropic, aws, azure, gcp, ...
    publisher             VARCHAR,
    service_name          VARCHAR,
    service_category      VARCHAR,
    service_subcategory   VARCHAR,
    sku_id                VARCHAR,
    sku_price_id          VARCHAR,
    sku_meter             VARCHAR,
    resource_id           VARCHAR,
    resource_name         VARCHAR,
    resource_type         VARCHAR,
    region_id             VARCHAR,
    model                 VARCHAR,            -- when the source names one (group-by model, usage type, SKU)
    token_type            VARCHAR,            -- input | cached_input | cache_write | cache_write_1h | output
    pricing_category      VARCHAR,            -- Standard | Committed | Dynamic | Other
    commitment_discount_id       VARCHAR,     -- the commitment (reservation, savings plan, prepayment) a row
                                              -- buys or draws from; NULL for on-demand charges
    commitment_discount_category VARCHAR,     -- Spend | Usage
    commitment_discount_type     VARCHAR,     -- the provider's name for it ("Token Spend Commitment", ...)
    commitment_discount_status   VARCHAR,     -- Used | Unused (the unused share of a commitment)
    sku_price_details     JSON,               -- FOCUS SkuPriceDetails (ModelId, TokenDirection, TokenCacheAction, ...)
    pricing_quantity      DOUBLE,
    pricing_unit          VARCHAR,
    consumed_quantity     DOUBLE,
    consumed_unit         VARCHAR,
    list_unit_price       DOUBLE,
    contracted_unit_price DOUBLE,
    billed_cost           DOUBLE,
    effective_cost        DOUBLE,
    list_cost             DOUBLE,
    contracted_cost       DOUBLE,
    currency              VARCHAR,            -- ISO 4217, upper case
    billing_account_id    VARCHAR,
    sub_account_id        VARCHAR,            -- project (OpenAI), workspace (Anthropic), usage account (AWS)
    tags                  JSON,
    extras                JSON                -- x_ columns and every other source field not mapped above
);

-- Stores written before these columns existed get them (NULL for the rows already there).
ALTER TABLE billing ADD COLUMN IF NOT EXISTS pricing_category VARCHAR;
ALTER TABLE billing ADD COLUMN IF NOT EXISTS commitment_discount_id VARCHAR;
ALTER TABLE billing ADD COLUMN IF NOT EXISTS commitment_discount_category VARCHAR;
ALTER TABLE billing ADD COLUMN IF NOT EXISTS commitment_discount_type VARCHAR;
ALTER TABLE billing ADD COLUMN IF NOT EXISTS commitment_discount_status VARCHAR;
ALTER TABLE billing ADD COLUMN IF NOT EXISTS sku_price_details JSON;
