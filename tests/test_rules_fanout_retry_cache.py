"""LLMA001 fan-out-budget, LLMA002 runaway-loop, LLMA004 retry-storm, LLMA007 duplicate-requests,
LLMA008 uncached-shared-prefix, LLMA012 resent-without-idempotency.

Each rule's own fixtures run through the self-test, and more scenarios per rule (threshold edges
above all) are built here with rules/fixtures/build.py and checked number by number. The scenarios
set list prices themselves (after clearing whatever a catalog filled in), so their dollar figures do
not depend on the catalog.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from llmaudit.config import Settings
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.normalize.derive import derive
from llmaudit.rules.engine import observed_window_days, run_rule
from llmaudit.rules.selftest import run_test
from llmaudit.rules.spec import load_rule_file
from llmaudit.store import Store

REPO = Path(__file__).resolve().parent.parent

_spec = importlib.util.spec_from_file_location("llmaudit_fixture_build", REPO / "rules" / "fixtures" / "build.py")
_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build)
Trace, write_otlp_jsonl = _build.Trace, _build.write_otlp_jsonl

RULE_FILES = {
    "LLMA001": "LLMA001_fan_out_budget.yaml",
    "LLMA002": "LLMA002_runaway_loop.yaml",
    "LLMA004": "LLMA004_retry_storm.yaml",
    "LLMA007": "LLMA007_duplicate_requests.yaml",
    "LLMA008": "LLMA008_uncached_shared_prefix.yaml",
    "LLMA012": "LLMA012_resent_without_idempotency.yaml",
}
# USD per 1M tokens: input, cached input, output (the list prices the fixtures' truths use).
PRICES = {
    "gpt-4o": (2.50, 1.25, 10.0),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "claude-sonnet-4-5": (3.0, 0.30, 15.0),
    "claude-haiku-4-5": (1.0, 0.10, 5.0),
}


def rule(rule_id: str):
    return load_rule_file(REPO / "rules" / RULE_FILES[rule_id])


@lru_cache(maxsize=1)
def catalog_prices_gpt4o() -> bool:
    """Whether the store's preparation prices calls yet (the price catalog is landing separately)."""
    from llmaudit.audit import prepare

    t = Trace("catalog-probe", "probe", at_ms=0)
    t.llm("gpt-4o", 1000, 100)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.jsonl"
        write_otlp_jsonl(path, [t])
        with Store() as store:
            Ingestor(store, workers=1).run(expand_paths([str(path)]))
            prepare(store, Settings())
            price = store.scalar("SELECT max(input_price_per_mtok) FROM llm_calls")
    return price is not None and abs(price - 2.5) < 1e-9


SELF_TESTS = [(rid, i) for rid in RULE_FILES for i in range(len(rule(rid).tests))]


@pytest.mark.parametrize(("rule_id", "index"), SELF_TESTS, ids=[f"{r}-{i}" for r, i in SELF_TESTS])
def test_rule_fixtures(rule_id, index):
    r = rule(rule_id)
    t = r.tests[index]
    priced = t.expect.min_waste_usd is not None and t.expect.min_waste_usd > 0
    if priced and not catalog_prices_gpt4o():
        pytest.skip("needs the bundled price catalog (gpt-4o at $2.50/1M input), not landed yet")
    outcome = run_test(r, t)
    assert outcome.passed, f"{rule_id} {t.name}: {outcome.detail}"


def test_rules_declare_what_the_brief_asks():
    for rid in RULE_FILES:
        r = rule(rid)
        assert r.id == rid
        assert {t.kind for t in r.tests} == {"positive", "negative"}
        for name, p in r.params.items():
            assert p.doc, f"{rid}.{name} has no doc"
    assert rule("LLMA001").category == rule("LLMA002").category == "fan_out"
    assert rule("LLMA004").category == rule("LLMA012").category == "retry_storm"
    assert rule("LLMA007").category == rule("LLMA008").category == "cache_opportunity"
    assert rule("LLMA001").params["budget"].default == 8
    assert rule("LLMA002").params["max_repeats"].default == 5
    assert rule("LLMA004").params["failed_attempts_billed"].default is True
    assert rule("LLMA007").params["window_minutes"].default == 60


# -- scenario helpers ---------------------------------------------------------------------------------


def audit(tmp_path: Path, traces: list[Trace], rule_id: str, **params):
    """Ingest traces, derive, set list prices, run one rule: its findings."""
    path = tmp_path / f"{rule_id}.jsonl"
    write_otlp_jsonl(path, traces)
    with Store(tmp_path / "store.duckdb") as store:
        report = Ingestor(store, workers=1, strict=True).run(expand_paths([str(path)]))
        assert not report.failed_strict
        derive(store, Settings())
        store.execute("UPDATE llm_calls SET input_price_per_mtok = NULL, cached_input_price_per_mtok = NULL, "
                      "output_price_per_mtok = NULL, cost_usd = NULL")
        for model, (inp, cached, out) in PRICES.items():
            store.execute("UPDATE llm_calls SET input_price_per_mtok = ?, cached_input_price_per_mtok = ?, "
                          "output_price_per_mtok = ? WHERE model = ?", [inp, cached, out, model])
        store.execute(
            """UPDATE llm_calls SET cost_usd = ((coalesce(input_tokens, 0) - cached_input_tokens) * input_price_per_mtok
                      + cached_input_tokens * cached_input_price_per_mtok
                      + coalesce(output_tokens, 0) * output_price_per_mtok) / 1e6
               WHERE input_price_per_mtok IS NOT NULL"""
        )
        r = rule(rule_id)
        return run_rule(store, r, r.bound_params(params), observed_window_days(store))


def request(seed: str, service: str, route: str, at_ms: int, duration_ms: int = 3000, **attrs) -> Trace:
    return Trace(seed, service, at_ms=at_ms, name=f"POST {route}",
                 attrs={"http.route": route, "tenant.id": "acme", **attrs}, duration_ms=duration_ms)


def prompt(text: str) -> str:
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])


# -- LLMA001 fan-out-budget -----------------------------------------------------------------------------


def _agent_requests(n: int, calls: int, tag: str, start: int = 0) -> list[Trace]:
    """n requests of `calls` gpt-4o steps each: input 1000 + 100 j, output 100."""
    out = []
    for i in range(n):
        t = request(f"f1-{tag}-{i}", "agent-api", "/v1/agent", (start + i) * 60_000, duration_ms=50_000)
        for j in range(calls):
            t.llm("gpt-4o", 1000 + 100 * j, 100, at_ms=10 + j * 2000, duration_ms=1500)
        out.append(t)
    return out


def test_llma001_one_request_in_twenty_over_budget_is_the_edge(tmp_path):
    """19 requests of 4 calls and 1 of 9 (5% of 20, exactly min_share_over_budget): cap = max(8, 4) = 8;
    the 9th call (input 1800, output 100) is the waste: 1,900 tokens, $ = (1800 x 2.5 + 100 x 10) / 1e6."""
    traces = _agent_requests(19, 4, "a") + _agent_requests(1, 9, "b", start=19)
    findings = audit(tmp_path, traces, "LLMA001")
    assert len(findings) == 1
    f = findings[0]
    assert (f.scope.service, f.scope.feature, f.scope.model) == ("agent-api", "/v1/agent", None)
    ev = f.evidence
    assert (ev["requests"], ev["median_calls"], ev["cap_calls"], ev["max_calls"]) == (20, 4.0, 8.0, 9)
    assert (ev["requests_over_budget"], ev["requests_over_cap"], ev["excess_calls"]) == (1, 1, 1)
    assert ev["excess_call_kinds"] == ["main"]
    assert ev["usd_beyond_budget"] == pytest.approx(0.0055)
    assert f.waste.tokens == 1900
    assert f.waste.usd == pytest.approx(round(0.0055, 2))
    assert f.severity == "medium"
    assert f.example_trace_ids == [traces[-1].trace_id]

    # One more healthy request: 1 of 21 is under 5%.
    assert audit(tmp_path / "b", traces + _agent_requests(1, 4, "c", start=30), "LLMA001") == []
    # A request of exactly the budget is not over it.
    assert audit(tmp_path / "c", _agent_requests(19, 4, "a") + _agent_requests(1, 8, "b", start=19), "LLMA001") == []
    # Fewer requests than min_requests.
    assert audit(tmp_path / "d", _agent_requests(18, 4, "a") + _agent_requests(1, 9, "b", start=19), "LLMA001") == []


def test_llma001_median_above_budget(tmp_path):
    """20 requests of 10 calls and 2 of 12: median 10 > budget 8, so the cap is the median; calls 11
    and 12 (inputs 2000 and 2100, output 100 each) of the two long requests: 8,600 tokens,
    $ = 2 x (4100 x 2.5 + 200 x 10) / 1e6 = $0.0245; severity high. A feature whose every request
    makes the same number of calls (a batch traced as one request) has no tail and is not flagged."""
    traces = _agent_requests(20, 10, "a") + _agent_requests(2, 12, "b", start=20)
    findings = audit(tmp_path, traces, "LLMA001")
    assert len(findings) == 1
    f = findings[0]
    ev = f.evidence
    assert (ev["median_calls"], ev["cap_calls"], ev["requests_over_budget"], ev["requests_over_cap"]) == (10.0, 10.0, 22, 2)
    assert ev["excess_calls"] == 4 and ev["calls_beyond_budget"] == 20 * 2 + 2 * 4
    assert f.waste.tokens == 8600
    assert f.waste.usd == pytest.approx(round(2 * (4100 * 2.5 + 200 * 10) / 1e6, 2))
    assert f.severity == "high"

    assert audit(tmp_path / "b", _agent_requests(25, 12, "a"), "LLMA001") == []


def test_llma001_retries_and_embeddings_do_not_count(tmp_path):
    """22 requests each embed 12 chunks, route (gpt-4o-mini), answer on gpt-4o after two timeouts and
    moderate the answer: 3 counted calls (embeddings and retries are not), nothing over the budget.
    Two of them also plan first (4 counted calls): with budget 3, cap = max(3, median 3) = 3 and the
    4th call of each, the output moderation (400/2), is past it: 804 tokens."""
    traces = []
    for i in range(22):
        t = request(f"f1e-{i}", "rag-api", "/v1/rag", i * 60_000, duration_ms=50_000)
        for j in range(12):
            t.llm("text-embedding-3-small", 400, None, at_ms=10 + j * 100, duration_ms=80, operation="embeddings")
        t.llm("gpt-4o-mini", 300, 5, at_ms=1500, duration_ms=200, name="router")
        if i >= 20:
            t.llm("gpt-4o-mini", 600, 90, at_ms=1750, duration_ms=200, name="planner")
        for k in range(3):
            t.llm("gpt-4o", 2500, None if k < 2 else 300, at_ms=2000 + k * 9000, duration_ms=8000 if k < 2 else 2000,
                  error="timeout" if k < 2 else None)
        t.llm("gpt-4o-mini", 400, 2, at_ms=30_000, duration_ms=200, name="moderation output")
        traces.append(t)
    assert audit(tmp_path, traces, "LLMA001") == []
    f = audit(tmp_path / "b", traces, "LLMA001", budget=3)
    assert len(f) == 1
    ev = f[0].evidence
    assert (ev["median_calls"], ev["max_calls"], ev["requests_over_cap"], ev["excess_calls"]) == (3.0, 4, 2, 2)
    assert ev["excess_call_kinds"] == ["moderation"]
    assert ev["embedding_calls_per_request"] == 12.0 and ev["retry_calls_per_request"] == 2.0
    assert f[0].waste.tokens == 804


# -- LLMA002 runaway-loop -------------------------------------------------------------------------------


def _loop_request(seed: str, at_ms: int, repeats: int, *, content: str | None = None, parallel: bool = False) -> Trace:
    t = request(seed, "agent-api", "/v1/agent/run", at_ms, duration_ms=60_000)
    t.llm("claude-sonnet-4-5", 900, 80, at_ms=10, duration_ms=1000, provider="anthropic", name="planner")
    kw = {"gen_ai__input__messages": prompt(content)} if content else {}
    for j in range(repeats):
        at = 1500 + (j * 10 if parallel else j * 2500)
        t.llm("claude-sonnet-4-5", 3000, 100, at_ms=at, duration_ms=2000, provider="anthropic", **kw)
    return t


def test_llma002_six_repeats_is_one_past_the_cap(tmp_path):
    """5 repeats of the same 3,000-token call is the cap; 6 is one call past it: 3,100 tokens,
    $ = (3000 x 3 + 100 x 15) / 1e6 = $0.0105."""
    assert audit(tmp_path, [_loop_request("l5", 0, 5)], "LLMA002") == []
    findings = audit(tmp_path / "b", [_loop_request("l6", 0, 6)], "LLMA002")
    assert len(findings) == 1
    f = findings[0]
    assert (f.scope.service, f.scope.feature, f.scope.model) == ("agent-api", "/v1/agent/run", "claude-sonnet-4-5")
    ev = f.evidence
    assert (ev["loops"], ev["max_repeats_seen"], ev["excess_calls"], ev["charged_calls"]) == (1, 6, 1, 1)
    assert ev["matched_on"] == ["input_size"] and ev["loop_kinds"] == "model"
    assert f.waste.tokens == 3100
    assert f.waste.usd == pytest.approx(0.01)  # $0.0105 rounded
    assert f.confidence == "medium"

    f = audit(tmp_path / "c", [_loop_request("l6", 0, 6)], "LLMA002", max_repeats=3)[0]
    assert f.evidence["excess_calls"] == 3 and f.waste.tokens == 3 * 3100


def test_llma002_captured_prompts_and_parallel_batches(tmp_path):
    """8 repeats of one captured prompt: 3 past the cap, matched by input hash (confidence high).
    The same 8 calls started side by side are a batch, not a loop; 8 calls of the same size but
    different captured prompts are different calls; 20 repeats make the severity high."""
    f = audit(tmp_path, [_loop_request("h8", 0, 8, content="check the refund status of order 7")], "LLMA002")
    assert len(f) == 1
    assert f[0].evidence["matched_on"] == ["input_hash"] and f[0].confidence == "high"
    assert f[0].waste.tokens == 3 * 3100

    assert audit(tmp_path / "b", [_loop_request("p8", 0, 8, parallel=True)], "LLMA002") == []

    t = request("d8", "agent-api", "/v1/agent/run", 0, duration_ms=60_000)
    for j in range(8):
        t.llm("claude-sonnet-4-5", 3000, 100, at_ms=j * 2500, duration_ms=2000, provider="anthropic",
              gen_ai__input__messages=prompt(f"ticket {j}"))
    assert audit(tmp_path / "c", [t], "LLMA002") == []

    f = audit(tmp_path / "d", [_loop_request("l20", 0, 20)], "LLMA002")
    assert f[0].severity == "high" and f[0].evidence["excess_calls"] == 15


# -- LLMA004 retry-storm --------------------------------------------------------------------------------


def _window(tag: str, n: int, retried: int, error: str = "timeout", start_ms: int = 0, model: str = "gpt-4o",
            every: int = 1) -> list[Trace]:
    """n requests 7 s apart (inside one 10-minute window); the first `retried` requests of every
    `every`-th one fail once and are retried."""
    out = []
    for i in range(n):
        t = request(f"r4-{tag}-{i}", "chat-api", "/v1/chat", start_ms + i * 7_000, duration_ms=6_000)
        if i % every == 0 and i // every < retried:
            t.llm(model, 1200, None, at_ms=10, duration_ms=2_000, error=error)
            t.llm(model, 1200, 150, at_ms=2_100, duration_ms=1_500)
        else:
            t.llm(model, 1200, 150, at_ms=10, duration_ms=1_500)
        out.append(t)
    return out


def test_llma004_ten_retries_in_fifty_calls_is_a_storm(tmp_path):
    """41 requests, every 4th of the first 40 times out once. The window opening at the first retry
    holds 40 first attempts and 10 retries: 50 calls, ratio 0.2, both thresholds met exactly. The
    storm runs from the first failed attempt to the last retry (requests 0..36): 47 calls. Waste: 10
    failed attempts x 1,200 input tokens = 12,000 tokens, $0.03."""
    findings = audit(tmp_path, _window("a", 41, 10, every=4), "LLMA004")
    assert len(findings) == 1
    f = findings[0]
    ev = f.evidence
    assert (ev["calls"], ev["retries"], ev["retry_ratio"], ev["duration_minutes"]) == (47, 10, round(10 / 47, 4), 4)
    assert (ev["peak_window_retries"], ev["peak_retry_ratio"]) == (10, 0.2)
    assert (ev["resent_failed_attempts"], ev["billed_failed_attempts"], ev["retries_after_timeout"]) == (10, 10, 10)
    assert ev["final_failures"] == 0
    assert ev["storm_start"] == "2025-11-09 00:00" and ev["load_amplification"] == round(47 / 37, 2)
    # From the first failed attempt (10 ms) to the end of the last retry (36 x 7 s + 2.1 s + 1.5 s).
    assert str(f.scope.window_start) == "2025-11-09 00:00:00.010000+00:00"
    assert str(f.scope.window_end) == "2025-11-09 00:04:15.600000+00:00"
    assert f.waste.tokens == 12_000
    assert f.waste.usd == pytest.approx(round(12_000 * 2.5 / 1e6, 2))
    assert f.severity == "medium"

    # 9 retries, 36 requests: under min_retries.
    assert audit(tmp_path / "b", _window("a", 36, 9, every=4), "LLMA004") == []
    # 10 retries and 42 requests: every window holds at least 51 calls, under min_retry_ratio.
    assert audit(tmp_path / "c", _window("a", 42, 10, every=4), "LLMA004") == []


def test_llma004_rate_limit_storm_costs_nothing_and_storms_have_their_own_fingerprint(tmp_path):
    """20 requests rejected with 429 then retried: a storm (ratio 0.5, severity high) whose rejected
    attempts cost no tokens. The same storm an hour later is a second finding."""
    traces = _window("a", 20, 20, error="429") + _window("b", 20, 20, error="429", start_ms=3_600_000)
    findings = audit(tmp_path, traces, "LLMA004")
    assert len(findings) == 2
    assert len({f.fingerprint for f in findings}) == 2
    for f in findings:
        assert f.evidence["rejected_attempts"] == 20 and f.evidence["billed_failed_attempts"] == 0
        assert f.waste.tokens == 0 and f.waste.usd == 0.0
        assert f.severity == "high"
    assert sorted(f.evidence["storm_start"] for f in findings) == ["2025-11-09 00:00", "2025-11-09 01:00"]


def test_llma004_storms_in_one_hour_and_a_lull_inside_one(tmp_path):
    """Bursts of 20 retried requests (2 min 13 s each). 20 minutes apart, in one hour: two findings with
    their own fingerprints. 8 minutes apart: one storm (a window spanning both is stormy). 14 minutes
    apart (11.8 minutes between retries): two storms, one with max_gap_minutes above that lull."""
    apart = _window("a", 20, 20) + _window("b", 20, 20, start_ms=20 * 60_000)
    findings = audit(tmp_path, apart, "LLMA004")
    assert sorted(f.evidence["storm_start"] for f in findings) == ["2025-11-09 00:00", "2025-11-09 00:20"]
    assert len({f.fingerprint for f in findings}) == 2

    near = _window("a", 20, 20) + _window("b", 20, 20, start_ms=8 * 60_000)
    (f,) = audit(tmp_path / "b", near, "LLMA004")
    assert (f.evidence["retries"], f.evidence["calls"], f.evidence["storm_start"]) == (40, 80, "2025-11-09 00:00")
    # From the first failed attempt (10 ms) to the second burst's last retry (8 min + 19 x 7 s + 2.1 s).
    assert f.evidence["duration_minutes"] == round((8 * 60 + 19 * 7 + 2.1 - 0.01) / 60)

    lull = _window("a", 20, 20) + _window("b", 20, 20, start_ms=14 * 60_000)
    assert len(audit(tmp_path / "c", lull, "LLMA004")) == 2
    (f,) = audit(tmp_path / "d", lull, "LLMA004", max_gap_minutes=12)
    assert (f.evidence["retries"], f.evidence["calls"]) == (40, 80)


def test_llma004_storm_edges_in_busy_traffic(tmp_path):
    """30 requests a minute for an hour, 1 in 20 retried all along (5%, never a storm); from minute 25
    to 35, 3 in 5 are retried. One storm, and its edges are within a minute of the truth even though a
    10-minute window opening well before the storm is already stormy."""
    traces = []
    for i in range(1800):
        at = i * 2_000
        t = request(f"r4-busy-{i}", "chat-api", "/v1/chat", at, duration_ms=1_900)
        if (25 * 60_000 <= at < 35 * 60_000 and i % 5 < 3) or i % 20 == 7:
            t.llm("gpt-4o", 1200, None, at_ms=10, duration_ms=500, error="timeout")
            t.llm("gpt-4o", 1200, 150, at_ms=600, duration_ms=800)
        else:
            t.llm("gpt-4o", 1200, 150, at_ms=10, duration_ms=800)
        traces.append(t)
    (f,) = audit(tmp_path, traces, "LLMA004")
    start = (f.scope.window_start - f.scope.window_start.replace(hour=0, minute=0, second=0, microsecond=0))
    end = (f.scope.window_end - f.scope.window_end.replace(hour=0, minute=0, second=0, microsecond=0))
    assert 24 * 60 <= start.total_seconds() <= 25 * 60 + 2
    assert 35 * 60 - 2 <= end.total_seconds() <= 36 * 60
    storm_retries = sum(1 for i in range(750, 1050) if i % 5 < 3 or i % 20 == 7)
    assert storm_retries <= f.evidence["retries"] <= storm_retries + 3  # at most a minute of baseline each side
    assert f.severity == "medium"


# -- LLMA007 duplicate-requests -------------------------------------------------------------------------


def _faq(tag: str, gap_ms: int, questions: int = 10) -> list[Trace]:
    out = []
    for q in range(questions):
        for k in range(2):
            t = request(f"d7-{tag}-{q}-{k}", "faq-api", "/v1/faq", q * 1_000 + k * gap_ms)
            t.llm("gpt-4o", 1000 + q, 200, gen_ai__input__messages=prompt(f"question {q}"))
            out.append(t)
    return out


def test_llma007_repeat_at_the_window_edge(tmp_path):
    """10 questions each asked twice exactly 60 minutes apart: 10 repeats of 20 calls (within the
    1-hour window). Tokens = sum(1000 + q + 200) = 12,045; $ = sum((1000 + q) x 2.5 + 200 x 10) / 1e6."""
    findings = audit(tmp_path, _faq("a", 3_600_000), "LLMA007")
    assert len(findings) == 1
    f = findings[0]
    assert (f.evidence["repeats"], f.evidence["calls"], f.evidence["median_seconds_since_previous"]) == (10, 20, 3600.0)
    assert f.waste.tokens == 12_045
    assert f.waste.usd == pytest.approx(round(sum((1000 + q) * 2.5 + 2000 for q in range(10)) / 1e6, 2))
    # One second later than the window: no repeat.
    assert audit(tmp_path / "b", _faq("b", 3_601_000), "LLMA007") == []
    # 9 repeats: under min_repeats.
    assert audit(tmp_path / "c", _faq("c", 60_000, questions=9), "LLMA007") == []


def test_llma007_size_matches_that_chance_explains_are_dropped(tmp_path):
    """Without captured content: 200 extraction calls 10 s apart with inputs 500..599 (each size twice,
    1,000 s apart). Every second call shares its size with one 17 minutes earlier, but at this
    density chance explains that: about 200 matches expected (calls in the hour before x 1% of calls
    per token of size near each one) against 100 found. No finding; with max_chance_share raised they
    come back. A fixed-size template (4 sizes over 120 calls) is never matched by size."""
    traces = []
    for i in range(200):
        t = request(f"d7x-{i}", "forms-api", "/v1/forms/extract", i * 10_000)
        t.llm("gpt-4o-mini", 500 + i % 100, 24 + i % 7)
        traces.append(t)
    assert audit(tmp_path, traces, "LLMA007") == []
    f = audit(tmp_path / "b", traces, "LLMA007", max_chance_share=1000.0)
    assert len(f) == 1 and f[0].confidence == "low"
    assert f[0].evidence["repeats"] == 100 and f[0].evidence["matched_on"] == ["input_tokens"]
    assert f[0].evidence["chance_matches"] > 25

    fixed = []
    for i in range(120):
        t = request(f"d7f-{i}", "forms-api", "/v1/forms/fixed", i * 60_000)
        t.llm("gpt-4o-mini", 765 + 100 * (i % 4), 40 + i % 13)  # e.g. one image + a template
        fixed.append(t)
    assert audit(tmp_path / "c", fixed, "LLMA007") == []
    assert len(audit(tmp_path / "d", fixed, "LLMA007", min_size_diversity=0.0)) == 1


# -- LLMA008 uncached-shared-prefix ---------------------------------------------------------------------


def _prefixed(tag: str, n: int, cached: int, step_ms: int = 60_000) -> list[Trace]:
    """n gpt-4o calls of 2000 + 10 (i mod 5) input tokens; warm calls (all but the first) read `cached`."""
    out = []
    for i in range(n):
        t = request(f"p8-{tag}-{i}", "support-api", "/v1/support", i * step_ms)
        kw = {"gen_ai__usage__cache_read__input_tokens": cached} if cached and i else {}
        t.llm("gpt-4o", 2000 + 10 * (i % 5), 150, **kw)
        out.append(t)
    return out


def test_llma008_partial_cache_reads(tmp_path):
    """30 calls a minute apart, prefix 2,000: reading 896 cached tokens leaves 1,104 of 2,000 (55.2%)
    uncached on each of the 29 warm calls: 32,016 tokens x (2.50 - 1.25) / 1e6 = $0.04002. Reading
    1,024 leaves 48.8%: under min_uncached_share."""
    findings = audit(tmp_path, _prefixed("a", 30, 896), "LLMA008")
    assert len(findings) == 1
    f = findings[0]
    ev = f.evidence
    assert (ev["shared_prefix_tokens"], ev["warm_calls"], ev["pct_uncached"], ev["cached_prefix_tokens"]) == (2000, 29, 55.2, 29 * 896)
    assert ev["provider_reports_cache"] is True and f.confidence == "medium"
    assert f.waste.tokens == 32_016
    assert f.waste.usd == pytest.approx(round(32_016 * 1.25 / 1e6, 2))

    assert audit(tmp_path / "b", _prefixed("b", 30, 1024), "LLMA008") == []


def test_llma008_warm_call_edges(tmp_path):
    """21 calls make 20 warm calls (min_calls): a finding at low confidence and severity (no call ever
    reports cache reads); 20 calls make 19. Calls 6 minutes apart are never warm (5-minute TTL)."""
    f = audit(tmp_path, _prefixed("a", 21, 0), "LLMA008")
    assert len(f) == 1
    assert f[0].evidence["warm_calls"] == 20 and f[0].waste.tokens == 20 * 2000
    assert (f[0].confidence, f[0].severity) == ("low", "low")
    assert audit(tmp_path / "b", _prefixed("b", 20, 0), "LLMA008") == []
    assert audit(tmp_path / "c", _prefixed("c", 40, 0, step_ms=360_000), "LLMA008") == []
    assert len(audit(tmp_path / "d", _prefixed("d", 40, 0, step_ms=360_000), "LLMA008", cache_ttl_minutes=6)) == 1


CHUNK = " ".join(["cache"] * 120)  # 120 tokens in cl100k


def test_llma008_retrieved_context_is_not_part_of_the_prefix(tmp_path):
    """30 RAG requests a minute apart: 8 retrieved chunks of 120 tokens (content captured) go into a
    gpt-4o call of 1200 + 960 + (20 + i mod 30) tokens. The fixed part is 1,220..1,249 tokens (the
    chunks are not shared), so the prefix is 1,220, not 2,180: 29 warm calls x 1,220 = 35,380 tokens,
    $ = 35,380 x (2.50 - 1.25) / 1e6. No call anywhere reports cache reads: confidence and severity
    low. Without the chunks' sizes (no content) the calls cannot be judged."""
    def rag(tag, content):
        out = []
        for i in range(30):
            t = request(f"p8r-{tag}-{i}", "kb-api", "/v1/kb", i * 60_000)
            t.retrieval(8, [0.9 - 0.01 * j for j in range(8)], contents=[CHUNK] * 8 if content else None)
            t.llm("gpt-4o", 1200 + 960 + 20 + i % 30, 200, at_ms=100)
            out.append(t)
        return out

    f = audit(tmp_path, rag("a", True), "LLMA008")
    assert len(f) == 1
    ev = f[0].evidence
    assert (ev["shared_prefix_tokens"], ev["median_input_tokens"], ev["warm_calls"]) == (1220, 2194.5, 29)
    assert ev["below_cache_minimum"] is False and ev["provider_reports_cache"] is False
    assert f[0].waste.tokens == 35_380
    assert f[0].waste.usd == pytest.approx(round(35_380 * 1.25 / 1e6, 2))
    assert (f[0].confidence, f[0].severity) == ("low", "low")
    assert audit(tmp_path / "b", rag("b", False), "LLMA008") == []


def test_llma008_prefix_under_the_cache_minimum(tmp_path):
    """30 gpt-4o calls a minute apart with a 900-token fixed part (inputs 900..919), never cached: the
    provider caches nothing under 1,024 tokens. Flagged (severity low) only when the store shows the
    provider's cache reads elsewhere (here a gpt-4o-mini feature reading 1,920 of 2,048 tokens).
    29 warm calls x 900 tokens x (2.50 - 1.25) / 1e6."""
    short = []
    for i in range(30):
        t = request(f"p8s-{i}", "notes-api", "/v1/notes", i * 60_000)
        t.llm("gpt-4o", 900 + i % 20, 150)
        short.append(t)
    cached = []
    for i in range(30):
        t = request(f"p8c-{i}", "mail-api", "/v1/mail", i * 60_000 + 30_000)
        kw = {"gen_ai__usage__cache_read__input_tokens": 1920} if i else {}
        t.llm("gpt-4o-mini", 2048 + i % 10, 100, **kw)
        cached.append(t)
    assert audit(tmp_path, short, "LLMA008") == []
    f = audit(tmp_path / "b", short + cached, "LLMA008")
    assert len(f) == 1
    assert (f[0].scope.feature, f[0].scope.model) == ("/v1/notes", "gpt-4o")
    assert f[0].evidence["below_cache_minimum"] is True and f[0].evidence["shared_prefix_tokens"] == 900
    assert f[0].waste.tokens == 29 * 900
    assert f[0].waste.usd == pytest.approx(round(29 * 900 * 1.25 / 1e6, 2))
    assert (f[0].severity, f[0].confidence) == ("low", "medium")


# -- LLMA012 resent-without-idempotency ----------------------------------------------------------------


def _resends(tag: str, n: int, delay_ms: int) -> list[Trace]:
    """n requests whose gpt-4o call (prompt captured, no usage) times out after a router call
    (gpt-4o-mini 300/5); each is sent again `delay_ms` later and succeeds (input 4000 + 100 i)."""
    out = []
    for i in range(n):
        text = f"draft the contract summary {i}"
        a = request(f"i12-{tag}-{i}", "docs-api", "/v1/draft", i * 600_000, duration_ms=30_000)
        a.llm("gpt-4o-mini", 300, 5, at_ms=10, duration_ms=300, name="router")
        a.llm("gpt-4o", None, None, at_ms=400, duration_ms=29_000, error="timeout",
              gen_ai__input__messages=prompt(text))
        b = request(f"i12-{tag}-{i}-again", "docs-api", "/v1/draft", i * 600_000 + delay_ms, duration_ms=9_000)
        b.llm("gpt-4o-mini", 300, 5, at_ms=0, duration_ms=300, name="router")
        b.llm("gpt-4o", 4000 + 100 * i, 700, at_ms=400, duration_ms=8_000, gen_ai__input__messages=prompt(text))
        out += [a, b]
    return out


def test_llma012_resend_window_edge(tmp_path):
    """5 failed requests each sent again 300 s after the failed call started (the window): the lost
    work is 5 router calls (305 tokens each) and 5 timed-out calls billed at their re-send's input
    (sum(4000 + 100 i) = 21,000): 22,525 tokens, $ = 21,000 x 2.5 / 1e6 + 5 x (300 x 0.15 + 5 x 0.6) / 1e6."""
    findings = audit(tmp_path, _resends("a", 5, 300_000), "LLMA012")
    assert len(findings) == 1
    f = findings[0]
    assert (f.scope.feature, f.scope.model) == ("/v1/draft", "gpt-4o")
    ev = f.evidence
    assert (ev["resent_requests"], ev["failed_requests"], ev["lost_calls"], ev["median_seconds_to_resend"]) == (5, 5, 10, 300.0)
    assert f.waste.tokens == 22_525
    assert f.waste.usd == pytest.approx(round(21_000 * 2.5 / 1e6 + 5 * 48 / 1e6, 2))
    assert f.confidence == "high"
    # Sent again one second too late, or only 4 times: nothing.
    assert audit(tmp_path / "b", _resends("b", 5, 301_000), "LLMA012") == []
    assert audit(tmp_path / "c", _resends("c", 4, 60_000), "LLMA012") == []
    # Failed attempts not billed: the routers are still lost work.
    f = audit(tmp_path / "d", _resends("d", 5, 60_000), "LLMA012", failed_attempts_billed=False)[0]
    assert f.waste.tokens == 22_525 and f.waste.usd == pytest.approx(round(5 * 48 / 1e6, 2))
