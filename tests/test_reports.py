"""Reports: JSON schema, Markdown for CI, the HTML file, baselines, redaction, determinism.

Documents come from the real pipeline (ingest -> derive -> rules -> build_document) on fixture files,
so the reports are tested on what users get, not on hand-written dicts. Prices are set in the store
(like tests/test_rules_padding_routing_bloat.py does) so dollar figures exist whatever the bundled
catalog says this week.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import REPO
from llmaudit.config import Settings
from llmaudit.findings.model import Finding, MeasuredSaving
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.normalize.derive import derive
from llmaudit.report.baseline import BaselineError, compare, compare_with_file, load_baseline
from llmaudit.report.document import AuditDocument, build_document
from llmaudit.report.html import render_html
from llmaudit.report.markdown import MAX_CHARS, md, render_markdown
from llmaudit.report.outputs import ReportError, render_json, write_outputs
from llmaudit.report.redact import pseudonym, redact, scrub_content
from llmaudit.report.schema import render_schema, schema_path
from llmaudit.rules.engine import all_rules, run_rules
from llmaudit.store import Store

sys.path.insert(0, str(REPO / "rules" / "fixtures"))
from build import Trace, write_otlp_jsonl  # noqa: E402

XSS_SCRIPT = "<script>window.__pwned=1</script>"
XSS_ATTR = '"><img src=x onerror="window.__pwned=2">'
HOSTILE_FEATURE = f"/v1/x|y `tick` {XSS_SCRIPT}"
HOSTILE_TENANT = XSS_ATTR
CHUNK = " ".join(["cache"] * 120)  # 120 cl100k tokens, as in rules/fixtures/LLMA003.py
# USD per 1M tokens: input, cached input, output.
PRICES = {"gpt-4o": (2.50, 1.25, 10.00), "gpt-4o-mini": (0.15, 0.075, 0.60)}


# -- building real documents ----------------------------------------------------------------------------


def rag_traces(tag: str, route: str, n: int, top_k: int, good: int, *, tenant: str = "acme", service: str = "support-api",
               span_name: str | None = None, start_ms: int = 0) -> list[Trace]:
    """n RAG requests: top_k chunks of 120 tokens, `good` of them near the best score, one gpt-4o call."""
    traces = []
    for i in range(n):
        t = Trace(f"{tag}-{route}-{i}", service, at_ms=start_ms + i * 3_600_000, name=span_name or f"POST {route}",
                  attrs={"http.route": route, "tenant.id": tenant})
        scores = [round(0.86 - 0.01 * j, 3) for j in range(good)] + [round(0.40 - 0.01 * j, 3) for j in range(top_k - good)]
        t.retrieval(top_k, scores, contents=[CHUNK] * top_k if i % 5 == 0 else None)
        t.llm("gpt-4o", 900 + top_k * 120 + 60, 180, at_ms=60)
        traces.append(t)
    return traces


def hostile_file(tmp_path: Path) -> Path:
    """Telemetry whose feature, tenant and span name try to break Markdown tables and inject HTML."""
    path = tmp_path / "hostile.jsonl"
    traces = rag_traces("hostile", HOSTILE_FEATURE, 30, 20, 3, tenant=HOSTILE_TENANT, span_name=XSS_SCRIPT)
    traces += rag_traces("plain", "/v1/plain", 12, 4, 4, tenant="globex", start_ms=1_800_000)
    write_otlp_jsonl(path, traces)
    return path


def build_doc(tmp_path: Path, *paths, name: str = "store", priced: bool = True) -> AuditDocument:
    """The analyze pipeline in process (ingest, derive, every rule, build_document), with fixed list prices."""
    with Store(tmp_path / f"{name}.duckdb") as store:
        report = Ingestor(store, workers=1).run(expand_paths([str(p) for p in paths]))
        assert report.files and all(f.status != "unrecognized" for f in report.files)
        derive(store, Settings())
        if priced:
            store.execute("UPDATE llm_calls SET input_price_per_mtok = NULL, cached_input_price_per_mtok = NULL, "
                          "output_price_per_mtok = NULL, cost_usd = NULL")
            for model, (inp, cached, out) in PRICES.items():
                store.execute("UPDATE llm_calls SET input_price_per_mtok = ?, cached_input_price_per_mtok = ?, "
                              "output_price_per_mtok = ? WHERE model = ?", [inp, cached, out, model])
            store.execute(
                """UPDATE llm_calls SET cost_usd = ((input_tokens - cached_input_tokens) * input_price_per_mtok
                          + cached_input_tokens * cached_input_price_per_mtok + output_tokens * output_price_per_mtok) / 1e6
                   WHERE input_price_per_mtok IS NOT NULL"""
            )
        result = run_rules(store, all_rules([]), {})
        return build_document(store, result)


def by_rule(doc: AuditDocument, rule_id: str) -> list[Finding]:
    return [f for f in doc.findings if f.rule_id == rule_id]


@pytest.fixture(scope="module")
def hostile_doc(tmp_path_factory) -> AuditDocument:
    tmp = tmp_path_factory.mktemp("hostile")
    return build_doc(tmp, hostile_file(tmp))


# -- JSON schema ----------------------------------------------------------------------------------------


def test_committed_schema_matches_the_models():
    committed = schema_path().read_text(encoding="utf-8")
    assert committed == render_schema(), "report_templates/report.schema.json is stale: run python -m llmaudit.report.schema --write"
    res = subprocess.run([sys.executable, "-m", "llmaudit.report.schema", "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_cli_json_output_validates_against_the_schema(tmp_path):
    out = tmp_path / "r.json"
    fixtures = [REPO / "rules" / "fixtures" / "LLMA003" / "positive.jsonl", hostile_file(tmp_path)]
    res = subprocess.run([sys.executable, "-m", "llmaudit", "analyze", *map(str, fixtures), "-q", "--format", "json", "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(data)) == []
    assert data["totals"]["llm_calls"] == 40 + 42
    assert {f["rule_id"] for f in data["findings"]} >= {"LLMA003"}
    # The schema is strict where the model is: a misspelt severity or a missing section is an error.
    bad = json.loads(json.dumps(data))
    bad["findings"][0]["severity"] = "urgent"
    del bad["totals"]
    messages = sorted(e.message for e in validator.iter_errors(bad))
    assert any("urgent" in m for m in messages) and any("'totals' is a required property" in m for m in messages)


def test_written_json_with_baseline_and_redaction_validates(tmp_path, hostile_doc):
    base = tmp_path / "base.json"
    write_outputs(hostile_doc, json_path=base, redact=True, redact_salt="s1")
    out = tmp_path / "now.json"
    cmp = write_outputs(hostile_doc, json_path=out, baseline_path=base, redact=True, redact_salt="s1")
    data = json.loads(out.read_text())
    assert data["extras"]["baseline"]["counts"] == {"new": 0, "resolved": 0, "unchanged": len(hostile_doc.findings)}
    assert cmp.counts.unchanged == len(hostile_doc.findings) and cmp.baseline.same_inputs
    validator = jsonschema.Draft202012Validator(json.loads(schema_path().read_text()))
    assert list(validator.iter_errors(data)) == []
    data["extras"]["baseline"]["counts"]["new"] = "many"  # the known extras sections are typed, not free-form
    assert any("'many' is not of type 'integer'" in e.message for e in validator.iter_errors(data))


# -- Markdown ---------------------------------------------------------------------------------------------


def synthetic_findings(template: Finding, n: int) -> list[Finding]:
    out = []
    for i in range(n):
        out.append(template.model_copy(update={
            "fingerprint": f"LLMA003-{i:012x}",
            "message": f"finding {i}: " + "very long explanation " * 100,
            "scope": template.scope.model_copy(update={"feature": f"/v1/feature-{i}/" + "x" * 3000}),
            "evidence": {f"key_{k}": "value " * 60 for k in range(30)},
            "waste": template.waste.model_copy(update={"usd": float(n - i), "usd_per_month": float(n - i) * 4}),
        }))
    return out


def test_markdown_stays_under_the_cap_with_500_findings(hostile_doc):
    template = by_rule(hostile_doc, "LLMA003")[0]
    doc = hostile_doc.model_copy(update={"findings": synthetic_findings(template, 500)})
    text = render_markdown(doc)
    assert len(text) <= MAX_CHARS
    details = len(re.findall(r"^<details><summary>\d+\. ", text, flags=re.M))
    assert 0 < details < 500
    assert f"_Details of {500 - details:,} of 500 findings left out to stay under GitHub's 65,000-character limit" in text
    assert "_475 more findings not shown here; see the JSON or HTML report._" in text  # top table: 25 rows
    # With a baseline where all 500 are new (and 500 resolved), the headline and deltas still fit.
    base = hostile_doc.model_copy(update={"findings": [f.model_copy(update={"fingerprint": f.fingerprint + "old"})
                                                      for f in synthetic_findings(template, 500)]})
    cmp = compare(doc, base, "last.json")
    assert (cmp.counts.new, cmp.counts.resolved, cmp.counts.unchanged) == (500, 500, 0)
    with_base = doc.model_copy(update={"extras": {**doc.extras, "baseline": cmp.model_dump(mode="json")}})
    text = render_markdown(with_base)
    assert len(text) <= MAX_CHARS
    assert "### Since the baseline: 500 new, 500 resolved, 0 unchanged" in text
    assert "_475 more new findings not shown here" in text


@pytest.mark.parametrize("limit", [1_500, 4_000, 12_000, MAX_CHARS])
def test_markdown_never_exceeds_its_limit_whatever_the_input(hostile_doc, limit):
    # Text that grows several times when escaped (quotes and ampersands), many baseline changes, many
    # skipped rules and a long baseline path: every section competes for the budget.
    template = by_rule(hostile_doc, "LLMA003")[0]
    noisy = [f.model_copy(update={"message": '"&<>' * 300, "rule_name": '"' * 200}) for f in synthetic_findings(template, 40)]
    old = [f.model_copy(update={"fingerprint": f.fingerprint + "old"}) for f in noisy[:26]]
    changed = [f.model_copy(update={"waste": f.waste.model_copy(update={"usd_per_month": 1.0})}) for f in noisy[26:]]
    doc = hostile_doc.model_copy(update={"findings": noisy,
                                         "skipped_rules": {f"X{i:03d}": '"&' * 150 for i in range(40)}})
    base = hostile_doc.model_copy(update={"findings": old + changed})
    cmp = compare(doc, base, "/very/" + "long/" * 200 + "last.json")
    assert cmp.counts.new == 26 and cmp.counts.resolved == 26
    text = render_markdown(doc.model_copy(update={"extras": {**doc.extras, "baseline": cmp.model_dump(mode="json")}}),
                           limit=limit)
    assert len(text) <= limit
    assert "left out" in text or "not shown here" in text


def test_waste_total_counts_one_mechanism_on_one_feature_once(hostile_doc):
    from llmaudit.report.document import waste_totals

    t = by_rule(hostile_doc, "LLMA003")[0]

    def finding(rule, category, feature, usd, model=None):
        return t.model_copy(update={"rule_id": rule, "category": category, "fingerprint": f"{rule}-{feature}-{usd}",
                                    "scope": t.scope.model_copy(update={"service": "agent", "feature": feature, "model": model}),
                                    "waste": t.waste.model_copy(update={"usd": usd, "usd_per_month": usd * 4})})

    findings = [finding("LLMA001", "fan_out", "/ask", 18.0), finding("LLMA002", "fan_out", "/ask", 17.0),  # same calls
                finding("LLMA002", "fan_out", "/other", 2.0), finding("LLMA003", "oversized_top_k", "/ask", 5.0),
                finding("LLMA015", "cost_reconciliation", None, 70.0)]
    w = waste_totals(findings)
    assert (w.usd, w.usd_per_month, w.unexplained_usd) == (25.0, 100.0, 70.0)
    # Top savings list exactly what the total counts: not the smaller finding on the same calls, not the gap.
    assert w.counted == sorted(["LLMA001-/ask-18.0", "LLMA002-/other-2.0", "LLMA003-/ask-5.0"]) and w.capped == []

    # Waste is never above the spend it is part of: GPU waste (idle capacity, self-hosted models) against the
    # GPU spend, the rest against the API spend.
    gpu = [finding("LLMA013", "idle_capacity", None, 900.0), finding("LLMA005", "padding_waste", "nightly", 40.0, "llama")]
    w = waste_totals(findings + gpu, gpu_models={"llama"}, api_spend=100.0, gpu_spend=800.0)
    assert w.usd == 25.0 + 800.0 and w.capped == ["GPU"]
    assert w.usd_per_month == 100.0 + 940.0 * 4 * 800.0 / 940.0
    w = waste_totals(findings, api_spend=20.0, gpu_spend=0.0)
    assert w.usd == 20.0 and w.usd_per_month == 100.0 * 20.0 / 25.0 and w.capped == ["API"]


def cells(row: str) -> list[str]:
    """Split a Markdown table row on unescaped pipes (GFM's rule)."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_markdown_escapes_telemetry(hostile_doc):
    # LLMA003 scopes by feature; give one finding the hostile tenant too, as a tenant-scoped rule would.
    f = by_rule(hostile_doc, "LLMA003")[0]
    f = f.model_copy(update={"scope": f.scope.model_copy(update={"tenant": HOSTILE_TENANT})})
    doc = hostile_doc.model_copy(update={"findings": [f, *hostile_doc.findings[1:]]})
    text = render_markdown(doc)
    assert XSS_SCRIPT not in text and "<img" not in text
    assert "&lt;script&gt;window.\\_\\_pwned=1&lt;/script&gt;" in text
    assert "tenant &quot;&gt;&lt;img src=x onerror=&quot;window.\\_\\_pwned=2&quot;&gt;" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    hostile_rows = [r for r in rows if "/v1/x\\|y" in r]
    assert hostile_rows, "the hostile feature should appear in a table"
    header = next(r for r in rows if r.startswith("| severity | rule | scope |"))
    for row in hostile_rows:
        if row.startswith("| severity"):
            continue
        assert "\\`tick\\`" in row
        # a row of the findings table has exactly as many cells as its header
        if "LLMA003" in row:
            assert len(cells(row)) == len(cells(header))
    # HTML outside tables (the <details> summaries) is escaped too.
    summaries = re.findall(r"<summary>(.*?)</summary>", text)
    assert any("&lt;script&gt;" in s for s in summaries) and not any("<script" in s for s in summaries)


def test_md_escapes_markdown_and_mentions():
    assert md("a|b") == "a\\|b"
    assert md("*bold* _it_ [x](y) ~s~ $m$") == "\\*bold\\* \\_it\\_ \\[x\\](y) \\~s\\~ \\$m\\$"
    assert md("@octocat") == "@\u200boctocat"  # no notification to a real user from a telemetry string
    assert md("https://evil.example") == "https:\u200b//evil.example"
    assert md("# heading", line_start=True) == "\\# heading" and md("1. item", line_start=True) == "1\\. item"
    assert md("line\nbreak\r\tx") == "line break x"
    assert md("x" * 200) == "x" * 79 + "…"


def test_markdown_headline_and_top_findings(hostile_doc):
    text = render_markdown(hostile_doc)
    t = hostile_doc.totals
    assert text.startswith(f"## llmaudit: ${t.spend_usd:,.2f} spend, ${t.estimated_waste_usd_per_month:,.2f}/month estimated waste, ")
    assert f"| LLM calls | {t.llm_calls:,} |" in text
    assert f"### Top findings ({len(hostile_doc.findings)})" in text
    assert "not replayed" in text


# -- baseline ---------------------------------------------------------------------------------------------


def test_baseline_new_resolved_unchanged_with_a_changed_input(tmp_path):
    w1, w2 = tmp_path / "week1.jsonl", tmp_path / "week2.jsonl"
    write_otlp_jsonl(w1, rag_traces("w1", "/v1/a", 20, 20, 3) + rag_traces("w1", "/v1/b", 20, 20, 3))
    # Week 2: /v1/a still oversized with 10 more requests, /v1/b fixed (k=4, all useful), /v1/c new.
    write_otlp_jsonl(w2, rag_traces("w2", "/v1/a", 30, 20, 3) + rag_traces("w2", "/v1/b", 20, 4, 4)
                     + rag_traces("w2", "/v1/c", 20, 20, 3))
    d1, d2 = build_doc(tmp_path, w1, name="s1"), build_doc(tmp_path, w2, name="s2")
    base_path = tmp_path / "last.json"
    base_path.write_text(render_json(d1))

    cmp = compare_with_file(d2, base_path)

    def feature_of(changes, rule="LLMA003"):
        return sorted(c.scope.feature for c in changes if c.rule_id == rule)

    assert feature_of(cmp.new) == ["/v1/c"]
    assert feature_of(cmp.resolved) == ["/v1/b"]
    assert feature_of(cmp.unchanged) == ["/v1/a"]
    # every finding is classified exactly once, on both sides
    assert {c.fingerprint for c in cmp.new} | {c.fingerprint for c in cmp.unchanged} == {f.fingerprint for f in d2.findings}
    assert {c.fingerprint for c in cmp.resolved} | {c.fingerprint for c in cmp.unchanged} == {f.fingerprint for f in d1.findings}
    assert cmp.counts.new == len(cmp.new) and cmp.counts.resolved == len(cmp.resolved)

    a = next(c for c in cmp.unchanged if c.rule_id == "LLMA003")
    # fixture truth: 17 extra chunks x 120 tokens per request; 20 requests before, 30 now
    assert (a.waste_tokens.baseline, a.waste_tokens.current, a.waste_tokens.change) == (40_800, 61_200, 20_400)
    f1 = next(f for f in by_rule(d1, "LLMA003") if f.scope.feature == "/v1/a")
    f2 = next(f for f in by_rule(d2, "LLMA003") if f.scope.feature == "/v1/a")
    assert f1.waste.usd == pytest.approx(40_800 * 2.50 / 1e6, abs=0.01)
    assert a.waste_usd.baseline == f1.waste.usd and a.waste_usd.current == f2.waste.usd
    assert a.waste_usd.change == pytest.approx(f2.waste.usd - f1.waste.usd, abs=1e-9)
    assert a.waste_usd_per_month.change == pytest.approx(f2.waste.usd_per_month - f1.waste.usd_per_month, abs=1e-9)

    by_key = {r.key: r for r in cmp.by_feature}
    assert by_key["/v1/c"].presence == "new" and by_key["/v1/a"].presence == "both"
    assert (by_key["/v1/a"].requests.baseline, by_key["/v1/a"].requests.current, by_key["/v1/a"].requests.change) == (20, 30, 10)
    spend = {r.key: r.spend_usd for r in d2.breakdowns["feature"]}
    assert by_key["/v1/c"].spend_usd.current == pytest.approx(spend["/v1/c"]) and by_key["/v1/c"].spend_usd.baseline == 0.0
    assert cmp.totals["requests"].change == 70 - 40
    assert cmp.totals["spend_usd"].change == pytest.approx(d2.totals.spend_usd - d1.totals.spend_usd, abs=1e-6)
    assert not cmp.baseline.same_inputs

    # Every output carries the comparison.
    md_path, html_path = tmp_path / "r.md", tmp_path / "r.html"
    got = write_outputs(d2, markdown_path=md_path, html_path=html_path, baseline_path=base_path)
    assert got == cmp
    text = md_path.read_text()
    assert f"### Since the baseline: {cmp.counts.new} new, {cmp.counts.resolved} resolved, {cmp.counts.unchanged} unchanged" in text
    assert "#### New findings" in text and "#### Resolved findings" in text
    html = html_path.read_text()
    assert f"<strong>Since the last run:</strong> {cmp.counts.new} new, {cmp.counts.resolved} resolved" in html
    assert 'id="chart-baseline"' in html
    # Same input as the baseline: nothing new (what --fail-on-new checks).
    assert write_outputs(d1, baseline_path=base_path).new == []


@pytest.mark.parametrize("content, expected", [
    ("{not json", "the baseline is not valid JSON"),
    ("[1, 2]", "not an llmaudit JSON report"),
    ('{"schema_version": "2.0", "findings": []}', "baseline has report schema version 2.0, this llmaudit writes 1.1"),
    ('{"schema_version": "1.0", "findings": [{"rule_id": "X"}]}', "not a valid llmaudit report: "),
])
def test_bad_baseline_files_name_the_file(tmp_path, hostile_doc, content, expected):
    path = tmp_path / "last week.json"
    path.write_text(content)
    with pytest.raises(BaselineError) as exc:
        load_baseline(path)
    assert str(exc.value).startswith(f"{path}: ") and expected in str(exc.value)
    with pytest.raises(ReportError) as exc:
        write_outputs(hostile_doc, json_path=tmp_path / "out.json", baseline_path=path)
    assert str(path) in str(exc.value)
    assert not (tmp_path / "out.json").exists()  # nothing written when the baseline is unusable
    with pytest.raises(ReportError, match="no such file|cannot read"):
        write_outputs(hostile_doc, baseline_path=tmp_path / "missing.json")


def test_valid_but_wrong_model_baseline_errors_list_locations(tmp_path, hostile_doc):
    raw = json.loads(render_json(hostile_doc))
    raw["findings"][0]["severity"] = "urgent"
    path = tmp_path / "b.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(BaselineError, match=r"findings\.0\.severity"):
        load_baseline(path)


# -- HTML -------------------------------------------------------------------------------------------------


def test_html_escapes_telemetry_and_references_nothing_external(hostile_doc):
    html = render_html(hostile_doc)
    assert XSS_SCRIPT not in html and "<img" not in html and "onerror=\"window" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt;" in html
    assert "<script" not in html.lower()
    refs = re.findall(r"""\b(?:src|href|action|srcset|poster)\s*=\s*["']([^"']*)["']""", html)
    assert refs and all(r.startswith("#") or r.startswith("data:") for r in refs), refs
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(?!#)", html)
    assert "default-src 'none'" in html  # CSP: even a missed escape could neither run nor fetch
    assert "http:" not in html and "https:" not in html  # not even an SVG namespace URI


def test_html_sections_charts_and_not_replayed(hostile_doc):
    html = render_html(hostile_doc)
    for anchor in ("summary", "money", "findings", "savings", "method"):
        assert f'<section id="{anchor}"' in html
    for chart in ("chart-feature", "chart-model", "chart-tenant", "chart-day", "chart-waste", "chart-f1"):
        assert f'<svg role="img" aria-labelledby="{chart}-cap"' in html
    assert html.count("not replayed") >= len(hostile_doc.findings)
    assert 'id="chart-measured"' not in html
    t = hostile_doc.totals
    assert f"${t.spend_usd:,.2f}" in html and f"${t.estimated_waste_usd_per_month:,.2f}" in html
    assert "@media print" in html and "@page" in html
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "element ids must be unique across the inlined SVGs"


def test_html_shows_measured_savings_once_replayed(hostile_doc):
    first = hostile_doc.findings[0]
    replayed = first.model_copy(update={"measured": MeasuredSaving(usd_per_month=123.45, usd_per_month_spread=10.0, runs=3,
                                                                   detail={"ttft_ms_before": 410.0, "ttft_ms_after": 220.5})})
    doc = hostile_doc.model_copy(update={"findings": [replayed, *hostile_doc.findings[1:]]})
    html = render_html(doc)
    assert "$123.45" in html and "± $10.00" in html and "(3 runs" in html
    assert 'aria-labelledby="chart-measured-cap"' in html
    assert "ttft_ms_after" in html and "220.5" in html
    # the replayed finding no longer says "not replayed" in its card, the summary table or the savings table
    assert html.count("not replayed") == render_html(hostile_doc).count("not replayed") - 4
    md_text = render_markdown(doc)
    assert "$123.45/mo ± $10.00 (3 runs, GPU time)" in md_text


# -- redaction and content ---------------------------------------------------------------------------------


def tenant_doc(hostile_doc: AuditDocument) -> AuditDocument:
    f = by_rule(hostile_doc, "LLMA003")[0]
    scoped = f.model_copy(update={
        "fingerprint": "LLMA003-0123456789ab",
        "scope": f.scope.model_copy(update={"tenant": "acme-corp"}),
        "message": "acme-corp sends 20 chunks per request",
        "evidence": {**f.evidence, "top_tenants": ["acme-corp", "globex"], "user_id": "bob@example.com",
                     "prompt": "SECRET PROMPT TEXT", "retrieved": {"document_text": "SECRET DOC"}},
    })
    return hostile_doc.model_copy(update={"findings": [scoped, *hostile_doc.findings]})


def test_redact_hashes_tenants_and_users_everywhere(tmp_path, hostile_doc):
    doc = tenant_doc(hostile_doc)
    paths = {"json": tmp_path / "r.json", "markdown": tmp_path / "r.md", "html": tmp_path / "r.html"}
    write_outputs(doc, json_path=paths["json"], markdown_path=paths["markdown"], html_path=paths["html"], redact=True,
                  redact_salt="pepper")
    secrets = ["acme-corp", "globex", "bob@example.com", "window.__pwned=2", "SECRET PROMPT TEXT", "SECRET DOC"]
    for kind, path in paths.items():
        text = path.read_text()
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into the {kind} report"
        assert pseudonym("acme-corp", "pepper") in text
    data = json.loads(paths["json"].read_text())
    f0 = data["findings"][0]
    assert f0["scope"]["tenant"] == pseudonym("acme-corp", "pepper")
    assert f0["message"] == f"{pseudonym('acme-corp', 'pepper')} sends 20 chunks per request"
    assert f0["evidence"]["top_tenants"] == [pseudonym("acme-corp", "pepper"), pseudonym("globex", "pepper")]
    assert f0["evidence"]["user_id"] == pseudonym("bob@example.com", "pepper")
    assert f0["fingerprint"] != doc.findings[0].fingerprint and f0["fingerprint"].startswith("LLMA003-r")
    assert data["findings"][1]["fingerprint"] == doc.findings[1].fingerprint  # no tenant in scope: unchanged
    assert {r["key"] for r in data["breakdowns"]["tenant"]} == {pseudonym(HOSTILE_TENANT, "pepper"), pseudonym("globex", "pepper")}
    assert data["extras"]["redaction"]["default_salt"] is False
    # stable with the same salt, different with another, idempotent
    assert redact(doc, "pepper") == redact(doc, "pepper") == redact(redact(doc, "pepper"), "pepper").model_copy(
        update={"extras": redact(doc, "pepper").extras})
    assert redact(doc, "salt").findings[0].scope.tenant != f0["scope"]["tenant"]


def test_redact_salt_from_environment(monkeypatch, hostile_doc):
    monkeypatch.setenv("LLMAUDIT_REDACT_SALT", "from-env")
    doc = redact(tenant_doc(hostile_doc))
    assert doc.findings[0].scope.tenant == pseudonym("acme-corp", "from-env")
    assert doc.extras["redaction"]["default_salt"] is False
    monkeypatch.delenv("LLMAUDIT_REDACT_SALT")
    assert redact(tenant_doc(hostile_doc)).extras["redaction"]["default_salt"] is True


def test_content_never_reaches_any_output(tmp_path, hostile_doc):
    doc = tenant_doc(hostile_doc)
    scrubbed = scrub_content(doc)
    ev = scrubbed.findings[0].evidence
    assert ev["prompt"].startswith("[content removed: sha256 ") and ev["retrieved"]["document_text"].startswith("[content removed")
    assert ev["typical_k"] == doc.findings[0].evidence["typical_k"]  # numbers untouched
    assert scrubbed.extras["content_scrubbed"] == 2
    long_text = doc.model_copy(update={"findings": [doc.findings[0].model_copy(update={"evidence": {"note": "z" * 600}})]})
    assert scrub_content(long_text).findings[0].evidence["note"].startswith("[content removed")
    for text in (render_json(doc), render_markdown(doc), render_html(doc)):
        assert "SECRET PROMPT TEXT" not in text and "SECRET DOC" not in text


# -- determinism --------------------------------------------------------------------------------------------


def test_same_input_same_bytes(tmp_path):
    src = hostile_file(tmp_path)
    fixture = REPO / "rules" / "fixtures" / "LLMA003" / "positive.jsonl"
    outs = []
    for run in ("a", "b"):
        doc = build_doc(tmp_path, src, fixture, name=f"store-{run}")
        base = tmp_path / "base.json"
        if run == "a":
            base.write_text(render_json(doc.model_copy(update={"findings": doc.findings[1:]})))
        d = tmp_path / run
        d.mkdir()
        write_outputs(doc, json_path=d / "r.json", markdown_path=d / "r.md", html_path=d / "r.html", baseline_path=base)
        outs.append({name: (d / name).read_bytes() for name in ("r.json", "r.md", "r.html")})
    assert outs[0] == outs[1]
    assert b"chart-feature" in outs[0]["r.html"] and len(outs[0]["r.html"]) > 20_000


def test_html_and_markdown_bytes_do_not_depend_on_the_process(tmp_path, hostile_doc):
    """Set iteration order changes with PYTHONHASHSEED; outputs must not."""
    src = tmp_path / "doc.json"
    src.write_text(render_json(tenant_doc(hostile_doc)))
    script = (
        "import sys, hashlib; from llmaudit.report.document import AuditDocument as D; "
        "from llmaudit.report.html import render_html; from llmaudit.report.markdown import render_markdown; "
        "from llmaudit.report.redact import redact; "
        "d = redact(D.model_validate_json(open(sys.argv[1]).read()), 'k'); "
        "print(hashlib.sha256((render_html(d) + render_markdown(d)).encode()).hexdigest())"
    )
    digests = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run([sys.executable, "-c", script, str(src)], capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr
        digests.add(res.stdout.strip())
    assert len(digests) == 1


def test_outputs_do_not_modify_the_callers_document(tmp_path, hostile_doc):
    before = hostile_doc.model_dump_json()
    write_outputs(tenant_doc(hostile_doc), json_path=tmp_path / "r.json", redact=True)
    assert hostile_doc.model_dump_json() == before
    # --json and --baseline may name the same file: it is read before it is overwritten.
    same = tmp_path / "same.json"
    same.write_text(render_json(hostile_doc))
    cmp = write_outputs(hostile_doc, json_path=same, baseline_path=same)
    assert cmp.counts.new == 0 and json.loads(same.read_text())["extras"]["baseline"]["counts"]["new"] == 0
    with pytest.raises(ReportError, match="does not exist"):
        write_outputs(hostile_doc, html_path=tmp_path / "no" / "such" / "dir" / "r.html")
