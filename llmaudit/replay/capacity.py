"""Capacity mode: how many requests per second one server sustains within the SLO, and so how many
replicas the observed peak needs against how many are provisioned.

The sweep sends the workload's request shapes (input and output lengths, shared prefixes) as a
Poisson stream at a fixed rate for a fixed time, one step per rate: the rate doubles while the step
meets the SLO, then bisects between the last rate that met it and the first that did not. A step
meets the SLO when at least `slo_target` of its requests succeed within --slo-ttft / --slo-e2e.

    replicas needed = ceil(peak rate x (1 + headroom) / highest rate meeting the SLO)

The peak is the busiest minute of the finding's traffic in production (or --peak-rps).
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
from pydantic import BaseModel, Field

from llmaudit.replay import metrics as m
from llmaudit.replay.client import ClientOptions, _base, replay_async, summarize
from llmaudit.replay.workload import Header, Request, TokenSpace, Workload

HOURS_PER_MONTH = 730.0
# Evidence keys a finding may carry for what is provisioned, in order of preference.
PROVISIONED_KEYS = ("replicas_provisioned", "provisioned_replicas", "replicas", "servers", "provisioned_servers")


class CapacityConfig(BaseModel):
    endpoint: str
    model: str | None = None
    slo_ttft_s: float | None = None
    slo_e2e_s: float | None = None
    slo_target: float = Field(0.95, gt=0, le=1)
    step_s: float = Field(20.0, gt=0, description="seconds of traffic per rate step")
    start_rps: float = Field(1.0, gt=0)
    max_rps: float = Field(512.0, gt=0)
    refine: int = Field(3, ge=0, description="bisection steps after the first failing rate")
    timeout_s: float = 120.0
    seed: int = 0
    token_low: int = 10
    token_high: int = 2000
    api_key: str | None = None


@dataclass
class Step:
    rate: float
    passed: bool
    summary: dict[str, Any]
    results: list = field(default_factory=list)  # the step's RequestResults (stored by capacity_store)


@dataclass
class CapacityResult:
    config: CapacityConfig
    steps: list[Step] = field(default_factory=list)
    capacity_rps: float | None = None
    interrupted: bool = False


def poisson_workload(shapes: Workload, rate: float, duration_s: float, seed: int) -> Workload:
    """Requests with the shapes' lengths (cycled in time order), Poisson arrivals at `rate`. Seeded."""
    rng = random.Random(f"{seed}:{rate:.6g}")
    base = shapes.sorted().requests
    out: list[Request] = []
    t = 0.0
    # Bounded: at most rate x duration x 3 + 10 requests, whatever the draws.
    limit = int(rate * duration_s * 3) + 10
    while len(out) < limit:
        t += rng.expovariate(rate)
        if t > duration_s:
            break
        src = base[len(out) % len(base)]
        out.append(src.model_copy(update={"id": f"c{len(out)}", "arrival_s": round(t, 6)}))
    if not out:
        out.append(base[0].model_copy(update={"id": "c0", "arrival_s": 0.0}))
    return Workload(header=Header(name=f"{shapes.header.name}@{rate:g}rps", variant="custom"), requests=out)


def meets(summary: dict[str, Any], target: float) -> bool:
    sent = summary["sent"]
    return sent > 0 and (summary["slo_attainment"] or 0.0) >= target


async def sweep_async(shapes: Workload, cfg: CapacityConfig, *, stop: asyncio.Event | None = None,
                      on_step: Callable[[Step], Any] | None = None) -> CapacityResult:
    stop = stop or asyncio.Event()
    result = CapacityResult(config=cfg)
    opts = ClientOptions(endpoint=cfg.endpoint, model=cfg.model, timeout_s=cfg.timeout_s, api_key=cfg.api_key,
                         token_space=TokenSpace(low=cfg.token_low, high=cfg.token_high))
    base = _base(cfg.endpoint)

    async with aiohttp.ClientSession() as session:
        async def step(rate: float) -> Step | None:
            await m.wait_idle(session, base, opts.model, timeout_s=cfg.timeout_s, stop=stop)
            if stop.is_set():
                result.interrupted = True
                return None
            wl = poisson_workload(shapes, rate, cfg.step_s, cfg.seed)
            meas = await replay_async(wl, opts, salt=f"capacity:{cfg.seed}:{rate:.6g}", stop=stop)
            if meas.interrupted:
                result.interrupted = True
                return None
            if opts.model is None:
                opts.model = meas.model
            s = summarize(meas, slo_ttft_s=cfg.slo_ttft_s, slo_e2e_s=cfg.slo_e2e_s)
            st = Step(rate=rate, passed=meets(s, cfg.slo_target), summary=s, results=meas.results)
            result.steps.append(st)
            if on_step:
                on_step(st)
            return st

        good, bad = None, None
        rate = cfg.start_rps
        # Doubling: bounded by max_rps (at most log2(max/start) + 1 steps).
        while rate <= cfg.max_rps and not stop.is_set():
            st = await step(rate)
            if st is None:
                break
            if st.passed:
                good = rate
                rate *= 2
            else:
                bad = rate
                break
        lo = good if good is not None else 0.0
        for _ in range(cfg.refine if bad is not None else 0):
            if stop.is_set():
                break
            mid = (lo + bad) / 2 if lo else bad / 2
            if mid < cfg.start_rps / 8:
                break
            st = await step(mid)
            if st is None:
                break
            if st.passed:
                lo = good = mid
            else:
                bad = mid
        result.capacity_rps = good
    return result


def sweep(shapes: Workload, cfg: CapacityConfig, **kwargs) -> CapacityResult:
    from llmaudit.replay.client import _with_sigint, run_loop

    return run_loop(_with_sigint(sweep_async, shapes, cfg, **kwargs))


def provisioned_from(evidence: dict[str, Any]) -> float | None:
    for key in PROVISIONED_KEYS:
        v = evidence.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    return None


def replicas(peak_rps: float | None, capacity_rps: float | None, provisioned: float | None, *,
             headroom: float = 0.0, gpus_per_replica: float = 1.0, gpu_hour_usd: float | None = None) -> dict[str, Any]:
    """Replicas the peak needs vs provisioned, and what the idle ones cost per month."""
    if provisioned is not None and float(provisioned).is_integer():
        provisioned = int(provisioned)
    out: dict[str, Any] = {"peak_rps": peak_rps, "capacity_rps_per_replica": capacity_rps, "headroom": headroom,
                           "provisioned": provisioned, "needed": None, "idle": None, "idle_usd_per_month": None}
    if peak_rps is None or not capacity_rps:
        return out
    needed = max(1, math.ceil(peak_rps * (1 + headroom) / capacity_rps - 1e-9))
    out["needed"] = needed
    if provisioned is not None:
        idle = max(provisioned - needed, 0)
        out["idle"] = idle
        if gpu_hour_usd is not None:
            out["idle_usd_per_month"] = round(idle * gpus_per_replica * gpu_hour_usd * HOURS_PER_MONTH, 2)
    return out
