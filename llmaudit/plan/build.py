"""The plan from a store: one call that reads the traffic, resolves every figure to measured, observed,
catalog, user or assumed, and fills each section of the document.

    from llmaudit.plan.build import PlanOptions, build_plan
    doc = build_plan(store, PlanOptions(slo_ttft_s=0.5, headroom=0.2))
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import timedelta

from llmaudit.plan import anatomy, backtest, breakeven, capacity, classes, scale_to_zero, traffic
from llmaudit.plan.classes import PlanError
from llmaudit.plan.context import PlanContext
from llmaudit.plan.document import (ApiSide, BreakEven, Figure, PlanDocument, PlanSettings, PlanWindow, PolicyResult,
                                    SelfHostSide, ServerBacktest, ServerCapacity, WorkloadFit)
from llmaudit.plan.latency_curve import curve
from llmaudit.replay.capacity import HOURS_PER_MONTH
from llmaudit.replay.capacity_store import sweeps
from llmaudit.report.numbers import usd
from llmaudit.store import Store

DEFAULT_GPU = "H100"


@dataclass(frozen=True)
class PlanOptions:
    slo_ttft_s: float | None = None
    slo_e2e_s: float | None = None
    headroom: float | None = None        # None: the default, 0.2
    ops_usd_per_month: float | None = None
    accelerator: str | None = None       # --accelerator (or --gpu)
    self_host_model: str | None = None


def build_plan(store: Store, options: PlanOptions | None = None, settings=None) -> PlanDocument:
    from llmaudit.pricing.catalog import load_catalog

    opts = options or PlanOptions()
    win = traffic.window(store)
    if win.start is None or win.hours <= 0:
        raise PlanError(f"{store.path}: nothing to plan: the store holds no model calls or metrics over a time span "
                        "(run `llmaudit analyze FILES --db FILE` first)")
    for name, value in (("--slo-ttft", opts.slo_ttft_s), ("--slo-e2e", opts.slo_e2e_s)):
        if value is not None and value <= 0:
            raise PlanError(f"{name} {value:g}: a latency target in seconds, above 0")
    if opts.ops_usd_per_month is not None and opts.ops_usd_per_month < 0:
        raise PlanError(f"--ops-usd {opts.ops_usd_per_month:g}: dollars per month, 0 or more")
    if opts.headroom is not None and not 0 <= opts.headroom < 10:
        raise PlanError(f"--headroom {opts.headroom:g}: a share of capacity kept above the peak, e.g. 0.2")
    groups = traffic.call_groups(store)
    servers = traffic.servers(store, groups)
    catalog = load_catalog(settings=settings)

    # The GPU self-hosting is sized and priced on.
    user_gpu = opts.accelerator or getattr(settings, "accelerator", None)
    observed_gpu = next((s.accelerator for s in servers if s.accelerator), None)
    gpu_name = user_gpu or observed_gpu or DEFAULT_GPU
    entry = catalog.gpu(gpu_name)
    if entry is None:
        raise PlanError(f"--accelerator {gpu_name!r}: no GPU-hour price for it (see `llmaudit pricing list --gpus`)")
    gpu_source = ("the option --accelerator (or the config's accelerator)" if user_gpu else
                  "the GPU the metrics name" if observed_gpu else f"the default ({DEFAULT_GPU})")

    # The model class to self-host.
    if opts.self_host_model:
        class_name, _ = classes.get_class(opts.self_host_model)
        class_source = "the option --self-host-model"
    else:
        hosted = next((c for g in groups if g.self_hosted and (c := classes.class_for_model(g.model))), None)
        class_name = hosted or next(iter(classes.load_classes().classes))
        class_source = "the class of the self-hosted model in the store" if hosted else "the first class of model_classes.yaml"

    usable = sweeps(store)
    slo_user = opts.slo_ttft_s is not None or opts.slo_e2e_s is not None
    ctx = PlanContext(store=store, window=win, slo_ttft_s=opts.slo_ttft_s, slo_e2e_s=opts.slo_e2e_s, slo_from_user=slo_user,
                      headroom=0.2 if opts.headroom is None else opts.headroom,
                      ops_usd=opts.ops_usd_per_month or 0.0, gpu=entry.name, gpu_hour_usd=entry.price.usd_per_hour,
                      gpus_override=bool(user_gpu), self_host_class=class_name, sweeps=usable)
    if slo_user:
        slo_source = "the options"
        if opts.slo_ttft_s is not None:
            ctx.assume("latency target: TTFT", opts.slo_ttft_s, "s", "user", "--slo-ttft")
        if opts.slo_e2e_s is not None:
            ctx.assume("latency target: end-to-end", opts.slo_e2e_s, "s", "user", "--slo-e2e")
    elif usable:
        ctx.slo_ttft_s, ctx.slo_e2e_s = usable[0]["slo_ttft_s"], usable[0]["slo_e2e_s"]
        slo_source = f"capacity sweep {usable[0]['capacity_id']}"
    else:
        ctx.slo_ttft_s = ctx.default("slo_ttft_s")
        slo_source = "the default"
    batch_wait = ctx.default("batch_max_wait_s")
    ctx.assume("headroom", ctx.headroom, "share", "user" if opts.headroom is not None else "default",
               "--headroom" if opts.headroom is not None else "capacity kept above the peak (default 0.2)")
    ctx.assume("ops cost", ctx.ops_usd, "USD/month", "user" if opts.ops_usd_per_month is not None else "default",
               "--ops-usd" if opts.ops_usd_per_month is not None else "none stated (--ops-usd): self-hosting is priced "
               "as GPU time only")
    ctx.assume(f"GPU-hour price ({entry.name})", entry.price.usd_per_hour, "USD/h", "catalog",
               f"{entry.origin}: {entry.price.basis or ''} ({gpu_source})".replace(" ()", ""))
    ctx.assume("model class to self-host", class_name, None, "user" if opts.self_host_model else "default", class_source)
    ctx.assume("hours per month", HOURS_PER_MONTH, "h", "default", "a month is 730 hours (8,760 / 12)")

    doc = PlanDocument(
        window=PlanWindow(start=win.start, end=win.end, hours=round(win.hours, 3), month_factor=round(win.month_factor, 6)),
        settings=PlanSettings(slo_ttft_s=ctx.slo_ttft_s, slo_e2e_s=ctx.slo_e2e_s, slo_source=slo_source,
                              batch_max_wait_s=batch_wait, headroom=ctx.headroom, ops_usd_per_month=ctx.ops_usd,
                              gpu=entry.name, gpu_hour_usd=entry.price.usd_per_hour, gpu_source=gpu_source,
                              self_host_class=class_name, hours_per_month=HOURS_PER_MONTH))

    by_model = {}
    for g in groups:
        t = by_model.setdefault(g.model, [0, 0, 0])
        t[0] += g.calls
        t[1] += g.input_tokens
        t[2] += g.output_tokens
    caps: dict[str, ServerCapacity] = {}
    for server in servers:
        n, i, o = by_model.get(server.model, [0, 0, 0])
        caps[server.model] = capacity.server_capacity(ctx, server, i / n if n else 0.0, o / n if n else 0.0)
        doc.capacity.append(caps[server.model])

    doc.anatomy = anatomy.feature_anatomy(ctx, groups, servers)
    doc.batching = anatomy.batching(ctx, servers)

    roots = traffic.root_kinds(store)
    linger_s = ctx.default("scale_down_after_min") * 60
    server_of = {s.model: s for s in servers}
    work = [g for g in groups if not g.embeddings]
    for g in groups:
        if g.embeddings:
            ctx.notes.append(f"{g.feature}: {g.model} computes embeddings, not generations: left out of the break-even "
                             "and scale-to-zero tables")
    fits: dict[tuple, WorkloadFit] = {}
    for g in work:
        cap = caps.get(g.model)
        fits[(g.feature, g.model)] = scale_to_zero.fit(ctx, g, roots, server_of.get(g.model),
                                                       cap.replicas_needed if cap else None, linger_s)
    doc.scale_to_zero = list(fits.values())
    doc.breakeven = [_breakeven(ctx, g, fits[(g.feature, g.model)], server_of.get(g.model), caps.get(g.model), catalog)
                     for g in work]
    if any(not g.self_hosted for g in work):
        ctx.notes.append(f"the break-even is cost only: whether {class_name} serves each feature as well as its API model "
                         "does is not measured here")

    for server in servers:
        bt = _backtest(ctx, server, caps[server.model], [fits[k] for k in fits if k[1] == server.model], by_model,
                       [g for g in groups if g.model == server.model])
        if bt is not None:
            doc.backtest.append(bt)

    for sweep in usable:
        metric = "ttft" if (ctx.slo_ttft_s if slo_user else sweep["slo_ttft_s"]) is not None else "e2e"
        peak = None
        if sweep["production_model"] in by_model:
            peak = traffic.peak_minute(store, sweep["production_model"])[1] / 60
        doc.latency_curves.append(curve(store, sweep, metric=metric, peak_rps=peak, headroom=ctx.headroom,
                                        gpu=sweep["gpu"] or ctx.gpu, gpu_hour_usd=sweep["gpu_hour_usd"] or ctx.gpu_hour_usd,
                                        gpus_per_replica=sweep["gpus_per_replica"] or 1.0))
    if not usable:
        ctx.notes.append("no `replay capacity` sweep in the store: no cost-vs-latency curve, and per-replica rates are "
                         "observed or assumed (see each figure's source)")

    doc.assumptions = sorted(ctx.assumptions, key=lambda a: (a.kind, a.name))
    doc.notes = list(dict.fromkeys(ctx.notes))
    return doc


# ---------------------------------------------------------------- 3. break-even, per feature and model

def _hourly_profile(ctx: PlanContext, model: str, feature) -> list[float]:
    """Peak-minute requests/s of every calendar hour of the window (0 where it had no call)."""
    start = ctx.window.start.replace(minute=0, second=0, microsecond=0)
    n = max(int(math.ceil((ctx.window.end - start).total_seconds() / 3600 - 1e-9)), 1)
    profile = [0.0] * n
    for h in traffic.hourly(ctx.store, model, feature):
        i = int((h.hour - start) / timedelta(hours=1))
        if 0 <= i < n:
            profile[i] = h.peak_minute_calls / 60.0
    return profile


def _api_equivalent(class_name: str, catalog):
    _, mc = classes.get_class(class_name)
    for eq in mc.api_equivalents:
        entry = catalog.resolve(eq.model, eq.provider)
        if entry is not None and entry.price.input is not None and entry.price.output is not None:
            return entry
    return None


def _breakeven(ctx: PlanContext, g: traffic.CallGroup, fit: WorkloadFit, server, cap, catalog) -> BreakEven:
    days = ctx.window.days
    month = ctx.window.month_factor
    class_name = (classes.class_for_model(g.model) if g.self_hosted else None) or ctx.self_host_class
    base = dict(feature=g.feature, model=g.model, provider=g.provider, self_hosted_today=g.self_hosted,
                workload_class=fit.workload_class, requests_per_day=round(g.calls / days, 3),
                tokens_per_day=round((g.input_tokens + g.output_tokens) / days, 1),
                mean_input_tokens=round(g.mean_input, 1), mean_output_tokens=round(g.mean_output, 1))

    # The API side.
    api = None
    if not g.self_hosted:
        api_month = g.cost_usd * month
        basis = "the calls' own list prices (cached input at the cached rate)"
        if g.unpriced:
            basis += f"; {g.unpriced} call(s) have no price and are left out"
        api = ApiSide(model=g.model, basis=basis, usd_per_month=round(api_month, 2),
                      usd_per_request=round(g.cost_usd / g.calls, 6) if g.calls else None)
        today = round(api_month, 2)
    else:
        entry = _api_equivalent(class_name, catalog)
        if entry is not None:
            p = entry.price
            window_usd = (g.input_tokens * p.input + g.output_tokens * p.output) / 1e6
            api = ApiSide(model=f"{entry.provider}/{entry.model}",
                          basis=f"the same open model on an API: {entry.source} (${p.input:g} in, ${p.output:g} out per 1M tokens)",
                          usd_per_month=round(window_usd * month, 2),
                          usd_per_request=round(window_usd / g.calls, 6) if g.calls else None)
        today = cap.usd_per_month_provisioned if cap is not None and cap.usd_per_month_provisioned is not None else None
        if server is not None:
            _gpu, price, _n = capacity.server_gpu(ctx, server)
            hours = traffic.provisioned_gpu_hours(ctx.store, server.hosts)
            if hours:
                today = round(hours * price * month, 2)

    # The self-host side: the class on the GPU, sized hour by hour.
    if g.self_hosted and cap is not None and cap.per_replica_rps.value:
        rate, gpu, price, gpus = cap.per_replica_rps, cap.gpu, cap.gpu_hour_usd, cap.gpus_per_replica
    else:
        rate = capacity.measured_rate(ctx, g.model)[0] or capacity.assumed_rate(ctx, class_name, ctx.gpu, g.mean_input,
                                                                                  g.mean_output)
        if rate is not None and rate.source == "assumed":
            rate = ctx.figure_assumed(rate, f"{g.feature} / {g.model} traffic on {class_name}: requests/s per replica")
        tp = classes.throughput(class_name, ctx.gpu)
        gpu, price, gpus = ctx.gpu, ctx.gpu_hour_usd, float(tp.gpus_per_replica if tp else 1)
    if rate is None or not rate.value:
        ctx.notes.append(f"{g.feature} / {g.model}: no per-replica rate for {class_name} on {ctx.gpu} "
                         "(model_classes.yaml has no figure for it): no break-even")
        return BreakEven(**base, today_usd_per_month=today, api=api, self_host=None, side="unknown",
                         breakeven_multiple=None, breakeven_requests_per_day=None, breakeven_tokens_per_day=None,
                         why=f"no throughput figure for {class_name} on {ctx.gpu}")
    profile = _hourly_profile(ctx, g.model, g.feature)
    model = breakeven.SelfHostModel(hourly_peak_rps=profile, rate_rps=rate.value, headroom=ctx.headroom,
                                    warm_floor=fit.min_replicas, gpus_per_replica=gpus, gpu_hour_usd=price,
                                    month_factor=HOURS_PER_MONTH / len(profile), ops_usd_per_month=ctx.ops_usd)
    gpu_month = model.gpu_usd_per_month(1.0)
    self_host = SelfHostSide(model_class=class_name, gpu=gpu, per_replica_rps=rate, warm_floor=fit.min_replicas,
                             replicas_at_peak=max(model.replicas(p, 1.0) for p in profile),
                             gpu_hours_per_month=round(model.replica_hours(1.0) * gpus * model.month_factor, 2),
                             gpu_usd_per_month=round(gpu_month, 2), ops_usd_per_month=ctx.ops_usd,
                             usd_per_month=round(gpu_month + ctx.ops_usd, 2))
    if api is None or api.usd_per_month is None:
        return BreakEven(**base, today_usd_per_month=today, api=api, self_host=self_host, side="unknown",
                         breakeven_multiple=None, breakeven_requests_per_day=None, breakeven_tokens_per_day=None,
                         why=f"no API price for {class_name}'s model: only the self-host side is known")
    k = breakeven.breakeven_multiple(api.usd_per_month, model)
    side = "api" if api.usd_per_month < self_host.usd_per_month else "self_host"
    sh = (f"self-hosting {class_name} on {gpu} {usd(self_host.usd_per_month)}/month ({_sizing(self_host)}"
          + (f" + ops {usd(ctx.ops_usd)}" if ctx.ops_usd else "") + ")")
    ap = f"the API {usd(api.usd_per_month)}/month ({api.model})"
    if k is None:
        far = "self-hosting never costs less at any volume: a replica's traffic costs less on the API than the replica"
    elif side == "api":
        far = (f"self-hosting pays from {k:,.1f}x today's volume ({g.calls / days * k:,.0f} requests/day, "
               f"{(g.input_tokens + g.output_tokens) / days * k:,.0f} tokens/day)")
    else:
        far = (f"self-hosting stays cheaper down to {k:.2f}x today's volume ({g.calls / days * k:,.0f} requests/day)")
    why = (f"{ap} vs {sh}: " + ("the API is cheaper" if side == "api" else "self-hosting is cheaper") + f"; {far}")
    if g.self_hosted and today is not None:
        why += f"; today its GPUs cost {usd(today)}/month as provisioned"
    return BreakEven(**base, today_usd_per_month=today, api=api, self_host=self_host, side=side,
                     breakeven_multiple=round(k, 4) if k is not None else None,
                     breakeven_requests_per_day=round(g.calls / days * k, 1) if k is not None else None,
                     breakeven_tokens_per_day=round((g.input_tokens + g.output_tokens) / days * k, 0) if k is not None else None,
                     why=why)


def _sizing(s: SelfHostSide) -> str:
    return (f"{s.gpu_hours_per_month:,.0f} GPU-hours, warm floor {s.warm_floor}, {s.replicas_at_peak} replica(s) at peak "
            f"at {s.per_replica_rps.value:.3g} req/s each, {s.per_replica_rps.source}")


# ---------------------------------------------------------------- 5. backtest, per self-hosted server

def _backtest(ctx: PlanContext, server, cap: ServerCapacity, fits: list[WorkloadFit], by_model: dict,
              groups: list[traffic.CallGroup]) -> ServerBacktest | None:
    rate = cap.per_replica_rps
    if not rate.value:
        return None
    start = traffic.minute_floor(ctx.window.start)
    minutes = traffic.minutes_between(start, ctx.window.end)
    arrivals = traffic.arrivals_per_minute(ctx.store, server.model, start, minutes)
    source = "the traces: calls of the model started in each minute"
    if not sum(arrivals):
        arrivals, source = _arrivals_from_metrics(ctx, server, start, minutes)
        if not sum(arrivals):
            ctx.notes.append(f"{server.model}: no arrivals in the traces or metrics: no backtest")
            return None
    n, _i, out_tokens = by_model.get(server.model, [0, 0, 0])
    mean_out = out_tokens / n if n else 0.0
    durations = [g.mean_service_s for g in groups if g.mean_service_s]
    if durations:
        service = Figure(value=statistics.fmean(durations), unit="s", source="observed",
                         detail="mean duration of the model's calls that succeeded (traces)")
    else:
        service = ctx.figure_assumed(Figure(value=1 / rate.value, unit="s", source="assumed",
                                            detail="no call durations: one request's share of a replica's time"),
                                     f"{server.model}: service time")
    interactive = any(f.workload_class == "interactive" for f in fits)
    if interactive:
        slo_s = ctx.interactive_slo_s
        rule = f"interactive: a minute ending with requests still queued misses the latency target ({slo_s:g} s)"
    else:
        slo_s = ctx.default("batch_max_wait_s")
        rule = (f"not interactive ({', '.join(sorted({f.workload_class for f in fits})) or 'no traffic'}): a request may "
                f"wait up to {slo_s:g} s, a cold start included")
    cold = scale_to_zero.cold_start(ctx, server.model, server.hosts)
    cold_min = int(math.ceil((cold.value or 0) / 60 - 1e-9))
    share = ctx.default("scale_target")
    down = int(ctx.default("scale_down_after_min"))
    load = backtest.Load(arrivals=arrivals, rate_rps=rate.value, service_s=service.value, output_tokens=mean_out, slo_s=slo_s)
    month = HOURS_PER_MONTH * 60 / minutes
    price, gpus = cap.gpu_hour_usd, cap.gpus_per_replica

    def result(name, signal, res, target=None, unit=None, floor=0, cold_m=0) -> PolicyResult:
        gh = res.gpu_hours(gpus)
        return PolicyResult(policy=name, signal=signal, target=round(target, 6) if target is not None else None,
                            target_unit=unit, warm_floor=floor, cold_start_min=cold_m, gpu_hours=round(gh, 3),
                            usd=round(gh * price, 2), usd_per_month=round(gh * price * month, 2),
                            slo_minutes=res.slo_minutes, max_replicas=res.max_replicas, meets_slo=res.slo_minutes == 0)

    provisioned = cap.replicas_provisioned or 1
    today = result(f"as provisioned: {provisioned} replica(s) always on", "provisioned",
                   backtest.simulate(load, None, fixed_replicas=provisioned), floor=provisioned)
    policies = []
    for name, policy, unit in backtest.candidates(rate.value, service.value, mean_out, target_share=share,
                                                   cold_start_min=cold_min, scale_down_after_min=down):
        policies.append(result(name, policy.signal, backtest.simulate(load, policy), policy.target, unit,
                               policy.warm_floor, cold_min))
    meeting = sorted((p for p in policies if p.meets_slo), key=lambda p: (p.usd, p.gpu_hours, p.policy))
    if meeting:
        best = meeting[0]
        best.recommended = True
        saving = today.usd_per_month - best.usd_per_month
        text = (f"scale on {best.signal.replace('_', ' ')} with a warm floor of {best.warm_floor}: "
                f"{usd(best.usd_per_month)}/month against {usd(today.usd_per_month)} as provisioned "
                f"({usd(saving)} less), no minute queued past the target")
    else:
        best = None
        least = min(policies, key=lambda p: (p.slo_minutes, p.usd, p.policy)) if policies else None
        text = ("no candidate met the target in every minute" +
                (f"; the fewest misses: {least.policy} ({least.slo_minutes} minutes)" if least else ""))
    return ServerBacktest(model=server.model, hosts=server.hosts, minutes=minutes, arrivals=source, requests=sum(arrivals),
                          per_replica_rps=rate, service_s=service, slo_s=slo_s, slo_rule=rule,
                          scale_down_after_min=down, today=today, policies=policies,
                          recommended=best.policy if best else None, recommendation=text,
                          current_scaling=_current_scaling(ctx, server))


def _arrivals_from_metrics(ctx: PlanContext, server, start, minutes: int) -> tuple[list[int], str]:
    """Requests completed per scrape interval (vLLM request_success), spread evenly over its minutes."""
    out = [0.0] * minutes
    for _h, t, s, _gen, done, _r, _w in traffic.serving_intervals(ctx.store, server.hosts, server.model):
        if not done:
            continue
        first = int((t - start) / timedelta(minutes=1))
        span = max(int(round(s / 60)), 1)
        for m in range(first, first + span):
            if 0 <= m < minutes:
                out[m] += done / span
    return [int(round(x)) for x in out], "the vLLM metrics: requests completed per scrape interval, spread over its minutes"


def _current_scaling(ctx: PlanContext, server) -> str:
    series = traffic.replicas_over_time(ctx.store, server.hosts, server.model)
    if not series:
        return "no serving metrics: the replica count over time is unknown"
    counts = [n for _, n in series]
    if min(counts) == max(counts):
        return f"the metrics show {counts[0]} replica(s) throughout the window: no autoscaling"
    # Which signal does the replica count follow? Compare it with each signal per 5-minute bucket.
    rows = traffic.serving_intervals(ctx.store, server.hosts, server.model)
    buckets: dict = {}
    for _h, t, s, gen, done, running, waiting in rows:
        key = int(traffic.epoch_s(t) // 300)
        b = buckets.setdefault(key, [0.0, 0.0, 0.0, 0.0])
        b[0] += (running or 0) + (waiting or 0)
        b[1] += (gen or 0) / s
        b[2] += (done or 0) / s
        b[3] += 1
    reps = dict(series)
    keys = [k for k in sorted(buckets) if k in reps]
    best = None
    for i, name in enumerate(("queue depth (running + waiting)", "generated tokens/s", "requests/s")):
        xs, ys = [buckets[k][i] for k in keys], [reps[k] for k in keys]
        if len(set(xs)) > 1 and len(set(ys)) > 1:
            r = statistics.correlation(xs, ys)
            if best is None or r > best[1]:
                best = (name, r)
    if best is None:
        return f"the replica count varies ({min(counts)} to {max(counts)}) but no signal moves with it"
    return f"the replica count ({min(counts)} to {max(counts)}) follows {best[0]} most closely (correlation {best[1]:.2f})"
