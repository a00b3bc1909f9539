"""Build the derived tables (llm_calls, retrievals, requests) from spans.

The SQL is generated from conventions.yaml, so supporting a new attribute spelling is a data change.
Everything is rebuilt in one transaction; a derive that is interrupted leaves the previous tables.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from llmaudit.config import Settings
from llmaudit.normalize import content
from llmaudit.store import Store
from llmaudit.yamlfile import load_yaml

_CONVENTIONS = Path(__file__).with_name("conventions.yaml")
_SQL_TYPES = {"text": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE"}


@lru_cache(maxsize=1)
def conventions() -> dict:
    return load_yaml(_CONVENTIONS.read_text(encoding="utf-8"))


def sql_str(text: str) -> str:
    """A SQL string literal. Only ever used for names from our own data files, never telemetry."""
    return "'" + text.replace("'", "''") + "'"


def json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


class _Extractor:
    """Collects attribute keys so that each span's JSON is parsed once for all of them."""

    def __init__(self, column: str = "attributes"):
        self.column = column
        self.paths: list[str] = []

    def ref(self, key: str) -> str:
        path = json_path(key)
        if path not in self.paths:
            self.paths.append(path)
        return f"_v[{self.paths.index(path) + 1}]"

    def select(self) -> str:
        paths = ", ".join(sql_str(p) for p in self.paths) or "'$.__none__'"
        return f"json_extract_string({self.column}, [{paths}]) AS _v"

    def value(self, spec) -> str:
        if isinstance(spec, str):
            return self.ref(spec)
        return f"json_extract_string({self.ref(spec['key'])}, {sql_str(spec['path'])})"

    def column_expr(self, spec: dict) -> str:
        sql_type = _SQL_TYPES[spec.get("type", "text")]
        values = [self.value(k) for k in spec["keys"]]
        if sql_type != "VARCHAR":
            values = [f"TRY_CAST(TRY_CAST({v} AS DOUBLE) AS {sql_type})" if sql_type == "BIGINT" else f"TRY_CAST({v} AS {sql_type})" for v in values]
        return values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"

    def condition(self, clauses: list[dict]) -> str:
        parts = []
        for c in clauses:
            ref = self.ref(c["key"])
            if c.get("present"):
                parts.append(f"{ref} IS NOT NULL")
            else:
                parts.append(f"coalesce({ref} IN ({', '.join(sql_str(v) for v in c['in'])}), FALSE)")
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


def _prefilter(clauses: list[dict]) -> str:
    """A cheap test that every candidate span passes (skips JSON parsing for the rest): a substring of
    its attributes, or for a clause that names `span_name_prefix`, the start of its name (cheaper still:
    one more substring test would scan every span's attributes once more)."""
    prefixes = sorted({c["key"].split(".")[0] + "." for c in clauses if "span_name_prefix" not in c})
    tests = [f"attributes LIKE {sql_str('%' + chr(34) + p + '%')}" for p in prefixes]
    names = sorted({c["span_name_prefix"] for c in clauses if "span_name_prefix" in c})
    tests += [f"starts_with(name, {sql_str(n)})" for n in names]
    return " OR ".join(tests)


def _input_hash_sql(ex: _Extractor, keys: list[str]) -> str:
    """sha256 of the captured input content (all input keys, indexed ones in index order), else NULL.

    Computed in SQL so that hashing every captured prompt costs no trip through Python."""
    parts = []
    for key in keys:
        if "{i}" not in key:
            parts.append(ex.ref(key))
            continue
        head, tail = key.split("{i}")
        pattern = sql_str("^" + re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
        parts.append(
            f"CASE WHEN contains(attributes, {sql_str(chr(34) + head)}) THEN array_to_string(list_transform("
            f"list_sort(list_transform(list_filter(json_keys(attributes), lambda k: regexp_matches(k, {pattern})), "
            f"lambda k: {{'i': CAST(regexp_extract(k, {pattern}, 1) AS INTEGER), 'k': k}})), "
            f"lambda x: json_extract_string(attributes, '$.\"' || x.k || '\"')), chr(31)) END"
        )
    joined = f"concat_ws(chr(31), {', '.join(parts)})"
    return f"CASE WHEN {joined} <> '' THEN left(sha256({joined}), 32) END"


def llm_calls_sql() -> str:
    conv = conventions()
    ex = _Extractor()
    columns = {name: ex.column_expr(spec) for name, spec in conv["llm_calls"].items()}
    # Operations as llm_calls names them (semantic-convention names), whatever spelling the span used.
    op = columns["operation"]
    columns["operation"] = ("CASE " + op + " " + " ".join(
        f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in conv["operation_names"].items()) + f" ELSE {op} END")
    tier = f"lower(trim({columns['service_tier']}))"
    columns["service_tier"] = ("CASE " + tier + " " + " ".join(
        f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in conv["service_tier_names"].items()) + f" ELSE {tier} END")
    is_llm = ex.condition(conv["llm_span_when"])
    not_llm = ex.condition(conv["llm_span_unless"])
    prefilter = _prefilter(conv["llm_span_when"])
    hosted = ", ".join(sql_str(p) for p in conv["self_hosted_providers"])
    kind_cases = []
    for rule in conv["call_kinds"]:
        if "operation" in rule:
            ops = ", ".join(sql_str(o) for o in rule["operation"])
            kind_cases.append(f"WHEN operation IN ({ops}) THEN {sql_str(rule['kind'])}")
        else:
            kind_cases.append(f"WHEN regexp_matches(_names, {sql_str(rule['pattern'])}) THEN {sql_str(rule['kind'])}")
    col_sql = ",\n            ".join(f"{expr} AS {name}" for name, expr in columns.items())
    input_hash = _input_hash_sql(ex, conv["content"]["input"])
    return f"""
    CREATE OR REPLACE TABLE llm_calls AS
    WITH cand AS MATERIALIZED (
        SELECT trace_id, span_id, parent_span_id, name, start_time, end_time, duration_ms,
               status_code, status_message, service, attributes, {ex.select()}
        FROM spans
        WHERE {prefilter}
    ),
    mapped AS (
        SELECT trace_id, span_id, parent_span_id, name AS span_name, start_time, end_time, duration_ms,
               status_code, status_message, service,
            {col_sql},
            {input_hash} AS input_hash
        FROM cand
        WHERE {is_llm} AND NOT {not_llm}
    ),
    named AS (
        SELECT m.*, concat_ws(' ', m.span_name, p.name, m.agent_name) AS _names
        FROM mapped m LEFT JOIN spans p ON p.trace_id = m.trace_id AND p.span_id = m.parent_span_id
    )
    SELECT
        trace_id, span_id, parent_span_id, span_name, start_time, end_time, duration_ms, service,
        lower(provider) AS provider,
        coalesce(request_model, response_model) AS model,  -- what the caller chose: stable across model snapshots
        request_model, response_model,
        operation,
        CASE {' '.join(kind_cases)} ELSE 'main' END AS call_kind,
        input_tokens, output_tokens,
        coalesce(cached_input_tokens, 0) AS cached_input_tokens,
        -- the 1-hour writes are part of the cache writes (an instrumentation may report only them)
        greatest(coalesce(cache_creation_tokens, 0), coalesce(cache_write_1h_tokens, 0)) AS cache_creation_tokens,
        coalesce(cache_write_1h_tokens, 0) AS cache_write_1h_tokens,
        service_tier,
        FALSE AS tokens_estimated,
        max_tokens, temperature, finish_reason,
        (status_code = 'error' OR error_type IS NOT NULL) AS is_error,
        coalesce(error_type, CASE WHEN status_code = 'error' THEN coalesce(status_message, 'error') END) AS error_type,
        resend_count,
        CAST(0 AS BIGINT) AS attempt,
        FALSE AS is_retry,
        CAST(NULL AS VARCHAR) AS retry_evidence,
        server_address, conversation_id, agent_name, response_id,
        (lower(provider) IN ({hosted})) AS self_hosted,
        input_hash,
        CAST(NULL AS VARCHAR) AS feature,
        CAST(NULL AS VARCHAR) AS tenant,
        -- Filled by pricing: unit prices (USD per 1M tokens) so rules can price the tokens they
        -- find wasted, and the call's own cost.
        CAST(NULL AS DOUBLE) AS input_price_per_mtok,
        CAST(NULL AS DOUBLE) AS cached_input_price_per_mtok,
        CAST(NULL AS DOUBLE) AS output_price_per_mtok,
        CAST(NULL AS DOUBLE) AS cost_usd,
        CAST(NULL AS VARCHAR) AS price_source,
        CAST(NULL AS VARCHAR) AS priced_tier,     -- the service tier whose rates priced it
        CAST(NULL AS DOUBLE) AS batch_cost_usd    -- what it would cost at the model's batch rates
    FROM named
    """


# Retries: an explicit re-send count, or an earlier failed sibling call to the same model with the
# same input size (same parent span). attempt = 0 for first sends.
RETRIES_SQL = """
CREATE OR REPLACE TEMP TABLE _retry AS
SELECT trace_id, span_id,
       coalesce(sum(is_error::INT) OVER (
           PARTITION BY trace_id, parent_span_id, model, input_tokens
           ORDER BY start_time, span_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS failed_before
FROM llm_calls WHERE input_tokens IS NOT NULL;

UPDATE llm_calls SET
    attempt = CASE WHEN coalesce(resend_count, 0) > 0 THEN resend_count ELSE coalesce(r.failed_before, 0) END,
    is_retry = coalesce(resend_count, 0) > 0 OR coalesce(r.failed_before, 0) > 0,
    retry_evidence = CASE WHEN coalesce(resend_count, 0) > 0 THEN 'resend_count'
                          WHEN coalesce(r.failed_before, 0) > 0 THEN 'failed_sibling' END
FROM _retry r
WHERE r.trace_id = llm_calls.trace_id AND r.span_id = llm_calls.span_id;

UPDATE llm_calls SET attempt = resend_count, is_retry = TRUE, retry_evidence = 'resend_count'
WHERE input_tokens IS NULL AND coalesce(resend_count, 0) > 0;
"""


def _pick(n_keys: int, offset: int, column: str) -> str:
    """The first of n keys (priority order) that has a value, from a list of extracted values."""
    values = [f"{column}[{offset + i}]" for i in range(1, n_keys + 1)]
    return values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"


def requests_sql(settings: Settings) -> str:
    """One row per trace. Feature and tenant: the root span's attributes first, then its resource,
    then the earliest span of the trace that has one of the keys (keys in configured priority)."""
    keys = settings.feature_keys + settings.tenant_keys
    paths = ", ".join(sql_str(json_path(k)) for k in keys)
    n_f, n_t = len(settings.feature_keys), len(settings.tenant_keys)
    return f"""
    CREATE OR REPLACE TABLE requests AS
    WITH linked AS MATERIALIZED (
        SELECT s.trace_id, s.span_id, s.name, s.service, s.start_time, s.end_time, s.status_code, s.resource_id,
               -- one parse of each span's JSON for all the keys (cheaper than testing for each key first)
               json_extract_string(s.attributes, [{paths}]) AS _a,
               (s.parent_span_id IS NULL OR p.span_id IS NULL) AS parentless
        FROM spans s LEFT JOIN (SELECT trace_id, span_id FROM spans) p
          ON p.trace_id = s.trace_id AND p.span_id = s.parent_span_id
    ),
    -- The request's root: the earliest span without a (present) parent; with none (a parent
    -- cycle), the earliest span.
    roots AS (
        SELECT trace_id, arg_min(span_id, (NOT parentless, start_time, span_id)) AS root_span_id
        FROM linked GROUP BY trace_id
    ),
    marked AS (
        SELECT l.*, (l.span_id = r.root_span_id) AS is_root,
               {_pick(n_f, 0, 'l._a')} AS _feature, {_pick(n_t, n_f, 'l._a')} AS _tenant
        FROM linked l JOIN roots r USING (trace_id)
    ),
    per_trace AS (
        SELECT trace_id,
               any_value(span_id) FILTER (WHERE is_root) AS root_span_id,
               any_value(name) FILTER (WHERE is_root) AS root_name,
               any_value(service) FILTER (WHERE is_root) AS service,
               any_value(resource_id) FILTER (WHERE is_root) AS _root_resource,
               min(start_time) AS start_time,
               max(end_time) AS end_time,
               count(*) AS spans,
               count(*) FILTER (WHERE parentless AND NOT is_root) AS orphan_spans,
               count(*) FILTER (WHERE status_code = 'error') AS error_spans,
               any_value(_feature) FILTER (WHERE is_root) AS _root_feature,
               any_value(_tenant) FILTER (WHERE is_root) AS _root_tenant,
               arg_min(_feature, start_time) FILTER (WHERE _feature IS NOT NULL) AS _any_feature,
               arg_min(_tenant, start_time) FILTER (WHERE _tenant IS NOT NULL) AS _any_tenant
        FROM marked GROUP BY trace_id
    ),
    resolved AS (
        SELECT t.*, json_extract_string(res.attributes, [{paths}]) AS _r
        FROM per_trace t LEFT JOIN resources res ON res.resource_id = t._root_resource
    ),
    keyed AS (
        SELECT *,
               coalesce(_root_feature, {_pick(n_f, 0, '_r')}, _any_feature) AS feature,
               coalesce(_root_tenant, {_pick(n_t, n_f, '_r')}, _any_tenant) AS tenant
        FROM resolved
    ),
    calls AS (
        SELECT trace_id,
               count(*) AS llm_calls,
               count(*) FILTER (WHERE call_kind = 'main') AS main_calls,
               count(*) FILTER (WHERE call_kind = 'embedding') AS embedding_calls,
               count(*) FILTER (WHERE call_kind = 'moderation') AS moderation_calls,
               count(*) FILTER (WHERE call_kind = 'routing') AS routing_calls,
               count(*) FILTER (WHERE call_kind = 'planning') AS planning_calls,
               count(*) FILTER (WHERE call_kind = 'tool') AS tool_calls,
               count(*) FILTER (WHERE is_retry) AS retry_calls,
               count(*) FILTER (WHERE is_error) AS failed_calls,
               sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens,
               sum(cached_input_tokens) AS cached_input_tokens,
               any_value(conversation_id) AS conversation_id
        FROM llm_calls GROUP BY trace_id
    ),
    retr AS (SELECT trace_id, count(*) AS retrievals FROM retrievals GROUP BY trace_id)
    SELECT t.trace_id, t.root_span_id, t.root_name, t.service, t.feature, t.tenant, c.conversation_id,
           t.start_time, t.end_time, date_diff('microsecond', t.start_time, t.end_time) / 1000.0 AS duration_ms,
           t.spans, t.orphan_spans, t.error_spans,
           coalesce(c.llm_calls, 0) AS llm_calls,
           coalesce(c.main_calls, 0) AS main_calls,
           coalesce(c.embedding_calls, 0) AS embedding_calls,
           coalesce(c.moderation_calls, 0) AS moderation_calls,
           coalesce(c.routing_calls, 0) AS routing_calls,
           coalesce(c.planning_calls, 0) AS planning_calls,
           coalesce(c.tool_calls, 0) AS tool_calls,
           coalesce(c.retry_calls, 0) AS retry_calls,
           coalesce(c.failed_calls, 0) AS failed_calls,
           coalesce(r.retrievals, 0) AS retrievals,
           coalesce(c.input_tokens, 0) AS input_tokens,
           coalesce(c.output_tokens, 0) AS output_tokens,
           coalesce(c.cached_input_tokens, 0) AS cached_input_tokens,
           CAST(NULL AS DOUBLE) AS cost_usd
    FROM keyed t LEFT JOIN calls c USING (trace_id) LEFT JOIN retr r USING (trace_id)
    """


def retrievals_sql() -> str:
    """The retrievals table: one row per retrieval or re-rank span, with its document counts. Scores and
    context tokens are filled by documents_sql once the largest document count is known."""
    conv = conventions()["retrievals"]
    ex = _Extractor()
    is_retrieval = ex.condition(conv["when"])
    cols = {name: ex.column_expr(spec) for name, spec in conv["columns"].items()}
    prefilter = _prefilter(conv["when"])
    kind_expr = (
        f"CASE WHEN {ex.ref('openinference.span.kind')} = 'RERANKER' "
        f"OR {ex.ref('llm.request.type')} = 'rerank' THEN 'reranker' ELSE 'retriever' END"
    )
    docs = conv["documents"]

    # Document keys look like retrieval.documents.<i>.document.score: plain string tests select them
    # (cheaper than a regular expression per key), the index is the text between prefix and suffix.
    def doc_count(spec) -> str:
        prefix = spec["prefix"]
        return (
            f"coalesce(list_max(list_transform(list_filter(_keys, lambda k: starts_with(k, {sql_str(prefix)})), "
            f"lambda k: TRY_CAST(split_part(k[{len(prefix) + 1}:], '.', 1) AS INTEGER))) + 1, 0)"
        )

    col_sql = ",\n               ".join(f"{expr} AS {name}" for name, expr in cols.items())
    return f"""
    CREATE OR REPLACE TABLE retrievals AS
    WITH cand AS MATERIALIZED (
        SELECT trace_id, span_id, parent_span_id, name, start_time, duration_ms, service, attributes,
               {ex.select()}
        FROM spans WHERE {prefilter}
    ),
    picked AS (
        SELECT trace_id, span_id, parent_span_id, name AS span_name, start_time, duration_ms, service,
               {kind_expr} AS kind,
               {col_sql},
               json_keys(attributes) AS _keys
        FROM cand WHERE {is_retrieval}
    )
    SELECT trace_id, span_id, parent_span_id, span_name, start_time, duration_ms, service, kind, system,
           top_k_requested,
           CASE kind WHEN 'reranker' THEN {doc_count(docs['reranker_in'])} ELSE {doc_count(docs['retriever'])} END
               AS documents_returned,
           CASE kind WHEN 'reranker' THEN {doc_count(docs['reranker_out'])} END AS documents_kept,
           CAST(NULL AS BIGINT) AS documents_in_prompt,
           CAST(NULL AS VARCHAR) AS reranked_by,
           CAST(NULL AS DOUBLE[]) AS scores,
           CAST(NULL AS BIGINT) AS context_tokens,
           CAST(NULL AS VARCHAR) AS feature,
           CAST(NULL AS VARCHAR) AS tenant
    FROM picked
    ORDER BY start_time, trace_id, span_id
    """


def documents_sql(max_docs: int) -> str:
    """Scores (in document order) and metadata token counts of each retrieval's documents, for document
    indexes below max_docs: one parse of each span's JSON for all of them (constant paths)."""
    conv = conventions()["retrievals"]
    docs, fields = conv["documents"], conv["metadata_token_fields"]

    def values(spec, field: str) -> str:
        paths = ", ".join(sql_str(json_path(f"{spec['prefix']}{i}{spec[field]}")) for i in range(max_docs))
        return f"json_extract_string(s.attributes, [{paths}])"

    def per_kind(field: str) -> str:
        return (f"CASE r.kind WHEN 'reranker' THEN {values(docs['reranker_in'], field)} "
                f"ELSE {values(docs['retriever'], field)} END")

    # A metadata token count is a JSON number under one of the fields, first in priority order (as
    # int() would: truncated); metadata that is not a JSON object counts nothing.
    counts = [f"CASE WHEN json_type(m, {sql_str(json_path(f))}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
              f"THEN CAST(trunc(CAST(json_extract(m, {sql_str(json_path(f))}) AS DOUBLE)) AS BIGINT) END" for f in fields]
    token = f"CASE WHEN json_valid(m) AND json_type(m) = 'OBJECT' THEN coalesce({', '.join(counts)}) END"
    return f"""
    CREATE OR REPLACE TEMP TABLE _documents AS
    SELECT r.trace_id, r.span_id,
           list_transform(list_filter({per_kind('score')}, lambda v: v IS NOT NULL), lambda v: TRY_CAST(v AS DOUBLE)) AS scores,
           list_transform({per_kind('metadata')}, lambda m: {token}) AS metadata_tokens,
           contains(s.attributes, {sql_str(docs['retriever']['content'] + chr(34))}) AS has_content
    FROM retrievals r JOIN spans s USING (trace_id, span_id)
    """


# The chunks of a retrieval that reach the model's prompt: what it returned, or, when a re-ranker of
# the same request runs after it (the first one, reranked_by), what the re-ranker kept.
IN_PROMPT_SQL = """
UPDATE retrievals SET reranked_by = k.reranker,
       documents_in_prompt = coalesce(least(k.kept, retrievals.documents_returned), retrievals.documents_returned)
FROM (SELECT r.trace_id, r.span_id, arg_min(k.span_id, (k.start_time, k.span_id)) AS reranker,
             arg_min(k.documents_kept, (k.start_time, k.span_id)) AS kept
      FROM retrievals r LEFT JOIN retrievals k
        ON k.trace_id = r.trace_id AND k.kind = 'reranker' AND k.start_time >= r.start_time
       AND k.documents_kept IS NOT NULL
      WHERE r.kind = 'retriever'
      GROUP BY r.trace_id, r.span_id) k
WHERE k.trace_id = retrievals.trace_id AND k.span_id = retrievals.span_id
"""


def fill_documents(con) -> None:
    """Scores and context tokens of the retrievals' documents: counted from captured content (tiktoken,
    in Python, for the few spans that captured it), else from the documents' metadata (SQL)."""
    max_docs = con.execute("SELECT coalesce(max(documents_returned), 0) FROM retrievals").fetchone()[0]
    if not max_docs:
        return
    con.execute(documents_sql(int(max_docs)))
    con.execute("""
        UPDATE retrievals SET scores = d.scores,
               context_tokens = CASE WHEN list_count(d.metadata_tokens) > 0 THEN list_sum(d.metadata_tokens) END
        FROM _documents d WHERE d.trace_id = retrievals.trace_id AND d.span_id = retrievals.span_id""")
    content.fill_retrieval_tokens(con)  # spans with captured document content: counted, overriding metadata
    con.execute("DROP TABLE IF EXISTS _documents")


def derive(store: Store, settings: Settings) -> None:
    """Rebuild llm_calls, retrievals and requests from spans, in one transaction."""
    with store.transaction() as con:
        con.execute(llm_calls_sql())
        content.fill_from_content(con)
        con.execute(RETRIES_SQL)
        con.execute(retrievals_sql())
        con.execute(IN_PROMPT_SQL)
        fill_documents(con)
        con.execute(requests_sql(settings))
        for table in ("llm_calls", "retrievals"):
            con.execute(
                f"""UPDATE {table} SET feature = r.feature, tenant = r.tenant
                    FROM requests r WHERE r.trace_id = {table}.trace_id"""
            )
        _price(con, settings)
        version = con.execute("SELECT coalesce(max(file_id), 0) FROM ingest_log").fetchone()[0]
        con.execute("INSERT OR REPLACE INTO meta VALUES ('derived_from_file_id', ?)", [str(version)])


def _price(con, settings: Settings) -> None:
    """Prices are derived data too: every call priced from the catalog, the bill reconciled."""
    from llmaudit.pricing.catalog import load_catalog
    from llmaudit.pricing.cost import (
        create_cost_views,
        price_calls,
        reconcile,
        write_gpu_prices,
    )
    from llmaudit.store.report_views import create_report_views

    catalog = load_catalog(settings=settings)
    price_calls(con, catalog, accelerator=settings.accelerator)
    write_gpu_prices(con, catalog, accelerator=settings.accelerator)  # GPU-hour prices for the capacity rules' SQL
    if con.execute("SELECT count(*) FROM billing").fetchone()[0]:
        reconcile(con, catalog)
    create_cost_views(con)
    create_report_views(con)
    con.execute("INSERT OR REPLACE INTO meta VALUES ('prices_as_of', ?), ('prices_source', ?)",
                [str(catalog.as_of), f"{catalog.source}" + (f"; overridden by {catalog.override_path}" if catalog.override_path else "")])


def ensure_derived(store: Store, settings: Settings) -> None:
    """Derive again if files were ingested since the last derive (or it never completed)."""
    current = store.scalar("SELECT coalesce(max(file_id), 0) FROM ingest_log")
    done = store.scalar("SELECT value FROM meta WHERE key = 'derived_from_file_id'")
    if done is None or int(done) != current or not store.table_exists("llm_calls"):
        derive(store, settings)
