"""The library entry points behind the CLI: prepare a store, audit it.

    from llmaudit.audit import audit
    with Store("week.duckdb") as store:
        result = audit(store)
        for finding in result.findings: ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmaudit.config import Settings
from llmaudit.normalize.derive import derive, ensure_derived
from llmaudit.rules.engine import RunResult, all_rules, run_rules
from llmaudit.rules.spec import RuleError
from llmaudit.store import Store

BUDGET_RULE = "LLMA017"  # the rule that reads [llmaudit.budgets]


def prepare(store: Store, settings: Settings, *, force: bool = True) -> None:
    """Derived tables and prices, up to date with what was ingested."""
    if force:
        derive(store, settings)
    else:
        ensure_derived(store, settings)


def check_params(settings: Settings, rules) -> None:
    """Parameter overrides from the config file name existing rules and parameters of the right type
    (as --set does): a typo must not silently leave a default in force."""
    by_id = {r.id: r for r in rules}
    where = settings.source or "config"
    for rule_id, params in settings.params.items():
        if rule_id not in by_id:
            raise RuleError(f"{where}: [llmaudit.params.{rule_id}]: no rule {rule_id}")
        try:
            by_id[rule_id].bound_params(params)
        except RuleError as exc:
            raise RuleError(f"{where}: [llmaudit.params.{rule_id}]: {exc}") from exc


def audit(store: Store, settings: Settings | None = None, *, overrides: dict[str, dict[str, Any]] | None = None,
          extra_rule_dirs: list[Path] | None = None) -> RunResult:
    settings = settings or Settings()
    prepare(store, settings, force=False)
    rules = all_rules([*settings.rules, *(extra_rule_dirs or [])])
    check_params(settings, rules)
    merged = {k: dict(v) for k, v in settings.params.items()}
    if settings.budgets and BUDGET_RULE in {r.id for r in rules}:
        # The config's budgets reach the budget rule as one bound parameter (JSON rows its SQL unnests).
        merged.setdefault(BUDGET_RULE, {})["budgets"] = json.dumps(settings.budget_rows())
    for rule_id, params in (overrides or {}).items():
        merged.setdefault(rule_id, {}).update(params)
    result = run_rules(store, rules, merged)
    from llmaudit.replay.savings import attach_measured

    attach_measured(store, result.findings)  # measured beside estimated, where a replay ran
    return result
