"""CI gates beyond a severity: budgets, and growth thresholds against a baseline.

`--fail-on-budget` trips on any budget finding (category `budget`, rule LLMA017). With `--min-change-usd`
and/or `--min-change-pct`, `--fail-on SEV` and `--fail-on-new` trip only on what grew by more than both
given thresholds since the baseline: a finding's monthly waste (a new finding grows from 0, an infinite
percentage), or a feature's spend (the per-feature comparison). Without thresholds the gates are as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmaudit.findings.model import severity_rank
from llmaudit.report.baseline import Comparison, Delta


@dataclass(frozen=True)
class Thresholds:
    usd: float | None = None
    pct: float | None = None

    @property
    def given(self) -> bool:
        return self.usd is not None or self.pct is not None

    def passed(self, d: Delta) -> bool:
        """The quantity grew by more than every given threshold (a baseline of 0 is infinite growth)."""
        cur, base = d.current or 0.0, d.baseline or 0.0
        grown = cur - base
        if grown <= 0:
            return False
        if self.usd is not None and grown <= self.usd:
            return False
        if self.pct is not None and base > 0 and 100.0 * grown / base <= self.pct:
            return False
        return True


def _waste(change) -> Delta:
    per_month = change.waste_usd_per_month
    return per_month if per_month.current is not None or per_month.baseline is not None else change.waste_usd


def budget_gate(doc) -> list[str]:
    """Why --fail-on-budget trips (empty: it does not)."""
    return [f"over budget: {f.message}" for f in doc.findings if f.category == "budget"]


def change_gate(comparison: Comparison, thresholds: Thresholds, *, fail_on: str | None, fail_on_new: bool) -> list[str]:
    """Why --fail-on / --fail-on-new trip under growth thresholds (empty: they do not)."""
    reasons = []
    for change in [*comparison.new, *comparison.unchanged]:
        if not thresholds.passed(_waste(change)):
            continue
        d = _waste(change)
        what = f"{change.fingerprint} ({change.rule_id}, {change.severity}): waste ${d.baseline or 0:,.2f} -> ${d.current or 0:,.2f}"
        if fail_on_new and change.status == "new":
            reasons.append(f"new finding past the thresholds: {what}")
        elif fail_on and severity_rank(change.severity) >= severity_rank(fail_on):
            reasons.append(f"finding at or above {fail_on} grew past the thresholds: {what}")
    if fail_on or fail_on_new:
        for fc in comparison.by_feature:
            if thresholds.passed(fc.spend_usd):
                reasons.append(f"feature {fc.key or '(untagged)'}: spend ${fc.spend_usd.baseline or 0:,.2f} -> "
                               f"${fc.spend_usd.current or 0:,.2f}, past the thresholds")
    return reasons
