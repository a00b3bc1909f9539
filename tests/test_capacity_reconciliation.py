"""Bills, GPU metrics and traces side by side: idle capacity (LLMA013), replica sizing (LLMA014), spend the
traces do not explain (LLMA015), self-hosted calls priced from GPU time, and the analyze header.

On the sample week the planted truth comes from sample_traces/expected.json (written by the generator); on
small hand-made files it is worked out in the test. A clean control (a bill the traces explain, a GPU
that is busy whenever it is up) produces no finding of medium severity or above.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import timedelta

import pytest

from conftest import REPO
from llmaudit.audit import audit
from llmaudit.config import Settings
from llmaudit.findings.model import severity_rank
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.report.document import build_document
from llmaudit.rules.engine import all_rules, observed_window_days, run_rule
from llmaudit.store import Store

SAMPLE = REPO / "sample_traces"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text())
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"

sys.path.insert(0, str(REPO / "rules" / "fixtures"))
from build import Trace, write_otlp_jsonl  # noqa: E402
from LLMA013 import T0, compute_row, dcgm_text, focus_csv  # noqa: E402


def _generator():
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ingest(store, paths, settings=None):
    report = Ingestor(store, workers=2).run(expand_paths([str(p) for p in paths]))
    assert all(f.rejects == 0 for f in report.files), [(f.path, f.first_reject) for f in report.files if f.rejects]
    return audit(store, settings or Settings())


@pytest.fixture(scope="module")
def sample():
    store = Store()
    result = _ingest(store, [SAMPLE])
    yield store, result
    store.close()


def _only(findings, rule_id):
    found = [f for f in findings if f.rule_id == rule_id]
    assert len(found) == 1, [(f.rule_id, f.message) for f in found]
    return found[0]


# --------------------------------------------------------------------------------------------------
# The sample week
# --------------------------------------------------------------------------------------------------

def test_shipped_billing_and_metrics_files_are_what_the_generator_writes():
    files, truth = _generator().generate()
    for name in EXPECTED["data_files"]:
        assert files[name] == (SAMPLE / name).read_bytes(), f"{name}: run python sample_traces/generate.py"
    assert truth["billing"] == EXPECTED["billing"] and truth["gpu"] == EXPECTED["gpu"]


def test_idle_capacity_found_on_the_vllm_node_within_25_percent(sample):
    _, result = sample
    truth = EXPECTED["gpu"]
    idle = truth["idle_capacity"]
    f = _only(result.findings, "LLMA013")
    assert (f.evidence["host"], f.scope.model, f.scope.service) == ("vllm-node-1", LLAMA, None)
    assert f.evidence["gpu_model"] == truth["gpu_model"] and f.evidence["accelerator"] == "H100"
    assert f.evidence["provisioned_gpu_hours"] == pytest.approx(truth["provisioned_gpu_hours"], rel=1e-6)
    assert f.evidence["busy_gpu_hours"] == pytest.approx(truth["busy_gpu_hours"], abs=0.001)
    assert f.waste.gpu_hours == pytest.approx(idle["idle_gpu_hours"], rel=0.25)
    assert f.waste.usd == pytest.approx(idle["idle_usd"], rel=0.25)
    # by hour of day: busy only in the nightly window, nothing needed the rest of the day
    assert f.evidence["busy_hours_utc"] == "01:00-03:00"
    assert f.evidence["trough_hours_utc"] == idle["trough_hours_of_day"]
    assert f.evidence["recommended_floor_gpus"] == idle["recommended_floor_gpus"]
    assert f.evidence["gpu_hour_usd"] == truth["usd_per_gpu_hour"]
    # the bill's Compute charges for the same host are shown beside the metrics
    assert f.evidence["billed_compute_usd"] == pytest.approx(EXPECTED["billing"]["compute"]["usd"], abs=0.01)
    assert f.evidence["billed_compute_hours"] == pytest.approx(EXPECTED["billing"]["compute"]["hours"], abs=0.001)
    assert f.severity == "high" and f.category == "idle_capacity"


def test_one_replica_is_what_the_batch_needs(sample):
    store, result = sample
    truth = EXPECTED["serving"]
    assert truth["replicas_needed"] == truth["replicas_provisioned"] == 1
    assert not [f for f in result.findings if f.rule_id == "LLMA014"]
    peak = store.scalar("SELECT max(value) FROM serving_samples WHERE metric = 'requests_running'")
    assert peak == truth["peak_running_scraped"]


def test_unexplained_billed_spend_found_within_25_percent(sample):
    _, result = sample
    billing = EXPECTED["billing"]
    gap = billing["unexplained"]
    f = _only(result.findings, "LLMA015")  # Anthropic's bill is fully explained: no finding for it
    assert (f.evidence["provider"], f.scope.model, f.evidence["currency"]) == (gap["provider"], gap["model"], "USD")
    assert f.waste.usd == pytest.approx(gap["usd"], rel=0.25)
    assert f.evidence["unexplained_usd"] == pytest.approx(gap["usd"], rel=0.25)
    billed = billing["by_model_usd"]["openai/gpt-4o"]
    assert f.evidence["billed_usd"] == pytest.approx(billed, abs=0.01)
    assert f.evidence["explained_share"] == pytest.approx((billed - gap["usd"]) / billed, abs=0.02)
    assert f.evidence["provider_explained_share"] == pytest.approx(billing["explained_share"]["openai"], abs=0.02)
    # the untraced project tops the bill's sub-accounts
    assert f.evidence["billed_by_sub_account"][0]["sub_account_id"] == gap["sub_account_id"]
    assert f.evidence["days"] == 7 and f.severity == "high"


def test_reconciliation_table_shows_the_covered_share(sample):
    store, _ = sample
    billing = EXPECTED["billing"]
    rows = store.execute("""SELECT provider, sum(billed_cost), coalesce(sum(trace_cost), 0) FROM reconciliation
                            WHERE in_trace_window GROUP BY provider""").fetchall()
    got = {p: (b, t) for p, b, t in rows}
    assert set(got) == {"openai", "anthropic"}  # the GPU instance (Compute) is not model spend
    for provider, share in billing["explained_share"].items():
        billed, traced = got[provider]
        assert billed == pytest.approx(billing["by_provider_usd"][provider], abs=0.01)
        assert traced / billed == pytest.approx(share, abs=0.02)


def test_self_hosted_batch_calls_are_priced_from_gpu_time(sample):
    store, _ = sample
    truth = EXPECTED["gpu"]["self_hosted_pricing"]
    calls, priced, cost, sources = store.execute(
        """SELECT count(*), count(cost_usd), sum(cost_usd), list(DISTINCT price_source)
           FROM llm_calls WHERE self_hosted""").fetchone()
    assert calls == EXPECTED["workloads"]["batch-summarizer"]["calls"] == priced
    assert cost == pytest.approx(truth["usd"], rel=0.01)
    assert len(sources) == 1 and sources[0].startswith("self-hosted:") and "H100 $6.88/h" in sources[0]


def test_padding_rule_prices_gpu_time_from_the_catalog(sample):
    _, result = sample
    f = next(f for f in result.findings if f.rule_id == "LLMA005" and f.evidence["self_hosted"])
    assert f.evidence["gpu_hour_usd"] == 6.88 and "H100" in f.evidence["gpu_hour_price_source"]
    assert f.waste.usd == pytest.approx(f.waste.gpu_hours * 6.88, abs=0.01)


def test_analyze_header_shows_billed_spend_and_gpu_use(sample):
    store, result = sample
    doc = build_document(store, result)
    head = doc.extras["headline"]
    billing, gpu = EXPECTED["billing"], EXPECTED["gpu"]
    assert head["Billed"].startswith(f"${billing['billed_usd']:,.2f} (model APIs ${billing['llm_api_billed_usd']:,.2f}: traces explain")
    assert head["GPU"].startswith(f"{gpu['provisioned_gpu_hours']:,.0f} GPU-hours provisioned on 1 GPU, "
                                  f"compute {gpu['busy_gpu_hours'] / gpu['provisioned_gpu_hours']:.1%} used (SM activity)")
    assert "would not have held" in head["GPU"] and "LLMA013" in head["GPU"]
    rec = {r["provider"]: r for r in doc.extras["reconciliation"]["by_provider"]}
    assert rec["openai"]["explained_share"] == pytest.approx(billing["explained_share"]["openai"], abs=0.02)
    assert rec["anthropic"]["explained_share"] == pytest.approx(1.0, abs=0.001)
    other = sum(r["billed"] for r in doc.extras["reconciliation"]["billed"] if not r["model_api"])
    assert other == pytest.approx(billing["compute"]["usd"], abs=0.01)
    host = doc.extras["gpu"]["hosts"][0]
    assert (host["host"], host["gpus"], host["provisioned_gpu_hours"]) == ("vllm-node-1", 1, gpu["provisioned_gpu_hours"])
    assert doc.extras["gpu"]["self_hosted_calls"]["cost_usd"] == pytest.approx(gpu["self_hosted_pricing"]["usd"], rel=0.01)
    assert doc.extras["gpu"]["serving"][0]["peak_running"] == EXPECTED["serving"]["peak_running_scraped"]
    json.dumps(doc.model_dump(mode="json"))  # the sections are plain JSON


def test_clean_week_bill_is_explained_and_gpu_is_not_idle(tmp_path):
    gen = _generator()
    files, truth = gen.generate(gen.Scenario.clean())
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert truth["billing"]["unexplained"]["usd"] == 0 and not truth["gpu"]["idle_capacity"]["planted"]
    with Store() as store:
        result = _ingest(store, [tmp_path])
        ours = [f for f in result.findings if f.rule_id in ("LLMA013", "LLMA014", "LLMA015")]
        assert ours == []
        share = store.scalar("""SELECT sum(trace_cost) / sum(billed_cost) FROM reconciliation
                                WHERE in_trace_window AND provider = 'openai'""")
        assert share == pytest.approx(1.0, abs=0.02)


# --------------------------------------------------------------------------------------------------
# Small hand-made files: a planted gap and idle GPU, and a clean control
# --------------------------------------------------------------------------------------------------

def _traces(path, days=2):
    """48 gpt-4o calls a day, one every half hour from 00:05: 10,000 + 500 tokens, $0.03 each ($1.44 a day)."""
    traces = []
    for d in range(days):
        for i in range(48):
            t = Trace(f"handmade-{d}-{i}", "answer-api", at_ms=d * 86_400_000 + 300_000 + i * 1_800_000,
                      name="POST /v1/answer", attrs={"http.route": "/v1/answer"})
            t.llm("gpt-4o", 10_000, 500)
            traces.append(t)
    write_otlp_jsonl(path, traces)


def _bill_row(day, tokens, token_type, project):
    price = 2.5 if token_type == "input" else 10.0
    cost = round(tokens * price / 1e6, 6)
    return {"BilledCost": cost, "EffectiveCost": cost, "BillingCurrency": "USD", "ChargePeriodStart": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ChargePeriodEnd": (day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "ChargeCategory": "Usage",
            "ServiceProviderName": "OpenAI", "ServiceName": "OpenAI API", "ServiceCategory": "AI and Machine Learning",
            "SkuMeter": f"gpt-4o-2024-08-06 {token_type} tokens", "ConsumedQuantity": tokens, "ConsumedUnit": "Tokens",
            "PricingQuantity": tokens / 1e6, "PricingUnit": "1M Tokens", "ListUnitPrice": price, "SubAccountId": project}


def _write_case(folder, *, untraced_usd_per_day: float, busy_all_day: bool):
    folder.mkdir()
    _traces(folder / "traces.jsonl")
    rows = []
    for d in range(2):
        day = T0 + timedelta(days=d)
        rows += [_bill_row(day, 48 * 10_000, "input", "proj_answer"), _bill_row(day, 48 * 500, "output", "proj_answer")]
        if untraced_usd_per_day:
            rows.append(_bill_row(day, int(untraced_usd_per_day / 2.5 * 1e6), "input", "proj_shadow"))
        rows.append(compute_row(day, "node-x", 24.0, 6.88, "p5.4xlarge"))
    (folder / "bill.focus.csv").write_text(focus_csv(rows), encoding="utf-8")

    def busy(host, g, t):
        return 0.6 if busy_all_day or 2 <= t.hour < 4 else 0.0

    (folder / "node.dcgm.prom").write_text(
        dcgm_text({"node-x": ("NVIDIA H100 80GB HBM3", 1)}, T0, 48, 600, busy), encoding="utf-8")


def test_planted_gap_and_idle_gpu_on_hand_made_files(tmp_path):
    _write_case(tmp_path / "planted", untraced_usd_per_day=6.0, busy_all_day=False)
    with Store() as store:
        result = _ingest(store, [tmp_path / "planted"])
        gap = _only(result.findings, "LLMA015")
        # billed 2 x ($1.44 + $6.00) = $14.88, traced $2.88: $12.00 unexplained, 19.4% explained
        assert gap.waste.usd == pytest.approx(12.0, abs=0.005)
        assert (gap.evidence["billed_usd"], gap.evidence["traced_usd"]) == (14.88, 2.88)
        assert gap.evidence["explained_share"] == pytest.approx(2.88 / 14.88, abs=1e-4)
        assert gap.evidence["gap_kind"].startswith("tokens") and gap.severity == "high"
        assert gap.evidence["billed_by_sub_account"][0]["sub_account_id"] == "proj_shadow"
        idle = _only(result.findings, "LLMA013")
        # up 48 h, busy 02:00-04:00 each day: 44 idle GPU-hours at the catalog H100 price
        assert idle.waste.gpu_hours == pytest.approx(44.0, abs=1e-6)
        assert idle.waste.usd == pytest.approx(44 * 6.88, abs=0.01)
        assert idle.evidence["busy_hours_utc"] == "02:00-04:00" and idle.evidence["billed_compute_usd"] == 330.24
        assert idle.evidence["billed_idle_usd"] == pytest.approx(330.24 * 44 / 48, abs=0.01)


def test_clean_control_no_finding_of_medium_or_above(tmp_path):
    _write_case(tmp_path / "clean", untraced_usd_per_day=0.0, busy_all_day=True)
    with Store() as store:
        result = _ingest(store, [tmp_path / "clean"])
        loud = [(f.rule_id, f.severity, f.message) for f in result.findings if severity_rank(f.severity) >= severity_rank("medium")]
        assert loud == []
        assert not [f for f in result.findings if f.rule_id in ("LLMA013", "LLMA014", "LLMA015")]
        assert result.errors == {}
        share = store.scalar("SELECT sum(trace_cost) / sum(billed_cost) FROM reconciliation WHERE in_trace_window")
        assert share == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------------------------------
# GPU-hour prices exposed to SQL
# --------------------------------------------------------------------------------------------------

def test_gpu_prices_tables_follow_the_catalog_and_the_accelerator_override(tmp_path):
    path = tmp_path / "gpus.prom"
    path.write_text(dcgm_text({"a": ("NVIDIA A100-SXM4-80GB", 1), "b": ("Some Unknown GPU", 1)}, T0, 1, 600,
                              lambda h, g, t: 0.5), encoding="utf-8")
    with Store() as store:
        _ingest(store, [path])
        rows = store.execute("SELECT host, accelerator, usd_per_hour FROM gpu_device_prices ORDER BY host").fetchall()
        assert rows == [("a", "A100-80GB", 3.4309), ("b", None, None)]
        catalog = dict(store.execute("SELECT accelerator, usd_per_hour FROM gpu_hour_prices").fetchall())
        assert catalog["H100"] == 6.88 and catalog["L4"] == 0.8048
    with Store() as store:
        _ingest(store, [path], Settings(accelerator="H100"))
        rows = store.execute("SELECT host, accelerator, usd_per_hour FROM gpu_device_prices ORDER BY host").fetchall()
        assert rows == [("a", "H100", 6.88), ("b", "H100", 6.88)]


def test_shared_pool_padding_priced_at_the_servers_catalog_gpu(tmp_path):
    # LLMA006's own positive fixture, plus DCGM metrics for a host named like its server: the padding is
    # priced at that GPU's catalog price instead of the gpu_hour_usd parameter.
    fixture = REPO / "rules" / "fixtures" / "LLMA006" / "positive.jsonl"
    (tmp_path / "calls.jsonl").write_bytes(fixture.read_bytes())
    (tmp_path / "pool.prom").write_text(dcgm_text({"llm-pool.internal": ("NVIDIA A100-SXM4-80GB", 1)}, T0, 1, 600,
                                                  lambda h, g, t: 0.5), encoding="utf-8")
    rule = next(r for r in all_rules() if r.id == "LLMA006")
    with Store() as store:
        _ingest(store, [tmp_path])
        (f,) = run_rule(store, rule, rule.bound_params(), observed_window_days(store))
    assert f.evidence["gpu_hour_usd"] == 3.4309 and "A100-80GB" in f.evidence["gpu_hour_price_source"]
    assert f.waste.usd == pytest.approx(f.waste.gpu_hours * 3.4309, abs=0.01)
