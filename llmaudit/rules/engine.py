"""Run rules against a store and turn their rows into findings.

A rule's SQL returns one row per finding. Columns with these names have a meaning; every other
column is evidence:

    service, feature, model, tenant, window_start, window_end   the scope
    scope_key          an extra part of the fingerprint (e.g. an hour of day)
    waste_tokens, waste_usd, waste_gpu_hours                    waste over the observed window
    waste_usd_per_month  the monthly figure, where the rule computes it itself (a budget's projected overrun)
    example_trace_ids  a list of trace ids
    severity, confidence                                        overrides of the rule's defaults
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from llmaudit.findings.model import Finding, Scope, Waste, severity_rank
from llmaudit.resources import data_dir
from llmaudit.rules.spec import Rule, RuleError, load_rules
from llmaudit.store import SqlRefused, Store

_SCOPE = ("service", "feature", "model", "tenant", "window_start", "window_end")
_SPECIAL = set(_SCOPE) | {"scope_key", "waste_tokens", "waste_usd", "waste_usd_per_month", "waste_gpu_hours",
                          "example_trace_ids", "severity", "confidence"}
MAX_EXAMPLES = 5
DAYS_PER_MONTH = 30.0


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # rule id -> why it did not run
    errors: dict[str, str] = field(default_factory=dict)   # rule id -> SQL error
    window_days: float | None = None


def builtin_rules_dir() -> Path:
    return data_dir("rules")


def all_rules(extra_dirs: list[Path] | None = None) -> list[Rule]:
    return load_rules([builtin_rules_dir(), *(extra_dirs or [])])


def parse_overrides(pairs: list[str], rules: list[Rule]) -> dict[str, dict[str, Any]]:
    """--set LLMA003.max_k=6 pairs into {rule_id: {param: value}}, checked against the rules."""
    by_id = {r.id: r for r in rules}
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        target, sep, value = pair.partition("=")
        rule_id, dot, param = target.partition(".")
        if not sep or not dot:
            raise RuleError(f"--set {pair!r}: expected RULE.param=value, e.g. LLMA003.max_k=6")
        if rule_id not in by_id:
            raise RuleError(f"--set {pair!r}: no rule {rule_id}")
        by_id[rule_id].bound_params({param: value})  # validates name and type
        out.setdefault(rule_id, {})[param] = value
    return out


def observed_window_days(store: Store) -> float | None:
    """Length of the audited window: the spread of trace spans, else of metrics or billing."""
    for sql in (
        "SELECT min(start_time), max(coalesce(end_time, start_time)) FROM spans",
        "SELECT min(time), max(time) FROM metric_samples",
        "SELECT min(charge_period_start), max(charge_period_end) FROM billing",
    ):
        try:
            start, end = store.con.execute(sql).fetchone()
        except Exception:  # noqa: BLE001 - table absent in this store
            continue
        if start is not None and end is not None and end > start:
            return (end - start).total_seconds() / 86400.0
    return None


def as_utc(value):
    """Store times are UTC without a zone; outputs say so (ISO 8601 with Z)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _json_safe(value):
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return value


def fingerprint(rule_id: str, scope: Scope, scope_key: Any) -> str:
    parts = [rule_id, scope.service, scope.feature, scope.model, scope.tenant, scope_key]
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return f"{rule_id}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


class _FormatDict(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def _message(template: str, values: dict) -> str:
    shown = {}
    for k, v in values.items():
        if isinstance(v, float):
            shown[k] = int(v) if v.is_integer() else round(v, 2)
        elif v is None:
            shown[k] = "n/a"
        else:
            shown[k] = v
    try:
        return " ".join(template.format_map(_FormatDict(shown)).split())
    except (ValueError, TypeError, IndexError):
        return " ".join(template.split())


def _tables_ready(store: Store, rule: Rule) -> str | None:
    for table in rule.requires:
        if not store.table_exists(table):
            return f"no {table} in this store"
        if not store.scalar(f'SELECT count(*) > 0 FROM "{table}"'):
            return f"{table} is empty"
    return None


def _skip_reason(store: Store, rule: Rule) -> str | None:
    """What the rule's skip_when says about this store: None to run it, else why not (in the sandbox, like
    the rule's own SQL)."""
    if not rule.skip_when:
        return None
    try:
        _, rows = store.select(rule.skip_when, what=f"rule {rule.id} skip_when ({rule.path})")
    except SqlRefused as exc:
        raise RuleError(str(exc)) from None
    value = rows[0][0] if rows and rows[0] else None
    return None if value is None else str(value)


def run_rule(store: Store, rule: Rule, params: dict[str, Any], window_days: float | None) -> list[Finding]:
    used = {k: v for k, v in params.items() if f"${k}" in rule.sql}
    try:
        # In the sandbox: a rule file can come from a pull request's config, so it reads the store
        # and nothing else, and never writes.
        columns, rows = store.select(rule.sql, used, what=f"rule {rule.id} ({rule.path})")
    except SqlRefused as exc:
        raise RuleError(str(exc)) from None
    findings = []
    for row in rows:
        values = dict(zip(columns, row))
        scope = Scope(**{k: as_utc(values.get(k)) for k in _SCOPE})
        evidence = {k: _json_safe(v) for k, v in values.items() if k not in _SPECIAL}
        raw_usd = values.get("waste_usd")
        raw_usd = None if raw_usd is None or (isinstance(raw_usd, float) and math.isnan(raw_usd)) else float(raw_usd)
        usd = round(raw_usd, 2) if raw_usd is not None else None
        tokens = values.get("waste_tokens")
        gpu_hours = values.get("waste_gpu_hours")
        monthly = values.get("waste_usd_per_month")
        if monthly is not None:  # the rule's own monthly figure (e.g. a month-end projection), not scaled
            per_month, extrapolation = round(float(monthly), 2), "computed by the rule: see its evidence"
        elif window_days and raw_usd is not None:
            per_month = round(raw_usd * DAYS_PER_MONTH / window_days, 2)  # from the unrounded figure
            extrapolation = f"linear: {window_days:.1f} days observed, scaled to {DAYS_PER_MONTH:.0f} days"
        else:
            per_month, extrapolation = None, "not extrapolated: no priced waste or no time window"
        severity = values.get("severity") or rule.severity
        findings.append(
            Finding(
                fingerprint=fingerprint(rule.id, scope, values.get("scope_key")),
                rule_id=rule.id,
                rule_name=rule.name,
                title=rule.title,
                category=rule.category,
                severity=severity,
                confidence=values.get("confidence") or rule.confidence,
                message=_message(rule.message, {**params, **values}),
                scope=scope,
                evidence=evidence,
                example_trace_ids=list(values.get("example_trace_ids") or [])[:MAX_EXAMPLES],
                waste=Waste(
                    tokens=int(tokens) if tokens is not None else None,
                    usd=usd,
                    usd_per_month=per_month,
                    gpu_hours=round(float(gpu_hours), 3) if gpu_hours is not None else None,
                    extrapolation=extrapolation,
                ),
                remediation=rule.remediation.strip(),
            )
        )
    return findings


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Dollar impact first, then severity, then id: the same input always sorts the same way."""
    return sorted(
        findings,
        key=lambda f: (-(f.waste.usd if f.waste.usd is not None else -1.0), -severity_rank(f.severity), f.fingerprint),
    )


def duplicate_fingerprints(findings: list[Finding]) -> str | None:
    """None when every finding has its own fingerprint, else the rule error that says which do not."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.fingerprint] = counts.get(f.fingerprint, 0) + 1
    repeated = sorted(fp for fp, n in counts.items() if n > 1)
    if not repeated:
        return None
    shown = ", ".join(f"{fp} ({counts[fp]} rows)" for fp in repeated[:3]) + (
        f" and {len(repeated) - 3} more" if len(repeated) > 3 else "")
    return (f"duplicate fingerprint: {shown} share service, feature, model, tenant and scope_key; the rule must "
            f"put what distinguishes these rows in scope_key")


def run_rules(store: Store, rules: list[Rule], overrides: dict[str, dict[str, Any]] | None = None,
              only: set[str] | None = None) -> RunResult:
    result = RunResult(window_days=observed_window_days(store))
    with store.sandboxed():
        for rule in rules:
            if only and rule.id not in only:
                continue
            why_not = _tables_ready(store, rule)
            if why_not:
                result.skipped[rule.id] = why_not
                continue
            params = rule.bound_params((overrides or {}).get(rule.id))
            try:
                why_not = _skip_reason(store, rule)
                if why_not:
                    result.skipped[rule.id] = why_not
                    continue
                findings = run_rule(store, rule, params, result.window_days)
            except RuleError:
                raise  # refused by the sandbox: an attempt to leave the store stops the audit
            except Exception as exc:  # noqa: BLE001 - a broken (user) rule must not stop the audit
                result.errors[rule.id] = f"{type(exc).__name__}: {exc}"
                continue
            # Two rows of one rule with one fingerprint would be one finding in baselines and replay:
            # keeping either would hide the other, so the rule's output is an error, not findings.
            # (Rules never share fingerprints: the rule id is part of each.)
            duplicate = duplicate_fingerprints(findings)
            if duplicate:
                result.errors[rule.id] = duplicate
                continue
            result.findings.extend(findings)
    result.findings = sort_findings(result.findings)
    return result
