"""An open-loop load generator for OpenAI-compatible completion servers (vLLM and others).

Open loop: every request is sent at its scheduled time whether or not earlier ones have finished,
as production traffic is. (A closed loop that waits for answers would slow down exactly when the
server does, and hide the queueing the replay is meant to measure.)

Each request is a streaming ``POST /v1/completions`` with a token-id prompt (exact input length,
shared prefixes as shared ids), ``max_tokens`` = the recorded output length with ``ignore_eos``
(exact output length), and ``stream_options.include_usage`` (the server's own token counts).

Failures are data: a server that is down, answers 4xx/5xx, times out or cuts a stream mid-way
gives a result with a status, never an exception. Ctrl-C stops sending, cancels what is in flight
and returns what was measured so far (``RunMeasurement.interrupted``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import aiohttp
import orjson

from llmaudit.gc_pause import paused_gc
from llmaudit.replay.workload import PromptMaker, Request, TokenSpace, Workload

# Statuses a request can end with. "ok" is the only success.
OK = "ok"
STATUSES = ("ok", "http_4xx", "http_5xx", "connect_error", "timeout", "cut", "bad_response", "client_error",
            "cancelled", "not_sent")
# Statuses where the server never saw the request: they do not count as server busy time.
NEVER_REACHED = ("connect_error", "not_sent")
# A run whose first requests all fail to connect stops there: the server is down, and sending the
# rest would only take minutes to say so.
FAIL_FAST_CONNECT_ERRORS = 5


class ScheduleError(ValueError):
    pass


def schedule(workload: Workload, *, speedup: float | None = None, rate: float | None = None,
             duration: float | None = None) -> list[tuple[float, Request]]:
    """(send offset in seconds, request), in send order, with the arrival pattern rescaled.

    speedup k: every offset divided by k. rate R: offsets scaled so that the mean rate over the
    workload is R requests/s (the shape of bursts is kept). duration D: offsets scaled so the last
    send is at D seconds. At most one of them."""
    given = [x for x in (speedup, rate, duration) if x is not None]
    if len(given) > 1:
        raise ScheduleError("give at most one of --speedup, --rate, --duration")
    reqs = sorted(workload.requests, key=lambda r: (r.arrival_s, r.id))
    t0 = reqs[0].arrival_s if reqs else 0.0
    span = (reqs[-1].arrival_s - t0) if reqs else 0.0
    n = len(reqs)
    if speedup is not None:
        if speedup <= 0:
            raise ScheduleError("--speedup must be > 0")
        return [((r.arrival_s - t0) / speedup, r) for r in reqs]
    if rate is not None:
        if rate <= 0:
            raise ScheduleError("--rate must be > 0")
        if span == 0:  # all at once in the file: spread them evenly at the rate
            return [(i / rate, r) for i, r in enumerate(reqs)]
        factor = ((n - 1) / rate) / span
        return [((r.arrival_s - t0) * factor, r) for r in reqs]
    if duration is not None:
        if duration < 0:
            raise ScheduleError("--duration must be >= 0")
        if span == 0:
            return [((i * duration / (n - 1)) if n > 1 else 0.0, r) for i, r in enumerate(reqs)]
        return [((r.arrival_s - t0) * duration / span, r) for r in reqs]
    return [(r.arrival_s - t0, r) for r in reqs]


@dataclass(slots=True)
class RequestResult:
    id: str
    scheduled_s: float
    input_tokens: int           # what the workload asked for
    output_tokens: int
    status: str = "not_sent"
    sent_s: float | None = None        # offsets from the run's start
    end_s: float | None = None
    lateness_s: float | None = None    # sent_s - scheduled_s: how late the client was
    wire_s: float | None = None        # when the request's headers were written to the socket
    wire_lateness_s: float | None = None  # wire_s - scheduled_s: how late the request really left
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: float | None = None         # mean time between tokens after the first
    itl_max_s: float | None = None     # longest gap between two chunks (stalls, preemptions)
    prompt_tokens: int | None = None   # the server's usage figures
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    chunks: int = 0
    http_status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunMeasurement:
    endpoint: str
    model: str
    results: list[RequestResult]
    wall_s: float
    interrupted: bool = False
    aborted: str | None = None  # why the run stopped early without being asked to (server unreachable)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClientOptions:
    endpoint: str
    model: str | None = None                # served model name; None: ask /v1/models
    timeout_s: float = 300.0                # one request, first byte to last
    connect_timeout_s: float = 10.0
    max_connections: int = 4096
    api_key: str | None = None
    token_space: TokenSpace = field(default_factory=TokenSpace)
    extra_body: dict[str, Any] = field(default_factory=dict)


def _base(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _headers(opts: ClientOptions) -> dict[str, str]:
    key = opts.api_key or os.environ.get("LLMAUDIT_REPLAY_API_KEY")
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = f"Bearer {key}"
    return h


async def served_model(session: aiohttp.ClientSession, endpoint: str, headers: dict[str, str]) -> str:
    """The first model the server lists under /v1/models."""
    async with session.get(f"{_base(endpoint)}/v1/models", headers=headers) as resp:
        resp.raise_for_status()
        doc = await resp.json(content_type=None)
    data = doc.get("data") or []
    if not data:
        raise RuntimeError(f"{endpoint}: /v1/models lists no model; pass --model")
    return data[0]["id"]


def _body(model: str, prompt: list[int], req: Request, extra: dict[str, Any]) -> bytes:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": req.output_tokens,
        # The output length is part of the workload: generate exactly max_tokens tokens, whatever the
        # (random) model would have ended on.
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update(extra)
    return orjson.dumps(body)


def _wire_trace() -> aiohttp.TraceConfig:
    """Stamp each request when aiohttp has written its headers to the socket: lateness measured at the
    wire includes waiting for a connection and serializing, not just when the send was scheduled."""
    async def headers_sent(session, ctx, params) -> None:
        if isinstance(ctx.trace_request_ctx, tuple):
            res, t0 = ctx.trace_request_ctx
            if res.wire_s is None:
                res.wire_s = time.perf_counter() - t0
                res.wire_lateness_s = res.wire_s - res.scheduled_s

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(headers_sent)
    return trace


class _Run:
    def __init__(self, opts: ClientOptions, session: aiohttp.ClientSession, model: str, headers: dict[str, str]):
        self.opts = opts
        self.session = session
        self.model = model
        self.headers = headers
        self.url = f"{_base(opts.endpoint)}/v1/completions"
        self.t0 = 0.0
        self.ok_seen = False
        self.connect_failures = 0
        self.abort = asyncio.Event()
        self.abort_reason: str | None = None

    def _note(self, res: RequestResult) -> None:
        """Fail fast: connection failures before any success, FAIL_FAST_CONNECT_ERRORS of them, end the run."""
        if res.status == OK:
            self.ok_seen = True
        elif res.status == "connect_error" and not self.ok_seen:
            self.connect_failures += 1
            if self.connect_failures >= FAIL_FAST_CONNECT_ERRORS and not self.abort.is_set():
                self.abort_reason = (f"the server is unreachable: the first {self.connect_failures} requests could not "
                                     f"connect to {self.opts.endpoint} ({res.error})")
                self.abort.set()

    async def send(self, res: RequestResult, body: bytes) -> None:
        clock = time.perf_counter
        start = clock()
        res.sent_s = start - self.t0
        res.lateness_s = res.sent_s - res.scheduled_s
        first = last = None
        max_gap = 0.0
        done = False
        try:
            async with self.session.post(self.url, data=body, headers=self.headers,
                                         trace_request_ctx=(res, self.t0)) as resp:
                res.http_status = resp.status
                if resp.status >= 400:
                    text = (await resp.content.read(500)).decode("utf-8", "replace")
                    res.status = "http_5xx" if resp.status >= 500 else "http_4xx"
                    res.error = f"HTTP {resp.status}: {' '.join(text.split())[:300]}"
                    return
                # A bound on lines read: a server that streams forever cannot keep the run alive
                # (the total timeout also applies). Chunks carry >= 1 token; 4x leaves room for
                # empty keep-alive chunks.
                budget = 4 * res.output_tokens + 64
                # Read what arrived, not line by line: one await per network read keeps the event loop
                # free for the sends that are due (lines of one read share its arrival time).
                pending = b""
                stream = resp.content.iter_any()
                while not done:
                    try:
                        data = await stream.__anext__()
                    except StopAsyncIteration:
                        if not pending:
                            break
                        data, pending = pending + b"\n", b""  # a last line without its newline
                    now = clock()
                    lines = (pending + data).split(b"\n")
                    pending = lines.pop()
                    for raw in lines:
                        budget -= 1
                        if budget < 0:
                            res.status, res.error = "bad_response", "more chunks than tokens asked for"
                            return
                        if not raw.startswith(b"data:"):
                            continue  # blank separators, comments, event: lines
                        payload = raw[5:].strip()
                        if payload == b"[DONE]":
                            done = True
                            break
                        try:
                            chunk = orjson.loads(payload)
                        except orjson.JSONDecodeError:
                            res.status, res.error = "bad_response", f"not JSON: {payload[:80]!r}"
                            return
                        if chunk.get("choices"):
                            res.chunks += 1
                            if first is None:
                                first = now
                            elif last is not None and now - last > max_gap:
                                max_gap = now - last
                            last = now
                        usage = chunk.get("usage")
                        if usage:
                            res.prompt_tokens = usage.get("prompt_tokens")
                            res.completion_tokens = usage.get("completion_tokens")
                            details = usage.get("prompt_tokens_details") or {}
                            res.cached_tokens = details.get("cached_tokens")
                        if chunk.get("error"):  # some servers report failures inside the stream
                            res.status, res.error = "http_5xx", str(chunk["error"])[:300]
                            return
            if not done:
                res.status = "cut"
                res.error = "stream ended before [DONE]"
                return
            res.status = OK
        except asyncio.CancelledError:
            res.status, res.error = "cancelled", "run interrupted"
        except asyncio.TimeoutError:
            res.status, res.error = "timeout", f"no complete answer within {self.opts.timeout_s:g} s"
        except aiohttp.ClientConnectorError as exc:
            res.status, res.error = "connect_error", str(exc)[:300]
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            res.status, res.error = "cut", f"{type(exc).__name__}: {str(exc)[:200]}"
        except aiohttp.ClientError as exc:
            res.status, res.error = "client_error", f"{type(exc).__name__}: {str(exc)[:200]}"
        except Exception as exc:  # noqa: BLE001 - one odd answer must not end the whole run
            res.status, res.error = "bad_response", f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            end = clock()
            self._note(res)
            res.end_s = end - self.t0
            res.e2e_s = end - start
            if first is not None:
                res.ttft_s = first - start
                n = res.completion_tokens or res.chunks
                if last is not None and n > 1:
                    res.itl_s = (last - first) / (n - 1)
                res.itl_max_s = max_gap if res.chunks > 1 else None


async def replay_async(workload: Workload, opts: ClientOptions, *, salt: str, speedup: float | None = None,
                       rate: float | None = None, duration: float | None = None,
                       stop: asyncio.Event | None = None,
                       on_start: Callable[[float], Any] | None = None,
                       on_progress: Callable[[int, int], Any] | None = None) -> RunMeasurement:
    """Send the workload once. `stop` (or Ctrl-C when run through `replay`) ends it early."""
    plan = schedule(workload, speedup=speedup, rate=rate, duration=duration)
    stop = stop or asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=opts.timeout_s, sock_connect=opts.connect_timeout_s)
    connector = aiohttp.TCPConnector(limit=opts.max_connections, limit_per_host=opts.max_connections,
                                     ttl_dns_cache=300)
    headers = _headers(opts)
    maker = PromptMaker(salt, opts.token_space)
    results = [RequestResult(id=r.id, scheduled_s=t, input_tokens=r.input_tokens, output_tokens=r.output_tokens)
               for t, r in plan]
    async with aiohttp.ClientSession(timeout=timeout, connector=connector, raise_for_status=False,
                                     trace_configs=[_wire_trace()]) as session:
        model = opts.model
        model_error = None
        if model is None:
            try:
                model = await served_model(session, opts.endpoint, headers)
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, KeyError, ValueError) as exc:
                # No model list (server down, or a server without /v1/models): the sends will
                # record what happens; the model name goes in as given by the workload.
                model = workload.requests[0].model or "default"
                model_error = f"/v1/models: {type(exc).__name__}: {exc}"[:300]
        # Bodies are built before the clock starts so that serializing 3,000-id prompts never
        # delays a send.
        bodies = [_body(model, maker.prompt(r), r, opts.extra_body) for _, r in plan]
        run = _Run(opts, session, model, headers)
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task] = []
        started = time.perf_counter()
        run.t0 = started + 0.05  # a little head room so the first send is not late by construction
        if on_start:
            on_start(run.t0)
        interrupted = False

        def halted() -> bool:
            return stop.is_set() or run.abort.is_set()

        with paused_gc():
            for i, (offset, _) in enumerate(plan):
                # Sleep in slices of at most 0.25 s so that Ctrl-C during a long recorded gap is
                # answered at once; the last slice ends at the send time.
                while not halted():
                    delay = run.t0 + offset - time.perf_counter()
                    if delay <= 0:
                        break
                    await asyncio.sleep(min(delay, 0.25))
                if halted():
                    interrupted = stop.is_set()
                    break
                tasks.append(loop.create_task(run.send(results[i], bodies[i])))
                if on_progress and i % 16 == 0:
                    on_progress(i + 1, len(plan))
            if tasks:
                # send() never raises (every failure is a status), so gather only ends when all did.
                gathered = asyncio.gather(*tasks)
                waiters = {loop.create_task(stop.wait()), loop.create_task(run.abort.wait())}
                done, _ = await asyncio.wait({gathered, *waiters}, return_when=asyncio.FIRST_COMPLETED)
                if gathered not in done:
                    interrupted = stop.is_set()
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(gathered, return_exceptions=True)
                for w in waiters:
                    w.cancel()
            wall = time.perf_counter() - run.t0
    if on_progress:
        on_progress(sum(r.sent_s is not None for r in results), len(plan))
    meta = {"model_lookup_error": model_error} if model_error else {}
    return RunMeasurement(endpoint=opts.endpoint, model=model, results=results, wall_s=wall, interrupted=interrupted,
                          aborted=run.abort_reason, meta=meta)


def run_loop(coro):
    """Run a coroutine on a fresh event loop: uvloop when installed (less overhead per callback, so
    sends keep their schedule at high rates), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def replay(workload: Workload, opts: ClientOptions, **kwargs) -> RunMeasurement:
    """Synchronous wrapper: Ctrl-C stops the run and keeps what was measured."""
    return run_loop(_with_sigint(replay_async, workload, opts, **kwargs))


async def _with_sigint(fn, *args, **kwargs):
    stop = kwargs.pop("stop", None) or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = False
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        pass
    try:
        return await fn(*args, stop=stop, **kwargs)
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


# ---------------------------------------------------------------- summaries

def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (the numpy default), None for no values."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def busy_seconds(results: list[RequestResult]) -> float:
    """Length of the union of the requests' [sent, end] intervals: time the server had work.

    A server with at least one request in flight is busy (a GPU runs an iteration for it); requests
    that overlap share that time, as batched requests share the GPU. Requests that never reached
    the server do not count."""
    spans = sorted((r.sent_s, r.end_s) for r in results
                   if r.sent_s is not None and r.end_s is not None and r.status not in NEVER_REACHED)
    total = 0.0
    cur_start = cur_end = None
    for s, e in spans:
        if cur_end is None or s > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def summarize(m: RunMeasurement, *, slo_ttft_s: float | None = None, slo_e2e_s: float | None = None) -> dict[str, Any]:
    """Per-run figures: counts by status, tokens, throughput, goodput, latency percentiles."""
    rs = m.results
    ok = [r for r in rs if r.status == OK]
    by_status: dict[str, int] = {}
    for r in rs:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    sent = [r for r in rs if r.sent_s is not None]
    if sent:
        first_send = min(r.sent_s for r in sent)
        last_end = max(r.end_s for r in sent if r.end_s is not None)
        span = max(last_end - first_send, 1e-9)
    else:
        span = 0.0

    def meets(r: RequestResult) -> bool:
        return (r.status == OK and (slo_ttft_s is None or (r.ttft_s is not None and r.ttft_s <= slo_ttft_s))
                and (slo_e2e_s is None or (r.e2e_s is not None and r.e2e_s <= slo_e2e_s)))

    good = sum(meets(r) for r in rs)
    prompt = sum(r.prompt_tokens or 0 for r in ok)
    completion = sum(r.completion_tokens or 0 for r in ok)
    mismatched = sum(1 for r in ok if r.completion_tokens is not None and r.completion_tokens != r.output_tokens
                     or r.prompt_tokens is not None and r.prompt_tokens != r.input_tokens)
    lat = [r.lateness_s for r in sent if r.lateness_s is not None]
    wire = [r.wire_lateness_s for r in sent if r.wire_lateness_s is not None]
    out: dict[str, Any] = {
        "requests": len(rs),
        "sent": len(sent),
        "ok": len(ok),
        "errors": len(sent) - len(ok),
        "by_status": dict(sorted(by_status.items())),
        "length_mismatches": mismatched,
        "interrupted": m.interrupted,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "requested_input_tokens": sum(r.input_tokens for r in rs),
        "requested_output_tokens": sum(r.output_tokens for r in rs),
        "cached_prompt_tokens": sum(r.cached_tokens or 0 for r in ok) if any(r.cached_tokens is not None for r in ok) else None,
        "wall_s": m.wall_s,
        "span_s": span,
        "busy_s": busy_seconds(rs),
        "throughput_rps": len(ok) / span if span else 0.0,
        "output_tokens_per_s": completion / span if span else 0.0,
        "goodput_rps": good / span if span else 0.0,
        "slo_attainment": good / len(sent) if sent else None,
        "slo": {"ttft_s": slo_ttft_s, "e2e_s": slo_e2e_s},
        "lateness_p50_s": percentile(lat, 0.5),
        "lateness_p99_s": percentile(lat, 0.99),
        "lateness_max_s": max(lat) if lat else None,
        "wire_lateness_p99_s": percentile(wire, 0.99),
        "wire_lateness_max_s": max(wire) if wire else None,
    }
    for name, values in (("ttft", [r.ttft_s for r in ok]), ("itl", [r.itl_s for r in ok]), ("e2e", [r.e2e_s for r in ok])):
        for q in (0.5, 0.9, 0.99):
            out[f"{name}_p{int(q * 100)}_s"] = percentile(values, q)
        vals = [v for v in values if v is not None]
        out[f"{name}_mean_s"] = sum(vals) / len(vals) if vals else None
    errors = [r.error for r in rs if r.status != OK and r.error]
    out["first_errors"] = sorted(set(errors))[:5]
    return out
