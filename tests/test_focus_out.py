"""--focus-out: findings as FOCUS rows that the FOCUS reader itself reads back, every row, no reject."""

from __future__ import annotations

import csv
import json

import duckdb
from typer.testing import CliRunner

from conftest import REPO
from llmaudit.cli import app

FIXTURES = REPO / "rules" / "fixtures"


def test_focus_out_rows_pass_the_focus_readers_checks(tmp_path):
    config = tmp_path / "llmaudit.toml"
    config.write_text('[llmaudit.budgets.feature]\nsupport = 100\n[llmaudit.budgets.model]\ngpt-4o = 100\n')
    out, report = tmp_path / "waste.focus.csv", tmp_path / "report.json"
    res = CliRunner().invoke(app, ["analyze", str(FIXTURES / "LLMA017" / "traffic.jsonl"),
                                   str(FIXTURES / "LLMA018" / "positive.jsonl"), "--config", str(config),
                                   "--focus-out", str(out), "--json", str(report), "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads(report.read_text())
    rows = list(csv.DictReader(out.open()))
    assert [r["x_Fingerprint"] for r in rows] == [f["fingerprint"] for f in doc["findings"]]
    assert {r["x_RuleId"] for r in rows} >= {"LLMA017", "LLMA018"}
    assert "gpt-4o" in {r["x_Model"] for r in rows}  # the model budget's finding names its model

    # The FOCUS reader (format detected from the header), strict: one reject would fail the file.
    db = tmp_path / "focus.duckdb"
    res = CliRunner().invoke(app, ["ingest", str(out), "--db", str(db), "--strict"])
    assert res.exit_code == 0, res.output
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT format, records_read, rows_stored, rejects FROM ingest_log").fetchall() == [
        ("focus-csv", len(rows), len(rows), 0)]
    stored = {r[0]: r[1:] for r in con.execute("""
        SELECT json_extract_string(extras, '$.x_Fingerprint'), provider, model, charge_category, billed_cost,
               effective_cost, CAST(json_extract_string(extras, '$.x_WasteUsd') AS DOUBLE), currency,
               charge_period_start, charge_period_end
        FROM billing""").fetchall()}
    for f in doc["findings"]:
        provider, model, category, billed, effective, waste, currency, start, end = stored[f["fingerprint"]]
        # Feature-scoped findings name no model; the provider is the feature's (its calls are all openai's).
        assert (provider, model, category, billed, effective, currency) == (
            "openai", f["scope"]["model"], "Adjustment", 0.0, 0.0, "USD")
        assert waste == f["waste"]["usd"]
        assert start.isoformat() + "Z" == f["scope"]["window_start"] and end.isoformat() + "Z" == f["scope"]["window_end"]
    budget = next(f for f in doc["findings"] if f["rule_id"] == "LLMA017")
    assert budget["scope"]["window_start"] == "2025-11-01T00:00:00Z"  # the budget's month is its charge period
    # Waste is not billed: nothing of it counts as model usage when the file is read back.
    assert con.execute("SELECT count(*) FROM billing_spend WHERE charge_kind = 'usage'").fetchone()[0] == 0
