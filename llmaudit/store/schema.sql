-- llmaudit store: the data contract every reader writes to and every rule reads from.
-- Times are UTC (TIMESTAMP without zone, microsecond precision). Money is DOUBLE in the row's currency.
-- Raw tables (filled by readers, de-duplicated by their keys) and derived tables (rebuilt by
-- llmaudit.normalize from the raw ones after every ingest) are kept apart.

CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

-- One row per file ingested (or attempted, when it ended in rejects under --strict it is absent).
CREATE SEQUENCE IF NOT EXISTS file_id_seq START 1;
CREATE TABLE IF NOT EXISTS ingest_log (
    file_id        INTEGER PRIMARY KEY,
    path           VARCHAR NOT NULL,
    content_sha256 VARCHAR NOT NULL,   -- of the decompressed bytes
    size_bytes     BIGINT,             -- decompressed
    format         VARCHAR NOT NULL,   -- e.g. otlp-jsonl, jaeger-json, focus-csv
    kind           VARCHAR NOT NULL,   -- traces | billing | metrics
    records_read   BIGINT,             -- spans / billing rows / samples seen
    rows_stored    BIGINT,             -- new rows (the rest were already stored)
    rejects        BIGINT,
    ingested_at    TIMESTAMP           -- wall clock; never shown in reports
);

-- Every record a reader could not use, with where it was and why.
CREATE TABLE IF NOT EXISTS rejects (
    file_id     INTEGER,
    path        VARCHAR NOT NULL,
    line        BIGINT,      -- 1-based line, where the format has lines
    byte_offset BIGINT,      -- offset of the line/record start in the decompressed stream
    record      VARCHAR,     -- which record inside the line, e.g. resourceSpans[0].scopeSpans[1].spans[7]
    reason      VARCHAR NOT NULL
);

-- Every span, with all of its attributes kept as a JSON object of text values: strings as-is, numbers
-- in decimal, booleans true/false, arrays and maps as JSON text. Read one with attr(attributes, 'key').
CREATE TABLE IF NOT EXISTS spans (
    trace_id            VARCHAR NOT NULL,   -- 32 lowercase hex
    span_id             VARCHAR NOT NULL,   -- 16 lowercase hex
    parent_span_id      VARCHAR,            -- NULL for a root
    name                VARCHAR,
    kind                VARCHAR,            -- unspecified|internal|server|client|producer|consumer
    start_time          TIMESTAMP,          -- NULL when the span has none and no ancestor in its file has one
    end_time            TIMESTAMP,
    duration_ms         DOUBLE,
    status_code         VARCHAR,            -- unset|ok|error
    status_message      VARCHAR,
    service             VARCHAR,            -- resource service.name (Jaeger process / Zipkin localEndpoint)
    scope_name          VARCHAR,
    attributes          VARCHAR,            -- JSON text (VARCHAR: JSON-typed columns re-validate on insert)
    resource_id         VARCHAR,            -- resources.resource_id: the process that emitted the span
    events              VARCHAR,            -- JSON list [{name, time_ns, attributes}], NULL if none
    file_id             INTEGER             -- ingest_log.file_id; (trace_id, span_id) is unique
);

-- Stores made before spans without a start time were kept had start_time NOT NULL.
ALTER TABLE spans ALTER COLUMN start_time DROP NOT NULL;

-- The resources (the process, host, pod... that emitted spans), each stored once. Its attributes are a
-- JSON object like spans.attributes: spans JOIN resources USING (resource_id).
CREATE TABLE IF NOT EXISTS resources (
    resource_id VARCHAR PRIMARY KEY,   -- a hash of the attributes' JSON text
    attributes  VARCHAR
);

-- attr(attributes, 'gen_ai.request.model'): one attribute's text, NULL when absent.
CREATE OR REPLACE MACRO attr(a, k) AS json_extract_string(a, '$."' || k || '"');

-- first_distinct(list, n): the first n distinct elements of a list, in order (e.g. example trace ids),
-- from its first 1,000 elements. A subquery, not a lambda: a lambda that refers to the whole list
-- copies it once per element.
CREATE OR REPLACE MACRO first_distinct(l, n) AS coalesce((
    SELECT list(x ORDER BY pos) FROM (
        SELECT x, min(pos) AS pos FROM (SELECT unnest(l[1:1000]) AS x, generate_subscripts(l[1:1000], 1) AS pos)
        GROUP BY x ORDER BY pos LIMIT n)), l[1:0]);
