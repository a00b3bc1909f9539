"""Langfuse and Arize Phoenix exports read as first-class trace inputs: tokens (cached and cache-write
included) and models exactly as the export says, the observation tree kept, bad records rejected by line.

The fixtures in tests/fixtures/observability are modelled on real exports: Langfuse's framework traces
(langfuse/langfuse packages/shared/scripts/seeder/utils/framework-traces) and Phoenix's span JSON
(its REST API's Span schema and the spans its tests use)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from llmaudit.config import Settings
from llmaudit.ingest.registry import detect
from llmaudit.ingest.traces.exported import export_id
from llmaudit.ingest.traces.langfuse import usage_attributes
from llmaudit.normalize.derive import conventions

FIXTURES = Path(__file__).parent / "fixtures" / "observability"
LANGFUSE_TRACE = FIXTURES / "langfuse_trace.json"
LANGFUSE_API_TRACE = FIXTURES / "langfuse_api_trace.json"
LANGFUSE_ROWS = FIXTURES / "langfuse_observations.jsonl"
PHOENIX_JSONL = FIXTURES / "phoenix_spans.jsonl"

CALL_COLUMNS = """span_name, model, provider, operation, call_kind, input_tokens, output_tokens, cached_input_tokens,
                  cache_creation_tokens, tokens_estimated, max_tokens, temperature, is_error, error_type"""


def calls(store):
    return store.execute(f"SELECT {CALL_COLUMNS} FROM llm_calls ORDER BY start_time, span_id").fetchall()


def attr(store, span_name: str, key: str):
    return store.scalar("SELECT attr(attributes, ?) FROM spans WHERE name = ?", [key, span_name])


# --------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------

def test_each_export_is_detected_and_no_other_format_is_taken(tmp_path):
    for path, name in [(LANGFUSE_TRACE, "langfuse-json"), (LANGFUSE_API_TRACE, "langfuse-json"),
                       (LANGFUSE_ROWS, "langfuse-json"), (PHOENIX_JSONL, "phoenix-json")]:
        assert detect(path.read_bytes()[:65536], "export").name == name, path
    # A list of Langfuse observations has traceIds, as Zipkin spans do: it is still Langfuse's ...
    assert detect(b'[{"id": "ab", "traceId": "cd", "parentObservationId": null}]', "x").name == "langfuse-json"
    assert detect(b'{"data": [{"name": "llm", "context": {"trace_id": "a", "span_id": "b"}, "span_kind": "LLM"}]}',
                  "x").name == "phoenix-json"
    # ... and the formats before them keep their files.
    assert detect(b'[{"traceId": "ab", "id": "cd", "localEndpoint": {"serviceName": "s"}}]', "x").name == "zipkin-json"
    assert detect(b'{"data": [{"traceID": "ab", "spans": []}]}', "x").name == "jaeger-json"
    assert detect(b"BilledCost,ChargePeriodStart,context.span_id\n", "x.csv").name == "focus-csv"
    assert detect(b"context.span_id,name,span_kind,context.trace_id\n", "spans.csv").name == "phoenix-csv"
    assert detect(b"trace_id,span_id,name\n", "spans.csv") is None


# --------------------------------------------------------------------------------------------------
# Langfuse
# --------------------------------------------------------------------------------------------------

def test_langfuse_trace_export_gives_exact_tokens_models_and_the_tree(store, ingest):
    report = ingest(LANGFUSE_TRACE, settings=Settings(feature_keys=["langfuse.trace.name"], tenant_keys=["langfuse.user.id"]))
    assert (report.files[0].format, report.files[0].stored, report.files[0].rejects) == ("langfuse-json", 10, 0)
    export = json.loads(LANGFUSE_TRACE.read_text())

    # Every observation under its parent, the root's own id ("req-1", not hex) hashed and kept.
    by_id = {o["id"]: o for o in export["observations"]}
    tree = dict(store.execute("""SELECT s.name, p.name FROM spans s LEFT JOIN spans p
                                 ON p.trace_id = s.trace_id AND p.span_id = s.parent_span_id""").fetchall())
    assert tree == {o["name"]: by_id[o["parentObservationId"]]["name"] if o["parentObservationId"] else None
                    for o in export["observations"]}
    assert store.scalar("SELECT span_id FROM spans WHERE name = 'handle-request'") == export_id("req-1", 16, "id")
    assert attr(store, "handle-request", "langfuse.observation.id") == "req-1"
    assert store.scalar("SELECT DISTINCT trace_id FROM spans") == "7c1e5b0a9f4d4e2b8a6c3d2e1f0a9b8c"

    assert calls(store) == [
        # name, model, provider, operation, kind, input, output, cached, cache write, estimated, max_tokens, temp, error
        ("embed-query", "text-embedding-3-small", None, "embeddings", "embedding", 12, 0, 0, 0, False, None, None, False, None),
        # Older export: the cache read is inside `input`; reasoning inside `output`.
        ("plan", "gpt-4o", None, "chat", "planning", 1500, 90, 1024, 0, False, 256, 0.0, False, None),
        # Newer export: parts are disjoint, input = uncached + cached, output = output + reasoning.
        ("think", "gpt-5-mini", None, "chat", "planning", 500, 350, 100, 0, False, None, None, False, None),
        ("retry-answer", "gpt-4o", None, "chat", "planning", None, None, 0, 0, False, None, None, True, "429 rate limited"),
        # Langfuse's model and usage win over the instrumentation's own attributes in the metadata
        # (a dated model name; Anthropic's input count without the cached tokens).
        ("answer", "claude-sonnet-4-5", "anthropic", "chat", "main", 3620, 210, 3000, 500, False, 1024, 0.2, False, None),
    ]
    # The same numbers Langfuse shows as each observation's input and output usage.
    for name, inp, out in store.execute("SELECT span_name, input_tokens, output_tokens FROM llm_calls WHERE input_tokens IS NOT NULL").fetchall():
        o = next(o for o in export["observations"] if o["name"] == name)
        assert (inp, out) == (o["inputUsage"], o["outputUsage"]), name

    # Langfuse's own cost is kept for reconciliation with the catalog price.
    answer = next(o for o in export["observations"] if o["name"] == "answer")
    assert json.loads(attr(store, "answer", "langfuse.observation.cost_details")) == answer["costDetails"]
    assert json.loads(attr(store, "answer", "langfuse.observation.usage_details")) == answer["usageDetails"]
    assert store.scalar("SELECT round(cost_usd, 6) FROM llm_calls WHERE span_name = 'answer'") > 0

    # The OpenTelemetry span the observation came from: its resource, scope and attributes restored.
    assert store.execute("""SELECT s.service, s.scope_name, r.attributes FROM spans s JOIN resources r USING (resource_id)
                            WHERE s.name = 'answer'""").fetchone() == (
        "support-bot", "opentelemetry.instrumentation.anthropic", '{"service.name":"support-bot","telemetry.sdk.language":"python"}')
    assert attr(store, "answer", "gen_ai.request.model") == "claude-sonnet-4-5-20250929"
    # Langfuse's types are OpenInference's span kinds (a tool step is visible to the loop rule) ...
    assert [attr(store, "lookup_order", k) for k in ("openinference.span.kind", "tool.name", "input.value")] == [
        "TOOL", "lookup_order", '{"order_id":7}']
    assert attr(store, "planner", "openinference.span.kind") == "AGENT"
    assert attr(store, "guardrail-passed", "openinference.span.kind") is None  # an EVENT has no such kind
    # ... and the trace's fields are on each observation: feature, tenant and conversation from them.
    assert store.execute("SELECT DISTINCT conversation_id FROM llm_calls").fetchall() == [("sess-9",)]
    assert attr(store, "plan", "langfuse.trace.metadata.feature") == "support"
    assert store.execute("SELECT root_name, feature, tenant, spans, orphan_spans, llm_calls, retrievals FROM requests").fetchall() == [
        ("handle-request", "support-chat", "user-42", 10, 0, 5, 1)]
    assert store.scalar("SELECT status_message FROM spans WHERE name = 'retry-answer'") == "429 rate limited"


def test_langfuse_api_trace_with_uuids_and_the_older_usage_fields(store, ingest):
    report = ingest(LANGFUSE_API_TRACE)
    assert (report.files[0].format, report.files[0].records, report.files[0].stored) == ("langfuse-json", 5, 5)
    trace_id = "b3b7b12856644f429fab31999da9e2f1"  # the UUID without its dashes
    assert store.scalar("SELECT DISTINCT trace_id FROM spans") == trace_id
    # The SDK hung its three steps off the trace: the trace is their root, none is an orphan.
    assert store.execute("SELECT root_name, spans, orphan_spans, llm_calls FROM requests").fetchone() == ("run_math_tutor", 5, 0, 1)
    assert store.execute("""SELECT s.name FROM spans s JOIN spans p ON p.span_id = s.parent_span_id
                            WHERE p.name = 'run_math_tutor' ORDER BY s.start_time""").fetchall() == [
        ("create_assistant",), ("run_assistant",), ("get_response",)]
    call = store.execute("SELECT c.model, c.input_tokens, c.output_tokens, c.duration_ms, p.name FROM llm_calls c "
                         "JOIN spans p ON p.span_id = c.parent_span_id").fetchone()
    assert call == ("gpt-4", 49, 40, 0.0, "get_response")  # no endTime: no duration
    cost = store.scalar("SELECT attr(attributes, 'langfuse.observation.cost_details') FROM spans WHERE name = ''")
    assert json.loads(cost) == {"input": 0.00147, "output": 0.0024, "total": 0.00387}

    # The same trace again, written differently: nothing is stored twice (the trace's span included).
    again = Path(store.path).parent / "again.json"
    again.write_text(json.dumps(json.loads(LANGFUSE_API_TRACE.read_text())))
    report = ingest(again)
    assert (report.files[0].stored, report.files[0].duplicates) == (0, 5)


def test_langfuse_batch_export_lines_rejects_name_the_line(store, ingest):
    report = ingest(LANGFUSE_ROWS, settings=Settings(feature_keys=["langfuse.trace.name"], tenant_keys=["langfuse.user.id"]))
    result = report.files[0]
    assert (result.format, result.records, result.stored, result.rejects) == ("langfuse-json", 4, 2, 2)
    rejects = store.execute("SELECT path, line, reason FROM rejects ORDER BY line").fetchall()
    assert [(Path(f).name, line) for f, line, _ in rejects] == [("langfuse_observations.jsonl", 2), ("langfuse_observations.jsonl", 3)]
    assert rejects[0][2].startswith("invalid JSON")
    assert rejects[1][2] == "startTime is not an ISO 8601 time: 'yesterday'"
    assert store.scalar("SELECT record FROM rejects WHERE line = 3") == "(id 'e5ab0c9d8e7f6a5b')"
    assert calls(store) == [("summarize", "claude-3-5-haiku-20241022", None, "chat", "summarization", 1000, 64, 200, 0, False,
                             400, None, False, None)]
    assert store.execute("SELECT root_name, feature, tenant FROM requests").fetchall() == [("digest", "nightly-digest", "svc-digest")]


def test_langfuse_vercel_wrapper_generation_is_not_a_second_call(tmp_path, store, ingest):
    # Langfuse makes both the Vercel AI SDK's ai.generateText wrapper and its doGenerate provider call
    # GENERATIONs; the wrapper's usage repeats the provider call's, so only the provider call is a call.
    trace = "df41e597d0a85e0d7a6ae8ebfaa70aa0"

    def generation(oid, name, parent, usage):
        return {"id": oid, "traceId": trace, "type": "GENERATION", "name": name, "parentObservationId": parent,
                "startTime": "2025-11-17T10:00:00.000Z", "endTime": "2025-11-17T10:00:02.000Z", "model": "gpt-5",
                "usageDetails": usage, "metadata": {"attributes": {"ai.operationId": name, "ai.model.id": "gpt-5"}}}

    path = tmp_path / "vercel.json"
    path.write_text(json.dumps({"trace": {"id": trace, "projectId": "p", "name": "ai.generateText"}, "observations": [
        generation("1dc6768109615657", "ai.generateText", None, {"input": 62, "output": 85, "total": 147}),
        generation("91a17a2274bfd23f", "ai.generateText.doGenerate", "1dc6768109615657", {"input": 62, "output": 85, "total": 147}),
    ]}))
    ingest(path)
    assert store.execute("SELECT span_name, input_tokens, output_tokens FROM llm_calls").fetchall() == [
        ("ai.generateText.doGenerate", 62, 85)]
    assert store.scalar("SELECT count(*) FROM spans") == 2


def test_langfuse_usage_table_in_conventions():
    conf = conventions()["langfuse"]["usage"]

    def tokens(**obs):
        out = usage_attributes(obs, conf)
        return tuple(out.get(f"gen_ai.usage.{k}") for k in
                     ("input_tokens", "output_tokens", "cache_read.input_tokens", "cache_creation.input_tokens"))

    assert tokens(usageDetails={"input": 7, "cache_read_input_tokens": 16399, "cache_creation_input_tokens": 2089,
                                "output": 445, "total": 18940}) == (18495, 445, 16399, 2089)
    assert tokens(usageDetails={"input": 10, "input_cache_creation": 4, "input_cache_creation_5m": 3,
                                "input_cache_creation_1h": 1, "output": 2}) == (18, 2, 0, 8)
    assert tokens(usageDetails={"input": 100, "prompt_details.cache_read": 60, "output": 9}) == (100, 9, 60, 0)
    assert tokens(usageDetails={"input": 1988, "total": 1988}) == (1988, 0, 0, 0)  # output not named: zero
    assert tokens(usageDetails={}) == (None, None, None, None)  # nothing recorded: unknown
    assert tokens(usageDetails={"total": 1215}) == (None, None, None, None)
    assert tokens(usage={"input": 5, "output": 6, "unit": "TOKENS"}) == (5, 6, None, None)
    assert tokens(usage={"input": 500, "output": 0, "unit": "CHARACTERS"}) == (None, None, None, None)
    assert tokens(inputUsage=1200, outputUsage=15, totalUsage=1215) == (1200, 15, None, None)


def test_an_export_with_nothing_readable_is_an_input_error(tmp_path):
    # The public API's trace list names observations by id only: nothing to read, and it says so.
    path = tmp_path / "trace_list.json"
    path.write_text(json.dumps({"trace": {"id": "t-1", "projectId": "p"}, "observations": ["obs-1", "obs-2"]}))
    res = subprocess.run([sys.executable, "-m", "llmaudit", "analyze", str(path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert "trace_list.json" in out
    assert "observation is not an object (an id: export the trace with its observations)" in out


# --------------------------------------------------------------------------------------------------
# Phoenix
# --------------------------------------------------------------------------------------------------

PHOENIX_CALLS = [
    ("embed-query", "text-embedding-3-small", None, "embeddings", "embedding", 9, None, 0, 0, False, None, None, False, None),
    ("ChatAnthropic", "claude-sonnet-4-5", "anthropic", "chat", "main", 5000, 300, 4000, 600, False, 800, 0.0, False, None),
    ("ChatOpenAI", "gpt-4o-mini", "openai", "chat", "main", 1200, 0, 0, 0, False, None, None, True,
     "Error code: 429 - rate limit exceeded"),
]


def phoenix_reading(store):
    return (calls(store),
            store.execute("SELECT span_name, kind, documents_returned, scores FROM retrievals").fetchall(),
            store.execute("SELECT name, parent_span_id, attr(attributes, 'openinference.span.kind'), status_code "
                          "FROM spans ORDER BY start_time").fetchall(),
            store.scalar("SELECT events FROM spans WHERE name = 'ChatOpenAI'"))


def test_phoenix_jsonl_download(store, ingest):
    report = ingest(PHOENIX_JSONL)
    result = report.files[0]
    assert (result.format, result.records, result.stored, result.rejects) == ("phoenix-json", 7, 6, 1)
    assert store.execute("SELECT line, record, reason FROM rejects").fetchall() == [(6, None, "context.span_id is missing")]
    found, retrievals, spans, events = phoenix_reading(store)
    assert found == PHOENIX_CALLS
    assert retrievals == [("kb-search", "retriever", 3, [0.82, 0.74, 0.41])]
    # Phoenix moves the span kind out of the attributes; it is back where the conventions read it.
    assert [(name, kind, status) for name, _, kind, status in spans] == [
        ("support-agent", "AGENT", "ok"), ("kb-search", "RETRIEVER", "ok"), ("embed-query", "EMBEDDING", "ok"),
        ("ChatAnthropic", "LLM", "ok"), ("lookup_order", "TOOL", "ok"), ("ChatOpenAI", "LLM", "error")]
    assert json.loads(events) == [{"name": "exception", "time_ns": 1762957804290000000,
                                   "attributes": {"exception.type": "openai.RateLimitError",
                                                  "exception.message": "rate limit exceeded"}}]
    assert store.scalar("SELECT count(*) FROM spans WHERE parent_span_id = '00f067aa0ba902b7'") == 4


def _good_spans() -> list[dict]:
    spans = [json.loads(line) for line in PHOENIX_JSONL.read_text().splitlines()]
    return [s for s in spans if "span_id" in s["context"]]


def _nest(flat: dict) -> dict:
    """Attributes nested as Phoenix keeps them in its database ({"llm": {"token_count": {...}}})."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def test_phoenix_rest_page_and_nested_attributes_read_the_same(tmp_path, store, ingest):
    ingest(PHOENIX_JSONL)
    expected = phoenix_reading(store)
    from llmaudit.store import Store

    page = tmp_path / "page.json"
    page.write_text(json.dumps({"data": _good_spans(), "next_cursor": None}, indent=2))
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps([{**s, "attributes": _nest(s["attributes"])} for s in _good_spans()]))
    for path in (page, nested):
        other = Store(tmp_path / f"{path.stem}.duckdb")
        try:
            from llmaudit.ingest.pipeline import Ingestor
            from llmaudit.ingest.sources import expand_paths
            from llmaudit.normalize.derive import derive

            report = Ingestor(other, workers=1).run(expand_paths([str(path)]))
            derive(other, Settings())
            assert (report.files[0].format, report.files[0].stored, report.files[0].rejects) == ("phoenix-json", 6, 0)
            assert phoenix_reading(other) == expected, path.name
        finally:
            other.close()


# A Phoenix spans data frame (get_spans_dataframe()): attributes as `attributes.` columns, with the indexed
# OpenInference attributes grouped into lists of objects, as Phoenix's query layer builds them.
_LISTS = re.compile(r"^(llm\.input_messages|llm\.output_messages|retrieval\.documents|embedding\.embeddings)\.(\d+)\.(.+)$")


def frame_rows() -> list[dict]:
    spans = _good_spans()
    rows = []
    for s in spans:
        row = {"name": s["name"], "span_kind": s["span_kind"], "parent_id": s["parent_id"],
               "start_time": datetime.fromisoformat(s["start_time"]), "end_time": datetime.fromisoformat(s["end_time"]),
               "status_code": s["status_code"], "status_message": s["status_message"], "events": s["events"] or None,
               "context.span_id": s["context"]["span_id"], "context.trace_id": s["context"]["trace_id"],
               "attributes.openinference.span.kind": s["span_kind"]}
        for key, value in s["attributes"].items():
            m = _LISTS.match(key)
            if m:
                items = row.setdefault(f"attributes.{m.group(1)}", [])
                while len(items) <= int(m.group(2)):
                    items.append({})
                items[int(m.group(2))][m.group(3)] = value
            else:
                row[f"attributes.{key}"] = float(value) if key.startswith("llm.token_count") else value
        rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return [{c: r.get(c) for c in columns} for r in rows]


def test_phoenix_spans_dataframe_as_parquet(tmp_path, store, ingest):
    path = tmp_path / "spans.parquet"
    table = pa.Table.from_pylist(frame_rows())
    assert pa.types.is_list(table.schema.field("attributes.llm.input_messages").type)  # list<struct<...>>, as pandas writes
    pq.write_table(table, path)
    report = ingest(path)
    assert (report.files[0].format, report.files[0].stored, report.files[0].rejects) == ("phoenix-parquet", 6, 0)
    found, retrievals, spans, events = phoenix_reading(store)
    assert found == PHOENIX_CALLS
    assert retrievals == [("kb-search", "retriever", 3, [0.82, 0.74, 0.41])]
    assert json.loads(events)[0]["attributes"]["exception.type"] == "openai.RateLimitError"
    assert attr(store, "ChatAnthropic", "llm.input_messages.1.message.content") == "Where is my order?"


def _cell(value) -> str:
    """A cell as pandas' to_csv writes it: empty for missing, repr of lists and dicts, str of the rest."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return repr(value)
    return str(value)


def test_phoenix_spans_dataframe_as_csv(tmp_path, store, ingest):
    rows = frame_rows()
    path = tmp_path / "spans.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        header = list(rows[0])
        writer.writerow(["context.span_id", *header])  # the frame's index (the span id) is written too
        for r in rows:
            writer.writerow([r["context.span_id"], *(_cell(r[c]) for c in header)])
    assert "'message.role': 'system'" in path.read_text()
    report = ingest(path)
    assert (report.files[0].format, report.files[0].stored, report.files[0].rejects) == ("phoenix-csv", 6, 0)
    found, retrievals, spans, events = phoenix_reading(store)
    assert found == PHOENIX_CALLS
    assert retrievals == [("kb-search", "retriever", 3, [0.82, 0.74, 0.41])]
    assert store.scalar("SELECT max_tokens FROM llm_calls WHERE span_name = 'ChatAnthropic'") == 800


def test_phoenix_csv_bad_row_is_rejected_by_line(tmp_path, store, ingest):
    path = tmp_path / "spans.csv"
    path.write_text("context.span_id,context.trace_id,name,span_kind,start_time,end_time,attributes.llm.token_count.prompt\n"
                    f"00f067aa0ba902b7,{'a' * 32},ok,LLM,2025-11-12 14:30:00+00:00,2025-11-12 14:30:01+00:00,10.0\n"
                    f"1a2b3c4d5e6f7a8b,{'a' * 32},late,LLM,soon,2025-11-12 14:30:01+00:00,5.0\n")
    report = ingest(path)
    assert (report.files[0].stored, report.files[0].rejects) == (1, 1)
    assert store.execute("SELECT line, reason FROM rejects").fetchall() == [(3, "start_time is not an ISO 8601 time: 'soon'")]
    assert store.execute("SELECT span_name, input_tokens FROM llm_calls").fetchall() == [("ok", 10)]


# --------------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------------

def test_analyze_reads_the_exports_end_to_end(tmp_path):
    pq.write_table(pa.Table.from_pylist(frame_rows()), tmp_path / "phoenix_spans.parquet")
    res = subprocess.run([sys.executable, "-m", "llmaudit", "analyze", str(FIXTURES), str(tmp_path / "phoenix_spans.parquet"),
                          "--db", str(tmp_path / "audit.duckdb")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "ingested (langfuse-json)" in out and "ingested (phoenix-json)" in out and "ingested (phoenix-parquet)" in out
    # 10 + 5 + 2 Langfuse spans, 6 Phoenix spans (twice: the JSON lines and the same spans as a data frame).
    assert "Spans        23 in 4 traces (0 orphan spans)" in out
    assert "LLM calls    10" in out
    assert re.search(r"Requests\s+4\s+LLM calls 10\s", out), out
