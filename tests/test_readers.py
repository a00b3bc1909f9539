"""Each trace format read into the same normalized rows, and each convention family into llm_calls."""

from __future__ import annotations

import base64
import gzip
import json

import otlp_factory as f

from llmaudit.ingest.registry import detect


def test_detection_by_content_not_name(tmp_path):
    otlp_line = json.dumps(f.request(f.simple_trace())).encode()
    assert detect(otlp_line + b"\n", "x.txt").name == "otlp-jsonl"
    assert detect(json.dumps(f.request(f.simple_trace()), indent=2).encode(), "x").name == "otlp-json"
    assert detect(b'{"data": [{"traceID": "ab", "spans": []}]}', "x").name == "jaeger-json"
    assert detect(b'[{"traceId": "ab", "id": "cd"}]', "x").name == "zipkin-json"
    assert detect(b'{"hello": 1}', "trace.json") is None


def test_otlp_snake_case_base64_ids_and_enum_names(tmp_path, store, ingest):
    tid = bytes(range(16))
    sid = bytes(range(8))
    doc = {
        "resource_spans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "snake"}}]},
            "scope_spans": [{"scope": {"name": "s"}, "spans": [{
                "trace_id": base64.b64encode(tid).decode(),
                "span_id": base64.b64encode(sid).decode(),
                "name": "chat llama",
                "kind": "SPAN_KIND_CLIENT",
                "start_time_unix_nano": 1762646400000000000,
                "end_time_unix_nano": "1762646401500000000",
                "attributes": [
                    {"key": "gen_ai.request.model", "value": {"string_value": "llama"}},
                    {"key": "gen_ai.usage.input_tokens", "value": {"int_value": 42}},
                    {"key": "flag", "value": {"bool_value": True}},
                    {"key": "ratio", "value": {"double_value": 0.5}},
                    {"key": "tags", "value": {"array_value": {"values": [{"string_value": "a"}, {"int_value": "2"}]}}},
                ],
                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            }]}],
        }]
    }
    path = tmp_path / "snake.json"
    path.write_text(json.dumps(doc, indent=1))
    report = ingest(path)
    assert report.files[0].format == "otlp-json"
    row = store.execute(
        """SELECT trace_id, span_id, kind, status_code, status_message, service, duration_ms,
                  attr(attributes, 'flag'), attr(attributes, 'ratio'), attr(attributes, 'tags')
           FROM spans"""
    ).fetchone()
    assert row == (tid.hex(), sid.hex(), "client", "error", "boom", "snake", 1500.0, "true", "0.5", '["a",2]')
    assert store.execute("SELECT model, input_tokens, is_error FROM llm_calls").fetchone() == ("llama", 42, True)


def jaeger_doc():
    return {
        "data": [{
            "traceID": "abc123",  # Jaeger drops leading zeros
            "spans": [
                {"traceID": "abc123", "spanID": "1", "operationName": "agent run", "references": [],
                 "startTime": 1762646400000000, "duration": 5_000_000,
                 "tags": [{"key": "openinference.span.kind", "type": "string", "value": "AGENT"},
                          {"key": "tenant.id", "type": "string", "value": "globex"}],
                 "processID": "p1"},
                {"traceID": "abc123", "spanID": "2", "operationName": "llm",
                 "references": [{"refType": "CHILD_OF", "traceID": "abc123", "spanID": "1"}],
                 "startTime": 1762646400100000, "duration": 900_000,
                 "tags": [{"key": "openinference.span.kind", "type": "string", "value": "LLM"},
                          {"key": "llm.model_name", "type": "string", "value": "claude-sonnet-4-5"},
                          {"key": "llm.provider", "type": "string", "value": "anthropic"},
                          {"key": "llm.token_count.prompt", "type": "int64", "value": 1200},
                          {"key": "llm.token_count.completion", "type": "int64", "value": 80},
                          {"key": "llm.token_count.prompt_details.cache_read", "type": "int64", "value": 1000},
                          {"key": "llm.invocation_parameters", "type": "string", "value": "{\"max_tokens\": 1024, \"temperature\": 0.1}"},
                          {"key": "span.kind", "type": "string", "value": "client"},
                          {"key": "otel.status_code", "type": "string", "value": "ERROR"}],
                 "logs": [{"timestamp": 1762646400200000, "fields": [{"key": "event", "type": "string", "value": "retry"}]}],
                 "processID": "p1"},
            ],
            "processes": {"p1": {"serviceName": "ops-agent", "tags": [{"key": "host.name", "type": "string", "value": "h1"}]}},
        }]
    }


def test_jaeger_with_openinference_attributes(tmp_path, store, ingest):
    path = tmp_path / "jaeger.json.gz"
    path.write_bytes(gzip.compress(json.dumps(jaeger_doc()).encode()))
    report = ingest(path)
    assert report.files[0].format == "jaeger-json"
    assert store.execute("SELECT span_id, parent_span_id, kind, status_code, service FROM spans ORDER BY span_id").fetchall() == [
        ("0000000000000001", None, "unspecified", "unset", "ops-agent"),
        ("0000000000000002", "0000000000000001", "client", "error", "ops-agent"),
    ]
    assert store.scalar("SELECT trace_id FROM spans LIMIT 1") == "abc123".rjust(32, "0")
    call = store.execute(
        """SELECT provider, model, operation, input_tokens, output_tokens, cached_input_tokens, max_tokens,
                  temperature, is_error, feature, tenant FROM llm_calls"""
    ).fetchone()
    # The feature falls back to the service (no route or workflow name); the tenant comes from the root.
    assert call == ("anthropic", "claude-sonnet-4-5", "chat", 1200, 80, 1000, 1024, 0.1, True, "ops-agent", "globex")
    assert json.loads(store.scalar("SELECT events FROM spans WHERE span_id = '0000000000000002'"))[0]["name"] == "retry"


def test_zipkin_with_openllmetry_attributes(tmp_path, store, ingest):
    spans = [
        {"traceId": "5" * 32, "id": "a" * 16, "name": "nightly-summaries.workflow", "timestamp": 1762650000000000,
         "duration": 60_000_000, "localEndpoint": {"serviceName": "batch-summarizer"},
         "tags": {"traceloop.span.kind": "workflow", "traceloop.workflow.name": "nightly-summaries"}},
        {"traceId": "5" * 32, "id": "b" * 16, "parentId": "a" * 16, "name": "vllm.completion", "kind": "CLIENT",
         "timestamp": 1762650001000000, "duration": 2_000_000, "localEndpoint": {"serviceName": "batch-summarizer"},
         "tags": {"llm.request.type": "completion", "gen_ai.system": "vLLM",
                  "gen_ai.request.model": "meta-llama/Llama-3.1-8B-Instruct",
                  "gen_ai.usage.prompt_tokens": "3100", "gen_ai.usage.completion_tokens": "250",
                  "gen_ai.request.max_tokens": "4096", "traceloop.workflow.name": "nightly-summaries"}},
        {"traceId": "5" * 32, "id": "c" * 16, "parentId": "a" * 16, "name": "bad", "timestamp": "yesterday"},
    ]
    path = tmp_path / "zipkin.json"
    path.write_text(json.dumps(spans))
    report = ingest(path)
    assert report.files[0].format == "zipkin-json"
    assert report.files[0].rejects == 1
    assert store.scalar("SELECT reason FROM rejects") == "timestamp must be an integer of microseconds"
    call = store.execute(
        "SELECT provider, model, operation, input_tokens, output_tokens, max_tokens, self_hosted, feature FROM llm_calls"
    ).fetchone()
    assert call == ("vllm", "meta-llama/Llama-3.1-8B-Instruct", "text_completion", 3100, 250, 4096, True, "nightly-summaries")


def test_old_genai_names_and_token_estimation_from_content(tmp_path, store, ingest):
    tid = f.new_trace_id()
    root = f.new_span_id()
    prompt = "Summarise the incident report in two sentences."
    completion = "The database failed over. Service recovered in four minutes."
    spans = [
        f.span(tid, root, None, "POST /draft", 2, attrs={"http.route": "/draft"}),
        f.span(tid, f.new_span_id(), root, "openai.chat", 3, attrs={
            "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": prompt,
            "gen_ai.completion.0.content": completion, "gen_ai.completion.0.finish_reason": "stop",
        }),
        f.span(tid, f.new_span_id(), root, "openai.chat", 3, attrs={
            "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 11, "gen_ai.usage.completion_tokens": 7,
            "gen_ai.prompt.0.content": prompt,
        }),
    ]
    path = tmp_path / "old.jsonl"
    f.write_jsonl(path, [f.request(spans, service="email-drafter")])
    ingest(path)
    from llmaudit.normalize.content import encoding

    enc = encoding()
    rows = store.execute(
        "SELECT input_tokens, output_tokens, tokens_estimated, finish_reason, input_hash FROM llm_calls ORDER BY tokens_estimated"
    ).fetchall()
    assert rows[0][:3] == (11, 7, False)
    assert rows[1][:4] == (len(enc.encode_ordinary(prompt)), len(enc.encode_ordinary(completion)), True, "stop")
    # Same captured input, same hash, whatever else differs.
    assert rows[0][4] == rows[1][4] and rows[0][4] is not None


def test_retries_from_resend_count_and_failed_siblings(tmp_path, store, ingest):
    tid = f.new_trace_id()
    root = f.new_span_id()
    spans = [
        f.span(tid, root, None, "POST /chat", 2),
        f.llm_span(tid, root, input_tokens=500, start_ns=f.T0 + 1_000_000, error=True),
        f.llm_span(tid, root, input_tokens=500, start_ns=f.T0 + 2_000_000, error=True),
        f.llm_span(tid, root, input_tokens=500, start_ns=f.T0 + 3_000_000),
        f.llm_span(tid, root, input_tokens=700, start_ns=f.T0 + 4_000_000, **{"http.request.resend_count": 1}),
        f.llm_span(tid, root, input_tokens=900, start_ns=f.T0 + 5_000_000),
    ]
    path = tmp_path / "retries.jsonl"
    f.write_jsonl(path, [f.request(spans)])
    ingest(path)
    rows = store.execute("SELECT input_tokens, is_error, attempt, is_retry, retry_evidence FROM llm_calls ORDER BY start_time").fetchall()
    assert rows == [
        (500, True, 0, False, None),
        (500, True, 1, True, "failed_sibling"),
        (500, False, 2, True, "failed_sibling"),
        (700, False, 1, True, "resend_count"),
        (900, False, 0, False, None),
    ]
    assert store.execute("SELECT retry_calls, failed_calls, llm_calls FROM requests").fetchone() == (3, 2, 5)
