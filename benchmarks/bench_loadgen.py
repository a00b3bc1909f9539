"""Does the load generator keep its schedule? A benchmark against a fast local streaming server.

    python benchmarks/bench_loadgen.py [--rate 200] [--seconds 10] [--tokens 16]

Starts a minimal OpenAI-style streaming server on 127.0.0.1 in its own process (so it does not
compete with the client for the interpreter), replays an open-loop workload at --rate requests/s
through llmaudit's client, and checks:

    achieved send rate within 2% of the target   (sends / time between the first and last send)
    p99 lateness of sends under 5 ms             (actual send time - scheduled send time)

and that every request completed. Exit 0 when both hold, 1 otherwise. The figures are printed, so a
slower machine shows by how much it misses.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RATE_TOLERANCE = 0.02
LATENESS_P99_LIMIT_S = 0.005


def _serve(port: int, ready) -> None:
    """A streaming /v1/completions that answers at once: max_tokens chunks, usage, [DONE]."""
    from aiohttp import web

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
        n = int(a.rate * a.seconds)
        # Evenly spaced arrivals: the hardest schedule to keep (no slack between sends).
        wl = Workload(requests=[Request(id=f"b{i}", arrival_s=i / a.rate, input_tokens=a.input, output_tokens=a.tokens)
                                for i in range(n)])
        m = replay(wl, ClientOptions(endpoint=url, model="stub"), salt="bench")
        s = summarize(m)
        sent = sorted(r.sent_s for r in m.results if r.sent_s is not None)
        achieved = (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 else 0.0
        lat = [r.lateness_s for r in m.results if r.lateness_s is not None]
        p50, p99, worst = percentile(lat, 0.5), percentile(lat, 0.99), max(lat)
        rate_err = abs(achieved - a.rate) / a.rate
        ok_rate = rate_err <= RATE_TOLERANCE
        ok_late = p99 is not None and p99 < LATENESS_P99_LIMIT_S
        ok_all = s["ok"] == n
        print(f"target rate        {a.rate:.1f} req/s for {a.seconds:g} s ({n} requests, {a.input} tokens in, {a.tokens} out)")
        print(f"achieved rate      {achieved:.2f} req/s ({rate_err:.2%} off; limit {RATE_TOLERANCE:.0%})  {'PASS' if ok_rate else 'FAIL'}")
        print(f"send lateness      p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms, max {worst * 1e3:.3f} ms "
              f"(p99 limit {LATENESS_P99_LIMIT_S * 1e3:g} ms)  {'PASS' if ok_late else 'FAIL'}")
        print(f"completed          {s['ok']}/{n} ok, statuses {s['by_status']}, e2e p50 {s['e2e_p50_s'] * 1e3:.2f} ms, "
              f"p99 {s['e2e_p99_s'] * 1e3:.2f} ms  {'PASS' if ok_all else 'FAIL'}")
        return 0 if (ok_rate and ok_late and ok_all) else 1
    finally:
        proc.terminate()
        proc.join(5)
        if proc.is_alive():
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
