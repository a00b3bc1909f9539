"""Workloads: the traffic a replay sends, one JSON line per request, validated.

A workload file is JSON lines. An optional first line ``{"workload": {...}}`` carries the header
(where it came from, how many production requests it stands for, what the remediation changed);
every other line is one request:

    {"workload": {"name": "checkout-topk", "variant": "baseline"}}
    {"id": "r0", "arrival_s": 0.0, "input_tokens": 2400, "output_tokens": 120}
    {"id": "r1", "arrival_s": 0.5, "input_tokens": 2410, "output_tokens": 96, "prefix_group": "sys", "prefix_tokens": 400}

Only ``arrival_s``, ``input_tokens`` and ``output_tokens`` are required; ids default to the line
number. A file written by hand is checked as strictly as one written by ``llmaudit replay build``:
unknown fields, negative times, a prefix longer than the prompt or an output longer than max_tokens
are errors that name the file and line.

Prompts are made of token ids, not text, so input lengths are exact for any model: requests in the
same ``prefix_group`` start with the same ``prefix_tokens`` token ids (so a server's prefix cache
sees what production's saw) and continue with ids unique to the request.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FORMAT = "llmaudit-workload/1"

Variant = Literal["baseline", "remediated", "custom"]


class WorkloadError(Exception):
    """A workload file that cannot be used; the message names the file and the line."""


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="unique within the workload; the baseline and remediated twin share ids")
    arrival_s: float = Field(ge=0, description="send time, seconds after the workload starts")
    input_tokens: int = Field(ge=1, description="exact prompt length in tokens")
    output_tokens: int = Field(ge=1, description="exact generated length (sent as max_tokens with ignore_eos)")
    max_tokens: int | None = Field(None, ge=1, description="the max_tokens production set (recorded; replay generates output_tokens)")
    prefix_group: str | None = Field(None, description="requests of a group share their first prefix_tokens token ids")
    prefix_tokens: int = Field(0, ge=0, description="length of the shared prefix (needs prefix_group)")
    model: str | None = Field(None, description="the production model (informational: the server's model is used)")
    source_trace_id: str | None = None
    source_span_id: str | None = None
    role: str | None = Field(None, description="why the request is there, e.g. retry, loop_repeat, duplicate")

    @model_validator(mode="after")
    def _consistent(self) -> "Request":
        if self.prefix_tokens > self.input_tokens:
            raise ValueError(f"prefix_tokens {self.prefix_tokens} exceeds input_tokens {self.input_tokens}")
        if self.prefix_tokens and not self.prefix_group:
            raise ValueError("prefix_tokens needs a prefix_group")
        if self.max_tokens is not None and self.output_tokens > self.max_tokens:
            raise ValueError(f"output_tokens {self.output_tokens} exceeds max_tokens {self.max_tokens}")
        return self


class Header(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    name: str = "workload"
    variant: Variant = "custom"
    finding: str | None = Field(None, description="fingerprint of the finding it was built from")
    rule_id: str | None = None
    category: str | None = None
    twin: str | None = Field(None, description="file name of the other variant")
    transformation: str | None = Field(None, description="what the remediation changed, in words")
    production_requests: int | None = Field(None, ge=0, description="requests of this traffic in the finding's window")
    window_seconds: float | None = Field(None, ge=0, description="length of the finding's window")
    sampled_requests: int | None = Field(None, ge=0, description="baseline requests replayed out of production_requests")
    assumptions: list[str] = Field(default_factory=list)


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    header: Header = Field(default_factory=Header)
    requests: list[Request]

    @model_validator(mode="after")
    def _unique_ids(self) -> "Workload":
        seen: set[str] = set()
        for r in self.requests:
            if r.id in seen:
                raise ValueError(f"duplicate request id {r.id!r}")
            seen.add(r.id)
        return self

    # ---- figures a replay and its report use

    @property
    def span_s(self) -> float:
        return max((r.arrival_s for r in self.requests), default=0.0)

    @property
    def input_tokens(self) -> int:
        return sum(r.input_tokens for r in self.requests)

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.requests)

    def sorted(self) -> "Workload":
        reqs = sorted(self.requests, key=lambda r: (r.arrival_s, r.id))
        return Workload(header=self.header, requests=reqs)

    def sha256(self) -> str:
        return hashlib.sha256(dumps(self).encode()).hexdigest()


def _line(obj: dict) -> str:
    # Sorted keys and fixed float formatting: the same workload always gives the same bytes.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dumps(workload: Workload) -> str:
    lines = [_line({"workload": workload.header.model_dump(exclude_defaults=False)})]
    for r in workload.requests:
        d = r.model_dump(exclude_none=True)
        if d.get("prefix_tokens") == 0:
            d.pop("prefix_tokens")
        d["arrival_s"] = round(d["arrival_s"], 6)
        lines.append(_line(d))
    return "\n".join(lines) + "\n"


def write(workload: Workload, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(workload), encoding="utf-8")
    tmp.replace(path)  # never a half-written workload file
    return path


def _error(path, line_no: int, exc: ValidationError) -> WorkloadError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    return WorkloadError(f"{path}: line {line_no}: {where + ': ' if where else ''}{msg}")


def loads(text: str, path: str = "<workload>") -> Workload:
    header = Header()
    requests: list[Request] = []
    ids: dict[str, int] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # blank lines and comments: for files written by hand
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"{path}: line {line_no}: not valid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise WorkloadError(f"{path}: line {line_no}: expected a JSON object")
        if "workload" in obj:
            if requests or line_no != _first_content_line(text):
                raise WorkloadError(f"{path}: line {line_no}: the workload header must be the first line")
            if set(obj) != {"workload"}:
                raise WorkloadError(f"{path}: line {line_no}: a header line holds only \"workload\"")
            try:
                header = Header.model_validate(obj["workload"])
            except ValidationError as exc:
                raise _error(path, line_no, exc) from exc
            if header.format != FORMAT:
                raise WorkloadError(f"{path}: line {line_no}: format {header.format!r} is not {FORMAT!r}")
            continue
        obj.setdefault("id", f"L{line_no}")
        try:
            req = Request.model_validate(obj)
        except ValidationError as exc:
            raise _error(path, line_no, exc) from exc
        if req.id in ids:
            raise WorkloadError(f"{path}: line {line_no}: duplicate request id {req.id!r} (first on line {ids[req.id]})")
        ids[req.id] = line_no
        requests.append(req)
    if not requests:
        raise WorkloadError(f"{path}: no requests")
    return Workload(header=header, requests=requests)


def _first_content_line(text: str) -> int:
    for n, raw in enumerate(text.splitlines(), start=1):
        if raw.strip() and not raw.strip().startswith("#"):
            return n
    return 0


def read(path: str | Path) -> Workload:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path}: cannot read workload: {exc}") from exc
    return loads(text, str(path))


def twin_path(path: str | Path) -> Path:
    """workload.jsonl -> workload.remediated.jsonl"""
    path = Path(path)
    suffix = "".join(path.suffixes[-1:]) or ".jsonl"
    stem = path.name[: -len(suffix)] if path.name.endswith(suffix) else path.name
    return path.with_name(f"{stem}.remediated{suffix}")


# ---------------------------------------------------------------- token ids

class TokenSpace(BaseModel):
    """Which token ids prompts are made of.

    Ids are drawn from [low, high): low skips the special tokens most vocabularies put first (bos, eos,
    pad, unk), high stays inside the smallest vocabulary replay is used with. Any id in range is a
    valid prompt token for the model; what it means does not matter to the engine's cost."""

    model_config = ConfigDict(extra="forbid")
    low: int = Field(10, ge=0)
    high: int = Field(2000, gt=1)

    @model_validator(mode="after")
    def _order(self) -> "TokenSpace":
        if self.high - self.low < 16:
            raise ValueError("token id range must hold at least 16 ids")
        return self


def _ids(seed: str, n: int, space: TokenSpace) -> list[int]:
    if n <= 0:
        return []
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    span = space.high - space.low
    return [space.low + rng.randrange(span) for _ in range(n)]


class PromptMaker:
    """Token-id prompts for one run.

    ``salt`` differs per run (baseline, remediated, each repeat): prompts shared inside a run stay
    shared, but no run finds another run's prompts in the server's prefix cache, which would make
    whichever variant runs second look cheaper than it is."""

    def __init__(self, salt: str, space: TokenSpace | None = None):
        self.salt = salt
        self.space = space or TokenSpace()
        self._prefixes: dict[str, list[int]] = {}

    def prompt(self, req: Request) -> list[int]:
        head: list[int] = []
        if req.prefix_group and req.prefix_tokens:
            have = self._prefixes.get(req.prefix_group, [])
            if len(have) < req.prefix_tokens:
                # A group's prefix is one stream, extended as needed: a longer prefix starts with
                # every shorter one (a conversation's turns re-send the same growing history).
                have = _ids(f"{self.salt}\x1fgroup\x1f{req.prefix_group}", max(req.prefix_tokens, 2 * len(have)), self.space)
                self._prefixes[req.prefix_group] = have
            head = have[: req.prefix_tokens]
        tail = _ids(f"{self.salt}\x1freq\x1f{req.id}", req.input_tokens - len(head), self.space)
        return head + tail


def from_requests(requests: Iterable[Request], **header) -> Workload:
    return Workload(header=Header(**header), requests=list(requests))
