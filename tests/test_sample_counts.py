"""The ingest summary's counts equal counts made independently on the same files.

Two independent sources of truth: the generator's own bookkeeping (sample_traces/expected.json), and
a plain stdlib-json walk of the files written here, sharing no code with the readers.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict

import pytest

from conftest import REPO
from llmaudit.summary import summarize

SAMPLE = REPO / "sample_traces"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text())


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    from llmaudit.config import Settings
    from llmaudit.ingest.pipeline import Ingestor
    from llmaudit.ingest.sources import expand_paths
    from llmaudit.normalize.derive import derive
    from llmaudit.store import Store

    store = Store(tmp_path_factory.mktemp("sample") / "s.duckdb")
    report = Ingestor(store, workers=2).run(expand_paths([str(SAMPLE)]))
    derive(store, Settings())
    yield store, report
    store.close()


def test_every_file_read_without_rejects(sample_store):
    store, report = sample_store
    ingested = {r.path.rsplit("/", 1)[-1]: r for r in report.files if r.status == "ingested"}
    assert set(ingested) == set(EXPECTED["files"]) | set(EXPECTED["data_files"])
    for name, truth in EXPECTED["files"].items():
        assert (ingested[name].records, ingested[name].stored, ingested[name].rejects) == (truth["spans"], truth["spans"], 0), name
    # the billing export (one record per FOCUS row) and the metrics scrapes (one per sample)
    for name, truth in EXPECTED["data_files"].items():
        assert ingested[name].format == truth["format"], name
        assert (ingested[name].records, ingested[name].stored, ingested[name].rejects) == (truth["records"], truth["records"], 0), name
    skipped = {r.path.rsplit("/", 1)[-1] for r in report.files if r.status == "skipped"}
    assert skipped == {"expected.json"}


def test_billing_sums_per_service_and_day_equal_the_generators(sample_store):
    # FOCUS: BilledCost and EffectiveCost per service and day, against the generator's own sums
    store, _ = sample_store
    rows = store.execute(
        """SELECT service_name, strftime(charge_period_start, '%Y-%m-%d'), sum(billed_cost), sum(effective_cost)
           FROM billing GROUP BY ALL""").fetchall()
    got = {(svc, day): (billed, effective) for svc, day, billed, effective in rows}
    want = {(svc, day): usd for svc, days in EXPECTED["billing"]["by_service_day_usd"].items() for day, usd in days.items()}
    assert set(got) == set(want)
    for key, usd in want.items():
        assert got[key][0] == pytest.approx(usd, abs=1e-5), key
        assert got[key][1] == pytest.approx(usd, abs=1e-5), key


def test_metrics_samples_equal_the_generators(sample_store):
    store, _ = sample_store
    gpu, serving = EXPECTED["gpu"], EXPECTED["serving"]
    assert store.scalar("SELECT count(*) FROM metric_samples WHERE source = 'dcgm'") == gpu["samples"]
    assert store.scalar("SELECT count(*) FROM metric_samples WHERE source = 'vllm'") == serving["samples"]
    # token counters, old and new metric names and the restart included, add up to the batch calls' tokens
    inc = dict(store.execute("SELECT metric, sum(increase) FROM serving_counter_increase GROUP BY metric").fetchall())
    assert inc["prompt_tokens"] == serving["prompt_tokens"]
    assert inc["generation_tokens"] == serving["generation_tokens"]
    assert inc["requests_succeeded"] == serving["requests"]
    assert store.scalar("SELECT count(*) FROM serving_counter_increase WHERE reset") == 3  # one restart, three counters
    names = {r[0] for r in store.execute("SELECT DISTINCT raw_metric FROM serving_samples WHERE metric = 'kv_cache_usage'").fetchall()}
    assert names == {"vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"}


def test_summary_counts_equal_the_generators_bookkeeping(sample_store):
    store, _ = sample_store
    s = summarize(store)
    assert s.spans == EXPECTED["totals"]["spans"]
    assert s.llm_calls == EXPECTED["totals"]["llm_calls"]
    assert s.rejects == 0
    ours = {m.model: m for m in s.models}
    truth = defaultdict(lambda: defaultdict(int))
    for f in EXPECTED["files"].values():
        for model, t in f["by_model"].items():
            for k, v in t.items():
                if isinstance(v, (int, float)):
                    truth[model][k] += v
    assert set(ours) == set(truth)
    for model, t in truth.items():
        m = ours[model]
        assert m.calls == t["calls"], model
        assert m.estimated_calls == t["calls_without_usage"], model
        assert m.cached_input_tokens == t["cached_input_tokens"], model
        # Recorded usage is exact; calls without usage are counted with tiktoken from their content.
        recorded_in = store.scalar("SELECT sum(input_tokens) FROM llm_calls WHERE model = ? AND NOT tokens_estimated", [model])
        recorded_out = store.scalar("SELECT sum(output_tokens) FROM llm_calls WHERE model = ? AND NOT tokens_estimated", [model])
        assert (recorded_in or 0, recorded_out or 0) == (t["input_tokens"], t["output_tokens"]), model
        est_in = store.scalar("SELECT sum(input_tokens) FROM llm_calls WHERE model = ? AND tokens_estimated", [model]) or 0
        assert est_in == pytest.approx(t["nominal_input_tokens_without_usage"], rel=0.01), model


def _otlp_spans(path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    yield from ss["spans"]


def test_counts_equal_a_plain_json_walk_of_the_otlp_file(sample_store):
    store, _ = sample_store
    spans = list(_otlp_spans(SAMPLE / "support-bot.otlp.jsonl.gz"))
    calls = defaultdict(int)
    tokens_in = defaultdict(int)
    for sp in spans:
        attrs = {a["key"]: next(iter(a["value"].values())) for a in sp.get("attributes", [])}
        if attrs.get("gen_ai.operation.name") in ("chat", "embeddings"):
            model = attrs["gen_ai.request.model"]
            calls[model] += 1
            tokens_in[model] += int(attrs.get("gen_ai.usage.input_tokens", 0))
    file_id = store.scalar("SELECT file_id FROM ingest_log WHERE path LIKE '%support-bot.otlp.jsonl.gz'")
    assert store.scalar("SELECT count(*) FROM spans WHERE file_id = ?", [file_id]) == len(spans)
    rows = store.execute(
        """SELECT c.model, count(*), sum(c.input_tokens) FILTER (WHERE NOT c.tokens_estimated)
           FROM llm_calls c JOIN spans s USING (trace_id, span_id) WHERE s.file_id = ? GROUP BY 1""",
        [file_id],
    ).fetchall()
    assert {m: (n, t) for m, n, t in rows} == {m: (calls[m], tokens_in[m]) for m in calls}


def test_ingest_summary_of_the_bill_and_the_metrics_equals_the_generator_counts(tmp_path):
    import subprocess
    import sys

    files = [SAMPLE / "billing.focus.csv.gz", SAMPLE / "gpu-node.dcgm.prom.gz", SAMPLE / "vllm.metrics.prom.gz"]
    res = subprocess.run([sys.executable, "-m", "llmaudit", "ingest", *map(str, files)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    billing, data = EXPECTED["billing"], EXPECTED["data_files"]
    assert (f"Billed       {billing['billed_usd']:,.2f} USD in {billing['rows']:,} charges, "
            "2026-11-09 00:00 → 2026-11-16 00:00 UTC (anthropic, aws, openai)") in res.stdout
    for name, source in (("gpu-node.dcgm.prom.gz", "dcgm"), ("vllm.metrics.prom.gz", "vllm")):
        assert f"Metrics      {source}: {data[name]['records']:,} samples" in res.stdout
    assert "Spans        none (no trace files)" in res.stdout
