"""Trace formats, read into spans (and the resources they point to)."""

from llmaudit.ingest.traces import jaeger, otel_js, otlp_json, otlp_jsonl, zipkin

# Most specific first: a one-line OTLP document is otlp-jsonl, not otlp-json.
FORMATS = [otlp_jsonl.FORMAT, otlp_json.FORMAT, jaeger.FORMAT,
           otel_js.FORMAT,  # before zipkin-json: a JS span dump also holds "traceId" (in spanContext)
           zipkin.FORMAT]
