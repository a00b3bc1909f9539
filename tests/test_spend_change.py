"""Why spend changed: two generated weeks with a known volume change, a known prompt growth, a known
price change (a price file with a dearer gpt-4o input for week 2) and a known change of model mix; each
part recovered within 2%, the parts summing to the change exactly, in every output.

Week 1 (2025-11-09 .. 15, bundled prices: gpt-4o $2.50/$10.00, gpt-4o-mini $0.15/$0.60 per 1M tokens):
  support: 100 requests a day, one gpt-4o call each, about 600 input (deterministic jitter of +-10 around
           it) and 200 output tokens (prompts under 1,024 tokens: no prompt-caching finding, so no waste part).
  router:  50 requests a day, one call each, 500 input and 100 output tokens, half on gpt-4o, half on mini.
Week 2 (2025-11-16 .. 22, gpt-4o input at $2.75):
  support: 120 requests a day (+20%), about 750 input tokens (+25% prompt growth), 200 output.
  router:  50 requests a day, 20% on gpt-4o.

By hand (without the jitter):
  support: base 700 x (600 x 2.5 + 200 x 10) / 1e6 = $2.45; now 840 x (750 x 2.75 + 200 x 10) / 1e6 = $3.4125
           volume 140 x $0.0035 = $0.49; tokens per request 840 x 150 x $2.5e-6 = $0.315;
           price 840 x 750 x $0.25e-6 = $0.1575; mix 0; waste 0; total $0.9625.
  router:  volume 0; mix 350 x (-0.3 x $0.00225 + 0.3 x $0.000135) = -$0.222075;
           price 70 x 500 x $0.25e-6 = $0.00875; tokens 0.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import otlp_factory as f
from llmaudit.cli import app
from llmaudit.report.spend_change import CellSpend, FeatureSpend, SpendChange, cents, decompose

DAY_NS = 86_400 * 10**9


def _request(feature: str, model: str, tokens_in: int, tokens_out: int, start_ns: int) -> dict:
    tid = f.new_trace_id()
    root = f.new_span_id()
    spans = [f.span(tid, root, None, "POST /chat", 2, start_ns, 2_000_000_000, {"app.feature": feature}),
             f.llm_span(tid, root, model, tokens_in, tokens_out, start_ns + 1000)]
    return f.request(spans, service=f"{feature}-api")


def week(path, first_day: int, support_per_day: int, support_input: int, router_4o_every: int) -> None:
    docs = []
    for day in range(7):
        t0 = f.T0 + (first_day + day) * DAY_NS + 6 * 3600 * 10**9
        for i in range(support_per_day):
            jitter = (i * 37 + day * 11) % 21 - 10  # -10..+10, deterministic
            docs.append(_request("support", "gpt-4o", support_input + jitter, 200, t0 + i * 300 * 10**9 // 2))
        for i in range(50):
            model = "gpt-4o" if i % router_4o_every == 0 else "gpt-4o-mini"
            docs.append(_request("router", model, 500, 100, t0 + i * 600 * 10**9 + 7 * 10**9))
    f.write_jsonl(path, docs)


@pytest.fixture(scope="module")
def two_weeks(tmp_path_factory):
    d = tmp_path_factory.mktemp("weeks")
    week(d / "week1.jsonl", 0, 100, 600, 2)
    week(d / "week2.jsonl", 7, 120, 750, 5)
    (d / "prices-week2.yaml").write_text("models:\n  openai:\n    gpt-4o: {input: 2.75, cached_input: 1.25, output: 10}\n")
    runner = CliRunner()
    r1 = runner.invoke(app, ["analyze", str(d / "week1.jsonl"), "--json", str(d / "week1.json"), "-q"])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, ["analyze", str(d / "week2.jsonl"), "--prices", str(d / "prices-week2.yaml"),
                             "--baseline", str(d / "week1.json"), "--json", str(d / "week2.json"),
                             "--markdown", str(d / "week2.md"), "--html", str(d / "week2.html")],
                       env={"COLUMNS": "200"})
    assert r2.exit_code == 0, r2.output
    return d, json.loads((d / "week2.json").read_text()), r2.output


def _feature(doc, name):
    return next(r for r in doc["extras"]["baseline"]["spend_change"]["features"] if r["feature"] == name)


def test_each_part_is_recovered_within_2_percent_and_the_parts_sum_exactly(two_weeks):
    _, doc, _ = two_weeks
    support = _feature(doc, "support")
    parts = support["parts"]
    assert parts["volume"] == pytest.approx(0.49, rel=0.02)
    assert parts["tokens_per_request"] == pytest.approx(0.315, rel=0.02)
    assert parts["price"] == pytest.approx(0.1575, rel=0.02)
    assert parts["mix"] == pytest.approx(0.0, abs=1e-9)
    assert parts["waste"] == pytest.approx(0.0, abs=1e-9)
    assert support["change_usd"] == pytest.approx(0.9625, rel=0.02)
    router = _feature(doc, "router")["parts"]
    assert router["mix"] == pytest.approx(-0.222075, rel=0.02)
    assert router["price"] == pytest.approx(0.00875, rel=0.02)
    assert router["volume"] == pytest.approx(0.0, abs=1e-9)
    assert router["tokens_per_request"] == pytest.approx(0.0, abs=1e-9)
    for row in doc["extras"]["baseline"]["spend_change"]["features"]:
        # Exact by construction: the chained levels are rounded before the differences are taken.
        assert sum(row["parts"].values()) == pytest.approx(row["change_usd"], abs=1e-9)
        assert row["change_usd"] == pytest.approx(row["current_usd"] - row["baseline_usd"], abs=1e-9)
    # The feature's spend is the report's own breakdown.
    spend = {r["key"]: r["spend_usd"] for r in doc["breakdowns"]["feature"]}
    assert support["current_usd"] == pytest.approx(spend["support"], abs=0.005)


def test_prompt_growth_is_token_creep_against_the_baseline(two_weeks):
    _, doc, _ = two_weeks
    support = _feature(doc, "support")
    assert support["input_tokens_per_request_growth"] == pytest.approx(0.25, rel=0.02)
    assert support["token_creep"] is True
    assert _feature(doc, "router")["token_creep"] is False


def test_the_decomposition_is_in_every_output(two_weeks):
    d, doc, terminal = two_weeks
    support = _feature(doc, "support")
    md = (d / "week2.md").read_text()
    html = (d / "week2.html").read_text()
    assert "Why spend changed" in md and "Why spend changed" in html and "Why spend changed" in terminal
    row = SpendChange.model_validate(support)
    shown = cents(row)  # the parts in whole cents, summing to the change in whole cents
    assert sum(shown.values()) == pytest.approx(round(row.change_usd, 2), abs=1e-9)
    assert shown["volume"] == 0.49 and shown["tokens_per_request"] + shown["price"] == pytest.approx(0.47)
    for text in (md, html, terminal):
        text = " ".join(text.split())  # the terminal wraps long lines
        assert "+$0.49" in text and f"+${shown['tokens_per_request']:,.2f}" in text and f"+${shown['price']:,.2f}" in text
        assert "chained substitution" in text


def test_the_report_schema_carries_the_spend_detail(two_weeks):
    _, doc, _ = two_weeks
    assert doc["schema_version"] == "1.1"
    support = next(x for x in doc["spend_detail"] if x["feature"] == "support")
    assert support["requests"] == 840
    [cell] = support["cells"]
    assert (cell["model"], cell["call_kind"], cell["calls"]) == ("gpt-4o", "main", 840)
    assert cell["output_usd"] == pytest.approx(840 * 200 * 10 / 1e6)


# ------------------------------------------------------------------ the arithmetic alone

def _cell(model, calls, tin, tout, in_usd, out_usd, kind="main"):
    return CellSpend(provider="openai", model=model, call_kind=kind, calls=calls, input_tokens=tin, output_tokens=tout,
                     input_usd=in_usd, output_usd=out_usd)


def _feature_spend(requests, cells):
    return FeatureSpend(feature="f", requests=requests, calls=sum(c.calls for c in cells),
                        input_tokens=sum(c.input_tokens for c in cells), output_tokens=sum(c.output_tokens for c in cells),
                        spend_usd=sum(c.input_usd + c.output_usd for c in cells), cells=cells)


def test_waste_is_its_own_part_and_new_or_gone_cells_are_mix():
    base = _feature_spend(100, [_cell("a", 100, 10_000, 1_000, 1.0, 2.0), _cell("gone", 10, 500, 0, 0.5, 0.0)])
    now = _feature_spend(100, [_cell("a", 100, 10_000, 1_000, 1.0, 2.0), _cell("new", 20, 2_000, 200, 0.2, 0.4, "tool")])
    parts = decompose(base, now, 0.0, 0.9)
    assert parts["waste"] == pytest.approx(0.9)
    assert parts["volume"] == pytest.approx(0.0) and parts["price"] == pytest.approx(0.0)
    assert sum(parts.values()) == pytest.approx(3.6 - 3.5, abs=1e-9)


def test_a_feature_seen_in_one_window_is_volume_and_spend_without_tokens_is_per_call():
    now = _feature_spend(10, [_cell("self-hosted", 10, 0, 0, 4.0, 0.0)])
    assert decompose(None, now, 0.0, 0.0) == {"waste": 0.0, "volume": 4.0, "mix": 0.0, "tokens_per_request": 0.0, "price": 0.0}
    assert decompose(now, None, 0.0, 0.0)["volume"] == -4.0
    dearer = _feature_spend(20, [_cell("self-hosted", 20, 0, 0, 10.0, 0.0)])
    parts = decompose(now, dearer, 0.0, 0.0)
    assert parts["volume"] == pytest.approx(4.0) and parts["price"] == pytest.approx(2.0)
    assert sum(parts.values()) == pytest.approx(6.0, abs=1e-9)


def test_token_creep_since_the_baseline_is_a_new_llma018_finding(two_weeks):
    _, doc, _ = two_weeks
    [creep] = [f for f in doc["findings"] if f["rule_id"] == "LLMA018"]
    assert creep["scope"]["feature"] == "support" and creep["evidence"]["compared_with"] == "baseline"
    assert creep["evidence"]["growth_percent"] == pytest.approx(25.0, abs=0.5)
    # 150 more input tokens on each of 840 requests at gpt-4o's week-2 input price ($2.75 per 1M)
    assert creep["waste"]["tokens"] == pytest.approx(150 * 840, rel=0.02)
    assert creep["waste"]["usd"] == pytest.approx(150 * 840 * 2.75e-6, abs=0.01)
    assert creep["fingerprint"] in {c["fingerprint"] for c in doc["extras"]["baseline"]["new"]}
    assert creep["fingerprint"] not in doc["totals"]["counted_findings"]
    assert doc["totals"]["findings"] == len(doc["findings"])


def test_min_change_thresholds_gate_only_what_grew_past_them(two_weeks):
    d, doc, _ = two_weeks
    creep = next(f for f in doc["findings"] if f["rule_id"] == "LLMA018")["waste"]["usd_per_month"]
    growth = _feature(doc, "support")["change_usd"]  # support's spend grew by this (+39%)
    base = ["analyze", str(d / "week2.jsonl"), "--prices", str(d / "prices-week2.yaml"), "--baseline", str(d / "week1.json"),
            "-q", "--fail-on-new"]
    runner = CliRunner()
    assert runner.invoke(app, base).exit_code == 1  # the new LLMA018 finding
    # Above both the new finding's monthly waste and the feature's growth: nothing trips.
    above = max(creep, growth) + 0.5
    res = runner.invoke(app, [*base, "--min-change-usd", f"{above:.2f}"])
    assert res.exit_code == 0, res.output
    # Below the finding's waste, and a percentage the feature's +39% does not pass: the new finding trips.
    res = runner.invoke(app, [*base, "--min-change-usd", f"{creep - 0.1:.2f}", "--min-change-pct", "50"])
    assert res.exit_code == 1
    gates = [line for line in res.output.splitlines() if line.startswith("gate: ")]
    assert len(gates) == 1 and gates[0].startswith("gate: new finding past the thresholds: LLMA018")
    # --fail-on high with a low threshold: the feature's spend growth trips it (the finding is medium).
    res = runner.invoke(app, [*base[:-1], "--fail-on", "high", "--min-change-usd", "0.1", "--min-change-pct", "30"])
    assert res.exit_code == 1
    gates = [line for line in res.output.splitlines() if line.startswith("gate: ")]
    assert gates == ["gate: feature support: spend $2.45 -> $3.41, past the thresholds"]
