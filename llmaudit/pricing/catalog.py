"""The price catalog: token prices per model and GPU-hour prices per accelerator.

A bundled, dated catalog (prices.yaml, next to this file) plus an optional user file of the same shape
that overrides or extends it. `resolve()` maps the many spellings of a model name found in telemetry
and bills (date suffixes, provider prefixes, Bedrock inference-profile ids, `models/...`, case) to one
entry, and returns None for a model it does not know: an unknown price is never $0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmaudit.yamlfile import load_yaml

PRICES_FILE = Path(__file__).with_name("prices.yaml")


class PriceError(Exception):
    """A price file that cannot be used; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LongContext(_Strict):
    above_input_tokens: int = Field(description="a call whose input exceeds this is priced at this tier")
    input: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    output: float | None = None


class Rates(_Strict):
    """USD per 1M tokens at one service tier. None means unknown (a cached price falls back to the
    input price, a 1-hour cache write to the 5-minute one)."""

    input: float | None = Field(None, ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0, description="cache creation, 5-minute TTL where there are several")
    cache_write_1h: float | None = Field(None, ge=0, description="cache creation with a 1-hour TTL")
    output: float | None = Field(None, ge=0)
    long_context: LongContext | None = None


# The service tiers a catalog entry may price apart from the standard one; a call's tier is read from
# its span (llm_calls.service_tier, names normalized in conventions.yaml).
TIERS = ("batch", "flex", "priority")


class PriceRow(Rates):
    """A price as it was in force over a date range (effective_from inclusive, effective_to exclusive;
    an open end is unbounded), with its service tiers."""

    effective_from: date | None = None
    effective_to: date | None = None
    tiers: dict[str, Rates] = Field(default_factory=dict, description="batch, flex, priority: that tier's rates")

    @model_validator(mode="after")
    def _known_tiers(self):
        unknown = sorted(set(self.tiers) - set(TIERS))
        if unknown:  # a misspelt tier would silently never match a call
            raise ValueError(f"unknown service tier {', '.join(unknown)} (tiers: {', '.join(TIERS)})")
        return self


class ModelPrice(PriceRow):
    """The current price of a model (the top-level fields) and the earlier ones (history)."""

    mode: str | None = None
    aliases: list[str] = Field(default_factory=list, description="other names of this model (yours, a gateway's)")
    deprecated: date | None = None
    note: str | None = None
    history: list[PriceRow] = Field(default_factory=list, description="earlier prices, each with its date range")

    def rows(self) -> list[PriceRow]:
        """Every price row of the model, the current one first."""
        current = PriceRow.model_validate(self.model_dump(include=set(PriceRow.model_fields)))
        return [current, *self.history]


class VolumeTier(_Strict):
    above_tokens: int = Field(ge=0, description="tokens (input + output) per calendar month past which the discount applies")
    discount_pct: float = Field(gt=0, le=100)


class Contract(_Strict):
    """Negotiated terms from the user's price file: a percentage discount, a committed rate for a
    model, volume tiers; for a provider or a model (a model's contract wins over its provider's)."""

    name: str | None = None
    provider: str | None = None
    model: str | None = None
    discount_pct: float | None = Field(None, ge=0, le=100)
    rates: Rates | None = Field(None, description="committed-use rates (USD per 1M tokens) replacing the list price")
    volume_tiers: list[VolumeTier] = Field(default_factory=list)
    effective_from: date | None = None
    effective_to: date | None = None

    @model_validator(mode="after")
    def _scoped(self):
        if not self.provider and not self.model:
            raise ValueError("a contract names a provider or a model")
        if self.rates is not None and not self.model:
            raise ValueError("committed rates are per model: name the model")
        return self

    def label(self) -> str:
        return self.name or "contract " + "/".join(x for x in (self.provider, self.model) if x)

    def terms(self) -> str:
        """The terms in words, for price sources and `pricing show`."""
        parts = []
        if self.rates is not None:
            parts.append("committed rates " + ", ".join(f"{k} {v:g}" for k, v in self.rates.model_dump(exclude_none=True).items()
                                                        if not isinstance(v, dict)))
        if self.discount_pct:
            parts.append(f"{self.discount_pct:g}% off")
        for t in sorted(self.volume_tiers, key=lambda t: t.above_tokens):
            parts.append(f"{t.discount_pct:g}% off tokens past {t.above_tokens:,}/month")
        dates = ""
        if self.effective_from or self.effective_to:
            dates = f" ({self.effective_from or '...'} to {self.effective_to or '...'})"
        return (", ".join(parts) or "no terms") + dates


class Provider(_Strict):
    aliases: list[str] = Field(default_factory=list, description="provider names seen in telemetry")
    bills_as: str | None = Field(None, description="the provider code its bills carry (billing.provider)")


class GpuPrice(_Strict):
    usd_per_hour: float = Field(gt=0)
    basis: str | None = None
    match: list[str] = Field(default_factory=list, description="regexes matched against the GPU's model name")


class GpuHour(_Strict):
    as_of: date | None = None
    source: str | None = None
    prices: dict[str, GpuPrice] = Field(default_factory=dict)


class CatalogFile(_Strict):
    """The shape of prices.yaml and of a user's override file (every part optional in the latter)."""

    as_of: date | None = None
    source: str | None = None
    how_to_refresh: str | None = None
    currency: str = "USD"
    unit: str = "USD per 1M tokens"
    providers: dict[str, Provider] = Field(default_factory=dict)
    gpu_hour: GpuHour = Field(default_factory=GpuHour)
    models: dict[str, dict[str, ModelPrice]] = Field(default_factory=dict)
    contracts: list[Contract] = Field(default_factory=list, description="negotiated terms (a user's price file)")


@dataclass(frozen=True)
class PriceEntry:
    provider: str
    model: str
    price: ModelPrice
    origin: str  # "catalog 2026-11-22" for bundled prices, the override file's name otherwise

    @property
    def source(self) -> str:
        """What llm_calls.price_source records: where the price came from."""
        return f"{self.origin}: {self.provider}/{self.model}"


@dataclass(frozen=True)
class GpuEntry:
    name: str
    price: GpuPrice
    origin: str


# How a name is successively reduced to find its catalog entry; every step's result is tried in turn.
# Order matters: a path prefix hides everything else, and a date comes off before a short version.
# The third field says whether the step drops a date or version, i.e. may change which model it is.
NAME_STEPS: list[tuple[re.Pattern, str, bool]] = [
    (re.compile(r"^.*/"), "", False),                                   # openai/gpt-4o, models/gemini-2.5-pro, ARNs
    (re.compile(r"^(ft:[^:]+):.*$"), r"\1", False),                     # ft:gpt-4o-mini-2024-07-18:org::id
    (re.compile(r"^ft:"), "", False),
    (re.compile(r"^(us|eu|apac|ap|jp|au|ca|global|us-gov)\."), "", False),  # Bedrock cross-region profiles
    (re.compile(r"^(anthropic|amazon|meta|mistral|cohere|ai21|deepseek|qwen|openai|writer|twelvelabs)\."), "", False),
    (re.compile(r"(-v\d+(:\d+)?|:\d+)$"), "", False),                   # Bedrock API version: -v1:0, -v2
    (re.compile(r"@.*$"), "", True),                                    # Vertex: claude-3-5-haiku@20241022
    (re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$"), "", True),             # -2024-08-06, -20250929
    (re.compile(r"-(\d{3,4})$"), "", True),                             # -0613, -002, -2411
    (re.compile(r"-latest$"), "", True),
]
_DOTTED_NUMBER = re.compile(r"(?<=\d)\.(?=\d)")


def canon(name: str) -> str:
    """Case and the claude-3.5 / claude-3-5 spelling do not distinguish models."""
    return _DOTTED_NUMBER.sub("-", name.strip().lower())


def name_variants(name: str) -> list[tuple[str, bool]]:
    """(key, dropped): the name, then each reduction of it (canonical form, no repeats); `dropped`
    says a date or version was removed on the way."""
    current = name.strip().lower()
    out = [(canon(current), False)]
    dropped = False
    for pattern, repl, drops in NAME_STEPS:
        reduced = pattern.sub(repl, current)
        if reduced != current:
            dropped = dropped or drops
            current = reduced
            key = canon(current)
            if key and key not in {k for k, _ in out}:
                out.append((key, dropped))
    if not dropped and not out[-1][0].endswith("-latest"):
        out.append((out[-1][0] + "-latest", False))  # "mistral-large" is listed as mistral-large-latest
    return out


def base_model(name: str | None) -> str | None:
    """The model without provider prefix, region, API version, date or version, lower case: what a
    bill and a trace of the same model have in common (gpt-4o-2024-08-06 -> gpt-4o,
    us.anthropic.claude-sonnet-4-5-20250929-v1:0 -> claude-sonnet-4-5). Compare with canon()."""
    if name is None or not str(name).strip():
        return None
    current = str(name).strip().lower()
    for pattern, repl, _ in NAME_STEPS:
        reduced = pattern.sub(repl, current)
        if reduced:
            current = reduced
    return current


def _override(old: ModelPrice, new: ModelPrice) -> ModelPrice:
    """An override changes only the fields it gives. One that gives a new effective_from (a price
    change from that date) keeps the price it replaces as history, in force until then."""
    given = new.model_dump(exclude_unset=True)
    merged = old.model_copy(update={k: getattr(new, k) for k in given})
    if new.effective_from is not None and "history" not in given and new.effective_from != old.effective_from:
        before = old.rows()[0].model_copy(update={"effective_to": new.effective_from})
        merged = merged.model_copy(update={"history": [before, *old.history]})
    return merged


def _origin(catalog: CatalogFile, path: Path | None) -> str:
    return f"catalog {catalog.as_of}" if path is None else path.name


class Catalog:
    """Prices from the bundled file, overridden and extended by an optional user file."""

    def __init__(self, bundled: CatalogFile, override: CatalogFile | None = None, override_path: Path | None = None):
        self.as_of = bundled.as_of
        self.source = bundled.source
        self.how_to_refresh = bundled.how_to_refresh
        self.currency = bundled.currency
        self.gpu_as_of = bundled.gpu_hour.as_of
        self.gpu_source = bundled.gpu_hour.source
        self.override_path = override_path
        providers = dict(bundled.providers)
        entries: dict[tuple[str, str], PriceEntry] = {}
        gpus: dict[str, GpuEntry] = {}
        layers = [(bundled, None)] + ([(override, override_path)] if override is not None else [])
        for layer, path in layers:
            origin = _origin(bundled if path is None else layer, path)
            for name, provider in layer.providers.items():
                old = providers.get(name)
                providers[name] = provider if old is None else Provider(
                    aliases=list(dict.fromkeys(old.aliases + provider.aliases)),
                    bills_as=provider.bills_as or old.bills_as)
            for provider, models in layer.models.items():
                for model, price in models.items():
                    old = entries.get((provider, model))
                    if old is not None:  # an override changes only the fields it gives
                        price = _override(old.price, price)
                    entries[(provider, model)] = PriceEntry(provider, model, price, origin)
            for name, gpu in layer.gpu_hour.prices.items():
                old = gpus.get(name)
                if old is not None:
                    gpu = old.price.model_copy(update=gpu.model_dump(exclude_unset=True))
                gpus[name] = GpuEntry(name, gpu, origin)
        self.providers = providers
        self.contracts: list[Contract] = [c for layer, _ in layers for c in layer.contracts]
        self._rank = {name: i for i, name in enumerate(providers)}
        self._family = {canon(a): name for name, p in providers.items() for a in [name, *p.aliases]}
        self._entries = entries
        self._gpus = gpus
        self._gpu_patterns = [(re.compile(p, re.I), e) for e in gpus.values() for p in e.price.match]
        # key -> [(how, entry)]: how = 0 for the id or an alias, 1 for a reduction that keeps the
        # model (prefix, region, API version), 2 for one that drops its date or version.
        self._index: dict[str, list[tuple[int, PriceEntry]]] = {}
        for entry in sorted(entries.values(), key=lambda e: (self._rank.get(e.provider, len(providers)), e.model)):
            exact = {canon(entry.model), *(canon(a) for a in entry.price.aliases)}
            keys = [(k, 0) for k in sorted(exact)]
            keys += [(k, 2 if dropped else 1) for k, dropped in name_variants(entry.model)
                     if k not in exact and not k.endswith("-latest")]
            for key, how in keys:
                self._index.setdefault(key, []).append((how, entry))

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, override: str | Path | None = None) -> "Catalog":
        bundled = _bundled()
        if override is None:
            return cls(bundled)
        path = Path(override)
        return cls(bundled, read_catalog_file(path), path)

    def provenance(self) -> dict:
        """What every output records of the prices it used: the bundled catalog (source, date, content
        hash), the user's price file, if any (path and content hash), and its contract terms."""
        import hashlib

        def sha(path: Path) -> str:
            return hashlib.sha256(path.read_bytes()).hexdigest()

        return {
            "catalog": "bundled", "as_of": str(self.as_of) if self.as_of else None, "source": self.source,
            "sha256": sha(PRICES_FILE), "gpu_hour_as_of": str(self.gpu_as_of) if self.gpu_as_of else None,
            "gpu_hour_source": self.gpu_source,
            "prices_file": str(self.override_path) if self.override_path else None,
            "prices_file_sha256": sha(self.override_path) if self.override_path else None,
            "contracts": [f"{c.label()}: {c.terms()}" for c in self.contracts],
        }

    # ------------------------------------------------------------------ models

    def entries(self, provider: str | None = None) -> list[PriceEntry]:
        family = self.family(provider) if provider else None
        if provider and family is None:
            family = provider
        rows = [e for e in self._entries.values() if family is None or e.provider == family]
        return sorted(rows, key=lambda e: (self._rank.get(e.provider, len(self._rank)), e.provider, e.model))

    def family(self, provider: str | None) -> str | None:
        """The catalog provider for a telemetry provider name (aws.bedrock -> bedrock), or None. A name
        not listed is tried without its last dotted part, then the next: the Vercel AI SDK writes the
        provider and its API (openai.responses -> openai, google.vertex.chat -> google.vertex)."""
        if not provider:
            return None
        name = canon(provider)
        while True:
            family = self._family.get(name)
            if family is not None or "." not in name:
                return family
            name = name.rsplit(".", 1)[0]

    def bills_as(self, provider: str | None) -> str | None:
        """The billing.provider code that bills calls of this telemetry provider (aws.bedrock -> aws)."""
        family = self.family(provider)
        if family is None:
            return canon(provider) if provider else None
        return self.providers[family].bills_as or family

    def resolve(self, model: str | None, provider: str | None = None) -> PriceEntry | None:
        """The entry for a model name as telemetry or a bill writes it; None when unknown."""
        if model is None or not str(model).strip():
            return None
        family = self.family(provider)
        if family is None and "/" in model:  # "anthropic/claude-sonnet-4.5" names its provider
            family = self.family(model.split("/", 1)[0])
        candidates = []
        for order, (key, dropped) in enumerate(name_variants(str(model))):
            for how, entry in self._index.get(key, ()):
                # A name whose own date was dropped matches only entries listed under the bare name:
                # another dated version (mistral-large-2411 vs mistral-large-2512) may cost differently.
                if not (dropped and how == 2):
                    candidates.append((entry.provider != family, how == 2, order, how,
                                       self._rank.get(entry.provider, len(self._rank)), len(entry.model), entry.model, entry))
        return min(candidates, key=lambda c: c[:-1])[-1] if candidates else None

    def contracts_for(self, entry: PriceEntry) -> list[tuple[int, bool, Contract]]:
        """(index, per model, contract) of the contracts that cover this entry: a model's own (its
        name resolves to the entry) and its provider's."""
        out = []
        for i, c in enumerate(self.contracts):
            if c.model is not None:
                hit = self.resolve(c.model, c.provider)
                if hit is not None and (hit.provider, hit.model) == (entry.provider, entry.model):
                    out.append((i, True, c))
            elif (self.family(c.provider) or canon(c.provider)) == entry.provider:
                out.append((i, False, c))
        return out

    # ------------------------------------------------------------------ GPUs

    def gpus(self) -> list[GpuEntry]:
        return list(self._gpus.values())

    def gpu(self, name: str | None) -> GpuEntry | None:
        """A GPU price by catalog name ("H100") or by the device's model name ("NVIDIA H100 80GB HBM3")."""
        if not name:
            return None
        for key, entry in self._gpus.items():
            if key.lower() == name.strip().lower():
                return entry
        for pattern, entry in self._gpu_patterns:
            if pattern.search(name):
                return entry
        return None


def read_catalog_file(path: Path) -> CatalogFile:
    """A user's price file (YAML or JSON, the shape of prices.yaml), validated."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceError(f"{path}: cannot read price file: {exc}") from exc
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text)
    except json.JSONDecodeError as exc:
        raise PriceError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise PriceError(f"{path}: {where}not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise PriceError(f"{path}: a price file is a mapping with models: and/or gpu_hour:")
    try:
        return CatalogFile.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PriceError(f"{path}: {where}: {first['msg']}") from exc


@lru_cache(maxsize=1)
def _bundled() -> CatalogFile:
    return read_catalog_file(PRICES_FILE)


def load_catalog(prices: str | Path | None = None, settings=None) -> Catalog:
    """The catalog for a run: an explicit --prices file, else the config's `prices`, else the bundled one."""
    chosen = prices if prices is not None else getattr(settings, "prices", None)
    return Catalog.load(chosen)
