"""The autoscaler backtest's simulator: one loop over the window's minutes, small enough to check by hand.

Inputs: requests arriving in each minute, what one replica serves per second, and a policy (a signal,
a target per replica, a warm floor, a cold start in whole minutes, a scale-down delay). Requests wait
in one first-in-first-out queue. Each minute t:

1. Replicas whose cold start has ended are ready (a replica started at the end of minute s is ready
   from minute s + 1 + cold_start_min).
2. The minute's arrivals join the queue; the ready replicas serve up to ready x rate x 60 of it, oldest
   first.
3. The minute is paid for every replica that exists, ready or starting.
4. The policy reads its signal at the end of the minute and asks for
   desired = max(warm floor, ceil(signal / target)), at most max_replicas:
   - queue_depth: requests waiting + requests being served (served x service_s / 60, Little's law);
   - tokens_per_s: served x output tokens per request / 60;
   - gpu_utilization: served / what the ready replicas could serve (a pool at zero shows nothing,
     so this signal cannot wake it); desired = ceil(ready x utilisation / target);
   - requests_per_s: arrivals / 60.
5. More desired than exist: start the difference (ready after the cold start). Fewer: scale down to
   the highest desired count of the last scale_down_after_min minutes (the Kubernetes HPA's
   stabilization window), cancelling starting replicas first.
6. The minute is queued past the SLO when requests are still waiting at its end and the oldest of them
   will have waited longer than slo_s when it is served: its wait so far (a request is taken to arrive in
   the middle of its minute, so one left over from minute s has waited (t - s) x 60 + 30 s) plus the time
   to serve what waits: waiting / (ready x rate), or, with none ready, the time until the first starting
   replica (started now included) is ready plus waiting / (starting x rate) (none starting: forever).

The pool starts the window with `warm_floor` replicas ready.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

SIGNALS = ("queue_depth", "tokens_per_s", "gpu_utilization", "requests_per_s")


@dataclass(frozen=True)
class Policy:
    signal: str
    target: float                # per replica, in the signal's unit (gpu_utilization: a share 0-1)
    warm_floor: int = 0
    cold_start_min: int = 2
    scale_down_after_min: int = 5
    max_replicas: int = 1000

    def __post_init__(self):
        if self.signal not in SIGNALS:
            raise ValueError(f"unknown signal {self.signal!r}")
        if self.target <= 0:
            raise ValueError("a policy's target must be above 0")


@dataclass(frozen=True)
class Load:
    arrivals: list[int]          # requests arriving in each minute
    rate_rps: float              # what one ready replica serves per second
    service_s: float = 1.0       # how long a request takes once served (for queue depth by Little's law)
    output_tokens: float = 0.0   # per request (for the tokens signal)
    slo_s: float = 2.0


@dataclass
class Minute:
    t: int
    arrivals: int
    ready: int
    starting: int
    served: float
    waiting: float
    signal: float
    desired: int
    late: bool


@dataclass
class Result:
    replica_minutes: int = 0
    slo_minutes: int = 0
    max_replicas: int = 0
    timeline: list[Minute] = field(default_factory=list)

    def gpu_hours(self, gpus_per_replica: float) -> float:
        return self.replica_minutes * gpus_per_replica / 60.0


def simulate(load: Load, policy: Policy | None, *, fixed_replicas: int | None = None, keep_timeline: bool = False) -> Result:
    """Run the window through a policy (or through a fixed number of replicas, policy None)."""
    per_min = load.rate_rps * 60.0
    queue: deque[list] = deque()          # [arrival minute, requests] oldest first
    ready = fixed_replicas if policy is None else policy.warm_floor
    starting: list[int] = []              # minute each starting replica becomes ready
    recent: deque[int] = deque()
    res = Result()
    for t, a in enumerate(load.arrivals):
        # 1. cold starts that have ended
        ready += sum(1 for r in starting if r <= t)
        starting = [r for r in starting if r > t]
        ready_now, starting_now = ready, len(starting)
        # 2. arrivals, then service, oldest first
        if a:
            queue.append([t, float(a)])
        cap = ready * per_min
        served = 0.0
        while queue and cap - served > 1e-9:
            take = min(queue[0][1], cap - served)
            served += take
            queue[0][1] -= take
            if queue[0][1] <= 1e-9:
                queue.popleft()
        waiting = sum(n for _, n in queue)
        # 3. pay for what exists
        res.replica_minutes += ready + len(starting)
        res.max_replicas = max(res.max_replicas, ready + len(starting))
        # 4. the signal and the replicas it asks for
        signal, desired = 0.0, ready
        if policy is not None:
            if policy.signal == "queue_depth":
                signal = waiting + served * load.service_s / 60.0
            elif policy.signal == "tokens_per_s":
                signal = served * load.output_tokens / 60.0
            elif policy.signal == "requests_per_s":
                signal = a / 60.0
            else:
                signal = served / cap if cap else 0.0
            want = ready * signal / policy.target if policy.signal == "gpu_utilization" else signal / policy.target
            desired = min(policy.max_replicas, max(policy.warm_floor, math.ceil(want - 1e-9)))
            # 5. scale
            recent.append(desired)
            if len(recent) > policy.scale_down_after_min:
                recent.popleft()
            total = ready + len(starting)
            if desired > total:
                starting += [t + 1 + policy.cold_start_min] * (desired - total)
            else:
                keep = max(recent)
                while ready + len(starting) > keep:
                    if starting:
                        starting.pop()
                    else:
                        ready -= 1
        # 6. queued past the SLO? (replicas started just now count as coming)
        late = False
        if waiting > 1e-9:
            oldest_s = (t - queue[0][0]) * 60 + 30
            if ready:
                drain_s = waiting / (ready * load.rate_rps)
            elif starting:
                drain_s = (min(starting) - (t + 1)) * 60 + waiting / (len(starting) * load.rate_rps)
            else:
                drain_s = math.inf
            late = oldest_s + drain_s > load.slo_s
        res.slo_minutes += late
        if keep_timeline:
            res.timeline.append(Minute(t, a, ready_now, starting_now, served, waiting, signal, desired, late))
    return res


# ---------------------------------------------------------------- the candidates, on a server's window

def candidates(rate_rps: float, service_s: float, output_tokens: float, *, target_share: float, cold_start_min: int,
               scale_down_after_min: int) -> list[tuple[str, Policy, str]]:
    """Every signal, each with a warm floor of 0 and of 1: (name, policy, target unit)."""
    targets = {
        "queue_depth": (max(1.0, rate_rps * service_s * target_share), "requests in flight"),
        "tokens_per_s": (rate_rps * output_tokens * target_share, "generated tokens/s"),
        "gpu_utilization": (target_share, "of capacity in use"),
        "requests_per_s": (rate_rps * target_share, "requests/s"),
    }
    out = []
    for floor in (0, 1):
        for signal in SIGNALS:
            if signal == "tokens_per_s" and output_tokens <= 0:
                continue  # no generated tokens to scale on
            target, unit = targets[signal]
            out.append((f"{signal}, floor {floor}", Policy(signal, target, warm_floor=floor, cold_start_min=cold_start_min,
                                                            scale_down_after_min=scale_down_after_min), unit))
    return out
