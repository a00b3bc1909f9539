-- GPU and serving metrics: one row per sample, whatever the source (Prometheus / OpenMetrics text,
-- Prometheus HTTP API JSON, nvidia-smi CSV), and views that give the sources' many names one
-- vocabulary. Times are UTC. Views are CREATE OR REPLACE so that opening a store upgrades them.

CREATE TABLE IF NOT EXISTS metric_samples (
    file_id    INTEGER,            -- ingest_log.file_id
    time       TIMESTAMP NOT NULL, -- UTC
    metric     VARCHAR NOT NULL,   -- sample name as written: DCGM_FI_DEV_GPU_UTIL, vllm:prompt_tokens_total,
                                   -- vllm:e2e_request_latency_seconds_bucket, utilization.gpu (nvidia-smi)
    value      DOUBLE,             -- NULL where the source wrote NaN (no value); +/-Inf kept
    host       VARCHAR,            -- label Hostname|hostname|host|node|nodename|instance (port dropped)
    device     VARCHAR,            -- GPU: label gpu (index), else UUID (+ ':migN' for a MIG instance);
                                   -- nvidia-smi CSV: uuid (it names no host), else index
    labels     JSON,               -- every label of the series, keys sorted (le for histogram buckets)
    source     VARCHAR NOT NULL,   -- dcgm | nvidia-smi | vllm | prometheus
    series_key VARCHAR NOT NULL    -- blake2b-128 of metric + sorted labels; (series_key, time) is unique
);

-- One row per metrics file that stored samples: where their times came from. A scrape saved by curl
-- has no sample timestamps: its time is '# scrape' lines, else --scrape-time, else the file's
-- modification time, and the summary says which.
CREATE TABLE IF NOT EXISTS metric_files (
    file_id      INTEGER PRIMARY KEY, -- ingest_log.file_id
    time_source  VARCHAR NOT NULL,    -- sample timestamps | # scrape lines | --scrape-time | file modification time
                                      -- (several joined by ' + ', in that order)
    scrape_time  TIMESTAMP,           -- the one time given to samples that had none (--scrape-time or the
                                      -- file's modification time), else NULL
    blank_values BIGINT               -- DCGM blank sentinels (value unavailable) stored as NULL
);

-- Source metric name -> one GPU vocabulary. Units: *_pct 0-100, ratios 0-1, MiB, W, MHz, degrees C, J.
CREATE OR REPLACE VIEW gpu_metric_names AS
SELECT * FROM (VALUES
    ('DCGM_FI_DEV_GPU_UTIL',                 'gpu_util_pct',     1.0),
    ('DCGM_FI_DEV_MEM_COPY_UTIL',            'mem_util_pct',     1.0),
    ('DCGM_FI_PROF_SM_ACTIVE',               'sm_active',        1.0),
    ('DCGM_FI_PROF_SM_OCCUPANCY',            'sm_occupancy',     1.0),
    ('DCGM_FI_PROF_GR_ENGINE_ACTIVE',        'gr_engine_active', 1.0),
    ('DCGM_FI_PROF_PIPE_TENSOR_ACTIVE',      'tensor_active',    1.0),
    ('DCGM_FI_PROF_DRAM_ACTIVE',             'dram_active',      1.0),
    ('DCGM_FI_DEV_FB_USED',                  'mem_used_mib',     1.0),
    ('DCGM_FI_DEV_FB_FREE',                  'mem_free_mib',     1.0),
    ('DCGM_FI_DEV_FB_RESERVED',              'mem_reserved_mib', 1.0),
    ('DCGM_FI_DEV_FB_TOTAL',                 'mem_total_mib',    1.0),
    ('DCGM_FI_DEV_POWER_USAGE',              'power_w',          1.0),
    ('DCGM_FI_DEV_SM_CLOCK',                 'sm_clock_mhz',     1.0),
    ('DCGM_FI_DEV_GPU_TEMP',                 'temp_c',           1.0),
    ('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION', 'energy_j',         0.001),   -- mJ counter
    -- nvidia-smi --query-gpu fields (values in the units nvidia-smi prints: %, MiB, W, MHz)
    ('utilization.gpu',                      'gpu_util_pct',     1.0),
    ('utilization.memory',                   'mem_util_pct',     1.0),
    ('memory.used',                          'mem_used_mib',     1.0),
    ('memory.free',                          'mem_free_mib',     1.0),
    ('memory.reserved',                      'mem_reserved_mib', 1.0),
    ('memory.total',                         'mem_total_mib',    1.0),
    ('power.draw',                           'power_w',          1.0),
    ('power.draw.instant',                   'power_w',          1.0),
    ('clocks.sm',                            'sm_clock_mhz',     1.0),
    ('clocks.current.sm',                    'sm_clock_mhz',     1.0),
    ('temperature.gpu',                      'temp_c',           1.0),
    -- nvidia_gpu_exporter (utkuozdemir), which re-exports nvidia-smi in base units
    ('nvidia_smi_utilization_gpu_ratio',     'gpu_util_pct',     100.0),
    ('nvidia_smi_utilization_memory_ratio',  'mem_util_pct',     100.0),
    ('nvidia_smi_memory_used_bytes',         'mem_used_mib',     1.0 / 1048576),
    ('nvidia_smi_memory_free_bytes',         'mem_free_mib',     1.0 / 1048576),
    ('nvidia_smi_memory_total_bytes',        'mem_total_mib',    1.0 / 1048576),
    ('nvidia_smi_power_draw_watts',          'power_w',          1.0),
    ('nvidia_smi_temperature_gpu',           'temp_c',           1.0)
) AS t(raw_metric, metric, scale);

-- GPU samples in one vocabulary. DCGM exports used and free framebuffer but rarely the total, so
-- mem_total_mib is derived as used + free (+ reserved) where no total was exported for that GPU.
CREATE OR REPLACE VIEW gpu_samples AS
WITH mapped AS (
    SELECT s.time, s.host, s.device,
           coalesce(json_extract_string(s.labels, '$.modelName'), json_extract_string(s.labels, '$.name'),
                    json_extract_string(s.labels, '$.gpu_name')) AS gpu_model,
           n.metric, s.value * n.scale AS value, s.source, s.metric AS raw_metric
    FROM metric_samples s
    JOIN gpu_metric_names n ON s.metric = n.raw_metric
),
derived_total AS (
    SELECT m.time, m.host, m.device, max(m.gpu_model) AS gpu_model, 'mem_total_mib' AS metric,
           sum(m.value) AS value, m.source, 'derived: used + free + reserved' AS raw_metric
    FROM mapped m
    WHERE m.metric IN ('mem_used_mib', 'mem_free_mib', 'mem_reserved_mib')
      AND NOT EXISTS (
          SELECT 1 FROM mapped t
          WHERE t.metric = 'mem_total_mib' AND t.host IS NOT DISTINCT FROM m.host
            AND t.device IS NOT DISTINCT FROM m.device AND t.time = m.time)
    GROUP BY m.time, m.host, m.device, m.source
    HAVING count(*) FILTER (WHERE m.metric = 'mem_used_mib') > 0
       AND count(*) FILTER (WHERE m.metric = 'mem_free_mib') > 0
)
SELECT time, host, device, gpu_model, metric, value, source, raw_metric FROM mapped
UNION ALL
SELECT time, host, device, gpu_model, metric, value, source, raw_metric FROM derived_total;

-- One row per GPU and sample time: the signals capacity rules need side by side.
CREATE OR REPLACE VIEW gpu_utilization AS
SELECT time, host, device,
       max(gpu_model)                                          AS gpu_model,
       avg(value) FILTER (WHERE metric = 'gpu_util_pct')       AS gpu_util_pct,
       avg(value) FILTER (WHERE metric = 'sm_active')          AS sm_active,
       avg(value) FILTER (WHERE metric = 'gr_engine_active')   AS gr_engine_active,
       avg(value) FILTER (WHERE metric = 'mem_used_mib')       AS mem_used_mib,
       avg(value) FILTER (WHERE metric = 'mem_total_mib')      AS mem_total_mib,
       avg(value) FILTER (WHERE metric = 'power_w')            AS power_w
FROM gpu_samples
GROUP BY time, host, device;

-- Coverage intervals per GPU: each sample stands for the time until the next one, unless that gap is
-- longer than 3x the GPU's median scrape interval (the exporter or the machine was gone): then it
-- stands for one median interval and coverage resumes at the next sample. busy is SM_ACTIVE where
-- present (GPU_UTIL counts any kernel running, so it overstates), else GPU_UTIL / 100.
CREATE OR REPLACE VIEW gpu_busy_intervals AS
WITH t AS (
    SELECT host, device, time,
           coalesce(sm_active, gpu_util_pct / 100.0) AS busy,
           CASE WHEN sm_active IS NOT NULL THEN 'sm_active'
                WHEN gpu_util_pct IS NOT NULL THEN 'gpu_util' END AS busy_signal,
           date_diff('microsecond', time, lead(time) OVER (PARTITION BY host, device ORDER BY time)) / 1e6 AS gap_s
    FROM gpu_utilization
),
m AS (
    SELECT host, device, percentile_cont(0.5) WITHIN GROUP (ORDER BY gap_s) AS median_s
    FROM t GROUP BY host, device
),
c AS (
    SELECT t.host, t.device, t.time, t.busy, t.busy_signal, t.gap_s, m.median_s,
           CASE WHEN t.gap_s IS NOT NULL AND t.gap_s <= 3 * m.median_s THEN t.gap_s
                ELSE coalesce(m.median_s, 0) END AS seconds
    FROM t JOIN m ON t.host IS NOT DISTINCT FROM m.host AND t.device IS NOT DISTINCT FROM m.device
)
SELECT host, device, time AS start_time,
       time + to_microseconds(CAST(round(seconds * 1e6) AS BIGINT)) AS end_time,
       seconds, busy, busy_signal, gap_s, median_s,
       (gap_s IS NULL OR gap_s > 3 * median_s) AS coverage_ends
FROM c;

-- vLLM names -> one serving vocabulary. priority: where a server exposes an old and a new name for
-- the same thing at the same time, the lower number is kept.
CREATE OR REPLACE VIEW serving_metric_names AS
WITH histograms(raw_base, metric_base, priority) AS (
    VALUES
    ('vllm:time_to_first_token_seconds',   'ttft_seconds',              1),
    ('vllm:inter_token_latency_seconds',   'inter_token_latency_seconds', 1),
    ('vllm:time_per_output_token_seconds', 'inter_token_latency_seconds', 2),   -- older name
    ('vllm:e2e_request_latency_seconds',   'e2e_latency_seconds',       1),
    ('vllm:request_queue_time_seconds',    'queue_time_seconds',        1),
    ('vllm:request_prefill_time_seconds',  'prefill_time_seconds',      1),
    ('vllm:request_decode_time_seconds',   'decode_time_seconds',       1),
    ('vllm:request_inference_time_seconds', 'inference_time_seconds',   1),
    ('vllm:request_prompt_tokens',         'request_prompt_tokens',     1),
    ('vllm:request_generation_tokens',     'request_generation_tokens', 1),
    ('vllm:iteration_tokens_total',        'iteration_tokens',          1)
),
parts(suffix) AS (VALUES ('_sum'), ('_count'))
SELECT * FROM (VALUES
    ('vllm:num_requests_running',          'requests_running',     'gauge',   1),
    ('vllm:num_requests_waiting',          'requests_waiting',     'gauge',   1),
    ('vllm:kv_cache_usage_perc',           'kv_cache_usage',       'gauge',   1),   -- 0-1
    ('vllm:gpu_cache_usage_perc',          'kv_cache_usage',       'gauge',   2),   -- older name
    ('vllm:prompt_tokens_total',           'prompt_tokens',        'counter', 1),
    ('vllm:generation_tokens_total',       'generation_tokens',    'counter', 1),
    ('vllm:prompt_tokens_cached_total',    'prompt_tokens_cached', 'counter', 1),
    ('vllm:prefix_cache_queries_total',    'prefix_cache_queries', 'counter', 1),
    ('vllm:gpu_prefix_cache_queries_total', 'prefix_cache_queries', 'counter', 2),  -- older names
    ('vllm:gpu_prefix_cache_queries',      'prefix_cache_queries', 'counter', 3),
    ('vllm:prefix_cache_hits_total',       'prefix_cache_hits',    'counter', 1),
    ('vllm:gpu_prefix_cache_hits_total',   'prefix_cache_hits',    'counter', 2),
    ('vllm:gpu_prefix_cache_hits',         'prefix_cache_hits',    'counter', 3),
    ('vllm:num_preemptions_total',         'preemptions',          'counter', 1),
    ('vllm:request_success_total',         'requests_succeeded',   'counter', 1)
) AS t(raw_metric, metric, kind, priority)
UNION ALL
SELECT h.raw_base || p.suffix, h.metric_base || p.suffix, 'counter', h.priority
FROM histograms h CROSS JOIN parts p;

-- vLLM samples in one vocabulary (old and new names unified; buckets stay in metric_samples).
CREATE OR REPLACE VIEW serving_samples AS
SELECT time, host, model_name, engine, metric, kind, value, labels, raw_metric, source
FROM (
    SELECT s.time, s.host,
           json_extract_string(s.labels, '$.model_name') AS model_name,
           json_extract_string(s.labels, '$.engine') AS engine,
           n.metric, n.kind, s.value, s.labels, s.metric AS raw_metric, s.source,
           row_number() OVER (PARTITION BY n.metric, s.host, CAST(s.labels AS VARCHAR), s.time
                              ORDER BY n.priority) AS pick
    FROM metric_samples s
    JOIN serving_metric_names n ON s.metric = n.raw_metric
) AS ranked
WHERE pick = 1;

-- Per-series increase of every serving counter between consecutive samples. A drop means the server
-- restarted and the counter began again from zero, so the new value is the increase. The first
-- sample of a series has no increase (NULL): what came before it is unknown.
CREATE OR REPLACE VIEW serving_counter_increase AS
SELECT time, prev_time, host, model_name, engine, metric, labels, value, prev_value,
       CASE WHEN prev_value IS NULL THEN NULL
            WHEN value >= prev_value THEN value - prev_value
            ELSE value END AS increase,
       coalesce(value < prev_value, false) AS reset
FROM (
    SELECT time, host, model_name, engine, metric, labels, value,
           lag(value) OVER w AS prev_value,
           lag(time) OVER w AS prev_time
    FROM serving_samples
    WHERE kind = 'counter' AND value IS NOT NULL
    WINDOW w AS (PARTITION BY metric, host, CAST(labels AS VARCHAR) ORDER BY time)
) AS s;

-- What one scrape already shows (no time series needed): the GPUs, the models served, and the
-- serving counters since each server started. `scrapes` counts distinct sample times: where every
-- GPU or server has 1, the store holds a snapshot, and whatever is measured between scrapes (idle
-- GPU-hours, replicas over time) cannot be.

-- One row per GPU (host, device): its model and UUID from the exporter's labels, when it was seen,
-- in how many scrapes, and in how many of them with a busy signal (SM_ACTIVE or GPU utilisation).
CREATE OR REPLACE VIEW gpu_inventory AS
WITH s AS (
    SELECT host, device, time, labels,
           coalesce(json_extract_string(labels, '$.modelName'), json_extract_string(labels, '$.name'),
                    json_extract_string(labels, '$.gpu_name')) AS gpu_model,
           coalesce(json_extract_string(labels, '$.UUID'), json_extract_string(labels, '$.uuid'),
                    json_extract_string(labels, '$.gpu_uuid')) AS uuid,
           source
    FROM metric_samples
    WHERE device IS NOT NULL AND source IN ('dcgm', 'nvidia-smi')
),
busy AS (
    SELECT host, device, count(DISTINCT time) AS busy_scrapes
    FROM gpu_utilization
    WHERE coalesce(sm_active, gpu_util_pct) IS NOT NULL
    GROUP BY host, device
)
SELECT s.host, s.device, max(s.gpu_model) AS gpu_model, max(s.uuid) AS uuid, min(s.source) AS source,
       min(s.time) AS first_seen, max(s.time) AS last_seen, count(DISTINCT s.time) AS scrapes,
       coalesce(any_value(b.busy_scrapes), 0) AS busy_scrapes
FROM s LEFT JOIN busy b ON b.host IS NOT DISTINCT FROM s.host AND b.device = s.device
GROUP BY s.host, s.device;

-- One row per model server (host, model_name): when it was seen, in how many scrapes, and in how many
-- of them with its load (requests running). host is NULL for a raw /metrics scrape (vLLM names no host;
-- a '# scrape <time> {instance="..."}' line can).
CREATE OR REPLACE VIEW served_models AS
SELECT host, model_name, list_sort(list(DISTINCT engine) FILTER (WHERE engine IS NOT NULL)) AS engines,
       min(time) AS first_seen, max(time) AS last_seen, count(DISTINCT time) AS scrapes,
       count(DISTINCT time) FILTER (WHERE metric = 'requests_running' AND value IS NOT NULL) AS load_scrapes
FROM serving_samples
WHERE model_name IS NOT NULL
GROUP BY host, model_name;

-- Serving counters since each server started (what a counter's value means), at the server's last
-- scrape: one row per server, model and counter, the series of one counter (engines, finish reasons,
-- histogram parts) added up. A restart between scrapes shows here as a smaller total; increases over
-- time are serving_counter_increase.
CREATE OR REPLACE VIEW serving_counter_totals AS
WITH last AS (
    SELECT *, max(time) OVER (PARTITION BY host, model_name) AS last_time
    FROM serving_samples
    WHERE kind = 'counter' AND model_name IS NOT NULL
)
SELECT host, model_name, metric, last_time AS time, sum(value) AS value, count(*) AS series
FROM last
WHERE time = last_time
GROUP BY host, model_name, metric, last_time;


-- Provisioned and busy GPU-hours per host, device and hour of day (UTC), within [start_at, end_at)
-- (NULL: unbounded). An interval that crosses o'clock counts toward each hour it covers. The report's
-- GPU tables read the unbounded view gpu_hours_by_hour; llmaudit.metrics_capacity.gpu_hours the macro.
CREATE OR REPLACE MACRO gpu_hours_between(start_at, end_at) AS TABLE
WITH iv AS (
    SELECT host, device, busy, busy_signal,
           greatest(start_time, coalesce(CAST(start_at AS TIMESTAMP), start_time)) AS a,
           least(end_time, coalesce(CAST(end_at AS TIMESTAMP), end_time)) AS b
    FROM gpu_busy_intervals
    WHERE seconds > 0
),
pieces AS (
    -- an interval that crosses o'clock is split so each part counts toward its own hour
    SELECT iv.host, iv.device, iv.busy, iv.busy_signal, h.hour_start,
           date_diff('microsecond', greatest(iv.a, h.hour_start),
                     least(iv.b, h.hour_start + INTERVAL 1 HOUR)) / 3600e6 AS hours
    FROM iv,
         LATERAL (SELECT unnest(generate_series(date_trunc('hour', iv.a), iv.b, INTERVAL 1 HOUR)) AS hour_start) AS h
    WHERE iv.b > iv.a
)
SELECT host, device, CAST(hour(hour_start) AS INTEGER) AS hour_of_day,
       CAST(count(DISTINCT CAST(hour_start AS DATE)) AS INTEGER) AS days,
       sum(hours) AS provisioned_gpu_hours,
       coalesce(sum(hours * busy), 0) AS busy_gpu_hours,
       coalesce(sum(hours) FILTER (WHERE busy IS NOT NULL), 0) AS measured_gpu_hours,
       CASE WHEN count(DISTINCT busy_signal) > 1 THEN 'mixed' ELSE max(busy_signal) END AS busy_signal
FROM pieces
WHERE hours > 0
GROUP BY host, device, hour_of_day
ORDER BY host NULLS FIRST, device NULLS FIRST, hour_of_day;

CREATE OR REPLACE VIEW gpu_hours_by_hour AS SELECT * FROM gpu_hours_between(NULL, NULL);

-- Per model server (host, model): the most requests running at once, when that first happened, the mean
-- and p95 of running requests, and the most waiting, within [start_at, end_at) (NULL: unbounded).
CREATE OR REPLACE MACRO serving_peaks_between(start_at, end_at) AS TABLE
WITH per_time AS (
    -- engines of one server (data parallel) are scraped together: their sum is the server's load
    SELECT host, model_name, time,
           sum(value) FILTER (WHERE metric = 'requests_running') AS running,
           sum(value) FILTER (WHERE metric = 'requests_waiting') AS waiting
    FROM serving_samples
    WHERE metric IN ('requests_running', 'requests_waiting')
      AND (start_at IS NULL OR time >= CAST(start_at AS TIMESTAMP))
      AND (end_at IS NULL OR time < CAST(end_at AS TIMESTAMP))
    GROUP BY host, model_name, time
),
ranked AS (
    SELECT *, max(running) OVER (PARTITION BY host, model_name) AS peak FROM per_time
)
SELECT host, model_name, CAST(count(*) AS INTEGER) AS samples,
       max(running) AS peak_running,
       min(time) FILTER (WHERE running = peak) AS peak_running_at,
       avg(running) AS mean_running,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY running) AS p95_running,
       max(waiting) AS peak_waiting,
       max(coalesce(running, 0) + coalesce(waiting, 0)) AS peak_in_system
FROM ranked
GROUP BY host, model_name
ORDER BY host NULLS FIRST, model_name NULLS FIRST;

CREATE OR REPLACE VIEW serving_peaks AS SELECT * FROM serving_peaks_between(NULL, NULL);
