"""The store file: resources stored once, and an older store upgraded in place when opened."""

from __future__ import annotations

import duckdb

from conftest import REPO
from llmaudit.ingest.traces.spans import resource_id
from llmaudit.store import Store

SUPPORT_BOT = REPO / "sample_traces" / "support-bot.otlp.jsonl.gz"


def test_resources_are_stored_once_and_join_back(ingest, store):
    ingest(SUPPORT_BOT)
    spans, resources, linked = store.con.execute(
        """SELECT count(*), (SELECT count(*) FROM resources), count(r.resource_id)
           FROM spans s LEFT JOIN resources r USING (resource_id)""").fetchone()
    assert spans == 24082 and linked == spans
    # Each distinct resource once, under the hash of its JSON text.
    rows = store.con.execute("SELECT resource_id, attributes FROM resources ORDER BY 1").fetchall()
    assert len(rows) == resources and 1 <= resources < 20
    assert all(rid == resource_id(text) for rid, text in rows)
    services = {s for (s,) in store.con.execute(
        "SELECT DISTINCT attr(r.attributes, 'service.name') FROM spans JOIN resources r USING (resource_id)").fetchall()}
    assert services == {s for (s,) in store.con.execute("SELECT DISTINCT service FROM spans").fetchall()}
    # Ingesting the same spans again (another file, same content) adds no resource twice.
    before = store.scalar("SELECT count(*) FROM resources")
    ingest(SUPPORT_BOT)
    assert store.scalar("SELECT count(*) FROM resources") == before


def test_a_version_1_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    # The version 1 spans table kept each span's resource attributes in the span.
    con.execute("""CREATE TABLE spans (trace_id VARCHAR NOT NULL, span_id VARCHAR NOT NULL, parent_span_id VARCHAR,
                   name VARCHAR, kind VARCHAR, start_time TIMESTAMP NOT NULL, end_time TIMESTAMP, duration_ms DOUBLE,
                   status_code VARCHAR, status_message VARCHAR, service VARCHAR, scope_name VARCHAR, attributes VARCHAR,
                   resource_attributes VARCHAR, events VARCHAR, file_id INTEGER)""")
    res_a, res_b = '{"service.name":"a"}', '{"service.name":"b","host.name":"h1"}'
    con.executemany("INSERT INTO spans (trace_id, span_id, start_time, service, attributes, resource_attributes) "
                    "VALUES (?, ?, TIMESTAMP '2026-11-09 10:00:00', ?, '{}', ?)",
                    [("a" * 32, f"{i:016x}", "a" if i < 3 else "b", res_a if i < 3 else res_b) for i in range(5)])
    con.close()
    with Store(path) as store:
        cols = {c for (c,) in store.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'spans'").fetchall()}
        assert "resource_attributes" not in cols and "resource_id" in cols
        got = store.con.execute("""SELECT s.span_id, r.attributes FROM spans s JOIN resources r USING (resource_id)
                                   ORDER BY s.span_id""").fetchall()
        assert got == [(f"{i:016x}", res_a if i < 3 else res_b) for i in range(5)]
        assert store.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == "2"
