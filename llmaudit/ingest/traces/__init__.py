"""Trace formats, read into spans (and the resources they point to)."""

from llmaudit.ingest.traces import jaeger, otel_js, otlp_json, otlp_jsonl, zipkin
from llmaudit.ingest.traces import langfuse, phoenix

# Most specific first: a one-line OTLP document is otlp-jsonl, not otlp-json.
FORMATS = [otlp_jsonl.FORMAT, otlp_json.FORMAT, jaeger.FORMAT,
           otel_js.FORMAT,  # before zipkin-json: a JS span dump also holds "traceId" (in spanContext)
           zipkin.FORMAT]
# LLM-observability exports, before zipkin-json: a list of Langfuse observations has traceIds too.
FORMATS[FORMATS.index(zipkin.FORMAT):FORMATS.index(zipkin.FORMAT)] = [langfuse.FORMAT, phoenix.JSON]
FORMATS += [phoenix.CSV, phoenix.PARQUET]
