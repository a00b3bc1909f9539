"""Findings: what a rule found, in a shape every report and the replay can rely on."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Categories whose dollars are not waste: spend to investigate, or spend past a budget.
NOT_WASTE = ("cost_reconciliation", "budget")
SEVERITIES = ("info", "low", "medium", "high", "critical")
Severity = Literal["info", "low", "medium", "high", "critical"]
CATEGORIES = (
    "fan_out",
    "oversized_top_k",
    "retry_storm",
    "padding_waste",
    "idle_capacity",
    "cache_opportunity",
    "model_routing",
    "prompt_bloat",
    "cost_reconciliation",
    "service_tier",
    "budget",
)
Category = Literal[
    "fan_out",
    "oversized_top_k",
    "retry_storm",
    "padding_waste",
    "idle_capacity",
    "cache_opportunity",
    "model_routing",
    "prompt_bloat",
    "cost_reconciliation",
    "service_tier",
    "budget",
]


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str | None = None
    feature: str | None = None
    model: str | None = None
    tenant: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None


class Waste(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: int | None = Field(None, description="tokens wasted over the observed window")
    usd: float | None = Field(None, description="dollars wasted over the observed window; None if unpriced")
    usd_per_month: float | None = Field(None, description="usd extrapolated to 30 days")
    gpu_hours: float | None = None
    extrapolation: str = Field("", description="how the monthly figure was obtained")


CostBasis = Literal["api_tokens", "gpu_time"]
BASIS_LABEL = {"api_tokens": "API tokens", "gpu_time": "GPU time"}  # how reports name a cost basis


class MeasuredSaving(BaseModel):
    """Filled in by replay: what a before/after run measured. Only a replay whose runs all succeeded
    (at --min-success) and whose token counts the server confirmed is a measurement."""

    basis: CostBasis = Field("gpu_time", description=(
        "what usd_per_month prices: api_tokens = the server-measured token reduction at the finding's own API "
        "prices (as its estimate); gpu_time = the measured GPU time at the GPU-hour price (self-hosted models)"))
    usd_per_month: float | None = Field(None, description="the measured saving per month, on `basis`")
    usd_per_month_spread: float | None = Field(None, description="standard deviation across repeats, same basis")
    gpu_seconds_saved_per_request: float | None = None
    gpu_usd_per_month: float | None = Field(None, description=(
        "the GPU-time saving per month at the GPU-hour price: for api_tokens, what the fix would save if the model "
        "were self-hosted on that GPU (not comparable with the estimate)"))
    gpu: str | None = Field(None, description="the GPU whose hour price gpu_usd_per_month uses")
    tokens_saved_per_request: dict[str, float | None] = Field(default_factory=dict, description=(
        "server-measured prompt, cached prompt and completion tokens saved per baseline request"))
    runs: int = 0
    detail: dict[str, Any] = Field(default_factory=dict)


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprint: str = Field(description="stable id: the same problem in the same scope gets it again next week")
    rule_id: str
    rule_name: str
    title: str
    category: Category
    severity: Severity
    confidence: Literal["low", "medium", "high"]
    message: str = Field(description="one line: what was found, with its key numbers")
    scope: Scope
    evidence: dict[str, Any] = Field(description="the numbers that prove it")
    example_trace_ids: list[str] = Field(default_factory=list)
    waste: Waste
    remediation: str
    measured: MeasuredSaving | None = None
