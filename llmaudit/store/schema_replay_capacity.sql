-- `llmaudit replay capacity` results (llmaudit.replay.capacity_store): one row per sweep, one per rate
-- step, and every request each step sent. `llmaudit plan` reads the per-replica rate from here: a sweep
-- counts as a measurement only with status 'ok'. Times are UTC.

CREATE TABLE IF NOT EXISTS replay_capacity (
    capacity_id        VARCHAR PRIMARY KEY,
    created_at         TIMESTAMP,          -- wall clock; never shown in audit reports
    finding            VARCHAR,            -- fingerprint of the finding whose traffic was swept, if any
    rule_id            VARCHAR,
    production_model   VARCHAR,            -- the model the swept requests used in production
    host               VARCHAR,            -- the production server the finding names, if any
    served_model       VARCHAR,            -- what the swept server serves
    endpoint           VARCHAR,
    max_model_len      INTEGER,
    slo_ttft_s         DOUBLE,
    slo_e2e_s          DOUBLE,
    slo_target         DOUBLE,             -- share of a step's requests that must meet the SLO
    step_s             DOUBLE,
    capacity_rps       DOUBLE,             -- highest rate meeting the SLO; NULL when no rate did
    capacity_is_lower_bound BOOLEAN,       -- every rate tried met the SLO: the server can do more
    capacity_throughput_rps DOUBLE,        -- completed requests/s at that step
    capacity_output_tokens_per_s DOUBLE,   -- generated tokens/s at that step
    mean_input_tokens  DOUBLE,             -- the swept request shapes
    mean_output_tokens DOUBLE,
    gpu                VARCHAR,
    gpus_per_replica   DOUBLE,
    gpu_hour_usd       DOUBLE,
    server_start_s     DOUBLE,             -- with --launch: seconds from start to a healthy server (a cold start)
    status             VARCHAR,            -- ok | no rate met the SLO | interrupted
    config             JSON
);

CREATE TABLE IF NOT EXISTS replay_capacity_steps (
    capacity_id         VARCHAR NOT NULL,
    step_index          INTEGER NOT NULL,  -- order in which the steps ran
    rate_rps            DOUBLE,            -- offered (Poisson) rate
    passed              BOOLEAN,
    sent                INTEGER,
    ok                  INTEGER,
    errors              INTEGER,
    slo_attainment      DOUBLE,
    throughput_rps      DOUBLE,
    goodput_rps         DOUBLE,
    output_tokens_per_s DOUBLE,
    ttft_p50_s          DOUBLE,
    ttft_p90_s          DOUBLE,
    ttft_p99_s          DOUBLE,
    e2e_p50_s           DOUBLE,
    e2e_p90_s           DOUBLE,
    e2e_p99_s           DOUBLE,
    summary             JSON,              -- every client-side figure of the step
    PRIMARY KEY (capacity_id, step_index)
);

-- Every request of every step: latency at any other target (llmaudit plan's cost-vs-latency curve)
-- is read from these.
CREATE TABLE IF NOT EXISTS replay_capacity_requests (
    capacity_id       VARCHAR NOT NULL,
    step_index        INTEGER NOT NULL,
    request_id        VARCHAR NOT NULL,
    status            VARCHAR,            -- ok | http_4xx | http_5xx | connect_error | timeout | cut | not_sent ...
    sent_s            DOUBLE,
    ttft_s            DOUBLE,
    e2e_s             DOUBLE,
    input_tokens      INTEGER,
    output_tokens     INTEGER,
    completion_tokens INTEGER
);
