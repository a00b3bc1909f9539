"""The typed fast path for OTLP/JSON lines stores exactly what the general reader stores.

Each case is parsed twice, with the fast path and without it, and the rows, resources and rejects
must be equal; the tests also check which lines the fast path took, so a fast path that quietly
handed every line back (and made ingest slow again) fails here too.
"""

from __future__ import annotations

import copy
import gzip
import importlib.util
import json
from pathlib import Path

import otlp_factory as f
import pytest

from llmaudit.ingest.traces import otlp, otlp_fast
from llmaudit.ingest.traces.spans import SpanColumns

SAMPLE = Path(__file__).resolve().parent.parent / "sample_traces"


def both(block: bytes):
    general = otlp.parse_lines(block, 1, 0)
    fast = otlp.parse_lines(block, 1, 0, fast=otlp_fast.add_line)
    return general, fast


def assert_same(block: bytes):
    (c1, r1, s1), (c2, r2, s2) = both(block)
    assert s1 == s2
    assert [r.as_tuple() for r in r1] == [r.as_tuple() for r in r2]
    assert c1.to_arrow(7).to_pylist() == c2.to_arrow(7).to_pylist()
    assert c1.resources().to_pylist() == c2.resources().to_pylist()
    return c1


def taken_by_fast_path(line: bytes) -> bool:
    try:
        otlp_fast.add_line(line, SpanColumns())
        return True
    except otlp_fast.Unsupported:
        return False


def test_sample_week_same_rows_and_fast_path_takes_every_line():
    block = gzip.decompress((SAMPLE / "support-bot.otlp.jsonl.gz").read_bytes())
    cols = assert_same(block)
    assert len(cols) > 1000
    lines = [x for x in block.split(b"\n") if x.strip()]
    assert all(taken_by_fast_path(x) for x in lines)


def test_benchmark_traffic_same_rows(tmp_path):
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    out = tmp_path / "bench.jsonl"
    gen.bench(3000, out)
    block = out.read_bytes()
    cols = assert_same(block)
    assert len(cols) >= 3000
    # retrieval scores are doubles, finish reasons arrays, tokens integers: all on the fast path
    assert all(taken_by_fast_path(x) for x in block.split(b"\n") if x.strip())


def _base_line() -> dict:
    doc = f.request(f.simple_trace())
    sp = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    sp["attributes"] += [f.kv("t", 0.25), f.kv("flag", True), f.kv("reasons", ["stop", "length"]),
                         {"key": "n", "value": {"intValue": 7}}, {"key": "whole", "value": {"doubleValue": 3}},
                         {"key": "map", "value": {"kvlistValue": {"values": [f.kv("a", 1)]}}},
                         {"key": "raw", "value": {"bytesValue": "AAEC"}}, {"key": "empty", "value": {}},
                         {"key": "none", "value": None}, {"key": "uni", "value": {"stringValue": "é\u0000\u2028\"q"}}]
    sp["events"] = [{"name": "exception", "timeUnixNano": "1", "attributes": [f.kv("exception.type", "Timeout")]}]
    sp["status"] = {"code": 2, "message": "boom"}
    return doc


def _span(doc: dict) -> dict:
    return doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]


def _edit(fn):
    doc = copy.deepcopy(_base_line())
    fn(doc)
    return doc


# (what the line has, how to make it, whether the fast path takes it)
CASES = [
    ("spec-following, every value type", lambda d: None, True),
    ("kind and status as enum names", lambda d: _span(d).update(kind="SPAN_KIND_CLIENT", status={"code": "STATUS_CODE_ERROR"}), True),
    ("integer times", lambda d: _span(d).update(startTimeUnixNano=f.T0, endTimeUnixNano=f.T0 + 5), True),
    ("no end time", lambda d: _span(d).pop("endTimeUnixNano"), True),
    ("null attributes, events, status", lambda d: _span(d).update(attributes=None, events=None, status=None), True),
    ("fields the reader ignores", lambda d: _span(d).update(traceState="a=b", flags=1, droppedAttributesCount=0, links=[]), True),
    ("upper-case ids", lambda d: _span(d).update(traceId="0123456789ABCDEF0123456789ABCDEF"), False),
    ("base64 ids", lambda d: _span(d).update(spanId="AAECAwQFBgc="), False),
    ("snake_case field", lambda d: _span(d).update(parent_span_id=_span(d).pop("parentSpanId")), False),
    ("unknown field", lambda d: _span(d).update(somethingNew=1), False),
    ("explicit null value field", lambda d: _span(d)["attributes"].append({"key": "x", "value": {"doubleValue": None}}), False),
    ("two value fields", lambda d: _span(d)["attributes"].append({"key": "x", "value": {"boolValue": True, "doubleValue": 1.5}}), False),
    ("string and int both set", lambda d: _span(d)["attributes"].append({"key": "x", "value": {"stringValue": "s", "intValue": "1"}}), True),
    ("NaN double", lambda d: _span(d)["attributes"].append({"key": "x", "value": {"doubleValue": "NaN"}}), True),
    ("bool as a string", lambda d: _span(d)["attributes"].append({"key": "x", "value": {"boolValue": "false"}}), False),
    ("bad time", lambda d: _span(d).update(startTimeUnixNano="soon"), False),
    ("no start time", lambda d: _span(d).pop("startTimeUnixNano"), False),
    ("kind out of range", lambda d: _span(d).update(kind=9), False),
    ("bad event", lambda d: _span(d).update(events=[1]), False),
    ("attribute without key", lambda d: _span(d)["attributes"].append({"value": {"stringValue": "v"}}), False),
    ("older scope field name", lambda d: d["resourceSpans"][0].update(
        instrumentationLibrarySpans=d["resourceSpans"][0].pop("scopeSpans")), False),
    ("not a trace export", lambda d: d.update(resourceSpans=None), False),
    ("duplicate attribute keys", lambda d: _span(d)["attributes"].extend([f.kv("k", "1"), f.kv("k", "2")]), True),
]


@pytest.mark.parametrize("what,edit,fast", CASES, ids=[c[0] for c in CASES])
def test_line_variants_store_the_same(what, edit, fast):
    line = json.dumps(_edit(edit)).encode()
    assert taken_by_fast_path(line) is fast
    # the variant between two ordinary lines: line numbers and offsets of rejects must not move
    ordinary = json.dumps(f.request(f.simple_trace())).encode()
    assert_same(b"\n".join([ordinary, line, ordinary]) + b"\n")


def test_line_handed_back_mid_way_leaves_nothing_behind():
    doc = f.request(f.simple_trace(n_llm=3))
    doc["resourceSpans"].append(copy.deepcopy(doc["resourceSpans"][0]))
    doc["resourceSpans"][1]["resource"]["attributes"] = [f.kv("service.name", "second")]
    doc["resourceSpans"][1]["scopeSpans"][0]["spans"][2]["kind"] = 42  # the last span of the line
    cols = SpanColumns()
    otlp_fast.add_line(json.dumps(f.request(f.simple_trace())).encode(), cols)
    before = (cols.to_arrow(1).to_pylist(), cols.resources().to_pylist())
    with pytest.raises(otlp_fast.Unsupported):
        otlp_fast.add_line(json.dumps(doc).encode(), cols)
    assert (cols.to_arrow(1).to_pylist(), cols.resources().to_pylist()) == before


def test_document_reader_uses_it_too():
    data = (SAMPLE / "email-drafter.otlp.json").read_bytes()
    c1, r1, s1 = otlp.parse_document(data)
    c2, r2, s2 = otlp.parse_document(data, fast=otlp_fast.add_line)
    assert s1 == s2 > 0 and not r1 and not r2
    assert c1.to_arrow(1).to_pylist() == c2.to_arrow(1).to_pylist()
    assert taken_by_fast_path(data)


def test_worker_pool_paths_store_what_the_inline_reader_stores(tmp_path):
    """A file over the parallel size, plain (workers read their own byte ranges) and gzip (blocks sent
    from the inflating process), with bad lines spread over many blocks: the same spans and the same
    rejects, at the same line numbers and offsets, as parsing it inline in one process."""
    from llmaudit.ingest.pipeline import Ingestor
    from llmaudit.ingest.sources import expand_paths
    from llmaudit.ingest.traces.otlp_jsonl import PARALLEL_MIN_BYTES
    from llmaudit.store import Store

    lines = []
    for i in range(1200):
        lines.append(json.dumps(f.request([s for _ in range(12) for s in f.simple_trace(n_llm=3)])))
        if i % 97 == 5:
            lines.append('{"resourceSpans": [ not json')
        if i % 131 == 7:
            lines.append(json.dumps(_edit(lambda d: _span(d).update(startTimeUnixNano="soon"))))
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > PARALLEL_MIN_BYTES
    plain = tmp_path / "plain" / "t.jsonl"
    packed = tmp_path / "packed" / "t.jsonl.gz"
    plain.parent.mkdir()
    packed.parent.mkdir()
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data, compresslevel=1))

    def stored(path, workers):
        with Store(tmp_path / f"{path.parent.name}-{workers}.duckdb") as store:
            report = Ingestor(store, workers=workers).run(expand_paths([str(path)]))
            spans = store.execute("SELECT * EXCLUDE (file_id) FROM spans ORDER BY trace_id, span_id").fetchall()
            rejects = store.execute("SELECT line, byte_offset, record, reason FROM rejects ORDER BY line, record").fetchall()
            return report.files[0].records, spans, rejects

    inline = stored(plain, 1)
    assert len(inline[2]) == 13 + 10 and len(inline[1]) == 1200 * 12 * 4 - 10 + 10 * 3
    assert stored(plain, 2) == inline
    assert stored(packed, 2) == inline
    assert packed.stat().st_size < PARALLEL_MIN_BYTES  # parallel by its decompressed size
