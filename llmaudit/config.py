"""User settings: llmaudit.toml, or [tool.llmaudit] in pyproject.toml, in the working directory.

    [llmaudit]                      # or [tool.llmaudit] in pyproject.toml
    feature_keys = ["app.feature", "http.route"]
    tenant_keys = ["tenant.id"]
    rules = ["./my_rules"]
    prices = "./prices.yaml"

    [llmaudit.params.LLMA003]
    max_k = 6

    [llmaudit.budgets.feature]      # monthly budgets (USD) per feature, tenant or model (rule LLMA017)
    support-chat = 300
    agent = { usd = 500, tokens = 200_000_000 }
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Where a request's feature and tenant are read from: the root span first, then the rest of the
# trace, keys in this order. service.name comes last so every request has some feature.
DEFAULT_FEATURE_KEYS = [
    "llmaudit.feature",
    "app.feature",
    "feature",
    "http.route",
    "url.template",
    "traceloop.workflow.name",
    "gen_ai.agent.name",
    "service.name",
]
DEFAULT_TENANT_KEYS = [
    "llmaudit.tenant",
    "tenant.id",
    "tenant",
    "app.tenant.id",
    "customer.id",
    "organization.id",
    "org.id",
]


class ConfigError(Exception):
    pass


BudgetScope = Literal["feature", "tenant", "model"]


class BudgetLimit(BaseModel):
    """A monthly budget: dollars, tokens (input + output), or both."""

    model_config = ConfigDict(extra="forbid")

    usd: float | None = Field(None, gt=0)
    tokens: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _some_limit(self):
        if self.usd is None and self.tokens is None:
            raise ValueError("a budget needs usd, tokens or both")
        return self


def _budget(value: Any) -> Any:
    return {"usd": value} if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_FEATURE_KEYS))
    tenant_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_TENANT_KEYS))
    rules: list[Path] = Field(default_factory=list, description="extra rule folders")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="rule parameter overrides")
    prices: Path | None = Field(default=None, description="a price catalog file overriding the bundled one")
    accelerator: str | None = Field(default=None, description="price self-hosted GPU time as this GPU (e.g. H100) "
                                    "instead of the GPU model named in the metrics")
    budgets: dict[BudgetScope, dict[str, BudgetLimit]] = Field(
        default_factory=dict, description="monthly budgets: [llmaudit.budgets.feature] name = USD, or {usd, tokens}")
    source: str | None = Field(default=None, exclude=True)

    @field_validator("budgets", mode="before")
    @classmethod
    def _plain_numbers(cls, value: Any) -> Any:
        # `name = 300` is short for `name = { usd = 300 }`
        if isinstance(value, dict):
            return {scope: {k: _budget(v) for k, v in items.items()} if isinstance(items, dict) else items
                    for scope, items in value.items()}
        return value

    def budget_rows(self) -> list[dict]:
        """The budgets as rows for rule LLMA017's `budgets` parameter, in a fixed order."""
        return [{"scope": scope, "key": key, "usd": limit.usd, "tokens": limit.tokens}
                for scope in sorted(self.budgets) for key, limit in sorted(self.budgets[scope].items())]


def load_settings(path: str | Path | None = None, cwd: Path | None = None) -> Settings:
    """Settings from an explicit file, else llmaudit.toml, else pyproject.toml, else defaults."""
    cwd = cwd or Path.cwd()
    candidates = [Path(path)] if path else [cwd / "llmaudit.toml", cwd / "pyproject.toml"]
    for candidate in candidates:
        if not candidate.is_file():
            if path:
                raise ConfigError(f"{candidate}: no such config file")
            continue
        try:
            doc = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{candidate}: not valid TOML: {exc}") from exc
        section = doc.get("tool", {}).get("llmaudit") if candidate.name == "pyproject.toml" else doc.get("llmaudit", doc)
        if section is None:
            continue
        try:
            settings = Settings.model_validate(section)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{candidate}: {where}: {first['msg']}") from exc
        base = candidate.parent
        settings.rules = [p if p.is_absolute() else base / p for p in settings.rules]
        if settings.prices and not settings.prices.is_absolute():
            settings.prices = base / settings.prices
        settings.source = str(candidate)
        return settings
    return Settings()
