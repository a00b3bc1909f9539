"""From measured GPU time to dollars, and into the store and the findings.

    saved GPU-s per request = (baseline GPU-s - remediated GPU-s) / baseline requests    (each repeat)
    saved GPU-s in window   = mean of that x production requests of the finding in its window
    per month              = x 30 days / observed window days   (the rule engine's extrapolation)
    dollars                = GPU-seconds x GPU-hour price / 3600

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
            finding: Finding | None = None, window_days: float | None = None,
            gpus_per_server: float = 1.0) -> MeasuredSaving:
    """The measured saving of remediated over baseline, scaled to production and priced."""
    from llmaudit.replay.run import BUSY_METHOD, pairs

    done = pairs(result)
    n_base = len(baseline.requests)
    per_rep = [(a.gpu_seconds - b.gpu_seconds) / n_base for a, b in done]
    relative = [1.0 - b.busy_s / a.busy_s for a, b in done if a.busy_s > 0]
    h = baseline.header
    production = h.production_requests or n_base
    if window_days is None and h.window_seconds:
        window_days = h.window_seconds / 86400.0
    mean_saved, sd_saved = _mean(per_rep), _sd(per_rep)

    assumptions = [
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

    usd_month = spread_month = gpu_s_month = None
    if mean_saved is not None:
        gpu_s_window = mean_saved * production
        if window_days:
            factor = DAYS_PER_MONTH / window_days
            gpu_s_month = gpu_s_window * factor
            usd_month = gpu_s_month * price.usd_per_hour / 3600.0
            if sd_saved is not None:
                spread_month = sd_saved * production * factor * price.usd_per_hour / 3600.0
            assumptions.append(f"linear: {window_days:.3g} days observed, scaled to {DAYS_PER_MONTH:.0f} days")
        else:
            assumptions.append("no observed window: no monthly figure")

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
        "estimated_usd_per_month": finding.waste.usd_per_month if finding else None,
        "slo": {"ttft_s": result.config.slo_ttft_s, "e2e_s": result.config.slo_e2e_s},
        "interrupted": result.interrupted,
        "assumptions": assumptions,
    }
    return MeasuredSaving(
        # Four decimals: a replayed sample can be small, and cents would round its spread to zero.
        usd_per_month=_r(usd_month, 4),
        usd_per_month_spread=_r(spread_month, 4),
        gpu_seconds_saved_per_request=_r(mean_saved),
        runs=len(result.runs),
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
    "e2e_p99_s, summary, server, sampled"
)


def _insert_run(con, r: "RunRecord", fp, rule, cat) -> None:
    s = r.summary
    values = [r.replay_id, r.run_index, r.repeat, r.variant, fp, rule, cat, r.workload, r.workload_sha256,
              r.endpoint, r.model, r.started_at, r.interrupted, s["requests"], s["ok"], s["errors"],
              s["prompt_tokens"], s["completion_tokens"], r.server.get("prompt_tokens"),
              r.server.get("generation_tokens"), s["wall_s"], r.busy_s, r.gpu_seconds, r.gpu_seconds_per_request,
              s["throughput_rps"], s["goodput_rps"], s["output_tokens_per_s"], s["ttft_p50_s"], s["ttft_p99_s"],
              s["itl_p50_s"], s["itl_p99_s"], s["e2e_p50_s"], s["e2e_p99_s"],
              json.dumps(s, default=str), json.dumps(r.server, default=str), json.dumps(r.sampled, default=str)]
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
