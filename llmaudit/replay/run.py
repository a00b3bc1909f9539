"""Run workloads against a server, alternating variants, and measure each run.

    result = run_replay([("baseline", wl_a), ("remediated", wl_b)], ReplayConfig(endpoint=..., repeats=3))

Runs alternate in ABBA order (baseline, remediated, then remediated, baseline, ...) so that a server
that warms up or slows down over the session biases neither variant. Before each run the server is
left to drain (nothing running or waiting) and its /metrics are scraped; after, scraped again.

GPU-seconds are measured from busy time. Busy time is the length of the union of the requests'
in-flight intervals [sent, last byte] seen by the client: whenever at least one request is in the
server, the accelerator runs iterations for it, and requests batched together share that time as
they share the GPU. It needs nothing from the server, so it works against any OpenAI-compatible
endpoint; vLLM's own gauges (share of samples with a request running) are recorded beside it as
a cross-check. GPU-seconds = busy seconds x GPUs per server (tensor-parallel size).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import aiohttp
from pydantic import BaseModel, Field

from llmaudit.replay import metrics as m
from llmaudit.replay.client import ClientOptions, RequestResult, replay_async, summarize, _base
from llmaudit.replay.workload import TokenSpace, Workload

BUSY_METHOD = ("busy time = union of the requests' in-flight intervals (send to last byte) seen by the client; "
               "GPU-seconds = busy time x GPUs per server")


class ReplayConfig(BaseModel):
    endpoint: str
    model: str | None = None
    speedup: float | None = None
    rate: float | None = None
    duration: float | None = None
    repeats: int = Field(1, ge=1)
    slo_ttft_s: float | None = None
    slo_e2e_s: float | None = None
    warmup: int = Field(8, ge=0, description="requests sent (and not measured) before the first run")
    timeout_s: float = 300.0
    seed: str | None = None
    gpus_per_server: float = Field(1.0, gt=0)
    poll_interval_s: float = 0.5
    cooldown_s: float = 0.5
    drain_timeout_s: float = 300.0
    token_low: int = 10
    token_high: int = 2000
    api_key: str | None = None


class RunRecord(BaseModel):
    replay_id: str
    run_index: int
    repeat: int
    variant: str
    workload: str
    workload_sha256: str
    started_at: datetime
    endpoint: str
    model: str
    summary: dict[str, Any]
    server: dict[str, Any] = Field(description="/metrics deltas over the run")
    sampled: dict[str, Any] = Field(description="gauges sampled during the run")
    busy_s: float
    gpu_seconds: float
    gpu_seconds_per_request: float | None
    interrupted: bool = False
    aborted: str | None = Field(None, description="why the run stopped early on its own (server unreachable)")
    status: str = Field("ok", description="ok, or failed: why this run cannot be part of a measurement")
    requests: list[dict[str, Any]] = Field(default_factory=list, description="per request: status, timings, tokens asked and reported")


@dataclass
class ReplayResult:
    replay_id: str
    config: ReplayConfig
    runs: list[RunRecord] = field(default_factory=list)
    interrupted: bool = False
    aborted: str | None = None  # the replay stopped on its own: the server became unreachable
    warmup: dict[str, Any] | None = None
    workloads: dict[str, Workload] = field(default_factory=dict)

    def by_variant(self, variant: str) -> list[RunRecord]:
        return [r for r in self.runs if r.variant == variant]


def new_replay_id(seed: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"replay-{stamp}-{hashlib.sha256(seed.encode()).hexdigest()[:6]}"


def run_order(labels: list[str], repeats: int) -> list[tuple[int, str]]:
    """(repeat, label) in ABBA order: A B, B A, A B, ..."""
    out = []
    for rep in range(repeats):
        seq = labels if rep % 2 == 0 else list(reversed(labels))
        out.extend((rep, lab) for lab in seq)
    return out


async def replay_runs_async(workloads: list[tuple[str, Workload]], cfg: ReplayConfig, *,
                            stop: asyncio.Event | None = None,
                            on_event: Callable[[str, dict[str, Any]], Any] | None = None) -> ReplayResult:
    stop = stop or asyncio.Event()
    seed = cfg.seed or os.urandom(6).hex()
    result = ReplayResult(replay_id=new_replay_id(seed), config=cfg.model_copy(update={"seed": seed}),
                          workloads=dict(workloads))
    emit = on_event or (lambda *_: None)
    opts = ClientOptions(endpoint=cfg.endpoint, model=cfg.model, timeout_s=cfg.timeout_s, api_key=cfg.api_key,
                         token_space=TokenSpace(low=cfg.token_low, high=cfg.token_high))
    base = _base(cfg.endpoint)
    async with aiohttp.ClientSession() as session:
        if cfg.warmup and workloads:
            wl = workloads[0][1]
            warm = Workload(header=wl.header, requests=wl.sorted().requests[: cfg.warmup])
            emit("warmup", {"requests": len(warm.requests)})
            w = await replay_async(warm, opts, salt=f"{seed}:warmup", duration=0.5, stop=stop)
            result.warmup = summarize(w)
            if w.aborted:
                result.aborted = f"warm-up: {w.aborted}"
                return result
            if opts.model is None and w.model:
                opts.model = w.model  # ask /v1/models once, not every run
        for index, (rep, label) in enumerate(run_order([lab for lab, _ in workloads], cfg.repeats)):
            if stop.is_set():
                result.interrupted = True
                break
            wl = dict(workloads)[label]
            idle = await m.wait_idle(session, base, opts.model, timeout_s=cfg.drain_timeout_s, stop=stop)
            if stop.is_set():
                result.interrupted = True
                break
            await asyncio.sleep(cfg.cooldown_s)
            before = await m.scrape(session, base, opts.model)
            sampler = m.Sampler(session, base, opts.model, cfg.poll_interval_s)
            sampler.start()
            started = datetime.now(timezone.utc).replace(tzinfo=None)
            emit("run_start", {"index": index, "repeat": rep, "variant": label, "requests": len(wl.requests)})
            meas = await replay_async(wl, opts, salt=f"{seed}:{label}:{rep}", speedup=cfg.speedup, rate=cfg.rate,
                                      duration=cfg.duration, stop=stop)
            sampled = await sampler.stop()
            # vLLM records a request's metrics as it finishes; the client may have its last byte a
            # moment earlier. Let the server settle before the second scrape.
            await m.wait_idle(session, base, opts.model, timeout_s=30, stop=stop)
            await asyncio.sleep(0.2)
            after = await m.scrape(session, base, opts.model)
            summary = summarize(meas, slo_ttft_s=cfg.slo_ttft_s, slo_e2e_s=cfg.slo_e2e_s)
            if not idle:
                summary["warning"] = "server was still busy when the run started"
            if meas.meta:
                summary.update(meas.meta)
            busy = summary["busy_s"]
            gpu_s = busy * cfg.gpus_per_server
            n = len(wl.requests)
            if sampled.get("samples"):
                sampled["busy_s_from_gauges"] = sampled["busy_fraction"] * summary["span_s"]
            record = RunRecord(
                replay_id=result.replay_id, run_index=index, repeat=rep, variant=label,
                workload=wl.header.name, workload_sha256=wl.sha256(), started_at=started, endpoint=cfg.endpoint,
                model=meas.model, summary=summary, server=m.delta(before, after), sampled=sampled,
                busy_s=busy, gpu_seconds=gpu_s, gpu_seconds_per_request=gpu_s / n if n else None,
                interrupted=meas.interrupted, aborted=meas.aborted, requests=[r.to_dict() for r in meas.results],
            )
            result.runs.append(record)
            emit("run_end", {"record": record})
            if meas.interrupted:
                result.interrupted = True
                break
            if meas.aborted:
                result.aborted = f"run {index} ({label}): {meas.aborted}"
                break
    return result


def replay_runs(workloads: list[tuple[str, Workload]], cfg: ReplayConfig, **kwargs) -> ReplayResult:
    """Synchronous entry point. Ctrl-C ends the current run, keeps every measurement taken so far,
    and returns with result.interrupted set."""
    from llmaudit.replay.client import _with_sigint, run_loop

    return run_loop(_with_sigint(replay_runs_async, workloads, cfg, **kwargs))


def pairs(result: ReplayResult, a: str = "baseline", b: str = "remediated") -> list[tuple[RunRecord, RunRecord]]:
    """(baseline run, remediated run) of each repeat where both completed."""
    out = []
    for rep in sorted({r.repeat for r in result.runs}):
        ra = [r for r in result.runs if r.repeat == rep and r.variant == a and not r.interrupted and not r.aborted]
        rb = [r for r in result.runs if r.repeat == rep and r.variant == b and not r.interrupted and not r.aborted]
        if ra and rb:
            out.append((ra[0], rb[0]))
    return out


def request_results(record: RunRecord) -> list[RequestResult]:
    return [RequestResult(**d) for d in record.requests]
