"""Billing formats read into the FOCUS-shaped billing table: totals equal sums computed here from the
rows the test wrote, bad rows become rejects naming their line or record, nothing is stored twice."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.registry import detect
from llmaudit.ingest.sources import expand_paths
from llmaudit.store import Store


@pytest.fixture
def db(tmp_path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def ingest(store, *paths, strict=False, fmt=None):
    return Ingestor(store, strict=strict, force_format=fmt, workers=1).run(expand_paths([str(p) for p in paths]))


def close(a, b):
    return abs(a - b) < 1e-9


# ------------------------------------------------------------------------------------------- FOCUS

FOCUS_HEADER = [
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency", "BillingAccountId",
    "SubAccountId", "SubAccountName", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
    "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeFrequency", "ChargeDescription", "ProviderName",
    "PublisherName", "ServiceName", "ServiceCategory", "ServiceSubcategory", "SkuId", "SkuPriceId", "SkuMeter",
    "ResourceId", "ResourceName", "ResourceType", "RegionId", "PricingQuantity", "PricingUnit", "ConsumedQuantity",
    "ConsumedUnit", "ListUnitPrice", "ContractedUnitPrice", "Tags", "x_UsageType", "x_Operation",
]


def focus_row(cost, effective, day, service, category="AI and Machine Learning", currency="USD", **extra):
    row = {h: "" for h in FOCUS_HEADER}
    row.update({
        "BilledCost": str(cost), "EffectiveCost": str(effective), "ListCost": str(cost), "ContractedCost": str(cost),
        "BillingCurrency": currency, "BillingAccountId": "111122223333", "SubAccountId": "444455556666",
        "SubAccountName": "search-prod", "BillingPeriodStart": "2025-11-01T00:00:00Z",
        "BillingPeriodEnd": "2025-12-01T00:00:00Z", "ChargePeriodStart": f"2025-11-{day:02d}T00:00:00Z",
        "ChargePeriodEnd": f"2025-11-{day + 1:02d}T00:00:00Z", "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based", "ProviderName": "Amazon Web Services", "PublisherName": "Amazon Web Services",
        "ServiceName": service, "ServiceCategory": category, "RegionId": "us-east-1",
    })
    row.update(extra)
    return row


def focus_rows():
    bedrock = dict(ServiceSubcategory="Generative AI", PublisherName="Anthropic", ConsumedUnit="Tokens",
                   PricingUnit="1K Tokens", Tags='{"team":"search","env":"prod"}', x_Operation="InvokeModel",
                   ResourceId="arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0")
    return [
        focus_row("12.5", "11.25", 1, "Amazon Bedrock", ConsumedQuantity="4166667", ListUnitPrice="0.003",
                  x_UsageType="USE1-Claude4.5Sonnet-input-tokens", ChargeDescription="$0.003 per 1K input tokens", **bedrock),
        focus_row("30", "27", 1, "Amazon Bedrock", ConsumedQuantity="2000000", ListUnitPrice="0.015",
                  x_UsageType="USE1-Claude4.5Sonnet-output-tokens",
                  ChargeDescription='Claude Sonnet 4.5, "output" tokens\n(on-demand, cross-region)', **bedrock),
        focus_row("0.9", "0.81", 1, "Amazon Bedrock", ConsumedQuantity="3000000",
                  x_UsageType="USE1-Claude4.5Sonnet-cache-read-input-token-count", **bedrock),
        focus_row("7.25", "7.25", 2, "Amazon Bedrock", ConsumedQuantity="2416667",
                  x_UsageType="USE1-Claude4.5Sonnet-input-tokens", **bedrock),
        focus_row("98.32", "55.04", 1, "Amazon Elastic Compute Cloud", category="Compute", ResourceId="i-0abc",
                  ResourceName="llama-server-1", ConsumedQuantity="1", ConsumedUnit="Hours",
                  x_UsageType="USE1-BoxUsage:p5.48xlarge"),
        focus_row("98.32", "55.04", 2, "Amazon Elastic Compute Cloud", category="Compute", ResourceId="i-0abc",
                  ResourceName="llama-server-1", ConsumedQuantity="1", ConsumedUnit="Hours"),
        focus_row("1.10", "1.10", 1, "Amazon Bedrock", ChargeCategory="Tax", ChargeFrequency="Recurring"),
        focus_row("1.10", "1.10", 1, "Amazon Bedrock", ChargeCategory="Tax", ChargeFrequency="Recurring"),
        focus_row("-5", "-5", 2, "Amazon Bedrock", ChargeCategory="Credit", ChargeFrequency="One-Time",
                  ChargeDescription="Promotional credit"),
        focus_row("4.2", "4.2", 2, "Azure OpenAI", currency="EUR", ProviderName="Microsoft",
                  PublisherName="OpenAI", SkuMeter="gpt-4o-2024-08-06 input tokens", ConsumedQuantity="1680000",
                  x_UsageType=""),
    ]


def write_csv(path, header, rows, bad_after=None, bad_row=None):
    """Write rows; a bad row (if any) after row index bad_after. Returns the bad row's physical line."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    bad_line = None
    for i, row in enumerate(rows):
        writer.writerow(row)
        if i == bad_after:
            bad_line = buf.getvalue().count("\n") + 1
            writer.writerow(bad_row)
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return bad_line


def sums_by_service_day(rows):
    """Independent totals: BilledCost and EffectiveCost per (service, day, currency)."""
    out = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in rows:
        key = (r["ServiceName"], r["ChargePeriodStart"][:10], r["BillingCurrency"])
        out[key][0] += Decimal(r["BilledCost"])
        out[key][1] += Decimal(r["EffectiveCost"])
    return {k: (float(v[0]), float(v[1])) for k, v in out.items()}


def stored_sums(store):
    rows = store.execute("""
        SELECT service_name, strftime(charge_period_start, '%Y-%m-%d'), currency, sum(billed_cost), sum(effective_cost)
        FROM billing GROUP BY ALL""").fetchall()
    return {(s, d, c): (b, e) for s, d, c, b, e in rows}


def assert_sums(store, rows):
    expected = sums_by_service_day(rows)
    got = stored_sums(store)
    assert set(got) == set(expected)
    for key, (billed, effective) in expected.items():
        assert close(got[key][0], billed) and close(got[key][1], effective), key


@pytest.mark.parametrize("name", ["focus.csv", "focus.csv.gz"])
def test_focus_csv_totals_reject_and_reingest(tmp_path, db, name):
    rows = focus_rows()
    bad = focus_row("n/a", "1", 3, "Amazon Bedrock")
    path = tmp_path / name
    bad_line = write_csv(path, FOCUS_HEADER, rows, bad_after=1, bad_row=bad)
    assert bad_line == 5  # header, row 1, row 2 spanning two lines (quoted newline), then the bad row

    report = ingest(db, path)
    f = report.files[0]
    assert (f.format, f.status, f.records, f.stored, f.rejects) == ("focus-csv", "ingested", len(rows) + 1, len(rows), 1)
    assert_sums(db, rows)
    assert db.execute("SELECT line, reason FROM rejects").fetchall() == [(5, "BilledCost: not a number: 'n/a'")]
    # Two identical tax rows in one file are two charges: both kept.
    assert db.scalar("SELECT count(*) FROM billing WHERE charge_category = 'Tax'") == 2

    again = ingest(db, path)
    assert again.files[0].status == "already ingested"
    assert db.scalar("SELECT count(*) FROM billing") == len(rows)


def test_focus_columns_mapped(tmp_path, db):
    path = tmp_path / "focus.csv"
    write_csv(path, FOCUS_HEADER, focus_rows())
    ingest(db, path)
    row = db.execute("""
        SELECT provider, publisher, model, token_type, consumed_quantity, consumed_unit, list_unit_price, currency,
               billing_account_id, sub_account_id, tags->>'team', extras->>'x_Operation', extras->>'SubAccountName',
               charge_period_start, billing_period_end, source_format
        FROM billing WHERE extras->>'x_UsageType' = 'USE1-Claude4.5Sonnet-output-tokens'""").fetchone()
    assert row == ("aws", "Anthropic", "anthropic.claude-sonnet-4-5-20250929-v1:0", "output", 2000000.0, "Tokens", 0.015, "USD",
                   "111122223333", "444455556666", "search", "InvokeModel", "search-prod",
                   datetime(2025, 11, 1), datetime(2025, 12, 1), "focus-csv")
    assert db.scalar("SELECT charge_description FROM billing WHERE token_type = 'output'") == \
        'Claude Sonnet 4.5, "output" tokens\n(on-demand, cross-region)'
    # Compute rows are not model charges, whatever their resource is called.
    assert db.execute("SELECT DISTINCT model, token_type FROM billing WHERE service_category = 'Compute'").fetchall() == [(None, None)]
    assert db.execute("SELECT model, token_type, provider FROM billing WHERE currency = 'EUR'").fetchone() == \
        ("gpt-4o-2024-08-06", "input", "azure")
    assert db.scalar("SELECT token_type FROM billing WHERE extras->>'x_UsageType' LIKE '%cache-read%'") == "cached_input"


def test_currencies_are_kept_per_row_and_summed_apart(tmp_path, db):
    rows = focus_rows()
    path = tmp_path / "focus.csv"
    write_csv(path, FOCUS_HEADER, rows)
    ingest(db, path)
    expected = defaultdict(Decimal)
    for r in rows:
        expected[r["BillingCurrency"]] += Decimal(r["BilledCost"])
    got = dict(db.execute("SELECT currency, sum(billed_cost) FROM billing GROUP BY currency").fetchall())
    assert set(got) == {"USD", "EUR"}
    assert all(close(got[c], float(v)) for c, v in expected.items())


def test_overlapping_exports_add_only_new_rows(tmp_path, db):
    rows = focus_rows()
    first, second = tmp_path / "oct-1-15.csv", tmp_path / "oct-1-31.csv"
    write_csv(first, FOCUS_HEADER, rows[:6])
    write_csv(second, FOCUS_HEADER, rows[3:])  # rows 3..5 are in both exports
    ingest(db, first)
    report = ingest(db, second)
    assert (report.files[0].stored, report.files[0].duplicates) == (len(rows) - 6, 3)
    assert db.scalar("SELECT count(*) FROM billing") == len(rows)
    assert_sums(db, rows)


def test_strict_rolls_back_a_file_with_rejects(tmp_path, db):
    rows = focus_rows()
    path = tmp_path / "focus.csv"
    line = write_csv(path, FOCUS_HEADER, rows, bad_after=4, bad_row=focus_row("1", "1", 40, "Amazon Bedrock"))
    report = ingest(db, path, strict=True)
    f = report.files[0]
    assert f.status == "rejected" and f.first_reject == f"line {line}: ChargePeriodStart: not a date-time: '2025-11-40T00:00:00Z'"
    assert db.scalar("SELECT count(*) FROM billing") == 0
    assert db.scalar("SELECT count(*) FROM ingest_log") == 0
    # Without --strict the same file is read, less its bad row.
    assert ingest(db, path).files[0].stored == len(rows)
    assert_sums(db, rows)


def test_csv_structure_errors_name_their_lines(tmp_path, db):
    path = tmp_path / "focus.csv"
    header = "BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ServiceName\n"
    body = (b"1.5,1.5,USD,2025-11-01T00:00:00Z,Bedrock\n"
            b"2.5,2.5,USD\n"                                      # too few fields
            b"\xff\xfe,1,USD,2025-11-01T00:00:00Z,Bedrock\n"      # not UTF-8
            b"3,3,USD,,Bedrock\n"                                 # no charge period
            b"4,4,usd,2025-11-02 00:00:00,Bedrock\n")
    path.write_bytes(header.encode() + body)
    ingest(db, path)
    assert db.execute("SELECT line, reason FROM rejects ORDER BY line").fetchall() == [
        (3, "expected 5 fields (as in the header), got 3"),
        (4, "not valid UTF-8 text"),
        (5, "ChargePeriodStart is empty"),
    ]
    assert db.execute("SELECT billed_cost, currency FROM billing ORDER BY billed_cost").fetchall() == [(1.5, "USD"), (4.0, "USD")]


def test_focus_parquet(tmp_path, db):
    rows = focus_rows()
    columns = {h: [r[h] or None for r in rows] for h in FOCUS_HEADER}
    for money in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        columns[money] = pa.array([Decimal(v) for v in columns[money]], pa.decimal128(18, 6))
    for t in ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd"):
        columns[t] = pa.array([datetime.fromisoformat(v) for v in columns[t]], pa.timestamp("us", tz="UTC"))
    for q in ("ConsumedQuantity", "PricingQuantity", "ListUnitPrice", "ContractedUnitPrice"):
        columns[q] = pa.array([float(v) if v else None for v in columns[q]], pa.float64())
    columns["BillingCurrency"] = pa.array([r["BillingCurrency"] for r in rows[:-1]] + ["EURO"])  # last row bad
    path = tmp_path / "focus-2025-11.parquet"
    pq.write_table(pa.table(columns), path)

    f = ingest(db, path).files[0]
    assert (f.format, f.stored, f.rejects) == ("focus-parquet", len(rows) - 1, 1)
    assert db.execute("SELECT record, reason FROM rejects").fetchall() == [
        (f"row {len(rows) - 1}", "BillingCurrency: not an ISO 4217 currency code: 'EURO'")]
    assert_sums(db, rows[:-1])
    assert db.scalar("SELECT charge_period_start FROM billing ORDER BY charge_period_start LIMIT 1") == datetime(2025, 11, 1)


# --------------------------------------------------------------------------------------------- OpenAI

def openai_usage_page():
    def result(model, project, inp, cached, out, requests):
        return {"object": "organization.usage.completions.result", "input_tokens": inp, "output_tokens": out,
                "input_cached_tokens": cached, "input_audio_tokens": 0, "output_audio_tokens": 0,
                "num_model_requests": requests, "project_id": project, "user_id": None, "api_key_id": None,
                "model": model, "batch": None}

    day = 86400
    t0 = 1762646400  # 2025-11-09T00:00:00Z
    return {"object": "page", "has_more": False, "next_page": None, "data": [
        {"object": "bucket", "start_time": t0, "end_time": t0 + day, "results": [
            result("gpt-4o-2024-08-06", "proj_a", 120_000, 40_000, 9_000, 300),
            result("gpt-4o-mini-2024-07-18", "proj_a", 500_000, 0, 60_000, 900),
        ]},
        {"object": "bucket", "start_time": t0 + day, "end_time": t0 + 2 * day, "results": [
            result("gpt-4o-2024-08-06", "proj_b", 80_000, 10_000, 4_000, 120),
            result("gpt-4o-mini-2024-07-18", "proj_a", 0, 0, 0, 0),
            {**result("gpt-4o-2024-08-06", "proj_c", 1, 0, 1, 1), "input_tokens": "lots"},
        ]},
    ]}


def test_openai_usage_json(tmp_path, db):
    page = openai_usage_page()
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(page, indent=2))
    f = ingest(db, path).files[0]
    assert (f.format, f.records, f.rejects) == ("openai-usage-json", 5, 1)
    assert db.execute("SELECT record, reason FROM rejects").fetchall() == [
        ("data[1].results[2]", "input_tokens: not a number: 'lots'")]
    expected = defaultdict(float)
    for bucket in page["data"]:
        for r in bucket["results"]:
            if isinstance(r["input_tokens"], str):
                continue
            expected[(r["model"], "input")] += r["input_tokens"] - r["input_cached_tokens"]
            expected[(r["model"], "cached_input")] += r["input_cached_tokens"]
            expected[(r["model"], "output")] += r["output_tokens"]
    expected = {k: v for k, v in expected.items() if v}
    got = dict(((m, t), q) for m, t, q in db.execute(
        "SELECT model, token_type, sum(consumed_quantity) FROM billing GROUP BY ALL").fetchall())
    assert got == expected
    assert db.execute("SELECT DISTINCT provider, charge_category, billed_cost, consumed_unit FROM billing").fetchall() == [
        ("openai", "Usage", None, "tokens")]
    assert db.scalar("SELECT min(charge_period_start) FROM billing") == datetime(2025, 11, 9)
    assert db.scalar("SELECT extras->>'num_model_requests' FROM billing WHERE sub_account_id = 'proj_b' LIMIT 1") == "120"
    assert ingest(db, path).files[0].status == "already ingested"


def test_openai_costs_jsonl_pages(tmp_path, db):
    t0 = 1762646400
    items = [("gpt-4o-2024-08-06, input", 0.3), ("gpt-4o-2024-08-06, output", 0.09),
             ("gpt-4o-2024-08-06, cached input", 0.05), ("Image models", 0.04)]
    pages = []
    for d in range(2):
        results = [{"object": "organization.costs.result", "amount": {"value": v * (d + 1), "currency": "usd"},
                    "line_item": item, "project_id": "proj_a"} for item, v in items]
        pages.append({"object": "page", "data": [{"object": "bucket", "start_time": t0 + d * 86400,
                                                   "end_time": t0 + (d + 1) * 86400, "results": results}],
                      "has_more": d == 0, "next_page": "page_2" if d == 0 else None})
    pages[1]["data"][0]["results"].append({"object": "organization.costs.result", "amount": {"value": 1.0},
                                           "line_item": "gpt-4o, input"})
    path = tmp_path / "openai-costs.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in pages) + "\n")
    f = ingest(db, path).files[0]
    assert (f.format, f.stored, f.rejects) == ("openai-costs-json", 8, 1)
    assert db.execute("SELECT line, record, reason FROM rejects").fetchall() == [
        (2, "data[0].results[4]", "amount needs both value and currency")]
    by_day = dict(db.execute("SELECT CAST(charge_period_start AS DATE)::VARCHAR, sum(billed_cost) FROM billing GROUP BY 1").fetchall())
    total = sum(v for _, v in items)
    assert close(by_day["2025-11-09"], total) and close(by_day["2025-11-10"], 2 * total)
    assert db.execute("""SELECT model, token_type, currency FROM billing
                         WHERE sku_meter = 'gpt-4o-2024-08-06, cached input' LIMIT 1""").fetchone() == \
        ("gpt-4o-2024-08-06", "cached_input", "USD")
    assert db.execute("SELECT model, token_type FROM billing WHERE sku_meter = 'Image models' LIMIT 1").fetchone() == (None, None)


# Every usage endpoint's result object, as the API documents them, and result types it may add later.
# (result, expected rows as (sku_meter, quantity, unit, model, token type))
T_DAY = 1762646400  # 2025-11-09T00:00:00Z
OPENAI_RESULTS = [
    ({"object": "organization.usage.embeddings.result", "input_tokens": 16, "num_model_requests": 2,
      "model": "text-embedding-3-small"},
     [("embeddings input", 16, "tokens", "text-embedding-3-small", "input")]),
    ({"object": "organization.usage.moderations.result", "input_tokens": 30, "num_model_requests": 3, "model": None},
     [("moderations input", 30, "tokens", None, "input")]),
    ({"object": "organization.usage.images.result", "images": 2, "num_model_requests": 2, "size": "1024x1024",
      "source": "image.generation", "model": "dall-e-3"}, [("images images", 2, "images", "dall-e-3", None)]),
    ({"object": "organization.usage.audio_speeches.result", "characters": 45, "num_model_requests": 1, "model": "tts-1"},
     [("audio speeches characters", 45, "characters", "tts-1", None)]),
    ({"object": "organization.usage.audio_transcriptions.result", "seconds": 20, "num_model_requests": 1,
      "model": "whisper-1"}, [("audio transcriptions seconds", 20, "seconds", "whisper-1", None)]),
    ({"object": "organization.usage.vector_stores.result", "usage_bytes": 1024, "project_id": "proj_a"},
     [("vector stores bytes", 1024, "bytes", None, None)]),
    ({"object": "organization.usage.code_interpreter_sessions.result", "num_sessions": 3, "project_id": None},
     [("code interpreter sessions sessions", 3, "sessions", None, None)]),
    ({"object": "organization.usage.file_searches.result", "num_requests": 7, "vector_store_id": "vs_1"},
     [("file searches requests", 7, "requests", None, None)]),
    ({"object": "organization.usage.web_searches.result", "num_model_requests": 2, "num_requests": 5,
      "model": "gpt-4o-mini", "context_level": "medium"}, [("web searches requests", 5, "requests", "gpt-4o-mini", None)]),
    # Types this reader has never seen: tokens are read as completions, else the first count, else kept bare.
    ({"object": "organization.usage.responses.result", "input_tokens": 900, "input_cached_tokens": 100,
      "output_tokens": 50, "model": "gpt-5"},
     [("responses input", 800, "tokens", "gpt-5", "input"), ("responses cached input", 100, "tokens", "gpt-5", "cached_input"),
      ("responses output", 50, "tokens", "gpt-5", "output")]),
    ({"object": "organization.usage.container_sessions.result", "num_model_requests": 4, "num_sessions": 9},
     [("container sessions sessions", 9, "sessions", None, None)]),
    ({"object": "organization.usage.agent_minutes.result", "minutes": 12.5}, [("agent minutes minutes", 12.5, "minutes", None, None)]),
    ({"object": "organization.usage.realtime_seats.result", "tier": "pro", "model": "gpt-realtime"},
     [("realtime seats usage", None, None, "gpt-realtime", None)]),
]


def test_openai_every_usage_result_type_is_stored(tmp_path, db):
    pages = [{"object": "page", "data": [{"object": "bucket", "start_time": T_DAY, "end_time": T_DAY + 86400,
                                          "results": [result]}], "has_more": False, "next_page": None}
             for result, _ in OPENAI_RESULTS]
    (tmp_path / "pages").mkdir()
    for i, page in enumerate(pages):
        (tmp_path / "pages" / f"usage_{i:02d}.json").write_text(json.dumps(page))
    report = ingest(db, tmp_path / "pages")
    assert [(f.format, f.rejects, f.notes) for f in report.files] == [("openai-usage-json", 0, [])] * len(pages)
    got = sorted(db.execute("SELECT sku_meter, consumed_quantity, consumed_unit, model, token_type FROM billing").fetchall(), key=str)
    assert got == sorted((row for _, rows in OPENAI_RESULTS for row in rows), key=str)
    # What no column holds is kept.
    assert db.scalar("SELECT extras->>'context_level' FROM billing WHERE sku_meter = 'web searches requests'") == "medium"
    assert db.scalar("SELECT extras->>'tier' FROM billing WHERE model = 'gpt-realtime'") == "pro"


def openai_page(results, has_more=False, next_page=None):
    return {"object": "page", "data": [{"object": "bucket", "start_time": T_DAY, "end_time": T_DAY + 86400,
                                        "results": results}], "has_more": has_more, "next_page": next_page}


def test_openai_page_with_more_to_fetch_is_an_incomplete_export(tmp_path, db):
    result = {"object": "organization.usage.completions.result", "input_tokens": 100, "output_tokens": 10}
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(openai_page([result], True, "page_AAAAAGdGxdEiJdKO")))
    f = ingest(db, path).files[0]
    assert f.stored == 2 and len(f.notes) == 1
    assert "has_more: true" in f.notes[0] and "page=page_AAAAAGdGxdEiJdKO" in f.notes[0]
    # Pages saved as JSON lines, the last one final: complete.
    lines = tmp_path / "all.jsonl"
    second = {**result, "input_tokens": 200}
    lines.write_text(json.dumps(openai_page([result], True, "page_2")) + "\n" + json.dumps(openai_page([second])) + "\n")
    assert ingest(db, lines).files[0].notes == []


def test_openai_pages_with_nothing_say_why(tmp_path, db):
    (tmp_path / "a").mkdir()
    empty = tmp_path / "a" / "usage.json"
    empty.write_text(json.dumps({"object": "page", "data": [], "has_more": False, "next_page": None}))
    assert ingest(db, empty).files[0].notes == ["no time buckets (the data list is empty): nothing to store"]
    quiet = tmp_path / "a" / "quiet.json"
    quiet.write_text(json.dumps(openai_page([])))
    assert ingest(db, quiet).files[0].notes == ["1 time bucket, all with an empty results list: no usage in that period"]
    zero = tmp_path / "a" / "zero.json"
    zero.write_text(json.dumps(openai_page([{"object": "organization.usage.completions.result", "input_tokens": 0,
                                              "output_tokens": 0}])))
    assert ingest(db, zero).files[0].notes == ["1 result, each with zero or no usage: nothing to store"]


# ------------------------------------------------------------------------------------------ Anthropic

def test_anthropic_usage_report(tmp_path, db):
    def result(model, ws, uncached, read, w5, w1, out):
        return {"uncached_input_tokens": uncached, "cache_read_input_tokens": read,
                "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1},
                "output_tokens": out, "server_tool_use": {"web_search_requests": 0}, "api_key_id": None,
                "workspace_id": ws, "model": model, "service_tier": "standard", "context_window": "0-200k"}

    doc = {"data": [
        {"starting_at": "2025-11-09T00:00:00Z", "ending_at": "2025-11-10T00:00:00Z", "results": [
            result("claude-sonnet-4-5-20250929", "wrkspc_1", 1000, 5000, 800, 0, 300),
            result("claude-haiku-4-5-20251001", None, 700, 0, 0, 200, 90)]},
        {"starting_at": "2025-11-10T00:00:00Z", "ending_at": "2025-11-11T00:00:00Z", "results": [
            result("claude-sonnet-4-5-20250929", "wrkspc_1", 2000, 0, 0, 0, 100), "oops"]},
    ], "has_more": False, "next_page": None}
    path = tmp_path / "claude-usage.json"
    path.write_text(json.dumps(doc))
    f = ingest(db, path).files[0]
    assert (f.format, f.rejects) == ("anthropic-usage-json", 1)
    assert db.execute("SELECT record, reason FROM rejects").fetchall() == [("data[1].results[1]", "a result must be a JSON object")]
    got = dict(((m, t), q) for m, t, q in db.execute(
        "SELECT model, token_type, sum(consumed_quantity) FROM billing GROUP BY ALL").fetchall())
    assert got == {
        ("claude-sonnet-4-5-20250929", "input"): 3000, ("claude-sonnet-4-5-20250929", "cached_input"): 5000,
        ("claude-sonnet-4-5-20250929", "cache_write"): 800, ("claude-sonnet-4-5-20250929", "output"): 400,
        ("claude-haiku-4-5-20251001", "input"): 700, ("claude-haiku-4-5-20251001", "cache_write_1h"): 200,
        ("claude-haiku-4-5-20251001", "output"): 90,
    }
    assert db.scalar("SELECT count(*) FROM billing WHERE billed_cost IS NOT NULL") == 0
    assert db.scalar("SELECT DISTINCT sub_account_id FROM billing WHERE model LIKE 'claude-sonnet%'") == "wrkspc_1"


def test_anthropic_cost_report_cents_to_dollars(tmp_path, db):
    amounts = ["123.45", "9876.5", "0.875", "12,34"]
    results = [{"currency": "USD", "amount": a, "workspace_id": "wrkspc_1", "description": "Claude Sonnet 4.5 Usage - Input Tokens",
                "cost_type": "tokens", "context_window": "0-200k", "model": "claude-sonnet-4-5-20250929",
                "service_tier": "standard", "token_type": t}
               for a, t in zip(amounts, ["uncached_input_tokens", "output_tokens", "cache_read_input_tokens",
                                         "cache_creation.ephemeral_5m_input_tokens"])]
    doc = {"data": [{"starting_at": "2025-11-09T00:00:00Z", "ending_at": "2025-11-10T00:00:00Z", "results": results}],
           "has_more": False, "next_page": None}
    path = tmp_path / "cost_report.json"
    path.write_text(json.dumps(doc))
    f = ingest(db, path).files[0]
    assert (f.format, f.stored, f.rejects) == ("anthropic-cost-json", 3, 1)
    assert db.execute("SELECT record, reason FROM rejects").fetchall() == [
        ("data[0].results[3]", "amount: not a decimal number of cents: '12,34'")]
    expected = float(sum(Decimal(a) for a in amounts[:3]) / 100)
    assert close(db.scalar("SELECT sum(billed_cost) FROM billing"), expected)
    assert db.execute("SELECT token_type, billed_cost FROM billing ORDER BY billed_cost").fetchall() == [
        ("cached_input", 0.00875), ("input", 1.2345), ("output", 98.765)]
    assert db.scalar("SELECT DISTINCT extras->>'cost_type' FROM billing") == "tokens"


# -------------------------------------------------------------------------------------------- AWS CUR

CUR_HEADER = [
    "bill_payer_account_id", "bill_billing_period_start_date", "bill_billing_period_end_date",
    "line_item_usage_account_id", "line_item_line_item_type", "line_item_usage_start_date", "line_item_usage_end_date",
    "line_item_product_code", "line_item_usage_type", "line_item_operation", "line_item_resource_id",
    "line_item_usage_amount", "line_item_currency_code", "line_item_unblended_rate", "line_item_unblended_cost",
    "line_item_net_unblended_cost", "line_item_line_item_description", "pricing_unit",
    "pricing_public_on_demand_cost", "product", "product_region_code", "resource_tags",
]


def cur_rows():
    def row(usage_type, amount, rate, day=9, product_code="AmazonBedrock", product=None, tags='{"user_team":"search"}',
            item_type="Usage", resource="", operation="InvokeModelInference"):
        cost = str(Decimal(amount) * Decimal(rate))
        return {
            "bill_payer_account_id": "111122223333", "bill_billing_period_start_date": "2025-11-01T00:00:00Z",
            "bill_billing_period_end_date": "2025-12-01T00:00:00Z", "line_item_usage_account_id": "444455556666",
            "line_item_line_item_type": item_type, "line_item_usage_start_date": f"2025-11-{day:02d}T00:00:00Z",
            "line_item_usage_end_date": f"2025-11-{day:02d}T01:00:00Z", "line_item_product_code": product_code,
            "line_item_usage_type": usage_type, "line_item_operation": operation,
            "line_item_resource_id": resource, "line_item_usage_amount": amount, "line_item_currency_code": "USD",
            "line_item_unblended_rate": rate, "line_item_unblended_cost": cost, "line_item_net_unblended_cost": cost,
            "line_item_line_item_description": f"{usage_type} usage", "pricing_unit": "tokens",
            "pricing_public_on_demand_cost": cost, "product": json.dumps(product or {"product_name": "Amazon Bedrock"}),
            "product_region_code": "us-east-1", "resource_tags": tags,
        }

    return [
        row("USE1-Llama3-3-70B-input-tokens", "1200000", "0.00000072"),
        row("USE1-Llama3-3-70B-output-tokens", "300000", "0.00000072"),
        row("USE1-NovaLite-cache-read-input-token-count", "500000", "0.000000015", day=10),
        row("USE1-MP:USE1_InputTokenCount-Units", "2000000", "0.000003", product_code="prod-4pmewlybdftbs",
            product={"product_name": "Claude Sonnet 4.5 (Amazon Bedrock Edition)"}),
        row("USE1-MP:USE1_OutputTokenCount-Units", "100000", "0.000015", product_code="prod-4pmewlybdftbs",
            product={"product_name": "Claude Sonnet 4.5 (Amazon Bedrock Edition)"}, tags=""),
        # Bedrock, but not a model's tokens: stored in the AI category, with no model.
        row("USE1-Guardrail-ContentPolicyUnitsConsumed", "40", "0.00075", day=10, operation="ApplyGuardrail"),
        # Not Bedrock at all: stored too, as the plain charge it is.
        row("USE1-BoxUsage:p5.48xlarge", "24", "55.04", product_code="AmazonEC2", operation="RunInstances",
            product={"product_name": "Amazon Elastic Compute Cloud"}, resource="i-0abc"),
    ]


# (model, token type) of each row of cur_rows(): the usage type, or the Marketplace product's name, read
# as a model id is spelled.
CUR_EXPECTED_MODELS = [
    ("llama3-3-70b", "input"), ("llama3-3-70b", "output"), ("nova-lite", "cached_input"),
    ("claude-sonnet-4.5", "input"), ("claude-sonnet-4.5", "output"), (None, None), (None, None),
]


def check_cur(db, rows):
    expected = defaultdict(Decimal)
    for r in rows:
        expected[r["line_item_usage_start_date"][:10]] += Decimal(r["line_item_unblended_cost"])
    got = dict(db.execute("SELECT strftime(charge_period_start, '%Y-%m-%d'), sum(billed_cost) FROM billing GROUP BY 1").fetchall())
    assert set(got) == set(expected) and all(close(got[d], float(v)) for d, v in expected.items())
    # Every line item is stored, in file order here by its usage type.
    stored = {u: (m, t, c) for u, m, t, c in db.execute(
        "SELECT sku_meter, model, token_type, service_category FROM billing").fetchall()}
    assert len(stored) == len(rows)
    for r, (model, token) in zip(rows, CUR_EXPECTED_MODELS):
        category = None if r["line_item_product_code"] == "AmazonEC2" else "AI and Machine Learning"
        assert stored[r["line_item_usage_type"]] == (model, token, category), r["line_item_usage_type"]
    assert db.execute("SELECT DISTINCT provider, charge_category, charge_frequency, currency, billing_account_id, "
                      "sub_account_id FROM billing").fetchall() == [
        ("aws", "Usage", "Usage-Based", "USD", "111122223333", "444455556666")]
    assert db.scalar("SELECT tags->>'user_team' FROM billing WHERE model = 'nova-lite'") == "search"
    # No commitments here: the amortized cost is the unblended cost on every line.
    assert db.scalar("SELECT count(*) FROM billing WHERE effective_cost IS DISTINCT FROM billed_cost") == 0


def test_aws_cur_csv_stores_every_line_item(tmp_path, db):
    rows = cur_rows()
    path = tmp_path / "cur-2025-11.csv.gz"
    write_csv(path, CUR_HEADER, rows)
    f = ingest(db, path).files[0]
    assert (f.format, f.records, f.stored, f.rejects, f.notes) == ("aws-cur", 7, 7, 0, [])
    check_cur(db, rows)
    assert db.scalar("SELECT service_name FROM billing WHERE model = 'claude-sonnet-4.5' LIMIT 1") == \
        "Claude Sonnet 4.5 (Amazon Bedrock Edition)"
    assert db.scalar("SELECT service_name FROM billing WHERE resource_id = 'i-0abc'") == "Amazon Elastic Compute Cloud"
    assert db.scalar("SELECT extras->>'line_item_operation' FROM billing WHERE resource_id = 'i-0abc'") == "RunInstances"


def test_aws_cur_legacy_column_names(tmp_path, db):
    legacy = {"bill_payer_account_id": "bill/PayerAccountId", "bill_billing_period_start_date": "bill/BillingPeriodStartDate",
              "bill_billing_period_end_date": "bill/BillingPeriodEndDate", "line_item_usage_account_id": "lineItem/UsageAccountId",
              "line_item_line_item_type": "lineItem/LineItemType", "line_item_usage_start_date": "lineItem/UsageStartDate",
              "line_item_usage_end_date": "lineItem/UsageEndDate", "line_item_product_code": "lineItem/ProductCode",
              "line_item_usage_type": "lineItem/UsageType", "line_item_operation": "lineItem/Operation",
              "line_item_resource_id": "lineItem/ResourceId", "line_item_usage_amount": "lineItem/UsageAmount",
              "line_item_currency_code": "lineItem/CurrencyCode", "line_item_unblended_rate": "lineItem/UnblendedRate",
              "line_item_unblended_cost": "lineItem/UnblendedCost", "line_item_net_unblended_cost": "lineItem/NetUnblendedCost",
              "line_item_line_item_description": "lineItem/LineItemDescription", "pricing_unit": "pricing/unit",
              "pricing_public_on_demand_cost": "pricing/publicOnDemandCost", "product_region_code": "product/regionCode",
              "resource_tags": "resourceTags/user:team"}
    rows = []
    for r in cur_rows():
        name = json.loads(r["product"])["product_name"]
        out = {legacy[k]: v for k, v in r.items() if k in legacy}
        out["resourceTags/user:team"] = "search" if r["resource_tags"] else ""
        out["product/ProductName"] = name
        rows.append(out)
    path = tmp_path / "legacy-cur.csv"
    write_csv(path, list(rows[0]), rows)
    f = ingest(db, path).files[0]
    assert (f.format, f.stored) == ("aws-cur", 7)
    check_cur(db, cur_rows())


def test_aws_cur_parquet(tmp_path, db):
    rows = cur_rows()
    columns = {h: [r[h] for r in rows] for h in CUR_HEADER}
    for t in ("line_item_usage_start_date", "line_item_usage_end_date", "bill_billing_period_start_date",
              "bill_billing_period_end_date"):
        columns[t] = pa.array([datetime.fromisoformat(v) for v in columns[t]], pa.timestamp("ms", tz="UTC"))
    for n in ("line_item_usage_amount", "line_item_unblended_rate", "line_item_unblended_cost",
              "line_item_net_unblended_cost", "pricing_public_on_demand_cost"):
        columns[n] = pa.array([float(v) for v in columns[n]], pa.float64())
    maps = pa.map_(pa.string(), pa.string())
    columns["product"] = pa.array([list(json.loads(v).items()) for v in columns["product"]], maps)
    columns["resource_tags"] = pa.array([list(json.loads(v).items()) if v else [] for v in columns["resource_tags"]], maps)
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(columns), path)
    f = ingest(db, path).files[0]
    assert (f.format, f.stored) == ("aws-cur", 7)
    check_cur(db, rows)


# A legacy CUR as most accounts still export it: every line item type, commitments (Savings Plans and
# Reserved Instances), taxes, credits, Bedrock model usage among the other services. Quirks of real
# exports: ".000Z" times, a quoted entity with a comma, scientific notation, empty cells, two identical
# lines (two charges: both kept), tags spread over resourceTags/ columns.
CUR_LEGACY_HEADER = [
    "identity/LineItemId", "identity/TimeInterval", "bill/InvoicingEntity", "bill/BillType", "bill/PayerAccountId",
    "bill/BillingPeriodStartDate", "bill/BillingPeriodEndDate", "lineItem/UsageAccountId", "lineItem/LineItemType",
    "lineItem/UsageStartDate", "lineItem/UsageEndDate", "lineItem/ProductCode", "lineItem/UsageType",
    "lineItem/Operation", "lineItem/ResourceId", "lineItem/UsageAmount", "lineItem/CurrencyCode",
    "lineItem/UnblendedCost", "lineItem/BlendedCost", "lineItem/LineItemDescription", "lineItem/LegalEntity",
    "product/ProductName", "product/region", "pricing/publicOnDemandCost", "pricing/unit",
    "reservation/EffectiveCost", "reservation/ReservationARN", "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
    "reservation/UnusedRecurringFee", "savingsPlan/SavingsPlanARN", "savingsPlan/SavingsPlanEffectiveCost",
    "savingsPlan/TotalCommitmentToDate", "savingsPlan/UsedCommitment", "resourceTags/user:team",
]
SP_ARN = "arn:aws:savingsplans::111122223333:savingsplan/sp-1"
RI_ARN = "arn:aws:ec2:us-east-1:111122223333:reserved-instances/ri-1"

# (line item type, product code, product name, usage type, operation, usage amount, unblended cost,
#  {other columns}, expected: charge category, charge frequency, amortized cost, model, token type)
CUR_LEGACY_LINES = [
    ("Usage", "AmazonS3", "Amazon Simple Storage Service", "USE1-EUC1-AWS-Out-Bytes", "HeadBucket", "9.052E-7",
     "1.81E-8", {"pricing/publicOnDemandCost": "1.81E-8"}, "Usage", "Usage-Based", 1.81e-8, None, None),
    ("Usage", "AmazonS3", "Amazon Simple Storage Service", "USE1-EUC1-AWS-Out-Bytes", "HeadBucket", "9.052E-7",
     "1.81E-8", {"pricing/publicOnDemandCost": "1.81E-8"}, "Usage", "Usage-Based", 1.81e-8, None, None),
    ("Tax", "AmazonS3", "Amazon Simple Storage Service", "", "", "1.0", "0.07", {},
     "Tax", "Recurring", 0.07, None, None),
    ("Usage", "AmazonBedrock", "Amazon Bedrock", "USE1-Claude3Sonnet-input-tokens", "InvokeModelInference",
     "1200000", "3.6", {"resourceTags/user:team": "search"}, "Usage", "Usage-Based", 3.6, "claude-3-sonnet", "input"),
    ("Usage", "AmazonBedrock", "Amazon Bedrock", "USE1-Claude3Sonnet-output-tokens", "InvokeModelStreamingInference",
     "100000", "1.5", {"resourceTags/user:team": "search"}, "Usage", "Usage-Based", 1.5, "claude-3-sonnet", "output"),
    ("Usage", "AmazonBedrock", "Amazon Bedrock", "USE1-Claude3Sonnet-cache-read-input-tokens", "InvokeModelInference",
     "400000", "0.12", {}, "Usage", "Usage-Based", 0.12, "claude-3-sonnet", "cached_input"),
    ("Usage", "AmazonBedrock", "Amazon Bedrock", "USE1-Claude4.5Sonnet-cache-write-input-token-count", "InvokeModelInference",
     "10000", "0.0375", {}, "Usage", "Usage-Based", 0.0375, "claude-sonnet-4.5", "cache_write"),
    # Savings Plan: the covered usage costs its on-demand price, negated by its own line; the plan's
    # recurring fee is billed in full. Amortized: the usage carries the plan's rate, the fee its unused part.
    ("SavingsPlanCoveredUsage", "AmazonEC2", "Amazon Elastic Compute Cloud", "USE1-BoxUsage:g5.xlarge", "RunInstances",
     "10", "10.06", {"savingsPlan/SavingsPlanARN": SP_ARN, "savingsPlan/SavingsPlanEffectiveCost": "6.5"},
     "Usage", "Usage-Based", 6.5, None, None),
    ("SavingsPlanNegation", "AmazonEC2", "Amazon Elastic Compute Cloud", "USE1-BoxUsage:g5.xlarge", "RunInstances",
     "10", "-10.06", {"savingsPlan/SavingsPlanARN": SP_ARN}, "Usage", "Usage-Based", 0.0, None, None),
    ("SavingsPlanRecurringFee", "ComputeSavingsPlans", "Savings Plans for AWS Compute usage", "ComputeSP:1yrNoUpfront",
     "", "720", "7.2", {"savingsPlan/SavingsPlanARN": SP_ARN, "savingsPlan/TotalCommitmentToDate": "7.2",
                        "savingsPlan/UsedCommitment": "6.5"}, "Purchase", "Recurring", 0.7, None, None),
    # Reserved Instance: usage at 0 unblended with its effective cost; the monthly fee amortized to its
    # unused part; the upfront fee (a Fee naming the reservation) amortized into the usage.
    ("DiscountedUsage", "AmazonEC2", "Amazon Elastic Compute Cloud", "USE1-HeavyUsage:m5.large", "RunInstances",
     "24", "0", {"reservation/ReservationARN": RI_ARN, "reservation/EffectiveCost": "1.44"},
     "Usage", "Usage-Based", 1.44, None, None),
    ("RIFee", "AmazonEC2", "Amazon Elastic Compute Cloud", "USE1-HeavyUsage:m5.large", "RunInstances", "720", "30",
     {"reservation/ReservationARN": RI_ARN, "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod": "2.5",
      "reservation/UnusedRecurringFee": "1.25"}, "Purchase", "Recurring", 3.75, None, None),
    ("Fee", "AmazonEC2", "Amazon Elastic Compute Cloud", "", "", "1", "300",
     {"reservation/ReservationARN": RI_ARN, "bill/BillType": "Purchase"}, "Purchase", "One-Time", 0.0, None, None),
    ("Fee", "AWSSupportBusiness", "AWS Support (Business)", "", "", "1", "100", {},
     "Purchase", "Recurring", 100.0, None, None),
    ("Credit", "AmazonBedrock", "Amazon Bedrock", "", "", "1", "-5", {},
     "Credit", "Recurring", -5.0, None, None),
    ("Refund", "AmazonS3", "Amazon Simple Storage Service", "", "", "1", "-0.5", {"bill/BillType": "Refund"},
     "Credit", "One-Time", -0.5, None, None),
]


def cur_legacy_rows():
    rows = []
    for kind, code, name, usage_type, operation, amount, cost, other, *_ in CUR_LEGACY_LINES:
        row = {h: "" for h in CUR_LEGACY_HEADER}
        row.update({
            "identity/LineItemId": f"{kind}:{usage_type}:{operation}", "identity/TimeInterval": "2025-11-09T00:00:00Z/2025-11-10T00:00:00Z",
            "bill/InvoicingEntity": "Amazon Web Services Canada, Inc.", "bill/BillType": "Anniversary",
            "bill/PayerAccountId": "111122223333", "bill/BillingPeriodStartDate": "2025-11-01T00:00:00.000Z",
            "bill/BillingPeriodEndDate": "2025-12-01T00:00:00.000Z", "lineItem/UsageAccountId": "444455556666",
            "lineItem/LineItemType": kind, "lineItem/UsageStartDate": "2025-11-09T04:00:00.000Z",
            "lineItem/UsageEndDate": "2025-11-09T05:00:00.000Z", "lineItem/ProductCode": code,
            "lineItem/UsageType": usage_type, "lineItem/Operation": operation, "lineItem/UsageAmount": amount,
            "lineItem/CurrencyCode": "USD", "lineItem/UnblendedCost": cost, "lineItem/BlendedCost": cost,
            "lineItem/LineItemDescription": f"{kind} {usage_type}", "lineItem/LegalEntity": "Amazon Web Services, Inc.",
            "product/ProductName": name, "product/region": "us-east-1" if usage_type else "",
        })
        row.update(other)
        rows.append(row)
    return rows


def test_aws_cur_legacy_every_line_item_type(tmp_path, db):
    rows = cur_legacy_rows()
    path = tmp_path / "123412340534-cur-00001.csv"
    bad = dict(rows[0], **{"lineItem/UnblendedCost": "n/a"})
    bad_line = write_csv(path, CUR_LEGACY_HEADER, rows, bad_after=3, bad_row=bad)
    f = ingest(db, path).files[0]
    assert (f.format, f.records, f.stored, f.duplicates, f.rejects) == ("aws-cur", len(rows) + 1, len(rows), 0, 1)
    assert db.execute("SELECT line, reason FROM rejects").fetchall() == [(bad_line, "line_item_unblended_cost: not a number: 'n/a'")]
    # Billed = the invoice (the unblended costs); effective = the amortized costs written above by hand.
    assert close(db.scalar("SELECT sum(billed_cost) FROM billing"), float(sum(Decimal(r["lineItem/UnblendedCost"]) for r in rows)))
    assert close(db.scalar("SELECT sum(effective_cost) FROM billing"), sum(line[-3] for line in CUR_LEGACY_LINES))
    got = sorted(db.execute("""SELECT extras->>'line_item_line_item_type', charge_category, charge_frequency, round(billed_cost, 10),
                                      round(effective_cost, 10), model, token_type FROM billing""").fetchall(), key=str)
    want = sorted(((kind, category, frequency, round(float(cost), 10), round(amortized, 10), model, token)
                   for kind, _, _, _, _, _, cost, _, category, frequency, amortized, model, token in CUR_LEGACY_LINES), key=str)
    assert got == want
    assert db.scalar("SELECT count(*) FROM billing WHERE sku_meter = 'USE1-EUC1-AWS-Out-Bytes'") == 2
    assert db.execute("""SELECT DISTINCT service_name, service_category, region_id, publisher, tags->>'user_team'
                         FROM billing WHERE token_type = 'output'""").fetchall() == [
        ("Amazon Bedrock", "AI and Machine Learning", "us-east-1", "Amazon Web Services, Inc.", "search")]
    assert db.scalar("SELECT billing_period_start FROM billing LIMIT 1") == datetime(2025, 11, 1)
    assert db.scalar("SELECT extras->>'bill_invoicing_entity' FROM billing LIMIT 1") == "Amazon Web Services Canada, Inc."


def test_aws_cur_header_only_says_why(tmp_path, db):
    path = tmp_path / "cur.csv"
    path.write_text(",".join(CUR_LEGACY_HEADER) + "\n")
    f = ingest(db, path).files[0]
    assert (f.format, f.records, f.stored, f.rejects) == ("aws-cur", 0, 0, 0)
    assert f.notes == ["a header line and no rows: nothing to store"]


# ------------------------------------------------------------------------------------------ detection

def test_detection_by_content():
    focus = ",".join(FOCUS_HEADER).encode() + b"\n1,1,1,1,USD\n"
    assert detect(focus, "export.csv").name == "focus-csv"
    assert detect(b"\xef\xbb\xbf" + focus, "x").name == "focus-csv"
    assert detect(",".join(CUR_HEADER).encode() + b"\n", "x.csv").name == "aws-cur"
    assert detect(b"lineItem/UsageType,lineItem/UnblendedCost\n", "x.csv").name == "aws-cur"
    assert detect(json.dumps(openai_usage_page()).encode(), "x.json").name == "openai-usage-json"
    costs = {"object": "page", "data": [{"object": "bucket", "start_time": 1, "end_time": 2,
                                          "results": [{"object": "organization.costs.result"}]}]}
    assert detect(json.dumps(costs).encode(), "x.json").name == "openai-costs-json"
    empty = {"object": "page", "data": [{"object": "bucket", "start_time": 1, "end_time": 2, "results": []}]}
    assert detect(json.dumps(empty).encode(), "openai_costs_nov.json").name == "openai-costs-json"
    assert detect(json.dumps(empty).encode(), "usage.json").name == "openai-usage-json"
    usage = {"data": [{"starting_at": "x", "ending_at": "y", "results": [{"uncached_input_tokens": 1}]}]}
    assert detect(json.dumps(usage).encode(), "x.json").name == "anthropic-usage-json"
    cost = {"data": [{"starting_at": "x", "ending_at": "y", "results": [{"amount": "1", "token_type": "cache_read_input_tokens"}]}]}
    assert detect(json.dumps(cost).encode(), "x.json").name == "anthropic-cost-json"
    assert detect(b'{"data": [1, 2]}', "x.json") is None


def test_cut_gzip_keeps_complete_pages(tmp_path, db):
    """A gzip JSON-lines export cut short: every complete page is stored, the cut is one reject."""
    page = openai_usage_page()
    page["data"][1]["results"].pop()  # drop the deliberately bad result
    lines = []
    for d in range(3):
        p = json.loads(json.dumps(page))
        for bucket in p["data"]:
            bucket["start_time"] += d * 2 * 86400
            bucket["end_time"] += d * 2 * 86400
        lines.append(json.dumps(p))
    # One gzip member per page (as an exporter appending to a file writes them); the last is cut.
    members = [gzip.compress((line + "\n").encode()) for line in lines]
    path = tmp_path / "usage.jsonl.gz"
    path.write_bytes(b"".join(members[:2]) + members[2][: len(members[2]) // 2])
    f = ingest(db, path).files[0]
    assert f.format == "openai-usage-json"
    reasons = [r for (r,) in db.execute("SELECT reason FROM rejects").fetchall()]
    assert any("truncated gzip stream" in r for r in reasons)
    # The two complete pages, four days, all stored: as many rows as non-zero token counts in them.
    per_page = sum(1 for b in page["data"] for r in b["results"]
                   for q in (r["input_tokens"] - r["input_cached_tokens"], r["input_cached_tokens"], r["output_tokens"]) if q)
    assert db.scalar("SELECT count(DISTINCT charge_period_start) FROM billing") == 4
    assert db.scalar("SELECT count(*) FROM billing") == 2 * per_page


# ------------------------------------------------------------------------------------------ terminal

def llmaudit(*args):
    return subprocess.run([sys.executable, "-m", "llmaudit", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_terminal_names_incomplete_and_empty_exports(tmp_path):
    page = tmp_path / "usage_completions.json"
    cursor = "page_AAAAAGdGxdEiJdKOAAAAAGcqsYA="
    page.write_text(json.dumps(openai_page([{"object": "organization.usage.completions.result", "input_tokens": 5,
                                             "output_tokens": 1}], True, cursor)))
    res = llmaudit("ingest", page, "--db", tmp_path / "s.duckdb")
    assert res.returncode == 0, res.stderr
    # One line, whatever the width: the cursor can be copied.
    line = next(x for x in res.stdout.splitlines() if "incomplete export" in x)
    assert line.startswith(f"  {page}: incomplete export") and f"page={cursor}" in line

    header_only = tmp_path / "cur.csv"
    header_only.write_text(",".join(CUR_LEGACY_HEADER) + "\n")
    res = llmaudit("ingest", header_only, "--db", tmp_path / "t.duckdb")
    assert res.returncode == 2
    assert f"{header_only}: a header line and no rows: nothing to store" in res.stderr

    cur = tmp_path / "cur-legacy.csv"
    rows = cur_legacy_rows()
    write_csv(cur, CUR_LEGACY_HEADER, rows)
    res = llmaudit("ingest", cur, "--db", tmp_path / "u.duckdb")
    assert res.returncode == 0, res.stderr
    billed = sum(Decimal(r["lineItem/UnblendedCost"]) for r in rows)
    assert f"Billed       {billed:,.2f} USD" in res.stdout and f"in {len(rows):,} charges" in res.stdout
