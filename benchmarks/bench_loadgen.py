"""Does the load generator keep its schedule? A benchmark against a fast local streaming server.

    python benchmarks/bench_loadgen.py [--rate 200] [--seconds 10] [--tokens 16]

Starts a minimal OpenAI-style streaming server on 127.0.0.1 in its own process (so it does not
compete with the client for the interpreter), replays an open-loop workload at --rate requests/s
through llmaudit's client, and checks:

    achieved send rate within 2% of the target   (sends / time between the first and last send)
    p99 lateness of sends under 5 ms             (actual send time - scheduled send time, both when the
                                                  send starts and when its headers reach the socket)

and that every request completed. Exit 0 when both hold, 1 otherwise. The figures are printed, so a
slower machine shows by how much it misses.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RATE_TOLERANCE = 0.02
LATENESS_P99_LIMIT_S = 0.005


def _pin(cpu: int) -> None:
    """Keep client and server on different cores where there are two: on a small machine the two
    processes otherwise take turns on one core, and the server's turn reads as client lateness."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})


def _cpu_times() -> tuple[float, float] | None:
    """(all CPU time, stolen CPU time) of the machine in clock ticks, from /proc/stat (Linux): steal is
    time the hypervisor gave this VM's CPUs to someone else, which a process sees as random stalls."""
    try:
        fields = [float(x) for x in open("/proc/stat").readline().split()[1:]]
    except OSError:
        return None
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0.0


def _serve(port: int, ready) -> None:
    """A streaming /v1/completions that answers at once: max_tokens chunks, usage, [DONE]."""
    from aiohttp import web

    _pin(1)

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        n = int(body.get("max_tokens", 1))
        prompt_len = len(body.get("prompt") or [])
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = b'data: {"id":"x","object":"text_completion","choices":[{"index":0,"text":"a","finish_reason":null}]}\n\n'
        # All tokens in one write: the server is meant to be fast, the client does the parsing.
        usage = json.dumps({"id": "x", "choices": [], "usage": {"prompt_tokens": prompt_len, "completion_tokens": n,
                                                                   "total_tokens": prompt_len + n}})
        await resp.write(chunk * n + f"data: {usage}\n\n".encode() + b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(request):
        return web.json_response({"data": [{"id": "stub"}]})

    async def health(request):
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--tokens", type=int, default=16, help="output tokens per request (streamed chunks)")
    p.add_argument("--input", type=int, default=256, help="prompt length in token ids")
    a = p.parse_args(argv)

    from llmaudit.replay.client import ClientOptions, percentile, replay, summarize
    from llmaudit.replay.server import health_ok
    from llmaudit.replay.workload import Request, Workload

    port = free_port()
    ready = mp.Event()
    proc = mp.Process(target=_serve, args=(port, ready), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        ready.wait(10)
        deadline = time.monotonic() + 10
        while not health_ok(url) and time.monotonic() < deadline:
            time.sleep(0.05)
        _pin(0)
        n = int(a.rate * a.seconds)
        # Evenly spaced arrivals: the hardest schedule to keep (no slack between sends).
        wl = Workload(requests=[Request(id=f"b{i}", arrival_s=i / a.rate, input_tokens=a.input, output_tokens=a.tokens)
                                for i in range(n)])
        cpu0, ru0 = _cpu_times(), resource.getrusage(resource.RUSAGE_SELF)
        m = replay(wl, ClientOptions(endpoint=url, model="stub"), salt="bench")
        cpu1, ru1 = _cpu_times(), resource.getrusage(resource.RUSAGE_SELF)
        s = summarize(m)
        sent = sorted(r.sent_s for r in m.results if r.sent_s is not None)
        achieved = (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 else 0.0
        lat = [r.lateness_s for r in m.results if r.lateness_s is not None]
        p50, p99, worst = percentile(lat, 0.5), percentile(lat, 0.99), max(lat)
        # At the wire: when the headers were written to the socket (connection wait and writing included).
        wire = [r.wire_lateness_s for r in m.results if r.wire_lateness_s is not None]
        w50, w99, wmax = percentile(wire, 0.5), percentile(wire, 0.99), max(wire)
        rate_err = abs(achieved - a.rate) / a.rate
        ok_rate = rate_err <= RATE_TOLERANCE
        ok_late = p99 is not None and p99 < LATENESS_P99_LIMIT_S and w99 is not None and w99 < LATENESS_P99_LIMIT_S
        ok_wire = len(wire) == n
        ok_all = s["ok"] == n
        print(f"target rate        {a.rate:.1f} req/s for {a.seconds:g} s ({n} requests, {a.input} tokens in, {a.tokens} out)")
        print(f"achieved rate      {achieved:.2f} req/s ({rate_err:.2%} off; limit {RATE_TOLERANCE:.0%})  {'PASS' if ok_rate else 'FAIL'}")
        print(f"send lateness      p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms, max {worst * 1e3:.3f} ms (send started)")
        print(f"at the wire        p50 {w50 * 1e3:.3f} ms, p99 {w99 * 1e3:.3f} ms, max {wmax * 1e3:.3f} ms (headers written; "
              f"{len(wire)}/{n} stamped)  p99 limit {LATENESS_P99_LIMIT_S * 1e3:g} ms  {'PASS' if ok_late and ok_wire else 'FAIL'}")
        print(f"completed          {s['ok']}/{n} ok, statuses {s['by_status']}, e2e p50 {s['e2e_p50_s'] * 1e3:.2f} ms, "
              f"p99 {s['e2e_p99_s'] * 1e3:.2f} ms  {'PASS' if ok_all else 'FAIL'}")
        client_cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / m.wall_s
        steal = (cpu1[1] - cpu0[1]) / (cpu1[0] - cpu0[0]) if cpu0 and cpu1 and cpu1[0] > cpu0[0] else None
        print(f"client CPU         {client_cpu:.0%} of one core over the run (the client is not the bottleneck when "
              f"this is well under 100%)")
        if steal is not None:
            print(f"host steal         {steal:.1%} of the machine's CPU time went to other VMs during the run "
                  f"(stalls that no client can avoid show up in the lateness tail)")
        return 0 if (ok_rate and ok_late and ok_wire and ok_all) else 1
    finally:
        proc.terminate()
        proc.join(5)
        if proc.is_alive():
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
