"""Latency from a stored `replay capacity` sweep: the highest rate one replica sustains at any latency target
(re-read from the requests each step sent), and the curve of monthly cost against the target.

A step meets a target when at least the sweep's share (slo_target, 0.95 by default: the p95) of the requests
it sent succeeded within it; the rate at a target is the highest step rate that met it.
"""

from __future__ import annotations

import math

from llmaudit.plan.document import CurvePoint, LatencyCurve
from llmaudit.replay.capacity import HOURS_PER_MONTH, replicas
from llmaudit.store import Store

# The targets of the curve, seconds: 0.5 s to 3 s in steps of 100 ms.
DEFAULT_TARGETS = [round(0.5 + 0.1 * i, 1) for i in range(26)]


def step_requests(store: Store, capacity_id: str) -> list[tuple[float, list[tuple]]]:
    """[(rate, [(status, ttft_s, e2e_s), ...]), ...] per step, in the order they ran."""
    steps = store.con.execute("SELECT step_index, rate_rps FROM replay_capacity_steps WHERE capacity_id = ? ORDER BY step_index",
                              [capacity_id]).fetchall()
    reqs: dict[int, list[tuple]] = {}
    for i, status, ttft, e2e in store.con.execute(
            "SELECT step_index, status, ttft_s, e2e_s FROM replay_capacity_requests WHERE capacity_id = ? "
            "ORDER BY step_index, request_id", [capacity_id]).fetchall():
        reqs.setdefault(i, []).append((status, ttft, e2e))
    return [(rate, reqs.get(i, [])) for i, rate in steps]


def attainment(requests: list[tuple], slo_ttft_s: float | None, slo_e2e_s: float | None) -> float | None:
    """Share of the requests sent that succeeded within the targets (as `replay capacity` counts it)."""
    sent = [r for r in requests if r[0] != "not_sent"]
    if not sent:
        return None
    good = sum(1 for status, ttft, e2e in sent if status == "ok"
               and (slo_ttft_s is None or (ttft is not None and ttft <= slo_ttft_s))
               and (slo_e2e_s is None or (e2e is not None and e2e <= slo_e2e_s)))
    return good / len(sent)


def rate_at(steps: list[tuple[float, list[tuple]]], slo_ttft_s: float | None, slo_e2e_s: float | None,
            share: float) -> float | None:
    """The highest step rate at which `share` of the requests met the targets; None when no step did."""
    ok = [rate for rate, reqs in steps if (a := attainment(reqs, slo_ttft_s, slo_e2e_s)) is not None and a >= share - 1e-12]
    return max(ok) if ok else None


def curve(store: Store, sweep: dict, *, metric: str, peak_rps: float | None, headroom: float, gpu: str,
          gpu_hour_usd: float, gpus_per_replica: float, targets: list[float] | None = None) -> LatencyCurve:
    steps = step_requests(store, sweep["capacity_id"])
    share = sweep["slo_target"] or 0.95
    points: list[CurvePoint] = []
    previous = None
    for t in targets or DEFAULT_TARGETS:
        rate = rate_at(steps, t if metric == "ttft" else None, t if metric == "e2e" else None, share)
        needed = replicas(peak_rps, rate, None, headroom=headroom)["needed"] if rate else None
        usd = round(needed * gpus_per_replica * gpu_hour_usd * HOURS_PER_MONTH, 2) if needed else None
        more = None
        if previous is not None and previous.usd_per_month is not None and usd is not None \
                and math.isclose(t - previous.target_s, 0.1, abs_tol=1e-6):
            more = round(previous.usd_per_month - usd, 2)
        point = CurvePoint(target_s=t, per_replica_rps=rate, replicas=needed, usd_per_month=usd,
                           usd_per_month_for_100ms_less=more)
        points.append(point)
        previous = point
    return LatencyCurve(capacity_id=sweep["capacity_id"], model=sweep["production_model"], served_model=sweep["served_model"],
                        metric=metric, quantile=share, peak_requests_per_s=peak_rps, gpu=gpu, gpu_hour_usd=gpu_hour_usd,
                        gpus_per_replica=gpus_per_replica, points=points)
