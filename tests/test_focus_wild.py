"""FOCUS exports as they are in the wild, and commitments that are not waste.

Each quirk is a small file written here that reproduces what a real export does: FOCUS-Sample-Data's
unquoted NULL, the specification scenarios' lower-case null and blank CRLF lines, dates written 4/1/25,
the AI billing columns (SkuPriceDetails with ModelId, TokenDirection, TokenCacheAction; SkuMeter), and
the charge categories and commitment columns: a prepaid commitment is bought in one Purchase row
(billed in full, EffectiveCost 0) and drawn down by usage rows billed 0 with their cost in EffectiveCost.
Expected values are worked out here from the rows the test writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO
from llmaudit.audit import audit
from llmaudit.config import Settings
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.report.document import build_document
from llmaudit.store import Store

sys.path.insert(0, str(REPO / "rules" / "fixtures"))
from build import Trace, write_otlp_jsonl  # noqa: E402

LLMA015_FIXTURES = REPO / "rules" / "fixtures" / "LLMA015"


@pytest.fixture
def db(tmp_path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def ingest(store, *paths, strict=False):
    return Ingestor(store, strict=strict, workers=1).run(expand_paths([str(p) for p in paths]))


def text_columns(store) -> list[str]:
    return [c for (c,) in store.execute("""SELECT column_name FROM information_schema.columns
                                           WHERE table_name = 'billing' AND data_type IN ('VARCHAR', 'JSON')""").fetchall()]


# ------------------------------------------------------------------------------------------ nulls

# FOCUS-Sample-Data style: every value quoted, nulls written as a bare NULL (in money, quantity, text,
# time and JSON columns alike), an Oracle row that is mostly NULL, a credit.
SAMPLE_HEADER = ('"BilledCost","EffectiveCost","BillingCurrency","ChargePeriodStart","ChargePeriodEnd","ChargeCategory",'
                 '"ChargeClass","ChargeDescription","ConsumedQuantity","ListUnitPrice","ProviderName","ServiceName",'
                 '"ServiceCategory","CommitmentDiscountId","CommitmentDiscountStatus","ResourceName","Tags"\n')
SAMPLE_ROWS = [
    # billed, effective, class, consumed, list price, provider, service, category, tags
    ("0.00000080000", "0.00000000000", "NULL", '"2.0"', '"0.0000004"', "AWS", "Amazon Simple Queue Service",
     "Integration", '"{""env"": ""dev""}"'),
    ("-2.61370000000", "-3.00000000000", "NULL", "NULL", "NULL", "AWS", "Amazon Elastic Compute Cloud", "Compute",
     "NULL"),
    ("0.13600000000", "0.00000000000", "NULL", "NULL", "NULL", "Oracle", "COMPUTE", "Compute", "NULL"),
    ("0.17568072000", "0.17568072000", '"Correction"', '"1.0"', '"0.1757"', "Microsoft", "Virtual Machines",
     "Compute", "NULL"),
]


def sample_csv() -> str:
    lines = [SAMPLE_HEADER]
    for i, (billed, effective, klass, consumed, price, provider, service, category, tags) in enumerate(SAMPLE_ROWS):
        category_word = "Credit" if billed.startswith("-") else "Usage"
        lines.append(f'{billed},{effective},"USD","2024-09-1{i} 22:00:00","2024-09-1{i} 23:00:00","{category_word}",'
                     f'{klass},"charge {i}",{consumed},{price},"{provider}","{service}","{category}",NULL,NULL,NULL,{tags}\n')
    return "".join(lines)


def test_unquoted_NULL_is_a_null_in_every_column(tmp_path, db):
    path = tmp_path / "focus_sample.csv"
    path.write_text(sample_csv(), encoding="utf-8")
    f = ingest(db, path).files[0]
    assert (f.format, f.records, f.stored, f.rejects) == ("focus-csv", len(SAMPLE_ROWS), len(SAMPLE_ROWS), 0)
    billed = sum(Decimal(r[0]) for r in SAMPLE_ROWS)
    effective = sum(Decimal(r[1]) for r in SAMPLE_ROWS)
    got = db.execute("SELECT sum(billed_cost), sum(effective_cost) FROM billing").fetchone()
    assert got[0] == pytest.approx(float(billed), abs=1e-12) and got[1] == pytest.approx(float(effective), abs=1e-12)
    # the Oracle row is read (it was lost to its NULL Tags), the credit too
    assert db.execute("SELECT provider, count(*) FROM billing GROUP BY 1 ORDER BY 1").fetchall() == [
        ("aws", 2), ("azure", 1), ("oci", 1)]
    assert db.scalar("SELECT billed_cost FROM billing WHERE charge_category = 'Credit'") == -2.6137
    # no text column keeps the word
    for column in text_columns(db):
        assert db.scalar(f"SELECT count(*) FROM billing WHERE CAST({column} AS VARCHAR) IN ('NULL', 'null')") == 0, column
    assert db.execute("SELECT charge_class, consumed_quantity, tags FROM billing WHERE provider = 'oci'").fetchone() == \
        (None, None, None)
    assert db.scalar("SELECT tags->>'env' FROM billing WHERE service_name = 'Amazon Simple Queue Service'") == "dev"
    assert db.scalar("SELECT count(*) FROM billing WHERE charge_class = 'Correction'") == 1


def test_lower_case_null_blank_crlf_lines_and_commitment_columns(tmp_path, db):
    """The spec's commitment-flexibility scenario: null in lower case, rows separated by blank CRLF lines."""
    header = ("BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ChargeFrequency,"
              "PricingCategory,ResourceId,PricingQuantity,BilledCost,EffectiveCost,ConsumedQuantity,ConsumedUnit,"
              "SkuPriceid,CommitmentDiscountId,CommitmentDiscountCategory,CommitmentDiscountStatus")
    period = "2023-01-01T00:00:00Z,2023-02-01T00:00:00Z,2023-01-01T00:00:00Z,2023-01-01T01:00:00Z"
    rows = [f"{period},Purchase,Recurring,Standard,<cd>,1.00,2.00,0.00,null,null,CD_PURCHASE,<cd>,Usage,null",
            f"{period},Usage,Usage-Based,Committed,<vm-1>,1.00,0.00,1.00,1.00,Hour,VM_COMMITTED,<cd>,Usage,Used",
            f"{period},Usage,Usage-Based,Committed,<vm-2>,1.00,0.00,1.00,1.00,Hour,VM_COMMITTED,<cd>,Usage,Used"]
    path = tmp_path / "commitment_flexibility.csv"
    path.write_bytes((header + "\r\n" + "".join(r + "\n\r\n" for r in rows)).encode())
    f = ingest(db, path).files[0]
    assert (f.stored, f.rejects) == (3, 0)
    assert db.execute("SELECT sum(billed_cost), sum(effective_cost) FROM billing").fetchone() == (2.0, 2.0)
    assert db.execute("""SELECT charge_category, pricing_category, consumed_quantity, consumed_unit, sku_price_id,
                                commitment_discount_id, commitment_discount_category, commitment_discount_status
                         FROM billing ORDER BY charge_category, resource_id""").fetchall() == [
        ("Purchase", "Standard", None, None, "CD_PURCHASE", "<cd>", "Usage", None),
        ("Usage", "Committed", 1.0, "Hour", "VM_COMMITTED", "<cd>", "Usage", "Used"),
        ("Usage", "Committed", 1.0, "Hour", "VM_COMMITTED", "<cd>", "Usage", "Used"),
    ]


# ------------------------------------------------------------------------------------------ dates

def test_dates_written_month_first(tmp_path, db):
    header = "BilledCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart,ServiceName\n"
    body = ("48,USD,4/1/25,5/1/25,4/1/25,AwesomeDB\n"
            "480,USD,4/1/25,4/1/26,3/1/26,AwesomeDB\n"
            "5,USD,12/31/2025 13:05,1/1/2026 0:00,12/1/2025,AwesomeDB\n"
            "7,USD,2024-09-01 00:00:00,2024-09-02 00:00:00,2024-09-01T00:00:00Z,AwesomeDB\n"
            "9,USD,31/12/25,1/1/26,12/1/25,AwesomeDB\n")                  # day first: not a date we read
    path = tmp_path / "saas.csv"
    path.write_text(header + body, encoding="utf-8")
    f = ingest(db, path).files[0]
    assert (f.stored, f.rejects) == (4, 1)
    assert db.execute("SELECT line, reason FROM rejects").fetchall() == [(6, "ChargePeriodStart: not a date-time: '31/12/25'")]
    assert db.execute("""SELECT billed_cost, charge_period_start, charge_period_end, billing_period_start
                         FROM billing ORDER BY billed_cost""").fetchall() == [
        (5.0, datetime(2025, 12, 31, 13, 5), datetime(2026, 1, 1), datetime(2025, 12, 1)),
        (7.0, datetime(2024, 9, 1), datetime(2024, 9, 2), datetime(2024, 9, 1)),
        (48.0, datetime(2025, 4, 1), datetime(2025, 5, 1), datetime(2025, 4, 1)),
        (480.0, datetime(2025, 4, 1), datetime(2026, 4, 1), datetime(2026, 3, 1)),
    ]


# ------------------------------------------------------------------------------- AI billing columns

def _details(**props) -> str:
    return json.dumps(props)


AI_HEADER = ["BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
             "ChargeDescription", "ConsumedQuantity", "ConsumedUnit", "PricingUnit", "ServiceCategory", "ServiceName",
             "ServiceProviderName", "HostProviderName", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId"]
MODEL = {"ModelDeveloper": "Solora AI", "ModelFamily": "Solora Reasoning", "ModelId": "solora-reasoning-pro",
         "ModelVersion": "3.0"}
# (SkuMeter, SkuPriceDetails, ChargeDescription, unit) -> (model, token_type)
AI_CASES = [
    ("Input Tokens", _details(**MODEL, TokenCacheAction="Uncached", TokenDirection="Input"), "Input tokens", "Tokens",
     ("solora-reasoning-pro", "input")),
    ("Cache Read Input Tokens", _details(**MODEL, TokenCacheAction="Read", TokenDirection="Input"), "Cache read", "Tokens",
     ("solora-reasoning-pro", "cached_input")),
    ("Cache Write Input Tokens", _details(**MODEL, TokenCacheAction="Write", TokenDirection="Input"), "Cache write",
     "Tokens", ("solora-reasoning-pro", "cache_write")),
    ("Cache Write Input Tokens (1h)", _details(**MODEL, TokenCacheAction="Write", TokenDirection="Input"), "Cache write",
     "Tokens", ("solora-reasoning-pro", "cache_write_1h")),
    ("Output Tokens", _details(**MODEL, TokenDirection="Output"), "Output tokens", "Tokens",
     ("solora-reasoning-pro", "output")),
    # a provider-namespaced model id, kept as the bill writes it; no direction: the meter's words tell
    ("Input Tokens", _details(ModelId="latticescale.solora-reasoning-pro"), "Input tokens via LatticeScale", "Tokens",
     ("latticescale.solora-reasoning-pro", "input")),
    # cache storage is metered in token-hours: the model's charge, but not tokens of a direction
    ("Context Cache Storage", _details(**MODEL), "Context cache storage", "Token-Hours", ("solora-reasoning-pro", None)),
    # the FOCUS 1.2 drafts' single TokenType property
    ("Cache Read Input Tokens", _details(ModelId="solora-neptune-5.0", TokenType="CacheRead"), "Cache read", "Tokens",
     ("solora-neptune-5.0", "cached_input")),
    # a VM's details carry no model; a VM is never a model charge, whatever its description says
    ("Compute Hours", _details(CoreCount=4, InstanceType="gpt-4o-runner"), "gpt-4o-runner input node", "Hours",
     (None, None)),
]


def ai_rows():
    rows = []
    for i, (meter, details, description, unit, _) in enumerate(AI_CASES):
        rows.append({"BilledCost": f"{i + 1}.50", "EffectiveCost": f"{i + 1}.50", "BillingCurrency": "USD",
                     "ChargePeriodStart": "2025-05-01T00:00:00Z", "ChargePeriodEnd": "2025-06-01T00:00:00Z",
                     "ChargeCategory": "Usage", "ChargeDescription": description, "ConsumedQuantity": "1000000",
                     "ConsumedUnit": unit, "PricingUnit": f"1000000 {unit}",
                     "ServiceCategory": "Compute" if unit == "Hours" else "AI and Machine Learning",
                     "ServiceName": "Solora Generative AI API", "ServiceProviderName": "Solora AI",
                     "HostProviderName": "Solora AI", "SkuId": f"sku-{i}", "SkuMeter": meter, "SkuPriceDetails": details,
                     "SkuPriceId": f"sku-{i}-ondemand"})
    return rows


def write_ai_csv(path, rows):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=AI_HEADER)
        writer.writeheader()
        writer.writerows(rows)


def test_sku_price_details_give_each_ai_row_its_model_and_token_type(tmp_path, db):
    path = tmp_path / "ai.csv"
    write_ai_csv(path, ai_rows())
    f = ingest(db, path).files[0]
    assert (f.stored, f.rejects) == (len(AI_CASES), 0)
    got = db.execute("SELECT sku_id, model, token_type FROM billing ORDER BY billed_cost").fetchall()
    assert got == [(f"sku-{i}", *case[-1]) for i, case in enumerate(AI_CASES)]
    # the details themselves are a column, as sorted JSON
    assert db.scalar("SELECT sku_price_details->>'TokenCacheAction' FROM billing WHERE sku_id = 'sku-1'") == "Read"


def test_sku_price_details_that_are_not_json_are_a_reject_naming_the_line(tmp_path, db):
    rows = ai_rows()[:3]
    rows[1]["SkuPriceDetails"] = "ModelId=solora-reasoning-pro"
    path = tmp_path / "ai.csv"
    write_ai_csv(path, rows)
    f = ingest(db, path).files[0]
    assert (f.stored, f.rejects) == (2, 1)
    assert db.execute("SELECT line, reason FROM rejects").fetchall() == [
        (3, "SkuPriceDetails: not a JSON object: 'ModelId=solora-reasoning-pro'")]


def test_parquet_null_text_and_sku_price_details(tmp_path, db):
    rows = ai_rows()[:5]
    columns = {h: [r[h] for r in rows] for h in AI_HEADER}
    columns["BilledCost"] = pa.array([Decimal(r["BilledCost"]) for r in rows], pa.decimal128(18, 6))
    columns["ChargeDescription"][2] = "NULL"  # a converter that wrote the CSV's NULL as text
    columns["Tags"] = ["null", '{"team": "search"}', None, "NULL", "{}"]
    path = tmp_path / "focus.parquet"
    pq.write_table(pa.table(columns), path)
    f = ingest(db, path).files[0]
    assert (f.format, f.stored, f.rejects) == ("focus-parquet", 5, 0)
    assert db.execute("SELECT model, token_type FROM billing ORDER BY billed_cost").fetchall() == [c[-1] for c in AI_CASES[:5]]
    assert db.scalar("SELECT count(*) FROM billing WHERE charge_description IS NULL") == 1
    assert db.scalar("SELECT count(*) FROM billing WHERE tags IS NULL") == 3


# ------------------------------------------------- charge kinds, commitments and reconciliation

def _audit(store, *paths):
    report = Ingestor(store, workers=1).run(expand_paths([str(p) for p in paths]))
    assert all(f.rejects == 0 for f in report.files), [(f.path, f.first_reject) for f in report.files if f.rejects]
    return audit(store, Settings())


def test_charge_kinds_of_the_commitment_fixture(tmp_path):
    """rules/fixtures/LLMA015/commitment.*: a $365,000 prepaid commitment, the OpenAI usage drawn from it
    (billed 0), its unused share, tax, a credit and an ML workspace's VM, disk and load balancer."""
    with Store() as store:
        result = _audit(store, LLMA015_FIXTURES / "commitment.focus.csv", LLMA015_FIXTURES / "commitment.traces.jsonl")
        kinds = dict((tuple(k), v) for *k, v in store.execute("""
            SELECT charge_kind, model_api, committed, count(*) FROM billing_spend GROUP BY ALL""").fetchall())
        assert kinds == {("purchase", True, True): 1, ("unused_commitment", True, True): 3, ("tax", True, False): 3,
                         ("credit", True, False): 3, ("usage", False, False): 9,  # VM, disk, load balancer x 3 days
                         ("usage", True, True): 9, ("usage", True, False): 6}  # gpt-4o in/out + untraced; haiku in/out
        # The reconciliation holds usage only: gpt-4o on its effective cost (billed 0), haiku on-demand.
        rows = store.execute("""SELECT provider, model, sum(billed_cost), sum(usage_cost), sum(committed_cost),
                                       sum(trace_cost)
                                FROM reconciliation WHERE in_trace_window GROUP BY ALL ORDER BY ALL""").fetchall()
        assert [(p, m) for p, m, *_ in rows] == [("anthropic", "claude-haiku-4-5"), ("openai", "gpt-4o")]
        (_, _, h_billed, h_usage, h_committed, h_traced), (_, _, g_billed, g_usage, g_committed, g_traced) = rows
        assert (h_billed, h_usage, h_committed) == pytest.approx((0.45, 0.45, None)) and h_traced == pytest.approx(0.45)
        assert (g_billed, g_usage, g_committed) == pytest.approx((0.0, 21.0, 21.0)) and g_traced == pytest.approx(9.0)
        gap = [f for f in result.findings if f.rule_id == "LLMA015"]
        assert [(f.scope.model, f.waste.usd, f.evidence["committed_usd"]) for f in gap] == [("gpt-4o", pytest.approx(12.0), 21.0)]

        doc = build_document(store, result)
        section = doc.extras["reconciliation"]
        # $365,000 billed once, in full, as a commitment: not spread over the traced days
        assert [(c["billed"], c["commitment_discount_id"], c["charge_frequency"]) for c in section["commitments"]] == [
            (365000.0, "commitment/openai/tokens/2025", "One-Time")]
        by_kind = {}
        for r in section["billed"]:
            key = (r["charge_kind"], r["model_api"])
            by_kind[key] = round(by_kind.get(key, 0.0) + r["billed"], 2)
        # three traced days: usage $21.45 of model APIs; $5.95 a day of workspace infrastructure; $5 a day unused
        assert by_kind == {("usage", True): 21.45, ("usage", False): 17.85, ("unused_commitment", False): 15.0,
                           ("tax", False): 1.2, ("credit", False): -6.0}
        head = doc.extras["headline"]["Billed"]
        assert head.startswith("$49.50 (model APIs $21.45: traces explain 44%; other $17.85; unused commitments $15.00; "
                               "tax, credits and adjustments -$4.80) on the traced days 2025-11-09 to 2025-11-11")
        assert head.endswith("; commitments and purchases covering them $365,000.00, billed apart (not usage)")


def _gpt_traces(path, days: int):
    """40 gpt-4o-mini calls a day (2,000 input + 500 output tokens: $0.0006 each, $0.024 a day)."""
    traces = []
    for d in range(days):
        for i in range(40):
            t = Trace(f"focus-ai-{d}-{i}", "assistant", at_ms=d * 86_400_000 + 300_000 + i * 2_100_000)
            t.llm("gpt-4o-mini", 2000, 500)
            traces.append(t)
    write_otlp_jsonl(path, traces)


def test_analyze_never_counts_a_prepayment_as_unexplained_usage(tmp_path):
    """The FOCUS AI drawdown scenario over three fully traced days: a $500,000 one-year prepayment, the
    traced model's usage drawn from it (billed 0, EffectiveCost its list cost), per-token usage of a model
    no trace calls, and the Azure ML workspace's infrastructure in the AI category. Spread over a year,
    the prepayment would be $4,109.59 of "unexplained model spend" on three days."""
    _gpt_traces(tmp_path / "calls.otlp.jsonl", 3)
    header = ("BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ChargeFrequency,"
              "ChargeDescription,CommitmentDiscountId,CommitmentDiscountStatus,PricingCategory,ConsumedQuantity,ConsumedUnit,"
              "ServiceCategory,ServiceName,ServiceProviderName,SkuMeter,SkuPriceDetails\n")
    cd = "subscription:aaaa/provider/openai/tokens/1111"
    body = [f"500000.00,0.00,USD,2025-05-01T00:00:00Z,2026-05-01T00:00:00Z,Purchase,One-Time,1 year Commitment Purchase,"
            f"{cd},,Standard,,,AI and Machine Learning,OpenAI API,OpenAI,Token Commitment,"]
    for d in range(3):
        start, end = f"2025-11-{9 + d:02d}T00:00:00Z", f"2025-11-{10 + d:02d}T00:00:00Z"
        for direction, tokens, cost in (("Input", 80_000, 0.012), ("Output", 20_000, 0.012)):
            details = json.dumps({"ModelId": "gpt-4o-mini-2024-07-18", "TokenDirection": direction}).replace('"', '""')
            body.append(f"0.00,{cost},USD,{start},{end},Usage,Usage-Based,{direction} tokens,{cd},Used,Committed,{tokens},"
                        f"Tokens,AI and Machine Learning,OpenAI API,OpenAI,{direction} Tokens,\"{details}\"")
        body.append(f"0.149,0.149,USD,{start},{end},Usage,Usage-Based,Virtual Machines D11 v2,,,Standard,1,Hours,"
                    f"AI and Machine Learning,Azure Machine Learning,Microsoft,D11 v2,")
    (tmp_path / "bill.focus.csv").write_text(header + "\n".join(body) + "\n", encoding="utf-8")

    proc = subprocess.run([sys.executable, "-m", "llmaudit", "analyze", str(tmp_path), "-f", "json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [f for f in doc["findings"] if f["rule_id"] == "LLMA015"] == []
    section = doc["extras"]["reconciliation"]
    assert section["by_provider"] == [{"provider": "openai", "currency": "USD", "billed": 0.07, "traced": 0.07,
                                       "unexplained": 0.0, "explained_share": 1.0}]
    assert [c["billed"] for c in section["commitments"]] == [500000.0]
    assert doc["extras"]["headline"]["Billed"] == (
        "$0.52 (model APIs $0.07: traces explain 100%; other $0.45) on the traced days 2025-11-09 to 2025-11-11; "
        "commitments and purchases covering them $500,000.00, billed apart (not usage)")


def test_money_as_a_spreadsheet_writes_it(tmp_path, db):
    """FOCUS_Spec's simple_saas_agreements files: "$10,000.00 " with a currency symbol, thousands commas and
    a trailing space; accounting parentheses for a negative. A decimal comma is never read as thousands."""
    header = "BilledCost,EffectiveCost,ListUnitPrice,BillingCurrency,ChargePeriodStart,ChargeCategory\n"
    body = ('"$10,000.00 ","$10,000.00 ",$100.00 ,USD,4/1/25,Purchase\n'
            '"($1,250.50)",-$1250.50,,USD,4/1/25,Credit\n'
            '"1,500",1500,,EUR,4/1/25,Usage\n')                   # 1.5 or 1500? not read
    path = tmp_path / "simple_saas.csv"
    path.write_text(header + body, encoding="utf-8")
    f = ingest(db, path).files[0]
    assert (f.stored, f.rejects) == (2, 1)
    assert db.execute("SELECT line, reason FROM rejects").fetchall() == [(4, "BilledCost: not a number: '1,500'")]
    assert db.execute("SELECT billed_cost, effective_cost, list_unit_price FROM billing ORDER BY billed_cost").fetchall() == [
        (-1250.5, -1250.5, None), (10000.0, 10000.0, 100.0)]


def test_a_store_written_before_the_commitment_columns_gets_them_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    with Store(path) as store:
        ingest(store, LLMA015_FIXTURES / "positive.focus.csv")
        new_columns = ["pricing_category", "commitment_discount_id", "commitment_discount_category",
                       "commitment_discount_type", "commitment_discount_status", "sku_price_details"]
        for column in new_columns:  # as the previous release wrote the table
            store.execute(f"ALTER TABLE billing DROP COLUMN {column}")
        before = store.execute("SELECT count(*), sum(billed_cost) FROM billing").fetchone()
    with Store(path) as store:
        columns = {c for (c,) in store.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'billing'").fetchall()}
        assert set(new_columns) <= columns
        assert store.execute("SELECT count(*), sum(billed_cost) FROM billing").fetchone() == before
        rows = ai_rows()[:2]
        write_ai_csv(tmp_path / "ai.csv", rows)
        assert ingest(store, tmp_path / "ai.csv").files[0].stored == 2
        assert store.scalar("SELECT count(*) FROM billing WHERE sku_price_details IS NOT NULL") == 2


def test_usage_is_compared_on_its_amortized_cost(tmp_path):
    """A Savings Plan as AWS bills it: the covered usage at its on-demand price (BilledCost 10.00, its
    amortized plan rate 6.00 in EffectiveCost) and a negation of it (-10.00, amortized 0). Cash nets to 0;
    the usage the traces are compared with is the plan's $6.00 a day, with or without a commitment id."""
    _gpt_traces(tmp_path / "calls.otlp.jsonl", 2)
    header = "BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ServiceCategory," \
             "ServiceProviderName,SkuMeter,ConsumedQuantity,ConsumedUnit\n"
    body = ""
    for d in (9, 10):
        period = f"2025-11-{d:02d}T00:00:00Z,2025-11-{d + 1:02d}T00:00:00Z"
        body += (f"10.00,6.00,USD,{period},Usage,AI and Machine Learning,OpenAI,gpt-4o-mini input tokens,66666667,Tokens\n"
                 f"-10.00,0.00,USD,{period},Usage,AI and Machine Learning,OpenAI,gpt-4o-mini input tokens,0,Tokens\n")
    (tmp_path / "bill.focus.csv").write_text(header + body, encoding="utf-8")
    with Store() as store:
        _audit(store, tmp_path)
        rows = store.execute("""SELECT day::VARCHAR, billed_cost, effective_cost, usage_cost, round(gap, 6)
                                FROM reconciliation WHERE model = 'gpt-4o-mini' ORDER BY day""").fetchall()
        assert rows == [("2025-11-09", 0.0, 6.0, 6.0, round(6.0 - 0.024, 6)), ("2025-11-10", 0.0, 6.0, 6.0, round(6.0 - 0.024, 6))]
