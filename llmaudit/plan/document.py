"""The plan as one typed, JSON-serialisable document: `llmaudit plan -f json` writes it, `analyze --plan`
puts it in the audit document's extras["plan"], and its JSON Schema is report_templates/plan.schema.json
(`python -m llmaudit.report.schema --write`).

Every figure an input to the plan says where it came from (`Figure.source`): measured by `replay capacity`,
observed in the window's own traces and metrics, taken from the price catalog, stated by the user, or
assumed (model_classes.yaml and the plan's defaults). Every assumed and default figure is also listed in
`assumptions`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from llmaudit import __version__

SCHEMA_VERSION = "1.0"

Source = Literal["measured", "observed", "catalog", "user", "assumed", "default", "derived"]
WorkloadClass = Literal["interactive", "background", "nightly_batch", "scheduled"]


class Figure(BaseModel):
    """A number the plan was built on, and where it came from."""

    value: float | None
    unit: str
    source: Source
    detail: str = Field(description="what exactly: the measurement, the metric, the file entry or the option")


class Assumption(BaseModel):
    """A figure the plan did not measure or observe: assumed (model_classes.yaml, the plan's defaults) or
    stated by the user. Every output lists them."""

    name: str
    value: float | str | None
    unit: str | None = None
    kind: Literal["assumed", "default", "user", "catalog"]
    source: str


class PlanWindow(BaseModel):
    start: datetime | None
    end: datetime | None
    hours: float
    month_factor: float = Field(description="730 hours (a month) / the window's hours: window figures x this = per month")


class PlanSettings(BaseModel):
    slo_ttft_s: float | None
    slo_e2e_s: float | None
    slo_source: str = Field(description="where the latency target came from: the options, a capacity sweep, or the default")
    batch_max_wait_s: float = Field(description="how long a request of a non-interactive workload may wait (a cold start included)")
    headroom: float
    ops_usd_per_month: float
    gpu: str = Field(description="the catalog GPU self-hosting is priced and sized on")
    gpu_hour_usd: float
    gpu_source: str
    self_host_class: str
    hours_per_month: float


# ---------------------------------------------------------------- 1. cost anatomy

class AnatomyPart(BaseModel):
    part: Literal["main_model", "extra_calls", "retrieval_context", "idle_headroom"]
    usd: float
    usd_per_month: float
    share: float | None
    detail: str


class FeatureAnatomy(BaseModel):
    feature: str | None
    requests: int
    llm_calls: int
    calls_per_request: float | None
    usd: float = Field(description="the feature's cost over the window: API calls at their prices, self-hosted GPUs as provisioned")
    usd_per_month: float
    usd_per_request: float | None
    parts: list[AnatomyPart]
    extra_calls_usd: dict[str, float] = Field(description="extra calls by kind (routing, moderation, tool, planning, embedding, retry)")
    unpriced_calls: int


class BatchingHour(BaseModel):
    hour_utc: int
    serving_seconds: float = Field(description="time in this hour of the day in which the server generated tokens")
    tokens_per_s_per_gpu: float | None
    efficiency: float | None


class BatchingEfficiency(BaseModel):
    """E: generated tokens per second per GPU while serving, against the best sustained rate."""

    model: str
    hosts: list[str]
    gpus: int
    reference: Figure = Field(description="the best sustained rate E is measured against")
    class_rate: Figure | None = Field(None, description="the model class's assumed rate on this GPU, for comparison")
    tokens_per_s_per_gpu: float | None = Field(description="achieved while serving, over the window")
    efficiency: float | None
    efficiency_vs_class: float | None
    by_hour: list[BatchingHour]


# ---------------------------------------------------------------- 2. capacity at peak

class PeakLoad(BaseModel):
    busy_hour: datetime | None
    busy_hour_requests_per_s: float | None
    busy_hour_tokens_per_s: float | None = Field(description="prompt + generated tokens per second in the busy hour")
    busy_hour_output_tokens_per_s: float | None
    peak_minute: datetime | None
    peak_minute_requests_per_s: float | None = Field(description="the busiest minute: what replicas are sized for")
    p95_concurrency: float | None = Field(description="requests in flight, 95th percentile over the busy hour (time-weighted)")
    max_concurrency: float | None
    p95_running_metrics: float | None = Field(None, description="vLLM requests running, 95th percentile of the scrapes")


class ServerCapacity(BaseModel):
    model: str
    hosts: list[str]
    gpu: str
    gpus_per_replica: float
    gpu_hour_usd: float
    peak: PeakLoad
    per_replica_rps: Figure
    headroom: float
    replicas_needed: int | None
    replicas_provisioned: int | None
    usd_per_month_needed: float | None
    usd_per_month_provisioned: float | None
    usd_per_month_saved: float | None
    notes: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- 3. API vs self-host

class ApiSide(BaseModel):
    model: str
    basis: str = Field(description="what prices: the calls' own list prices (cached input at the cached rate), a batch rate, "
                       "or the API price of the self-hosted model")
    usd_per_month: float | None
    usd_per_request: float | None


class SelfHostSide(BaseModel):
    model_class: str
    gpu: str
    per_replica_rps: Figure
    warm_floor: int
    replicas_at_peak: int
    gpu_hours_per_month: float
    gpu_usd_per_month: float
    ops_usd_per_month: float
    usd_per_month: float


class BreakEven(BaseModel):
    feature: str | None
    model: str
    provider: str | None
    self_hosted_today: bool
    workload_class: WorkloadClass
    requests_per_day: float
    tokens_per_day: float
    mean_input_tokens: float
    mean_output_tokens: float
    today_usd_per_month: float | None = Field(description="what it costs today (API calls; self-hosted: the GPUs as provisioned)")
    api: ApiSide | None
    self_host: SelfHostSide | None
    side: Literal["api", "self_host", "unknown"]
    breakeven_multiple: float | None = Field(description="x today's volume at which the two cost the same (None: never)")
    breakeven_requests_per_day: float | None
    breakeven_tokens_per_day: float | None
    why: str = Field(description="the figures that put the feature on its side")


# ---------------------------------------------------------------- 4. scale-to-zero

class WorkloadFit(BaseModel):
    feature: str | None
    model: str | None
    self_hosted: bool
    workload_class: WorkloadClass
    evidence: str
    active_hours_utc: list[int]
    min_replicas: int
    scale_to_zero: bool
    cold_start: Figure
    runs: int | None = Field(None, description="cold starts over the window: separate runs of the workload")
    cold_start_gpu_hours: float | None = None
    gpu_hours_provisioned: float | None = None
    gpu_hours_needed: float | None = None
    gpu_hours_saved_per_month: float | None = None
    usd_saved_per_month: float | None = None
    note: str | None = None


# ---------------------------------------------------------------- 5. autoscaler backtest

class PolicyResult(BaseModel):
    policy: str
    signal: Literal["provisioned", "queue_depth", "tokens_per_s", "gpu_utilization", "requests_per_s"]
    target: float | None
    target_unit: str | None
    warm_floor: int
    cold_start_min: int
    gpu_hours: float
    usd: float
    usd_per_month: float
    slo_minutes: int = Field(description="minutes in which requests were queued past the SLO")
    max_replicas: int
    meets_slo: bool
    recommended: bool = False


class ServerBacktest(BaseModel):
    model: str
    hosts: list[str]
    minutes: int
    arrivals: str = Field(description="where the arrivals per minute came from")
    requests: int
    per_replica_rps: Figure
    service_s: Figure
    slo_s: float
    slo_rule: str
    scale_down_after_min: int
    today: PolicyResult
    policies: list[PolicyResult]
    recommended: str | None
    recommendation: str
    current_scaling: str


# ---------------------------------------------------------------- 6. cost vs latency target

class CurvePoint(BaseModel):
    target_s: float
    per_replica_rps: float | None
    replicas: int | None
    usd_per_month: float | None
    usd_per_month_for_100ms_less: float | None = Field(description="what tightening the target by 100 ms adds per month")


class LatencyCurve(BaseModel):
    capacity_id: str
    model: str | None
    served_model: str | None
    metric: Literal["ttft", "e2e"]
    quantile: float
    peak_requests_per_s: float | None
    gpu: str
    gpu_hour_usd: float
    gpus_per_replica: float
    points: list[CurvePoint]


class PlanDocument(BaseModel):
    schema_version: str = SCHEMA_VERSION
    tool: dict[str, str] = Field(default_factory=lambda: {"name": "llmaudit", "version": __version__})
    window: PlanWindow
    settings: PlanSettings
    anatomy: list[FeatureAnatomy] = Field(default_factory=list)
    batching: list[BatchingEfficiency] = Field(default_factory=list)
    capacity: list[ServerCapacity] = Field(default_factory=list)
    breakeven: list[BreakEven] = Field(default_factory=list)
    scale_to_zero: list[WorkloadFit] = Field(default_factory=list)
    backtest: list[ServerBacktest] = Field(default_factory=list)
    latency_curves: list[LatencyCurve] = Field(default_factory=list)
    assumptions: list[Assumption] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="what could not be computed, and why")
