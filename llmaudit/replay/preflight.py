"""Before any measured run: does the server answer, which model does it serve, and does the workload fit
its context?

A replay against a server that is down, or whose context is shorter than the workload's prompts,
fails every request of one variant and "measures" a saving from it. These checks stop such a replay
before it sends anything, with a message that says what to change:

    info = check_server("http://127.0.0.1:8000")           # ServerInfo(model, max_model_len, ...)
    workloads, notes = fit_context(workloads, info.max_model_len, mode=None)   # raises if one does not fit
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from typing import Literal

from pydantic import BaseModel, Field

from llmaudit.replay.workload import Request, Workload

FitMode = Literal["drop", "scale"]


class PreflightError(Exception):
    """The replay cannot start; the message says why and what to do."""


class ServerInfo(BaseModel):
    endpoint: str
    models: list[str] = Field(description="what /v1/models lists")
    model: str = Field(description="the model the replay sends to")
    max_model_len: int | None = Field(None, description="the served model's maximum context (prompt + output), if the server says")


def _base(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def check_server(endpoint: str, model: str | None = None, *, api_key: str | None = None,
                 timeout_s: float = 10.0) -> ServerInfo:
    """The server's answer to GET /v1/models. Unreachable, or not serving `model`: PreflightError."""
    url = f"{_base(endpoint)}/v1/models"
    headers = {"Accept": "application/json"}
    key = api_key or os.environ.get("LLMAUDIT_REPLAY_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as resp:
            doc = json.loads(resp.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        if model is not None and exc.code == 404:
            # An OpenAI-compatible server without a model list: usable when the model is named, but
            # its context is unknown.
            return ServerInfo(endpoint=endpoint, models=[], model=model)
        raise PreflightError(f"{url} answered HTTP {exc.code}: is this an OpenAI-compatible server?") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PreflightError(f"the server is unreachable: {url}: {reason}") from None
    except ValueError:
        raise PreflightError(f"{url} did not answer JSON: is this an OpenAI-compatible server?") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list) or not data:
        if model is not None:
            return ServerInfo(endpoint=endpoint, models=[], model=model)
        raise PreflightError(f"{url} lists no model; pass --model NAME")
    entries = {str(d.get("id")): d for d in data if isinstance(d, dict) and d.get("id") is not None}
    chosen = model if model is not None else next(iter(entries))
    if chosen not in entries:
        raise PreflightError(f"the server does not serve {chosen!r}; it serves: {', '.join(entries)}")
    limit = entries[chosen].get("max_model_len")
    return ServerInfo(endpoint=endpoint, models=list(entries), model=chosen,
                      max_model_len=int(limit) if isinstance(limit, (int, float)) and limit > 0 else None)


def _needs(r: Request) -> int:
    return r.input_tokens + r.output_tokens


def fit_context(workloads: list[tuple[str, Workload]], max_model_len: int | None,
                mode: FitMode | None = None) -> tuple[list[tuple[str, Workload]], list[str], float]:
    """The workloads as they can be replayed on a server with this context, the assumptions that
    changed them, and the factor token counts were scaled by (1.0 when unchanged).

    Every request must fit (prompt + output <= max_model_len). When one does not: mode None raises
    PreflightError naming the longest request; "drop" leaves out, from every variant, the request ids
    that do not fit in one of them (so the variants still compare like with like); "scale" shrinks every
    request's input, output and shared prefix by one factor so that the longest fits."""
    if max_model_len is None:
        return workloads, [], 1.0
    # The first of the longest, in workload and file order: the same message for the same files.
    longest_label, longest = max(((label, r) for label, wl in workloads for r in wl.requests),
                                 key=lambda x: _needs(x[1]), default=(None, None))
    if longest is None or _needs(longest) <= max_model_len:
        return workloads, [], 1.0
    if mode is None:
        too_long = sum(1 for _, wl in workloads for r in wl.requests if _needs(r) > max_model_len)
        raise PreflightError(
            f"request {longest.id} of the {longest_label} workload needs {longest.input_tokens:,} prompt + "
            f"{longest.output_tokens:,} output = {_needs(longest):,} tokens, over the server's maximum context of "
            f"{max_model_len:,} ({too_long:,} request(s) do not fit). Serve the model with a longer context "
            "(vLLM: --max-model-len), or pass --fit-context drop (leave those requests out of every variant) "
            "or --fit-context scale (shrink every request by one factor so the longest fits)")
    if mode == "drop":
        drop = {r.id for _, wl in workloads for r in wl.requests if _needs(r) > max_model_len}
        out = [(label, wl.model_copy(update={"requests": [r for r in wl.requests if r.id not in drop]}))
               for label, wl in workloads]
        empty = [label for label, wl in out if not wl.requests]
        if empty:
            raise PreflightError(f"--fit-context drop leaves nothing of the {', '.join(empty)} workload: every "
                                 f"request needs more than the server's {max_model_len:,} tokens")
        note = (f"--fit-context drop: {len(drop):,} request id(s) left out of every variant because they need more than "
                f"the server's maximum context of {max_model_len:,} tokens; the saving per request is measured on the rest")
        return out, [note], 1.0
    factor = max_model_len / _needs(longest)
    out = [(label, wl.model_copy(update={"requests": [_scaled(r, factor) for r in wl.requests]}))
           for label, wl in workloads]
    note = (f"--fit-context scale: every request's input, output and shared prefix scaled by {factor:.4f} so the longest "
            f"({_needs(longest):,} tokens) fits the server's {max_model_len:,}; token figures are scaled back by "
            f"1/{factor:.4f}, and GPU time is assumed to scale the same way")
    return out, [note], factor


def _scaled(r: Request, factor: float) -> Request:
    inp = max(1, math.floor(r.input_tokens * factor))
    outp = max(1, math.floor(r.output_tokens * factor))
    prefix = min(math.floor(r.prefix_tokens * factor), inp)
    mx = max(outp, math.floor(r.max_tokens * factor)) if r.max_tokens is not None else None
    return r.model_copy(update={"input_tokens": inp, "output_tokens": outp, "prefix_tokens": prefix,
                                "prefix_group": r.prefix_group if prefix else None, "max_tokens": mx})
