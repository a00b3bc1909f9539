"""The rule engine's contract with rule authors: a fingerprint names one finding (a repeated one is a
rule error, never a silently dropped row), `rules test` runs fixtures through the same engine path as
`analyze`, and a severity the SQL changes by a condition is documented and shown by `rules list/show`."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import otlp_factory as f
import pytest

from llmaudit.audit import prepare
from llmaudit.config import Settings
from llmaudit.findings.model import Scope
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.rules.engine import all_rules, fingerprint, run_rules
from llmaudit.rules.selftest import run_all
from llmaudit.rules.spec import RuleError, load_rule_file, load_rules
from llmaudit.store import Store

LLMAUDIT = [sys.executable, "-m", "llmaudit"]


def run(*args, cwd=None):
    return subprocess.run([*LLMAUDIT, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


# A user rule that returns `rows` rows per scope; only with `keyed` does each row have its own scope_key.
ROWS_RULE = """\
id: TEST001
name: rows-per-scope
title: Rows per scope
category: fan_out
severity: low
summary: A test rule that returns a number of rows per service, feature and model of the calls.
saving: One cent per row, more for each later row.
remediation: Nothing to fix; this rule exists for the engine's tests.
params:
  rows: {default: 2, doc: rows per scope}
  keyed: {default: true, doc: each row has its own scope_key}
message: "{service}: row {row}"
sql: |
  SELECT c.service, c.feature, c.model, k.i AS row, CASE WHEN $keyed THEN k.i END AS scope_key,
         count(*) AS calls, 0.01 * (k.i + 1) AS waste_usd
  FROM llm_calls c, range($rows) k(i)
  GROUP BY c.service, c.feature, c.model, k.i
tests:
  - name: two keyed rows
    kind: positive
    fixture: calls.jsonl
    expect: {findings: 2, where: {row: 1}, min_waste_usd: 0.02, max_waste_usd: 0.02}
  - name: no rows
    kind: negative
    fixture: calls.jsonl
    params: {rows: 0}
    expect: {findings: 0}
"""

UNKEYED_TEST = """\
  - name: two rows without a key
    kind: positive
    fixture: calls.jsonl
    params: {keyed: false}
    expect: {findings: 2}
"""


@pytest.fixture
def rule_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    f.write_jsonl(folder / "calls.jsonl", [f.request(f.simple_trace(n_llm=3)) for _ in range(4)])
    (folder / "TEST001_rows.yaml").write_text(ROWS_RULE)
    return folder


def test_a_repeated_fingerprint_is_a_rule_error_not_a_dropped_finding(rule_dir):
    rule = load_rule_file(rule_dir / "TEST001_rows.yaml")
    with Store() as store:
        Ingestor(store, workers=1, strict=True).run(expand_paths([str(rule_dir / "calls.jsonl")]))
        prepare(store, Settings())
        (scope,) = store.con.execute("SELECT DISTINCT service, feature, model FROM llm_calls").fetchall()

        keyed = run_rules(store, [rule])
        assert keyed.errors == {}
        assert sorted(x.evidence["row"] for x in keyed.findings) == [0, 1]
        assert len({x.fingerprint for x in keyed.findings}) == 2

        unkeyed = run_rules(store, [rule], {"TEST001": {"keyed": False}})
    repeated = fingerprint("TEST001", Scope(service=scope[0], feature=scope[1], model=scope[2]), None)
    assert unkeyed.findings == []  # neither row is kept as if it were the only one
    message = unkeyed.errors["TEST001"]
    assert f"{repeated} (2 rows)" in message and "scope_key" in message


def test_other_rules_keep_their_findings_when_one_repeats_a_fingerprint(rule_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "TEST002_rows.yaml").write_text(ROWS_RULE.replace("TEST001", "TEST002").replace("rows-per-scope", "rows-two"))
    rules = [load_rule_file(rule_dir / "TEST001_rows.yaml"), load_rule_file(other / "TEST002_rows.yaml")]
    with Store() as store:
        Ingestor(store, workers=1, strict=True).run(expand_paths([str(rule_dir / "calls.jsonl")]))
        prepare(store, Settings())
        result = run_rules(store, rules, {"TEST001": {"keyed": False}})
    assert list(result.errors) == ["TEST001"]
    assert [x.rule_id for x in result.findings] == ["TEST002", "TEST002"]
    # Sorted by dollar impact, as analyze sorts them.
    assert [x.waste.usd for x in result.findings] == [0.02, 0.01]


def test_rules_test_runs_fixtures_through_the_engine(rule_dir):
    outcomes = run_all(load_rules([rule_dir]))
    assert [(o.test, o.passed) for o in outcomes] == [("two keyed rows", True), ("no rows", True)]

    (rule_dir / "TEST001_rows.yaml").write_text(ROWS_RULE + UNKEYED_TEST)
    outcomes = {o.test: o for o in run_all(load_rules([rule_dir]))}
    failed = outcomes["two rows without a key"]
    assert not failed.passed
    assert failed.detail.startswith("rule error: duplicate fingerprint: TEST001-")

    res = run("rules", "test", rule_dir)
    assert res.returncode == 1
    assert "2 passed, 1 failed" in res.stdout
    assert "duplicate" in res.stdout


def test_a_rule_that_does_not_run_fails_its_fixture_test(rule_dir):
    """A negative test must not pass because the rule was skipped (its tables are empty)."""
    (rule_dir / "TEST001_rows.yaml").write_text(ROWS_RULE.replace("message:", "requires: [retrievals]\nmessage:"))
    outcomes = run_all(load_rules([rule_dir]))
    assert [(o.passed, o.detail) for o in outcomes] == [(False, "rule did not run: retrievals is empty")] * 2


# -- severity conditions -------------------------------------------------------------------------------


def test_a_severity_column_needs_severity_when(tmp_path):
    with_severity = ROWS_RULE.replace("count(*) AS calls,", "count(*) AS calls, CASE WHEN k.i > 0 THEN 'high' END AS severity,")
    path = tmp_path / "TEST001.yaml"
    path.write_text(with_severity)
    with pytest.raises(RuleError, match="severity column: say when it applies in severity_when"):
        load_rule_file(path)
    path.write_text(with_severity.replace("severity: low\n", "severity: low\nseverity_when: high from the second row on\n"))
    assert load_rule_file(path).severity_text() == "low; high from the second row on"
    path.write_text(ROWS_RULE.replace("severity: low\n", "severity: low\nseverity_when: high from the second row on\n"))
    with pytest.raises(RuleError, match="severity_when is set but the sql returns no severity column"):
        load_rule_file(path)


def _table_cells(stdout: str, column: str) -> dict[str, str]:
    """A Rich table's cells of one column by row id, wrapped lines joined."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "┃" in line)
    names = [c.strip() for c in lines[header].split("┃")]
    at = names.index(column)
    cells: dict[str, list[str]] = {}
    row = None
    for line in lines[header + 2:]:
        parts = [c.strip() for c in line.split("│")]
        if len(parts) != len(names):
            continue
        row = parts[0] or row
        cells.setdefault(row, []).append(parts[at])
    return {k: " ".join(x for x in v if x) for k, v in cells.items()}


def test_rules_list_and_show_say_when_the_severity_changes():
    rules = all_rules()
    conditional = {r.id for r in rules if r.severity_when}
    # Every built-in rule whose SQL returns a severity says when (the loader enforces it) ...
    assert conditional == {r.id for r in rules if re.search(r"\bAS\s+severity\b", r.sql, re.IGNORECASE)}
    assert {"LLMA002", "LLMA004", "LLMA013", "LLMA015"} <= conditional

    res = run("rules", "list")
    assert res.returncode == 0, res.stderr
    shown = _table_cells(res.stdout, "severity")
    assert shown == {r.id: r.severity_text() for r in rules}
    assert shown["LLMA004"] == "medium; high when at least half of the storm's calls are retries"
    assert shown["LLMA003"] == "medium"

    res = run("rules", "show", "LLMA013")
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "severity medium; high when at least high_idle_share of the provisioned GPU-hours are idle, needs" in text


def test_severity_when_matches_what_the_sql_does(tmp_path):
    """LLMA004's documented condition is the one its findings follow: a storm in which half the calls
    are retries is high, a storm with fewer is medium."""
    from test_rules_fanout_retry_cache import _window, audit

    (high,) = audit(tmp_path / "a", _window("h", 20, 20), "LLMA004")
    assert high.evidence["retries"] >= 0.5 * high.evidence["calls"] and high.severity == "high"
    (medium,) = audit(tmp_path / "b", _window("m", 41, 10, every=4), "LLMA004")
    assert medium.evidence["retries"] < 0.5 * medium.evidence["calls"] and medium.severity == "medium"


def test_severity_when_is_checked_for_user_rules_in_the_cli(rule_dir):
    text = ROWS_RULE.replace("count(*) AS calls,", "count(*) AS calls, 'high' AS severity,")
    (rule_dir / "TEST001_rows.yaml").write_text(text)
    res = run("rules", "list", "--rules", rule_dir)
    assert res.returncode == 2
    assert "severity_when" in res.stderr and "TEST001_rows.yaml" in res.stderr
