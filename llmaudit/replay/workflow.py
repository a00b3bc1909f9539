"""A replay as one library call: find the finding, build its workloads, check the server, run both
variants, decide whether that is a measurement, price it on the finding's cost basis, and store it.

    from llmaudit.replay.workflow import ReplayOptions, replay_finding
    outcome = replay_finding("audit.duckdb", "LLMA003", ReplayOptions(endpoint="http://127.0.0.1:8000", repeats=3))
    outcome.status      # measured | not_measured | interrupted
    outcome.measured    # MeasuredSaving on the finding's own basis, or None (outcome.not_measured says why)

`llmaudit replay` only turns its options into ReplayOptions and prints the outcome. The outcome's JSON
Schema is report_templates/replay.schema.json (`python -m llmaudit.report.schema --write`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from llmaudit.config import Settings
from llmaudit.findings.model import Finding, MeasuredSaving
from llmaudit.replay.preflight import FitMode, PreflightError, ServerInfo, check_server, fit_context
from llmaudit.replay.run import RunRecord
from llmaudit.replay.workload import Workload
from llmaudit.store import Store

SCHEMA_VERSION = "1.0"
DEFAULT_MIN_SUCCESS = 0.95
EventHandler = Callable[[str, dict[str, Any]], Any]


class ReplayError(Exception):
    """The replay cannot start (no such finding, nothing to replay, server unreachable or too small, bad
    price choice). Nothing was sent and nothing stored; the message says what to change."""


class ReplayOptions(BaseModel):
    endpoint: str
    model: str | None = Field(None, description="served model name (default: the first /v1/models lists)")
    speedup: float | None = None
    rate: float | None = None
    duration: float | None = None
    max_span_s: float | None = Field(None, description="without speedup/rate/duration, compress a longer recorded span to this")
    repeats: int = Field(1, ge=1)
    slo_ttft_s: float | None = None
    slo_e2e_s: float | None = None
    warmup: int = Field(8, ge=0)
    timeout_s: float = 300.0
    seed: str | None = None
    gpus_per_server: float = Field(1.0, gt=0)
    accelerator: str | None = Field(None, description="the GPU whose catalog hour price GPU time is priced at (default H100)")
    gpu_hour_usd: float | None = None
    token_low: int = 10
    token_high: int = 2000
    min_success: float = Field(DEFAULT_MIN_SUCCESS, gt=0, le=1, description="share of each run's requests that must succeed")
    fit_context: FitMode | None = Field(None, description="what to do with requests longer than the server's context")
    max_requests: int = Field(2000, ge=1)


class WorkloadSummary(BaseModel):
    label: str
    name: str
    requests: int
    input_tokens: int
    output_tokens: int
    prefix_groups: int
    span_s: float
    transformation: str | None = None

    @classmethod
    def of(cls, label: str, wl: Workload) -> "WorkloadSummary":
        return cls(label=label, name=wl.header.name, requests=len(wl.requests), input_tokens=wl.input_tokens,
                   output_tokens=wl.output_tokens, prefix_groups=len({r.prefix_group for r in wl.requests if r.prefix_group}),
                   span_s=round(wl.span_s, 6), transformation=wl.header.transformation)


class ReplayOutcome(BaseModel):
    """What a replay did and whether it measured a saving. `llmaudit replay --json` writes this."""

    schema_version: str = SCHEMA_VERSION
    replay_id: str | None = None
    status: Literal["measured", "not_measured", "interrupted", "runs_only"] = Field(description=(
        "measured: a saving was measured; not_measured: a baseline/remediated comparison that is not a measurement "
        "(see not_measured); interrupted: stopped by Ctrl-C; runs_only: workloads that are not a baseline and its "
        "twin, run and measured one by one"))
    not_measured: list[str] = Field(default_factory=list, description="why this replay is not a measurement, or what "
                                    "failed in a runs_only replay")
    finding: Finding | None = None
    server: ServerInfo
    workloads: list[WorkloadSummary]
    config: dict[str, Any]
    runs: list[RunRecord] = Field(default_factory=list)
    measured: MeasuredSaving | None = None
    assumptions: list[str] = Field(default_factory=list)
    stored_in: str | None = None


# ---------------------------------------------------------------- entry points

def replay_finding(db: str | Path, finding_id: str, opts: ReplayOptions, settings: Settings | None = None, *,
                   workload_path: Path | None = None, on_event: EventHandler | None = None) -> ReplayOutcome:
    """Build a finding's baseline and remediated workloads from the store, replay them alternately, and
    store the runs (and the measured saving, when it is one) back in the store."""
    from llmaudit.replay.build import BuildError, build, find_finding
    from llmaudit.replay.workload import twin_path, write

    settings = settings or Settings()
    emit = on_event or (lambda *_: None)
    with _store(db) as store:
        try:
            finding = find_finding(store, finding_id, settings)
            name = workload_path.name.removesuffix(".jsonl") if workload_path else "workload"
            built = build(store, finding, name=name, max_requests=opts.max_requests)
        except BuildError as exc:
            raise ReplayError(str(exc)) from None
        token_prices = token_prices_for(store, [r.model for r in built.baseline.requests], settings)
    emit("built", {"finding": finding, "built": built})
    if workload_path is not None:
        write(built.baseline, workload_path)
        write(built.remediated, twin_path(workload_path))
        emit("wrote", {"paths": [workload_path, twin_path(workload_path)]})
    if opts.speedup is None and opts.rate is None and opts.duration is None and opts.max_span_s is not None \
            and built.baseline.span_s > opts.max_span_s:
        opts = opts.model_copy(update={"duration": opts.max_span_s})
        emit("compressed", {"span_s": built.baseline.span_s, "duration": opts.max_span_s})
    return _replay([("baseline", built.baseline), ("remediated", built.remediated)], opts, settings, db=Path(db),
                   finding=finding, token_prices=token_prices, emit=emit)


def replay_workloads(workloads: list[tuple[str, Workload]], opts: ReplayOptions, settings: Settings | None = None, *,
                     db: str | Path | None = None, on_event: EventHandler | None = None) -> ReplayOutcome:
    """Replay workload files. A baseline and its remediated twin built from a finding of `db` are
    measured against that finding; other workloads are run and stored, never turned into a saving."""
    from llmaudit.replay.build import BuildError, find_finding

    settings = settings or Settings()
    emit = on_event or (lambda *_: None)
    labels = dict(workloads)
    finding = token_prices = None
    fingerprint = labels["baseline"].header.finding if "baseline" in labels else None
    if db is not None:
        with _store(db, create=True) as store:
            if fingerprint and "remediated" in labels:
                try:
                    finding = find_finding(store, fingerprint, settings)
                except BuildError:
                    emit("note", {"text": f"finding {fingerprint} is not in {db}; runs are stored without it"})
            if "baseline" in labels:
                token_prices = token_prices_for(store, [r.model for r in labels["baseline"].requests], settings)
    elif "baseline" in labels:
        token_prices = token_prices_for(None, [r.model for r in labels["baseline"].requests], settings)
    return _replay(workloads, opts, settings, db=Path(db) if db is not None else None, finding=finding,
                   token_prices=token_prices, emit=emit)


# ---------------------------------------------------------------- the shared path

def _store(db: str | Path, *, create: bool = False):
    from llmaudit.store import StoreError

    if not create and not Path(db).exists():
        raise ReplayError(f"{db}: no such store; run `llmaudit analyze FILES --db {db}` first")
    try:
        return Store(db)
    except StoreError as exc:
        raise ReplayError(str(exc)) from None


def token_prices_for(store: Store | None, models: list[str | None], settings: Settings) -> dict | None:
    """{model: catalog price} when every request's model is an API model with a token price: the
    saving is then measured in API tokens, as the finding's estimate is. None (GPU time) when a model
    is unknown, unpriced or self-hosted in the store."""
    from llmaudit.pricing.catalog import load_catalog

    wanted = sorted(set(models), key=str)
    if not wanted or None in wanted:
        return None
    providers: dict[str, str | None] = {}
    if store is not None and store.table_exists("llm_calls"):
        rows = store.con.execute("""SELECT model, bool_or(coalesce(self_hosted, FALSE)), mode(provider)
                                    FROM llm_calls WHERE model IN (SELECT unnest($models)) GROUP BY model""",
                                 {"models": wanted}).fetchall()
        if any(hosted for _, hosted, _ in rows):
            return None
        providers = {m: p for m, _, p in rows}
    catalog = load_catalog(settings=settings)
    prices = {}
    for model in wanted:
        entry = catalog.resolve(model, providers.get(model))
        if entry is None or entry.price.input is None:
            return None
        prices[model] = entry.price
    return prices


def gpu_price_for(opts: ReplayOptions, settings: Settings):
    from llmaudit.pricing import PriceError
    from llmaudit.replay.savings import PriceChoiceError, gpu_hour_price

    try:
        return gpu_hour_price(opts.accelerator or settings.accelerator, opts.gpu_hour_usd, settings.prices)
    except (PriceChoiceError, PriceError) as exc:
        raise ReplayError(str(exc)) from None


def _replay(workloads: list[tuple[str, Workload]], opts: ReplayOptions, settings: Settings, *, db: Path | None,
            finding: Finding | None, token_prices: dict | None, emit: EventHandler) -> ReplayOutcome:
    from llmaudit.replay.client import ScheduleError
    from llmaudit.replay.run import ReplayConfig, replay_runs
    from llmaudit.replay.savings import check_runs, measure, save

    price = gpu_price_for(opts, settings)
    try:
        server = check_server(opts.endpoint, opts.model)
        workloads, fit_notes, scale = fit_context(workloads, server.max_model_len, opts.fit_context)
    except PreflightError as exc:
        raise ReplayError(str(exc)) from None
    emit("server", {"server": server, "notes": fit_notes})
    cfg = ReplayConfig(endpoint=opts.endpoint, model=server.model, speedup=opts.speedup, rate=opts.rate,
                       duration=opts.duration, repeats=opts.repeats, slo_ttft_s=opts.slo_ttft_s, slo_e2e_s=opts.slo_e2e_s,
                       warmup=opts.warmup, timeout_s=opts.timeout_s, seed=opts.seed, gpus_per_server=opts.gpus_per_server,
                       token_low=opts.token_low, token_high=opts.token_high)
    try:
        result = replay_runs(workloads, cfg, on_event=emit)
    except ScheduleError as exc:
        raise ReplayError(str(exc)) from None
    labels = dict(workloads)
    comparable = "baseline" in labels and "remediated" in labels
    reasons = check_runs(result, min_success=opts.min_success) if result.runs or result.aborted else ["no run completed"]
    if not comparable:
        reasons = [r for r in reasons if r != "no complete baseline/remediated pair of runs"]
    measured = None
    if comparable and not reasons:
        measured = measure(result, labels["baseline"], labels["remediated"], price, finding=finding,
                           gpus_per_server=opts.gpus_per_server, token_prices=token_prices, token_scale=scale,
                           assumptions=fit_notes)
        if finding is not None:
            finding.measured = measured
    status = ("interrupted" if result.interrupted else "measured" if measured is not None
              else "not_measured" if comparable else "runs_only")
    outcome = ReplayOutcome(
        replay_id=result.replay_id, status=status, not_measured=reasons, finding=finding, server=server,
        workloads=[WorkloadSummary.of(label, wl) for label, wl in workloads],
        config=result.config.model_dump(mode="json", exclude={"api_key"}) | {"min_success": opts.min_success,
                                                                           "fit_context": opts.fit_context},
        runs=result.runs, measured=measured,
        assumptions=measured.detail["assumptions"] if measured else fit_notes,
    )
    if db is not None and result.runs:
        with _store(db) as store:
            # Stored even when interrupted or failed: what was measured is kept, marked as what it is.
            save(store, result, finding=finding, measured=measured)
        outcome.stored_in = str(db)
    return outcome
