"""API vs self-host: for each feature's calls to a model, the monthly cost on an API against self-hosting an
open model of a class on a GPU, and the volume at which the two cost the same.

Self-hosting is sized hour by hour on the feature's own traffic: each hour of the window needs
max(warm floor, ceil(peak-minute requests/s x k x (1 + headroom) / per-replica rate)) replicas, where k
scales today's volume (k = 1 is today). Its cost is those replica-hours x GPUs per replica x the GPU-hour
price, per month, plus the ops cost stated with --ops-usd. The API side is k x today's API cost per month
(the calls' own list prices, cached input at the cached rate; a self-hosted model at the per-token price of
the same open model on an API). The break-even is the smallest k at which the API costs at least as much;
`side` is where the feature is at k = 1.

For a constant load (the same peak every hour) with one replica enough, that is the closed form
    break-even requests/s = (ops + floor x GPUs x GPU-hour price x 730) / (API cost per request x 730 x 3600)
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SelfHostModel:
    """Self-hosting one workload: its hourly peaks and what a replica costs and serves."""

    hourly_peak_rps: list[float]   # every hour of the window, 0 where it had no call
    rate_rps: float                # per replica
    headroom: float
    warm_floor: int
    gpus_per_replica: float
    gpu_hour_usd: float
    month_factor: float            # window hours -> a month
    ops_usd_per_month: float = 0.0

    def replicas(self, peak_rps: float, k: float) -> int:
        need = math.ceil(k * peak_rps * (1 + self.headroom) / self.rate_rps - 1e-9) if peak_rps > 0 else 0
        return max(self.warm_floor, need)

    def replica_hours(self, k: float) -> int:
        return sum(self.replicas(p, k) for p in self.hourly_peak_rps)

    def gpu_usd_per_month(self, k: float) -> float:
        return self.replica_hours(k) * self.gpus_per_replica * self.gpu_hour_usd * self.month_factor

    def usd_per_month(self, k: float) -> float:
        return self.gpu_usd_per_month(k) + self.ops_usd_per_month


def breakeven_multiple(api_usd_per_month: float, m: SelfHostModel, max_steps: int = 1_000_000) -> float | None:
    """The smallest k > 0 with k x api_usd_per_month >= self-hosting at k x today's volume; None if none.

    Self-hosting's cost is a step function of k that changes only where some hour needs one replica more
    (k = n x rate / (peak x (1 + headroom)) for its n replicas); between two such points it is constant, so
    the API line crosses it at cost / api_usd_per_month if that falls inside."""
    a = api_usd_per_month
    if a <= 0:
        return None
    unit = m.gpus_per_replica * m.gpu_hour_usd * m.month_factor
    busy = [p for p in m.hourly_peak_rps if p > 0]
    # Self-hosting costs at least `slope` x k: an API line no steeper never reaches it.
    slope = sum(p * (1 + m.headroom) / m.rate_rps for p in busy) * unit
    if a <= slope:
        return None
    # Just above k = 0 a busy hour needs max(floor, 1) replicas; each then steps up at its own points.
    first = max(m.warm_floor, 1)
    heap = [(_step_k(p, m, first), i, first) for i, p in enumerate(busy)]
    heapq.heapify(heap)
    cost = m.ops_usd_per_month + unit * (first * len(busy) + m.warm_floor * (len(m.hourly_peak_rps) - len(busy)))
    lo = 0.0
    for _ in range(max_steps):
        hi = heap[0][0] if heap else math.inf
        k = cost / a
        if k <= hi:
            return max(k, lo)
        while heap and heap[0][0] <= hi:
            _, i, n = heapq.heappop(heap)
            cost += unit
            heapq.heappush(heap, (_step_k(busy[i], m, n + 1), i, n + 1))
        lo = hi
    return None


def _step_k(peak: float, m: SelfHostModel, n: int) -> float:
    """The largest k at which `n` replicas still serve an hour with this peak."""
    return n * m.rate_rps / (peak * (1 + m.headroom))
