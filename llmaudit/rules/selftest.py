"""`llmaudit rules test`: run every rule on its own positive and negative fixtures."""

from __future__ import annotations

from dataclasses import dataclass

from llmaudit.config import Settings
from llmaudit.findings.model import Finding
from llmaudit.rules.engine import run_rules
from llmaudit.rules.spec import Expect, Rule, RuleTest
from llmaudit.store import Store


@dataclass
class TestOutcome:
    rule_id: str
    test: str
    kind: str
    passed: bool
    detail: str


def _matches(finding: Finding, where: dict) -> bool:
    fields = {**finding.evidence, **finding.scope.model_dump(), "severity": finding.severity,
              "confidence": finding.confidence, "waste_tokens": finding.waste.tokens, "waste_usd": finding.waste.usd}
    for key, want in where.items():
        got = fields.get(key)
        if isinstance(want, float) and isinstance(got, (int, float)):
            if abs(got - want) > 1e-6 * max(1.0, abs(want)):
                return False
        elif got != want:
            return False
    return True


def check(findings: list[Finding], expect: Expect) -> str | None:
    """None when the expectation holds, else what differed."""
    n = len(findings)
    if expect.findings is not None and n != expect.findings:
        return f"expected {expect.findings} finding(s), got {n}"
    if expect.min_findings is not None and n < expect.min_findings:
        return f"expected at least {expect.min_findings} finding(s), got {n}"
    candidates = [f for f in findings if _matches(f, expect.where)] if expect.where else findings
    if expect.where and not candidates:
        return f"no finding matches {expect.where}"
    if expect.min_waste_usd is not None or expect.max_waste_usd is not None:
        total = sum(f.waste.usd or 0.0 for f in candidates)
        if expect.min_waste_usd is not None and total < expect.min_waste_usd:
            return f"waste ${total:,.2f} is below the expected minimum ${expect.min_waste_usd:,.2f}"
        if expect.max_waste_usd is not None and total > expect.max_waste_usd:
            return f"waste ${total:,.2f} is above the expected maximum ${expect.max_waste_usd:,.2f}"
    return None


def run_test(rule: Rule, test: RuleTest) -> TestOutcome:
    """One fixture through the path `analyze` takes (ingest, prepare, run_rules), so what the engine
    does with a rule's rows (rule errors such as duplicate fingerprints, sorting, the observed window)
    is what the fixture tests."""
    from llmaudit.audit import prepare
    from llmaudit.ingest.pipeline import Ingestor
    from llmaudit.ingest.sources import expand_paths

    fixture = rule.path.parent / test.fixture
    with Store() as store:
        report = Ingestor(store, workers=1, strict=True).run(expand_paths([str(fixture)]))
        if report.failed_strict:
            bad = next(f for f in report.files if f.status in ("rejected", "unrecognized"))
            return TestOutcome(rule.id, test.name, test.kind, False, f"fixture {bad.path}: {bad.first_reject}")
        prepare(store, Settings())
        result = run_rules(store, [rule], {rule.id: dict(test.params)})
    if rule.id in result.errors:
        return TestOutcome(rule.id, test.name, test.kind, False, f"rule error: {result.errors[rule.id]}")
    if rule.id in result.skipped:
        why = result.skipped[rule.id]
        if test.expect.skipped and test.expect.skipped in why:
            return TestOutcome(rule.id, test.name, test.kind, True, f"skipped: {why}")
        # A rule that did not run finds nothing: that must not pass a negative test that expects it to run.
        return TestOutcome(rule.id, test.name, test.kind, False, f"rule did not run: {why}")
    if test.expect.skipped:
        return TestOutcome(rule.id, test.name, test.kind, False,
                           f"expected the rule to be skipped ({test.expect.skipped!r}), but it ran")
    findings = result.findings
    problem = check(findings, test.expect)
    detail = problem or f"{len(findings)} finding(s)" + (
        f", ${sum(f.waste.usd or 0 for f in findings):,.2f} waste" if findings else ""
    )
    return TestOutcome(rule.id, test.name, test.kind, problem is None, detail)


def run_all(rules: list[Rule]) -> list[TestOutcome]:
    return [run_test(rule, test) for rule in rules for test in rule.tests]
