"""Cost anatomy: where each feature's money goes, in the terms of the per-request cost function
(cost = tokens x price / E + fan-out x other calls + SLO headroom x infrastructure), and E itself.

Per feature:
- main_model: its own calls (kinds main, summarization and any kind not listed as extra), first attempts,
  less the retrieval context they carry;
- retrieval_context: the retrieved documents that reached the prompt (retrievals.context_tokens) in the
  first main call of each request, at that call's uncached input price;
- extra_calls: routing, moderation, planning, tool and embedding calls, and every retry;
- idle_headroom: self-hosted GPUs provisioned but not serving (the feature's share of its servers'
  provisioned GPU-hours less the time its calls were in flight).
API calls are counted at their prices; self-hosted calls by GPU time (the union of the feature's calls in
flight x the server's GPUs x the GPU-hour price), split among kinds by call duration.

E, per self-hosted server: generated tokens per second per GPU while serving (scrape intervals in which
it generated tokens), against the best sustained rate: a `replay capacity` sweep's, else the window's own
high-water mark (labelled; it shows how steady the load was, not how far from the GPU's limit), with the
model class's assumed rate beside it.
"""

from __future__ import annotations

from llmaudit.plan import classes, traffic
from llmaudit.plan.context import PlanContext
from llmaudit.plan.document import AnatomyPart, BatchingEfficiency, BatchingHour, FeatureAnatomy, Figure

# call_kind -> the part of the anatomy it belongs to (kinds not listed are the feature's own work).
EXTRA_KINDS = {"routing", "moderation", "planning", "tool", "embedding"}

_API_SQL = """
WITH c AS (
    SELECT feature, trace_id, span_id, call_kind, coalesce(is_retry, FALSE) AS retry, cost_usd, start_time,
           greatest(coalesce(input_tokens, 0) - coalesce(cached_input_tokens, 0), 0) AS uncached,
           coalesce(input_price_per_mtok, 0) AS in_price
    FROM llm_calls WHERE NOT coalesce(self_hosted, FALSE)
),
ctx AS (SELECT trace_id, sum(context_tokens) AS tokens FROM retrievals WHERE context_tokens > 0 GROUP BY trace_id),
first_main AS (
    SELECT trace_id, arg_min(span_id, start_time) AS span_id FROM c WHERE call_kind = 'main' AND NOT retry GROUP BY trace_id
),
ctx_cost AS (
    SELECT c.feature, sum(least(ctx.tokens, c.uncached) * c.in_price / 1e6) AS usd
    FROM first_main f JOIN c ON c.trace_id = f.trace_id AND c.span_id = f.span_id JOIN ctx ON ctx.trace_id = f.trace_id
    WHERE c.cost_usd IS NOT NULL
    GROUP BY c.feature
)
SELECT c.feature, CASE WHEN c.retry THEN 'retry' ELSE coalesce(c.call_kind, 'main') END AS kind,
       coalesce(sum(c.cost_usd), 0), count(*) FILTER (WHERE c.cost_usd IS NULL), any_value(x.usd)
FROM c LEFT JOIN ctx_cost x ON x.feature IS NOT DISTINCT FROM c.feature
GROUP BY ALL
"""


def _kind_part(kind: str) -> str:
    return "extra_calls" if kind in EXTRA_KINDS or kind == "retry" else "main_model"


def feature_anatomy(ctx: PlanContext, groups: list[traffic.CallGroup], servers: list[traffic.Server]) -> list[FeatureAnatomy]:
    from llmaudit.plan.capacity import server_gpu

    store = ctx.store
    features = sorted({g.feature for g in groups}, key=lambda f: (f is None, f or ""))
    acc = {f: {"main_model": 0.0, "extra_calls": 0.0, "retrieval_context": 0.0, "idle_headroom": 0.0, "kinds": {},
               "unpriced": 0, "ctx": 0.0} for f in features}
    for feature, kind, usd, unpriced, ctx_usd in store.con.execute(_API_SQL).fetchall():
        a = acc.setdefault(feature, {"main_model": 0.0, "extra_calls": 0.0, "retrieval_context": 0.0, "idle_headroom": 0.0,
                                     "kinds": {}, "unpriced": 0, "ctx": 0.0})
        part = _kind_part(kind)
        a[part] += usd
        a["unpriced"] += unpriced
        if part == "extra_calls":
            a["kinds"][kind] = a["kinds"].get(kind, 0.0) + usd
        a["ctx"] = ctx_usd or 0.0
    for a in acc.values():  # the context is part of the main calls' cost
        moved = min(a["ctx"], a["main_model"])
        a["main_model"] -= moved
        a["retrieval_context"] += moved

    # Self-hosted: GPU time, the servers' provisioned hours shared by the features' time in flight.
    for server in servers:
        gpu, price, gpus = server_gpu(ctx, server)
        provisioned_h = traffic.provisioned_gpu_hours(store, server.hosts)
        mine = [g for g in groups if g.self_hosted and g.model == server.model]
        flight = {g.feature: traffic.union_seconds(traffic.call_intervals(store, server.model, g.feature)) / 3600 * gpus
                  for g in mine}
        total_flight = sum(flight.values())
        kinds = dict(store.con.execute("""
            SELECT coalesce(feature, '') || chr(0) || CASE WHEN coalesce(is_retry, FALSE) THEN 'retry' ELSE coalesce(call_kind, 'main') END,
                   sum(duration_ms) FROM llm_calls WHERE model = ? AND coalesce(self_hosted, FALSE) GROUP BY 1""",
                                       [server.model]).fetchall())
        for g in mine:
            a = acc[g.feature]
            busy_usd = flight[g.feature] * price
            durations = {k.split(chr(0), 1)[1]: v or 0.0 for k, v in kinds.items() if k.split(chr(0), 1)[0] == (g.feature or "")}
            total_d = sum(durations.values()) or 1.0
            for kind, d in durations.items():
                part = _kind_part(kind)
                a[part] += busy_usd * d / total_d
                if part == "extra_calls":
                    a["kinds"][kind] = a["kinds"].get(kind, 0.0) + busy_usd * d / total_d
            if provisioned_h and total_flight:
                share = flight[g.feature] / total_flight
                a["idle_headroom"] += max(provisioned_h * share - flight[g.feature], 0.0) * price
            elif not provisioned_h:
                ctx.notes.append(f"{g.feature}: no GPU metrics for {server.model}'s servers, so its idle headroom is unknown")

    by_feature = {}
    for g in groups:
        d = by_feature.setdefault(g.feature, {"calls": 0})
        d["calls"] += g.calls
    requests = dict(store.con.execute("SELECT feature, count(*) FROM requests GROUP BY feature").fetchall()) \
        if store.table_exists("requests") else {}
    out = []
    f = ctx.window.month_factor
    for feature in features:
        a = acc[feature]
        total = sum(a[p] for p in ("main_model", "extra_calls", "retrieval_context", "idle_headroom"))
        n_req = int(requests.get(feature, 0))
        parts = [AnatomyPart(part=p, usd=round(a[p], 4), usd_per_month=round(a[p] * f, 2),
                             share=round(a[p] / total, 4) if total else None, detail=_PART_TEXT[p])
                 for p in ("main_model", "extra_calls", "retrieval_context", "idle_headroom")]
        calls = by_feature[feature]["calls"]
        out.append(FeatureAnatomy(
            feature=feature, requests=n_req, llm_calls=calls, calls_per_request=round(calls / n_req, 3) if n_req else None,
            usd=round(total, 4), usd_per_month=round(total * f, 2),
            usd_per_request=round(total / n_req, 6) if n_req else None, parts=parts,
            extra_calls_usd={k: round(v, 4) for k, v in sorted(a["kinds"].items())}, unpriced_calls=a["unpriced"]))
    return sorted(out, key=lambda x: (-x.usd, x.feature or ""))


_PART_TEXT = {
    "main_model": "the feature's own calls, first attempts, less the retrieved context they carry",
    "extra_calls": "routing, moderation, planning, tool and embedding calls, and retries",
    "retrieval_context": "retrieved documents in the prompt of each request's first main call, at its input price",
    "idle_headroom": "self-hosted GPUs provisioned while none of the feature's calls was in flight",
}


def batching(ctx: PlanContext, servers: list[traffic.Server]) -> list[BatchingEfficiency]:
    from llmaudit.plan.capacity import server_gpu

    out = []
    for server in servers:
        rows = traffic.serving_intervals(ctx.store, server.hosts, server.model)
        serving = [(t, s, gen) for _h, t, s, gen, _done, _r, _w in rows if gen and gen > 0]
        if not serving:
            if server.has_serving_metrics:
                ctx.notes.append(f"{server.model}: the vLLM metrics show no generated tokens: no batching efficiency")
            continue
        gpu, _price, gpus = server_gpu(ctx, server)
        gpus = max(gpus, 1.0)
        total_s = sum(s for _t, s, _g in serving)
        achieved = sum(g for _t, _s, g in serving) / total_s / gpus
        high = max(g / s for _t, s, g in serving) / gpus
        sweep = ctx.sweep_for(server.model, server.hosts)
        if sweep and sweep["capacity_output_tokens_per_s"]:
            ref = Figure(value=sweep["capacity_output_tokens_per_s"] / (sweep["gpus_per_replica"] or 1.0),
                         unit="generated tokens/s per GPU", source="measured",
                         detail=f"replay capacity {sweep['capacity_id']} against {sweep['served_model']}: generated tokens/s "
                                "at the highest rate meeting its latency target")
        else:
            ref = Figure(value=high, unit="generated tokens/s per GPU", source="observed",
                         detail="the window's own high-water mark (the busiest scrape interval); no replay capacity sweep "
                                "exists, so E says how steady the load was, not how far the GPU is from its limit")
        cls = classes.class_for_model(server.model)
        tp = classes.throughput(cls, gpu) if cls else None
        class_fig = None
        if tp is not None:
            class_fig = ctx.figure_assumed(Figure(
                value=tp.decode_tokens_per_s / tp.gpus_per_replica, unit="generated tokens/s per GPU", source="assumed",
                detail=tp.decode_source), f"{cls} on {gpu}: generated tokens/s per replica")
        hours: dict[int, list[float]] = {}
        for t, s, g in serving:
            h = hours.setdefault(t.hour, [0.0, 0.0])
            h[0] += s
            h[1] += g
        by_hour = [BatchingHour(hour_utc=h, serving_seconds=round(s, 1), tokens_per_s_per_gpu=round(g / s / gpus, 3),
                                efficiency=round(g / s / gpus / ref.value, 4) if ref.value else None)
                   for h, (s, g) in sorted(hours.items())]
        out.append(BatchingEfficiency(
            model=server.model, hosts=server.hosts, gpus=int(round(gpus * max(len(server.hosts), 1))), reference=ref,
            class_rate=class_fig, tokens_per_s_per_gpu=round(achieved, 3),
            efficiency=round(achieved / ref.value, 4) if ref.value else None,
            efficiency_vs_class=round(achieved / class_fig.value, 6) if class_fig and class_fig.value else None,
            by_hour=by_hour))
    return out
