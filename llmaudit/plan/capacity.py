"""Capacity at peak: the peak a model server carries, what one replica sustains at the latency target, and
the replicas that needs against those provisioned.

What one replica sustains, in order of preference:
1. measured: a `replay capacity` sweep of this model's traffic in the store (re-read at the plan's latency
   target when it differs from the sweep's);
2. observed: the most requests/s a replica completed in a scrape interval in which requests waited (it was
   saturated, so that is its capacity at today's latency);
3. assumed: the model class's throughput on the GPU (model_classes.yaml) for the traffic's request sizes;
4. observed, a lower bound: the most requests/s a replica completed in any interval (it was never pushed
   further).

    replicas needed = ceil(peak requests/s x (1 + headroom) / per-replica rate), at least 1
    cost            = replicas x GPUs per replica x GPU-hour price x 730 hours
"""

from __future__ import annotations

from datetime import timedelta

from llmaudit.plan import classes, traffic
from llmaudit.plan.context import PlanContext
from llmaudit.plan.document import Figure, PeakLoad, ServerCapacity
from llmaudit.plan.latency_curve import rate_at, step_requests
from llmaudit.replay.capacity import HOURS_PER_MONTH, replicas


def measured_rate(ctx: PlanContext, model: str, hosts: list[str] | None = None) -> tuple[Figure | None, list[str]]:
    notes: list[str] = []
    sweep = ctx.sweep_for(model, hosts)
    if sweep is None:
        return None, notes
    where = f"replay capacity {sweep['capacity_id']} against {sweep['served_model']} at {sweep['endpoint']}"
    same_slo = not ctx.slo_from_user or (ctx.slo_ttft_s == sweep["slo_ttft_s"] and ctx.slo_e2e_s == sweep["slo_e2e_s"])
    share = sweep["slo_target"] or 0.95
    if same_slo:
        rate = sweep["capacity_rps"]
        slo = _slo_text(sweep["slo_ttft_s"], sweep["slo_e2e_s"])
        detail = f"{where}: the highest rate at which {share:.0%} of requests met {slo}"
    else:
        rate = rate_at(step_requests(ctx.store, sweep["capacity_id"]), ctx.slo_ttft_s, ctx.slo_e2e_s, share)
        slo = _slo_text(ctx.slo_ttft_s, ctx.slo_e2e_s)
        detail = f"{where}, re-read at {slo} from its requests: the highest rate at which {share:.0%} of them met it"
        if rate is None:
            notes.append(f"{model}: no step of {where} met {slo}; the sweep does not apply at this target")
            return None, notes
    if sweep["capacity_is_lower_bound"] and same_slo:
        detail += " (every rate tried met it: a lower bound)"
    thr = sweep["capacity_throughput_rps"]
    if same_slo and thr is not None and rate and thr < 0.7 * rate:
        notes.append(f"{model}: at {rate:g} req/s the swept server completed only {thr:.3g} req/s; a TTFT-only target lets "
                     "requests queue for decode: sweep again with --slo-e2e")
    return Figure(value=rate, unit="requests/s per replica", source="measured", detail=detail), notes


def _slo_text(ttft, e2e) -> str:
    parts = ([f"TTFT <= {ttft:g} s"] if ttft is not None else []) + ([f"end-to-end <= {e2e:g} s"] if e2e is not None else [])
    return " and ".join(parts) or "no latency target"


def observed_rates(ctx: PlanContext, server: traffic.Server) -> tuple[float | None, float | None]:
    """(most completions/s per replica in an interval with requests waiting, most in any interval)."""
    rows = traffic.serving_intervals(ctx.store, server.hosts, server.model)
    saturated = [done / s for _h, _t, s, _gen, done, _run, waiting in rows if done and waiting and waiting > 0]
    anyrate = [done / s for _h, _t, s, _gen, done, _run, _w in rows if done]
    return (max(saturated) if saturated else None), (max(anyrate) if anyrate else None)


def assumed_rate(ctx: PlanContext, class_name: str | None, gpu: str, mean_in: float, mean_out: float) -> Figure | None:
    if class_name is None:
        return None
    tp = classes.throughput(class_name, gpu)
    if tp is None:
        return None
    rate = tp.requests_per_s(mean_in, mean_out)
    ctx.assume(f"{class_name} on {gpu}: generated tokens/s per replica", tp.decode_tokens_per_s, "tokens/s", "assumed",
               tp.decode_source)
    ctx.assume(f"{class_name} on {gpu}: prompt tokens/s per replica", round(tp.prefill_tokens_per_s), "tokens/s", "assumed",
               tp.prefill_source)
    return Figure(value=rate, unit="requests/s per replica", source="assumed",
                  detail=(f"{class_name} on {tp.gpus_per_replica} x {gpu}: 1 / ({mean_in:,.0f} prompt tokens / "
                          f"{tp.prefill_tokens_per_s:,.0f} + {mean_out:,.0f} generated tokens / {tp.decode_tokens_per_s:,.0f}) "
                          "(model_classes.yaml)"))


def per_replica_rate(ctx: PlanContext, server: traffic.Server, gpu: str, mean_in: float, mean_out: float
                     ) -> tuple[Figure | None, list[str]]:
    fig, notes = measured_rate(ctx, server.model, server.hosts)
    if fig is not None:
        return fig, notes
    saturated, high = observed_rates(ctx, server) if server.has_serving_metrics else (None, None)
    if saturated:
        return Figure(value=saturated, unit="requests/s per replica", source="observed",
                      detail="the most requests/s one replica completed in a scrape interval in which requests waited "
                             "(vLLM metrics): its capacity at today's latency, not checked against the target"), notes
    fig = assumed_rate(ctx, classes.class_for_model(server.model), gpu, mean_in, mean_out)
    if fig is not None:
        if high:
            notes.append(f"{server.model}: the metrics never show requests waiting, so they say only that one replica "
                         f"does at least {high:.3g} req/s (its busiest scrape interval); the model class's figure is used")
        return ctx.figure_assumed(fig, f"{server.model}: requests/s per replica"), notes
    if high:
        return Figure(value=high, unit="requests/s per replica", source="observed",
                      detail="the most requests/s one replica completed in a scrape interval (vLLM metrics); requests "
                             "never waited, so this is a lower bound"), notes
    notes.append(f"{server.model}: no capacity sweep, no completed-request counters in its metrics and no model class "
                 f"with a figure for {gpu}: replicas cannot be sized (run `llmaudit replay capacity`)")
    return None, notes


def peak_load(ctx: PlanContext, model: str, feature=traffic.ALL, hosts: list[str] | None = None) -> PeakLoad:
    hours = traffic.hourly(ctx.store, model, feature)
    if not hours:
        return _metrics_peak(ctx, model, hosts or [])
    busy = max(hours, key=lambda h: (h.calls, -h.hour.timestamp()))
    minute, n = traffic.peak_minute(ctx.store, model, feature)
    p95, top = traffic.concurrency(ctx.store, model, busy.hour, busy.hour + timedelta(hours=1), feature)
    return PeakLoad(busy_hour=busy.hour, busy_hour_requests_per_s=busy.calls / 3600,
                    busy_hour_tokens_per_s=(busy.input_tokens + busy.output_tokens) / 3600,
                    busy_hour_output_tokens_per_s=busy.output_tokens / 3600, peak_minute=minute,
                    peak_minute_requests_per_s=n / 60, p95_concurrency=p95, max_concurrency=top)


def _metrics_peak(ctx: PlanContext, model: str, hosts: list[str]) -> PeakLoad:
    """No traces of the model: the peak from its vLLM counters, at the scrapes' resolution (labelled)."""
    rows = traffic.metrics_load(ctx.store, hosts, model)
    if not rows:
        return PeakLoad(busy_hour=None, busy_hour_requests_per_s=None, busy_hour_tokens_per_s=None,
                        busy_hour_output_tokens_per_s=None, peak_minute=None, peak_minute_requests_per_s=None,
                        p95_concurrency=None, max_concurrency=None)
    by_hour: dict = {}
    for t, s, done, tok in rows:
        h = by_hour.setdefault(t.replace(minute=0, second=0, microsecond=0), [0.0, 0.0])
        h[0] += done
        h[1] += tok
    busy = max(by_hour, key=lambda h: (by_hour[h][0], -h.timestamp()))
    top = max(rows, key=lambda r: (r[2] / r[1], -r[0].timestamp()))
    ctx.notes.append(f"{model}: no traces of its calls, so its peak is the busiest scrape interval of the vLLM "
                     "counters (requests completed), not the busiest minute")
    return PeakLoad(busy_hour=busy, busy_hour_requests_per_s=by_hour[busy][0] / 3600,
                    busy_hour_tokens_per_s=by_hour[busy][1] / 3600, busy_hour_output_tokens_per_s=None,
                    peak_minute=top[0], peak_minute_requests_per_s=top[2] / top[1], p95_concurrency=None,
                    max_concurrency=None)


def server_gpu(ctx: PlanContext, server: traffic.Server) -> tuple[str, float, float]:
    """(GPU, price per GPU-hour, GPUs per replica) an existing server is sized and priced on."""
    if not ctx.gpus_override and server.accelerator and server.usd_per_hour:
        return server.accelerator, server.usd_per_hour, server.gpus_per_host
    return ctx.gpu, ctx.gpu_hour_usd, server.gpus_per_host


def server_capacity(ctx: PlanContext, server: traffic.Server, group_in: float, group_out: float) -> ServerCapacity:
    from llmaudit.metrics_capacity import serving_peak_concurrency

    gpu, price, gpus = server_gpu(ctx, server)
    peak = peak_load(ctx, server.model, hosts=server.hosts)
    if server.has_serving_metrics:
        p95s = [p.p95_running for p in serving_peak_concurrency(ctx.store) if p.model_name == server.model
                and p.host in server.hosts and p.p95_running is not None]
        peak.p95_running_metrics = max(p95s) if p95s else None
    rate, notes = per_replica_rate(ctx, server, gpu, group_in, group_out)
    provisioned = len(server.hosts) or None
    plan = replicas(peak.peak_minute_requests_per_s, rate.value if rate else None, provisioned, headroom=ctx.headroom)
    needed = plan["needed"]

    def month(n):
        return round(n * gpus * price * HOURS_PER_MONTH, 2) if n is not None else None

    saved = month(max(provisioned - needed, 0)) if needed is not None and provisioned is not None else None
    return ServerCapacity(
        model=server.model, hosts=server.hosts, gpu=gpu, gpus_per_replica=gpus, gpu_hour_usd=price, peak=peak,
        per_replica_rps=rate or Figure(value=None, unit="requests/s per replica", source="observed", detail="unknown"),
        headroom=ctx.headroom, replicas_needed=needed, replicas_provisioned=provisioned,
        usd_per_month_needed=month(needed), usd_per_month_provisioned=month(provisioned), usd_per_month_saved=saved,
        notes=notes)
