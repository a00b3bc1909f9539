"""Scale-to-zero fit: what kind of workload each feature's calls to a model are, how few replicas it can
run at, what a cold start costs, and the GPU-hours a self-hosted one would save at zero between its runs.

A workload's calls are merged into runs: calls in flight, joined across gaps shorter than a cold start plus
the scale-down delay (keeping a replica through a shorter gap costs less than starting it again). Classes,
the first that fits (CLASS_RULES):
- interactive: a person waits (the request's root span is a server span): one replica stays warm;
- nightly_batch: not interactive, 95% of its calls fall in a block of at most 6 hours of the day, on 2 days
  or more: zero outside the block;
- scheduled: not interactive, runs that start at regular intervals (their spacing varies by 25% at most):
  zero between runs;
- background: the rest; zero between runs when it has idle gaps, else one replica.
A self-hosted workload at zero pays for its runs, plus a cold start before and the scale-down delay after
each: saved = provisioned GPU-hours - that.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

from llmaudit.plan import classes, traffic
from llmaudit.plan.context import PlanContext
from llmaudit.plan.document import Figure, WorkloadFit


@dataclass(frozen=True)
class Pattern:
    interactive_share: float
    calls_by_hour: dict[int, int]
    block: list[int]                       # the fewest consecutive hours of the day holding 95% of the calls
    runs: list[tuple[datetime, datetime]]
    days_active: int

    @property
    def gap_cv(self) -> float | None:
        starts = [a for a, _ in self.runs]
        gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
        if len(gaps) < 2 or not statistics.fmean(gaps):
            return None
        return statistics.pstdev(gaps) / statistics.fmean(gaps)


# (class, does it fit, evidence). Min replicas follow from the class (min_replicas below).
CLASS_RULES = [
    ("interactive", lambda p: p.interactive_share >= 0.5,
     lambda p: f"a person waits on {p.interactive_share:.0%} of its requests (root span kind server)"),
    ("nightly_batch", lambda p: len(p.block) <= 6 and p.days_active >= 2,
     lambda p: f"no one waits on it; 95% of its calls fall in {len(p.block)} hour(s) of the day "
               f"({_hours_text(p.block)} UTC), on {p.days_active} days, in {len(p.runs)} run(s)"),
    ("scheduled", lambda p: len(p.runs) >= 3 and p.gap_cv is not None and p.gap_cv <= 0.25,
     lambda p: f"no one waits on it; {len(p.runs)} runs start at regular intervals (spacing varies by {p.gap_cv:.0%})"),
    ("background", lambda p: True,
     lambda p: f"no one waits on it; {len(p.runs)} run(s) spread over {len(p.calls_by_hour)} hours of the day"),
]


def min_replicas(workload_class: str, p: Pattern) -> int:
    if workload_class == "interactive":
        return 1
    if workload_class == "background":
        return 0 if len(p.runs) >= 2 else 1
    return 0


def _hours_text(hours: list[int]) -> str:
    if not hours:
        return "none"
    return f"{hours[0]:02d}:00-{(hours[-1] + 1) % 24:02d}:00"


def block_of(calls_by_hour: dict[int, int], share: float = 0.95) -> list[int]:
    total = sum(calls_by_hour.values())
    if not total:
        return []
    for length in range(1, 25):
        best = None
        for start in range(24):
            hours = [(start + i) % 24 for i in range(length)]
            n = sum(calls_by_hour.get(h, 0) for h in hours)
            if n >= share * total and (best is None or n > best[0]):
                best = (n, hours)
        if best:
            return best[1]
    return list(range(24))


def runs_of(intervals: list[tuple[datetime, datetime]], join_s: float) -> list[tuple[datetime, datetime]]:
    runs: list[list[datetime]] = []
    for a, b in sorted(intervals):
        if runs and (a - runs[-1][1]).total_seconds() <= join_s:
            runs[-1][1] = max(runs[-1][1], b)
        else:
            runs.append([a, b])
    return [(a, b) for a, b in runs]


def pattern(ctx: PlanContext, g: traffic.CallGroup, roots: dict, join_s: float) -> Pattern:
    kinds = roots.get(g.feature, {})
    n = sum(kinds.values())
    by_hour: dict[int, int] = {}
    for h in traffic.hourly(ctx.store, g.model, g.feature):
        by_hour[h.hour.hour] = by_hour.get(h.hour.hour, 0) + h.calls
    intervals = traffic.call_intervals(ctx.store, g.model, g.feature)
    days = len({a.date() for a, _ in intervals})
    return Pattern(interactive_share=kinds.get("server", 0) / n if n else 0.0, calls_by_hour=by_hour,
                   block=block_of(by_hour), runs=runs_of(intervals, join_s), days_active=days)


def classify(p: Pattern) -> tuple[str, int, str]:
    for name, fits, evidence in CLASS_RULES:
        if fits(p):
            return name, min_replicas(name, p), evidence(p)
    raise AssertionError("the last rule fits everything")


def cold_start(ctx: PlanContext, model: str, hosts: list[str] | None = None) -> Figure:
    sweep = next((s for s in ctx.sweeps if s["server_start_s"] and (s["production_model"] == model
                                                                     or (hosts and s["host"] in hosts))), None)
    if sweep is None:  # a measured start may come with any sweep status
        sweep = next((s for s in _all_sweeps(ctx) if s["server_start_s"] and s["production_model"] == model), None)
    if sweep is not None:
        return Figure(value=sweep["server_start_s"], unit="s", source="measured",
                      detail=f"replay capacity {sweep['capacity_id']} --launch: start to a healthy {sweep['served_model']}")
    cls = classes.class_for_model(model) or ctx.self_host_class
    _, mc = classes.get_class(cls)
    return ctx.figure_assumed(Figure(value=mc.cold_start_s.value, unit="s", source="assumed",
                                     detail=f"{cls}: {mc.cold_start_s.source}"), f"{cls}: cold start")


def _all_sweeps(ctx: PlanContext) -> list[dict]:
    from llmaudit.replay.capacity_store import sweeps

    return sweeps(ctx.store, usable_only=False)


def fit(ctx: PlanContext, g: traffic.CallGroup, roots: dict, server: traffic.Server | None,
        replicas_per_run: int | None, linger_s: float) -> WorkloadFit:
    from llmaudit.plan.capacity import server_gpu

    cold = cold_start(ctx, g.model, server.hosts if server else None)
    p = pattern(ctx, g, roots, (cold.value or 0.0) + linger_s)
    name, floor, evidence = classify(p)
    fit_ = WorkloadFit(feature=g.feature, model=g.model, self_hosted=g.self_hosted, workload_class=name, evidence=evidence,
                       active_hours_utc=sorted(p.calls_by_hour), min_replicas=floor, scale_to_zero=floor == 0,
                       cold_start=cold, runs=len(p.runs))
    if not g.self_hosted or server is None:
        fit_.note = ("on an API: billed per token, nothing idles; the class sets the warm floor it would need self-hosted"
                     if not g.self_hosted else "no GPU metrics name its servers: GPU-hours unknown")
        return fit_
    _gpu, price, gpus = server_gpu(ctx, server)
    provisioned = traffic.provisioned_gpu_hours(ctx.store, server.hosts)
    reps = max(replicas_per_run or 1, 1)
    fit_.gpu_hours_provisioned = round(provisioned, 3)
    if floor > 0:
        fit_.note = f"keeps {floor} replica(s) warm: a cold start of {cold.value:g} s would break its latency target"
        return fit_
    run_h = sum((b - a).total_seconds() for a, b in p.runs) / 3600
    cold_h = len(p.runs) * (cold.value or 0.0) / 3600
    needed = (run_h + cold_h + len(p.runs) * linger_s / 3600) * reps * gpus
    saved = max(provisioned - needed, 0.0)
    fit_.cold_start_gpu_hours = round(cold_h * reps * gpus, 3)
    fit_.gpu_hours_needed = round(needed, 3)
    fit_.gpu_hours_saved_per_month = round(saved * ctx.window.month_factor, 2)
    fit_.usd_saved_per_month = round(saved * ctx.window.month_factor * price, 2)
    others = {x for x in ctx.store.con.execute("SELECT DISTINCT feature FROM llm_calls WHERE model = ?", [g.model]).fetchall()}
    if len(others) > 1:
        fit_.note = "its servers also serve other features: the saving holds only where their hours do not overlap"
    return fit_
