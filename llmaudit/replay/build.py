"""From a finding and the store: the baseline workload of the affected traffic and its remediated twin.

The baseline is the model calls the finding is about (its scope: service, feature, model, tenant,
time window), as they arrived, with their token counts. The twin is the same traffic after the fix
the finding recommends, made by one transformation per category:

    oversized_top_k    each reading call's input shrinks by the chunks it would no longer get:
                       (chunks returned - recommended k) x tokens per chunk
    retry_storm        retries removed (first attempts stay, failed ones included)
    fan_out            calls past the per-request budget removed (LLMA001), or loop repeats past
                       the cap removed (LLMA002)
    padding_waste      max_tokens right-sized; calls that wrote more are cut to it
    cache_opportunity  repeats of an identical request removed (a response cache answers them)
    prompt_bloat       resent history capped at the first turn + the history budget
    idle_capacity      the same requests, evenly spaced at their mean rate (peaks shaved); capacity
                       questions go to `llmaudit replay capacity`

Both variants keep request ids, so a request can be followed from one to the other. Nothing here
is random: the same store and finding always give the same files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from llmaudit.config import Settings
from llmaudit.findings.model import Finding
from llmaudit.replay.workload import FORMAT, Header, Request, Workload
from llmaudit.rules.engine import observed_window_days
from llmaudit.store import Store

DEFAULT_MAX_REQUESTS = 2000
REPLAYABLE = ("oversized_top_k", "retry_storm", "fan_out", "padding_waste", "cache_opportunity", "prompt_bloat",
              "idle_capacity")


class BuildError(Exception):
    """A finding that cannot be turned into a workload; the message says why and what to do."""


@dataclass
class Call:
    trace_id: str
    span_id: str
    start: float  # seconds since the epoch
    model: str | None
    call_kind: str | None
    input_tokens: int
    output_tokens: int | None
    cached_input_tokens: int
    max_tokens: int | None
    is_error: bool
    is_retry: bool
    input_hash: str | None
    conversation_id: str | None
    service: str | None
    feature: str | None
    tenant: str | None
    docs_returned: int | None = None  # oversized_top_k: chunks the retrieval before it returned
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Built:
    baseline: Workload
    remediated: Workload
    notes: list[str]


# ---------------------------------------------------------------- finding lookup

def find_finding(store: Store, finding_id: str, settings: Settings | None = None) -> Finding:
    """A finding by fingerprint, a unique fingerprint prefix, or a rule id with exactly one finding."""
    from llmaudit.audit import audit

    findings = audit(store, settings or Settings()).findings
    key = finding_id.strip()
    exact = [f for f in findings if f.fingerprint == key]
    if exact:
        return exact[0]
    matches = [f for f in findings if f.fingerprint.lower().startswith(key.lower())]
    if len(matches) == 1:
        return matches[0]
    if not findings:
        raise BuildError("the store has no findings; run `llmaudit analyze FILES --db FILE` first")
    listing = "\n".join(f"  {f.fingerprint}  {f.category:<18} {f.message[:90]}" for f in (matches or findings)[:20])
    if matches:
        raise BuildError(f"{finding_id!r} matches {len(matches)} findings; give the full fingerprint:\n{listing}")
    raise BuildError(f"no finding {finding_id!r} in this store; findings are:\n{listing}")


# ---------------------------------------------------------------- selection

def _scope_sql(f: Finding, alias: str = "c") -> tuple[str, list]:
    parts, params = [], []
    for col in ("service", "feature", "model", "tenant"):
        value = getattr(f.scope, col)
        if value is not None:
            parts.append(f"{alias}.{col} = ?")
            params.append(value)
    return (" AND ".join(parts) or "TRUE"), params


def _window_sql(f: Finding, alias: str = "c") -> tuple[str, list]:
    """Traces with a model call or retrieval starting inside the finding's window.

    By trace rather than by call: a rule's window may be the span of its retrievals, and the call that
    reads them starts just after the last one."""
    ws, we = f.scope.window_start, f.scope.window_end
    if ws is None or we is None:
        return "TRUE", []
    return (
        f"""{alias}.trace_id IN (
              SELECT trace_id FROM llm_calls WHERE start_time BETWEEN ? AND ?
              UNION SELECT trace_id FROM retrievals WHERE start_time BETWEEN ? AND ?)""",
        [ws, we, ws, we],
    )


_CALL_COLUMNS = """c.trace_id, c.span_id, epoch_us(c.start_time) / 1e6 AS start, c.model, c.call_kind,
    c.input_tokens, c.output_tokens, coalesce(c.cached_input_tokens, 0), c.max_tokens, coalesce(c.is_error, FALSE),
    coalesce(c.is_retry, FALSE), c.input_hash, c.conversation_id, c.service, c.feature, c.tenant"""


def _rows_to_calls(rows) -> list[Call]:
    return [Call(*row[:16], docs_returned=row[16] if len(row) > 16 else None) for row in rows]


def select_calls(store: Store, f: Finding) -> tuple[list[Call], int]:
    """The affected calls (in time order) and how many were left out as not replayable."""
    scope, sp = _scope_sql(f)
    window, wp = _window_sql(f)
    if f.category == "oversized_top_k":
        # Only the calls that read the chunks: the first main call after each retrieval in scope.
        rscope, rp = _scope_sql(f.model_copy(update={"scope": f.scope.model_copy(update={"model": None})}), "r")
        rwindow, rwp = _window_sql(f, "r")
        sql = f"""
        WITH r AS (
            -- chunks in the prompt (derive: what a re-ranker after the retrieval kept, else all returned)
            SELECT r.trace_id, r.span_id, r.start_time, r.documents_in_prompt AS documents_returned
            FROM retrievals r WHERE r.kind = 'retriever' AND {rscope} AND {rwindow}
        ),
        reader AS (
            SELECT r.trace_id, r.span_id AS retrieval_span, r.documents_returned,
                   arg_min(c.span_id, (c.start_time, c.span_id)) AS span_id
            FROM r JOIN llm_calls c ON c.trace_id = r.trace_id AND c.start_time >= r.start_time AND c.call_kind = 'main'
            WHERE {scope}
            GROUP BY ALL
        )
        SELECT {_CALL_COLUMNS}, max(x.documents_returned)
        FROM reader x JOIN llm_calls c ON c.trace_id = x.trace_id AND c.span_id = x.span_id
        GROUP BY ALL
        ORDER BY start, c.trace_id, c.span_id
        """
        params = rp + rwp + sp
    else:
        sql = f"""
        SELECT {_CALL_COLUMNS}
        FROM llm_calls c
        WHERE {scope} AND {window}
        ORDER BY start, c.trace_id, c.span_id
        """
        params = sp + wp
    calls = _rows_to_calls(store.con.execute(sql, params).fetchall())
    # Embeddings are not completions (a completions server cannot replay them), and a call without
    # an input token count cannot be given an exact prompt.
    kept = [c for c in calls if c.call_kind != "embedding" and c.input_tokens is not None and c.input_tokens > 0]
    return kept, len(calls) - len(kept)


def _sample(calls: list[Call], max_requests: int) -> list[Call]:
    """The first whole traces, in time order, up to max_requests calls: contiguous traffic keeps the
    arrival pattern, and whole traces keep what per-request transformations (loops, budgets) need."""
    if len(calls) <= max_requests:
        return calls
    per_trace: dict[str, int] = {}
    for c in calls:
        per_trace[c.trace_id] = per_trace.get(c.trace_id, 0) + 1
    chosen: set[str] = set()
    count = 0
    for t in dict.fromkeys(c.trace_id for c in calls):  # traces in order of their first call
        if count and count + per_trace[t] > max_requests:
            break
        chosen.add(t)
        count += per_trace[t]
    return [c for c in calls if c.trace_id in chosen]


# ---------------------------------------------------------------- baseline

def _baseline_requests(calls: list[Call]) -> tuple[list[Request], list[str]]:
    notes: list[str] = []
    t0 = calls[0].start
    hash_counts: dict[str, int] = {}
    for c in calls:
        if c.input_hash:
            hash_counts[c.input_hash] = hash_counts.get(c.input_hash, 0) + 1
    no_output = 0
    reqs = []
    width = max(4, len(str(len(calls))))
    for i, c in enumerate(calls):
        out = c.output_tokens if c.output_tokens and c.output_tokens > 0 else None
        if out is None:
            no_output += 1
            out = 1
        max_tokens = c.max_tokens if c.max_tokens and c.max_tokens >= out else None
        group, prefix = None, 0
        # Shared prefixes, most specific evidence first. A conversation re-sends one growing history
        # (each turn's prompt starts with the previous one's); an identical input hash is the same
        # prompt; provider-cached tokens say that much of the prompt was a prefix seen before.
        if c.conversation_id:
            group, prefix = f"conv:{c.conversation_id}", c.input_tokens
        elif c.input_hash and hash_counts[c.input_hash] > 1:
            group, prefix = f"in:{c.input_hash[:16]}", c.input_tokens
        elif c.cached_input_tokens > 0:
            group = f"cached:{c.service or ''}/{c.feature or ''}/{c.model or ''}"
            prefix = min(c.cached_input_tokens, c.input_tokens)
        role = "retry" if c.is_retry else ("failed" if c.is_error else None)
        reqs.append(Request(
            id=f"r{i:0{width}d}", arrival_s=round(c.start - t0, 6), input_tokens=c.input_tokens, output_tokens=out,
            max_tokens=max_tokens, prefix_group=group, prefix_tokens=prefix, model=c.model,
            source_trace_id=c.trace_id, source_span_id=c.span_id, role=role,
        ))
    if no_output:
        notes.append(f"{no_output} call(s) without a recorded output length (mostly failures) are replayed as their "
                     "prompt plus 1 generated token")
    if any(r.prefix_group for r in reqs):
        notes.append("shared prefixes: turns of one conversation re-send a growing history; calls with the same "
                     "input hash send the same prompt; provider-cached input tokens are a prefix shared by the "
                     "scope's calls")
    return reqs, notes


# ---------------------------------------------------------------- transformations

def _ev(f: Finding, key: str, default=None):
    v = f.evidence.get(key, default)
    return default if v is None else v


def _t_oversized_top_k(f: Finding, calls: list[Call], reqs: list[Request]) -> tuple[list[Request], str, list[str]]:
    rec = _ev(f, "recommended_k")
    per_chunk = _ev(f, "tokens_per_chunk")
    typical = _ev(f, "typical_k")
    if rec is None or per_chunk is None:
        raise BuildError(f"{f.fingerprint}: evidence lacks recommended_k / tokens_per_chunk")
    out, dropped_total, clipped = [], 0, 0
    for c, r in zip(calls, reqs):
        returned = c.docs_returned if c.docs_returned is not None else typical
        drop = int(round(max((returned or 0) - rec, 0) * per_chunk))
        new_in = r.input_tokens - drop
        if new_in < 1:
            clipped += 1
            new_in = 1
        dropped_total += r.input_tokens - new_in
        out.append(r.model_copy(update={"input_tokens": new_in, "prefix_tokens": min(r.prefix_tokens, new_in),
                                        "prefix_group": r.prefix_group if min(r.prefix_tokens, new_in) else None}))
    text = (f"top-k trimmed to {rec}: each reading call's input shrinks by (chunks returned - {rec}) x "
            f"{per_chunk:g} tokens per chunk ({dropped_total} tokens over {len(out)} calls)")
    notes = [f"tokens per chunk {per_chunk:g} ({'measured from captured chunks' if _ev(f, 'tokens_per_chunk_measured') else 'assumed'})",
             "the dropped chunks come out of the request's own (unshared) part of the prompt"]
    if clipped:
        notes.append(f"{clipped} call(s) had fewer input tokens than the chunks dropped; kept at 1 token")
    return out, text, notes


def _resend_key(c: Call):
    return (c.model, c.input_hash) if c.input_hash else (c.feature, c.conversation_id, c.model, c.input_tokens)


def _t_retry_storm(f, calls, reqs):
    kept, failed_at, retries, resends = [], {}, 0, 0
    window = float(_ev(f, "resend_window_seconds", 300.0))
    # Requests re-sent as new requests are only looked for when the finding is about them (LLMA012),
    # and only matched on evidence that identifies the request (content hash or conversation): equal
    # sizes alone are too common to call two requests the same.
    look_for_resends = "resent_requests" in f.evidence
    for c, r in zip(calls, reqs):
        key = _resend_key(c) if (look_for_resends and (c.input_hash or c.conversation_id)) else None
        earlier = failed_at.get(key) if key is not None else None
        if c.is_retry:
            retries += 1
            continue
        if earlier is not None and earlier[0] != c.trace_id and c.start - earlier[1] <= window:
            # A new request repeating a failed one (LLMA012): with an idempotency key the first
            # request's work is kept, so the re-send does not run again.
            resends += 1
            failed_at.pop(key, None)
            continue
        if c.is_error and key is not None:
            failed_at[key] = (c.trace_id, c.start)
        kept.append(r)
    text = (f"re-sends removed: {retries} retries inside a request and {resends} failed requests sent again "
            f"as new ones, of {len(reqs)} calls")
    return kept, text, ["first attempts stay, failed ones included: a retry budget, backoff or idempotency key "
                        "removes the re-sends, not the failures",
                        f"a re-sent request matches a failed call of another request (same model and input) at "
                        f"most {window:g} s earlier"]


def _t_fan_out(f, calls, reqs):
    if "cap_calls" in f.evidence:
        cap = int(_ev(f, "cap_calls"))
        kept, n_by_trace = [], {}
        for c, r in zip(calls, reqs):
            counted = c.call_kind != "embedding" and not c.is_retry
            if counted:
                n_by_trace[c.trace_id] = n_by_trace.get(c.trace_id, 0) + 1
                if n_by_trace[c.trace_id] > cap:
                    continue
            kept.append(r)
        return kept, f"per-request call budget of {cap}: {len(reqs) - len(kept)} calls past it removed", [
            "calls are numbered in start order within their request; the budget stops the rest"]
    if "max_repeats" in f.evidence:
        cap = int(_ev(f, "max_repeats"))
        kept, seen = [], {}
        for c, r in zip(calls, reqs):
            key = (c.trace_id, c.model, c.input_hash or f"size:{c.input_tokens}")
            if c.call_kind == "main" and not c.is_retry:
                seen[key] = seen.get(key, 0) + 1
                if seen[key] > cap:
                    continue
            kept.append(r)
        return kept, f"loops capped at {cap} repeats: {len(reqs) - len(kept)} repeated calls removed", [
            "a repeat is the same model with the same input (hash, or size when content was not captured) "
            "within one request"]
    raise BuildError(f"{f.fingerprint}: a fan_out finding without cap_calls or max_repeats in its evidence")


def _t_padding_waste(f, calls, reqs):
    rec = _ev(f, "recommended_max_tokens")
    if rec is None:
        raise BuildError(
            f"{f.fingerprint} ({f.rule_id}): the fix changes how the server batches, not the traffic; replay the "
            "baseline against both servers instead (`llmaudit replay run workload.jsonl --endpoint URL_A`, then URL_B)")
    rec = int(rec)
    out, cut = [], 0
    for r in reqs:
        new_out = min(r.output_tokens, rec)
        cut += new_out < r.output_tokens
        out.append(r.model_copy(update={"max_tokens": rec, "output_tokens": new_out}))
    return out, f"max_tokens right-sized to {rec}; {cut} call(s) that wrote more are cut to it", [
        "vLLM allocates KV cache per generated token (paged), so a smaller max_tokens alone changes little there; "
        "what the replay measures is the cut outputs and any scheduling effect"]


def _t_cache_opportunity(f, calls, reqs):
    if "shared_prefix_tokens" in f.evidence:
        # LLMA008: the prompts share a static prefix that production never got cached. The fix makes
        # it byte-identical and first, so the server's prefix cache can serve it.
        shared = int(_ev(f, "shared_prefix_tokens"))
        group = f"shared:{f.fingerprint}"
        out, changed = [], 0
        for r in reqs:
            if r.prefix_group is None and shared > 0:
                changed += 1
                r = r.model_copy(update={"prefix_group": group, "prefix_tokens": min(shared, r.input_tokens)})
            out.append(r)
        return out, f"a {shared}-token static prefix made identical and first in {changed} calls (prefix-cacheable)", [
            "calls that already share a prefix (a conversation, an identical input) keep theirs",
            "the server must have prefix caching on (vLLM: on by default in V1; --enable-prefix-caching before)"]
    kept, seen = [], set()
    for c, r in zip(calls, reqs):
        key = (c.model, c.input_hash) if c.input_hash else (
            c.service, c.feature, c.tenant, c.conversation_id, c.model, c.input_tokens, c.output_tokens)
        if key in seen and not c.is_error and not c.is_retry:
            continue
        if not c.is_error:
            seen.add(key)
        kept.append(r)
    return kept, f"identical repeats answered by a response cache: {len(reqs) - len(kept)} calls removed", [
        "a repeat is the same model and input (hash; else same scope, conversation and token counts) as an "
        "earlier successful call in the replayed sample"]


def _t_prompt_bloat(f, calls, reqs):
    budget = _ev(f, "history_budget_tokens")
    if budget is None:
        raise BuildError(f"{f.fingerprint}: evidence lacks history_budget_tokens")
    first: dict[str, int] = {}
    out, trimmed = [], 0
    for c, r in zip(calls, reqs):
        if not c.conversation_id:
            out.append(r)
            continue
        f_in = first.setdefault(c.conversation_id, r.input_tokens)
        new_in = min(r.input_tokens, f_in + int(budget))
        trimmed += r.input_tokens - new_in
        out.append(r.model_copy(update={"input_tokens": new_in, "prefix_tokens": min(r.prefix_tokens, new_in)}))
    return out, f"history capped at the first turn + {int(budget)} tokens ({trimmed} tokens removed)", [
        "a capped history keeps the conversation's first tokens, so prefix caching still applies"]


def _t_idle_capacity(f, calls, reqs):
    n = len(reqs)
    span = max((r.arrival_s for r in reqs), default=0.0)
    step = span / (n - 1) if n > 1 else 0.0
    ordered = sorted(reqs, key=lambda r: (r.arrival_s, r.id))
    out = [r.model_copy(update={"arrival_s": round(i * step, 6)}) for i, r in enumerate(ordered)]
    return out, f"the same {n} requests evenly spaced at their mean rate ({(n - 1) / span if span else 0:.3g}/s): peaks shaved", [
        "replicas needed for the recorded peak come from `llmaudit replay capacity`"]


TRANSFORMS = {
    "oversized_top_k": _t_oversized_top_k,
    "retry_storm": _t_retry_storm,
    "fan_out": _t_fan_out,
    "padding_waste": _t_padding_waste,
    "cache_opportunity": _t_cache_opportunity,
    "prompt_bloat": _t_prompt_bloat,
    "idle_capacity": _t_idle_capacity,
}


def build(store: Store, finding: Finding, *, name: str = "workload", max_requests: int = DEFAULT_MAX_REQUESTS) -> Built:
    if finding.category not in TRANSFORMS:
        raise BuildError(
            f"{finding.fingerprint}: {finding.category} findings are not replayable as a traffic change "
            f"(replayable: {', '.join(REPLAYABLE)}); for a model change, replay the same workload against each "
            "model's server with `llmaudit replay run`")
    calls, skipped = select_calls(store, finding)
    if not calls:
        raise BuildError(f"{finding.fingerprint}: no replayable model calls in the finding's scope and window")
    production = len(calls)
    sample = _sample(calls, max_requests)
    reqs, notes = _baseline_requests(sample)
    remediated, transformation, t_notes = TRANSFORMS[finding.category](finding, sample, reqs)
    if not remediated:
        raise BuildError(f"{finding.fingerprint}: the remediation removes every request; nothing to replay")
    window_days = observed_window_days(store)
    if skipped:
        notes.append(f"{skipped} call(s) in scope left out: embeddings, or no input token count")
    if len(sample) < production:
        notes.append(f"sample: the first {len(sample)} of {production} calls (whole requests, in time order)")
    common = dict(
        format=FORMAT, finding=finding.fingerprint, rule_id=finding.rule_id, category=finding.category,
        production_requests=production, sampled_requests=len(sample),
        window_seconds=round(window_days * 86400, 3) if window_days else None,
    )
    base_name = f"{name}"
    baseline = Workload(header=Header(name=base_name, variant="baseline", twin=f"{name}.remediated",
                                      transformation="as recorded", assumptions=notes, **common), requests=reqs)
    twin = Workload(header=Header(name=f"{name}.remediated", variant="remediated", twin=base_name,
                                  transformation=transformation, assumptions=notes + t_notes, **common),
                    requests=remediated)
    return Built(baseline=baseline, remediated=twin, notes=notes + t_notes)


def peak_rate(store: Store, finding: Finding, bucket_s: float = 60.0) -> dict[str, Any]:
    """The busiest bucket of the finding's traffic in production: requests per second at the peak."""
    calls, _ = select_calls(store, finding)
    if not calls:
        return {"peak_rps": None, "mean_rps": None, "bucket_s": bucket_s, "calls": 0}
    buckets: dict[int, int] = {}
    for c in calls:
        b = int(math.floor(c.start / bucket_s))
        buckets[b] = buckets.get(b, 0) + 1
    span = calls[-1].start - calls[0].start
    return {"peak_rps": max(buckets.values()) / bucket_s, "mean_rps": (len(calls) / span) if span > 0 else None,
            "bucket_s": bucket_s, "calls": len(calls)}
