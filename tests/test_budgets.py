"""Budgets ([llmaudit.budgets], rule LLMA017) and the CI gates: --fail-on-budget, --min-change-usd/-pct.

The traffic is rules/fixtures/LLMA017/traffic.jsonl: feature `support` spends a flat $7.00 a day for seven
days of November 2025 (projected to $7.00 x 30 = $210.00 by month end), feature `agent` grows by $0.70 a
day ($177.10 projected along its trend).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conftest import REPO
from llmaudit.cli import app
from llmaudit.config import ConfigError, load_settings

TRAFFIC = REPO / "rules" / "fixtures" / "LLMA017" / "traffic.jsonl"


def analyze(tmp_path, config_text: str, *args):
    config = tmp_path / "llmaudit.toml"
    config.write_text(config_text)
    out = tmp_path / "report.json"
    res = CliRunner().invoke(app, ["analyze", str(TRAFFIC), "--config", str(config), "--json", str(out), "-q", *args])
    return res, json.loads(out.read_text()) if out.exists() else None


def test_a_feature_at_130_percent_is_a_finding_and_fails_the_budget_gate(tmp_path):
    # $210.00 projected against $161.538462: 130%.
    res, doc = analyze(tmp_path, '[llmaudit.budgets.feature]\nsupport = 161.538462\n', "--fail-on-budget")
    assert res.exit_code == 1, res.output
    [f] = [f for f in doc["findings"] if f["rule_id"] == "LLMA017"]
    assert f["category"] == "budget" and f["severity"] == "high"
    assert f["scope"]["feature"] == "support"
    assert f["evidence"]["projected_usd"] == 210.0 and f["evidence"]["projected_percent"] == 130.0
    assert f["evidence"]["days_observed"] == 7 and f["evidence"]["days_in_month"] == 30
    assert "least-squares line" in f["evidence"]["projection_method"]
    assert f["waste"]["usd_per_month"] == pytest.approx(48.46, abs=0.01)
    # Over budget is not waste: the waste total does not count it.
    assert f["fingerprint"] not in doc["totals"]["counted_findings"]
    assert doc["totals"]["estimated_waste_usd"] == 0.0
    assert "gate: over budget: feature support" in res.output


def test_a_feature_at_80_percent_is_not_a_finding(tmp_path):
    # $210.00 projected against $262.50: 80%.
    res, doc = analyze(tmp_path, '[llmaudit.budgets.feature]\nsupport = { usd = 262.5 }\n', "--fail-on-budget")
    assert res.exit_code == 0, res.output
    assert not [f for f in doc["findings"] if f["rule_id"] == "LLMA017"]


def test_the_trend_projects_a_growing_tenant_and_its_tokens(tmp_path):
    # globex (feature agent): $0.70 x (day + 1); least squares gives $0.70 + $0.70 x day, so the month
    # is $19.60 spent + $0.70 x (8 + ... + 22) = $177.10; tokens 55,660,000 against 50,000,000.
    res, doc = analyze(tmp_path, '[llmaudit.budgets.tenant]\nglobex = { usd = 100, tokens = 50_000_000 }\n')
    assert res.exit_code == 0, res.output  # no --fail-on-budget: reported, not gated
    [f] = [f for f in doc["findings"] if f["rule_id"] == "LLMA017"]
    assert f["scope"]["tenant"] == "globex"
    assert f["evidence"]["projected_usd"] == 177.1 and f["evidence"]["trend_usd_per_day"] == 0.7
    assert f["evidence"]["projected_tokens"] == 55_660_000
    assert f["waste"]["usd"] == pytest.approx(77.10, abs=0.01)


def test_budget_config_errors_name_the_file_and_the_entry(tmp_path):
    config = tmp_path / "llmaudit.toml"
    config.write_text('[llmaudit.budgets.project]\nx = 5\n')
    with pytest.raises(ConfigError, match=r"llmaudit.toml: budgets.project"):
        load_settings(config)
    config.write_text('[llmaudit.budgets.feature]\nx = { }\n')
    with pytest.raises(ConfigError, match=r"budgets.feature.x: .*needs usd, tokens or both"):
        load_settings(config)
    config.write_text('[llmaudit.budgets.feature]\nx = -3\n')
    with pytest.raises(ConfigError, match=r"budgets.feature.x.usd"):
        load_settings(config)


def test_min_change_needs_a_baseline(tmp_path):
    res = CliRunner().invoke(app, ["analyze", str(TRAFFIC), "--min-change-usd", "5"])
    assert res.exit_code == 2
    assert "--min-change-usd needs --baseline" in res.output
