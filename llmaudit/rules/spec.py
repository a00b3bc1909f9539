"""The rule file format: one YAML file per rule, validated at load with errors naming file and field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from llmaudit.findings.model import Category, Severity
from llmaudit.store import SqlRefused, check_select
from llmaudit.yamlfile import load_yaml


class RuleError(Exception):
    pass


_SEVERITY_COLUMN = re.compile(r"\bAS\s+\"?severity\"?(?![A-Za-z0-9_])", re.IGNORECASE)


class Param(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: bool | int | float | str
    doc: str = Field(min_length=3)


class Expect(BaseModel):
    """What a fixture must produce. `where` matches scope fields and evidence keys of some finding."""

    model_config = ConfigDict(extra="forbid")

    findings: int | None = Field(None, ge=0, description="exact number of findings")
    min_findings: int | None = Field(None, ge=0)
    where: dict[str, Any] = Field(default_factory=dict)
    min_waste_usd: float | None = None
    max_waste_usd: float | None = None
    skipped: str | None = Field(None, min_length=3, description="the rule does not run (skip_when): its reason says this")


class RuleTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["positive", "negative"]
    fixture: str = Field(description="folder or file, relative to the rule file")
    params: dict[str, bool | int | float | str] = Field(default_factory=dict)
    expect: Expect


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Z]{2,8}[0-9]{3}$")
    name: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    title: str
    category: Category
    severity: Severity
    severity_when: str | None = Field(
        None, min_length=10,
        description="when a finding's severity differs from `severity` (the sql returns a severity column): "
                    "a short sentence, e.g. 'high when at least half the calls are retries'")
    confidence: Literal["low", "medium", "high"] = "medium"
    summary: str = Field(min_length=40, description="why this costs money: one paragraph")
    saving: str = Field(min_length=20, description="how the waste figure is computed")
    remediation: str = Field(min_length=20)
    references: list[str] = Field(default_factory=list)
    requires: list[str] = Field(default_factory=lambda: ["llm_calls"], description="tables that must hold rows")
    skip_when: str | None = Field(
        None, description="one SELECT of one value: NULL (or no row) to run the rule, else the reason it does not "
                          "(e.g. a rule that measures between scrapes, on a store holding one scrape)")
    params: dict[str, Param] = Field(default_factory=dict)
    message: str = Field(description="one-line summary of a finding; {column} and {param} placeholders")
    sql: str
    tests: list[RuleTest] = Field(min_length=2)
    path: Path | None = Field(None, exclude=True)

    @field_validator("sql")
    @classmethod
    def _one_select(cls, sql: str) -> str:
        try:
            check_select(sql, "sql")
        except SqlRefused as exc:
            raise ValueError(str(exc).removeprefix("sql: ")) from None
        return sql

    @field_validator("skip_when")
    @classmethod
    def _one_select_skip(cls, sql: str | None) -> str | None:
        if sql is not None:
            try:
                check_select(sql, "skip_when")
            except SqlRefused as exc:
                raise ValueError(str(exc).removeprefix("skip_when: ")) from None
        return sql

    @model_validator(mode="after")
    def _checks(self):
        kinds = {t.kind for t in self.tests}
        if kinds != {"positive", "negative"}:
            raise ValueError("tests need at least one positive and one negative fixture")
        for t in self.tests:
            if t.expect.skipped and (t.kind != "negative" or not self.skip_when):
                raise ValueError(f"test {t.name!r} expects the rule to be skipped: only a negative test of a rule "
                                 "with skip_when can")
        used = set(re.findall(r"\$([a-z_][a-z0-9_]*)", self.sql))
        missing = used - set(self.params)
        if missing:
            raise ValueError(f"sql uses undeclared parameter(s): {', '.join(sorted(missing))}")
        # A severity the SQL raises or lowers by a condition must be documented, or `rules list` and
        # `rules show` would state the default as if it were the only one.
        returns_severity = _SEVERITY_COLUMN.search(self.sql) is not None
        if returns_severity and not self.severity_when:
            raise ValueError("sql returns a severity column: say when it applies in severity_when "
                             "(e.g. 'high when ...')")
        if self.severity_when and not returns_severity:
            raise ValueError("severity_when is set but the sql returns no severity column")
        return self

    def severity_text(self) -> str:
        """The default severity, and when a finding gets another: 'medium; high when ...'."""
        return f"{self.severity}; {self.severity_when}" if self.severity_when else self.severity

    def bound_params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        values = {k: p.default for k, p in self.params.items()}
        for key, value in (overrides or {}).items():
            if key not in self.params:
                raise RuleError(f"{self.id} has no parameter {key!r} (it has: {', '.join(self.params) or 'none'})")
            values[key] = coerce(value, self.params[key].default, f"{self.id}.{key}")
        return values


def coerce(value: Any, like: Any, what: str):
    """A command-line/config value converted to the type of the parameter's default."""
    if not isinstance(value, str) or isinstance(like, str):
        return value
    try:
        if isinstance(like, bool):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if isinstance(like, int):
            return int(value)
        if isinstance(like, float):
            return float(value)
    except ValueError:
        raise RuleError(f"{what}: {value!r} is not a {type(like).__name__}") from None
    return value


def load_rule_file(path: Path) -> Rule:
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise RuleError(f"{path}: a rule file must be a mapping")
    try:
        rule = Rule.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(rule)'}: {e['msg']}" for e in exc.errors()
        )
        raise RuleError(f"{path}: {problems}") from exc
    rule.path = path
    return rule


def load_rules(folders: list[Path]) -> list[Rule]:
    """Rules from each folder (*.yaml, not recursive), in id order; a repeated id is an error."""
    rules: dict[str, Rule] = {}
    for folder in folders:
        if not folder.is_dir():
            raise RuleError(f"{folder}: rule folder not found")
        for path in sorted(folder.glob("*.y*ml")):
            rule = load_rule_file(path)
            if rule.id in rules:
                raise RuleError(f"{path}: rule id {rule.id} is already defined in {rules[rule.id].path}")
            rules[rule.id] = rule
    return [rules[k] for k in sorted(rules)]
