"""`replay capacity` sweeps in the store (tables in store/schema_replay_capacity.sql), so that `llmaudit
plan` can size replicas from a measured per-replica rate instead of an assumed one.

A sweep is stored whole, in one transaction: the sweep, each rate step with its figures, and every request
each step sent (the plan re-reads latencies at other targets from them). Its status says what it is:
`ok` (a rate met the SLO), `no rate met the SLO`, or `interrupted` (Ctrl-C: what ran is kept, and the plan
never uses it).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from llmaudit.replay.capacity import CapacityResult
from llmaudit.replay.workload import Workload
from llmaudit.store import Store

STATUS_OK = "ok"
STATUS_NONE = "no rate met the SLO"
STATUS_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class SweepContext:
    """What the sweep was of: the production traffic and server it stands for, and the GPU it is priced as."""

    finding: str | None = None
    rule_id: str | None = None
    production_model: str | None = None
    host: str | None = None
    gpu: str | None = None
    gpus_per_replica: float = 1.0
    gpu_hour_usd: float | None = None
    server_start_s: float | None = None
    max_model_len: int | None = None


def status_of(res: CapacityResult) -> str:
    if res.interrupted:
        return STATUS_INTERRUPTED
    return STATUS_OK if res.capacity_rps is not None else STATUS_NONE


def production_model_of(shapes: Workload) -> str | None:
    """The model most of the swept requests used in production (None when the workload names none)."""
    counts: dict[str, int] = {}
    for r in shapes.requests:
        if r.model:
            counts[r.model] = counts.get(r.model, 0) + 1
    return min(counts, key=lambda m: (-counts[m], m)) if counts else None


def save_sweep(store: Store, res: CapacityResult, shapes: Workload, ctx: SweepContext) -> str:
    """Store a sweep (all or nothing); returns its id."""
    cfg = res.config
    capacity_id = "cap-" + uuid.uuid4().hex[:12]
    at = next((s for s in res.steps if s.passed and s.rate == res.capacity_rps), None)
    tried = [s.rate for s in res.steps]
    lower_bound = res.capacity_rps is not None and all(s.passed for s in res.steps) and bool(tried)
    n = max(len(shapes.requests), 1)
    row = [
        capacity_id, datetime.now(timezone.utc).replace(tzinfo=None), ctx.finding, ctx.rule_id, ctx.production_model,
        ctx.host, cfg.model, cfg.endpoint, ctx.max_model_len, cfg.slo_ttft_s, cfg.slo_e2e_s, cfg.slo_target, cfg.step_s,
        res.capacity_rps, lower_bound, at.summary["throughput_rps"] if at else None,
        at.summary["output_tokens_per_s"] if at else None,
        sum(r.input_tokens for r in shapes.requests) / n, sum(r.output_tokens for r in shapes.requests) / n,
        ctx.gpu, ctx.gpus_per_replica, ctx.gpu_hour_usd, ctx.server_start_s, status_of(res),
        cfg.model_dump_json(exclude={"api_key"}),
    ]
    with store.transaction() as con:
        con.execute(f"INSERT INTO replay_capacity VALUES ({', '.join(['?'] * len(row))})", row)
        for i, st in enumerate(res.steps):
            s = st.summary
            con.execute(f"INSERT INTO replay_capacity_steps VALUES ({', '.join(['?'] * 18)})", [
                capacity_id, i, st.rate, st.passed, s["sent"], s["ok"], s["errors"], s["slo_attainment"],
                s["throughput_rps"], s["goodput_rps"], s["output_tokens_per_s"], s["ttft_p50_s"], s["ttft_p90_s"],
                s["ttft_p99_s"], s["e2e_p50_s"], s["e2e_p90_s"], s["e2e_p99_s"], json.dumps(s, default=str)])
            rows = [(capacity_id, i, r.id, r.status, r.sent_s, r.ttft_s, r.e2e_s, r.input_tokens, r.output_tokens,
                     r.completion_tokens) for r in st.results]
            if rows:
                con.executemany("INSERT INTO replay_capacity_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return capacity_id


def sweeps(store: Store, *, usable_only: bool = True) -> list[dict[str, Any]]:
    """Stored sweeps, newest first; usable_only: status ok (a measurement), else every one."""
    if not store.table_exists("replay_capacity"):
        return []
    where = "WHERE status = 'ok' AND capacity_rps IS NOT NULL" if usable_only else ""
    cur = store.con.execute(f"SELECT * FROM replay_capacity {where} ORDER BY created_at DESC, capacity_id")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]
