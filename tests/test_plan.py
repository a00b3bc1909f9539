"""`llmaudit plan`: the closed-form cases worked by hand (break-even, replicas for a constant load, the
backtest of a step, a constant load and a daily sine), the sample week's plan, every assumed figure in
the assumptions of every output, the stored capacity sweep, and a real `replay capacity` sweep against a
vLLM engine whose measured per-replica rate the plan uses."""

from __future__ import annotations

import json
import math
import shutil
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest
from typer.testing import CliRunner

import otlp_factory as f
from conftest import REPO
from llmaudit.cli import app
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.normalize.derive import derive
from llmaudit.plan.backtest import Load, Policy, simulate
from llmaudit.plan.breakeven import SelfHostModel, breakeven_multiple
from llmaudit.plan.build import PlanOptions, build_plan
from llmaudit.plan.classes import PlanError, load_classes, throughput
from llmaudit.replay.capacity import CapacityConfig, CapacityResult, Step
from llmaudit.replay.capacity_store import STATUS_INTERRUPTED, SweepContext, save_sweep, sweeps
from llmaudit.replay.client import RequestResult
from llmaudit.replay.workload import Request, Workload
from llmaudit.report.schema import schema_path
from llmaudit.store import Store

SAMPLE = REPO / "sample_traces"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text())
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
MONTH_H = 730.0


# ------------------------------------------------------------------ closed forms: break-even

def test_breakeven_rate_equals_the_hand_computed_one_for_a_price_pair():
    # An API at $2.50 / $10 per 1M tokens, requests of 1,000 + 200 tokens: $0.0045 a request.
    per_request = (1000 * 2.50 + 200 * 10.0) / 1e6
    # Self-hosting: one GPU at $2/hour, 10 requests/s per replica, one replica always warm, $500/month of ops.
    today_rps = 0.05  # a constant load: every hour's peak is the mean
    model = SelfHostModel(hourly_peak_rps=[today_rps] * 168, rate_rps=10.0, headroom=0.0, warm_floor=1,
                          gpus_per_replica=1, gpu_hour_usd=2.0, month_factor=MONTH_H / 168, ops_usd_per_month=500.0)
    api_today = per_request * today_rps * MONTH_H * 3600
    k = breakeven_multiple(api_today, model)
    # By hand: (500 + 2 x 730) / (0.0045 x 730 x 3600) = 1960 / 11826 = 0.16574 requests/s.
    by_hand = (500 + 2.0 * MONTH_H) / (per_request * MONTH_H * 3600)
    assert by_hand == pytest.approx(0.165736, abs=1e-6)
    assert k * today_rps == pytest.approx(by_hand, rel=1e-9)
    assert model.usd_per_month(k) == pytest.approx(1960.0) == pytest.approx(k * api_today)


def test_breakeven_past_the_first_replica():
    # 0.5 requests/s per replica and $5,000/month of ops: one replica ($6,460) is never worth it (its full
    # load, 0.5 requests/s, costs $5,913 on the API); two ($7,920) are from 7920 / 11826 = 0.66971 requests/s.
    per_request = 0.0045
    model = SelfHostModel(hourly_peak_rps=[0.1] * 24, rate_rps=0.5, headroom=0.0, warm_floor=1, gpus_per_replica=1,
                          gpu_hour_usd=2.0, month_factor=MONTH_H / 24, ops_usd_per_month=5000.0)
    api_today = per_request * 0.1 * MONTH_H * 3600
    k = breakeven_multiple(api_today, model)
    assert k * 0.1 == pytest.approx(7920 / 11826, rel=1e-9)
    assert model.replicas(0.1, k) == 2


def test_no_breakeven_when_a_replica_costs_more_than_the_traffic_it_serves():
    # 0.1 requests/s per replica: a full replica's traffic costs $1,182.60 a month on the API, the replica $1,460.
    model = SelfHostModel(hourly_peak_rps=[0.05] * 24, rate_rps=0.1, headroom=0.0, warm_floor=1, gpus_per_replica=1,
                          gpu_hour_usd=2.0, month_factor=MONTH_H / 24)
    assert breakeven_multiple(0.0045 * 0.05 * MONTH_H * 3600, model) is None


def test_scale_to_zero_and_headroom_in_the_breakeven():
    # Busy 2 hours a day at 1 request/s, floor 0, headroom 0.5, 4 requests/s per replica: n replicas serve up to
    # k = n x 4 / 1.5 = 2.667n times today's volume, for n x 2 hours x $2 a day: $121.67n a month.
    profile = [0.0] + [1.0, 1.0] + [0.0] * 21
    model = SelfHostModel(hourly_peak_rps=profile, rate_rps=4.0, headroom=0.5, warm_floor=0, gpus_per_replica=1,
                          gpu_hour_usd=2.0, month_factor=MONTH_H / 24)
    one = 2 * 2.0 * MONTH_H / 24
    assert model.usd_per_month(1.0) == pytest.approx(one)
    # An API at $100 a month today reaches one replica's cost at k = 1.2167, inside the first step.
    assert breakeven_multiple(100.0, model) == pytest.approx(one / 100)
    # With $200 of ops the first step ($321.67 by k = 2.667) is missed; the second ($443.33) is met at k = 4.433.
    with_ops = SelfHostModel(**{**model.__dict__, "ops_usd_per_month": 200.0})
    k = breakeven_multiple(100.0, with_ops)
    assert k == pytest.approx((200 + 2 * one) / 100)
    assert with_ops.replicas(1.0, k) == 2
    # Self-hosting grows $45.63 per unit of k (2 hours x 1.5 / 4 replicas x $60.83): an API at $40 never gets there.
    assert breakeven_multiple(40.0, model) is None


# ------------------------------------------------------------------ closed forms: the backtest

def test_backtest_of_a_step_under_a_queue_depth_policy_matches_the_hand_timeline():
    """30 requests a minute, then 90 for ten minutes, then 30 again; one replica serves 1 request/s (60 a
    minute). Scale on queue depth at 30 requests per replica, floor 1, cold start 2 minutes, scale down after 3
    minutes. Worked by hand from the rules in llmaudit/plan/backtest.py:

    minute 5: 90 arrive, 60 served, 30 wait; queue depth 30 + 60 x 1 s / 60 = 31 -> 2 replicas: start 1 (ready at 8)
    minute 6: 30 + 90 queued, 60 served, 60 wait; depth 61 -> 3: start 1 more (ready at 9)
    minute 7: 60 + 90, 60 served, 90 wait; depth 91 -> 4: start 1 (ready at 10)
    minute 8: 2 ready serve 120 of 180, 60 wait; depth 62 -> 3, but 4 were asked within 3 minutes: keep 4
    minute 9: 3 ready serve all 150; depth 2.5 -> 1 (the highest of the last 3 minutes is 4: keep)
    minute 10: 4 ready serve 90; 1 asked; the last 3 minutes asked 3, 1, 1: down to 3
    minute 11: 3 ready; the last 3 minutes asked 1: down to 1
    minutes 12-14: the same climb again; minute 15: the load drops, and minutes 16-17 drain the extra replicas.
    """
    load = Load(arrivals=[30] * 5 + [90] * 10 + [30] * 10, rate_rps=1.0, service_s=1.0, slo_s=2.0)
    policy = Policy("queue_depth", 30, warm_floor=1, cold_start_min=2, scale_down_after_min=3)
    res = simulate(load, policy, keep_timeline=True)
    timeline = [(m.ready, m.starting, m.served, m.waiting, m.desired, m.late) for m in res.timeline]
    steady = (1, 0, 30, 0, 1, False)
    assert timeline[:5] == [steady] * 5
    assert timeline[5:18] == [
        (1, 0, 60, 30, 2, True),
        (1, 1, 60, 60, 3, True),
        (1, 2, 60, 90, 4, True),
        (2, 2, 120, 60, 3, True),
        (3, 1, 150, 0, 1, False),
        (4, 0, 90, 0, 1, False),
        (3, 0, 90, 0, 1, False),
        (1, 0, 60, 30, 2, True),
        (1, 1, 60, 60, 3, True),
        (1, 2, 60, 90, 4, True),
        (2, 2, 120, 0, 1, False),
        (3, 1, 30, 0, 1, False),
        (4, 0, 30, 0, 1, False),
    ]
    assert timeline[18:] == [steady] * 7
    # Paid replica-minutes: 5 + (1+2+3+4+4+4+3 + 1+2+3+4+4+4) + 7 = 51; 7 minutes ended with requests queued.
    assert (res.replica_minutes, res.slo_minutes, res.max_replicas) == (51, 7, 4)
    assert res.gpu_hours(gpus_per_replica=2) == pytest.approx(51 * 2 / 60)


def test_backtest_of_a_constant_load():
    """120 requests a minute (2/s), 1 request/s per replica, scale on requests/s at 0.8 per replica: 3 replicas.
    Minute 0: 1 ready serves 60, 60 wait, 3 asked: start 2 (cold start 1 minute: ready at minute 2).
    Minute 1: 60 + 120 queued, 60 served, 120 wait. Minute 2: 3 ready serve 180 of 240, 60 wait. Minute 3: 180
    of 180. Then 3 replicas serve 120 a minute with nothing waiting."""
    load = Load(arrivals=[120] * 10, rate_rps=1.0, slo_s=2.0)
    res = simulate(load, Policy("requests_per_s", 0.8, warm_floor=1, cold_start_min=1), keep_timeline=True)
    assert [m.waiting for m in res.timeline] == [60, 120, 60] + [0] * 7
    assert [m.ready + m.starting for m in res.timeline] == [1] + [3] * 9
    assert (res.replica_minutes, res.slo_minutes, res.max_replicas) == (1 + 3 * 9, 3, 3)
    # Sized for it from the start (floor 3), nothing waits and the pool never changes.
    fixed = simulate(load, Policy("requests_per_s", 0.8, warm_floor=3, cold_start_min=1))
    assert (fixed.replica_minutes, fixed.slo_minutes) == (30, 0)
    # As provisioned: 2 replicas serve exactly the 120 a minute.
    assert simulate(load, None, fixed_replicas=2).slo_minutes == 0


def test_backtest_of_a_daily_sine():
    """Two days of a load that swings with the hour of day: 0 to 600 requests a minute. With no cold start and a
    one-minute scale-down, scaling on requests/s at 8 per replica (rate 10/s, target 0.8) holds, in minute t+1,
    exactly the replicas minute t asked for: max(floor, ceil(arrivals(t) / 60 / 8)). Each replica serves 600 a
    minute, so the pool is at most 80% busy and nothing waits as long as the load grows by less than 25% a
    minute, which this sine does once the first replica is up."""
    arrivals = [round(300 * (1 - math.cos(2 * math.pi * t / 1440))) for t in range(2 * 1440)]
    load = Load(arrivals=arrivals, rate_rps=10.0, slo_s=2.0)
    res = simulate(load, Policy("requests_per_s", 8.0, warm_floor=1, cold_start_min=0, scale_down_after_min=1))
    asked = [max(1, math.ceil(a / 60 / 8 - 1e-9)) for a in arrivals]
    assert res.replica_minutes == 1 + sum(asked[:-1])
    assert res.slo_minutes == 0
    assert res.max_replicas == math.ceil(600 / 60 / 8)  # 2 at the crest
    # Against a pool held at the crest all day: the sine needs less than three quarters of it.
    assert res.replica_minutes < 0.75 * res.max_replicas * len(arrivals)
    # GPU utilisation cannot wake a pool at zero: with floor 0 it never starts and every busy minute is late.
    asleep = simulate(load, Policy("gpu_utilization", 0.8, warm_floor=0, cold_start_min=0))
    assert asleep.replica_minutes == 0 and asleep.slo_minutes == sum(1 for t in range(len(arrivals)) if sum(arrivals[:t + 1]))


# ------------------------------------------------------------------ a constant load on a self-hosted server

T0 = datetime(2025, 11, 9, tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_constant_load(folder, *, hours=3, per_minute=30, interactive=True):
    """`per_minute` calls of 1 s to a vLLM-served Llama every minute for `hours`, each its own request (a server
    root span when interactive), with the node's DCGM and vLLM scrapes every minute (one H100, one replica)."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    gap_ns = 60 * 10**9 // per_minute
    t0_ns = int(T0.timestamp()) * 10**9
    for i in range(hours * 60 * per_minute):
        start = t0_ns + i * gap_ns
        tid, root = f.new_trace_id(), f.new_span_id()
        call = f.llm_span(tid, root, LLAMA, 1000, 100, start)
        call["endTimeUnixNano"] = str(start + 10**9)
        for a in call["attributes"]:
            if a["key"] == "gen_ai.provider.name":
                a["value"] = {"stringValue": "vllm"}
        root_span = f.span(tid, root, None, "POST /summarize" if interactive else "job", 2 if interactive else 1,
                           start - 1000, 10**9 + 2000, {"http.route": "/summarize"} if interactive else {"app.feature": "job"})
        docs.append(f.request([root_span, call], service="summarizer"))
    with open(folder / "traces.otlp.jsonl", "w") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    dcgm, vllm = [], []
    labels = 'engine="0",model_name="%s"' % LLAMA
    for m in range(hours * 60 + 1):
        t = T0 + timedelta(minutes=m)
        dcgm += [f"# scrape {_iso(t)}",
                 'DCGM_FI_PROF_SM_ACTIVE{gpu="0",UUID="GPU-0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-a"} 0.3']
        done = min(m, hours * 60) * per_minute
        vllm += [f'# scrape {_iso(t)} {{instance="node-a:8000",job="vllm"}}',
                 f"vllm:num_requests_running{{{labels}}} 1.0", f"vllm:num_requests_waiting{{{labels}}} 0.0",
                 f'vllm:request_success_total{{{labels},finished_reason="stop"}} {float(done)!r}',
                 f"vllm:generation_tokens_total{{{labels}}} {float(done * 100)!r}",
                 f"vllm:prompt_tokens_total{{{labels}}} {float(done * 1000)!r}"]
    (folder / "node.dcgm.prom").write_text("\n".join(dcgm) + "\n")
    (folder / "vllm.metrics.prom").write_text("\n".join(vllm) + "\n")
    return folder


def ingest_folder(db, folder):
    with Store(db) as store:
        report = Ingestor(store, workers=1).run(expand_paths([str(folder)]))
        assert report.read_anything
        from llmaudit.config import Settings

        derive(store, Settings())


def sweep_result(steps: list[tuple[float, bool, list[tuple[str, float, float]]]], capacity: float | None, *,
                 slo_ttft=1.0, interrupted=False) -> CapacityResult:
    """A capacity sweep as `replay capacity` returns it: (rate, passed, [(status, ttft, e2e), ...]) per step."""
    cfg = CapacityConfig(endpoint="http://127.0.0.1:9", model="tiny", slo_ttft_s=slo_ttft, step_s=10)
    out = CapacityResult(config=cfg, capacity_rps=capacity, interrupted=interrupted)
    for rate, passed, reqs in steps:
        results = [RequestResult(id=f"c{i}", scheduled_s=i, input_tokens=1000, output_tokens=100, status=st, sent_s=i,
                                 end_s=i + (e2e or 0), ttft_s=ttft, e2e_s=e2e, completion_tokens=100) for i, (st, ttft, e2e) in
                   enumerate(reqs)]
        ok = sum(1 for st, _, _ in reqs if st == "ok")
        summary = {"sent": len(reqs), "ok": ok, "errors": len(reqs) - ok, "slo_attainment": ok / len(reqs),
                   "throughput_rps": rate, "goodput_rps": rate, "output_tokens_per_s": rate * 100,
                   **{f"{k}_p{q}_s": max((r[1 if k == "ttft" else 2] or 0) for r in reqs) for k in ("ttft", "e2e")
                      for q in (50, 90, 99)}}
        out.steps.append(Step(rate=rate, passed=passed, summary=summary, results=results))
    return out


# 20 requests per step: at 0.1 req/s every TTFT is 0.2 s, at 0.15 0.4 s, at 0.2 half of them take 3 s.
STEPS = [(0.1, True, [("ok", 0.2, 1.0)] * 20), (0.15, True, [("ok", 0.4, 1.5)] * 20),
         (0.2, False, [("ok", 0.5, 2.0)] * 10 + [("ok", 3.0, 6.0)] * 10)]
SHAPES = Workload(requests=[Request(id="r0", arrival_s=0, input_tokens=1000, output_tokens=100, model=LLAMA)])


@pytest.fixture(scope="module")
def constant_db(tmp_path_factory):
    d = tmp_path_factory.mktemp("constant")
    db = d / "store.duckdb"
    ingest_folder(db, write_constant_load(d / "in"))
    with Store(db) as store:
        save_sweep(store, sweep_result(STEPS, 0.15), SHAPES,
                   SweepContext(production_model=LLAMA, host="node-a", gpu="H100", gpu_hour_usd=6.88))
    return db


def test_capacity_sweeps_are_stored_whole_and_only_a_measurement_is_used(tmp_path):
    with Store(tmp_path / "s.duckdb") as store:
        ok = save_sweep(store, sweep_result(STEPS, 0.15), SHAPES, SweepContext(production_model=LLAMA))
        cut = save_sweep(store, sweep_result(STEPS[:1], 0.1, interrupted=True), SHAPES, SweepContext(production_model=LLAMA))
        none = save_sweep(store, sweep_result([(0.1, False, [("timeout", None, None)] * 4)], None), SHAPES,
                          SweepContext(production_model=LLAMA))
        rows = {r["capacity_id"]: r for r in sweeps(store, usable_only=False)}
        assert rows[ok]["status"] == "ok" and rows[ok]["capacity_rps"] == 0.15 and rows[ok]["production_model"] == LLAMA
        assert rows[ok]["capacity_throughput_rps"] == 0.15 and rows[ok]["capacity_output_tokens_per_s"] == 15.0
        assert rows[cut]["status"] == STATUS_INTERRUPTED and rows[none]["status"] == "no rate met the SLO"
        assert [r["capacity_id"] for r in sweeps(store)] == [ok]
        assert store.scalar("SELECT count(*) FROM replay_capacity_steps WHERE capacity_id = ?", [ok]) == 3
        assert store.scalar("SELECT count(*) FROM replay_capacity_requests WHERE capacity_id = ?", [ok]) == 60


@pytest.mark.parametrize("headroom, needed", [(0.2, 4), (0.3, 5)])
def test_replicas_for_a_constant_load_are_ceil_of_peak_over_rate_times_headroom(constant_db, headroom, needed):
    with Store(constant_db) as store:
        doc = build_plan(store, PlanOptions(headroom=headroom))
    cap = doc.capacity[0]
    assert cap.model == LLAMA and cap.hosts == ["node-a"] and cap.replicas_provisioned == 1
    # 30 calls a minute every minute: the peak minute is 0.5 requests/s; the sweep measured 0.15 per replica.
    assert cap.peak.peak_minute_requests_per_s == pytest.approx(0.5)
    assert cap.per_replica_rps.source == "measured" and cap.per_replica_rps.value == 0.15
    assert cap.replicas_needed == math.ceil(0.5 / 0.15 * (1 + headroom) - 1e-9) == needed
    assert cap.usd_per_month_needed == pytest.approx(needed * 6.88 * MONTH_H)
    assert cap.peak.p95_concurrency == 1 and cap.peak.busy_hour_requests_per_s == pytest.approx(0.5)
    # The sweep's target (TTFT <= 1 s at 95%) is the plan's, since no other was given.
    assert doc.settings.slo_ttft_s == 1.0 and doc.settings.slo_source.startswith("capacity sweep")


def test_a_measured_rate_is_re_read_at_another_latency_target(constant_db):
    with Store(constant_db) as store:
        tight = build_plan(store, PlanOptions(slo_ttft_s=0.3))
        loose = build_plan(store, PlanOptions(slo_ttft_s=5.0))
    # At TTFT <= 0.3 s only the 0.1 req/s step met it; at 5 s every step did.
    assert tight.capacity[0].per_replica_rps.value == 0.1 and tight.capacity[0].replicas_needed == 6
    assert "re-read at TTFT <= 0.3 s" in tight.capacity[0].per_replica_rps.detail
    assert loose.capacity[0].per_replica_rps.value == 0.2 and loose.capacity[0].replicas_needed == 3


def test_the_cost_vs_latency_curve_of_a_sweep(constant_db):
    with Store(constant_db) as store:
        doc = build_plan(store, PlanOptions())
    (curve,) = doc.latency_curves
    points = {p.target_s: p for p in curve.points}
    assert curve.metric == "ttft" and curve.quantile == 0.95 and curve.peak_requests_per_s == pytest.approx(0.5)
    assert [p.target_s for p in curve.points] == [round(0.5 + 0.1 * i, 1) for i in range(26)]
    # Up to 2.9 s the best step is 0.15 req/s (4 replicas at 0.2 headroom); at 3 s the 0.2 step's slow half
    # counts too: 3 replicas. So 100 ms less than 3 s costs one H100 a month more.
    assert all(points[t].per_replica_rps == 0.15 and points[t].replicas == 4 for t in points if t < 3.0)
    assert points[3.0].per_replica_rps == 0.2 and points[3.0].replicas == 3
    assert points[3.0].usd_per_month == pytest.approx(3 * 6.88 * MONTH_H)
    assert points[3.0].usd_per_month_for_100ms_less == pytest.approx(6.88 * MONTH_H)
    assert points[1.0].usd_per_month_for_100ms_less == 0


# ------------------------------------------------------------------ the sample week

@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("sample") / "store.duckdb"
    ingest_folder(db, SAMPLE)
    return db


@pytest.fixture(scope="module")
def sample_plan(sample_db):
    with Store(sample_db) as store:
        doc = build_plan(store, PlanOptions())
        q = store.con.execute
        facts = {
            "groups": {(fe, m): (n, i, o, c) for fe, m, n, i, o, c in q(
                "SELECT feature, model, count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd) FROM llm_calls "
                "GROUP BY ALL").fetchall()},
            "nights": q(f"SELECT CAST(start_time AS DATE), min(start_time), max(end_time) FROM llm_calls WHERE model = '{LLAMA}' "
                        "GROUP BY 1 ORDER BY 1").fetchall(),
            "peak_minute": q(f"SELECT max(n) FROM (SELECT count(*) n FROM llm_calls WHERE model = '{LLAMA}' "
                             "GROUP BY date_trunc('minute', start_time))").fetchone()[0],
            # each group's busiest minute in every hour that had calls
            "hour_peaks": {},
        }
        for fe, m, peaks in q("""
                SELECT feature, model, list(n) FROM (
                    SELECT feature, model, date_trunc('hour', minute) AS h, max(n) AS n FROM (
                        SELECT feature, model, date_trunc('minute', start_time) AS minute, count(*) AS n
                        FROM llm_calls GROUP BY ALL) GROUP BY ALL) GROUP BY ALL""").fetchall():
            facts["hour_peaks"][(fe, m)] = peaks
    return doc, facts


def _row(doc, feature, model):
    return next(b for b in doc.breakeven if b.feature == feature and b.model == model)


def test_sample_week_each_feature_is_on_its_side_of_the_breakeven_with_its_figures(sample_plan):
    doc, facts = sample_plan
    # The window is the metrics' week: 2026-11-09 00:00 to the last scrape at 2026-11-15 23:55.
    assert doc.window.hours == pytest.approx(167 + 55 / 60, abs=1e-3)
    month = MONTH_H / doc.window.hours
    h100_month = 6.88 * MONTH_H  # one H100 replica kept warm: the floor of an interactive feature
    for feature, model in [("/v1/support/chat", "gpt-4o"), ("/v1/ops/ask", "claude-sonnet-4-5")]:
        b = _row(doc, feature, model)
        api = facts["groups"][(feature, model)][3] * month
        assert b.workload_class == "interactive" and b.self_host.warm_floor == 1
        assert b.api.usd_per_month == pytest.approx(api, abs=0.01)
        assert b.self_host.usd_per_month == pytest.approx(h100_month, abs=0.01) and b.self_host.replicas_at_peak == 1
        assert b.side == "api"
        # At the break-even k the API (k x today) costs what self-hosting k x today's traffic does: every hour of
        # the 168 keeps 1 replica, or more where its busiest minute x k x 1.2 exceeds a replica's rate.
        k, rate = b.breakeven_multiple, b.self_host.per_replica_rps.value

        def self_host(k):
            peaks = facts["hour_peaks"][(feature, model)]
            extra = sum(max(1, math.ceil(k * n / 60 * 1.2 / rate - 1e-9)) - 1 for n in peaks)
            return (168 + extra) * 6.88 * MONTH_H / 168

        assert k * api == pytest.approx(self_host(k), rel=1e-3)
        assert 0.999 * k * api < self_host(0.999 * k)
        n = facts["groups"][(feature, model)][0]
        assert b.breakeven_requests_per_day == pytest.approx(n * k * 24 / doc.window.hours, rel=1e-3)
        assert f"{b.breakeven_multiple:,.1f}x today's volume" in b.why and "the API is cheaper" in b.why
    # The chat's busiest hour needs a second replica from 21.6x: the break-even is past it.
    assert _row(doc, "/v1/support/chat", "gpt-4o").breakeven_multiple == pytest.approx(25.28, abs=0.01)
    # Cheap models never pay for a GPU, at any volume.
    for feature, model in [("/v1/support/chat", "gpt-4o-mini"), ("/v1/ops/ask", "claude-haiku-4-5"),
                           ("/v1/email/draft", "gpt-4o-mini")]:
        b = _row(doc, feature, model)
        assert b.side == "api" and b.breakeven_multiple is None and "never" in b.why
    # The summarizer is self-hosted today: its tokens on an API serving the same open model (Bedrock's
    # Llama 3.1 8B, $0.22 per 1M in and out) cost a fraction of its GPU.
    b = _row(doc, "nightly-summaries", LLAMA)
    n, i, o, _ = facts["groups"][("nightly-summaries", LLAMA)]
    assert (i, o) == (EXPECTED["serving"]["prompt_tokens"], EXPECTED["serving"]["generation_tokens"])
    assert b.self_hosted_today and b.workload_class == "nightly_batch" and b.self_host.warm_floor == 0
    assert b.api.model == "bedrock/meta.llama3-1-8b-instruct-v1:0"
    assert b.api.usd_per_month == pytest.approx((i + o) * 0.22 / 1e6 * month, abs=0.01)
    assert b.today_usd_per_month == pytest.approx(EXPECTED["gpu"]["provisioned_gpu_hours"] * 6.88 * month, abs=0.01)
    assert b.side == "api" and b.breakeven_multiple > 100
    assert "today its GPUs cost" in b.why
    assert "text-embedding-3-small" not in {x.model for x in doc.breakeven}


def test_sample_week_nightly_summarizer_scales_to_zero_with_its_saving(sample_plan):
    doc, facts = sample_plan
    fit = next(x for x in doc.scale_to_zero if x.feature == "nightly-summaries")
    assert fit.workload_class == "nightly_batch" and fit.scale_to_zero and fit.min_replicas == 0
    assert fit.active_hours_utc == EXPECTED["gpu"]["idle_capacity"]["busy_hours_of_day"] == [1, 2]
    # One run a night (calls every ~20 s, closer than a cold start + the scale-down delay), each paying a cold
    # start (120 s, assumed) before and 5 minutes after.
    assert fit.runs == len(facts["nights"]) == 7
    assert fit.cold_start.source == "assumed" and fit.cold_start.value == 120
    run_h = sum((b - a).total_seconds() for _, a, b in facts["nights"]) / 3600
    needed = run_h + 7 * (120 + 300) / 3600
    assert fit.gpu_hours_provisioned == pytest.approx(EXPECTED["gpu"]["provisioned_gpu_hours"])
    assert fit.gpu_hours_needed == pytest.approx(needed, abs=1e-3)
    saved = (168.0 - needed) * MONTH_H / doc.window.hours
    assert fit.gpu_hours_saved_per_month == pytest.approx(saved, abs=0.01)
    assert fit.usd_saved_per_month == pytest.approx(saved * 6.88, abs=0.05)
    # Close to what the idle-capacity finding's hour-of-day schedule saves (154 GPU-hours a week).
    assert 150 < 168.0 - needed < 156
    for x in doc.scale_to_zero:
        if x.feature != "nightly-summaries":
            assert x.workload_class == "interactive" and x.min_replicas == 1 and not x.scale_to_zero


def test_sample_week_capacity_and_backtest_for_the_self_hosted_server(sample_plan):
    doc, facts = sample_plan
    (cap,) = doc.capacity
    assert (cap.model, cap.hosts, cap.gpu, cap.gpu_hour_usd) == (LLAMA, ["vllm-node-1"], "H100", 6.88)
    assert cap.peak.peak_minute_requests_per_s == pytest.approx(facts["peak_minute"] / 60)
    assert cap.peak.max_concurrency == EXPECTED["serving"]["peak_running_true"] == 1
    # No sweep, and the metrics never show requests waiting: the class's figure, for this traffic's sizes.
    n, i, o, _ = facts["groups"][("nightly-summaries", LLAMA)]
    tp = throughput("llama-3.1-8b", "H100")
    assert cap.per_replica_rps.source == "assumed"
    assert cap.per_replica_rps.value == pytest.approx(1 / (i / n / tp.prefill_tokens_per_s + o / n / tp.decode_tokens_per_s))
    assert cap.replicas_needed == EXPECTED["serving"]["replicas_needed"] == 1
    assert cap.replicas_provisioned == EXPECTED["serving"]["replicas_provisioned"] == 1
    assert any("never show requests waiting" in x for x in cap.notes)

    (bt,) = doc.backtest
    assert bt.requests == n and bt.arrivals.startswith("the traces")
    assert bt.slo_s == 600 and bt.slo_rule.startswith("not interactive (nightly_batch)")
    assert bt.today.gpu_hours == pytest.approx(bt.minutes / 60, abs=1e-3) and bt.today.meets_slo
    best = next(p for p in bt.policies if p.recommended)
    assert best.policy == bt.recommended and best.warm_floor == 0 and best.meets_slo
    assert best.usd_per_month < 0.1 * bt.today.usd_per_month
    # A pool at zero never hears from GPU utilisation or tokens/s: those policies leave every request waiting.
    for p in bt.policies:
        if p.warm_floor == 0 and p.signal in ("gpu_utilization", "tokens_per_s"):
            assert p.gpu_hours == 0 and p.slo_minutes > 0 and not p.meets_slo
    assert "1 replica(s) throughout the window: no autoscaling" in bt.current_scaling
    # E: the window's own high-water mark (no sweep), and the class's rate beside it.
    (e,) = doc.batching
    assert e.reference.source == "observed" and e.class_rate.value == 5103 and 0 < e.efficiency <= 1
    assert [h.hour_utc for h in e.by_hour] == [1, 2]
    assert e.tokens_per_s_per_gpu == pytest.approx(EXPECTED["serving"]["generation_tokens"] /
                                                   sum(h.serving_seconds for h in e.by_hour), rel=1e-3)


def test_cost_anatomy_of_the_sample_week(sample_plan):
    doc, facts = sample_plan
    month = MONTH_H / doc.window.hours
    by = {a.feature: a for a in doc.anatomy}
    for feature in ("/v1/support/chat", "/v1/ops/ask", "/v1/email/draft"):
        cost = sum(c for (fe, _m), (_n, _i, _o, c) in facts["groups"].items() if fe == feature)
        assert by[feature].usd == pytest.approx(cost, abs=1e-3)
        assert sum(p.usd for p in by[feature].parts) == pytest.approx(by[feature].usd, abs=1e-3)
    parts = {p.part: p for p in by["/v1/support/chat"].parts}
    # 20 retrieved chunks of 300-400 tokens in every prompt: most of the chat's money.
    assert parts["retrieval_context"].share > 0.6
    assert set(by["/v1/support/chat"].extra_calls_usd) == {"embedding", "moderation", "retry"}
    assert set(by["/v1/ops/ask"].extra_calls_usd) == {"planning", "routing"}
    night = {p.part: p for p in by["nightly-summaries"].parts}
    assert by["nightly-summaries"].usd == pytest.approx(EXPECTED["billing"]["compute"]["usd"], abs=0.01)
    assert night["idle_headroom"].share > 0.95
    assert by["nightly-summaries"].usd_per_month == pytest.approx(by["nightly-summaries"].usd * month, abs=0.01)


def _figures(node, path=""):
    """Every Figure in a plan's JSON: dicts with value, unit, source and detail."""
    if isinstance(node, dict):
        if {"value", "unit", "source", "detail"} <= set(node):
            yield path, node
        for k, v in node.items():
            yield from _figures(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _figures(v, f"{path}[{i}]")


ALWAYS_ASSUMED = ("headroom", "ops cost", "hours per month", "autoscaling target", "scale-down delay",
                  "longest wait of a non-interactive request", "llama-3.1-8b: cold start",
                  "llama-3.1-8b on H100: generated tokens/s per replica", "llama-3.1-8b on H100: prompt tokens/s per replica")


def _check_assumptions_cover(plan: dict, needed=ALWAYS_ASSUMED + ("latency target: TTFT",)):
    listed = plan["assumptions"]
    assumed = [(p, fig) for p, fig in _figures(plan) if fig["source"] in ("assumed", "default")]
    assert assumed, "the sample week's plan rests on assumed figures"
    for path, fig in assumed:
        assert any(a["kind"] in ("assumed", "default") and a["value"] == pytest.approx(fig["value"])
                   and fig["detail"] in a["source"] for a in listed), f"{path}: {fig} is not in the assumptions"
    names = {a["name"] for a in listed}
    for name in needed:
        assert name in names, name
    return listed


def test_every_assumed_figure_is_in_the_assumptions_of_every_output(sample_db, tmp_path):
    runner = CliRunner()
    js = tmp_path / "plan.json"
    res = runner.invoke(app, ["plan", "--db", str(sample_db), "-f", "json", "-o", str(js)])
    assert res.exit_code == 0, res.output
    plan = json.loads(js.read_text())
    jsonschema.Draft202012Validator(json.loads(schema_path("plan.schema.json").read_text())).validate(plan)
    listed = _check_assumptions_cover(plan)
    # The terminal tables end with the same list.
    res = runner.invoke(app, ["plan", "--db", str(sample_db)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    text = res.output
    for title in ("1. Cost anatomy", "2. Capacity at peak", "3. API vs self-host", "4. Scale-to-zero fit",
                  "5. Autoscaler backtest", "Assumptions"):
        assert title in text, title
    tail = text[text.index("Assumptions"):]
    for a in listed:
        assert a["name"][:30] in tail.replace("\n", " ") or a["name"].split(":")[0] in tail, a["name"]
    # The audit document carries the same plan (report --plan: the stored audit, same outputs as analyze).
    out, html, md = tmp_path / "report.json", tmp_path / "report.html", tmp_path / "report.md"
    res = runner.invoke(app, ["report", "--db", str(sample_db), "--plan", "--json", str(out), "--html", str(html),
                              "--markdown", str(md), "-q"])
    assert res.exit_code in (0, 1), res.output
    # The HTML and Markdown show the plan in a section of their own (not the generic extras: no raw plan keys),
    # each with the whole list of assumed figures.
    import html as html_lib
    import re

    page = html_lib.unescape(re.sub(r"<wbr>", "", html.read_text()))
    markdown = md.read_text().replace("\\", "").replace("&#x27;", "'")
    assert "breakeven" not in page and "breakeven" not in markdown
    assert 'id="plan"' in page and "### Plan" in markdown
    for a in listed:
        assert a["name"] in page and a["name"] in markdown, a["name"]
    doc = json.loads(out.read_text())
    jsonschema.Draft202012Validator(json.loads(schema_path().read_text())).validate(doc)
    assert doc["extras"]["plan"]["assumptions"] == listed
    assert doc["extras"]["plan"]["breakeven"] == plan["breakeven"]
    _check_assumptions_cover(doc["extras"]["plan"])


def test_plan_command_errors_name_what_to_change(sample_db, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["plan", "--db", str(tmp_path / "none.duckdb")])
    assert res.exit_code == 2 and "no such store" in res.output
    res = runner.invoke(app, ["plan", "--db", str(sample_db), "--self-host-model", "gpt-9"])
    assert res.exit_code == 2 and "no such model class" in res.output and "llama-3.1-8b" in res.output
    res = runner.invoke(app, ["plan", "--db", str(sample_db), "--accelerator", "TPU9"])
    assert res.exit_code == 2 and "TPU9" in res.output
    res = runner.invoke(app, ["plan", "--db", str(sample_db), "--slo-ttft", "0"])
    assert res.exit_code == 2 and "--slo-ttft" in res.output
    empty = tmp_path / "empty.duckdb"
    Store(empty).close()
    res = runner.invoke(app, ["plan", "--db", str(empty)])
    assert res.exit_code == 2 and "nothing to plan" in res.output


def test_options_change_the_plan(sample_db):
    with Store(sample_db) as store:
        base = build_plan(store, PlanOptions())
        other = build_plan(store, PlanOptions(accelerator="L40S", ops_usd_per_month=1000, headroom=0.5))
    b = _row(other, "/v1/support/chat", "gpt-4o")
    # The L40S: its own hour price and the class's L40S throughput; ops on top of the GPU.
    assert other.settings.gpu == "L40S" and b.self_host.gpu == "L40S"
    assert b.self_host.usd_per_month == pytest.approx(1.861 * MONTH_H + 1000, abs=0.01)
    assert b.breakeven_multiple > _row(base, "/v1/support/chat", "gpt-4o").breakeven_multiple * 0.3
    kinds = {a.name: a.kind for a in other.assumptions}
    assert kinds["headroom"] == "user" and kinds["ops cost"] == "user"
    assert "llama-3.1-8b on L40S: generated tokens/s per replica" in kinds
    # --gpu is the spelling of --accelerator; the plan leaves the store as it was.
    before = sample_db.read_bytes()
    res = CliRunner().invoke(app, ["plan", "--db", str(sample_db), "--gpu", "L40S", "--ops-usd", "1000", "--headroom", "0.5",
                                   "-f", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["breakeven"] == json.loads(other.model_dump_json())["breakeven"]
    assert sample_db.read_bytes() == before


def test_a_price_file_prices_the_api_side(sample_db, tmp_path):
    db = tmp_path / "store.duckdb"
    shutil.copy(sample_db, db)
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  openai:\n    gpt-4o: {input: 5, cached_input: 2.5, output: 20}\n")
    res = CliRunner().invoke(app, ["plan", "--db", str(db), "--prices", str(prices), "-f", "json"])
    assert res.exit_code == 0, res.output
    with Store(sample_db) as store:
        base = _row(build_plan(store, PlanOptions()), "/v1/support/chat", "gpt-4o")
    row = _row_json(json.loads(res.output), "/v1/support/chat", "gpt-4o")
    # Every gpt-4o price doubled: the API side doubles, and the break-even halves.
    assert row["api"]["usd_per_month"] == pytest.approx(2 * base.api.usd_per_month, abs=0.02)
    assert row["breakeven_multiple"] < base.breakeven_multiple


def test_model_classes_have_a_source_for_every_figure():
    doc = load_classes()
    assert doc.prefill_mfu.source and all(g.source for g in doc.gpus.values())
    for name, cls in doc.classes.items():
        assert cls.cold_start_s.source and cls.per_gpu, name
        for gpu, figures in cls.per_gpu.items():
            assert figures.source and gpu in doc.gpus, (name, gpu)
    with pytest.raises(PlanError, match="no such model class"):
        throughput("nope", "H100")


# ------------------------------------------------------------------ a real engine: the measured rate

def test_a_capacity_sweep_against_vllm_gives_the_plan_its_measured_per_replica_rate(vllm, sample_db, tmp_path):
    """The sample week, then `replay capacity` of its idle-capacity finding (the nightly summarizer's traffic)
    against a real vLLM engine: the sweep is stored, and the plan sizes the Llama server with the measured
    rate instead of the class's assumed one."""
    db = tmp_path / "store.duckdb"
    shutil.copy(sample_db, db)
    js = tmp_path / "capacity.json"
    runner = CliRunner()
    res = runner.invoke(app, ["replay", "capacity", "LLMA013", "--db", str(db), "--endpoint", vllm, "--slo-e2e", "4",
                              "--step-seconds", "4", "--start-rps", "0.5", "--max-rps", "16", "--refine", "1",
                              "--fit-context", "scale", "--json", str(js)])
    assert res.exit_code == 0, res.output
    sweep = json.loads(js.read_text())
    rate = sweep["capacity_rps"]
    assert rate is not None and sweep["capacity_id"] and "stored in" in res.output, res.output
    with Store(db) as store:
        (row,) = sweeps(store)
        assert row["capacity_id"] == sweep["capacity_id"] and row["production_model"] == LLAMA
        assert row["host"] == "vllm-node-1" and row["served_model"] == "tiny" and row["slo_e2e_s"] == 4
        assert store.scalar("SELECT count(*) FROM replay_capacity_steps WHERE capacity_id = ?", [row["capacity_id"]]) \
            == len(sweep["steps"])
        sent = sum(s["summary"]["sent"] for s in sweep["steps"])
        assert store.scalar("SELECT count(*) FROM replay_capacity_requests WHERE capacity_id = ? AND status <> 'not_sent'",
                            [row["capacity_id"]]) == sent
    out = tmp_path / "plan.json"
    res = runner.invoke(app, ["plan", "--db", str(db), "-f", "json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    plan = json.loads(out.read_text())
    (cap,) = plan["capacity"]
    print(f"\nvLLM-CPU capacity sweep {sweep['capacity_id']}: steps "
          f"{[(s['rate'], s['passed'], round(s['summary']['e2e_p99_s'] or 0, 2)) for s in sweep['steps']]}; "
          f"per-replica rate {rate} req/s; plan: {cap['per_replica_rps']}; replicas {cap['replicas_needed']}")
    assert cap["per_replica_rps"]["source"] == "measured" and cap["per_replica_rps"]["value"] == rate
    assert sweep["capacity_id"] in cap["per_replica_rps"]["detail"]
    assert cap["replicas_needed"] == max(1, math.ceil(cap["peak"]["peak_minute_requests_per_s"] * 1.2 / rate - 1e-9))
    assert plan["settings"]["slo_e2e_s"] == 4 and plan["settings"]["slo_source"] == f"capacity sweep {sweep['capacity_id']}"
    # The sweep also measures E's reference and gives the cost-vs-latency curve (end-to-end p95, 0.5 to 3 s).
    (e,) = plan["batching"]
    assert e["reference"]["source"] == "measured"
    (curve,) = plan["latency_curves"]
    assert curve["capacity_id"] == sweep["capacity_id"] and curve["metric"] == "e2e" and len(curve["points"]) == 26
    reached = [p for p in curve["points"] if p["per_replica_rps"] is not None]
    assert all(p["per_replica_rps"] <= q["per_replica_rps"] for p, q in zip(reached, reached[1:]))
    # The break-even of the summarizer now weighs the measured rate too; the backtest scales with it.
    assert _row_json(plan, "nightly-summaries", LLAMA)["self_host"]["per_replica_rps"]["value"] == rate
    assert plan["backtest"][0]["per_replica_rps"]["value"] == rate
    # The latency target is the sweep's, not a default; the rest is still listed.
    assert "latency target: TTFT" not in {a["name"] for a in _check_assumptions_cover(plan, ALWAYS_ASSUMED)}


def _row_json(plan, feature, model):
    return next(b for b in plan["breakeven"] if b["feature"] == feature and b["model"] == model)


def test_metrics_alone_plan_a_pool_and_name_the_signal_its_replica_count_follows(tmp_path):
    """No traces: two vLLM replicas of a model, the second up only 08:00-16:00 while requests queue; the pool
    completes 60 requests every 5 minutes all day (one replica alone, or 30 each). The plan reads the load from
    the counters, the capacity from the intervals in which requests waited, and sees the replica count move
    with the queue, not with the (steady) completions."""
    lines = []
    model = "Qwen/Qwen2.5-7B-Instruct"
    labels = f'engine="0",model_name="{model}"'
    done = {"node-a": 0, "node-b": 0}
    for m in range(0, 24 * 60, 5):
        t = T0 + timedelta(minutes=m)
        busy = 8 <= t.hour < 16
        for host in ("node-a", "node-b"):
            if host == "node-b" and not busy:
                continue
            done[host] += 30 if busy else 60
            running, waiting = (8.0, 4.0) if busy else (2.0, 0.0)
            lines += [f'# scrape {_iso(t)} {{instance="{host}:8000",job="vllm"}}',
                      f"vllm:num_requests_running{{{labels}}} {running!r}", f"vllm:num_requests_waiting{{{labels}}} {waiting!r}",
                      f'vllm:request_success_total{{{labels},finished_reason="stop"}} {float(done[host])!r}',
                      f"vllm:generation_tokens_total{{{labels}}} {float(done[host] * 50)!r}"]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "pool.vllm.prom").write_text("\n".join(lines) + "\n")
    ingest_folder(tmp_path / "s.duckdb", folder)
    with Store(tmp_path / "s.duckdb") as store:
        doc = build_plan(store, PlanOptions(accelerator="H100"))
    (cap,) = doc.capacity
    assert cap.model == model and cap.hosts == ["node-a", "node-b"] and cap.replicas_provisioned == 2
    # While requests waited each replica completed 30 in 5 minutes: 0.1 requests/s is what one sustains.
    assert cap.per_replica_rps.source == "observed" and cap.per_replica_rps.value == pytest.approx(0.1)
    assert cap.peak.peak_minute_requests_per_s == pytest.approx(0.2)  # the pool's 60 in a 5-minute scrape
    assert cap.replicas_needed == math.ceil(0.2 * 1.2 / 0.1 - 1e-9) == 3
    assert any("no traces of its calls" in n for n in doc.notes)
    (bt,) = doc.backtest
    # Arrivals: the completions; the first scrape of each replica says nothing of what came before it.
    assert bt.arrivals.startswith("the vLLM metrics") and bt.requests == pytest.approx(sum(done.values()) - 60 - 30, abs=2)
    assert "follows queue depth (running + waiting)" in bt.current_scaling and "(1 to 2)" in bt.current_scaling
