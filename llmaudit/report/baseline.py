"""Week over week: compare this run's audit document with a baseline (last run's JSON output).

Findings are matched by fingerprint (rule + scope, stable across runs): a fingerprint only in this run
is *new*, one only in the baseline is *resolved*, one in both is *unchanged* (its waste may still have
moved, so every match carries the deltas). Spend and waste are also compared per feature, because
"what got more expensive" is the question a weekly job is asked even when no finding changed.

    base = load_baseline("last.json")           # BaselineError naming the file on any problem
    cmp = compare(doc, base, "last.json")
    doc.extras["baseline"] = cmp.model_dump(mode="json")
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, Field, ValidationError

from llmaudit.findings.model import Finding, Scope, Severity, severity_rank
from llmaudit.report.document import SCHEMA_VERSION, AuditDocument, Window
from llmaudit.report.spend_change import SpendChanges, spend_changes


class BaselineError(Exception):
    """A baseline file that cannot be used; the message names the file and says what to do."""


class Delta(BaseModel):
    """One number now and in the baseline; change = current - baseline when both are known."""

    current: float | None = None
    baseline: float | None = None
    change: float | None = None


def delta(current: float | None, baseline: float | None, digits: int = 4) -> Delta:
    # Rounded so float noise (0.1 + 0.2) never shows up as a change, and output stays byte-stable.
    cur = None if current is None else round(float(current), digits)
    base = None if baseline is None else round(float(baseline), digits)
    change = None if cur is None or base is None else round(cur - base, digits)
    return Delta(current=cur, baseline=base, change=change)


class FindingChange(BaseModel):
    fingerprint: str
    status: Literal["new", "resolved", "unchanged"]
    rule_id: str
    rule_name: str
    title: str
    severity: Severity = Field(description="this run's severity (the baseline's for a resolved finding)")
    baseline_severity: Severity | None = Field(None, description="the baseline's severity (None for a new finding)")
    scope: Scope
    message: str
    waste_tokens: Delta
    waste_usd: Delta
    waste_usd_per_month: Delta


class FeatureChange(BaseModel):
    key: str | None
    presence: Literal["both", "new", "gone"] = Field(description="new: no traffic in the baseline; gone: none now")
    requests: Delta
    llm_calls: Delta
    tokens: Delta = Field(description="input + output tokens")
    spend_usd: Delta
    waste_usd_per_month: Delta = Field(description="sum of the feature's findings (they can overlap)")


class BaselineInfo(BaseModel):
    path: str
    sha256: str
    schema_version: str
    tool_version: str | None
    window: Window
    same_inputs: bool = Field(description="the baseline was computed from exactly the same input files (by content)")


class Counts(BaseModel):
    new: int
    resolved: int
    unchanged: int


class Comparison(BaseModel):
    baseline: BaselineInfo
    counts: Counts
    totals: dict[str, Delta] = Field(description="headline numbers now vs the baseline")
    new: list[FindingChange]
    resolved: list[FindingChange]
    unchanged: list[FindingChange]
    by_feature: list[FeatureChange]
    spend_change: SpendChanges | None = Field(None, description=(
        "why each feature's spend changed: waste, volume, mix, tokens per request and price, summing to the change"))

    def new_at_or_above(self, severity: str | None = None) -> list[FindingChange]:
        """New findings, optionally only those at or above a severity (for a stricter CI gate)."""
        if severity is None:
            return list(self.new)
        return [c for c in self.new if severity_rank(c.severity) >= severity_rank(severity)]

    def summary_line(self) -> str:
        c = self.counts
        return f"vs baseline {self.baseline.path}: {c.new} new, {c.resolved} resolved, {c.unchanged} unchanged"


def comparison_of(doc: AuditDocument) -> Comparison | None:
    """The comparison stored in a document's extras (a dict once loaded from JSON), if any."""
    raw = doc.extras.get("baseline")
    if raw is None:
        return None
    return raw if isinstance(raw, Comparison) else Comparison.model_validate(raw)


def _major(version: str) -> str:
    return str(version).split(".", 1)[0]


def load_baseline(path: str | Path) -> tuple[AuditDocument, str]:
    """Read and validate a baseline document; returns it with the file's sha256."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read the baseline file: {exc.strerror or exc}") from exc
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BaselineError(f"{path}: the baseline is not valid JSON ({exc}); pass the file written by `llmaudit analyze --json`") from exc
    if not isinstance(raw, dict) or "schema_version" not in raw or "findings" not in raw:
        raise BaselineError(
            f"{path}: not an llmaudit JSON report (no schema_version/findings); pass the file written by `llmaudit analyze --json`"
        )
    version = str(raw["schema_version"])
    if _major(version) != _major(SCHEMA_VERSION):
        raise BaselineError(
            f"{path}: baseline has report schema version {version}, this llmaudit writes {SCHEMA_VERSION}; "
            "regenerate the baseline with this version (or run once without --baseline)"
        )
    try:
        doc = AuditDocument.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()[:3]
        )
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise BaselineError(f"{path}: not a valid llmaudit report: {problems}{more}") from exc
    return doc, hashlib.sha256(data).hexdigest()


def _redaction_id(doc: AuditDocument) -> str | None:
    info = doc.extras.get("redaction")
    if isinstance(info, dict):
        return info.get("salt_id")
    return getattr(info, "salt_id", None)


def _change(f: Finding, status: str, other: Finding | None) -> FindingChange:
    """status new/unchanged: f is this run's finding, other the baseline's; resolved: f is the baseline's."""
    cur, base = (None, f) if status == "resolved" else (f, other)
    return FindingChange(
        fingerprint=f.fingerprint,
        status=status,
        rule_id=f.rule_id,
        rule_name=f.rule_name,
        title=f.title,
        severity=f.severity,
        baseline_severity=base.severity if base else None,
        scope=f.scope,
        message=f.message,
        waste_tokens=delta(cur.waste.tokens if cur else None, base.waste.tokens if base else None, 0),
        waste_usd=delta(cur.waste.usd if cur else None, base.waste.usd if base else None),
        waste_usd_per_month=delta(cur.waste.usd_per_month if cur else None, base.waste.usd_per_month if base else None),
    )


def _money(c: FindingChange) -> float:
    for d in (c.waste_usd_per_month, c.waste_usd):
        for v in (d.current, d.baseline):
            if v is not None:
                return v
    return -1.0


def _waste_by_feature(doc: AuditDocument) -> dict[str | None, float]:
    out: dict[str | None, float] = {}
    for f in doc.findings:
        if f.waste.usd_per_month is not None:
            out[f.scope.feature] = out.get(f.scope.feature, 0.0) + f.waste.usd_per_month
    return out


def compare(doc: AuditDocument, base: AuditDocument, baseline_path: str | Path, baseline_sha256: str = "") -> Comparison:
    if _redaction_id(doc) != _redaction_id(base):
        how = lambda d: f"redacted (salt id {_redaction_id(d)})" if _redaction_id(d) else "not redacted"  # noqa: E731
        raise BaselineError(
            f"{baseline_path}: the baseline is {how(base)} but this run is {how(doc)}; fingerprints and tenant "
            "names would not match. Use the same --redact setting and LLMAUDIT_REDACT_SALT for both runs"
        )
    now = {f.fingerprint: f for f in doc.findings}
    before = {f.fingerprint: f for f in base.findings}
    new = [_change(f, "new", None) for fp, f in now.items() if fp not in before]
    resolved = [_change(f, "resolved", None) for fp, f in before.items() if fp not in now]
    unchanged = [_change(f, "unchanged", before[fp]) for fp, f in now.items() if fp in before]
    # Biggest money first; the fingerprint breaks ties so the order never depends on dict order.
    new.sort(key=lambda c: (-_money(c), -severity_rank(c.severity), c.fingerprint))
    resolved.sort(key=lambda c: (-_money(c), -severity_rank(c.severity), c.fingerprint))
    unchanged.sort(key=lambda c: (-abs(c.waste_usd_per_month.change or 0.0), -_money(c), c.fingerprint))

    t, b = doc.totals, base.totals
    totals = {
        "spend_usd": delta(t.spend_usd, b.spend_usd),
        "estimated_waste_usd": delta(t.estimated_waste_usd, b.estimated_waste_usd),
        "estimated_waste_usd_per_month": delta(t.estimated_waste_usd_per_month, b.estimated_waste_usd_per_month),
        "findings": delta(t.findings, b.findings, 0),
        "requests": delta(t.requests, b.requests, 0),
        "llm_calls": delta(t.llm_calls, b.llm_calls, 0),
        "input_tokens": delta(t.input_tokens, b.input_tokens, 0),
        "output_tokens": delta(t.output_tokens, b.output_tokens, 0),
        "unpriced_calls": delta(t.unpriced_calls, b.unpriced_calls, 0),
    }

    rows_now = {r.key: r for r in doc.breakdowns.get("feature", [])}
    rows_before = {r.key: r for r in base.breakdowns.get("feature", [])}
    waste_now, waste_before = _waste_by_feature(doc), _waste_by_feature(base)
    features = []
    for key in {*rows_now, *rows_before, *waste_now, *waste_before}:
        n, p = rows_now.get(key), rows_before.get(key)
        has_now, had = n is not None or key in waste_now, p is not None or key in waste_before
        features.append(
            FeatureChange(
                key=key,
                presence="both" if has_now and had else ("new" if has_now else "gone"),
                requests=delta(n.requests if n else 0, p.requests if p else 0, 0),
                llm_calls=delta(n.llm_calls if n else 0, p.llm_calls if p else 0, 0),
                tokens=delta(n.input_tokens + n.output_tokens if n else 0, p.input_tokens + p.output_tokens if p else 0, 0),
                spend_usd=delta(n.spend_usd if n else 0.0, p.spend_usd if p else 0.0),
                waste_usd_per_month=delta(waste_now.get(key, 0.0), waste_before.get(key, 0.0)),
            )
        )

    def feature_order(fc: FeatureChange):
        money = abs(fc.spend_usd.change or 0.0) + abs(fc.waste_usd_per_month.change or 0.0)
        return (-money, -abs(fc.tokens.change or 0.0), fc.key is None, fc.key or "")

    features.sort(key=feature_order)

    return Comparison(
        baseline=BaselineInfo(
            path=str(baseline_path),
            sha256=baseline_sha256,
            schema_version=base.schema_version,
            tool_version=base.tool.get("version"),
            window=base.window,
            same_inputs=bool(doc.inputs) and sorted(i.sha256 for i in doc.inputs) == sorted(i.sha256 for i in base.inputs),
        ),
        counts=Counts(new=len(new), resolved=len(resolved), unchanged=len(unchanged)),
        totals=totals,
        new=new,
        resolved=resolved,
        unchanged=unchanged,
        by_feature=features,
        spend_change=spend_changes(doc, base, doc.token_creep_threshold),
    )


def compare_with_file(doc: AuditDocument, baseline_path: str | Path) -> Comparison:
    base, sha = load_baseline(baseline_path)
    return compare(doc, base, baseline_path, sha)
