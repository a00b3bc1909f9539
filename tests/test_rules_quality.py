"""Precision and recall on generated workloads whose truth the generator knows.

- A clean workload (every knob healthy) produces no finding of medium severity or above.
- Each planted problem of the sample week is found by its rule, in the right scope, with an estimated
  waste within 25% of the planted truth (sample_traces/expected.json, written by the generator).
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import REPO
from llmaudit.audit import audit
from llmaudit.config import Settings
from llmaudit.findings.model import severity_rank
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.store import Store

SAMPLE = REPO / "sample_traces"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text())

# (workload, planted finding, rule, truth field, compared with: waste "usd" or waste "tokens")
PLANTED = [
    ("support-bot", "oversized_top_k", "LLMA003", "wasted_usd_all_main_calls", "usd"),
    ("support-bot", "retry_storm", "LLMA004", "failed_attempt_usd", "usd"),
    ("support-bot", "cacheable_duplicates", "LLMA007", "duplicate_usd", "usd"),
    ("support-bot", "prefix_cache", "LLMA008", "saving_usd_if_cached", "usd"),
    ("support-bot", "prompt_bloat", "LLMA010", "history_tokens_over_budget", "tokens"),
    ("ops-agent", "runaway_loop", "LLMA002", "wasted_usd", "usd"),
    ("ops-agent", "model_routing", "LLMA009", "saving_usd", "usd"),
    ("batch-summarizer", "padding", "LLMA005", "unused_reserved_tokens", "tokens"),
]


def _generator():
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _audit(paths):
    with Store() as store:
        Ingestor(store, workers=2).run(expand_paths([str(p) for p in paths]))
        return audit(store, Settings())


@pytest.fixture(scope="module")
def sample_findings():
    return _audit([SAMPLE]).findings


@pytest.mark.parametrize("workload,planted,rule_id,field,measure", PLANTED, ids=[p[1] for p in PLANTED])
def test_planted_problem_found_in_scope_within_25_percent(sample_findings, workload, planted, rule_id, field, measure):
    truth = EXPECTED["workloads"][workload]["findings"][planted]
    scope = truth["scope"]
    found = [
        f for f in sample_findings
        if f.rule_id == rule_id and f.scope.service == scope["service"]
        and (scope.get("feature") is None or f.scope.feature == scope["feature"])
        and (scope.get("model") is None or f.scope.model == scope["model"])
    ]
    assert found, f"{rule_id} found nothing in {scope}; it found: {[(f.rule_id, f.scope) for f in sample_findings]}"
    got = sum((f.waste.usd if measure == "usd" else f.waste.tokens) or 0 for f in found)
    want = truth[field]
    assert got == pytest.approx(want, rel=0.25), f"{rule_id}: estimated {got} vs planted {want} ({field})"
    assert severity_rank(max(found, key=lambda f: severity_rank(f.severity)).severity) >= severity_rank("low")


def test_clean_workload_has_no_finding_of_medium_or_above(tmp_path):
    gen = _generator()
    files, truth = gen.generate(gen.Scenario.clean())
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    result = _audit([tmp_path])
    loud = [(f.rule_id, f.severity, f.message) for f in result.findings if severity_rank(f.severity) >= severity_rank("medium")]
    assert loud == []
    assert result.errors == {}


def test_no_rule_errors_on_the_sample_week():
    result = _audit([SAMPLE])
    assert result.errors == {}


def test_routing_finding_names_the_replica_that_uses_the_frontier_model(sample_findings):
    truth = EXPECTED["workloads"]["ops-agent"]["findings"]["model_routing"]
    f = next(f for f in sample_findings if f.rule_id == "LLMA009" and f.scope.service == truth["scope"]["service"])
    pods = truth["scope"]["k8s.pod.name"]
    assert [i["instance"] for i in f.evidence["top_instances"]] == pods
    assert f.evidence["top_instances"][0]["calls"] == truth["router_calls_on_sonnet"]
    assert f.evidence["instances_with_these_calls"] == len(pods) < f.evidence["instances_serving_feature"] == 3
