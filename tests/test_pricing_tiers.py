"""Prices as billed (issue 15, items 1-4): service tiers and batch, effective dates, long-context and
1-hour cache-write tiers, contract discounts, committed rates and volume tiers.

Each expected dollar figure is computed by hand here (tokens x the rate written in the test), and the
actual one comes through the real pipeline: an OTLP file ingested into a DuckDB store, derived and
priced (or `llmaudit analyze` and its JSON report)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import otlp_factory as f
import pytest
from typer.testing import CliRunner

from llmaudit.cli import app
from llmaudit.cli_pricing import pricing_app
from llmaudit.config import Settings
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.normalize.derive import derive
from llmaudit.pricing.catalog import Catalog, PriceError, read_catalog_file
from llmaudit.store import Store

S = 1_000_000_000


def ns(day: str, hour: int = 12) -> int:
    """A UTC date and hour as OTLP nanoseconds."""
    d = datetime.fromisoformat(day).replace(hour=hour, tzinfo=timezone.utc)
    return int(d.timestamp()) * S


# A model of our own, so each rate is the one written here (not the bundled catalog's).
PRICES = """
models:
  openai:
    acme-1:
      input: 2.0
      cached_input: 0.5
      cache_write: 2.5
      cache_write_1h: 4.0
      output: 8.0
      long_context: {above_input_tokens: 200000, input: 4.0, output: 12.0}
      effective_from: 2026-03-01
      tiers:
        batch: {input: 1.0, cached_input: 0.25, output: 4.0}
        priority: {input: 3.5, cached_input: 0.875, output: 14.0}
        flex: {input: 1.0, cached_input: 0.25, output: 4.0}
      history:
        - {effective_to: 2026-03-01, input: 3.0, cached_input: 1.5, output: 12.0}
    acme-2:
      input: 1.0
      output: 4.0
  anthropic:
    acme-claude:
      input: 3.0
      cached_input: 0.3
      cache_write: 3.75
      cache_write_1h: 6.0
      output: 15.0
"""


def write(tmp_path, text, name="prices.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def call_span(tid, parent, model, start_ns, tokens, provider="openai", **attrs):
    a = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model,
         "gen_ai.usage.input_tokens": tokens[0], "gen_ai.usage.output_tokens": tokens[1], **attrs}
    return f.span(tid, f.new_span_id(), parent, f"chat {model}", 3, start_ns, S // 2, a)


def one_call(model, start_ns, tokens, root_kind=2, feature="chat", **attrs):
    tid, root = f.new_trace_id(), f.new_span_id()
    return [f.span(tid, root, None, f"POST /{feature}", root_kind, start_ns, 2 * S, {"http.route": f"/{feature}"}),
            call_span(tid, root, model, start_ns, tokens, **attrs)]


def priced(tmp_path, traces, prices_text=PRICES):
    """Ingest the traces into a store, derive and price them with the price file: {call: row}."""
    path = tmp_path / "traces.jsonl"
    f.write_jsonl(path, [f.request(t) for t in traces])
    prices = write(tmp_path, prices_text)
    with Store(tmp_path / "s.duckdb") as store:
        Ingestor(store, workers=1).run(expand_paths([str(path)]))
        derive(store, Settings(prices=str(prices)))
        rows = store.con.execute("""SELECT model, start_time, input_tokens, output_tokens, service_tier, priced_tier,
                                           cost_usd, batch_cost_usd, price_source
                                    FROM llm_calls ORDER BY start_time, model""").fetchall()
    keys = ("model", "start", "input", "output", "tier", "priced_tier", "cost", "batch_cost", "source")
    return [dict(zip(keys, r)) for r in rows]


def close(a, b):
    return a is not None and abs(a - b) < 1e-9


# ------------------------------------------------------------------------------------------ tiers

def test_batch_priority_and_flex_calls_priced_at_their_tier(tmp_path):
    t = ns("2026-04-02")
    traces = [one_call("acme-1", t, (100_000, 20_000), **{"openai.response.service_tier": "batch"}),
              one_call("acme-1", t + S, (100_000, 20_000), **{"gen_ai.openai.response.service_tier": "priority"}),
              one_call("acme-1", t + 2 * S, (100_000, 20_000), **{"openai.request.service_tier": "flex"}),
              # "default" (what OpenAI writes for the standard tier) and a request of "auto" are standard
              one_call("acme-1", t + 3 * S, (100_000, 20_000), **{"openai.response.service_tier": "default",
                                                                   "openai.request.service_tier": "auto"})]
    batch, priority, flex, standard = priced(tmp_path, traces)
    assert (batch["tier"], batch["priced_tier"]) == ("batch", "batch")
    assert close(batch["cost"], 100_000 * 1.0 / 1e6 + 20_000 * 4.0 / 1e6)           # $0.18
    assert close(priority["cost"], 100_000 * 3.5 / 1e6 + 20_000 * 14.0 / 1e6)       # $0.63
    assert priority["priced_tier"] == "priority" and "(priority tier)" in priority["source"]
    assert close(flex["cost"], 100_000 * 1.0 / 1e6 + 20_000 * 4.0 / 1e6)
    assert (standard["tier"], standard["priced_tier"]) == ("standard", "standard")
    assert close(standard["cost"], 100_000 * 2.0 / 1e6 + 20_000 * 8.0 / 1e6)        # $0.36
    # every call also carries its cost at the batch tier
    assert all(close(r["batch_cost"], 0.18) for r in (batch, priority, flex, standard))


def test_vercel_ai_sdk_provider_metadata_names_the_tier(tmp_path):
    # The AI SDK writes the provider's response metadata as one JSON attribute (as in its real spans).
    meta = {"ai.response.providerMetadata": json.dumps({"openai": {"responseId": "resp_1", "serviceTier": "flex"}})}
    std = {"ai.response.providerMetadata": json.dumps({"openai": {"responseId": "resp_2", "serviceTier": "default"}})}
    t = ns("2026-04-02")
    flex, standard = priced(tmp_path, [one_call("acme-1", t, (1_000, 1_000), **meta),
                                       one_call("acme-1", t + S, (1_000, 1_000), **std)])
    assert (flex["tier"], standard["tier"]) == ("flex", "standard")
    assert close(flex["cost"], 1_000 * 1.0 / 1e6 + 1_000 * 4.0 / 1e6)
    assert close(standard["cost"], 1_000 * 2.0 / 1e6 + 1_000 * 8.0 / 1e6)


def test_a_tier_the_catalog_lacks_is_priced_at_standard_and_says_so(tmp_path):
    (row,) = priced(tmp_path, [one_call("acme-2", ns("2026-04-02"), (1000, 1000),
                                        **{"openai.response.service_tier": "priority"})])
    assert close(row["cost"], 1000 * 1.0 / 1e6 + 1000 * 4.0 / 1e6)
    assert row["priced_tier"] == "standard" and "priority tier: no catalog rates" in row["source"]
    assert row["batch_cost"] is None


# ------------------------------------------------------------------------------------------ dates

def test_calls_on_each_side_of_a_price_change(tmp_path):
    before = one_call("acme-1", ns("2026-02-28", 23), (10_000, 1_000))
    after = one_call("acme-1", ns("2026-03-01", 0), (10_000, 1_000))
    old, new = priced(tmp_path, [before, after])
    assert close(old["cost"], 10_000 * 3.0 / 1e6 + 1_000 * 12.0 / 1e6)   # $0.042 at the old price
    assert close(new["cost"], 10_000 * 2.0 / 1e6 + 1_000 * 8.0 / 1e6)    # $0.028 from 2026-03-01
    assert "to 2026-03-01" in old["source"] and "2026-03-01 to" in new["source"]


def test_a_call_before_any_price_in_force_is_unpriced_not_zero(tmp_path):
    text = "models:\n  openai:\n    acme-3: {input: 1.0, output: 2.0, effective_from: 2026-05-01}\n"
    (row,) = priced(tmp_path, [one_call("acme-3", ns("2026-04-30"), (10, 10))], text)
    assert row["cost"] is None and "no price of" in row["source"] and "2026-04-30" in row["source"]


def test_an_override_with_a_new_effective_date_keeps_the_old_price_as_history(tmp_path):
    base = write(tmp_path, "models:\n  openai:\n    acme-4: {input: 1.0, output: 2.0}\n", "base.yaml")
    change = read_catalog_file(write(tmp_path, "models:\n  openai:\n    acme-4: {input: 0.5, effective_from: 2026-06-01}\n",
                                     "change.yaml"))
    catalog = Catalog(read_catalog_file(base), change)
    rows = catalog.resolve("acme-4", "openai").price.rows()
    assert [(r.input, r.output, r.effective_from, r.effective_to) for r in rows] == [
        (0.5, 2.0, datetime(2026, 6, 1).date(), None), (1.0, 2.0, None, datetime(2026, 6, 1).date())]


# ------------------------------------------------------------------------------------------ long context, cache TTL

def test_long_context_call_past_the_threshold(tmp_path):
    t = ns("2026-04-02")
    short, long = priced(tmp_path, [one_call("acme-1", t, (200_000, 1_000)), one_call("acme-1", t + S, (250_000, 1_000))])
    assert close(short["cost"], 200_000 * 2.0 / 1e6 + 1_000 * 8.0 / 1e6)   # at the threshold: standard
    assert close(long["cost"], 250_000 * 4.0 / 1e6 + 1_000 * 12.0 / 1e6)   # past it: the whole call at the tier, $1.012
    assert "(long context)" in long["source"]


def test_one_hour_cache_write_priced_apart_from_five_minute(tmp_path):
    t = ns("2026-04-02")
    five = one_call("acme-claude", t, (12_000, 500), provider="anthropic",
                    **{"gen_ai.usage.cache_creation.input_tokens": 10_000})
    hour = one_call("acme-claude", t + S, (12_000, 500), provider="anthropic",
                    **{"gen_ai.usage.cache_creation.input_tokens": 10_000,
                       "gen_ai.usage.cache_creation.ephemeral_1h_input_tokens": 10_000})
    mixed = one_call("acme-claude", t + 2 * S, (12_000, 500), provider="anthropic",
                     **{"gen_ai.usage.cache_creation.input_tokens": 10_000,
                        "gen_ai.usage.cache_creation.ephemeral_1h_input_tokens": 4_000})
    r5, r1, rm = priced(tmp_path, [five, hour, mixed])
    uncached = 2_000 * 3.0 / 1e6 + 500 * 15.0 / 1e6
    assert close(r5["cost"], uncached + 10_000 * 3.75 / 1e6)                      # $0.05
    assert close(r1["cost"], uncached + 10_000 * 6.0 / 1e6)                       # $0.0735
    assert close(rm["cost"], uncached + 6_000 * 3.75 / 1e6 + 4_000 * 6.0 / 1e6)


# ------------------------------------------------------------------------------------------ contracts

CONTRACT = PRICES + """
contracts:
  - name: OpenAI enterprise agreement
    provider: openai
    discount_pct: 20
  - model: acme-claude
    provider: anthropic
    volume_tiers:
      - {above_tokens: 1000, discount_pct: 10}
      - {above_tokens: 3000, discount_pct: 25}
"""


def test_contract_discount_of_twenty_percent(tmp_path):
    t = ns("2026-04-02")
    std, batch = priced(tmp_path, [one_call("acme-1", t, (100_000, 20_000)),
                                   one_call("acme-1", t + S, (100_000, 20_000), **{"openai.response.service_tier": "batch"})],
                        CONTRACT)
    assert close(std["cost"], (100_000 * 2.0 / 1e6 + 20_000 * 8.0 / 1e6) * 0.8)   # $0.288
    assert close(batch["cost"], (100_000 * 1.0 / 1e6 + 20_000 * 4.0 / 1e6) * 0.8)  # $0.144
    assert close(std["batch_cost"], 0.144)
    assert "OpenAI enterprise agreement: 20" in std["source"]


def test_volume_tier_crossing(tmp_path):
    # 1,000 tokens a call: the month's first call is below the 1,000-token threshold, the 3rd straddles
    # 3,000 (its first half at 10% off, the second at 25%), calls of the next month start again.
    tokens = (800, 200)
    list_cost = 800 * 3.0 / 1e6 + 200 * 15.0 / 1e6   # $0.0054
    starts = [ns("2026-04-02", 1), ns("2026-04-02", 2), ns("2026-04-02", 3), ns("2026-04-02", 4), ns("2026-05-01", 0)]
    traces = [one_call("acme-claude", s, tokens, provider="anthropic") for s in starts]
    traces[2] = one_call("acme-claude", starts[2], (1_500, 500), provider="anthropic")  # 2,000 tokens
    rows = priced(tmp_path, traces, CONTRACT)
    third_list = 1_500 * 3.0 / 1e6 + 500 * 15.0 / 1e6
    expected = [list_cost,                                  # tokens 0-1,000: no discount
                list_cost * 0.9,                            # 1,000-2,000: 10% off
                third_list * (1_000 * 0.9 + 1_000 * 0.75) / 2_000,  # 2,000-4,000: half at 10%, half at 25%
                list_cost * 0.75,                           # 4,000-5,000: 25% off
                list_cost]                                  # May: the count starts again
    assert [round(r["cost"], 12) for r in rows] == [round(e, 12) for e in expected]
    assert "volume tier: 2000 of 2000" in rows[2]["source"] and "volume tier" not in rows[0]["source"]


def test_committed_rate_for_a_model_wins_over_its_providers_discount(tmp_path):
    text = PRICES + """
contracts:
  - {provider: openai, discount_pct: 20}
  - {model: acme-2, provider: openai, rates: {input: 0.5, output: 2.0}, effective_from: 2026-04-01}
"""
    before, after = priced(tmp_path, [one_call("acme-2", ns("2026-03-31"), (1_000_000, 100_000)),
                                      one_call("acme-2", ns("2026-04-01"), (1_000_000, 100_000))], text)
    assert close(before["cost"], (1.0 + 0.1 * 4.0) * 0.8)   # list price, the provider's 20% off
    assert close(after["cost"], 0.5 + 0.1 * 2.0)            # the committed rate, no further discount
    assert "committed rates" in after["source"]


@pytest.mark.parametrize("entry, message", [
    ("{discount_pct: 10}", "a contract names a provider or a model"),
    ("{provider: openai, rates: {input: 1}}", "committed rates are per model"),
    ("{provider: openai, discount_pct: 120}", "contracts.0.discount_pct"),
])
def test_bad_contract_names_file_and_entry(tmp_path, entry, message):
    path = write(tmp_path, f"contracts:\n  - {entry}\n")
    with pytest.raises(PriceError) as err:
        read_catalog_file(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_misspelt_tier_names_file_and_model(tmp_path):
    path = write(tmp_path, "models:\n  openai:\n    acme-5: {input: 1, output: 2, tiers: {batches: {input: 0.5, output: 1}}}\n")
    with pytest.raises(PriceError) as err:
        read_catalog_file(path)
    assert "models.openai.acme-5" in str(err.value) and "unknown service tier batches" in str(err.value)


# ------------------------------------------------------------------------------------------ CLI

def test_analyze_report_carries_tiered_costs_and_contract_provenance(tmp_path):
    t = ns("2026-04-02")
    traces = [one_call("acme-1", t, (100_000, 20_000), **{"openai.response.service_tier": "batch"}),
              one_call("acme-1", t + S, (100_000, 20_000))]
    path = tmp_path / "traces.jsonl"
    f.write_jsonl(path, [f.request(x) for x in traces])
    prices = write(tmp_path, CONTRACT)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["analyze", str(path), "--db", str(tmp_path / "a.duckdb"), "--prices", str(prices),
                                      "--json", str(out)])
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(out.read_text())
    expected = ((100_000 * 1.0 + 20_000 * 4.0) / 1e6 + (100_000 * 2.0 + 20_000 * 8.0) / 1e6) * 0.8
    assert abs(doc["totals"]["spend_usd"] - round(expected, 2)) < 1e-9
    assert doc["prices"]["contracts"] == ["OpenAI enterprise agreement: 20% off",
                                          "contract anthropic/acme-claude: 10% off tokens past 1,000/month, "
                                          "25% off tokens past 3,000/month"]
    assert doc["prices"]["service_tiers"] == {"batch": 1, "standard": 1}


def test_pricing_show_says_which_rate_applies_and_why(tmp_path):
    prices = write(tmp_path, CONTRACT)
    result = CliRunner().invoke(pricing_app, ["show", "acme-1", "--provider", "openai", "--prices", str(prices)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "in force from 2026-03-01" in text
    assert "batch" in text and "priority" in text and "flex" in text
    assert "before 2026-03-01" in text and "12" in text            # the history row, output 12
    assert "OpenAI enterprise agreement: 20% off" in text
    assert "cache write 1h" in text
    result = CliRunner().invoke(pricing_app, ["show", "acme-claude", "--provider", "anthropic", "--prices", str(prices)])
    assert "10% off tokens past 1,000/month" in result.output
    # --on DATE: the price and the contract terms in force that day
    dated = write(tmp_path, PRICES + "contracts:\n  - {provider: openai, discount_pct: 20, effective_from: 2026-06-01}\n",
                  "dated.yaml")
    result = CliRunner().invoke(pricing_app, ["show", "acme-1", "--provider", "openai", "--prices", str(dated),
                                              "--on", "2026-02-15", "--tier", "priority"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "in force before 2026-03-01 (applies on 2026-02-15)" in lines[1]
    assert any(line.split() == ["output", "12", "USD", "per", "1M", "tokens"] for line in lines)
    assert "no priority rates: a priority-tier call is priced at the standard rates" in result.output
    assert "(not in force on 2026-02-15)" in result.output


# ------------------------------------------------------------------------------------------ the bundled catalog

def test_bundled_catalog_prices_a_batch_call_and_a_one_hour_write(tmp_path):
    t = ns("2026-04-02")
    traces = [one_call("gpt-4o", t, (1_000_000, 100_000), **{"openai.response.service_tier": "batch"}),
              one_call("gpt-4o", t + S, (1_000_000, 100_000), **{"openai.response.service_tier": "priority"}),
              one_call("claude-sonnet-4-5", t + 2 * S, (12_000, 500), provider="anthropic",
                       **{"gen_ai.usage.cache_creation.input_tokens": 10_000,
                          "gen_ai.usage.cache_creation.ephemeral_1h_input_tokens": 10_000})]
    batch, priority, sonnet = priced(tmp_path, traces, "{}\n")
    # LiteLLM 1.109.1: gpt-4o batch input $1.25, output $5; priority $4.25 / $17; Sonnet 4.5 1-hour write $6
    assert close(batch["cost"], 1.25 + 0.1 * 5.0) and batch["priced_tier"] == "batch"
    assert close(priority["cost"], 4.25 + 0.1 * 17.0)
    assert close(sonnet["cost"], 2_000 * 3.0 / 1e6 + 10_000 * 6.0 / 1e6 + 500 * 15.0 / 1e6)


def _litellm(input_cost):
    return {"gpt-x": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": input_cost,
                      "output_cost_per_token": 4e-06}}


def test_refresh_appends_a_changed_price_to_history(tmp_path):
    from llmaudit.pricing import refresh

    src, out = tmp_path / "litellm.json", tmp_path / "prices.yaml"
    out.write_text("providers:\n  openai: {aliases: [openai]}\n")

    def run(table, as_of):
        src.write_text(json.dumps(table))
        assert refresh.main([str(src), "--source", "test", "--as-of", as_of, "--out", str(out)]) == 0
        return Catalog(read_catalog_file(out)).resolve("gpt-x", "openai").price

    first = run(_litellm(1e-06), "2026-01-01")
    assert (first.input, first.effective_from, first.history) == (1.0, None, [])
    # A tier added is more detail, not a price change.
    more = {"gpt-x": {**_litellm(1e-06)["gpt-x"], "input_cost_per_token_batches": 5e-07, "output_cost_per_token_batches": 2e-06}}
    same = run(more, "2026-02-01")
    assert same.history == [] and same.tiers["batch"].input == 0.5
    changed = run(_litellm(2e-06), "2026-03-01")
    assert (changed.input, str(changed.effective_from)) == (2.0, "2026-03-01")
    assert [(h.input, h.effective_from, str(h.effective_to), sorted(h.tiers)) for h in changed.history] == [
        (1.0, None, "2026-03-01", ["batch"])]
    again = run(_litellm(3e-06), "2026-04-01")
    assert [(h.input, str(h.effective_from), str(h.effective_to)) for h in again.history] == [
        (2.0, "2026-03-01", "2026-04-01"), (1.0, "None", "2026-03-01")]
