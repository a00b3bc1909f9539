"""From measured runs to dollars, on the finding's own cost basis, and into the store and the findings.

A replay is a measurement only when every run of both variants succeeded (at least --min-success of
its requests) and the server's token counts agree with the workloads (`check_runs`). Then:

    api_tokens (a model priced per token, as its estimate is):
        cost of a run          = its requests' server-measured tokens (prompt, cached, completion) x the
                                 model's catalog prices, per successful request x requests
        saved per request      = (baseline cost - remediated cost) / baseline requests      (each repeat)
    gpu_time (a self-hosted model, and "if self-hosted" beside api_tokens):
        saved GPU-s per request = (baseline GPU-s - remediated GPU-s) / baseline requests   (each repeat)
        dollars                 = GPU-seconds x GPU-hour price / 3600
    in the window = mean x production requests of the finding in its window
    per month     = x 30 days / observed window days   (the rule engine's extrapolation)

The spread is the standard deviation across repeats, carried through the same factors. Every
factor is listed in `assumptions` and printed, because each one is a choice someone may disagree
with: the replay server stands in for production's, the sample for the whole window, the window for
a month.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from llmaudit.findings.model import Finding, MeasuredSaving
from llmaudit.store import Store

if TYPE_CHECKING:  # the run machinery (aiohttp) is only imported by code that replays, not by reports
    from llmaudit.replay.run import ReplayResult, RunRecord
    from llmaudit.replay.workload import Workload

DAYS_PER_MONTH = 30.0
DEFAULT_GPU = "H100"


class PriceChoiceError(ValueError):
    pass


@dataclass(frozen=True)
class GpuHourPrice:
    usd_per_hour: float
    gpu: str
    source: str


def gpu_hour_price(gpu: str | None = None, usd_per_hour: float | None = None, prices_file=None) -> GpuHourPrice:
    """An explicit price, else the catalog's price for the GPU (default H100)."""
    if usd_per_hour is not None:
        if usd_per_hour <= 0:
            raise PriceChoiceError("--gpu-hour-usd must be > 0")
        return GpuHourPrice(usd_per_hour, gpu or "given", "--gpu-hour-usd")
    from llmaudit.pricing import load_catalog

    catalog = load_catalog(prices_file)
    name = gpu or DEFAULT_GPU
    entry = catalog.gpu(name)
    if entry is None:
        known = ", ".join(e.name for e in catalog.gpus()) or "none"
        raise PriceChoiceError(f"no GPU-hour price for {name!r} in the price catalog (known: {known}); "
                               "pass --gpu-hour-usd")
    basis = f" ({entry.price.basis})" if entry.price.basis else ""
    return GpuHourPrice(entry.price.usd_per_hour, entry.name, f"{entry.origin}{basis}")


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _sd(xs: list[float]) -> float | None:
    """Sample standard deviation; None for fewer than two values (one run says nothing of spread)."""
    return statistics.stdev(xs) if len(xs) > 1 else None


def _r(x, nd=6):
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return None
    return round(x, nd)


# The server's prompt-token counts must match what the workload asked for: usage (per request, exact for
# token-id prompts) within this share, /metrics (counted server-side, failed requests included) within
# the looser one.
USAGE_TOLERANCE = 0.01
METRICS_TOLERANCE = 0.02


def run_problems(run: "RunRecord", min_success: float) -> list[str]:
    """Why this run cannot be part of a measurement (empty: it can)."""
    s = run.summary
    problems = []
    if run.aborted:
        problems.append(run.aborted)
    n = s["requests"]
    if n and s["ok"] / n < min_success:
        first = f"; first error: {s['first_errors'][0]}" if s.get("first_errors") else ""
        problems.append(f"{s['ok']:,} of {n:,} requests succeeded ({s['ok'] / n:.1%}, below --min-success "
                        f"{min_success:.0%}){first}")
    ok = [q for q in run.requests if q["status"] == "ok"]
    asked = sum(q["input_tokens"] for q in ok)
    reported = [q["prompt_tokens"] for q in ok if q.get("prompt_tokens") is not None]
    if ok and len(reported) < len(ok):
        problems.append(f"the server reported no token usage for {len(ok) - len(reported):,} successful request(s)")
    elif ok and abs(sum(reported) - asked) > USAGE_TOLERANCE * asked:
        problems.append(f"the server counted {sum(reported):,} prompt tokens where the workload sent {asked:,}: it does not "
                        "take token-id prompts as sent")
    server = run.server.get("prompt_tokens") if run.server.get("available") else None
    if server is not None and ok:
        sent_all = sum(q["input_tokens"] for q in run.requests if q["status"] not in ("connect_error", "not_sent"))
        if not (1 - METRICS_TOLERANCE) * sum(reported) <= server <= (1 + METRICS_TOLERANCE) * sent_all:
            problems.append(f"the server's /metrics counted {server:,.0f} prompt tokens in the run, where the successful "
                            f"requests had {sum(reported):,} (another client on the server?)")
    return problems


def check_runs(result: "ReplayResult", *, min_success: float) -> list[str]:
    """Mark each run ok or failed (RunRecord.status) and say why the replay is not a measurement (empty
    when it is). Runs cut short by Ctrl-C are left out of the measurement, not failed."""
    from llmaudit.replay.run import pairs

    reasons = []
    if result.aborted:
        reasons.append(result.aborted)
    for r in result.runs:
        if r.interrupted:
            r.status = "interrupted: left out"
            continue
        problems = run_problems(r, min_success)
        r.status = "ok" if not problems else "failed: " + "; ".join(problems)
        reasons.extend(f"run {r.run_index} ({r.variant}): {p}" for p in problems)
    if not reasons and not pairs(result):
        reasons.append("no complete baseline/remediated pair of runs")
    return list(dict.fromkeys(reasons))


def _run_token_cost(run: "RunRecord", workload: "Workload", prices: dict, scale: float) -> tuple[float, dict[str, float]]:
    """The run's server-measured tokens priced at each request's production model, per request of the
    workload (successful requests stand for the few that failed), scaled back to production lengths."""
    by_id = {r.id: r for r in workload.requests}
    ok = [q for q in run.requests if q["status"] == "ok"]
    usd = prompt = cached = completion = 0.0
    for q in ok:
        p = prices[by_id[q["id"]].model]
        c = q.get("cached_tokens") or 0
        pt, ct = q["prompt_tokens"] or 0, q["completion_tokens"] or 0
        usd += ((pt - c) * p.input + c * (p.cached_input if p.cached_input is not None else p.input)
                + ct * (p.output or 0.0)) / 1e6
        prompt, cached, completion = prompt + pt, cached + c, completion + ct
    k = len(workload.requests) / len(ok) / scale if ok else 0.0
    return usd * k, {"prompt": prompt * k, "cached_prompt": cached * k, "completion": completion * k}


def _variant_figures(runs: list["RunRecord"]) -> dict[str, Any]:
    def mean_of(get):
        vals = [v for v in (get(r) for r in runs) if v is not None]
        return _r(_mean(vals))

    return {
        "runs": len(runs),
        "requests": runs[0].summary["requests"] if runs else None,
        "prompt_tokens": mean_of(lambda r: r.summary["prompt_tokens"]),
        "completion_tokens": mean_of(lambda r: r.summary["completion_tokens"]),
        "server_prompt_tokens": mean_of(lambda r: r.server.get("prompt_tokens")),
        "server_generation_tokens": mean_of(lambda r: r.server.get("generation_tokens")),
        "prefix_cache_hit_rate": mean_of(lambda r: r.server.get("prefix_cache_hit_rate")),
        "busy_s": mean_of(lambda r: r.busy_s),
        "busy_s_each": [_r(r.busy_s) for r in runs],
        "gpu_seconds_per_request": mean_of(lambda r: r.gpu_seconds_per_request),
        "throughput_rps": mean_of(lambda r: r.summary["throughput_rps"]),
        "goodput_rps": mean_of(lambda r: r.summary["goodput_rps"]),
        "ttft_p50_s": mean_of(lambda r: r.summary["ttft_p50_s"]),
        "ttft_p99_s": mean_of(lambda r: r.summary["ttft_p99_s"]),
        "itl_p50_s": mean_of(lambda r: r.summary["itl_p50_s"]),
        "e2e_p50_s": mean_of(lambda r: r.summary["e2e_p50_s"]),
        "e2e_p99_s": mean_of(lambda r: r.summary["e2e_p99_s"]),
        "queue_time_mean_s": mean_of(lambda r: r.server.get("queue_time_s_mean")),
        "preemptions": mean_of(lambda r: r.server.get("preemptions")),
        "kv_cache_usage_max": mean_of(lambda r: r.sampled.get("kv_cache_usage_max")),
        "errors": sum(r.summary["errors"] for r in runs),
    }


def measure(result: "ReplayResult", baseline: "Workload", remediated: "Workload", price: GpuHourPrice, *,
            finding: Finding | None = None, window_days: float | None = None, gpus_per_server: float = 1.0,
            token_prices: dict | None = None, token_scale: float = 1.0,
            assumptions: list[str] | None = None) -> MeasuredSaving:
    """The measured saving of remediated over baseline, scaled to production and priced. Call it only when
    check_runs found nothing wrong.

    token_prices ({request model: ModelPrice}) puts the saving on the api_tokens basis: the finding's
    calls are priced per token, so its measured saving is too; GPU time is then shown as what the fix
    would save if the model were self-hosted. Without it, GPU time is the measured saving. token_scale
    is the factor --fit-context scale shrank token counts by."""
    from llmaudit.replay.run import BUSY_METHOD, pairs

    done = pairs(result)
    n_base = len(baseline.requests)
    per_rep = [(a.gpu_seconds - b.gpu_seconds) / n_base / token_scale for a, b in done]
    relative = [1.0 - b.busy_s / a.busy_s for a, b in done if a.busy_s > 0]
    h = baseline.header
    production = h.production_requests or n_base
    if window_days is None and h.window_seconds:
        window_days = h.window_seconds / 86400.0
    mean_saved, sd_saved = _mean(per_rep), _sd(per_rep)
    basis = "api_tokens" if token_prices else "gpu_time"

    assumptions = [*(assumptions or []),
        BUSY_METHOD + f" ({gpus_per_server:g} GPU(s) per server)",
        f"the replay server ({result.config.endpoint}, model {result.runs[0].model if result.runs else '?'}) "
        "stands in for production's: its GPU-seconds are priced as production GPU-seconds",
        f"GPU-hour price ${price.usd_per_hour:g} for {price.gpu} from {price.source}",
        f"runs alternate ABBA; {len(done)} complete baseline/remediated pair(s); spread = standard deviation across pairs",
    ]
    if h.production_requests:
        assumptions.append(f"the {n_base} replayed baseline requests stand for the {production} of the finding's "
                           f"traffic in its window (x{production / n_base:.3g})")
    else:
        assumptions.append("the workload does not say how much production traffic it stands for: the replayed "
                           "requests are taken as the whole volume")
    assumptions.extend(f"workload: {a}" for a in h.assumptions)
    cfg = result.config
    span = baseline.span_s
    if cfg.duration is not None or cfg.rate is not None or cfg.speedup is not None:
        # Compressing the arrivals raises concurrency, and busy time depends on it: say so.
        how = (f"compressed to {cfg.duration:g} s" if cfg.duration is not None
               else f"rescaled to {cfg.rate:g} requests/s" if cfg.rate is not None else f"sped up x{cfg.speedup:g}")
        assumptions.append(f"arrivals {how} (recorded span {span:,.0f} s): requests overlap more than in production, "
                           "so batching shares more GPU time than it did there; both variants are rescaled alike")
    if remediated.header.transformation:
        assumptions.append(f"remediation: {remediated.header.transformation}")

    factor = production * DAYS_PER_MONTH / window_days if window_days else None
    if window_days:
        assumptions.append(f"linear: {window_days:.3g} days observed, scaled to {DAYS_PER_MONTH:.0f} days")
    else:
        assumptions.append("no observed window: no monthly figure")
    gpu_s_month = gpu_month = gpu_spread = None
    if mean_saved is not None and factor is not None:
        gpu_s_month = mean_saved * factor
        gpu_month = gpu_s_month * price.usd_per_hour / 3600.0
        if sd_saved is not None:
            gpu_spread = sd_saved * factor * price.usd_per_hour / 3600.0

    tokens_saved: dict[str, float | None] = {}
    token_usd_each: list[float] = []
    if token_prices:
        saved_each = []
        for a, b in done:
            usd_a, tok_a = _run_token_cost(a, baseline, token_prices, token_scale)
            usd_b, tok_b = _run_token_cost(b, remediated, token_prices, token_scale)
            token_usd_each.append((usd_a - usd_b) / n_base)
            saved_each.append({k: (tok_a[k] - tok_b[k]) / n_base for k in tok_a})
        tokens_saved = {k: _r(_mean([x[k] for x in saved_each])) for k in ("prompt", "cached_prompt", "completion")}
        models = sorted({r.model or "?" for r in baseline.requests})
        assumptions.append("cost basis: API tokens, as the estimate: each request's server-measured prompt (cached "
                           "part at the cached rate) and completion tokens at its production model's catalog prices ("
                           + ", ".join(models) + "); GPU time is shown apart, as what the fix would save if the model "
                           f"were self-hosted on {price.gpu}")
    else:
        assumptions.append(f"cost basis: GPU time ({price.gpu}), as a self-hosted model is priced")
    if basis == "api_tokens":
        mean_usd, sd_usd = _mean(token_usd_each), _sd(token_usd_each)
        usd_month = mean_usd * factor if mean_usd is not None and factor is not None else None
        spread_month = sd_usd * factor if sd_usd is not None and factor is not None else None
    else:
        usd_month, spread_month = gpu_month, gpu_spread

    base_runs = [a for a, _ in done] or result.by_variant("baseline")
    rem_runs = [b for _, b in done] or result.by_variant("remediated")
    base_fig, rem_fig = _variant_figures(base_runs), _variant_figures(rem_runs)
    detail: dict[str, Any] = {
        "replay_id": result.replay_id,
        "endpoint": result.config.endpoint,
        "served_model": result.runs[0].model if result.runs else None,
        "method": BUSY_METHOD,
        "baseline": base_fig,
        "remediated": rem_fig,
        "prompt_tokens_reduction": _reduction(base_fig["prompt_tokens"], rem_fig["prompt_tokens"]),
        "busy_time_reduction": _r(_mean(relative), 4),
        "busy_time_reduction_each": [_r(x, 4) for x in relative],
        "gpu_seconds_saved_per_request_each": [_r(x) for x in per_rep],
        "gpu_seconds_saved_per_request_sd": _r(sd_saved),
        "gpu_seconds_saved_per_month": _r(gpu_s_month, 3),
        "production_requests": production,
        "replayed_requests": n_base,
        "window_days": _r(window_days, 4),
        "gpu_hour_usd": price.usd_per_hour,
        "gpu": price.gpu,
        "basis": basis,
        "usd_saved_per_request_each": [_r(x) for x in token_usd_each] if token_prices else None,
        "token_scale": token_scale,
        "estimated_usd_per_month": finding.waste.usd_per_month if finding else None,
        "slo": {"ttft_s": result.config.slo_ttft_s, "e2e_s": result.config.slo_e2e_s},
        "interrupted": result.interrupted,
        "assumptions": assumptions,
    }
    return MeasuredSaving(
        basis=basis,
        # Four decimals: a replayed sample can be small, and cents would round its spread to zero.
        usd_per_month=_r(usd_month, 4),
        usd_per_month_spread=_r(spread_month, 4),
        gpu_seconds_saved_per_request=_r(mean_saved),
        gpu_usd_per_month=_r(gpu_month, 4),
        gpu=price.gpu,
        tokens_saved_per_request=tokens_saved,
        runs=len(done) * 2,
        detail=detail,
    )


def _reduction(a, b):
    if a is None or b is None:
        return None
    return {"baseline": a, "remediated": b, "saved": _r(a - b), "relative": _r(1 - b / a, 4) if a else None}


# ---------------------------------------------------------------- store

def save(store: Store, result: "ReplayResult", *, finding: Finding | None = None,
         measured: MeasuredSaving | None = None) -> None:
    """Runs, their requests and the measured saving, in one transaction."""
    fp = finding.fingerprint if finding else None
    rule = finding.rule_id if finding else None
    cat = finding.category if finding else None
    with store.transaction() as con:
        for r in result.runs:
            _insert_run(con, r, fp, rule, cat)
            rows = [(r.replay_id, r.run_index, q["id"], q["status"], q["scheduled_s"], q["sent_s"], q["lateness_s"],
                     q["ttft_s"], q["itl_s"], q["e2e_s"], q["input_tokens"], q["output_tokens"], q["prompt_tokens"],
                     q["completion_tokens"], q["http_status"], q["error"]) for q in r.requests]
            con.execute("DELETE FROM replay_requests WHERE replay_id = ? AND run_index = ?", [r.replay_id, r.run_index])
            if rows:
                con.executemany("INSERT INTO replay_requests VALUES (" + ", ".join(["?"] * 16) + ")", rows)
        if measured is not None:
            con.execute("INSERT OR REPLACE INTO replay_savings VALUES (?, ?, ?, ?, ?)",
                        [result.replay_id, fp, rule, datetime.now(timezone.utc).replace(tzinfo=None),
                         measured.model_dump_json()])


_RUN_COLUMNS = (
    "replay_id, run_index, repeat, variant, finding, rule_id, category, workload, workload_sha256, endpoint, "
    "served_model, started_at, interrupted, requests, ok, errors, prompt_tokens, completion_tokens, "
    "server_prompt_tokens, server_generation_tokens, wall_s, busy_s, gpu_seconds, gpu_seconds_per_request, "
    "throughput_rps, goodput_rps, output_tokens_per_s, ttft_p50_s, ttft_p99_s, itl_p50_s, itl_p99_s, e2e_p50_s, "
    "e2e_p99_s, summary, server, sampled, status"
)


def _insert_run(con, r: "RunRecord", fp, rule, cat) -> None:
    s = r.summary
    values = [r.replay_id, r.run_index, r.repeat, r.variant, fp, rule, cat, r.workload, r.workload_sha256,
              r.endpoint, r.model, r.started_at, r.interrupted, s["requests"], s["ok"], s["errors"],
              s["prompt_tokens"], s["completion_tokens"], r.server.get("prompt_tokens"),
              r.server.get("generation_tokens"), s["wall_s"], r.busy_s, r.gpu_seconds, r.gpu_seconds_per_request,
              s["throughput_rps"], s["goodput_rps"], s["output_tokens_per_s"], s["ttft_p50_s"], s["ttft_p99_s"],
              s["itl_p50_s"], s["itl_p99_s"], s["e2e_p50_s"], s["e2e_p99_s"],
              json.dumps(s, default=str), json.dumps(r.server, default=str), json.dumps(r.sampled, default=str), r.status]
    con.execute(f"INSERT OR REPLACE INTO replay_runs ({_RUN_COLUMNS}) VALUES ({', '.join(['?'] * len(values))})", values)


def latest_measured(store: Store, fingerprint: str) -> MeasuredSaving | None:
    if not store.table_exists("replay_savings"):
        return None
    row = store.con.execute(
        "SELECT measured FROM replay_savings WHERE finding = ? ORDER BY created_at DESC, replay_id DESC LIMIT 1",
        [fingerprint]).fetchone()
    return MeasuredSaving.model_validate_json(row[0]) if row else None


def attach_measured(store: Store, findings: list[Finding]) -> list[Finding]:
    """Fill each finding's `measured` from its latest replay in the store (reports then show measured
    beside estimated). Findings never replayed keep measured = None."""
    if not store.table_exists("replay_savings"):
        return findings
    for f in findings:
        got = latest_measured(store, f.fingerprint)
        if got is not None:
            f.measured = got
    return findings
