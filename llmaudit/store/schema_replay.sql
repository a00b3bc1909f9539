-- Replay results (llmaudit.replay): what a workload measured against a real server.
-- One replay (one `llmaudit replay` command) has several runs: baseline and remediated variants,
-- alternated, repeated. Times are UTC. Figures in the JSON columns are documented in
-- llmaudit/replay/client.py (summary), metrics.py (server), savings.py (measured).

CREATE TABLE IF NOT EXISTS replay_runs (
    replay_id               VARCHAR NOT NULL,
    run_index               INTEGER NOT NULL,   -- order in which the runs were executed
    repeat                  INTEGER NOT NULL,
    variant                 VARCHAR NOT NULL,   -- baseline | remediated | a workload name
    finding                 VARCHAR,            -- fingerprint of the finding replayed, if any
    rule_id                 VARCHAR,
    category                VARCHAR,
    workload                VARCHAR,
    workload_sha256         VARCHAR,
    endpoint                VARCHAR,
    served_model            VARCHAR,
    started_at              TIMESTAMP,          -- wall clock; never shown in audit reports
    interrupted             BOOLEAN,
    requests                INTEGER,
    ok                      INTEGER,
    errors                  INTEGER,
    prompt_tokens           BIGINT,             -- server usage, summed over successful requests
    completion_tokens       BIGINT,
    server_prompt_tokens    DOUBLE,             -- /metrics delta (vllm:prompt_tokens_total)
    server_generation_tokens DOUBLE,
    wall_s                  DOUBLE,
    busy_s                  DOUBLE,             -- union of in-flight intervals
    gpu_seconds             DOUBLE,
    gpu_seconds_per_request DOUBLE,
    throughput_rps          DOUBLE,
    goodput_rps             DOUBLE,
    output_tokens_per_s     DOUBLE,
    ttft_p50_s              DOUBLE,
    ttft_p99_s              DOUBLE,
    itl_p50_s               DOUBLE,
    itl_p99_s               DOUBLE,
    e2e_p50_s               DOUBLE,
    e2e_p99_s               DOUBLE,
    summary                 JSON,               -- every client-side figure of the run
    server                  JSON,               -- /metrics deltas
    sampled                 JSON,               -- gauges sampled during the run
    PRIMARY KEY (replay_id, run_index)
);

-- ok, or "failed: why" (fewer successes than --min-success, token counts the server did not confirm, an
-- unreachable server), or "interrupted: left out". Only a replay whose runs are all ok is a measurement.
ALTER TABLE replay_runs ADD COLUMN IF NOT EXISTS status VARCHAR;

-- Per-request measurements of each run.
CREATE TABLE IF NOT EXISTS replay_requests (
    replay_id         VARCHAR NOT NULL,
    run_index         INTEGER NOT NULL,
    request_id        VARCHAR NOT NULL,
    status            VARCHAR,            -- ok | http_4xx | http_5xx | connect_error | timeout | cut | ...
    scheduled_s       DOUBLE,
    sent_s            DOUBLE,
    lateness_s        DOUBLE,
    ttft_s            DOUBLE,
    itl_s             DOUBLE,
    e2e_s             DOUBLE,
    input_tokens      INTEGER,            -- asked for
    output_tokens     INTEGER,
    prompt_tokens     INTEGER,            -- the server's usage
    completion_tokens INTEGER,
    http_status       INTEGER,
    error             VARCHAR
);

-- The measured saving of a replayed finding: what `measured` in the report shows. Written only for a
-- replay that is a measurement.
CREATE TABLE IF NOT EXISTS replay_savings (
    replay_id   VARCHAR PRIMARY KEY,
    finding     VARCHAR,
    rule_id     VARCHAR,
    created_at  TIMESTAMP,
    measured    JSON                       -- llmaudit.findings.model.MeasuredSaving
);
