"""The price catalog, pricing of model calls (tokens and GPU time), reconciliation with bills, the
cost views, the refresh script and the `pricing` commands."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import otlp_factory as f
import pytest
import yaml
from typer.testing import CliRunner

from llmaudit.cli_pricing import pricing_app
from llmaudit.config import Settings
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.normalize.derive import derive
from llmaudit.pricing import cost, refresh
from llmaudit.pricing.catalog import PRICES_FILE, Catalog, PriceError, base_model, read_catalog_file
from llmaudit.store import Store

T0 = f.T0  # 2025-11-09T00:00:00Z in ns
S = 1_000_000_000


@pytest.fixture
def db(tmp_path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


def close(a, b, tol=1e-12):
    return a is not None and b is not None and abs(a - b) <= tol


def call(trace, parent, model, provider, start_ns=T0, dur_ns=S // 2, usage=True, **attrs):
    """An LLM client span; usage=(input, output) sets the token counts, usage=False leaves them out."""
    a = {"gen_ai.operation.name": attrs.pop("operation", "chat"), "gen_ai.provider.name": provider,
         "gen_ai.request.model": model}
    if usage:
        a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"] = usage
    a.update(attrs)
    return f.span(trace, f.new_span_id(), parent, f"chat {model}", 3, start_ns, dur_ns, a)


def trace(route, calls_of, start_ns=T0):
    """A request (root span with an http.route) and the calls calls_of(trace_id, root_id) makes."""
    tid, root = f.new_trace_id(), f.new_span_id()
    return [f.span(tid, root, None, f"POST {route}", 2, start_ns, 20 * S, {"http.route": route, "tenant.id": "acme"}),
            *calls_of(tid, root)]


def load(store, tmp_path, traces, name="traces.jsonl"):
    path = tmp_path / name
    f.write_jsonl(path, [f.request(t) for t in traces])
    Ingestor(store, workers=1).run(expand_paths([str(path)]))
    derive(store, Settings())


def price(store, catalog, **kw):
    with store.transaction() as con:
        return cost.price_calls(con, catalog, **kw)


# ------------------------------------------------------------------------------------------ catalog

def test_bundled_catalog_is_dated_and_sourced(catalog):
    assert str(catalog.as_of) == "2026-11-22"
    assert "LiteLLM" in catalog.source and "sha256" in catalog.source
    assert "refresh" in catalog.how_to_refresh
    gpt4o = catalog.resolve("gpt-4o").price
    assert (gpt4o.input, gpt4o.cached_input, gpt4o.output) == (2.5, 1.25, 10.0)
    sonnet = catalog.resolve("claude-sonnet-4-5", "anthropic").price
    assert (sonnet.input, sonnet.cached_input, sonnet.cache_write, sonnet.output) == (3.0, 0.3, 3.75, 15.0)
    assert catalog.resolve("omni-moderation-latest").price.input == 0.0  # free, and known to be
    for model in ["gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3", "o4-mini", "gpt-5", "gpt-5-mini",
                  "text-embedding-3-small", "text-embedding-3-large", "claude-haiku-4-5", "claude-opus-4-1",
                  "claude-sonnet-4", "claude-3-5-haiku", "gemini-2.5-pro", "gemini-2.5-flash", "mistral-large"]:
        assert catalog.resolve(model) is not None, model
    assert {g.name for g in catalog.gpus()} >= {"H100", "H200", "A100-40GB", "A100-80GB", "L40S", "L4", "A10G", "T4"}
    assert str(catalog.gpu_as_of) == "2026-11-22" and "us-east-1" in catalog.gpu_source


@pytest.mark.parametrize("name, provider, expected", [
    ("gpt-4o-2024-08-06", None, "openai/gpt-4o-2024-08-06"),
    ("gpt-4o-2031-01-01", "openai", "openai/gpt-4o"),            # unknown date: the undated model
    ("GPT-4o", None, "openai/gpt-4o"),
    ("openai/gpt-4o-mini", None, "openai/gpt-4o-mini"),
    ("gpt-4o", "azure.ai.openai", "azure/gpt-4o"),                # the provider's own price first
    ("claude-sonnet-4-5-20250929", "anthropic", "anthropic/claude-sonnet-4-5-20250929"),
    ("anthropic/claude-sonnet-4.5", None, "anthropic/claude-sonnet-4-5"),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock", "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock", "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ("arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0", None,
     "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ("claude-haiku-4-5@20251001", "gcp.vertex_ai", "vertex_ai/claude-haiku-4-5@20251001"),
    ("models/gemini-2.5-flash", "gcp.gemini", "gemini/gemini-2.5-flash"),
    ("mistral-large", "mistral_ai", "mistral/mistral-large-latest"),
    ("ft:gpt-4o-mini-2024-07-18:acme::b42", "openai", "openai/ft:gpt-4o-mini-2024-07-18"),
])
def test_name_variants_resolve(catalog, name, provider, expected):
    entry = catalog.resolve(name, provider)
    assert entry is not None and f"{entry.provider}/{entry.model}" == expected


def test_regional_bedrock_profile_keeps_its_own_price(catalog):
    base = catalog.resolve("anthropic.claude-sonnet-4-5-20250929-v1:0").price
    regional = catalog.resolve("us.anthropic.claude-sonnet-4-5-20250929-v1:0").price
    assert regional.input > base.input  # cross-region (geo) profiles cost more than global ones
    assert catalog.resolve("claude-sonnet-4-5", "aws.bedrock").price.input == base.input


@pytest.mark.parametrize("name, provider", [
    ("acme-internal-7b", None), ("acme-internal-7b", "openai"), ("", None), (None, "openai"),
    ("mistral-large-2411", "mistral_ai"),  # a dated version the catalog lacks is not another version's price
])
def test_unknown_models_resolve_to_none(catalog, name, provider):
    assert catalog.resolve(name, provider) is None


def test_base_model_is_what_bills_and_traces_share():
    assert base_model("gpt-4o-2024-08-06") == base_model("gpt-4o") == "gpt-4o"
    assert base_model("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == base_model("claude-sonnet-4-5-20250929") \
        == "claude-sonnet-4-5"
    assert base_model("models/gemini-2.5-pro") == base_model("Gemini-2.5-Pro") == "gemini-2.5-pro"


def test_override_file_changes_and_extends(tmp_path):
    path = tmp_path / "my-prices.yaml"
    path.write_text(yaml.safe_dump({
        "providers": {"acme": {"aliases": ["acme_ai"], "bills_as": "acme"}},
        "models": {"openai": {"gpt-4o": {"output": 20}},
                   "acme": {"acme-llm": {"input": 1, "output": 2, "aliases": ["acme-internal-7b"]}}},
        "gpu_hour": {"prices": {"H100": {"usd_per_hour": 2.5}}},
    }))
    cat = Catalog.load(path)
    gpt4o = cat.resolve("gpt-4o")
    assert (gpt4o.price.input, gpt4o.price.output, gpt4o.source) == (2.5, 20.0, "my-prices.yaml: openai/gpt-4o")
    acme = cat.resolve("acme-internal-7b", "acme_ai")
    assert (acme.provider, acme.model, acme.price.input) == ("acme", "acme-llm", 1.0)
    assert cat.bills_as("acme_ai") == "acme"
    assert cat.gpu("NVIDIA H100 80GB HBM3").price.usd_per_hour == 2.5  # override keeps the bundled match patterns
    assert cat.resolve("gpt-4o-mini").source.startswith("catalog 2026-11-22")

    as_json = tmp_path / "p.json"
    as_json.write_text(json.dumps({"models": {"openai": {"gpt-4o": {"input": 9}}}}))
    assert Catalog.load(as_json).resolve("gpt-4o").price.input == 9.0


@pytest.mark.parametrize("text, message", [
    ("models:\n  openai:\n    gpt-4o: {input: cheap}\n", "models.openai.gpt-4o.input"),
    ("models:\n  openai:\n    gpt-4o: {input: -1}\n", "models.openai.gpt-4o.input"),
    ("models:\n  openai: {gpt-4o: {inptu: 1}}\n", "models.openai.gpt-4o.inptu"),
    ("models: [\n", "line 2: not valid YAML"),
    ("- 1\n", "a price file is a mapping"),
])
def test_bad_price_file_names_file_and_entry(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PriceError) as exc:
        Catalog.load(path)
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value)


# -------------------------------------------------------------------------------------- API calls

def test_price_calls_exact_dollars(tmp_path, db, catalog):
    traces = [
        trace("/chat", lambda t, r: [
            call(t, r, "gpt-4o", "openai", usage=(1000, 200), **{"gen_ai.usage.cache_read.input_tokens": 400}),
            call(t, r, "claude-sonnet-4-5-20250929", "anthropic", usage=(2000, 100),
                 **{"gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.cache_creation.input_tokens": 500}),
        ]),
        trace("/search", lambda t, r: [
            # Anthropic's own count: input_tokens excludes the cached reads
            call(t, r, "claude-haiku-4-5", "anthropic", usage=(100, 50), **{"gen_ai.usage.cache_read.input_tokens": 1000}),
            call(t, r, "acme-internal-7b", "openai", usage=(500, 50)),
            call(t, r, "text-embedding-3-small", "openai", usage=(5000, 0), operation="embeddings"),
            call(t, r, "gemini-2.5-pro", "gcp.vertex_ai", usage=(300_000, 1000)),
            call(t, r, "gpt-4o", "openai", usage=False),
        ]),
    ]
    load(db, tmp_path, traces)
    result = price(db, catalog)

    def p(model, provider):
        return catalog.resolve(model, provider).price

    gpt4o, sonnet, haiku = p("gpt-4o", "openai"), p("claude-sonnet-4-5-20250929", "anthropic"), p("claude-haiku-4-5", "anthropic")
    emb, gem = p("text-embedding-3-small", "openai"), p("gemini-2.5-pro", "gcp.vertex_ai")
    expected = {
        ("gpt-4o", 1000): (600 * gpt4o.input + 400 * gpt4o.cached_input + 200 * gpt4o.output) / 1e6,
        ("claude-sonnet-4-5-20250929", 2000):
            (500 * sonnet.input + 1000 * sonnet.cached_input + 500 * sonnet.cache_write + 100 * sonnet.output) / 1e6,
        ("claude-haiku-4-5", 100): (100 * haiku.input + 1000 * haiku.cached_input + 50 * haiku.output) / 1e6,
        ("text-embedding-3-small", 5000): 5000 * emb.input / 1e6,
        ("gemini-2.5-pro", 300_000): (300_000 * gem.long_context.input + 1000 * gem.long_context.output) / 1e6,
    }
    got = {(m, i): c for m, i, c in db.execute("SELECT model, input_tokens, cost_usd FROM llm_calls").fetchall()}
    for key, dollars in expected.items():
        assert close(got[key], dollars), key
    assert close(got[("gpt-4o", 1000)], 0.004)  # 600 x $2.50 + 400 x $1.25 + 200 x $10 per 1M
    assert got[("acme-internal-7b", 500)] is None
    assert db.execute("SELECT price_source, input_price_per_mtok FROM llm_calls WHERE model = 'acme-internal-7b'").fetchone() == \
        ("unpriced", None)
    # No usage: no cost, but the model's unit prices are known (rules price the tokens they find).
    assert db.execute("SELECT cost_usd, input_price_per_mtok, price_source FROM llm_calls WHERE input_tokens IS NULL").fetchone() == \
        (None, 2.5, "catalog 2026-11-22: openai/gpt-4o (no token counts)")
    assert db.scalar("SELECT price_source FROM llm_calls WHERE model = 'gemini-2.5-pro'") == \
        "catalog 2026-11-22: vertex_ai/gemini-2.5-pro (long context)"
    assert db.scalar("SELECT cached_input_price_per_mtok FROM llm_calls WHERE model = 'text-embedding-3-small'") == emb.input
    # A request costs the sum of its priced calls.
    per_trace = dict(db.execute("SELECT feature, cost_usd FROM requests").fetchall())
    assert close(per_trace["/chat"], expected[("gpt-4o", 1000)] + expected[("claude-sonnet-4-5-20250929", 2000)])
    assert close(per_trace["/search"], sum(v for k, v in expected.items() if k[0] not in ("gpt-4o", "claude-sonnet-4-5-20250929")))
    assert (result.priced_calls, result.unpriced_calls) == (5, 2)
    assert result.unknown_models == [("openai", "acme-internal-7b")]


def test_override_prices_flow_into_calls(tmp_path, db):
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  acme:\n    acme-llm: {input: 1, output: 4, aliases: [acme-internal-7b]}\n")
    load(db, tmp_path, [trace("/x", lambda t, r: [call(t, r, "acme-internal-7b", "openai", usage=(1_000_000, 250_000))])])
    price(db, Catalog.load(path))
    assert db.execute("SELECT cost_usd, price_source FROM llm_calls").fetchone() == (2.0, "prices.yaml: acme/acme-llm")


# ----------------------------------------------------------------------------------- self-hosted

def add_gpu_samples(store, tmp_path, samples):
    """samples: (time, host, device, GPU model name, metric, value), written as DCGM exporter scrapes
    (Prometheus text with millisecond timestamps) and ingested by the metrics reader."""
    lines = []
    for time, host, device, gpu, metric, value in samples:
        ms = int((time - datetime(1970, 1, 1)).total_seconds() * 1000)
        lines.append(f'{metric}{{gpu="{device}",UUID="GPU-{host}-{device}",device="nvidia{device}",'
                     f'modelName="{gpu}",Hostname="{host}"}} {value} {ms}')
    path = tmp_path / "dcgm.prom"
    path.write_text("# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n# TYPE DCGM_FI_PROF_SM_ACTIVE gauge\n" + "\n".join(lines) + "\n")
    report = Ingestor(store, workers=1).run(expand_paths([str(path)]))
    assert (report.files[0].format, report.files[0].rejects) == ("prom-text", 0)


def self_hosted_traces():
    # Three vLLM calls of 1 s, 2 s and 3 s between T0 and T0 + 10 s.
    return [trace("/gen", lambda t, r: [
        call(t, r, "meta-llama/Llama-3.1-8B-Instruct", "vllm", start_ns=T0, dur_ns=1 * S, usage=(100, 10)),
        call(t, r, "meta-llama/Llama-3.1-8B-Instruct", "vllm", start_ns=T0 + 2 * S, dur_ns=2 * S, usage=(100, 20)),
        call(t, r, "meta-llama/Llama-3.1-8B-Instruct", "vllm", start_ns=T0 + 7 * S, dur_ns=3 * S, usage=(100, 30)),
    ])]


def test_self_hosted_without_gpu_data_is_unpriced(tmp_path, db, catalog):
    load(db, tmp_path, self_hosted_traces())
    result = price(db, catalog)
    assert db.execute("SELECT DISTINCT cost_usd, price_source FROM llm_calls").fetchall() == [(None, "self-hosted: no GPU data")]
    assert (result.self_hosted_calls, result.self_hosted_priced) == (3, 0)


def gpu_fleet(name, hosts=(("node-1", "0"), ("node-1", "1"))):
    t0 = datetime(2025, 11, 9) - timedelta(seconds=60)
    return [(t0 + timedelta(seconds=15 * i), host, dev, name, metric, 50.0)
            for i in range(13) for host, dev in hosts for metric in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_PROF_SM_ACTIVE")]


def test_self_hosted_priced_from_gpu_hours_by_duration(tmp_path, db, catalog):
    load(db, tmp_path, self_hosted_traces())
    add_gpu_samples(db, tmp_path, gpu_fleet("NVIDIA H100 80GB HBM3"))
    result = price(db, catalog)
    # Two GPUs present for the whole 10 s window of the calls, at the H100 hourly price.
    total = 2 * 10 / 3600 * catalog.gpu("H100").price.usd_per_hour
    assert close(result.gpu_cost_usd, total) and close(result.gpu_hours, 20 / 3600)
    costs = [c for (c,) in db.execute("SELECT cost_usd FROM llm_calls ORDER BY start_time").fetchall()]
    assert all(close(c, total * d / 6) for c, d in zip(costs, (1, 2, 3)))
    assert close(db.scalar("SELECT cost_usd FROM requests"), total)
    assert db.scalar("SELECT DISTINCT price_source FROM llm_calls") == \
        "self-hosted: 0.006 GPU-hours x H100 $6.88/h, shared by call duration"
    # Blended per-token price for rules: the pool's cost over its tokens.
    assert close(db.scalar("SELECT DISTINCT input_price_per_mtok FROM llm_calls"), total / 360 * 1e6, 1e-9)


def test_self_hosted_accelerator_named_by_caller(tmp_path, db, catalog):
    load(db, tmp_path, self_hosted_traces())
    add_gpu_samples(db, tmp_path, gpu_fleet("Some Future GPU", hosts=(("node-1", "0"),)))
    price(db, catalog)
    assert db.scalar("SELECT DISTINCT price_source FROM llm_calls") == \
        "self-hosted: no GPU-hour price for Some Future GPU (name an accelerator)"
    price(db, catalog, accelerator="L4")
    assert close(db.scalar("SELECT sum(cost_usd) FROM llm_calls"), 10 / 3600 * catalog.gpu("L4").price.usd_per_hour)


# -------------------------------------------------------------------------------- reconciliation

def test_reconciliation_finds_a_planted_gap(tmp_path, db, catalog):
    day = 86400 * S
    traces = [trace("/chat", lambda t, r, d=d: [call(t, r, "gpt-4o", "openai", start_ns=T0 + d * day, usage=(10_000 * (d + 1), 2000))],
                    start_ns=T0 + d * day) for d in (0, 1)]
    traces.append(trace("/kb", lambda t, r: [call(t, r, "claude-sonnet-4-5-20250929", "aws.bedrock", usage=(50_000, 1000))]))
    load(db, tmp_path, traces)
    price(db, catalog)
    trace_cost = dict(db.execute(
        "SELECT CAST(start_time AS DATE)::VARCHAR, sum(cost_usd) FROM llm_calls WHERE provider = 'openai' GROUP BY 1").fetchall())
    bedrock_cost = db.scalar("SELECT cost_usd FROM llm_calls WHERE provider = 'aws.bedrock'")

    # The bill: day 1 exactly as estimated, day 2 with $5 the traces do not show, and a model no trace used.
    t0 = T0 // S
    bill = {"object": "page", "data": [
        {"object": "bucket", "start_time": t0, "end_time": t0 + 86400, "results": [
            {"object": "organization.costs.result", "amount": {"value": trace_cost["2025-11-09"], "currency": "usd"},
             "line_item": "gpt-4o-2024-08-06, input", "project_id": "p"}]},
        {"object": "bucket", "start_time": t0 + 86400, "end_time": t0 + 2 * 86400, "results": [
            {"object": "organization.costs.result", "amount": {"value": trace_cost["2025-11-10"] + 5.0, "currency": "usd"},
             "line_item": "gpt-4o-2024-08-06, output", "project_id": "p"},
            {"object": "organization.costs.result", "amount": {"value": 2.0, "currency": "usd"},
             "line_item": "gpt-4.1-2025-04-14, input", "project_id": "p"}]},
    ], "has_more": False}
    (tmp_path / "costs.json").write_text(json.dumps(bill))
    # A Bedrock bill in euros for the whole of two days: spread over them, never compared with dollars.
    (tmp_path / "focus.csv").write_text(
        "BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ProviderName,ServiceName,"
        "ServiceCategory,ResourceId\n"
        "8,8,EUR,2025-11-09T00:00:00Z,2025-11-11T00:00:00Z,AWS,Amazon Bedrock,AI and Machine Learning,"
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0\n")
    Ingestor(db, workers=1).run(expand_paths([str(tmp_path / "costs.json"), str(tmp_path / "focus.csv")]))

    with db.transaction() as con:
        totals = cost.reconcile(con, catalog)
    rows = {(p, m, str(d), c): (tc, bc, gap, share) for p, m, d, c, tc, bc, gap, share in db.execute(
        "SELECT provider, model, day, currency, trace_cost, billed_cost, gap, explained_share FROM reconciliation").fetchall()}
    tc, bc, gap, share = rows[("openai", "gpt-4o", "2025-11-09", "USD")]
    assert close(gap, 0.0, 1e-9) and close(share, 1.0, 1e-9)
    tc, bc, gap, share = rows[("openai", "gpt-4o", "2025-11-10", "USD")]
    assert close(gap, 5.0, 1e-9) and close(share, trace_cost["2025-11-10"] / (trace_cost["2025-11-10"] + 5.0), 1e-9)
    assert rows[("openai", "gpt-4.1", "2025-11-10", "USD")] == (None, 2.0, 2.0, 0.0)
    # aws.bedrock calls meet the aws bill by model; euros get no gap.
    assert close(rows[("aws", "claude-sonnet-4-5", "2025-11-09", "USD")][0], bedrock_cost)
    assert rows[("aws", "claude-sonnet-4-5", "2025-11-09", "EUR")] == (None, 4.0, None, None)
    assert rows[("aws", "claude-sonnet-4-5", "2025-11-10", "EUR")] == (None, 4.0, None, None)
    openai = next(t for t in totals if t["provider"] == "openai")
    assert close(openai["gap"], 7.0, 1e-9) and openai["currency"] == "USD"
    assert {(t["provider"], t["currency"]) for t in totals} == {("openai", "USD"), ("aws", "USD"), ("aws", "EUR")}


def test_reconciliation_meets_bedrock_calls_in_a_cur(tmp_path, db, catalog):
    """A CUR names Bedrock models by usage type (USE1-Claude4.5Sonnet-...): its rows meet the aws.bedrock calls of
    the same model; the account's other services (S3 here) are not model spend."""
    traces = [trace("/kb", lambda t, r: [call(t, r, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock",
                                              usage=(200_000, 10_000))])]
    load(db, tmp_path, traces)
    price(db, catalog)
    traced = db.scalar("SELECT cost_usd FROM llm_calls")
    header = ("lineItem/LineItemType,lineItem/UsageStartDate,lineItem/UsageEndDate,lineItem/ProductCode,lineItem/UsageType,"
              "lineItem/Operation,lineItem/UsageAmount,lineItem/CurrencyCode,lineItem/UnblendedCost,product/ProductName\n")
    lines = [("USE1-Claude4.5Sonnet-input-tokens", "200000", traced * 0.6), ("USE1-Claude4.5Sonnet-output-tokens", "10000", traced * 0.4 + 3.0),
             ("USE1-Claude3Haiku-input-tokens", "1000000", 0.25)]
    body = "".join(f"Usage,2025-11-09T00:00:00Z,2025-11-09T01:00:00Z,AmazonBedrock,{u},InvokeModelInference,{a},USD,{c!r},Amazon Bedrock\n"
                   for u, a, c in lines)
    body += "Usage,2025-11-09T00:00:00Z,2025-11-09T01:00:00Z,AmazonS3,USE1-TimedStorage-ByteHrs,StandardStorage,9,USD,40.0,Amazon Simple Storage Service\n"
    (tmp_path / "cur.csv").write_text(header + body)
    Ingestor(db, workers=1).run(expand_paths([str(tmp_path / "cur.csv")]))
    with db.transaction() as con:
        cost.reconcile(con, catalog)
    rows = {m: (tc, bc, gap) for m, tc, bc, gap in db.execute(
        "SELECT model, trace_cost, billed_cost, gap FROM reconciliation WHERE provider = 'aws'").fetchall()}
    assert set(rows) == {"claude-sonnet-4-5", "claude-3-haiku"}
    tc, bc, gap = rows["claude-sonnet-4-5"]
    assert close(tc, traced) and close(bc, traced + 3.0, 1e-9) and close(gap, 3.0, 1e-9)
    assert rows["claude-3-haiku"] == (None, 0.25, 0.25)


# ---------------------------------------------------------------------------------- breakdowns

def test_cost_views(tmp_path, db, catalog):
    traces = [trace("/chat", lambda t, r: [call(t, r, "gpt-4o", "openai", usage=(1000, 100))]),
              trace("/chat", lambda t, r: [call(t, r, "gpt-4o-mini", "openai", usage=(4000, 400))]),
              trace("/search", lambda t, r: [call(t, r, "gpt-4o", "openai", usage=(2000, 50)),
                                             call(t, r, "acme-internal-7b", "openai", usage=(10, 1))])]
    load(db, tmp_path, traces)
    price(db, catalog)
    with db.transaction() as con:
        names = cost.create_cost_views(con)
    assert {"cost_by_feature", "cost_by_tenant", "cost_by_model", "cost_by_provider", "cost_by_day"} <= set(names)
    expected = {}
    for feature, c in db.execute("SELECT feature, cost_usd FROM llm_calls").fetchall():
        expected[feature] = expected.get(feature, 0.0) + (c or 0.0)
    rows = cost.cost_breakdown(db.con, "feature")
    assert {r["feature"]: r["cost_usd"] for r in rows} == pytest.approx(expected)
    assert [r["feature"] for r in rows] == sorted(expected, key=lambda k: -expected[k])
    assert {r["feature"]: r["unpriced_calls"] for r in rows} == {"/chat": 0, "/search": 1}
    assert sum(r["share_of_cost"] for r in rows) == pytest.approx(1.0)
    by_model = {r["model"]: r["calls"] for r in cost.cost_breakdown(db.con, "model")}
    assert by_model == {"gpt-4o": 2, "gpt-4o-mini": 1, "acme-internal-7b": 1}
    with pytest.raises(ValueError, match="unknown breakdown"):
        cost.cost_breakdown(db.con, "colour")


# --------------------------------------------------------------------------------------- refresh

def test_refresh_rebuilds_models_and_keeps_gpu_prices(tmp_path):
    litellm = {
        "sample_spec": {"input_cost_per_token": 0},
        "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 2.5e-06,
                   "cache_read_input_token_cost": 1.25e-06, "output_cost_per_token": 1e-05},
        "claude-sonnet-4-5": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 3e-06,
                              "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
                              "output_cost_per_token": 1.5e-05, "input_cost_per_token_above_200k_tokens": 6e-06,
                              "output_cost_per_token_above_200k_tokens": 2.25e-05, "deprecation_date": "2027-01-01"},
        "gemini/gemini-2.5-flash": {"litellm_provider": "gemini", "mode": "chat", "input_cost_per_token": 3e-07,
                                    "output_cost_per_token": 2.5e-06},
        "bedrock/us-east-1/anthropic.claude-x": {"litellm_provider": "bedrock", "mode": "chat", "input_cost_per_token": 1e-06},
        "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04},
        "together_ai/llama": {"litellm_provider": "together_ai", "mode": "chat", "input_cost_per_token": 1e-07},
    }
    src = tmp_path / "model_prices_and_context_window.json"
    src.write_text(json.dumps(litellm))
    out = tmp_path / "prices.yaml"
    shutil.copy(PRICES_FILE, out)
    args = [str(src), "--source", "test copy", "--as-of", "2026-01-02", "--out", str(out)]
    assert refresh.main(args) == 0
    first = out.read_bytes()
    assert refresh.main(args) == 0 and out.read_bytes() == first  # deterministic
    cat = Catalog(read_catalog_file(out))
    assert str(cat.as_of) == "2026-01-02" and cat.source.startswith("test copy")
    assert [(e.provider, e.model) for e in cat.entries()] == [
        ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash")]
    sonnet = cat.resolve("claude-sonnet-4-5").price
    assert (sonnet.input, sonnet.cached_input, sonnet.cache_write, sonnet.output) == (3.0, 0.3, 3.75, 15.0)
    assert (sonnet.long_context.above_input_tokens, sonnet.long_context.input, sonnet.long_context.output) == (200_000, 6.0, 22.5)
    assert str(sonnet.deprecated) == "2027-01-01"
    assert cat.gpu("H100").price.usd_per_hour == Catalog.load().gpu("H100").price.usd_per_hour
    assert cat.bills_as("aws.bedrock") == "aws"


# ------------------------------------------------------------------------------------------- CLI

def test_pricing_show_and_list():
    runner = CliRunner()
    shown = runner.invoke(pricing_app, ["show", "gpt-4o-2024-08-06"])
    assert shown.exit_code == 0
    assert shown.output.splitlines()[0] == "gpt-4o-2024-08-06 -> openai/gpt-4o-2024-08-06"
    assert "2.5  USD per 1M tokens" in shown.output and "source        catalog 2026-11-22" in shown.output
    unknown = runner.invoke(pricing_app, ["show", "acme-internal-7b"])
    assert unknown.exit_code == 2 and "unknown model 'acme-internal-7b'" in unknown.output
    # It says how such a model can still be priced: from GPU time when it is self-hosted.
    assert "priced from GPU time" in unknown.output and "--db FILE" in unknown.output
    listed = runner.invoke(pricing_app, ["list", "--provider", "anthropic"])
    assert listed.exit_code == 0 and "claude-haiku-4-5" in listed.output and "gpt-4o" not in listed.output
    gpus = runner.invoke(pricing_app, ["list", "--gpus"])
    assert gpus.exit_code == 0 and "p5.48xlarge" in gpus.output
    assert runner.invoke(pricing_app, ["list", "--provider", "nobody"]).exit_code == 2


def test_pricing_prices_option(tmp_path):
    runner = CliRunner()
    good = tmp_path / "p.yaml"
    good.write_text("models:\n  acme:\n    acme-llm: {input: 1, output: 2}\n")
    shown = runner.invoke(pricing_app, ["show", "acme-llm", "--prices", str(good)])
    assert shown.exit_code == 0 and "source        p.yaml: acme/acme-llm" in shown.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  acme:\n    acme-llm: {input: free}\n")
    failed = runner.invoke(pricing_app, ["show", "gpt-4o", "--prices", str(bad)])
    assert failed.exit_code == 2 and "models.acme.acme-llm.input" in failed.output
    missing = runner.invoke(pricing_app, ["list", "--prices", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "no such price file" in missing.output
