"""Zipkin, Jaeger and Vercel AI SDK spans as real exports write them: shared client/server span ids, spans
without a timestamp, single-object files, the Jaeger v3 API and anonymizer, AI SDK provider and embedding
spans. Every fixture here is written by hand to reproduce one quirk of a real file."""

from __future__ import annotations

import json

import otlp_factory as f

from llmaudit.ingest.registry import detect
from llmaudit.ingest.traces.spans import SHARED_ID_ATTRIBUTE, shared_client_id
from llmaudit.pricing.catalog import load_catalog

TRACE = "ef86c83c0a05a6d6"          # a 64-bit Zipkin trace id
T = 1_531_282_088_533_035           # µs


def spans_by_name(store):
    rows = store.execute("""SELECT name, span_id, parent_span_id, kind, epoch_us(start_time), duration_ms, service,
                                   attr(attributes, 'llmaudit.shared_span_id')
                            FROM spans ORDER BY name""").fetchall()
    return {r[0]: r[1:] for r in rows}


# --------------------------------------------------------------------------------------------- Zipkin

def zipkin_rpc():
    """A gateway calls the content service: client and server half share id c...c; the server's children
    point to the shared id; one child has no timestamp (legal), one span has no time and no parent here."""
    ep = lambda name: {"serviceName": name, "ipv4": "10.0.0.1"}  # noqa: E731
    return [
        {"traceId": TRACE, "id": TRACE, "kind": "SERVER", "name": "get /home", "timestamp": T, "duration": 40_000,
         "localEndpoint": ep("gateway")},
        {"traceId": TRACE, "parentId": TRACE, "id": "c" * 16, "kind": "CLIENT", "name": "get", "timestamp": T + 1_000,
         "duration": 20_000, "localEndpoint": ep("gateway"), "tags": {"http.path": "/content"}},
        {"traceId": TRACE, "parentId": TRACE, "id": "c" * 16, "kind": "SERVER", "name": "get /content",
         "timestamp": T + 2_000, "duration": 16_000, "localEndpoint": ep("content"), "shared": True},
        {"traceId": TRACE, "parentId": "c" * 16, "id": "d" * 16, "name": "hystrix", "timestamp": T + 3_000,
         "duration": 800, "localEndpoint": ep("content")},
        {"traceId": TRACE, "parentId": "c" * 16, "id": "e" * 16, "name": "late-annotations", "duration": 500,
         "localEndpoint": ep("content"), "annotations": [{"timestamp": T + 5_000, "value": "ws"}]},
        {"traceId": TRACE, "parentId": "f" * 16, "id": "a" * 16, "name": "lost", "localEndpoint": ep("content")},
    ]


def test_zipkin_shared_span_halves_are_both_stored_and_linked(tmp_path, store, ingest):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(zipkin_rpc(), indent=2))
    report = ingest(path)
    file = report.files[0]
    assert (file.format, file.records, file.stored, file.duplicates, file.rejects) == ("zipkin-json", 6, 6, 0, 0)
    tid = TRACE.rjust(32, "0")
    client_id = shared_client_id(tid, "c" * 16)
    assert client_id not in ("c" * 16, TRACE) and len(client_id) == 16
    got = spans_by_name(store)
    # The client half: a derived id, the gateway as parent, the shared id kept in an attribute.
    assert got["get"] == (client_id, TRACE, "client", T + 1_000, 20.0, "gateway", "c" * 16)
    # The server half keeps the id (its children point to it) and has the client half as parent.
    assert got["get /content"] == ("c" * 16, client_id, "server", T + 2_000, 16.0, "content", None)
    assert got["hystrix"][1] == "c" * 16
    # No timestamp: the parent's start, and the end from the duration; none at all without an ancestor here.
    assert got["late-annotations"][:5] == ("e" * 16, "c" * 16, "unspecified", T + 2_000, 0.5)
    assert got["lost"][3:5] == (None, None)
    # One request, rooted at the gateway's server span, no orphan but the span whose parent is elsewhere.
    assert store.execute("SELECT root_span_id, spans, orphan_spans FROM requests").fetchall() == [(TRACE, 6, 1)]


def test_zipkin_shared_spans_reingested_add_nothing(tmp_path, store, ingest):
    spans = zipkin_rpc()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "trace.json").write_text(json.dumps(spans))
    (tmp_path / "b" / "reversed.json").write_text(json.dumps(spans[::-1]))  # other bytes, same spans
    first = ingest(tmp_path / "a" / "trace.json").files[0]
    again = ingest(tmp_path / "a" / "trace.json").files[0]
    other = ingest(tmp_path / "b" / "reversed.json").files[0]
    assert first.stored == 6 and again.status == "already ingested"
    assert (other.stored, other.duplicates) == (0, 6)
    assert store.scalar("SELECT count(*) FROM spans") == 6


def test_zipkin_single_span_object_and_trace_lists(tmp_path, store, ingest):
    one = {"traceId": "4d1e00c0db9010db86154a4ba6e91385", "parentId": "86154a4ba6e91385", "id": "4d1e00c0db9010db",
           "kind": "CLIENT", "name": "get", "timestamp": 1472470996199000, "duration": 207000,
           "localEndpoint": {"serviceName": "frontend"}, "remoteEndpoint": {"serviceName": "backend", "port": 9000},
           "tags": {"http.path": "/api"}}
    single = tmp_path / "client.json"
    single.write_text(json.dumps(one, indent=2))
    assert detect(single.read_bytes(), single.name).name == "zipkin-json"
    # GET /api/v2/traces: a list of traces, each a list of spans.
    traces = [[dict(one, traceId=f"{i:032x}", id=f"{i:016x}", parentId=None) for i in (1, 2)],
              [dict(one, traceId=f"{3:032x}", id=f"{3:016x}", timestamp="soon")]]
    nested = tmp_path / "traces.json"
    nested.write_text(json.dumps(traces))
    report = ingest(single, nested)
    assert [(x.format, x.stored, x.rejects) for x in report.files] == [("zipkin-json", 1, 0), ("zipkin-json", 2, 1)]
    assert store.execute("SELECT record, reason FROM rejects").fetchall() == [
        ("[1][0]", "timestamp must be an integer of microseconds")]
    assert store.execute("SELECT service, kind, duration_ms, attr(attributes, 'http.path') FROM spans "
                         "WHERE span_id = '4d1e00c0db9010db'").fetchone() == ("frontend", "client", 207.0, "/api")


def test_a_json_object_with_trace_ids_is_not_taken_for_a_zipkin_span():
    langfuse_like = {"trace": {"id": "t1"}, "observations": [{"id": "o1", "traceId": "t1", "type": "GENERATION"}]}
    fmt = detect(json.dumps(langfuse_like).encode(), "export.json")
    assert fmt is None or fmt.name != "zipkin-json"


# --------------------------------------------------------------------------------------------- Jaeger

def jaeger_trace():
    """One trace object as the UI downloads it (no {"data": [...]} wrapper)."""
    tag = lambda k, v, t="string": {"key": k, "type": t, "value": v}  # noqa: E731
    return {
        "traceID": "1",
        "spans": [
            {"traceID": "1", "spanID": "2", "operationName": "agent", "references": [], "startTime": 1485467191639875,
             "duration": 900, "tags": [], "processID": "p1"},
            # The first CHILD_OF points into another trace: Jaeger takes the first one into this trace.
            {"traceID": "1", "spanID": "4", "operationName": "chat", "startTime": 1485467191639900, "duration": 500,
             "references": [{"refType": "CHILD_OF", "traceID": "ff", "spanID": "ff"},
                            {"refType": "CHILD_OF", "traceID": "1", "spanID": "2"}],
             "tags": [tag("gen_ai.request.model", "gpt-4o"), tag("gen_ai.usage.input_tokens", 30, "int64"),
                      tag("gen_ai.usage.output_tokens", 7, "int64"), tag("error", True, "bool")],
             "processID": "p2"},
            # Only a FOLLOWS_FROM reference: it is the parent.
            {"traceID": "1", "spanID": "5", "operationName": "after", "startTime": 1485467191640000, "duration": 4,
             "references": [{"refType": "FOLLOWS_FROM", "traceID": "1", "spanID": "4"}], "tags": [], "processID": "p2"},
        ],
        "processes": {"p1": {"serviceName": "agent-svc", "tags": []},
                      "p2": {"serviceName": "llm-gw", "tags": [tag("host.name", "h2")]}},
        "warnings": None,
    }


def test_jaeger_single_trace_object(tmp_path, store, ingest):
    path = tmp_path / "trace-1.json"
    path.write_text(json.dumps(jaeger_trace(), indent=2))
    file = ingest(path).files[0]
    assert (file.format, file.stored, file.rejects) == ("jaeger-json", 3, 0)
    assert store.execute("SELECT span_id, parent_span_id, service, status_code FROM spans ORDER BY span_id").fetchall() == [
        ("0000000000000002", None, "agent-svc", "unset"),
        ("0000000000000004", "0000000000000002", "llm-gw", "error"),
        ("0000000000000005", "0000000000000004", "llm-gw", "unset")]
    assert store.execute("SELECT model, input_tokens, output_tokens, is_error FROM llm_calls").fetchall() == [
        ("gpt-4o", 30, 7, True)]


def test_jaeger_anonymizer_output(tmp_path, store, ingest):
    """jaeger-anonymizer writes a JSON list of UI spans, one per line, each with its process inline."""
    def span(sid, parent, service, kind, extra=()):
        return {"traceID": "2be38093ead7a083", "spanID": sid, "flags": 1, "operationName": f"op-{sid}",
                "references": [{"refType": "CHILD_OF", "traceID": "2be38093ead7a083", "spanID": parent}] if parent else [],
                "startTime": 1605223981761425, "duration": 267037,
                "tags": [{"key": "span.kind", "type": "string", "value": kind}, *extra], "logs": [],
                "process": {"serviceName": service, "tags": []}, "warnings": None}
    spans = [span("7606ddfe69932d34", None, "16af988c443cff37", "server"),
             span("7bd66f09ba90ea3d", "7606ddfe69932d34", "3c220036602f839e", "client",
                  [{"key": "error", "type": "bool", "value": "true"}])]
    path = tmp_path / "anonymized.json"
    path.write_text("[" + ",\n".join(json.dumps(s, separators=(",", ":")) for s in spans) + "\n]\n")
    file = ingest(path).files[0]
    assert (file.format, file.stored, file.rejects) == ("jaeger-json", 2, 0)
    assert store.execute("SELECT span_id, parent_span_id, kind, service, status_code FROM spans ORDER BY start_time, span_id").fetchall() == [
        ("7606ddfe69932d34", None, "server", "16af988c443cff37", "unset"),
        ("7bd66f09ba90ea3d", "7606ddfe69932d34", "client", "3c220036602f839e", "error")]


def test_jaeger_shared_client_server_ids_are_split(tmp_path, store, ingest):
    doc = jaeger_trace()
    tag = {"key": "span.kind", "type": "string"}
    doc["spans"] += [
        {"traceID": "1", "spanID": "9", "operationName": "call", "startTime": 1485467191640100, "duration": 50,
         "references": [{"refType": "CHILD_OF", "traceID": "1", "spanID": "2"}], "tags": [dict(tag, value="client")],
         "processID": "p1"},
        {"traceID": "1", "spanID": "9", "operationName": "serve", "startTime": 1485467191640110, "duration": 30,
         "references": [{"refType": "CHILD_OF", "traceID": "1", "spanID": "2"}], "tags": [dict(tag, value="server")],
         "processID": "p2"},
    ]
    path = tmp_path / "jaeger.json"
    path.write_text(json.dumps({"data": [doc]}))
    assert ingest(path).files[0].stored == 5
    client_id = shared_client_id("1".rjust(32, "0"), "9".rjust(16, "0"))
    assert store.execute("SELECT name, span_id, parent_span_id FROM spans WHERE name IN ('call', 'serve') ORDER BY name").fetchall() == [
        ("call", client_id, "0000000000000002"), ("serve", "0000000000000009", client_id)]


def test_jaeger_v3_api_result_wrapper(tmp_path, store, ingest):
    tid = f.new_trace_id()
    root = f.new_span_id()
    spans = [f.span(tid, root, None, "POST /chat", 2), f.llm_span(tid, root, model="gpt-4o-mini", input_tokens=12)]
    del spans[1]["startTimeUnixNano"]  # Jaeger's v3 API omits what the proto has as 0: the parent's start is taken
    doc = {"result": f.request(spans, service="chat-api")}
    path = tmp_path / "GetTrace.json"
    path.write_text(json.dumps(doc, indent=2))
    assert detect(path.read_bytes(), path.name).name == "otlp-json"
    file = ingest(path).files[0]
    assert (file.stored, file.rejects) == (2, 0)
    assert store.execute("SELECT model, input_tokens, epoch_ns(start_time) FROM llm_calls").fetchall() == [
        ("gpt-4o-mini", 12, f.T0)]
    # FindTraces streams one {"result": ...} per line, and {"error": ...} when it fails.
    other = f.simple_trace(n_llm=1)
    lines = [json.dumps({"result": f.request(other)}),
             json.dumps({"error": {"grpcCode": 5, "httpCode": 404, "message": "trace not found"}})]
    stream = tmp_path / "traces.jsonl"
    stream.write_text("\n".join(lines) + "\n")
    file = ingest(stream).files[0]
    assert (file.format, file.stored, file.rejects) == ("otlp-jsonl", 2, 1)
    assert store.execute("SELECT line, reason FROM rejects").fetchall() == [(2, "Jaeger query API error: 'trace not found'")]


# ------------------------------------------------------------------------------------- Vercel AI SDK

V_TRACE = "b3e700af9eab81e19f72f964d62a35af"
V0 = 1_770_131_992_242_000_000  # ns


def vercel_spans():
    """A Vercel AI SDK trace: generateText wrapping its provider call, embedMany wrapping two embedding
    calls, and a streamText written with the SDK 5 usage names. Wrappers repeat their calls' usage."""
    common = {"ai.telemetry.functionId": "support-answer", "ai.model.provider": "openai.responses",
              "ai.model.id": "gpt-4o-mini"}
    gen_call = {**common, "ai.operationId": "ai.generateText.doGenerate", "gen_ai.system": "openai.responses",
                "gen_ai.request.model": "gpt-4o-mini", "ai.usage.promptTokens": 14, "ai.usage.completionTokens": 20,
                "gen_ai.usage.input_tokens": 14, "gen_ai.usage.output_tokens": 20, "ai.response.model": "gpt-4o-mini-2024-07-18",
                "ai.response.finishReason": "stop", "ai.settings.maxOutputTokens": 256}
    embed = {**common, "ai.model.provider": "openai.embedding", "ai.model.id": "text-embedding-3-small"}
    stream_call = {**common, "ai.operationId": "ai.streamText.doStream", "ai.usage.inputTokens": 1500,
                   "ai.usage.outputTokens": 112, "ai.usage.cachedInputTokens": 1024, "ai.usage.reasoningTokens": 0}
    return [
        ("root", None, "POST /answer", 2, {"http.route": "/answer"}),
        ("gen", "root", "ai.generateText", 1, {**common, "ai.operationId": "ai.generateText",
                                               "ai.usage.promptTokens": 14, "ai.usage.completionTokens": 20}),
        ("gen.do", "gen", "ai.generateText.doGenerate", 3, gen_call),
        ("emb", "root", "ai.embedMany", 1, {**embed, "ai.operationId": "ai.embedMany", "ai.usage.tokens": 18}),
        ("emb.do1", "emb", "ai.embedMany.doEmbed", 3, {**embed, "ai.operationId": "ai.embedMany.doEmbed", "ai.usage.tokens": 10}),
        ("emb.do2", "emb", "ai.embedMany.doEmbed", 3, {**embed, "ai.operationId": "ai.embedMany.doEmbed", "ai.usage.tokens": 8}),
        ("str", "root", "ai.streamText", 1, {**common, "ai.operationId": "ai.streamText", "ai.usage.inputTokens": 1500,
                                             "ai.usage.outputTokens": 112, "ai.usage.cachedInputTokens": 1024}),
        ("str.do", "str", "ai.streamText.doStream", 3, stream_call),
    ]


def vercel_otlp(ids):
    spans = [f.span(V_TRACE, ids[key], ids.get(parent), name, kind, V0 + i * 1_000_000, 500_000_000, attrs)
             for i, (key, parent, name, kind, attrs) in enumerate(vercel_spans())]
    return f.request(spans, service="support-bot")


def span_ids():
    return {key: f"{i + 1:016x}" for i, (key, *_rest) in enumerate(vercel_spans())}


EXPECTED_CALLS = [  # span, provider, model, operation, call kind, input, output, cached, max_tokens
    ("ai.embedMany.doEmbed", "openai.embedding", "text-embedding-3-small", "embeddings", "embedding", 10, None, 0, None),
    ("ai.embedMany.doEmbed", "openai.embedding", "text-embedding-3-small", "embeddings", "embedding", 8, None, 0, None),
    ("ai.generateText.doGenerate", "openai.responses", "gpt-4o-mini", "chat", "main", 14, 20, 0, 256),
    ("ai.streamText.doStream", "openai.responses", "gpt-4o-mini", "chat", "main", 1500, 112, 1024, None),
]


def vercel_calls(store):
    return store.execute("""SELECT span_name, provider, model, operation, call_kind, input_tokens, output_tokens,
                                   cached_input_tokens, max_tokens FROM llm_calls ORDER BY span_name, input_tokens DESC""").fetchall()


def test_vercel_ai_sdk_calls_counted_once_with_their_usage(tmp_path, store, ingest):
    path = tmp_path / "vercel.otlp.json"
    path.write_text(json.dumps(vercel_otlp(span_ids()), indent=2))
    ingest(path)
    assert vercel_calls(store) == EXPECTED_CALLS
    # The wrappers are not calls: 3 chat/embedding calls' tokens once, not twice.
    assert store.execute("SELECT llm_calls, embedding_calls, input_tokens, output_tokens FROM requests").fetchone() == (
        4, 2, 1532, 132)
    # Priced as OpenAI's models (the provider family of openai.responses / openai.embedding).
    assert store.execute("SELECT DISTINCT price_source FROM llm_calls ORDER BY 1").fetchall() == [
        ("catalog 2026-11-22: openai/gpt-4o-mini",), ("catalog 2026-11-22: openai/text-embedding-3-small",)]


def test_vercel_provider_reconciles_with_the_openai_bill(tmp_path, store, ingest):
    spans = tmp_path / "vercel.otlp.json"
    spans.write_text(json.dumps(vercel_otlp(span_ids())))
    day = V0 // 10**9 // 86400 * 86400
    bill = {"object": "page", "has_more": False, "next_page": None, "data": [{
        "object": "bucket", "start_time": day, "end_time": day + 86400, "results": [
            {"object": "organization.costs.result", "amount": {"value": 0.50, "currency": "usd"},
             "line_item": "gpt-4o-mini, input", "project_id": "proj_a"},
            {"object": "organization.costs.result", "amount": {"value": 0.25, "currency": "usd"},
             "line_item": "gpt-4o-mini, output", "project_id": "proj_a"}]}]}
    costs = tmp_path / "openai-costs.json"
    costs.write_text(json.dumps(bill))
    ingest(spans, costs)
    row = store.execute("""SELECT provider, model, trace_calls, billed_cost FROM reconciliation
                           WHERE model LIKE 'gpt-4o-mini%'""").fetchall()
    assert len(row) == 1 and row[0][0] == "openai" and row[0][2:] == (2, 0.75)


def test_catalog_maps_vercel_provider_ids_to_their_family():
    catalog = load_catalog()
    pairs = {p: (catalog.family(p), catalog.bills_as(p)) for p in
             ("openai.responses", "openai.embedding", "anthropic.messages", "google.generative-ai", "google.vertex.chat",
              "amazon-bedrock", "azure.responses", "aws.bedrock", "acme.chat")}
    assert pairs == {
        "openai.responses": ("openai", "openai"), "openai.embedding": ("openai", "openai"),
        "anthropic.messages": ("anthropic", "anthropic"), "google.generative-ai": ("gemini", "gcp"),
        "google.vertex.chat": ("vertex_ai", "gcp"), "amazon-bedrock": ("bedrock", "aws"),
        "azure.responses": ("azure", "azure"), "aws.bedrock": ("bedrock", "aws"), "acme.chat": (None, "acme.chat")}


# ----------------------------------------------------------------------------- OpenTelemetry JS dumps

def js_dump(ids, sdk2=True):
    """The same spans as a JSON list of JS ReadableSpans (HrTime times, plain attributes, JS SpanKind)."""
    js_kind = {1: 0, 2: 1, 3: 2}  # OTLP internal/server/client -> JS INTERNAL/SERVER/CLIENT
    out = []
    for i, (key, parent, name, kind, attrs) in enumerate(vercel_spans()):
        start = V0 + i * 1_000_000
        span = {"name": name, "kind": js_kind[kind], "spanContext": {"traceId": V_TRACE, "spanId": ids[key], "traceFlags": 1},
                "attributes": attrs, "status": {"code": 0},
                "startTime": [start // 10**9, start % 10**9], "endTime": [(start + 500_000_000) // 10**9, (start + 500_000_000) % 10**9],
                "events": [], "resource": {"attributes": {"service.name": "support-bot"}},
                "instrumentationScope": {"name": "test"}}
        if parent:
            if sdk2:
                span["parentSpanContext"] = {"traceId": V_TRACE, "spanId": ids[parent]}
            else:
                span["parentSpanId"] = ids[parent]
        out.append(span)
    return out


def test_js_span_dump_reads_like_its_otlp_encoding(tmp_path, store, ingest):
    ids = span_ids()
    dump = tmp_path / "all-spans.json"
    dump.write_text(json.dumps(js_dump(ids), indent=2))
    assert detect(dump.read_bytes(), dump.name).name == "otel-js-json"
    file = ingest(dump).files[0]
    assert (file.format, file.stored, file.rejects) == ("otel-js-json", 8, 0)
    assert vercel_calls(store) == EXPECTED_CALLS
    # The same spans as OTLP: every one a duplicate, stored once.
    otlp = tmp_path / "spans.otlp.json"
    otlp.write_text(json.dumps(vercel_otlp(ids)))
    assert (ingest(otlp).files[0].duplicates, store.scalar("SELECT count(*) FROM spans")) == (8, 8)
    assert store.execute("SELECT kind, service, scope_name FROM spans WHERE name = 'ai.generateText.doGenerate'").fetchone() == (
        "client", "support-bot", "test")
    assert store.execute("SELECT count(*) FROM spans WHERE parent_span_id IS NULL").fetchone() == (1,)


def test_js_span_dump_sdk1_shape_and_bad_records(tmp_path, store, ingest):
    ids = span_ids()
    spans = js_dump(ids, sdk2=False)
    spans[0]["_spanContext"] = spans[0].pop("spanContext")  # JSON.stringify of the span object itself
    spans[3]["startTime"] = 1770131992.5                    # not an HrTime: rejected, named
    spans[5]["kind"] = 7
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(spans))
    file = ingest(path).files[0]
    assert (file.stored, file.rejects) == (6, 2)
    assert store.execute("SELECT record, reason FROM rejects ORDER BY record").fetchall() == [
        ("[3]", "startTime must be an HrTime [seconds, nanoseconds], got 1770131992.5"),
        ("[5]", "kind must be a SpanKind number 0-4, got 7")]
    assert store.execute("SELECT parent_span_id FROM spans WHERE name = 'ai.streamText.doStream'").fetchone() == (ids["str"],)
    assert store.scalar("SELECT span_id FROM spans WHERE name = 'POST /answer'") == ids["root"]


def test_jaeger_api_error_answer_is_a_worded_reject(tmp_path, store, ingest):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"data": None, "total": 0, "limit": 0, "offset": 0,
                                "errors": [{"code": 404, "msg": "trace not found"}]}))
    file = ingest(path, fmt="jaeger-json").files[0]
    assert (file.stored, file.rejects) == (0, 1)
    assert store.scalar("SELECT reason FROM rejects") == (
        "Jaeger query API error: [{'code': 404, 'msg': 'trace not found'}]")


def test_zipkin_half_reported_twice_is_stored_once_and_stays_linked(tmp_path, store, ingest):
    client, server = zipkin_rpc()[1], zipkin_rpc()[2]
    late = dict(client, annotations=[{"timestamp": T + 25_000, "value": "cr"}])  # the client half, reported again
    path = tmp_path / "spans.json"
    path.write_text(json.dumps([client, late, server, dict(server)]))
    file = ingest(path).files[0]
    assert (file.stored, file.duplicates) == (2, 2)
    client_id = shared_client_id(TRACE.rjust(32, "0"), "c" * 16)
    assert store.execute("SELECT span_id, parent_span_id, kind FROM spans ORDER BY kind").fetchall() == [
        (client_id, TRACE, "client"), ("c" * 16, client_id, "server")]
