"""Build OTLP/JSON trace documents for tests (the shapes the Collector's file exporter writes)."""

from __future__ import annotations

import itertools
import json

_ids = itertools.count(1)
T0 = 1_762_646_400_000_000_000  # 2025-11-09T00:00:00Z in ns


def new_trace_id() -> str:
    return f"{next(_ids):032x}"


def new_span_id() -> str:
    return f"{next(_ids):016x}"


def kv(key: str, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [kv("x", v)["value"] for v in value]}}}
    return {"key": key, "value": {"stringValue": value}}


def span(trace_id, span_id, parent=None, name="op", kind=1, start_ns=T0, dur_ns=1_000_000, attrs=None, status=None):
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent or "",
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + dur_ns),
        "attributes": [kv(k, v) for k, v in (attrs or {}).items()],
        "status": status or {},
    }


def llm_span(trace_id, parent, model="gpt-4o", input_tokens=100, output_tokens=20, start_ns=T0, error=False, **extra):
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    attrs.update(extra)
    status = {"code": 2, "message": "timeout"} if error else {}
    return span(trace_id, new_span_id(), parent, f"chat {model}", 3, start_ns, 500_000_000, attrs, status)


def request(spans: list, service="svc") -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [kv("service.name", service)]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
        ]
    }


def simple_trace(n_llm=2, model="gpt-4o", service="svc", start_ns=T0, tokens=(100, 20)):
    tid = new_trace_id()
    root = new_span_id()
    spans = [span(tid, root, None, "POST /chat", 2, start_ns, 2_000_000_000, {"http.route": "/chat", "tenant.id": "acme"})]
    for i in range(n_llm):
        spans.append(llm_span(tid, root, model, tokens[0], tokens[1], start_ns + i * 1000))
    return spans


def write_jsonl(path, docs) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps(doc) + "\n")
