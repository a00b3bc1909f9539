"""Langfuse exports: a trace with its observations (the UI's download `{"trace", "observations"}`, the
public API's trace with its observations), pages of the public API's observations (`{"data": [...]}`)
and the batch export of observations (a JSON list or JSON lines).

Each observation becomes a span. Its Langfuse fields are kept under the attribute names Langfuse's
own OpenTelemetry integration uses (langfuse.observation.type, .model.name, .usage_details,
.cost_details, ...; FIELDS below); those the conventions already read under an OpenInference name
are written under it too (OPENINFERENCE, CONTENT), and conventions.yaml's `langfuse` table turns the
type into an OpenInference span kind and the usage details into the GenAI token attributes. An
observation that reached Langfuse over OpenTelemetry carries the original span's attributes, resource
and scope in its metadata: they are restored as such (Langfuse's own fields win).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from llmaudit.ingest.core import Format, Reject, short
from llmaudit.ingest.traces.exported import add_span, export_id, json_values, time_us
from llmaudit.ingest.traces.spans import SPAN_KEY, BadRecord, SpanColumns, read_document, text_value

# Observation field -> attribute (Langfuse's OpenTelemetry attribute names where it has one).
FIELDS = {
    "type": "langfuse.observation.type",
    "model": "langfuse.observation.model.name",
    "modelParameters": "langfuse.observation.model.parameters",
    "level": "langfuse.observation.level",
    "statusMessage": "langfuse.observation.status_message",
    "completionStartTime": "langfuse.observation.completion_start_time",
    "promptName": "langfuse.observation.prompt.name",
    "promptVersion": "langfuse.observation.prompt.version",
    "environment": "langfuse.environment",
    "version": "langfuse.version",
    # Rows of the batch export carry their trace's fields.
    "traceName": "langfuse.trace.name",
    "traceTags": "langfuse.trace.tags",
    "userId": "langfuse.user.id",
    "sessionId": "langfuse.session.id",
}
# Trace field -> attribute, written on each of its observations.
TRACE_FIELDS = {
    "name": "langfuse.trace.name",
    "userId": "langfuse.user.id",
    "sessionId": "langfuse.session.id",
    "tags": "langfuse.trace.tags",
    "release": "langfuse.release",
    "version": "langfuse.version",
    "environment": "langfuse.environment",
}
# Langfuse fields with an OpenInference name that conventions.yaml reads (max_tokens and temperature
# from the model parameters, the conversation from the session): written there unless the span's own
# attributes have it.
OPENINFERENCE = {"modelParameters": "llm.invocation_parameters", "sessionId": "session.id", "userId": "user.id"}
# Captured content, stored once: under OpenInference's names, or Langfuse's when the span's own
# attributes hold different content under those.
CONTENT = {"input": ("input.value", "langfuse.observation.input"), "output": ("output.value", "langfuse.observation.output")}
USAGE_DETAILS = "langfuse.observation.usage_details"
COST_DETAILS = "langfuse.observation.cost_details"
# Exports without costDetails: the cost fields, first present wins per part.
COST_FIELDS = {"input": ("inputCost", "calculatedInputCost"), "output": ("outputCost", "calculatedOutputCost"),
               "total": ("totalCost", "calculatedTotalCost")}
# Parts of an observation's metadata that hold the OpenTelemetry span it came from.
OTEL_METADATA = ("attributes", "resourceAttributes", "scope")

_EMPTY = (None, "", [], {})


def sniff_langfuse(head: bytes, name: str) -> bool:
    h = head.lstrip()
    if not h.startswith((b"{", b"[")):
        return False
    return b'"parentObservationId"' in h or (b'"observations"' in h and b'"projectId"' in h)


def _settings() -> dict:
    from llmaudit.normalize.derive import conventions

    return conventions()["langfuse"]


def _set_openinference(attrs: dict, source: dict) -> None:
    for name, key in OPENINFERENCE.items():
        value = source.get(name)
        if value not in _EMPTY and key not in attrs:
            attrs[key] = text_value(value)


def _json_object(value) -> dict | None:
    """Metadata is an object, or (in some exports) the JSON text of one."""
    if type(value) is str and value.lstrip().startswith("{"):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value if type(value) is dict else None


def _count(value, what: str) -> int:
    if type(value) is str and value.strip().isdigit():
        return int(value)
    if type(value) is int or (type(value) is float and value.is_integer()):
        if value >= 0:
            return int(value)
    raise BadRecord(f"{what} is not a token count: {short(value)}")


def _path(obj: dict, dotted: str):
    for part in dotted.split("."):
        if type(obj) is not dict:
            return None
        obj = obj.get(part)
    return obj


def usage_attributes(obs: dict, conf: dict) -> dict:
    """GenAI token attributes of an observation, from its usageDetails (or the older usage fields)."""
    details = obs.get("usageDetails")
    if details is not None:
        if type(details) is not dict:
            raise BadRecord(f"usageDetails must be an object, got {short(details)}")
        counts = {k: _count(v, f"usageDetails.{k}") for k, v in details.items() if v is not None}
        inputs = [v for k, v in counts.items() if conf["input_containing"] in k.lower()]
        outputs = [v for k, v in counts.items() if conf["output_containing"] in k.lower()]
        if not inputs and not outputs:
            return {}
        # The details are the whole breakdown (their sum is the total): a part they do not name is zero,
        # as Langfuse shows it, not unknown.
        return {
            "gen_ai.usage.input_tokens": sum(inputs),
            "gen_ai.usage.output_tokens": sum(outputs),
            "gen_ai.usage.cache_read.input_tokens": sum(counts.get(k, 0) for k in conf["cache_read"]),
            "gen_ai.usage.cache_creation.input_tokens": sum(counts.get(k, 0) for k in conf["cache_write"]),
        }
    for fields in conf["older_fields"]:
        inp, outp = _path(obs, fields["input"]), _path(obs, fields["output"])
        if inp is None and outp is None:
            continue
        unit = _path(obs, fields["unit"]) if "unit" in fields else None
        if unit not in (None, "") and str(unit).upper() != "TOKENS":
            return {}
        out = {}
        if inp is not None:
            out["gen_ai.usage.input_tokens"] = _count(inp, fields["input"])
        if outp is not None:
            out["gen_ai.usage.output_tokens"] = _count(outp, fields["output"])
        return out
    return {}


def _cost(obs: dict):
    details = obs.get("costDetails")
    if details is not None:
        return details or None
    parts = {}
    for part, names in COST_FIELDS.items():
        value = next((obs[n] for n in names if obs.get(n) is not None), None)
        if value is not None:
            parts[part] = value
    return parts or None


def _trace_attributes(trace: dict) -> dict:
    attrs = {}
    for field, key in TRACE_FIELDS.items():
        value = trace.get(field)
        if value not in _EMPTY:
            attrs[key] = text_value(value)
    metadata = _json_object(trace.get("metadata"))
    for key, value in (metadata or {}).items():
        # The OpenTelemetry parts of a trace's metadata are its root observation's: read there.
        if key not in OTEL_METADATA and value is not None:
            attrs[f"langfuse.trace.metadata.{key}"] = text_value(value)
    return attrs


@dataclass
class _Span:
    trace_id: str
    span_id: str
    parent: str | None
    name: object
    start: int
    end: int
    attrs: dict
    status: str = "unset"
    message: object = None
    service: str | None = None
    scope: str | None = None
    resource: str = "{}"


def _observation(obs, trace: dict | None, trace_attrs: dict, conf: dict) -> _Span:
    """One observation as a span."""
    if type(obs) is not dict:
        raise BadRecord("observation is not an object" + (" (an id: export the trace with its observations)"
                                                           if type(obs) is str else ""))
    raw_trace = obs.get("traceId") if obs.get("traceId") is not None else (trace or {}).get("id")
    trace_id = export_id(raw_trace, 32, "traceId")
    span_id = export_id(obs.get("id"), 16, "id")
    parent = obs.get("parentObservationId")
    parent = export_id(parent, 16, "parentObservationId") if parent not in (None, "") else None
    if obs.get("startTime") is None:
        raise BadRecord("startTime is missing")
    start = time_us(obs["startTime"], "startTime")
    end = time_us(obs["endTime"], "endTime") if obs.get("endTime") is not None else start
    span = _Span(trace_id, span_id, parent, obs.get("name"), start, end, {},
                 status="error" if obs.get("level") == "ERROR" else "unset", message=obs.get("statusMessage"))

    attrs = span.attrs
    _restore_metadata(obs.get("metadata"), span)
    attrs.update(trace_attrs)
    for name, key in FIELDS.items():
        value = obs.get(name)
        if value not in _EMPTY:
            attrs[key] = text_value(value)
    _set_openinference(attrs, obs)
    if trace:
        _set_openinference(attrs, trace)
    for name, (key, own_key) in CONTENT.items():
        value = obs.get(name)
        if value not in _EMPTY:
            text = text_value(value)
            if attrs.setdefault(key, text) != text:
                attrs[own_key] = text
    if raw_trace != trace_id:
        attrs["langfuse.trace.id"] = str(raw_trace)
    if obs.get("id") != span_id:
        attrs["langfuse.observation.id"] = str(obs.get("id"))
    usage = obs.get("usageDetails")
    if type(usage) is dict and usage:
        attrs[USAGE_DETAILS] = text_value(usage)
    cost = _cost(obs)
    if cost is not None:
        attrs[COST_DETAILS] = text_value(cost)
    attrs.update((k, str(v)) for k, v in usage_attributes(obs, conf["usage"]).items())
    kind = conf["span_kinds"].get(obs.get("type"))
    if kind:  # the type Langfuse recorded decides, over the instrumentation's own kind
        attrs["openinference.span.kind"] = kind
    if kind == "TOOL" and type(span.name) is str and span.name:
        attrs.setdefault("tool.name", span.name)
    return span


def _restore_metadata(metadata, span: _Span) -> None:
    """An observation's metadata: the OpenTelemetry span it came from (attributes, resource, scope), the
    rest kept as langfuse.observation.metadata.* attributes."""
    resource: dict = {}
    meta = _json_object(metadata)
    if meta is None and metadata not in _EMPTY:
        span.attrs["langfuse.observation.metadata"] = text_value(metadata)
    for key, value in (meta or {}).items():
        if key == "attributes" and type(value) is dict:
            span.attrs.update((k, text_value(v)) for k, v in value.items() if v is not None)
        elif key == "resourceAttributes" and type(value) is dict:
            resource = {k: text_value(v) for k, v in value.items() if v is not None}
        elif key == "scope" and type(value) is dict:
            span.scope = value.get("name") if type(value.get("name")) is str else None
        elif value is not None:
            span.attrs[f"langfuse.observation.metadata.{key}"] = text_value(value)
    span.service = resource.get("service.name")
    span.resource = orjson.dumps(resource).decode()


def _groups(value, where: str):
    """(trace or None, [(locator, observation)]) for each trace export inside one JSON value."""
    if type(value) is dict and type(value.get("observations")) is list:
        trace = value["trace"] if type(value.get("trace")) is dict else {k: v for k, v in value.items() if k != "observations"}
        yield trace, [(f"{where}observations[{i}]", o) for i, o in enumerate(value["observations"])]
    elif type(value) is dict and type(value.get("data")) is list:
        for i, item in enumerate(value["data"]):
            yield from _groups(item, f"{where}data[{i}].") if type(item) is dict and "observations" in item \
                else [(None, [(f"{where}data[{i}]", item)])]
    elif type(value) is list:
        for i, item in enumerate(value):
            yield from _groups(item, f"{where}[{i}].") if type(item) is dict and "observations" in item \
                else [(None, [(f"{where}[{i}]", item)])]
    elif type(value) is dict and ("traceId" in value or "parentObservationId" in value):
        yield None, [(where.rstrip("."), value)]
    else:
        raise BadRecord("not a Langfuse export: expected a trace with its observations, or observations")


def _trace_span(trace: dict, roots: list[_Span]) -> _Span | None:
    """The trace itself as the root of its top-level observations, when it has more than one (exports of
    Langfuse's own SDKs hang every step off the trace; OpenTelemetry ones have one root observation)."""
    if len(roots) < 2 or trace.get("id") in (None, ""):
        return None
    stamp = trace.get("timestamp")
    starts = [r.start for r in roots] + ([time_us(stamp, "trace timestamp")] if stamp is not None else [])
    attrs = _trace_attributes(trace)
    attrs["langfuse.trace.id"] = str(trace["id"])
    _set_openinference(attrs, trace)
    for name, (key, _) in CONTENT.items():
        if trace.get(name) not in _EMPTY:
            attrs[key] = text_value(trace[name])
    span = _Span(roots[0].trace_id, export_id(f"trace {trace['id']}", 16, "trace id"), None, trace.get("name"),
                 min(starts), max(r.end for r in roots), attrs)
    for root in roots:
        root.parent = span.span_id
    return span


def parse_document(data: bytes) -> tuple[SpanColumns, list, int]:
    cols = SpanColumns()
    values, rejects = json_values(data)
    conf = _settings()
    seen = len(rejects)  # lines that are not JSON are records too
    for line, offset, value in values:
        try:
            groups = list(_groups(value, ""))
        except BadRecord as exc:
            seen += 1
            rejects.append(Reject(line, offset, None, str(exc)))
            continue
        for trace, observations in groups:
            trace_attrs = _trace_attributes(trace) if trace else {}
            read: list[_Span] = []
            for where, obs in observations:
                seen += 1
                try:
                    read.append(_observation(obs, trace, trace_attrs, conf))
                except (BadRecord, TypeError, ValueError) as exc:
                    oid = obs.get("id") if type(obs) is dict else None
                    record = " ".join(filter(None, (where, f"(id {short(oid)})" if oid is not None else None))) or None
                    rejects.append(Reject(line, offset if line is not None else None, record, str(exc) or type(exc).__name__))
            if trace and not observations:
                rejects.append(Reject(line, offset if line is not None else None, f"trace {short(trace.get('id'))}",
                                      "the trace has no observations"))
            if trace and read:
                try:
                    span = _trace_span(trace, [o for o in read if o.parent is None])
                except BadRecord as exc:  # the trace's own record; its observations are read all the same
                    span = None
                    rejects.append(Reject(line, offset if line is not None else None, f"trace {short(trace.get('id'))}", str(exc)))
                if span is not None:
                    seen += 1
                    read.insert(0, span)
            for o in read:
                add_span(cols, trace_id=o.trace_id, span_id=o.span_id, parent=o.parent, name=o.name, start=o.start,
                         end=o.end, status_code=o.status, status_message=o.message, service=o.service,
                         scope_name=o.scope, attributes=o.attrs, resource_json=o.resource, events=None)
    if not seen and not rejects:
        rejects.append(Reject(None, 0, None, "no observations in this export"))
    return cols, rejects, seen


FORMAT = Format("langfuse-json", "traces", "spans", SPAN_KEY, sniff_langfuse, read_document(parse_document))
