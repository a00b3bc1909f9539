"""Hostile and broken inputs: each gets an exact, asserted outcome, and nothing stored is lost."""

from __future__ import annotations

import gzip
import json
import os
import zlib

import otlp_factory as f


def spans_in(store) -> int:
    return store.scalar("SELECT count(*) FROM spans")


def rejects(store) -> list[tuple]:
    return store.execute("SELECT line, record, reason FROM rejects ORDER BY line NULLS FIRST, record").fetchall()


def test_truncated_gzip_keeps_complete_lines_and_rejects_the_rest(tmp_path, store, ingest):
    docs = [f.request(f.simple_trace(n_llm=3)) for _ in range(40)]
    raw = "".join(json.dumps(d) + "\n" for d in docs).encode()
    packed = gzip.compress(raw)
    cut = packed[: len(packed) // 2]
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(cut)
    # Independent truth: what zlib can inflate from the cut stream, in whole lines.
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    whole_lines = readable.count(b"\n")
    assert 0 < whole_lines < 40

    report = ingest(path)

    assert spans_in(store) == whole_lines * 4
    reasons = [r[2] for r in rejects(store)]
    assert any(r.startswith("truncated gzip stream") for r in reasons)
    # The partial last line is rejected as invalid JSON, with its line number.
    partial = [r for r in rejects(store) if r[2].startswith("invalid JSON")]
    assert [r[0] for r in partial] == [whole_lines + 1]
    assert report.files[0].status == "ingested"
    assert report.files[0].rejects == 2


def test_truncated_gzip_under_strict_stores_nothing_from_the_file(tmp_path, store, ingest):
    good = tmp_path / "good.jsonl"
    f.write_jsonl(good, [f.request(f.simple_trace())])
    raw = "".join(json.dumps(f.request(f.simple_trace())) + "\n" for _ in range(30)).encode()
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(gzip.compress(raw)[:-40])

    report = ingest(good, bad, strict=True)

    statuses = {os.path.basename(r.path): r.status for r in report.files}
    assert statuses == {"good.jsonl": "ingested", "bad.jsonl.gz": "rejected"}
    assert report.failed_strict
    assert spans_in(store) == 3  # the good file only
    assert store.scalar("SELECT count(*) FROM ingest_log WHERE path LIKE '%bad.jsonl.gz'") == 0


def test_json_that_is_not_a_trace_is_one_reject_and_nothing_stored(tmp_path, store, ingest):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hello": "world", "items": [1, 2, 3]}))

    report = ingest(path)

    assert report.files[0].status == "unrecognized"
    assert spans_in(store) == 0
    assert [r[2] for r in rejects(store)] == [
        "not a recognized trace, billing or metrics format (use --input-format to force one)"
    ]


def test_binary_junk_is_unrecognized_and_forced_format_rejects_each_line(tmp_path, store, ingest):
    junk = bytes((i * 73 + 41) % 256 for i in range(5000))  # deterministic, has newlines
    path = tmp_path / "junk.bin"
    path.write_bytes(junk)

    assert ingest(path).files[0].status == "unrecognized"

    report = ingest(path, fmt="otlp-jsonl")  # same content hash, but unrecognized files are not logged
    lines = [ln for ln in junk.split(b"\n") if ln.strip()]
    assert report.files[0].status == "ingested"
    assert report.files[0].rejects == len(lines)
    assert spans_in(store) == 0


def test_empty_file_is_fine_and_logged(tmp_path, store, ingest):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = ingest(path, strict=True)
    assert report.files[0].status == "empty"
    assert not report.failed_strict
    assert rejects(store) == []
    assert ingest(path).files[0].status == "already ingested"


def test_single_50mb_line(tmp_path, store, ingest):
    per_trace = len(json.dumps(f.simple_trace(n_llm=9, tokens=(1234, 56))))
    spans = []
    for _ in range(50 * 2**20 // per_trace + 10):
        spans.extend(f.simple_trace(n_llm=9, tokens=(1234, 56)))
    doc = json.dumps(f.request(spans))
    assert "\n" not in doc and len(doc) > 50 * 2**20
    path = tmp_path / "one-line.jsonl"
    path.write_text(doc + "\n")

    report = ingest(path)

    assert report.files[0].format == "otlp-jsonl"
    assert spans_in(store) == len(spans)
    n_llm = len(spans) // 10 * 9
    assert store.execute("SELECT count(*), sum(input_tokens) FROM llm_calls").fetchone() == (n_llm, n_llm * 1234)


def test_same_spans_in_two_files_are_stored_once(tmp_path, store, ingest):
    traces = [f.simple_trace() for _ in range(5)]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.json"
    f.write_jsonl(a, [f.request(t) for t in traces])
    b.write_text(json.dumps(f.request([s for t in traces[2:] for s in t] + f.simple_trace())))  # 3 old traces + 1 new

    report = ingest(a, b)

    by_name = {os.path.basename(r.path): r for r in report.files}
    assert by_name["a.jsonl"].stored == 15
    assert (by_name["b.json"].stored, by_name["b.json"].duplicates) == (3, 9)
    assert spans_in(store) == 18
    assert store.scalar("SELECT count(*) FROM (SELECT DISTINCT trace_id, span_id FROM spans)") == 18


def test_reingesting_the_same_file_adds_nothing(tmp_path, store, ingest):
    path = tmp_path / "t.jsonl"
    f.write_jsonl(path, [f.request(f.simple_trace()) for _ in range(3)])
    ingest(path)
    before = store.execute("SELECT count(*), count(DISTINCT file_id) FROM spans").fetchone()
    copy = tmp_path / "copy-with-other-name.jsonl"
    copy.write_bytes(path.read_bytes())
    report = ingest(path, copy)
    assert [r.status for r in report.files] == ["already ingested", "already ingested"]
    assert store.execute("SELECT count(*), count(DISTINCT file_id) FROM spans").fetchone() == before


def test_orphan_spans_are_kept_and_counted(tmp_path, store, ingest):
    tid = f.new_trace_id()
    root = f.new_span_id()
    spans = [
        f.span(tid, root, None, "root", start_ns=f.T0),
        f.llm_span(tid, "deadbeefdeadbeef", start_ns=f.T0 + 10),  # parent never exported
        f.llm_span(tid, "feedfacefeedface", start_ns=f.T0 + 20),
    ]
    path = tmp_path / "orphans.jsonl"
    f.write_jsonl(path, [f.request(spans)])
    ingest(path)
    assert spans_in(store) == 3
    assert store.execute("SELECT root_span_id, orphan_spans, llm_calls FROM requests").fetchall() == [(root, 2, 2)]


def test_parent_cycle_is_stored_and_derive_terminates(tmp_path, store, ingest):
    tid = f.new_trace_id()
    a, b = f.new_span_id(), f.new_span_id()
    spans = [f.span(tid, a, b, "a", start_ns=f.T0 + 5_000_000), f.span(tid, b, a, "b", start_ns=f.T0)]
    path = tmp_path / "cycle.jsonl"
    f.write_jsonl(path, [f.request(spans)])
    ingest(path)
    # No span lacks a parent: the earliest span stands as the root.
    assert store.execute("SELECT root_span_id, spans FROM requests").fetchall() == [(b, 2)]


def test_child_clock_skewed_before_parent(tmp_path, store, ingest):
    tid = f.new_trace_id()
    root = f.new_span_id()
    spans = [
        f.span(tid, root, None, "root", kind=2, start_ns=f.T0 + 2_000_000_000, dur_ns=1_000_000_000),
        f.llm_span(tid, root, start_ns=f.T0),  # starts 2 s before its parent
    ]
    path = tmp_path / "skew.jsonl"
    f.write_jsonl(path, [f.request(spans)])
    ingest(path)
    row = store.execute("SELECT root_span_id, start_time, llm_calls FROM requests").fetchone()
    assert row[0] == root  # the root is still the parentless span, not the earliest one
    assert row[1].isoformat() == "2025-11-09T00:00:00"
    assert row[2] == 1


def test_unicode_and_control_characters_round_trip(tmp_path, store, ingest):
    tid = f.new_trace_id()
    name = "résumé 🤖 \u202e\x07\x1b[31m 名前\x00end"
    value = "tab\tnewline\ncr\r\"quote\" <script>alert(1)</script> \u0000 \ufeff"
    spans = [f.span(tid, f.new_span_id(), None, name, attrs={"weird.key\u2028": value, "plain": "ok"})]
    path = tmp_path / "unicode.jsonl"
    f.write_jsonl(path, [f.request(spans)])
    report = ingest(path)
    assert report.files[0].rejects == 0
    got_name, got_value = store.execute(
        """SELECT name, json_extract_string(attributes, '$."weird.key\u2028"') FROM spans"""
    ).fetchone()
    assert got_name == name
    assert got_value == value


def test_bad_records_are_rejected_with_line_and_the_rest_is_read(tmp_path, store, ingest):
    good = f.request(f.simple_trace())
    bad_span = f.request(f.simple_trace())
    bad_span["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "not-hex"
    lines = [json.dumps(good), "{not json", json.dumps({"resourceSpans": "oops"}), json.dumps(bad_span), json.dumps(f.request(f.simple_trace()))]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")

    report = ingest(path)

    assert spans_in(store) == 3 + 2 + 3
    got = rejects(store)
    assert [(r[0], r[1]) for r in got] == [(2, None), (3, None), (4, "resourceSpans[0].scopeSpans[0].spans[1]")]
    assert got[0][2].startswith("invalid JSON")
    assert got[1][2] == "not an OTLP trace export: no resourceSpans list"
    assert "traceId must be 32 hex digits" in got[2][2]
    assert report.files[0].rejects == 3
