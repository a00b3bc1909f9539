#!/usr/bin/env python3
"""Generate a synthetic, deterministic week of LLM telemetry with planted cost problems.

Stdlib only (Python 3.11+). Same arguments, same bytes: every random choice comes from a seeded
``random.Random``; nothing reads the wall clock except the timing printed by ``bench``.

Usage
    python sample_traces/generate.py                    # rewrite the shipped sample files next to this script
    python sample_traces/generate.py sample --out DIR [--seed N] [--clean]
    python sample_traces/generate.py bench --spans 575000 --out FILE [--seed N]

As a library (tests import this file by path)::

    files, truth = generate(Scenario(), seed=DEFAULT_SEED)      # {file name: bytes}, planted truth
    files, truth = generate(Scenario.clean(), seed=7)            # nothing planted
    workloads = build(Scenario(), seed)                          # {workload: [Trace]}, format-free
    data = render(workloads["ops-agent"], "otlp-json")           # any workload, any writer

Workloads (span builders) and writers (OTLP JSON lines, OTLP document, Jaeger JSON, Zipkin v2 JSON)
are separate: a builder yields ``Trace`` objects; a writer turns any list of them into bytes.

Beside the traces, ``generate`` writes the week's bill (a FOCUS 1.2 CSV export) and the self-hosted node's
metrics (DCGM and vLLM scrapes in Prometheus text), derived from the same calls (``data_files``).
"""


import argparse
import bisect
import gzip
import io
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

DEFAULT_SEED = 20261109
HERE = Path(__file__).resolve().parent
US = 1_000_000  # microseconds per second

# ----------------------------------------------------------------------------------------------- prices
# List prices, USD per 1M tokens (assumed; the same numbers are written to expected.json).
PRICES: dict[str, dict[str, float]] = {
    "gpt-4o": {"input": 2.50, "cached_input": 1.25, "output": 10.00},
    "gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.60},
    "text-embedding-3-small": {"input": 0.02, "cached_input": 0.02, "output": 0.0},
    "claude-sonnet-4-5": {"input": 3.00, "cached_input": 0.30, "output": 15.00},
    "claude-haiku-4-5": {"input": 1.00, "cached_input": 0.10, "output": 5.00},
}
SELF_HOSTED_MODELS = ("meta-llama/Llama-3.1-8B-Instruct",)


def list_cost(model: str, input_tokens: int | None, cached: int | None, output_tokens: int | None) -> float:
    """Dollars at list price. Input tokens include cached ones (semantic-convention meaning)."""
    p = PRICES.get(model)
    if p is None:
        return 0.0
    inp = input_tokens or 0
    c = min(cached or 0, inp)
    return ((inp - c) * p["input"] + c * p["cached_input"] + (output_tokens or 0) * p["output"]) / 1e6


def _usd(x: float) -> float:
    return round(x, 6)


# ----------------------------------------------------------------------------------------------- scenario
@dataclass(frozen=True)
class Scenario:
    """Knobs of the synthetic week. ``Scenario()`` is the shipped sample; ``Scenario.clean()`` plants nothing."""

    start: str = "2026-11-09T00:00:00Z"
    days: int = 7

    # support-bot (RAG, OpenTelemetry GenAI current names)
    support_requests: int = 2000          # user requests (traces) over the window
    top_k: int = 20                       # retrieval k; useful documents are useful_k of them
    useful_k: tuple[int, int] = (3, 4)    # documents scoring within 0.10 of the best (inclusive range)
    retry_storm: bool = True
    storm_start: str = "2026-11-11T14:00:00Z"
    storm_minutes: int = 40
    storm_fail_p: tuple[float, ...] = (0.95, 0.90, 0.85, 0.80)  # P(attempt fails) for attempt 0..3 in the storm
    max_resends: int = 3
    user_resubmits: int = 2               # after a 504 the user asks again (P 0.8 each), at most this often
    isolated_retry_rate: float = 0.005    # outside the storm: P(first attempt times out); the re-send succeeds
    duplicate_share: float = 0.12         # share of requests that are a repeated FAQ (same hour clusters)
    faq_questions: int = 15
    max_turns: int = 6                    # conversation length cap; every turn resends the whole history
    content_share: float = 0.05           # main chat requests whose content is captured and usage missing
    support_max_tokens: int = 800
    system_prompt_tokens: int = 912       # identical on every main call; OpenAI caches prefixes >= 1024 tokens

    # ops-agent (OpenInference, Anthropic)
    agent_requests: int = 600
    loop_rate: float = 0.06               # share of requests stuck in a search_runbooks loop
    loop_repeats: tuple[int, int] = (12, 25)
    router_misroute_share: float = 1 / 3  # share of requests on the replica whose router runs claude-sonnet-4-5

    # batch-summarizer (OpenLLMetry, self-hosted vLLM)
    batch_docs_per_night: int = 280
    batch_max_tokens: int = 4096
    batch_window_start_hour: int = 1
    batch_window_hours: int = 2

    # email-drafter (OpenTelemetry GenAI older names + OpenLLMetry content; healthy control)
    email_requests: int = 80

    # billing export and GPU / vLLM metrics for the same week
    untraced_usd_per_day: float = 10.0    # gpt-4o spend of an untraced project (nightly evals), the billing gap
    gpu_always_on: bool = True            # the vLLM node runs all week (else only around the nightly batch)
    scrape_seconds: int = 300             # DCGM and vLLM scrape interval
    vllm_restart: str | None = "2026-11-12T10:00:00Z"  # vLLM restarts (upgrade): counters reset, KV gauge renamed

    # workload -> output file name (the name picks the writer: .otlp.jsonl, .otlp.json, .jaeger.json,
    # .zipkin.json, each optionally .gz); None leaves the workload out.
    outputs: tuple[tuple[str, str | None], ...] = (
        ("support-bot", "support-bot.otlp.jsonl.gz"),
        ("ops-agent", "ops-agent.jaeger.json.gz"),
        ("batch-summarizer", "batch-summarizer.zipkin.json.gz"),
        ("email-drafter", "email-drafter.otlp.json"),
    )
    # billing and metrics files (derived from the traces above); None leaves one out
    data_outputs: tuple[tuple[str, str | None], ...] = (
        ("billing", "billing.focus.csv.gz"),
        ("dcgm", "gpu-node.dcgm.prom.gz"),
        ("vllm", "vllm.metrics.prom.gz"),
    )

    @classmethod
    def clean(cls, **overrides) -> "Scenario":
        """No planted problem: k=4 (all four documents useful), a system prompt long enough for the provider's
        prefix cache, no storm or isolated retries, no FAQ repeats, single-turn chats, no loops, router on
        haiku, max_tokens sized to the output, a bill the traces explain, and a GPU node that is up (and
        billed) only around the nightly batch."""
        base = dict(
            top_k=4, useful_k=(4, 4), system_prompt_tokens=1100, retry_storm=False, isolated_retry_rate=0.0,
            duplicate_share=0.0, max_turns=1,
            loop_rate=0.0, router_misroute_share=0.0, batch_max_tokens=512,
            untraced_usd_per_day=0.0, gpu_always_on=False,
        )
        base.update(overrides)
        return cls(**base)

    def output_map(self) -> dict[str, str]:
        return {w: name for w, name in self.outputs if name}

    def data_output_map(self) -> dict[str, str]:
        return {k: name for k, name in self.data_outputs if name}


# ----------------------------------------------------------------------------------------------- time
def parse_time_us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    return int(round(dt.timestamp())) * US


def iso_us(us: int) -> str:
    dt = datetime.fromtimestamp(us // US, tz=timezone.utc)
    frac = us % US
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:06d}Z" if frac else f"{base}Z"


# Relative traffic per UTC hour on a weekday (EU + US customers): quiet night, busy afternoon.
CURVE_SUPPORT = [0.25, 0.22, 0.2, 0.2, 0.22, 0.3, 0.45, 0.7, 1.1, 1.5, 1.6, 1.6,
                 1.5, 1.8, 1.9, 1.9, 1.8, 1.5, 1.2, 0.95, 0.75, 0.55, 0.4, 0.3]
CURVE_OFFICE = [0.05, 0.04, 0.04, 0.04, 0.05, 0.1, 0.25, 0.6, 1.3, 1.8, 1.9, 1.8,
                1.4, 1.8, 2.0, 1.9, 1.7, 1.3, 0.8, 0.45, 0.25, 0.15, 0.1, 0.07]


def hour_weights(start_us: int, days: int, curve: list[float], weekend: float) -> list[float]:
    """Relative traffic of each hour of the window: a diurnal curve by UTC hour, weekends scaled down."""
    weights = []
    for h in range(days * 24):
        wd = datetime.fromtimestamp((start_us + h * 3600 * US) // US, tz=timezone.utc).weekday()
        weights.append(curve[h % 24] * (weekend if wd >= 5 else 1.0))
    return weights


def hour_counts(rng: random.Random, n: int, start_us: int, days: int, curve: list[float], weekend: float) -> list[int]:
    """Split n arrivals over the hours of the window by a diurnal curve (weekends scaled down)."""
    hours = days * 24
    weights = hour_weights(start_us, days, curve, weekend)
    counts = [0] * hours
    if n > 0:
        for h in rng.choices(range(hours), weights=weights, k=n):
            counts[h] += 1
    return counts


# ----------------------------------------------------------------------------------------------- spans
INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5
KIND_NAME = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


class Span:
    """One span, format-free. Times in microseconds since the epoch; ``meta`` is generator truth only."""

    __slots__ = ("trace_id", "span_id", "parent_id", "name", "kind", "start", "end", "attrs", "scope",
                 "status", "message", "events", "meta")

    def __init__(self, trace_id, span_id, parent_id, name, kind, start, end, attrs, scope,
                 status=0, message="", events=None, meta=None):
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.kind = kind
        self.start = start
        self.end = end
        self.attrs = attrs          # dict: str | int | float | bool | list[str]
        self.scope = scope          # (name, version)
        self.status = status        # 0 unset, 1 ok, 2 error
        self.message = message
        self.events = events        # [(name, time_us, attrs)] or None
        self.meta = meta            # dict for model calls (truth), else None


@dataclass
class Trace:
    trace_id: str
    resource: tuple            # ((key, value), ...) with service.name first
    spans: list                # root first
    meta: dict = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.resource[0][1]

    @property
    def start(self) -> int:
        return self.spans[0].start

    @property
    def end(self) -> int:
        return max(s.end for s in self.spans)


class Ids:
    def __init__(self, key: str):
        self._r = random.Random(key)

    def trace(self) -> str:
        return f"{self._r.getrandbits(128) | (1 << 124):032x}"  # top nibble set: no leading zeros to lose

    def span(self) -> str:
        return f"{self._r.getrandbits(64) | (1 << 60):016x}"

    def hex(self, n: int) -> str:
        return f"{self._r.getrandbits(4 * n):0{n}x}"

    def alnum(self, n: int) -> str:
        a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(a[self._r.randrange(62)] for _ in range(n))


def tri(rng: random.Random, lo: int, hi: int, mode: int) -> int:
    return int(round(rng.triangular(lo, hi, mode)))


def weighted(rng: random.Random, pairs) -> str:
    names, weights = zip(*pairs)
    return rng.choices(names, weights=weights, k=1)[0]


def resource(service: str, **extra) -> tuple:
    return (("service.name", service),) + tuple(extra.items())


SDK = (("telemetry.sdk.language", "python"), ("telemetry.sdk.name", "opentelemetry"), ("telemetry.sdk.version", "1.38.0"))

# ----------------------------------------------------------------------------------------------- text
# Words that are one cl100k token each, with a leading space and capitalised, so that text of n
# "tokens" built from them counts about n with tiktoken (checked when this list was made).
VOCAB = (
    "the a to and of for your you we our is are be can will it this that with on in at from by or as if not please "
    "when after before then account billing invoice payment card plan subscription upgrade credit charge order delivery "
    "tracking address email password reset login user users team admin access role permission settings profile data "
    "export import report dashboard api key token limit usage request error message support ticket issue problem help "
    "contact agent chat phone time day week month year number code link page button menu option click open select "
    "enter save update change remove add create delete check confirm verify send receive review follow new old first "
    "last next previous current available active free paid monthly annual total amount price cost fee tax discount "
    "policy terms service product feature system server network connection device browser app mobile desktop version "
    "release security privacy secure private public share sharing file files document folder storage space backup "
    "restore sync customer customers company business manager owner member members group list table view mode status "
    "state process step steps guide note notes details information question answer case result results value values "
    "within about more less most also only just still even again already always never often sometimes usually may "
    "should must need needs want get set use make take give keep find show see know start stop payments orders "
    "accounts cards plans roles keys limits reports errors messages"
).split()


def _sentence(rng: random.Random, k: int) -> str:
    words = [VOCAB[rng.randrange(len(VOCAB))] for _ in range(k)]
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


_BANK: list[tuple[str, int]] = []


def _bank() -> list[tuple[str, int]]:
    """A fixed bank of sentences (text, tokens): prose repeats itself, as help-center text does."""
    if not _BANK:
        r = random.Random("llmaudit-sentence-bank")
        for _ in range(120):
            k = r.randint(6, 18)
            _BANK.append((_sentence(r, k), k + 1))
    return _BANK


def make_text(rng: random.Random, n_tokens: int) -> str:
    """English-looking text of about n_tokens cl100k tokens (one token per word and per full stop):
    sentences from the bank, then one fresh sentence of exactly the tokens left."""
    bank = _bank()
    out = []
    left = n_tokens
    while left > 19:
        text, k = bank[rng.randrange(len(bank))]
        out.append(text)
        left -= k
    if left == 1:
        out.append(VOCAB[rng.randrange(len(VOCAB))])
    elif left > 1:
        out.append(_sentence(rng, left - 1))
    return " ".join(out)


MSG_OVERHEAD = 4   # tokens a chat message costs beyond its content
REPLY_PRIMING = 3  # tokens the chat format adds to every request


# ----------------------------------------------------------------------------------------------- support-bot
SUPPORT_TENANTS = (("acme", 0.42), ("globex", 0.24), ("initech", 0.16), ("umbrella", 0.11), ("hooli", 0.07))
TURN_WEIGHTS = (0.52, 0.20, 0.12, 0.08, 0.05, 0.03)   # sessions of 1..6 turns
MODERATION_SYSTEM_TOKENS = 236
HISTORY_BUDGET_TOKENS = 1000  # history a turn needs (a summary plus the last exchange); the rest is bloat
OPENAI_CACHE_MIN = 1024       # OpenAI caches prompts of at least 1024 tokens, in steps of 128
OPENAI_CACHE_STEP = 128
CACHE_TTL_US = 5 * 60 * US
KB_TOPICS = ("billing", "accounts", "security", "integrations", "exports", "api", "sso", "notifications")
SCOPE_HTTP = ("opentelemetry.instrumentation.fastapi", "0.59b0")
SCOPE_OPENAI = ("opentelemetry.instrumentation.openai_v2", "2.2b0")
SCOPE_APP = ("support_api", "2.14.1")
SCOPE_RAG = ("support_api.rag", "2.14.1")
SCOPE_REDIS = ("opentelemetry.instrumentation.redis", "0.59b0")
SCOPE_PG = ("opentelemetry.instrumentation.asyncpg", "0.59b0")
REDIS_ATTRS = {"db.system.name": "redis", "db.operation.name": "GET",
               "server.address": "redis-master.support.svc.cluster.local", "server.port": 6379}
PG_ATTRS = {"db.system.name": "postgresql", "db.namespace": "support", "db.collection.name": "messages",
            "server.address": "pg-support.internal", "server.port": 5432}


def openai_cached(prefix_tokens: int) -> int:
    if prefix_tokens < OPENAI_CACHE_MIN:
        return 0
    return prefix_tokens // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP


class KnowledgeBase:
    """Help-center chunks: id, source, chunk number, rendered token count; text made on demand."""

    def __init__(self, seed: int, docs_per_topic: int = 12, chunks_per_doc: int = 4):
        r = random.Random(f"{seed}:kb")
        self.seed = seed
        self.chunks = []  # (doc_id, topic, metadata_json, tokens)
        self.by_topic: dict[str, list[int]] = {}
        for topic in KB_TOPICS:
            for d in range(docs_per_topic):
                slug = f"{topic}-{r.choice(VOCAB)}-{d:02d}"
                for c in range(chunks_per_doc):
                    tokens = r.randint(300, 400)
                    meta = json.dumps({"source": f"help-center/{topic}/{slug}.md", "n_tokens": tokens},
                                      separators=(",", ":"))
                    self.by_topic.setdefault(topic, []).append(len(self.chunks))
                    self.chunks.append((f"hc-{topic}-{d:02d}-{c}", topic, meta, tokens))
        self._text: dict[int, str] = {}

    def text(self, i: int) -> str:
        t = self._text.get(i)
        if t is None:
            t = self._text[i] = make_text(random.Random(f"{self.seed}:kbtext:{i}"), self.chunks[i][3])
        return t

    def retrieve(self, rng: random.Random, top_k: int, useful_k: tuple[int, int]) -> dict:
        topic = rng.choice(KB_TOPICS)
        n_useful = min(top_k, rng.randint(*useful_k))
        useful = rng.sample(self.by_topic[topic], n_useful)
        taken = set(useful)
        rest = []
        while len(useful) + len(rest) < top_k:
            i = rng.randrange(len(self.chunks))
            if i not in taken:
                taken.add(i)
                rest.append(i)
        best = round(rng.uniform(0.76, 0.89), 4)
        scores = [best] + sorted((round(best - rng.uniform(0.01, 0.095), 4) for _ in range(n_useful - 1)), reverse=True)
        scores += sorted((round(rng.uniform(0.20, 0.45), 4) for _ in rest), reverse=True)
        idx = useful + rest
        tokens = [self.chunks[i][3] for i in idx]
        return {"idx": idx, "scores": scores, "tokens": tokens, "useful": n_useful,
                "context_tokens": sum(tokens), "wasted_tokens": sum(tokens[n_useful:])}


class SupportBot:
    workload = "support-bot"
    service = "support-api"
    route = "/v1/support/chat"

    def __init__(self, sc: Scenario, seed: int):
        self.sc = sc
        self.seed = seed
        self.rng = random.Random(f"{seed}:support")
        self.capture_rng = random.Random(f"{seed}:support:capture")
        self.ids = Ids(f"{seed}:support:ids")
        self.start_us = parse_time_us(sc.start)
        self.kb = KnowledgeBase(seed)
        s0 = parse_time_us(sc.storm_start)
        self.storm = (s0, s0 + sc.storm_minutes * 60 * US) if sc.retry_storm else None
        r = random.Random(f"{seed}:support:setup")
        self.faqs = []
        for f in range(sc.faq_questions):
            q = r.randint(10, 28)
            self.faqs.append({"id": f, "q": q, "retrieval": self.kb.retrieve(r, sc.top_k, sc.useful_k)})
        rs = "".join(r.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(9))
        self.resources = []
        for _ in range(3):
            pod = f"support-api-{rs[:9]}-{''.join(r.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
            self.resources.append(resource(
                self.service, **{"service.version": "2.14.1", "service.instance.id": Ids(pod).hex(32),
                                 "k8s.namespace.name": "support", "k8s.pod.name": pod,
                                 "deployment.environment.name": "production"}) + SDK)
        self.faq_last: dict[int, int] = {}
        self.main_times: list[int] = []  # recent main-call starts: the provider's prefix cache is shared
        self._system_text = None

    # -- content, made only for captured calls --------------------------------------------------
    def system_text(self) -> str:
        if self._system_text is None:
            self._system_text = make_text(random.Random(f"{self.seed}:support:system"), self.sc.system_prompt_tokens)
        return self._system_text

    def q_text(self, key: str, n: int) -> str:
        return make_text(random.Random(f"{self.seed}:q:{key}"), n)

    def a_text(self, key: str, n: int) -> str:
        return make_text(random.Random(f"{self.seed}:a:{key}"), n)

    # -- traffic ---------------------------------------------------------------------------------
    def traces(self) -> Iterator[Trace]:
        sc, rng = self.sc, self.rng
        n_faq = int(round(sc.support_requests * sc.duplicate_share)) if self.faqs else 0
        # FAQ repeats come in clusters of 2..6 identical requests inside one hour
        sizes = []
        left = n_faq
        while left > 0:
            size = min(left, rng.randint(2, 6))
            if left - size == 1:
                size += 1
            sizes.append(size)
            left -= size
        weights = hour_weights(self.start_us, sc.days, CURVE_SUPPORT, 0.4)
        faq_hours: dict[int, list] = {}
        for c, h in enumerate(rng.choices(range(len(weights)), weights=weights, k=len(sizes)) if sizes else []):
            faq_hours.setdefault(h, []).append((c, sizes[c], rng.randrange(len(self.faqs))))
        counts = hour_counts(rng, sc.support_requests - n_faq, self.start_us, sc.days, CURVE_SUPPORT, 0.4)
        turn_weights = TURN_WEIGHTS[: max(1, sc.max_turns)]
        for h, n in enumerate(counts):
            hour0 = self.start_us + h * 3600 * US
            out: list[Trace] = []
            plans = []
            for c, size, faq in faq_hours.get(h, ()):
                for _ in range(size):
                    plans.append((hour0 + rng.randrange(3600 * US), faq, c))
            for t, faq, c in sorted(plans):
                out.append(self._faq_request(t, faq, c))
            left = n
            while left > 0:
                turns = min(left, rng.choices(range(1, len(turn_weights) + 1), weights=turn_weights, k=1)[0])
                out.extend(self._session(hour0 + rng.randrange(3600 * US), turns))
                left -= turns
            out.sort(key=lambda tr: tr.start)
            yield from out

    def _recent_main(self, t: int) -> bool:
        """Was a main call sent in the TTL before t? Records t."""
        times = self.main_times
        i = bisect.bisect_left(times, t - CACHE_TTL_US)
        warm = i < len(times) and times[i] < t
        bisect.insort(times, t)
        if len(times) > 4096:
            del times[: bisect.bisect_left(times, t - 4 * 3600 * US)]
        return warm

    def _session_id(self) -> str:
        return "sess_" + self.ids.hex(20)

    def _session(self, t: int, turns: int) -> list[Trace]:
        rng = self.rng
        tenant = weighted(rng, SUPPORT_TENANTS)
        sid = self._session_id()
        hist: list[tuple[int, int]] = []
        out = []
        for i in range(turns):
            q = rng.randint(12, 90)
            a = tri(rng, 150, 450, 260)
            retr = self.kb.retrieve(rng, self.sc.top_k, self.sc.useful_k)
            tr = self._request(t, tenant, sid, i, q, a, hist, retr, None)
            out.append(tr)
            resubmits = 0
            while not tr.meta["ok"] and resubmits < self.sc.user_resubmits and rng.random() < 0.8:
                # the user got a 504 and asks the same question again: same session, same prompt
                resubmits += 1
                tr = self._request(tr.end + rng.randint(5, 40) * US, tenant, sid, i, q, a, hist, retr, None,
                                   resubmit=resubmits)
                out.append(tr)
            if not tr.meta["ok"]:
                break  # the user gives up
            hist = hist + [(q, a)]
            t = tr.end + rng.randint(20, 240) * US
        return out

    def _faq_request(self, t: int, faq: int, ckey: str) -> Trace:
        rng = self.rng
        f = self.faqs[faq]
        tenant = weighted(rng, SUPPORT_TENANTS)
        a = tri(rng, 180, 320, 240)
        last = self.faq_last.get(faq)
        warm = last is not None and t - last < CACHE_TTL_US
        tr = self._request(t, tenant, self._session_id(), 0, f["q"], a, [], f["retrieval"],
                           {"faq": faq, "cluster": ckey, "warm": warm})
        self.faq_last[faq] = t
        return tr

    def _request(self, t0, tenant, sid, turn, q, a, hist, retr, faq, resubmit=0) -> Trace:
        sc, rng, ids = self.sc, self.rng, self.ids
        tid = ids.trace()
        root_id = ids.span()
        res = self.resources[rng.randrange(len(self.resources))]
        spans: list[Span] = []
        capture = self.capture_rng.random() < sc.content_share
        qkey = f"faq{faq['faq']}" if faq else f"{sid}:{turn}"

        def chat(parent, start, model, resp_model, inp, out, max_tokens, cached, extra=None, role="", dur=None):
            sid_ = ids.span()
            d = dur if dur is not None else rng.randint(180_000, 450_000)
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
                     "gen_ai.request.max_tokens": max_tokens, "gen_ai.request.temperature": 0.0,
                     "server.address": "api.openai.com", "server.port": 443,
                     "gen_ai.response.id": "chatcmpl-" + ids.alnum(29), "gen_ai.response.model": resp_model,
                     "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": inp,
                     "gen_ai.usage.output_tokens": out, "gen_ai.usage.cache_read.input_tokens": cached}
            if extra:
                attrs.update(extra)
            meta = {"model": model, "role": role, "in": inp, "out": out, "cached": cached, "nom_in": inp,
                    "nom_out": out, "failed": False, "attempt": 0}
            return Span(tid, sid_, parent, f"chat {model}", CLIENT, start, start + d, attrs, SCOPE_OPENAI, meta=meta)

        # plumbing: authenticate, load the session (redis), load the conversation (postgres)
        t = t0 + rng.randint(300, 1_500)
        auth = Span(tid, ids.span(), root_id, "authenticate", INTERNAL, t, t + rng.randint(800, 3_000), {}, SCOPE_APP)
        t = auth.end + rng.randint(100, 600)
        red = Span(tid, ids.span(), root_id, "GET", CLIENT, t, t + rng.randint(300, 1_500), REDIS_ATTRS, SCOPE_REDIS)
        t = red.end + rng.randint(100, 600)
        sel = Span(tid, ids.span(), root_id, "SELECT support.messages", CLIENT, t, t + rng.randint(1_500, 8_000),
                   {**PG_ATTRS, "db.operation.name": "SELECT"}, SCOPE_PG)
        spans += [auth, red, sel]

        # moderation of the user message
        t = sel.end + rng.randint(1_000, 4_000)
        mp = Span(tid, ids.span(), root_id, "moderation.pre", INTERNAL, t, 0, {}, SCOPE_APP)
        mod_in = MODERATION_SYSTEM_TOKENS + MSG_OVERHEAD + q + MSG_OVERHEAD + REPLY_PRIMING
        c1 = chat(mp.span_id, t + rng.randint(300, 1_500), "gpt-4o-mini", "gpt-4o-mini-2024-07-18", mod_in, 1, 5, 0,
                  role="moderation")
        mp.end = c1.end + rng.randint(200, 1_200)
        spans += [mp, c1]

        # embed the question
        t = mp.end + rng.randint(500, 3_000)
        emb = Span(tid, ids.span(), root_id, "embeddings text-embedding-3-small", CLIENT, t, t + rng.randint(60_000, 180_000),
                   {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "text-embedding-3-small", "gen_ai.response.model": "text-embedding-3-small",
                    "gen_ai.embeddings.dimension.count": 1536, "server.address": "api.openai.com", "server.port": 443,
                    "gen_ai.usage.input_tokens": q}, SCOPE_OPENAI,
                   meta={"model": "text-embedding-3-small", "role": "embedding", "in": q, "out": None, "cached": None,
                         "nom_in": q, "nom_out": 0, "failed": False, "attempt": 0})
        spans.append(emb)

        # retrieve
        t = emb.end + rng.randint(300, 2_000)
        rattrs = {"openinference.span.kind": "RETRIEVER", "db.system": "qdrant", "db.operation.name": "search",
                  "db.collection.name": "support_kb", "db.vector.query.top_k": sc.top_k}
        for i, (ci, score) in enumerate(zip(retr["idx"], retr["scores"])):
            doc_id, _, meta_json, _ = self.kb.chunks[ci]
            rattrs[f"retrieval.documents.{i}.document.id"] = doc_id
            rattrs[f"retrieval.documents.{i}.document.score"] = score
            rattrs[f"retrieval.documents.{i}.document.metadata"] = meta_json
        ret = Span(tid, ids.span(), root_id, "retrieve support_kb", INTERNAL, t, t + rng.randint(15_000, 60_000), rattrs,
                   SCOPE_RAG)
        spans.append(ret)

        # main answer, with re-sends on failure
        history = sum(hq + ha + 2 * MSG_OVERHEAD for hq, ha in hist)
        sys_prefix = sc.system_prompt_tokens + MSG_OVERHEAD
        prefix = sys_prefix + history
        main_in = prefix + retr["context_tokens"] + MSG_OVERHEAD + q + MSG_OVERHEAD + REPLY_PRIMING
        t = ret.end + rng.randint(500, 3_000)
        shared = 0  # longest prefix another call sent within the cache TTL
        if faq and faq["warm"]:
            shared = main_in - 1
        elif turn > 0:
            shared = prefix
        if self._recent_main(t):
            shared = max(shared, sys_prefix)
        cached = openai_cached(shared)
        content_in = None
        if capture:
            msgs = [{"role": "system", "parts": [{"type": "text", "content": self.system_text()}]}]
            for j, (hq, ha) in enumerate(hist):
                msgs.append({"role": "user", "parts": [{"type": "text", "content": self.q_text(f"{sid}:{j}", hq)}]})
                msgs.append({"role": "assistant", "parts": [{"type": "text", "content": self.a_text(f"{sid}:{j}", ha)}]})
            ctx = "Context:\n\n" + "\n\n".join(self.kb.text(i) for i in retr["idx"])
            msgs.append({"role": "user", "parts": [{"type": "text", "content": ctx}]})
            msgs.append({"role": "user", "parts": [{"type": "text", "content": self.q_text(qkey, q)}]})
            content_in = json.dumps(msgs, separators=(",", ":"))
        attempts = []
        final_ok = False
        for attempt in range(sc.max_resends + 1):
            in_storm = self.storm is not None and self.storm[0] <= t < self.storm[1]
            if in_storm:
                fail = rng.random() < sc.storm_fail_p[min(attempt, len(sc.storm_fail_p) - 1)]
            else:
                fail = attempt == 0 and rng.random() < sc.isolated_retry_rate
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                     "gen_ai.request.max_tokens": sc.support_max_tokens, "gen_ai.request.temperature": 0.2,
                     "gen_ai.conversation.id": sid, "server.address": "api.openai.com", "server.port": 443}
            if attempt:
                attrs["http.request.resend_count"] = attempt
            if content_in is not None:
                attrs["gen_ai.input.messages"] = content_in
            sp_id = ids.span()
            if fail:
                end = t + rng.randint(19_900_000, 20_100_000)  # the client's 20 s timeout
                attrs["error.type"] = "timeout"
                rec_in = None if capture else main_in
                if not capture:
                    attrs["gen_ai.usage.input_tokens"] = main_in
                    attrs["gen_ai.usage.output_tokens"] = 0
                ev = [("exception", end, {"exception.type": "openai.APITimeoutError", "exception.message": "Request timed out."})]
                sp = Span(tid, sp_id, root_id, "chat gpt-4o", CLIENT, t, end, attrs, SCOPE_OPENAI, 2, "timeout", ev,
                          meta={"model": "gpt-4o", "role": "main", "in": rec_in, "out": None if capture else 0,
                                "cached": None, "nom_in": main_in, "nom_out": 0, "failed": True, "attempt": attempt,
                                "storm": in_storm, "captured": capture})
                spans.append(sp)
                attempts.append(sp)
                t = end + int(rng.uniform(0.8, 1.2) * (2 ** attempt) * US * 0.5)  # exponential backoff from 0.5 s
                continue
            dur = rng.randint(400_000, 900_000) + a * rng.randint(11_000, 17_000) + main_in * 20
            attrs["gen_ai.response.id"] = "chatcmpl-" + ids.alnum(29)
            attrs["gen_ai.response.model"] = "gpt-4o-2024-08-06"
            attrs["gen_ai.response.finish_reasons"] = ["stop"]
            if capture:
                attrs["gen_ai.output.messages"] = json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": self.a_text(qkey if faq else f"{sid}:{turn}", a)}],
                      "finish_reason": "stop"}], separators=(",", ":"))
            else:
                attrs["gen_ai.usage.input_tokens"] = main_in
                attrs["gen_ai.usage.output_tokens"] = a
                attrs["gen_ai.usage.cache_read.input_tokens"] = cached
            sp = Span(tid, sp_id, root_id, "chat gpt-4o", CLIENT, t, t + dur, attrs, SCOPE_OPENAI,
                      meta={"model": "gpt-4o", "role": "main", "in": None if capture else main_in,
                            "out": None if capture else a, "cached": None if capture else cached, "nom_in": main_in,
                            "nom_out": a, "nom_cached": cached, "failed": False, "attempt": attempt, "storm": in_storm,
                            "captured": capture})
            spans.append(sp)
            attempts.append(sp)
            t = sp.end
            final_ok = True
            break

        if final_ok:
            t += rng.randint(500, 2_000)
            mo = Span(tid, ids.span(), root_id, "moderation.post", INTERNAL, t, 0, {}, SCOPE_APP)
            mod_in = MODERATION_SYSTEM_TOKENS + MSG_OVERHEAD + a + MSG_OVERHEAD + REPLY_PRIMING
            c2 = chat(mo.span_id, t + rng.randint(300, 1_500), "gpt-4o-mini", "gpt-4o-mini-2024-07-18", mod_in, 1, 5, 0,
                      role="moderation")
            mo.end = c2.end + rng.randint(200, 1_200)
            t = mo.end + rng.randint(200, 1_000)
            ins = Span(tid, ids.span(), root_id, "INSERT support.messages", CLIENT, t, t + rng.randint(1_500, 6_000),
                       {**PG_ATTRS, "db.operation.name": "INSERT"}, SCOPE_PG)
            spans += [mo, c2, ins]
            t = ins.end
        end = t + rng.randint(1_000, 5_000)
        root = Span(tid, root_id, None, f"POST {self.route}", SERVER, t0, end,
                    {"http.request.method": "POST", "http.route": self.route, "url.path": self.route,
                     "url.scheme": "https", "server.address": "support.example.com",
                     "http.response.status_code": 200 if final_ok else 504, "tenant.id": tenant, "session.id": sid},
                    SCOPE_HTTP, 0 if final_ok else 2)
        meta = {"tenant": tenant, "session": sid, "turn": turn, "history_tokens": history, "prefix_tokens": prefix,
                "retrieval": retr, "faq": faq, "ok": final_ok, "captured": capture, "q": q, "a": a,
                "resubmit": resubmit}
        return Trace(tid, res, [root] + spans, meta)


# ----------------------------------------------------------------------------------------------- ops-agent
OPS_TENANTS = (("acme", 0.40), ("globex", 0.30), ("initech", 0.15), ("umbrella", 0.10), ("hooli", 0.05))
SCOPE_OI = ("openinference.instrumentation.langchain", "0.1.50")
AGENT_PREFIX_TOKENS = 2048     # system prompt + tool schemas, behind an Anthropic cache breakpoint
ROUTER_SYSTEM_TOKENS = 312
OPS_SERVICES = ("payments", "checkout", "search", "auth", "notifications", "ledger", "gateway")
OPS_TOOLS = ("search_runbooks", "query_metrics", "get_recent_deploys", "read_logs")
RUNBOOK_QUERIES = ("high p99 latency", "5xx spike after deploy", "queue backlog growing", "disk pressure on node",
                   "certificate expiry", "connection pool exhausted", "oom killed pods", "replica lag")


class OpsAgent:
    workload = "ops-agent"
    service = "ops-agent"
    route = "/v1/ops/ask"

    def __init__(self, sc: Scenario, seed: int):
        self.sc = sc
        self.seed = seed
        self.rng = random.Random(f"{seed}:ops")
        self.ids = Ids(f"{seed}:ops:ids")
        self.start_us = parse_time_us(sc.start)
        r = random.Random(f"{seed}:ops:setup")
        rs = "".join(r.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(9))
        self.pods = []
        for i in range(3):
            pod = f"ops-agent-{rs}-{''.join(r.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
            self.pods.append((pod, resource(self.service, **{
                "service.version": "0.9.3", "service.instance.id": Ids(pod).hex(32), "k8s.namespace.name": "platform",
                "k8s.pod.name": pod, "deployment.environment.name": "production"}) + SDK))
        self.misrouted_pod = self.pods[2][0]
        self.users = {t: [f"u-{t[:3]}-{r.randint(100, 999)}" for _ in range(4 + 2 * k)]
                      for k, (t, _) in enumerate(reversed(OPS_TENANTS))}
        self.last_start = None

    def traces(self) -> Iterator[Trace]:
        sc, rng = self.sc, self.rng
        counts = hour_counts(rng, sc.agent_requests, self.start_us, sc.days, CURVE_OFFICE, 0.15)
        loops = set(rng.sample(range(sc.agent_requests), int(round(sc.agent_requests * sc.loop_rate))))
        i = 0
        for h, n in enumerate(counts):
            hour0 = self.start_us + h * 3600 * US
            for t in sorted(hour0 + rng.randrange(3600 * US) for _ in range(n)):
                yield self._request(t, i in loops)
                self.last_start = t
                i += 1

    def _request(self, t0: int, loop: bool) -> Trace:
        sc, rng, ids = self.sc, self.rng, self.ids
        tid = ids.trace()
        tenant = weighted(rng, OPS_TENANTS)
        user = rng.choice(self.users[tenant])
        sid = "ops-" + ids.hex(16)
        r = sc.router_misroute_share
        pod_i = rng.choices((0, 1, 2), weights=((1 - r) / 2, (1 - r) / 2, r), k=1)[0]
        pod, res = self.pods[pod_i]
        common = {"session.id": sid, "user.id": user}
        root_id, agent_id = ids.span(), ids.span()
        spans: list[Span] = []
        warm = self.last_start is not None and t0 - self.last_start < CACHE_TTL_US

        def llm(parent_name, parent_id, t, model, inp, cached, out, max_tokens, role, extra_meta=None):
            chain = Span(tid, ids.span(), parent_id, parent_name, INTERNAL, t, 0,
                         {"openinference.span.kind": "CHAIN", **common}, SCOPE_OI)
            s = t + rng.randint(1_000, 6_000)
            if model == "claude-haiku-4-5":
                dur = rng.randint(300_000, 600_000) + out * rng.randint(5_000, 8_000)
            else:
                dur = rng.randint(800_000, 1_600_000) + out * rng.randint(15_000, 22_000) + inp * 15
            attrs = {"openinference.span.kind": "LLM", "llm.system": "anthropic", "llm.provider": "anthropic",
                     "llm.model_name": model,
                     "llm.invocation_parameters": json.dumps({"max_tokens": max_tokens, "temperature": 0.0}),
                     "llm.token_count.prompt": inp, "llm.token_count.completion": out,
                     "llm.token_count.total": inp + out}
            if cached:
                attrs["llm.token_count.prompt_details.cache_read"] = cached
            attrs.update(common)
            meta = {"model": model, "role": role, "in": inp, "out": out, "cached": cached, "nom_in": inp, "nom_out": out,
                    "failed": False, "attempt": 0}
            if extra_meta:
                meta.update(extra_meta)
            call = Span(tid, ids.span(), chain.span_id, "ChatAnthropic", INTERNAL, s, s + dur, attrs, SCOPE_OI, meta=meta)
            chain.end = call.end + rng.randint(1_000, 8_000)
            spans.extend((chain, call))
            return chain.end

        def tool(t, name, params, dur):
            s = Span(tid, ids.span(), agent_id, name, INTERNAL, t, t + dur,
                     {"openinference.span.kind": "TOOL", "tool.name": name,
                      "tool.parameters": json.dumps(params), **common}, SCOPE_OI)
            spans.append(s)
            return s.end

        q = rng.randint(20, 150)
        t = t0 + rng.randint(3_000, 10_000) + rng.randint(1_000, 3_000)
        agent_start = t
        router_model = "claude-sonnet-4-5" if pod_i == 2 else "claude-haiku-4-5"
        t = llm("router", agent_id, t, router_model, ROUTER_SYSTEM_TOKENS + q + 8, 0,
                rng.choices((1, 2, 3, 4, 5), weights=(5, 4, 2, 1, 1), k=1)[0], 16, "router",
                {"pod": pod, "misrouted": pod_i == 2})
        inp = AGENT_PREFIX_TOKENS + q + 16
        out = tri(rng, 150, 400, 240)
        t = llm("planner", agent_id, t + rng.randint(1_000, 5_000), "claude-sonnet-4-5", inp,
                AGENT_PREFIX_TOKENS if warm else 0, out, 1024, "planner")
        svc = rng.choice(OPS_SERVICES)
        loop_info = None
        if loop:
            n_rep = rng.randint(*sc.loop_repeats)
            params = {"query": f"{rng.choice(RUNBOOK_QUERIES)} {svc}", "service": svc, "limit": 5}
            result = rng.randint(550, 850)
            loop_info = {"repeats": n_rep, "params": params, "result_tokens": result}
            for i in range(n_rep):
                t = tool(t + rng.randint(2_000, 8_000), "search_runbooks", params, rng.randint(150_000, 600_000))
                inp = inp + out + 60 + result
                out = rng.randint(70, 95)
                t = llm("agent_step", agent_id, t + rng.randint(1_000, 5_000), "claude-sonnet-4-5", inp,
                        AGENT_PREFIX_TOKENS, out, 1024, "step", {"loop_iteration": i})
        else:
            for _ in range(rng.choices((1, 2, 3, 4), weights=(35, 35, 20, 10), k=1)[0]):
                name = rng.choice(OPS_TOOLS)
                if name == "search_runbooks":
                    params, dur = {"query": f"{rng.choice(RUNBOOK_QUERIES)} {svc}", "service": svc, "limit": 5}, rng.randint(150_000, 600_000)
                elif name == "query_metrics":
                    params, dur = {"promql": f'histogram_quantile(0.99, sum by (le) (rate(http_server_duration_bucket{{service="{svc}"}}[5m])))', "range": "1h"}, rng.randint(300_000, 1_500_000)
                elif name == "get_recent_deploys":
                    params, dur = {"service": svc, "hours": 24}, rng.randint(100_000, 300_000)
                else:
                    params, dur = {"service": svc, "level": "error", "minutes": 30}, rng.randint(500_000, 2_500_000)
                t = tool(t + rng.randint(2_000, 8_000), name, params, dur)
                inp = inp + out + 60 + rng.randint(400, 1200)
                out = tri(rng, 60, 250, 110)
                t = llm("agent_step", agent_id, t + rng.randint(1_000, 5_000), "claude-sonnet-4-5", inp,
                        AGENT_PREFIX_TOKENS, out, 1024, "step")
        inp = inp + out + 40
        t = llm("responder", agent_id, t + rng.randint(1_000, 5_000), "claude-sonnet-4-5", inp, AGENT_PREFIX_TOKENS,
                tri(rng, 200, 600, 330), 1024, "responder")
        agent = Span(tid, agent_id, root_id, "ops_agent", INTERNAL, agent_start, t + rng.randint(1_000, 4_000),
                     {"openinference.span.kind": "AGENT", **common}, SCOPE_OI)
        root = Span(tid, root_id, None, f"POST {self.route}", SERVER, t0, agent.end + rng.randint(1_000, 5_000),
                    {"http.request.method": "POST", "http.route": self.route, "url.path": self.route, "url.scheme": "https",
                     "server.address": "ops.internal.example.com", "http.response.status_code": 200,
                     "tenant.id": tenant, "session.id": sid, "user.id": user}, SCOPE_HTTP)
        spans.sort(key=lambda s: s.start)
        return Trace(tid, res, [root, agent] + spans,
                     {"tenant": tenant, "pod": pod, "misrouted": pod_i == 2, "loop": loop_info})


# ----------------------------------------------------------------------------------------------- batch-summarizer
SCOPE_TRACELOOP = ("traceloop.tracer", "0.47.3")
SCOPE_OLL_OPENAI = ("opentelemetry.instrumentation.openai.v1", "0.47.3")
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


class BatchSummarizer:
    workload = "batch-summarizer"
    service = "batch-summarizer"
    workflow = "nightly-summaries"

    def __init__(self, sc: Scenario, seed: int):
        self.sc = sc
        self.rng = random.Random(f"{seed}:batch")
        self.ids = Ids(f"{seed}:batch:ids")
        self.start_us = parse_time_us(sc.start)
        self.res = resource(self.service, **{"service.version": "1.4.0", "deployment.environment.name": "production",
                                             "host.name": "batch-worker-1"}) + SDK

    def traces(self) -> Iterator[Trace]:
        sc, rng, ids = self.sc, self.rng, self.ids
        wf_name = f"{self.workflow}.workflow"
        for d in range(sc.days):
            w0 = self.start_us + d * 86400 * US + sc.batch_window_start_hour * 3600 * US
            usable = sc.batch_window_hours * 3600 * US - 12 * 60 * US  # leave ~10 min at the end of the window
            jitter = int(round(sc.batch_docs_per_night * 0.07))
            n = sc.batch_docs_per_night + rng.randint(-jitter, jitter)
            if n <= 0:
                continue
            tid = ids.trace()
            root_id = ids.span()
            t_start = w0 + rng.randint(1 * US, 4 * US)
            spans = []
            pace = usable // max(1, n)
            end = t_start
            for i in range(n):
                t = t_start + i * pace + rng.randint(0, pace // 3)
                doc = f"doc-{d:02d}{i:04d}-{ids.hex(6)}"
                inp = int(math.exp(rng.uniform(math.log(200), math.log(6000))))
                out = max(120, min(400, int(round(rng.gauss(230, 60)))))
                task_id, call_id = ids.span(), ids.span()
                s = t + rng.randint(5_000, 40_000)
                dur = int(inp / 9000 * US) + out * rng.randint(10_000, 13_000) + rng.randint(20_000, 120_000)
                call = Span(tid, call_id, task_id, "vllm.completion", CLIENT, s, s + dur,
                            {"llm.request.type": "completion", "gen_ai.system": "vLLM", "gen_ai.request.model": LLAMA,
                             "gen_ai.response.model": LLAMA, "gen_ai.request.max_tokens": sc.batch_max_tokens,
                             "gen_ai.request.temperature": 0.2, "gen_ai.response.id": "cmpl-" + ids.hex(32),
                             "gen_ai.usage.prompt_tokens": inp, "gen_ai.usage.completion_tokens": out,
                             "llm.usage.total_tokens": inp + out, "gen_ai.completion.0.finish_reason": "stop",
                             "server.address": "vllm.internal", "server.port": 8000}, SCOPE_OLL_OPENAI,
                            meta={"model": LLAMA, "role": "summarize", "in": inp, "out": out, "cached": None,
                                  "nom_in": inp, "nom_out": out, "failed": False, "attempt": 0,
                                  "max_tokens": sc.batch_max_tokens})
                task = Span(tid, task_id, root_id, "summarize_document.task", INTERNAL, t,
                            call.end + rng.randint(5_000, 60_000),
                            {"traceloop.span.kind": "task", "traceloop.entity.name": "summarize_document",
                             "traceloop.workflow.name": self.workflow,
                             "traceloop.association.properties.document_id": doc}, SCOPE_TRACELOOP)
                spans += [task, call]
                end = max(end, task.end)
            root = Span(tid, root_id, None, wf_name, INTERNAL, t_start, end + rng.randint(50_000, 500_000),
                        {"traceloop.span.kind": "workflow", "traceloop.entity.name": self.workflow,
                         "traceloop.workflow.name": self.workflow}, SCOPE_TRACELOOP)
            yield Trace(tid, self.res, [root] + spans, {"night": d, "docs": n, "window_start": w0})


# ----------------------------------------------------------------------------------------------- email-drafter
EMAIL_TENANTS = (("acme", 0.35), ("globex", 0.30), ("initech", 0.20), ("umbrella", 0.10), ("hooli", 0.05))
EMAIL_SYSTEM_TOKENS = 162
SCOPE_OLL_OPENAI_CHAT = ("opentelemetry.instrumentation.openai.v1", "0.33.9")


class EmailDrafter:
    workload = "email-drafter"
    service = "email-drafter"
    route = "/v1/email/draft"

    def __init__(self, sc: Scenario, seed: int):
        self.sc = sc
        self.seed = seed
        self.rng = random.Random(f"{seed}:email")
        self.ids = Ids(f"{seed}:email:ids")
        self.start_us = parse_time_us(sc.start)
        self.res = resource(self.service, **{"service.version": "3.2.0", "deployment.environment": "production"}) + SDK
        self.system = make_text(random.Random(f"{seed}:email:system"), EMAIL_SYSTEM_TOKENS)

    def traces(self) -> Iterator[Trace]:
        sc, rng, ids = self.sc, self.rng, self.ids
        counts = hour_counts(rng, sc.email_requests, self.start_us, sc.days, CURVE_OFFICE, 0.1)
        for h, n in enumerate(counts):
            hour0 = self.start_us + h * 3600 * US
            for t0 in sorted(hour0 + rng.randrange(3600 * US) for _ in range(n)):
                tid, root_id = ids.trace(), ids.span()
                tenant = weighted(rng, EMAIL_TENANTS)
                u = rng.randint(40, 220)
                out = max(150, min(450, int(round(rng.gauss(280, 70)))))
                inp = EMAIL_SYSTEM_TOKENS + MSG_OVERHEAD + u + MSG_OVERHEAD + REPLY_PRIMING
                s = t0 + rng.randint(3_000, 12_000)
                dur = rng.randint(300_000, 700_000) + out * rng.randint(8_000, 12_000)
                key = tid[:12]
                call = Span(tid, ids.span(), root_id, "openai.chat", CLIENT, s, s + dur,
                            {"llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
                             "gen_ai.request.max_tokens": 600, "gen_ai.request.temperature": 0.7,
                             "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                             "gen_ai.response.id": "chatcmpl-" + ids.alnum(29),
                             "gen_ai.usage.prompt_tokens": inp, "gen_ai.usage.completion_tokens": out,
                             "llm.usage.total_tokens": inp + out,
                             "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": self.system,
                             "gen_ai.prompt.1.role": "user",
                             "gen_ai.prompt.1.content": make_text(random.Random(f"{self.seed}:email:u:{key}"), u),
                             "gen_ai.completion.0.role": "assistant",
                             "gen_ai.completion.0.content": make_text(random.Random(f"{self.seed}:email:c:{key}"), out),
                             "gen_ai.completion.0.finish_reason": "stop"}, SCOPE_OLL_OPENAI_CHAT,
                            meta={"model": "gpt-4o-mini", "role": "draft", "in": inp, "out": out, "cached": None,
                                  "nom_in": inp, "nom_out": out, "failed": False, "attempt": 0})
                root = Span(tid, root_id, None, f"POST {self.route}", SERVER, t0, call.end + rng.randint(2_000, 9_000),
                            {"http.request.method": "POST", "http.route": self.route, "url.path": self.route,
                             "url.scheme": "https", "server.address": "mail.example.com",
                             "http.response.status_code": 200, "tenant.id": tenant}, SCOPE_HTTP)
                yield Trace(tid, self.res, [root, call], {"tenant": tenant})


WORKLOADS = {"support-bot": SupportBot, "ops-agent": OpsAgent, "batch-summarizer": BatchSummarizer,
             "email-drafter": EmailDrafter}


# ----------------------------------------------------------------------------------------------- writers
def _av(v):
    t = type(v)
    if t is str:
        return {"stringValue": v}
    if t is bool:
        return {"boolValue": v}
    if t is int:
        return {"intValue": str(v)}
    if t is float:
        return {"doubleValue": v}
    if t is list or t is tuple:
        return {"arrayValue": {"values": [_av(x) for x in v]}}
    if t is dict:
        return {"kvlistValue": {"values": [{"key": k, "value": _av(x)} for k, x in v.items()]}}
    raise TypeError(f"unsupported attribute value {v!r}")


def _otlp_attrs(attrs: dict) -> list:
    return [{"key": k, "value": _av(v)} for k, v in attrs.items()]


def _otlp_span(s: Span) -> dict:
    d = {"traceId": s.trace_id, "spanId": s.span_id}
    if s.parent_id:
        d["parentSpanId"] = s.parent_id
    d["name"] = s.name
    d["kind"] = s.kind
    d["startTimeUnixNano"] = str(s.start * 1000)
    d["endTimeUnixNano"] = str(s.end * 1000)
    if s.attrs:
        d["attributes"] = _otlp_attrs(s.attrs)
    if s.events:
        d["events"] = [{"timeUnixNano": str(t * 1000), "name": n, "attributes": _otlp_attrs(a)} for n, t, a in s.events]
    st = {}
    if s.message:
        st["message"] = s.message
    if s.status:
        st["code"] = s.status
    d["status"] = st
    return d


def otlp_request(items: Iterable[tuple[tuple, Span]]) -> dict:
    """ExportTraceServiceRequest for (resource, span) pairs: grouped by resource, then by scope."""
    groups: dict[tuple, dict[tuple, list]] = {}
    for res, s in items:
        groups.setdefault(res, {}).setdefault(s.scope, []).append(_otlp_span(s))
    return {"resourceSpans": [
        {"resource": {"attributes": _otlp_attrs(dict(res))},
         "scopeSpans": [{"scope": {"name": sc[0], "version": sc[1]}, "spans": spans} for sc, spans in scopes.items()]}
        for res, scopes in groups.items()]}


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def write_otlp_jsonl(traces: Iterable[Trace], fh, seed: int = 0) -> tuple[int, int]:
    """One ExportTraceServiceRequest per line, a few traces per line, as the Collector's file exporter
    batches them; now and then a root span (it ends last) slips into the next line. Returns (spans, lines)."""
    rng = random.Random(f"otlp-jsonl:{seed}")
    pending: list = []
    carry: list = []
    n_traces = 0
    target = rng.randint(3, 8)
    spans = lines = 0
    for tr in traces:
        pending.extend((tr.resource, s) for s in tr.spans[1:])
        pending.append((tr.resource, tr.spans[0]))
        n_traces += 1
        spans += len(tr.spans)
        if n_traces >= target:
            held = [pending.pop()] if rng.random() < 0.1 else []
            fh.write(_dumps(otlp_request(carry + pending)) + b"\n")
            lines += 1
            carry, pending, n_traces, target = held, [], 0, rng.randint(3, 8)
    if carry or pending:
        fh.write(_dumps(otlp_request(carry + pending)) + b"\n")
        lines += 1
    return spans, lines


def otlp_document(traces: Iterable[Trace], indent: int | None = None) -> bytes:
    """One ExportTraceServiceRequest holding every span (as an SDK exporter or an HTTP capture saves it);
    indent pretty-prints it as a person saving it by hand would."""
    doc = otlp_request((tr.resource, s) for tr in traces for s in tr.spans)
    if indent is None:
        return _dumps(doc) + b"\n"
    return json.dumps(doc, indent=indent, ensure_ascii=False).encode("utf-8") + b"\n"


def _jaeger_tag(k, v) -> dict:
    t = type(v)
    if t is bool:
        return {"key": k, "type": "bool", "value": v}
    if t is int:
        return {"key": k, "type": "int64", "value": v}
    if t is float:
        return {"key": k, "type": "float64", "value": v}
    if t is str:
        return {"key": k, "type": "string", "value": v}
    return {"key": k, "type": "string", "value": json.dumps(v, separators=(",", ":"))}


def jaeger_document(traces: Iterable[Trace]) -> bytes:
    """Jaeger UI download / query API shape, as Jaeger renders spans it received over OTLP."""
    data = []
    for tr in traces:
        procs: dict[tuple, str] = {}
        spans = []
        for s in tr.spans:
            pid = procs.setdefault(tr.resource, f"p{len(procs) + 1}")
            tags = [_jaeger_tag("otel.scope.name", s.scope[0]), _jaeger_tag("otel.scope.version", s.scope[1])]
            tags += [_jaeger_tag(k, v) for k, v in s.attrs.items()]
            tags.append(_jaeger_tag("span.kind", KIND_NAME[s.kind]))
            if s.status == 2:
                tags.append(_jaeger_tag("otel.status_code", "ERROR"))
                if s.message:
                    tags.append(_jaeger_tag("otel.status_description", s.message))
                tags.append(_jaeger_tag("error", True))
            elif s.status == 1:
                tags.append(_jaeger_tag("otel.status_code", "OK"))
            logs = [{"timestamp": t, "fields": [_jaeger_tag("event", n)] + [_jaeger_tag(k, v) for k, v in a.items()]}
                    for n, t, a in (s.events or ())]
            refs = [{"refType": "CHILD_OF", "traceID": s.trace_id, "spanID": s.parent_id}] if s.parent_id else []
            spans.append({"traceID": s.trace_id, "spanID": s.span_id, "operationName": s.name, "references": refs,
                          "startTime": s.start, "duration": s.end - s.start, "tags": tags, "logs": logs,
                          "processID": pid, "warnings": None, "flags": 1})
        processes = {pid: {"serviceName": res[0][1], "tags": [_jaeger_tag(k, v) for k, v in res[1:]]}
                     for res, pid in procs.items()}
        data.append({"traceID": tr.trace_id, "spans": spans, "processes": processes, "warnings": None})
    return _dumps({"data": data, "total": 0, "limit": 0, "offset": 0, "errors": None}) + b"\n"


def _zipkin_str(v) -> str:
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        return repr(v)
    return json.dumps(v, separators=(",", ":"))


def zipkin_document(traces: Iterable[Trace]) -> bytes:
    """Zipkin v2 JSON: a list of spans, tags as strings, times in microseconds (OTel Zipkin exporter)."""
    out = []
    for tr in traces:
        ip = "10.42.%d.%d" % (int(tr.trace_id[:2], 16) % 8, int(tr.trace_id[2:4], 16) % 250 + 2)
        for s in tr.spans:
            d = {"traceId": s.trace_id}
            if s.parent_id:
                d["parentId"] = s.parent_id
            d["id"] = s.span_id
            if s.kind in (SERVER, CLIENT, PRODUCER, CONSUMER):
                d["kind"] = KIND_NAME[s.kind].upper()
            d["name"] = s.name
            d["timestamp"] = s.start
            d["duration"] = s.end - s.start
            d["localEndpoint"] = {"serviceName": tr.service, "ipv4": ip}
            tags = {k: _zipkin_str(v) for k, v in s.attrs.items()}
            tags["otel.scope.name"] = s.scope[0]
            tags["otel.scope.version"] = s.scope[1]
            if s.status == 2:
                tags["otel.status_code"] = "ERROR"
                tags["error"] = s.message or "true"
            d["tags"] = tags
            if s.events:
                d["annotations"] = [{"timestamp": t, "value": n} for n, t, a in s.events]
            out.append(d)
    return _dumps(out) + b"\n"


FORMATS = ("otlp-jsonl", "otlp-json", "jaeger-json", "zipkin-json")


def format_of(name: str) -> str:
    base = name[:-3] if name.endswith(".gz") else name
    for suffix, fmt in ((".otlp.jsonl", "otlp-jsonl"), (".otlp.json", "otlp-json"), (".jaeger.json", "jaeger-json"),
                        (".zipkin.json", "zipkin-json"), (".jsonl", "otlp-jsonl")):
        if base.endswith(suffix):
            return fmt
    raise ValueError(f"{name}: cannot tell the format from the name (use .otlp.jsonl, .otlp.json, .jaeger.json or .zipkin.json)")


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def render(traces: list[Trace], fmt: str, compress: bool = False) -> bytes:
    """Any list of traces in any of FORMATS."""
    if fmt == "otlp-jsonl":
        buf = io.BytesIO()
        write_otlp_jsonl(traces, buf)
        data = buf.getvalue()
    elif fmt == "otlp-json":
        data = otlp_document(traces, indent=2)
    elif fmt == "jaeger-json":
        data = jaeger_document(traces)
    elif fmt == "zipkin-json":
        data = zipkin_document(traces)
    else:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return _gzip(data) if compress else data


# ----------------------------------------------------------------------------------------------- build + truth
def build(scenario: Scenario | None = None, seed: int = DEFAULT_SEED, workloads: Iterable[str] | None = None) -> dict[str, list[Trace]]:
    sc = scenario or Scenario()
    names = list(workloads) if workloads is not None else [w for w, _ in sc.outputs]
    return {w: list(WORKLOADS[w](sc, seed).traces()) for w in names}


def generate(scenario: Scenario | None = None, seed: int = DEFAULT_SEED) -> tuple[dict[str, bytes], dict]:
    """Return ({file name: bytes}, truth). The truth is also included as files['expected.json']."""
    sc = scenario or Scenario()
    outputs = sc.output_map()
    workloads = build(sc, seed, outputs.keys())
    files: dict[str, bytes] = {}
    for w, name in outputs.items():
        files[name] = render(workloads[w], format_of(name), compress=name.endswith(".gz"))
    truth = compute_truth(sc, seed, workloads, outputs)
    extra_files, extra_truth = data_files(sc, seed, workloads)
    files.update(extra_files)
    truth.update(extra_truth)
    files["expected.json"] = (json.dumps(truth, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return files, truth


def llm_spans(traces: Iterable[Trace]) -> Iterator[tuple[Trace, Span]]:
    for tr in traces:
        for s in tr.spans:
            if s.meta is not None:
                yield tr, s


def _percentile(values: list[int], p: float) -> int:
    """Nearest-rank percentile."""
    if not values:
        return 0
    v = sorted(values)
    return v[max(0, min(len(v) - 1, math.ceil(p / 100 * len(v)) - 1))]


def _model_block() -> dict:
    return {"calls": 0, "calls_with_usage": 0, "calls_without_usage": 0, "failed_calls": 0, "input_tokens": 0,
            "output_tokens": 0, "cached_input_tokens": 0, "nominal_input_tokens_without_usage": 0,
            "nominal_output_tokens_without_usage": 0, "list_cost_usd": 0.0}


def file_stats(traces: list[Trace]) -> dict:
    by_model: dict[str, dict] = {}
    spans = errors = 0
    services = set()
    for tr in traces:
        spans += len(tr.spans)
        services.add(tr.service)
        errors += sum(1 for s in tr.spans if s.status == 2)
    for tr, s in llm_spans(traces):
        m = s.meta
        b = by_model.setdefault(m["model"], _model_block())
        b["calls"] += 1
        b["failed_calls"] += m["failed"]
        if m["in"] is None:
            b["calls_without_usage"] += 1
            b["nominal_input_tokens_without_usage"] += m["nom_in"]
            b["nominal_output_tokens_without_usage"] += m["nom_out"]
        else:
            b["calls_with_usage"] += 1
            b["input_tokens"] += m["in"]
            b["output_tokens"] += m["out"] or 0
            b["cached_input_tokens"] += m["cached"] or 0
            b["list_cost_usd"] += list_cost(m["model"], m["in"], m["cached"], m["out"])
    for b in by_model.values():
        b["list_cost_usd"] = _usd(b["list_cost_usd"])
    calls = sum(b["calls"] for b in by_model.values())
    return {
        "services": sorted(services), "traces": len(traces), "spans": spans, "error_spans": errors,
        "llm_calls": calls, "llm_calls_without_usage": sum(b["calls_without_usage"] for b in by_model.values()),
        "input_tokens": sum(b["input_tokens"] for b in by_model.values()),
        "output_tokens": sum(b["output_tokens"] for b in by_model.values()),
        "cached_input_tokens": sum(b["cached_input_tokens"] for b in by_model.values()),
        "list_cost_usd": _usd(sum(b["list_cost_usd"] for b in by_model.values())),
        "first_span_start": iso_us(min(s.start for tr in traces for s in tr.spans)) if traces else None,
        "last_span_end": iso_us(max(s.end for tr in traces for s in tr.spans)) if traces else None,
        "by_model": dict(sorted(by_model.items())),
    }


def _examples(ids: list[str], n: int = 5) -> list[str]:
    return sorted(set(ids))[:n]


def support_truth(sc: Scenario, traces: list[Trace]) -> dict:
    g4 = PRICES["gpt-4o"]
    window = [sc.start, iso_us(parse_time_us(sc.start) + sc.days * 86400 * US)]
    scope = {"service": SupportBot.service, "feature": SupportBot.route, "route": SupportBot.route, "model": "gpt-4o",
             "tenant": None, "window": window}
    main = [(tr, s) for tr, s in llm_spans(traces) if s.meta["role"] == "main"]
    per_tenant: dict[str, int] = {}
    for tr in traces:
        per_tenant[tr.meta["tenant"]] = per_tenant.get(tr.meta["tenant"], 0) + 1
    out: dict = {"requests": len(traces), "requests_by_tenant": dict(sorted(per_tenant.items())),
                 "sessions": len({tr.meta["session"] for tr in traces})}

    # oversized top-k
    useful = [tr.meta["retrieval"]["useful"] for tr in traces]
    wasted_req = sum(tr.meta["retrieval"]["wasted_tokens"] for tr in traces)
    wasted_all = sum(tr.meta["retrieval"]["wasted_tokens"] for tr, s in main)
    wasted_usage = sum(tr.meta["retrieval"]["wasted_tokens"] for tr, s in main if s.meta["in"] is not None)
    wasted_ok = sum(tr.meta["retrieval"]["wasted_tokens"] for tr, s in main if not s.meta["failed"])
    topk = {
        "mechanism": "oversized top-k", "planted": sc.top_k > sc.useful_k[1], "scope": scope,
        "definition": "useful = documents scoring within 0.10 of the best in their retrieval; wasted = tokens of the "
                      "other returned chunks (metadata n_tokens), counted once per gpt-4o call span that carried them",
        "top_k_requested": sc.top_k, "retrievals": len(traces), "documents_per_retrieval": sc.top_k,
        "useful_documents_min": min(useful, default=0), "useful_documents_max": max(useful, default=0),
        "useful_documents_mean": round(sum(useful) / max(1, len(useful)), 4),
        "recommended_k": max(useful, default=0),
        "wasted_documents_per_retrieval_mean": round(sc.top_k - sum(useful) / max(1, len(useful)), 4),
        "main_call_spans": len(main),
        "wasted_chunk_tokens_per_request": wasted_req,
        "wasted_chunk_tokens_all_main_calls": wasted_all,
        "wasted_chunk_tokens_calls_with_usage": wasted_usage,
        "wasted_chunk_tokens_successful_calls": wasted_ok,
        "wasted_usd_all_main_calls": _usd(wasted_all * g4["input"] / 1e6),
        "wasted_usd_calls_with_usage": _usd(wasted_usage * g4["input"] / 1e6),
        "wasted_usd_per_request": _usd(wasted_req * g4["input"] / 1e6),
        "note": "chunks sit after the system prompt and history, so they are never prefix-cached: full input price",
        "example_trace_ids": _examples([tr.trace_id for tr in traces]),
    }

    # retry storm
    storm_spans = [(tr, s) for tr, s in main if s.meta.get("storm")]
    storm_failed = [(tr, s) for tr, s in storm_spans if s.meta["failed"]]
    storm_traces = {tr.trace_id for tr, _ in storm_spans}
    iso = [(tr, s) for tr, s in main if s.meta["failed"] and not s.meta.get("storm")]
    resends = [(tr, s) for tr, s in main if s.meta["attempt"] > 0]
    t0 = parse_time_us(sc.storm_start)
    failed_in = sum(s.meta["nom_in"] for _, s in storm_failed)
    failed_in_rec = sum(s.meta["in"] or 0 for _, s in storm_failed)
    storm = {
        "mechanism": "retry storm", "planted": sc.retry_storm,
        "scope": {**scope, "window": [sc.storm_start, iso_us(t0 + sc.storm_minutes * 60 * US)]},
        "definition": "gpt-4o call spans that started inside the window; failed = status error, error.type timeout "
                      "(input tokens recorded, 0 output); re-sends carry http.request.resend_count 1..3 as siblings",
        "requests_in_window": len(storm_traces),
        "main_call_spans_in_window": len(storm_spans),
        "failed_attempts": len(storm_failed),
        "resend_spans_in_window": sum(1 for _, s in storm_spans if s.meta["attempt"] > 0),
        "requests_failed_after_all_resends": sum(1 for tr in traces if tr.trace_id in storm_traces and not tr.meta["ok"]),
        "user_resubmitted_requests_in_window": sum(1 for tr in traces if tr.trace_id in storm_traces and tr.meta["resubmit"]),
        "user_resubmitted_requests_total": sum(1 for tr in traces if tr.meta["resubmit"]),
        "failed_attempt_input_tokens": failed_in,
        "failed_attempt_input_tokens_recorded": failed_in_rec,
        "failed_attempt_usd": _usd(failed_in * g4["input"] / 1e6),
        "failed_attempt_usd_recorded": _usd(failed_in_rec * g4["input"] / 1e6),
        "attempts_by_resend_count": {str(k): sum(1 for _, s in storm_spans if s.meta["attempt"] == k)
                                     for k in range(sc.max_resends + 1)},
        "example_trace_ids": _examples(list(storm_traces)),
        "isolated_outside_window": {
            "failed_attempts": len(iso), "input_tokens": sum(s.meta["nom_in"] for _, s in iso),
            "usd": _usd(sum(s.meta["nom_in"] for _, s in iso) * g4["input"] / 1e6),
        },
        "resend_spans_total": len(resends),
        "failed_attempts_total": len(storm_failed) + len(iso),
    }

    # cacheable duplicates (FAQ)
    faq_traces = [tr for tr in traces if tr.meta["faq"]]
    groups_hour: dict[tuple, list[Trace]] = {}
    groups_week: dict[int, list[Trace]] = {}
    for tr in faq_traces:
        f = tr.meta["faq"]["faq"]
        groups_hour.setdefault((f, tr.start // (3600 * US)), []).append(tr)
        groups_week.setdefault(f, []).append(tr)
    dups = [tr for g in groups_hour.values() for tr in sorted(g, key=lambda x: x.start)[1:]]
    dup_ids = {tr.trace_id for tr in dups}
    dup_calls = [(tr, s) for tr, s in llm_spans(dups)]
    dup_models: dict[str, dict] = {}
    for tr, s in dup_calls:
        b = dup_models.setdefault(s.meta["model"], {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "list_cost_usd": 0.0})
        b["calls"] += 1
        b["input_tokens"] += s.meta["nom_in"]
        b["output_tokens"] += s.meta["nom_out"] or 0
        b["cached_input_tokens"] += s.meta.get("nom_cached", s.meta["cached"]) or 0
        b["list_cost_usd"] += list_cost(s.meta["model"], s.meta["nom_in"], s.meta.get("nom_cached", s.meta["cached"]), s.meta["nom_out"])
    for b in dup_models.values():
        b["list_cost_usd"] = _usd(b["list_cost_usd"])
    # noise: non-FAQ main calls that share (hour, input tokens) with another request by chance
    key_count: dict[tuple, int] = {}
    for tr, s in main:
        if s.meta["attempt"] == 0 and s.meta["in"] is not None:
            k = (tr.start // (3600 * US), s.meta["in"])
            key_count[k] = key_count.get(k, 0) + 1
    faq_first_main = {}
    for tr in faq_traces:
        for s in tr.spans:
            if s.meta and s.meta["role"] == "main" and s.meta["attempt"] == 0:
                faq_first_main[tr.trace_id] = s
    dup = {
        "mechanism": "duplicate / cacheable requests", "planted": sc.duplicate_share > 0,
        "scope": {**scope, "model": None},
        "definition": "requests repeating one of the FAQ questions (identical question, retrieval, prompt and input "
                      "token counts on every call); duplicates = requests after the first of each (FAQ, UTC hour) group; "
                      "their calls (all models) could be served from a response cache",
        "faq_questions": len(groups_week), "faq_requests": len(faq_traces),
        "groups_same_hour": len(groups_hour), "duplicate_requests_same_hour": len(dups),
        "duplicate_requests_week": sum(len(g) - 1 for g in groups_week.values()),
        "duplicate_share_of_requests": round(len(dups) / max(1, len(traces)), 4),
        "duplicate_calls": len(dup_calls),
        "duplicate_input_tokens": sum(b["input_tokens"] for b in dup_models.values()),
        "duplicate_output_tokens": sum(b["output_tokens"] for b in dup_models.values()),
        "duplicate_usd": _usd(sum(b["list_cost_usd"] for b in dup_models.values())),
        "duplicate_by_model": dict(sorted(dup_models.items())),
        "faq_gpt4o_input_tokens": sorted({s.meta["nom_in"] for s in faq_first_main.values()}),
        "first_attempt_main_calls_sharing_hour_and_input_tokens": sum(c - 1 for c in key_count.values() if c > 1),
        "note": "a detector keyed only on (hour, model, input tokens) also matches some non-FAQ requests by chance; "
                "the count above (first attempts with usage, all requests) includes both",
        "example_trace_ids": _examples(list(dup_ids)),
    }

    # prompt bloat: resent history
    turns = [tr for tr in traces if tr.meta["turn"] > 0]
    sys_prefix = sc.system_prompt_tokens + MSG_OVERHEAD
    hist_tokens = 0
    hist_cached = 0
    # The history beyond a budget (a running summary plus the last exchange would fit in it): the oldest
    # history, at the start of the prompt, so the cached part of the history is counted first.
    over_tokens, over_usd = 0, 0.0
    for tr, s in main:
        if tr.meta["turn"] > 0:
            hist_tokens += tr.meta["history_tokens"]
            c = s.meta.get("nom_cached", 0) if not s.meta["failed"] else 0
            cached_history = min(c, tr.meta["prefix_tokens"]) - min(c, sys_prefix) if c else 0
            hist_cached += cached_history
            if not s.meta["failed"] and s.meta["attempt"] == 0:
                over = max(0, tr.meta["history_tokens"] - HISTORY_BUDGET_TOKENS)
                over_cached = min(over, cached_history)
                over_tokens += over
                over_usd += ((over - over_cached) * g4["input"] + over_cached * g4["cached_input"]) / 1e6
    sess_len: dict[str, int] = {}
    for tr in traces:
        if not tr.meta["faq"]:
            sess_len[tr.meta["session"]] = sess_len.get(tr.meta["session"], 0) + 1
    dist = {str(k): sum(1 for v in sess_len.values() if v == k) for k in range(1, 7)}
    first_turn_main = [tr for tr, s in main if tr.meta["turn"] > 0 and s.meta["attempt"] == 0]
    bloat = {
        "mechanism": "prompt bloat (resent conversation history)", "planted": sc.max_turns > 1, "scope": scope,
        "definition": "every turn resends all previous questions and answers; history tokens counted per gpt-4o call "
                      "span of turns 2+; cached = the part of that history inside the reported cache_read prefix; "
                      "over budget = per successful first attempt of turns 2+, the history beyond "
                      "history_budget_tokens (its oldest part, cached first)",
        "sessions_by_requests": dist, "requests_turn_2_plus": len(turns),
        "history_tokens": hist_tokens, "history_tokens_cached": hist_cached,
        "history_usd": _usd(((hist_tokens - hist_cached) * g4["input"] + hist_cached * g4["cached_input"]) / 1e6),
        "history_budget_tokens": HISTORY_BUDGET_TOKENS,
        "history_tokens_over_budget": over_tokens,
        "history_over_budget_usd": _usd(over_usd),
        "max_input_tokens": max((s.meta["nom_in"] for _, s in main), default=0),
        "mean_input_tokens_by_turn": {
            str(k + 1): round(sum(s.meta["nom_in"] for tr, s in main if tr.meta["turn"] == k and s.meta["attempt"] == 0)
                              / max(1, sum(1 for tr, s in main if tr.meta["turn"] == k and s.meta["attempt"] == 0)), 1)
            for k in range(max(1, sc.max_turns))},
        "example_trace_ids": _examples([tr.trace_id for tr in first_turn_main]),
    }

    # prefix-cache opportunity on the system prompt. Only a warm call can be served from a cache: one
    # made within CACHE_TTL_US of the previous successful call (a cache keeps an idle prefix that long);
    # the first call after a quiet spell writes the cache and pays full price either way.
    ok = sorted(((tr, s) for tr, s in main if not s.meta["failed"]), key=lambda ts: ts[1].start)
    warm = [cur for prev, cur in zip(ok, ok[1:]) if cur[1].start - prev[1].start <= CACHE_TTL_US]
    uncached = [(tr, s) for tr, s in ok if (s.meta.get("nom_cached") or 0) == 0]
    warm_uncached = [(tr, s) for tr, s in warm if (s.meta.get("nom_cached") or 0) == 0]
    prefix = {
        "mechanism": "prefix cache opportunity (system prompt below the provider's 1024-token minimum)",
        "planted": sys_prefix < OPENAI_CACHE_MIN, "scope": scope,
        "definition": f"successful gpt-4o calls reporting no cached tokens; each repeats the identical "
                      f"{sc.system_prompt_tokens}-token system prompt (+{MSG_OVERHEAD} message tokens); OpenAI "
                      f"caches nothing below {OPENAI_CACHE_MIN} prompt-prefix tokens. The saving counts the warm "
                      f"ones: made at most {CACHE_TTL_US // US} s after the previous successful call, so a cache "
                      f"would still hold the prefix",
        "system_prompt_tokens": sc.system_prompt_tokens, "calls_without_cache_hit": len(uncached),
        "warm_calls_without_cache_hit": len(warm_uncached), "cache_ttl_seconds": CACHE_TTL_US // US,
        "repeated_prefix_tokens": len(warm_uncached) * sys_prefix,
        "saving_usd_if_cached": _usd(len(warm_uncached) * sys_prefix * (g4["input"] - g4["cached_input"]) / 1e6),
    }

    captured = [(tr, s) for tr, s in main if s.meta.get("captured")]
    content = {
        "main_call_spans_with_content_and_no_usage": len(captured),
        "requests": len({tr.trace_id for tr, _ in captured}),
        "nominal_input_tokens": sum(s.meta["nom_in"] for _, s in captured),
        "nominal_output_tokens": sum(s.meta["nom_out"] for _, s in captured),
        "note": "usage attributes absent; gen_ai.input.messages / gen_ai.output.messages carry the text (current "
                "semconv parts format). Text is built from words that are one cl100k token each, so tiktoken counts "
                "land within a few percent of the nominal numbers (message overhead is not text).",
        "example_trace_ids": _examples([tr.trace_id for tr, _ in captured]),
    }

    calls_per_request = {}
    for tr in traces:
        n = sum(1 for s in tr.spans if s.meta)
        calls_per_request[str(n)] = calls_per_request.get(str(n), 0) + 1
    out.update({"llm_calls_per_request": dict(sorted(calls_per_request.items(), key=lambda kv: int(kv[0]))),
                "findings": {"oversized_top_k": topk, "retry_storm": storm, "cacheable_duplicates": dup,
                             "prompt_bloat": bloat, "prefix_cache": prefix},
                "content_capture": content})
    return out


def ops_truth(sc: Scenario, traces: list[Trace]) -> dict:
    son, hai = PRICES["claude-sonnet-4-5"], PRICES["claude-haiku-4-5"]
    window = [sc.start, iso_us(parse_time_us(sc.start) + sc.days * 86400 * US)]
    scope = {"service": OpsAgent.service, "feature": OpsAgent.route, "route": OpsAgent.route, "tenant": None,
             "window": window}
    calls_per = {}
    normal_calls = []
    for tr in traces:
        n = sum(1 for s in tr.spans if s.meta)
        calls_per[str(n)] = calls_per.get(str(n), 0) + 1
        if not tr.meta["loop"]:
            normal_calls.append(n)
    loops = [tr for tr in traces if tr.meta["loop"]]
    w_calls = [s for tr in loops for s in tr.spans if s.meta and s.meta.get("loop_iteration", 0) >= 1]
    w_in = sum(s.meta["in"] for s in w_calls)
    w_cached = sum(s.meta["cached"] for s in w_calls)
    w_out = sum(s.meta["out"] for s in w_calls)
    loop_cost = sum(list_cost(s.meta["model"], s.meta["in"], s.meta["cached"], s.meta["out"])
                    for tr in loops for s in tr.spans if s.meta)
    loop = {
        "mechanism": "fan-out amplification (runaway tool loop)", "planted": sc.loop_rate > 0,
        "scope": {**scope, "model": "claude-sonnet-4-5", "tool": "search_runbooks"},
        "definition": "requests where search_runbooks is called N times in a row with identical tool.parameters, each "
                      "followed by an agent_step LLM call whose prompt grows by the repeated result; wasted = "
                      "repetitions 2..N (tool calls and their LLM calls)",
        "requests": len(traces), "loop_requests": len(loops),
        "repeats": [tr.meta["loop"]["repeats"] for tr in loops],
        "wasted_tool_calls": sum(tr.meta["loop"]["repeats"] - 1 for tr in loops),
        "wasted_llm_calls": len(w_calls),
        "wasted_input_tokens": w_in, "wasted_cached_input_tokens": w_cached, "wasted_output_tokens": w_out,
        "wasted_usd": _usd(((w_in - w_cached) * son["input"] + w_cached * son["cached_input"] + w_out * son["output"]) / 1e6),
        "loop_requests_total_usd": _usd(loop_cost),
        "llm_calls_per_normal_request": {"min": min(normal_calls, default=0), "max": max(normal_calls, default=0),
                                         "mean": round(sum(normal_calls) / max(1, len(normal_calls)), 3)},
        "llm_calls_per_request": dict(sorted(calls_per.items(), key=lambda kv: int(kv[0]))),
        "example_trace_ids": _examples([tr.trace_id for tr in loops]),
    }
    routers = [(tr, s) for tr in traces for s in tr.spans if s.meta and s.meta["role"] == "router"]
    mis = [(tr, s) for tr, s in routers if s.meta["model"] == "claude-sonnet-4-5"]
    m_in = sum(s.meta["in"] for _, s in mis)
    m_out = sum(s.meta["out"] for _, s in mis)
    actual = (m_in * son["input"] + m_out * son["output"]) / 1e6
    if_haiku = (m_in * hai["input"] + m_out * hai["output"]) / 1e6
    routing = {
        "mechanism": "model-tier routing (frontier model doing classification)", "planted": sc.router_misroute_share > 0,
        "scope": {**scope, "model": "claude-sonnet-4-5", "span": "router > ChatAnthropic",
                  "k8s.pod.name": sorted({tr.meta["pod"] for tr, _ in mis})},
        "definition": "router LLM calls (parent CHAIN 'router', output <= 5 tokens) on claude-sonnet-4-5 instead of "
                      "claude-haiku-4-5; all of them come from one replica (k8s.pod.name above)",
        "router_calls": len(routers), "router_calls_on_sonnet": len(mis),
        "router_calls_on_haiku": len(routers) - len(mis),
        "router_output_tokens_max": max((s.meta["out"] for _, s in routers), default=0),
        "sonnet_router_input_tokens": m_in, "sonnet_router_output_tokens": m_out,
        "sonnet_router_usd": _usd(actual), "same_calls_on_haiku_usd": _usd(if_haiku), "saving_usd": _usd(actual - if_haiku),
        "example_trace_ids": _examples([tr.trace_id for tr, _ in mis]),
    }
    healthy = {
        "anthropic_prompt_cache": "planner/agent_step/responder calls read the 2048-token system+tools prefix from "
                                  "cache (llm.token_count.prompt_details.cache_read); llm.token_count.prompt includes "
                                  "the cached tokens",
    }
    per_tenant: dict[str, int] = {}
    for tr in traces:
        per_tenant[tr.meta["tenant"]] = per_tenant.get(tr.meta["tenant"], 0) + 1
    return {"requests": len(traces), "requests_by_tenant": dict(sorted(per_tenant.items())),
            "findings": {"runaway_loop": loop, "model_routing": routing}, "healthy": healthy}


def batch_truth(sc: Scenario, traces: list[Trace]) -> dict:
    calls = [s for _, s in llm_spans(traces)]
    outs = [s.meta["out"] for s in calls]
    ins = [s.meta["in"] for s in calls]
    reserved = sum(s.meta["max_tokens"] for s in calls)
    used = sum(outs)
    # padding if the same calls were served in static batches of 8 (arrival order, per night)
    pad_in = pad_out = 0
    for tr in traces:
        cs = [s for s in tr.spans if s.meta]
        for i in range(0, len(cs), 8):
            b = cs[i:i + 8]
            pad_in += len(b) * max(s.meta["in"] for s in b) - sum(s.meta["in"] for s in b)
            pad_out += len(b) * max(s.meta["out"] for s in b) - sum(s.meta["out"] for s in b)
    nights = []
    for tr in traces:
        cs = [s for s in tr.spans if s.meta]
        nights.append({"date": iso_us(tr.meta["window_start"])[:10], "calls": len(cs),
                       "first_call_start": iso_us(min(s.start for s in cs)) if cs else None,
                       "last_call_end": iso_us(max(s.end for s in cs)) if cs else None,
                       "trace_id": tr.trace_id})
    p99 = _percentile(outs, 99)
    padding = {
        "mechanism": "padding waste (max_tokens far above real output; mixed input lengths)",
        "planted": sc.batch_max_tokens > 2 * max(outs, default=0),
        "scope": {"service": BatchSummarizer.service, "feature": BatchSummarizer.workflow,
                  "workflow": BatchSummarizer.workflow, "model": LLAMA, "provider": "vllm", "self_hosted": True,
                  "tenant": None, "window": [sc.start, iso_us(parse_time_us(sc.start) + sc.days * 86400 * US)]},
        "definition": "reserved = sum of gen_ai.request.max_tokens; used = sum of completion tokens",
        "calls": len(calls), "max_tokens": sc.batch_max_tokens,
        "reserved_output_tokens": reserved, "used_output_tokens": used, "unused_reserved_tokens": reserved - used,
        "reserved_utilization": round(used / max(1, reserved), 6),
        "output_tokens_p50": _percentile(outs, 50), "output_tokens_p99": p99, "output_tokens_max": max(outs, default=0),
        "recommended_max_tokens": int(math.ceil(p99 * 1.25 / 64) * 64) if outs else 0,
        "input_tokens_min": min(ins, default=0), "input_tokens_p5": _percentile(ins, 5),
        "input_tokens_p50": _percentile(ins, 50), "input_tokens_p95": _percentile(ins, 95),
        "input_tokens_max": max(ins, default=0),
        "static_batch_of_8_padding": {"prompt_pad_tokens": pad_in, "decode_pad_tokens": pad_out,
                                      "note": "if served with static batches of 8 in arrival order (informational)"},
        "usd": None, "note": "self-hosted model: no token price; cost comes from GPU time (metrics supplied separately)",
        "example_trace_ids": _examples([tr.trace_id for tr in traces]),
    }
    window = {
        "mechanism": "idle capacity (GPU used only in the nightly window)",
        "definition": "all calls of the job run inside the nightly window; the vLLM GPU is idle the other ~22 h a day",
        "window_utc": f"{sc.batch_window_start_hour:02d}:00-{sc.batch_window_start_hour + sc.batch_window_hours:02d}:00",
        "nights": nights, "calls_per_night_mean": round(len(calls) / max(1, len(traces)), 2),
    }
    return {"calls": len(calls), "findings": {"padding": padding, "batch_window": window}}


def email_truth(sc: Scenario, traces: list[Trace]) -> dict:
    outs = [s.meta["out"] for _, s in llm_spans(traces)]
    per_tenant: dict[str, int] = {}
    for tr in traces:
        per_tenant[tr.meta["tenant"]] = per_tenant.get(tr.meta["tenant"], 0) + 1
    return {"requests": len(traces), "requests_by_tenant": dict(sorted(per_tenant.items())),
            "control": "healthy: one gpt-4o-mini call per request, no errors or re-sends, no duplicates, "
                       "max_tokens 600 vs output p99 %d, short prompts" % _percentile(outs, 99),
            "output_tokens_p99": _percentile(outs, 99), "max_tokens": 600}


TRUTH_BUILDERS = {"support-bot": support_truth, "ops-agent": ops_truth, "batch-summarizer": batch_truth,
                  "email-drafter": email_truth}
CONVENTIONS = {
    "support-bot": "OpenTelemetry GenAI (current names) + OpenInference retriever attributes",
    "ops-agent": "OpenInference",
    "batch-summarizer": "OpenLLMetry (older GenAI usage names)",
    "email-drafter": "OpenTelemetry GenAI older names + OpenLLMetry indexed content",
}


def compute_truth(sc: Scenario, seed: int, workloads: dict[str, list[Trace]], outputs: dict[str, str]) -> dict:
    sc_dict = asdict(sc)
    files = {}
    for w, name in outputs.items():
        st = file_stats(workloads[w])
        files[name] = {"workload": w, "format": format_of(name), "gzip": name.endswith(".gz"),
                       "convention": CONVENTIONS[w], **st}
    total_calls = sum(f["llm_calls"] for f in files.values())
    return {
        "generator": {"script": "sample_traces/generate.py", "seed": seed, "scenario": sc_dict},
        "window": {"start": sc.start, "end": iso_us(parse_time_us(sc.start) + sc.days * 86400 * US)},
        "prices_usd_per_1m_tokens": PRICES,
        "self_hosted_models": list(SELF_HOSTED_MODELS),
        "conventions": "token counts are what the spans record; input tokens include cached input tokens; "
                       "list cost = (input - cached) * input price + cached * cached price + output * output price",
        "totals": {"files": len(files), "spans": sum(f["spans"] for f in files.values()), "llm_calls": total_calls,
                   "list_cost_usd": _usd(sum(f["list_cost_usd"] for f in files.values()))},
        "files": files,
        "workloads": {w: TRUTH_BUILDERS[w](sc, workloads[w]) for w in outputs},
    }


def write_files(out_dir: Path, files: dict[str, bytes]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        tmp = out_dir / (name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(out_dir / name)


# ----------------------------------------------------------------------------------------------- billing + metrics
# The bill and the GPU / serving metrics of the same week, derived from the traces' own calls so the three
# agree where they should: the bill charges every traced call's true usage at list price (also the calls
# whose spans miss their usage counts), plus spend no trace shows; the GPU and vLLM metrics are busy exactly
# while the batch calls run, and idle the rest of the time the node is up.

BILLING_PERIOD = ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
PROVIDER_OF = {"gpt-4o": "openai", "gpt-4o-mini": "openai", "text-embedding-3-small": "openai",
               "claude-sonnet-4-5": "anthropic", "claude-haiku-4-5": "anthropic"}
BILLED_MODEL = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
                "text-embedding-3-small": "text-embedding-3-small",
                "claude-sonnet-4-5": "claude-sonnet-4-5-20250929", "claude-haiku-4-5": "claude-haiku-4-5-20251001"}
# provider -> FOCUS names and the account the invoices go to
BILLING_PROVIDERS = {
    "openai": {"name": "OpenAI", "issuer": "OpenAI, LLC", "service": "OpenAI API", "account": ("org-Vx3TqP8nLw2cRkA9", "Example Corp")},
    "anthropic": {"name": "Anthropic", "issuer": "Anthropic, PBC", "service": "Claude API",
                  "account": ("8f0c2d6e-41b7-4f3a-9e25-7c1d0a6b3e94", "Example Corp")},
    "aws": {"name": "Amazon Web Services", "issuer": "Amazon Web Services, Inc.", "service": "Amazon Elastic Compute Cloud",
            "account": ("987654321098", "example-payer")},
}
# workload -> the sub-account (OpenAI project, Anthropic workspace) its calls are billed to
SUB_ACCOUNTS = {"support-bot": ("proj_Q7mZsupport4Kd1", "support-bot"), "email-drafter": ("proj_R2hXemail9Tb3", "email-drafter"),
                "ops-agent": ("wrkspc_01HnOps5Ka8Z", "ops-agent")}
UNTRACED_SUB_ACCOUNT = ("proj_L5wNevals2Pq8", "nightly-evals")   # the planted gap: a project no trace covers
TOKEN_METER = {"openai": {"input": "input tokens", "cached_input": "cached input tokens", "output": "output tokens"},
               "anthropic": {"input": "input tokens", "cached_input": "cache read input tokens", "output": "output tokens"}}
FOCUS_COLUMNS = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "CapacityReservationId", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountId", "ConsumedQuantity", "ConsumedUnit", "ContractedCost",
    "ContractedUnitPrice", "EffectiveCost", "HostProviderName", "InvoiceId", "InvoiceIssuerName", "ListCost",
    "ListUnitPrice", "PricingCategory", "PricingQuantity", "PricingUnit", "RegionId", "RegionName", "ResourceId",
    "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "ServiceProviderName", "ServiceSubcategory",
    "SkuId", "SkuMeter", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags", "x_ServiceTier",
)

# The self-hosted vLLM node: one H100 in one instance, billed per hour at the catalog's H100 price.
GPU_HOST = "vllm-node-1"
GPU_MODEL_NAME = "NVIDIA H100 80GB HBM3"
GPU_UUID = "GPU-5e1b0c2a-7f4d-4a9e-b3c1-8d2f6a0e9b71"
GPU_LABELS = (f'gpu="0",UUID="{GPU_UUID}",pci_bus_id="00000000:53:00.0",device="nvidia0",'
              f'modelName="{GPU_MODEL_NAME}",Hostname="{GPU_HOST}",DCGM_FI_DRIVER_VERSION="570.172.08"')
GPU_FB_TOTAL_MIB = 81559
GPU_HOUR_USD = 6.88              # llmaudit's catalog H100 price (p5.48xlarge $55.04/h / 8): billed rate and idle price
GPU_INSTANCE = {"type": "p5.4xlarge", "sku": "XK7D2MQ4ZP8FJ3WN", "region": "us-east-1", "zone": "us-east-1a",
                "resource_id": "arn:aws:ec2:us-east-1:123456789012:instance/i-0f3c9a1b2d4e5f607",
                "sub_account": ("123456789012", "ml-prod")}
VLLM_MODEL_LABEL = f'model_name="{LLAMA}"'
KV_CAPACITY_TOKENS = 456_000     # KV-cache tokens of Llama-3.1-8B (128 KiB each in bf16) in ~57 GiB of one H100
PER_REPLICA_CONCURRENCY = 32     # requests one replica serves at once within its latency target (LLMA014's default)
DCGM_FIELDS = (  # (name, type, help) in the order dcgm-exporter's default counters file lists them
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
    ("DCGM_FI_PROF_SM_ACTIVE", "gauge", "The ratio of cycles an SM has at least 1 warp assigned."),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge", "Ratio of cycles the device memory interface is active sending or receiving data."),
)


def _money(x: float) -> str:
    """A decimal as billing exports write it: up to 10 places, no exponent, no trailing zeros."""
    text = f"{x:.10f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _day_us(us: int) -> int:
    return us - us % (86400 * US)


def _billing_calls(workloads: dict[str, list[Trace]]) -> Iterator[tuple[str, Span]]:
    """(workload, call) for every API call the bill charges: all of them, failed attempts included
    (their input was sent and is billed) and calls whose span lacks usage (billed at their true size)."""
    for w in sorted(workloads):
        for _, s in llm_spans(workloads[w]):
            if s.meta["model"] in PROVIDER_OF:
                yield w, s


def billing_rows(sc: Scenario, seed: int, workloads: dict[str, list[Trace]]) -> tuple[list[dict], dict]:
    """FOCUS 1.2 rows, one per day x provider x sub-account x model x token type (and one per day for the
    GPU instance), and the truth about them."""
    rng = random.Random(f"{seed}:billing")
    start = parse_time_us(sc.start)
    days = [start + d * 86400 * US for d in range(sc.days)]
    usage: dict[tuple, int] = {}   # (day, provider, sub account, model, token type) -> tokens
    traced_usd: dict[str, float] = {}
    for w, s in _billing_calls(workloads):
        m = s.meta
        model, provider = m["model"], PROVIDER_OF[m["model"]]
        cached = (m.get("nom_cached", m["cached"]) or 0) if not m["failed"] else 0
        inp, out = m["nom_in"] or 0, m["nom_out"] or 0
        day = _day_us(s.start)
        for token_type, n in (("input", inp - cached), ("cached_input", cached), ("output", out)):
            if n:
                key = (day, provider, SUB_ACCOUNTS[w], model, token_type)
                usage[key] = usage.get(key, 0) + n
    untraced_by_day: dict[str, float] = {}
    for day in days:
        amount = sc.untraced_usd_per_day * rng.uniform(0.8, 1.2)
        if amount <= 0:
            continue
        # an eval job: long prompts, short answers (80 % of its dollars are input)
        for token_type, n in (("input", int(round(amount * 0.8 / PRICES["gpt-4o"]["input"] * 1e6))),
                              ("output", int(round(amount * 0.2 / PRICES["gpt-4o"]["output"] * 1e6)))):
            key = (day, "openai", UNTRACED_SUB_ACCOUNT, "gpt-4o", token_type)
            usage[key] = usage.get(key, 0) + n
    rows = []
    for (day, provider, (sub_id, sub_name), model, token_type), n in sorted(usage.items()):
        p = BILLING_PROVIDERS[provider]
        unit = PRICES[model][token_type]
        cost = round(n * unit / 1e6, 10)
        billed_model = BILLED_MODEL[model]
        meter = f"{billed_model} {TOKEN_METER[provider][token_type]}"
        rows.append({
            "BilledCost": cost, "BillingAccountId": p["account"][0], "BillingAccountName": p["account"][1],
            "BillingCurrency": "USD", "BillingPeriodStart": BILLING_PERIOD[0], "BillingPeriodEnd": BILLING_PERIOD[1],
            "ChargeCategory": "Usage", "ChargeDescription": f"{meter} ({sub_name})", "ChargeFrequency": "Usage-Based",
            "ChargePeriodStart": iso_us(day), "ChargePeriodEnd": iso_us(day + 86400 * US),
            "ConsumedQuantity": n, "ConsumedUnit": "Tokens", "ContractedCost": cost, "ContractedUnitPrice": unit,
            "EffectiveCost": cost, "HostProviderName": p["name"], "InvoiceId": f"INV-{provider.upper()}-2026-11",
            "InvoiceIssuerName": p["issuer"], "ListCost": cost, "ListUnitPrice": unit, "PricingCategory": "Standard",
            "PricingQuantity": n / 1e6, "PricingUnit": "1M Tokens", "ServiceCategory": "AI and Machine Learning",
            "ServiceName": p["service"], "ServiceProviderName": p["name"], "ServiceSubcategory": "Generative AI",
            "SkuId": f"{provider}-{billed_model}", "SkuMeter": meter, "SkuPriceId": f"{provider}-{billed_model}-{token_type}",
            "SubAccountId": sub_id, "SubAccountName": sub_name, "Tags": {"project": sub_name}, "x_ServiceTier": "default",
            "_provider": provider, "_model": model, "_day": iso_us(day)[:10], "_traced": (sub_id, sub_name) != UNTRACED_SUB_ACCOUNT,
        })
        if (sub_id, sub_name) == UNTRACED_SUB_ACCOUNT:
            untraced_by_day[iso_us(day)[:10]] = untraced_by_day.get(iso_us(day)[:10], 0.0) + cost
        else:
            traced_usd[provider] = traced_usd.get(provider, 0.0) + cost
    # The GPU instance: billed for every hour it is up (all week, or only around the nightly batch).
    hours_by_day: dict[int, float] = {}
    for a, b in gpu_up_periods(sc):
        for day in days:  # a period is billed on each day it overlaps
            overlap = min(b, day + 86400 * US) - max(a, day)
            if overlap > 0:
                hours_by_day[day] = hours_by_day.get(day, 0.0) + overlap / (3600 * US)
    aws, gi = BILLING_PROVIDERS["aws"], GPU_INSTANCE
    for day, hours in sorted(hours_by_day.items()):
        hours = round(hours, 6)
        cost = round(hours * GPU_HOUR_USD, 10)
        rows.append({
            "AvailabilityZone": gi["zone"], "BilledCost": cost, "BillingAccountId": aws["account"][0],
            "BillingAccountName": aws["account"][1], "BillingCurrency": "USD", "BillingPeriodStart": BILLING_PERIOD[0],
            "BillingPeriodEnd": BILLING_PERIOD[1], "ChargeCategory": "Usage",
            "ChargeDescription": f"${GPU_HOUR_USD:.2f} per On Demand Linux {gi['type']} Instance Hour",
            "ChargeFrequency": "Usage-Based", "ChargePeriodStart": iso_us(day), "ChargePeriodEnd": iso_us(day + 86400 * US),
            "ConsumedQuantity": hours, "ConsumedUnit": "Hours", "ContractedCost": cost, "ContractedUnitPrice": GPU_HOUR_USD,
            "EffectiveCost": cost, "HostProviderName": aws["name"], "InvoiceId": "INV-AWS-2026-11",
            "InvoiceIssuerName": aws["issuer"], "ListCost": cost, "ListUnitPrice": GPU_HOUR_USD, "PricingCategory": "Standard",
            "PricingQuantity": hours, "PricingUnit": "Hours", "RegionId": gi["region"], "RegionName": "US East (N. Virginia)",
            "ResourceId": gi["resource_id"], "ResourceName": GPU_HOST, "ResourceType": "Virtual Machine",
            "ServiceCategory": "Compute", "ServiceName": aws["service"], "ServiceProviderName": aws["name"],
            "ServiceSubcategory": "Virtual Machines", "SkuId": gi["sku"], "SkuMeter": f"BoxUsage:{gi['type']}",
            "SkuPriceId": f"{gi['sku']}.JRTCKXETXF.6YS6EN2CT7", "SubAccountId": gi["sub_account"][0],
            "SubAccountName": gi["sub_account"][1], "Tags": {"Name": GPU_HOST, "team": "ml-platform", "workload": "batch-summarizer"},
            "_provider": "aws", "_model": None, "_day": iso_us(day)[:10], "_traced": False, "_hours": hours,
        })
    rows.sort(key=lambda r: (r["ChargePeriodStart"], r["ServiceProviderName"], r["SubAccountId"], r["SkuMeter"]))
    truth = _billing_truth(rows, traced_usd, untraced_by_day)
    return rows, truth


def _billing_truth(rows: list[dict], traced_usd: dict[str, float], untraced_by_day: dict[str, float]) -> dict:
    by_service_day: dict[str, dict[str, float]] = {}
    by_provider: dict[str, float] = {}
    by_model: dict[str, float] = {}
    for r in rows:
        sd = by_service_day.setdefault(r["ServiceName"], {})
        sd[r["_day"]] = sd.get(r["_day"], 0.0) + r["BilledCost"]
        by_provider[r["_provider"]] = by_provider.get(r["_provider"], 0.0) + r["BilledCost"]
        if r["_model"]:
            key = f"{r['_provider']}/{r['_model']}"
            by_model[key] = by_model.get(key, 0.0) + r["BilledCost"]
    compute = [r for r in rows if r["ServiceCategory"] == "Compute"]
    llm = {p: v for p, v in by_provider.items() if p in ("openai", "anthropic")}
    untraced = sum(untraced_by_day.values())
    return {
        "file": None,  # filled by the caller
        "focus_version": "1.2",
        "currency": "USD",
        "rows": len(rows),
        "definition": "BilledCost = EffectiveCost = ListCost (list prices, no discounts); per day (UTC) x provider x "
                      "sub-account x model x token type for the model APIs, per day for the GPU instance",
        "billed_usd": _usd(sum(r["BilledCost"] for r in rows)),
        "by_provider_usd": {k: _usd(v) for k, v in sorted(by_provider.items())},
        "by_model_usd": {k: _usd(v) for k, v in sorted(by_model.items())},
        "by_service_day_usd": {svc: {d: _usd(v) for d, v in sorted(days.items())} for svc, days in sorted(by_service_day.items())},
        "llm_api_billed_usd": _usd(sum(llm.values())),
        "traced_usage_billed_usd": {k: _usd(v) for k, v in sorted(traced_usd.items())},
        "unexplained": {
            "planted": untraced > 0,
            "mechanism": "billed spend the traces do not explain (cost reconciliation)",
            "definition": "gpt-4o usage of an OpenAI project that sends no traces (a nightly eval job), billed at list",
            "provider": "openai", "model": "gpt-4o", "billed_model": BILLED_MODEL["gpt-4o"],
            "sub_account_id": UNTRACED_SUB_ACCOUNT[0], "sub_account_name": UNTRACED_SUB_ACCOUNT[1],
            "usd": _usd(untraced), "by_day_usd": {d: _usd(v) for d, v in sorted(untraced_by_day.items())},
        },
        "explained_share": {p: round(traced_usd.get(p, 0.0) / v, 6) for p, v in sorted(llm.items()) if v > 0},
        "compute": {
            "service_category": "Compute", "resource_name": GPU_HOST, "resource_id": GPU_INSTANCE["resource_id"],
            "instance_type": GPU_INSTANCE["type"], "gpus": 1, "usd_per_hour": GPU_HOUR_USD,
            "hours": round(sum(r["_hours"] for r in compute), 6), "usd": _usd(sum(r["BilledCost"] for r in compute)),
        },
    }


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        value = json.dumps(value, separators=(",", ":"), sort_keys=True)
    elif isinstance(value, float):
        value = _money(value)
    else:
        value = str(value)
    if any(c in value for c in ',"\n'):
        value = '"' + value.replace('"', '""') + '"'
    return value


def focus_csv(rows: list[dict]) -> bytes:
    lines = [",".join(FOCUS_COLUMNS)]
    for r in rows:
        lines.append(",".join(_csv_cell(r.get(c)) for c in FOCUS_COLUMNS))
    return ("\n".join(lines) + "\n").encode("utf-8")


def gpu_up_periods(sc: Scenario) -> list[tuple[int, int]]:
    """[start, end) in µs during which the vLLM node is up (scraped and billed)."""
    start = parse_time_us(sc.start)
    if sc.gpu_always_on:
        return [(start, start + sc.days * 86400 * US)]
    # autoscaled: up 5 minutes before the nightly window, down at its end (the job is done by then)
    out = []
    for d in range(sc.days):
        w0 = start + d * 86400 * US + sc.batch_window_start_hour * 3600 * US
        out.append((w0 - 300 * US, w0 + sc.batch_window_hours * 3600 * US))
    return out


def _batch_calls(workloads: dict[str, list[Trace]]) -> list[Span]:
    return sorted((s for _, s in llm_spans(workloads.get("batch-summarizer", []))), key=lambda s: s.start)


def _scrapes(sc: Scenario) -> list[int]:
    step = sc.scrape_seconds * US
    return [t for a, b in gpu_up_periods(sc) for t in range(a, b, step)]


def _busy_seconds(calls: list[Span], times: list[int], step: int) -> dict[int, float]:
    """Seconds of each scrape interval [t, t + step) during which a call ran (calls of one server
    run one at a time here; overlapping calls would count once)."""
    busy: dict[int, float] = {}
    for s in calls:
        i = bisect.bisect_right(times, s.start) - 1
        while 0 <= i < len(times) and times[i] < s.end:
            a, b = max(s.start, times[i]), min(s.end, times[i] + step)
            if b > a:
                busy[times[i]] = busy.get(times[i], 0.0) + (b - a) / US
            i += 1
    return busy


def dcgm_scrapes(sc: Scenario, seed: int, workloads: dict[str, list[Trace]]) -> tuple[bytes, dict]:
    """DCGM exporter scrapes of the node's one H100, each under a `# scrape <ISO>` separator. A sample at t
    describes the interval [t, t + scrape) (gpu_busy_intervals attributes it so): GPU_UTIL and the profiling
    ratios are the share of that interval the batch calls ran, times how hard they ran the GPU."""
    rng = random.Random(f"{seed}:dcgm")
    step = sc.scrape_seconds * US
    times = _scrapes(sc)
    calls = _batch_calls(workloads)
    busy = _busy_seconds(calls, times, step)
    restart = parse_time_us(sc.vllm_restart) if sc.vllm_restart and sc.gpu_always_on else None
    energy_mj = 9_431_227_118
    out = io.StringIO()
    samples = 0
    prov_h = busy_h = idle_h = active_h = 0.0
    by_hod = [[0.0, 0.0, 0.0] for _ in range(24)]  # provisioned, SM-busy, active (a call ran) GPU-hours
    for t in times:
        f = min(1.0, busy.get(t, 0.0) / sc.scrape_seconds)
        level = rng.uniform(0.62, 0.78)   # how hard a running summarization drives the SMs
        noise = rng.random()
        if f > 0:
            sm = f * level
            gr = min(1.0, sm * 1.04)
            dram = f * rng.uniform(0.35, 0.5)
            util = max(1, int(round(f * rng.uniform(94, 99))))
            copy = int(round(f * rng.uniform(20, 35)))
            power = rng.uniform(69, 74) + f * rng.uniform(380, 520)
            temp = 31 + int(round(f * 22)) + rng.randint(0, 2)
        else:  # idle: the engine launches no kernels; the monitor itself shows up now and then
            sm = 0.0 if noise < 0.8 else rng.uniform(0.0005, 0.003)
            gr, dram = sm, sm * 0.3
            util = 0 if noise < 0.9 else rng.randint(1, 2)
            copy = 0
            power = rng.uniform(69, 74)
            temp = 31 + rng.randint(0, 2)
        down = restart is not None and restart <= t < restart + step  # vLLM restarting: its KV cache is freed
        used = 517 + rng.randint(0, 8) if down else 73_465 + rng.randint(0, 12)
        energy_mj += int(power * sc.scrape_seconds * 1000)
        values = {"DCGM_FI_DEV_GPU_TEMP": str(temp), "DCGM_FI_DEV_POWER_USAGE": f"{power:.3f}",
                  "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": str(energy_mj), "DCGM_FI_DEV_GPU_UTIL": str(util),
                  "DCGM_FI_DEV_MEM_COPY_UTIL": str(copy), "DCGM_FI_DEV_FB_FREE": str(GPU_FB_TOTAL_MIB - used),
                  "DCGM_FI_DEV_FB_USED": str(used), "DCGM_FI_PROF_GR_ENGINE_ACTIVE": f"{gr:.6f}",
                  "DCGM_FI_PROF_SM_ACTIVE": f"{sm:.6f}", "DCGM_FI_PROF_DRAM_ACTIVE": f"{dram:.6f}"}
        out.write(f"# scrape {iso_us(t)}\n")
        for name, kind, help_text in DCGM_FIELDS:
            out.write(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name}{{{GPU_LABELS}}} {values[name]}\n")
            samples += 1
        h = sc.scrape_seconds / 3600
        sm_written = float(f"{sm:.6f}")
        hod = (t // (3600 * US)) % 24
        prov_h += h
        busy_h += sm_written * h
        by_hod[hod][0] += h
        by_hod[hod][1] += sm_written * h
        if f > 0:
            active_h += h
            by_hod[hod][2] += h
        else:
            idle_h += h
    # What a schedule by hour of day could switch off: the node-hours in hours of the day in which no
    # batch call ever ran (what LLMA013 estimates; close to idle_h, which counts 5-minute intervals).
    trough = [hod for hod in range(24) if by_hod[hod][0] > 0 and by_hod[hod][2] == 0]
    trough_h = sum(by_hod[hod][0] for hod in trough)
    # Self-hosted call pricing: the node's covered time from the first batch call's start to the last's end.
    window_h = 0.0
    if calls:
        a0, b0 = calls[0].start, max(s.end for s in calls)
        window_h = sum(max(0, min(t + step, b0) - max(t, a0)) for t in times) / (3600 * US)
    truth = {
        "host": GPU_HOST, "gpu_model": GPU_MODEL_NAME, "gpus": 1, "accelerator": "H100", "usd_per_gpu_hour": GPU_HOUR_USD,
        "scrape_seconds": sc.scrape_seconds, "scrapes": len(times), "samples": samples,
        "busy_signal": "DCGM_FI_PROF_SM_ACTIVE",
        "definition": "provisioned = scrape coverage (each sample stands for the interval it starts); busy GPU-hours = "
                      "sum of SM_ACTIVE x interval; idle GPU-hours = provisioned time in intervals in which no batch call ran",
        "provisioned_gpu_hours": round(prov_h, 6),
        "busy_gpu_hours": round(busy_h, 6),
        "active_gpu_hours": round(active_h, 6),
        "idle_capacity": {
            "planted": idle_h > 0.25 * prov_h,
            "mechanism": "idle capacity (a GPU held all day for a nightly batch)",
            "scope": {"host": GPU_HOST, "gpu_model": GPU_MODEL_NAME, "model": LLAMA, "service": None},
            "idle_gpu_hours": round(idle_h, 6), "idle_usd": _usd(idle_h * GPU_HOUR_USD),
            "idle_share": round(idle_h / prov_h, 6) if prov_h else None,
            "trough_hours_of_day": trough, "trough_gpu_hours": round(trough_h, 6),
            "trough_usd": _usd(trough_h * GPU_HOUR_USD),
            "recommended_floor_gpus": 0,
            "busy_hours_of_day": [hod for hod in range(24) if by_hod[hod][2] > 0],
        },
        "by_hour_of_day": [{"hour": hod, "provisioned_gpu_hours": round(p, 6), "busy_gpu_hours": round(b, 6),
                            "active_gpu_hours": round(a, 6)} for hod, (p, b, a) in enumerate(by_hod) if p > 0],
        "self_hosted_pricing": {
            "definition": "batch calls are priced from the node's covered GPU time between the first batch call's start "
                          "and the last one's end, at the catalog H100 price, shared by call duration",
            "gpu_hours": round(window_h, 6), "usd": _usd(window_h * GPU_HOUR_USD),
        },
    }
    return out.getvalue().encode("utf-8"), truth


VLLM_OLD = (  # before the upgrade (the older KV-cache gauge name)
    ("vllm:num_requests_running", "gauge", "Number of requests currently running on GPU."),
    ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed."),
    ("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage."),
    ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed."),
    ("vllm:generation_tokens_total", "counter", "Number of generation tokens processed."),
    ("vllm:request_success_total", "counter", "Count of successfully processed requests."),
)
VLLM_NEW = (  # after it (vllm:kv_cache_usage_perc)
    ("vllm:num_requests_running", "gauge", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed."),
    ("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage."),
    ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed."),
    ("vllm:generation_tokens_total", "counter", "Number of generation tokens processed."),
    ("vllm:request_success_total", "counter", "Count of successfully processed requests."),
)


def vllm_scrapes(sc: Scenario, seed: int, workloads: dict[str, list[Trace]]) -> tuple[bytes, dict]:
    """vLLM /metrics scrapes of the node, each under `# scrape <ISO> {instance="vllm-node-1:8000",job="vllm"}`.
    Gauges are the state at the scrape instant; counters count since the server started (a prompt when it
    starts, its generated tokens and the request when it ends) and start again from 0 after a restart."""
    step = sc.scrape_seconds * US
    calls = _batch_calls(workloads)
    times = _scrapes(sc)
    restart = parse_time_us(sc.vllm_restart) if sc.vllm_restart else None
    ups = gpu_up_periods(sc)
    # a server process starts where the node comes up and at the planted restart (down one scrape)
    starts = sorted({a for a, _ in ups} | ({restart + step} if restart is not None and sc.gpu_always_on else set()))
    out = io.StringIO()
    samples = scrapes = 0
    peak, peak_at = 0, None
    c = 0  # calls are consumed in start order
    counters = {"prompt": 0, "gen": 0, "ok": 0}
    pending: list[Span] = []   # started, not yet ended
    started_at = None
    for t in times:
        if sc.gpu_always_on and restart is not None and restart <= t < restart + step:
            continue  # down for the upgrade: no scrape answered
        proc = max(a for a in starts if a <= t)
        if proc != started_at:
            started_at = proc
            counters = {"prompt": 0, "gen": 0, "ok": 0}
        while c < len(calls) and calls[c].start <= t:
            s = calls[c]
            c += 1
            if s.start >= started_at:
                counters["prompt"] += s.meta["in"]
                pending.append(s)
        for s in [s for s in pending if s.end <= t]:
            pending.remove(s)
            if s.start >= started_at:
                counters["gen"] += s.meta["out"]
                counters["ok"] += 1
        running = [s for s in pending if s.start <= t < s.end]
        kv = sum(s.meta["in"] + s.meta["out"] * (t - s.start) / max(1, s.end - s.start) for s in running) / KV_CAPACITY_TOKENS
        if len(running) > peak:
            peak, peak_at = len(running), t
        names = VLLM_NEW if restart is not None and t >= restart else VLLM_OLD
        values = [float(len(running)), 0.0, round(kv, 6), float(counters["prompt"]), float(counters["gen"]), float(counters["ok"])]
        out.write(f'# scrape {iso_us(t)} {{instance="{GPU_HOST}:8000",job="vllm"}}\n')
        for (name, kind, help_text), v in zip(names, values):
            # the label set stays the same across the restart, so each counter is one series that drops to 0
            lab = f'engine="0",{VLLM_MODEL_LABEL}' if name != "vllm:request_success_total" else \
                f'engine="0",finished_reason="stop",{VLLM_MODEL_LABEL}'
            out.write(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name}{{{lab}}} {v!r}\n")
            samples += 1
        scrapes += 1
    # True peak concurrency from the calls themselves (the scrapes see only instants).
    events = sorted([(s.start, 1) for s in calls] + [(s.end, -1) for s in calls], key=lambda e: (e[0], e[1]))
    level = true_peak = 0
    for _, d in events:
        level += d
        true_peak = max(true_peak, level)
    truth = {
        "host": GPU_HOST, "instance": f"{GPU_HOST}:8000", "model_name": LLAMA, "scrapes": scrapes, "samples": samples,
        "prompt_tokens": sum(s.meta["in"] for s in calls), "generation_tokens": sum(s.meta["out"] for s in calls),
        "requests": len(calls),
        "restart": {"at": sc.vllm_restart if sc.gpu_always_on else None,
                    "note": "counters reset to 0 (same series, so the drop is a reset); the KV gauge is "
                            "vllm:gpu_cache_usage_perc before and vllm:kv_cache_usage_perc after" if sc.gpu_always_on else
                            "the server starts every night with the node; counters start at 0 each time"},
        "peak_running_scraped": peak, "peak_running_scraped_at": iso_us(peak_at) if peak_at is not None else None,
        "peak_running_true": true_peak,
        "replicas_provisioned": 1,
        "per_replica_concurrency_assumed": PER_REPLICA_CONCURRENCY,
        "replicas_needed": max(1, math.ceil(true_peak * 1.25 / PER_REPLICA_CONCURRENCY)),
        "note": "the batch job sends one request at a time (paced by its queue), so one replica is plenty; "
                "the waste is time of day (idle_capacity), not replica count",
    }
    return out.getvalue().encode("utf-8"), truth


def data_files(sc: Scenario, seed: int, workloads: dict[str, list[Trace]]) -> tuple[dict[str, bytes], dict]:
    """The billing export and the metrics files of Scenario.data_outputs, and their truth."""
    outputs = sc.data_output_map()
    files: dict[str, bytes] = {}
    truth: dict = {"data_files": {}}
    if "billing" in outputs:
        rows, billing = billing_rows(sc, seed, workloads)
        name = outputs["billing"]
        data = focus_csv(rows)
        files[name] = _gzip(data) if name.endswith(".gz") else data
        billing["file"] = name
        truth["billing"] = billing
        truth["data_files"][name] = {"kind": "billing", "format": "focus-csv", "gzip": name.endswith(".gz"),
                                     "records": len(rows)}
    if "batch-summarizer" in workloads:
        # The self-hosted node's metrics: (output key, writer, truth key), written alike.
        for key, write, truth_key in (("dcgm", dcgm_scrapes, "gpu"), ("vllm", vllm_scrapes, "serving")):
            if key not in outputs:
                continue
            name = outputs[key]
            data, facts = write(sc, seed, workloads)
            files[name] = _gzip(data) if name.endswith(".gz") else data
            truth["data_files"][name] = {"kind": "metrics", "format": "prom-text", "source": key,
                                         "gzip": name.endswith(".gz"), "records": facts["samples"]}
            truth[truth_key] = facts
    return files, truth


# ----------------------------------------------------------------------------------------------- bench
def bench_scenario(spans_target: int, top_k: int = 5, content_share: float = 0.0,
                   spans_per_request: float = 12.0) -> Scenario:
    """Support-bot traffic for the benchmark file: the sample's week, more requests, k=5 (so the
    retrieval spans do not dominate the size), usage kept on captured calls."""
    return Scenario(support_requests=max(1, int(round(spans_target / spans_per_request))), top_k=top_k,
                    useful_k=(3, 4), content_share=content_share,
                    outputs=(("support-bot", "bench.otlp.jsonl"),))


def bench(spans_target: int, out: Path, seed: int = DEFAULT_SEED, bytes_per_span: int = 870, top_k: int = 5) -> dict:
    """Stream support-bot-like traffic as plain OTLP JSON lines: ~spans_target spans, ~bytes_per_span each.

    Memory stays bounded (one hour of traffic at a time). The share of main calls whose content is captured
    (usage kept) is calibrated on a small probe so that the file averages bytes_per_span."""
    share, per_request = _bench_calibrate(seed, bytes_per_span, top_k)
    sc = bench_scenario(spans_target, top_k, share, per_request)
    t0 = time.perf_counter()

    def limited():
        n = 0
        for tr in _keep_usage(SupportBot(sc, seed)):
            if n >= spans_target:
                return
            n += len(tr.spans)
            yield tr

    with open(out, "wb", buffering=1 << 20) as fh:
        spans, lines = write_otlp_jsonl(limited(), fh, seed)
        written = fh.tell()
    secs = time.perf_counter() - t0
    return {"spans": spans, "lines": lines, "bytes": written, "seconds": round(secs, 2),
            "bytes_per_span": round(written / max(1, spans), 1), "content_share": round(share, 5),
            "requests": sc.support_requests}


def _keep_usage(bot: SupportBot) -> Iterator[Trace]:
    """Bench traffic: captured calls keep their usage attributes (the content is there for size)."""
    for tr in bot.traces():
        for s in tr.spans:
            m = s.meta
            if m and m.get("captured") and m["in"] is None:
                a = s.attrs
                a["gen_ai.usage.input_tokens"] = m["nom_in"]
                a["gen_ai.usage.output_tokens"] = m["nom_out"]
                if not m["failed"]:
                    a["gen_ai.usage.cache_read.input_tokens"] = m.get("nom_cached", 0)
        yield tr


def _size(traces: list[Trace]) -> int:
    buf = io.BytesIO()
    write_otlp_jsonl(traces, buf)
    return len(buf.getvalue())


def _bench_calibrate(seed: int, bytes_per_span: int, top_k: int) -> tuple[float, float]:
    """(content share, spans per request) that make bench traffic average bytes_per_span."""
    plain = list(_keep_usage(SupportBot(replace(bench_scenario(18_000, top_k, 0.0), days=1), seed)))
    spans = sum(len(tr.spans) for tr in plain)
    base = _size(plain) / spans
    rich = list(_keep_usage(SupportBot(replace(bench_scenario(1_200, top_k, 1.0), days=1), seed)))
    extra = (_size(rich) - base * sum(len(tr.spans) for tr in rich)) / len(rich)
    per_request = spans / len(plain)
    share = (bytes_per_span - base) * per_request / max(1.0, extra)
    return max(0.0, min(1.0, share)), per_request


# ----------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("sample", help="write the sample files (default: next to this script)")
    s.add_argument("--out", type=Path, default=HERE)
    s.add_argument("--seed", type=int, default=DEFAULT_SEED)
    s.add_argument("--clean", action="store_true", help="plant nothing (Scenario.clean())")
    b = sub.add_parser("bench", help="stream a large OTLP JSON-lines file for benchmarks")
    b.add_argument("--spans", type=int, default=575_000)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--seed", type=int, default=DEFAULT_SEED)
    b.add_argument("--bytes-per-span", type=int, default=870)
    b.add_argument("--top-k", type=int, default=5)
    args = ap.parse_args(argv)
    if args.cmd == "bench":
        r = bench(args.spans, args.out, args.seed, args.bytes_per_span, args.top_k)
        print(f"spans={r['spans']} bytes={r['bytes']} seconds={r['seconds']} "
              f"(lines={r['lines']}, {r['bytes_per_span']} B/span, content share {r['content_share']})")
        return 0
    out = args.out if args.cmd == "sample" else HERE
    seed = args.seed if args.cmd == "sample" else DEFAULT_SEED
    sc = Scenario.clean() if args.cmd == "sample" and args.clean else Scenario()
    files, truth = generate(sc, seed)
    write_files(out, files)
    for name in sorted(files):
        print(f"{len(files[name]):>10}  {out / name}")
    print(f"spans={truth['totals']['spans']} llm_calls={truth['totals']['llm_calls']} "
          f"list_cost_usd={truth['totals']['list_cost_usd']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
