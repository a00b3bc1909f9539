"""The server's own view of a run: vLLM's Prometheus /metrics, scraped before and after (and sampled
during) a replay.

Counters and histograms are read as deltas (after - before), so a server that has served other
traffic since it started still gives the run's own figures. Gauges (running and waiting requests,
KV-cache usage) are sampled while the run goes. Metric names moved between vLLM versions; each
figure lists the names it is known by, newest first, and the first one the server exposes is used.
A server without /metrics (or not a vLLM) gives empty figures, never an error.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# figure -> names, newest first (vLLM V1 names; older V0 / early V1 spellings after them).
COUNTERS: dict[str, tuple[str, ...]] = {
    "prompt_tokens": ("vllm:prompt_tokens_total", "vllm:prompt_tokens"),
    "generation_tokens": ("vllm:generation_tokens_total", "vllm:generation_tokens"),
    "cached_prompt_tokens": ("vllm:prompt_tokens_cached_total",),
    "prefix_cache_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total",
                             "vllm:gpu_prefix_cache_queries"),
    "prefix_cache_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total",
                          "vllm:gpu_prefix_cache_hits"),
    "preemptions": ("vllm:num_preemptions_total", "vllm:num_preemptions"),
    "requests_finished": ("vllm:request_success_total",),
    "estimated_flops": ("vllm:estimated_flops_per_gpu_total",),
}
HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "queue_time_s": ("vllm:request_queue_time_seconds",),
    "prefill_time_s": ("vllm:request_prefill_time_seconds",),
    "decode_time_s": ("vllm:request_decode_time_seconds",),
    "inference_time_s": ("vllm:request_inference_time_seconds",),
    "e2e_latency_s": ("vllm:e2e_request_latency_seconds",),
    "ttft_s": ("vllm:time_to_first_token_seconds",),
    "itl_s": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    # count = engine steps (one per scheduler iteration), sum = tokens they processed
    "iteration_tokens": ("vllm:iteration_tokens_total",),
}
GAUGES: dict[str, tuple[str, ...]] = {
    "running": ("vllm:num_requests_running",),
    "waiting": ("vllm:num_requests_waiting",),
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
}

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text format -> {series name: [(labels, value), ...]}."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        labels = dict(_LABEL.findall(m.group(3) or ""))
        out.setdefault(m.group(1), []).append((labels, value))
    return out


@dataclass
class Snapshot:
    """One scrape, reduced to the figures above (summed over engines; one model when asked)."""

    ok: bool
    values: dict[str, float] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # figure -> the metric name the server used
    error: str | None = None
    at: float = 0.0


def _sum(series, model: str | None, predicate=None) -> float | None:
    total, seen = 0.0, False
    for labels, value in series:
        if model is not None and "model_name" in labels and labels["model_name"] != model:
            continue
        if predicate and not predicate(labels):
            continue
        if math.isnan(value):
            continue
        total += value
        seen = True
    return total if seen else None


def reduce(parsed: dict, model: str | None = None) -> Snapshot:
    snap = Snapshot(ok=True, at=time.time())
    for figure, names in COUNTERS.items():
        for name in names:
            if name in parsed:
                v = _sum(parsed[name], model)
                if v is not None:
                    snap.values[figure] = v
                    snap.names[figure] = name
                    break
    for figure, names in HISTOGRAMS.items():
        for name in names:
            if f"{name}_count" in parsed:
                s = _sum(parsed.get(f"{name}_sum", []), model)
                c = _sum(parsed[f"{name}_count"], model)
                if c is not None:
                    snap.values[f"{figure}.sum"] = s or 0.0
                    snap.values[f"{figure}.count"] = c
                    snap.names[figure] = name
                    break
    for figure, names in GAUGES.items():
        for name in names:
            if name in parsed:
                # Several engines: running/waiting add up; KV usage is a fraction per engine (mean).
                series = [(l, v) for l, v in parsed[name] if model is None or l.get("model_name", model) == model]
                if not series:
                    continue
                v = sum(v for _, v in series)
                if figure == "kv_cache_usage":
                    v /= len(series)
                snap.values[figure] = v
                snap.names[figure] = name
                break
    return snap


async def scrape(session: aiohttp.ClientSession, base_url: str, model: str | None = None) -> Snapshot:
    try:
        async with session.get(f"{base_url.rstrip('/')}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status != 200:
                return Snapshot(ok=False, error=f"/metrics: HTTP {resp.status}")
            text = await resp.text()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return Snapshot(ok=False, error=f"/metrics: {type(exc).__name__}: {exc}"[:200])
    snap = reduce(parse(text), model)
    if not snap.values:
        snap.ok = False
        snap.error = "/metrics has no vLLM metrics"
    return snap


def delta(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """What the run did, in the server's words. Empty when either scrape failed."""
    if not (before.ok and after.ok):
        return {"available": False, "error": after.error or before.error}
    out: dict[str, Any] = {"available": True}
    for figure in COUNTERS:
        if figure in before.values and figure in after.values:
            out[figure] = after.values[figure] - before.values[figure]
    for figure in HISTOGRAMS:
        k_s, k_c = f"{figure}.sum", f"{figure}.count"
        if k_c in before.values and k_c in after.values:
            d_sum = after.values[k_s] - before.values[k_s]
            d_count = after.values[k_c] - before.values[k_c]
            out[f"{figure}_sum"] = d_sum
            out[f"{figure}_count"] = d_count
            out[f"{figure}_mean"] = d_sum / d_count if d_count else None
    if out.get("prefix_cache_queries"):
        out["prefix_cache_hit_rate"] = out.get("prefix_cache_hits", 0.0) / out["prefix_cache_queries"]
    out["metric_names"] = dict(sorted(after.names.items()))
    return out


class Sampler:
    """Polls the gauges during a run: KV-cache usage, running and waiting requests.

    busy_fraction (share of samples with a request running) times the run's wall time is the
    server-side estimate of busy time; it cross-checks the client-side one (union of in-flight
    intervals), which is exact but cannot tell queued from running."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, model: str | None, interval_s: float = 0.5):
        self.session, self.base_url, self.model, self.interval = session, base_url, model, interval_s
        self.samples: list[dict[str, float]] = []
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    async def _loop(self) -> None:
        # Bounded by stop(): the run ends it; a failed scrape is skipped, not retried faster.
        while not self._stop.is_set():
            snap = await scrape(self.session, self.base_url, self.model)
            if snap.ok:
                self.samples.append({k: snap.values[k] for k in GAUGES if k in snap.values})
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._task:
            await self._task
        return self.summary()

    def summary(self) -> dict[str, Any]:
        s = self.samples
        if not s:
            return {"samples": 0}
        kv = [x["kv_cache_usage"] for x in s if "kv_cache_usage" in x]
        running = [x.get("running", 0.0) for x in s]
        waiting = [x.get("waiting", 0.0) for x in s]
        return {
            "samples": len(s),
            "interval_s": self.interval,
            "busy_fraction": sum(1 for r in running if r > 0) / len(s),
            "running_mean": sum(running) / len(s),
            "running_max": max(running),
            "waiting_max": max(waiting),
            "kv_cache_usage_mean": sum(kv) / len(kv) if kv else None,
            "kv_cache_usage_max": max(kv) if kv else None,
        }


async def wait_idle(session: aiohttp.ClientSession, base_url: str, model: str | None = None,
                    timeout_s: float = 120.0, poll_s: float = 0.25, stop: asyncio.Event | None = None) -> bool:
    """Wait until the server reports nothing running or waiting (so runs do not overlap).
    True when idle (or when the server has no such gauges), False on timeout or when `stop` is set
    (Ctrl-C: stop waiting at once)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        snap = await scrape(session, base_url, model)
        if not snap.ok or "running" not in snap.values:
            return True
        if snap.values.get("running", 0) == 0 and snap.values.get("waiting", 0) == 0:
            return True
        await asyncio.sleep(poll_s)
    return False
