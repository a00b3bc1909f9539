"""Rebuild the token prices of prices.yaml from LiteLLM's model_prices_and_context_window.json.

    python -m llmaudit.pricing.refresh model_prices_and_context_window.json \\
        --source "LiteLLM main, downloaded 2026-11-22" [--as-of 2026-11-22] [--out FILE]

Get the JSON from https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json
(or, offline, `litellm/model_prices_and_context_window_backup.json` inside a litellm wheel). Only the
`models` part is rebuilt: the `providers` table and the `gpu_hour` prices of the current file (LiteLLM
has neither) are carried over unchanged. The output is deterministic: same input, same bytes.

History is kept, never overwritten: when a model's price differs from the one in the current file, the
old price is appended to the model's `history` with `effective_to` = the new --as-of date, and the new
price is in force from that date (`effective_from`). A price that only gains a field the old one did not
have (a tier, a 1-hour cache-write rate) is more detail, not a change. A model the new table no longer
lists is dropped, as before (keep it in your own price file to price old calls to it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from datetime import date
from pathlib import Path

import yaml

from llmaudit.pricing.catalog import PRICES_FILE
from llmaudit.yamlfile import load_yaml

# LiteLLM provider -> ours. Only these are kept: the providers whose traces and bills llmaudit reads.
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex_ai-language-models": "vertex_ai",
    "vertex_ai-anthropic_models": "vertex_ai",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "xai": "xai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "azure": "azure",
}
# LiteLLM keys routed as "<route>/<model>"; the route is dropped from our id. Keys with more path
# segments than that (bedrock/us-east-1/..., azure/eu/...) are region- or deployment-specific: skipped.
ROUTES = ("gemini", "mistral", "azure", "deepseek", "xai", "vertex_ai", "bedrock", "cohere", "openai", "anthropic")
MODES = {"chat", "completion", "embedding", "moderation", "responses"}
# LiteLLM field (USD per token) -> ours (USD per 1M tokens).
FIELDS = {
    "input_cost_per_token": "input",
    "cache_read_input_token_cost": "cached_input",
    "cache_creation_input_token_cost": "cache_write",
    "output_cost_per_token": "output",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
}
# LiteLLM's suffix of a service tier's fields -> our tier name (catalog.TIERS).
TIER_SUFFIXES = {"batches": "batch", "flex": "flex", "priority": "priority"}
LONG_CONTEXT = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")
LONG_FIELDS = {
    "input_cost_per_token_above_{n}k_tokens": "input",
    "cache_read_input_token_cost_above_{n}k_tokens": "cached_input",
    "cache_creation_input_token_cost_above_{n}k_tokens": "cache_write",
    "output_cost_per_token_above_{n}k_tokens": "output",
    "cache_creation_input_token_cost_above_1hr_above_{n}k_tokens": "cache_write_1h",
}
# The fields that are a price (what a change of price compares), as opposed to facts about the model.
PRICE_KEYS = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "long_context", "tiers")
PROVIDER_ORDER = ["openai", "anthropic", "gemini", "vertex_ai", "mistral", "deepseek", "xai", "cohere", "bedrock", "azure"]


def per_million(value) -> float:
    # Round away float noise (2.5e-06 * 1e6 = 2.4999999999999996).
    return float(f"{float(value) * 1_000_000:.6g}")


def model_id(key: str) -> str | None:
    head, sep, rest = key.partition("/")
    if not sep:
        return key
    if head in ROUTES and "/" not in rest:
        return rest
    return None


def convert(litellm: dict) -> dict[str, dict[str, dict]]:
    """{provider: {model id: price fields}} from LiteLLM's table."""
    out: dict[str, dict[str, dict]] = {p: {} for p in PROVIDER_ORDER}
    # Unprefixed keys first, so "us.anthropic.x" wins over the same model listed as "bedrock/us.anthropic.x".
    for key in sorted(litellm, key=lambda k: ("/" in k, k)):
        spec = litellm[key]
        if not isinstance(spec, dict) or key == "sample_spec":
            continue
        provider = PROVIDERS.get(spec.get("litellm_provider"))
        if provider is None or spec.get("mode") not in MODES or "input_cost_per_token" not in spec:
            continue
        ident = model_id(key)
        if ident is None or ident in out[provider]:
            continue
        entry = _rates(spec, "")
        tiers = {}
        for suffix, tier in TIER_SUFFIXES.items():
            rates = _rates(spec, "_" + suffix)
            if "input" in rates and "output" in rates:  # a tier without both cannot price a call
                tiers[tier] = rates
        if tiers:
            entry["tiers"] = tiers
        entry["mode"] = spec["mode"]
        if spec.get("deprecation_date"):
            entry["deprecated"] = str(spec["deprecation_date"])
        out[provider][ident] = entry
    return out


def _rates(spec: dict, suffix: str) -> dict:
    """Our rate fields (and long-context tier) from LiteLLM's fields ending in suffix ("" or "_batches")."""
    entry = {ours: per_million(spec[theirs + suffix]) for theirs, ours in FIELDS.items()
             if spec.get(theirs + suffix) is not None}
    thresholds = sorted(int(m.group(1)) for k in spec if (m := LONG_CONTEXT.match(k))
                        and spec.get(k + suffix) is not None)
    if thresholds:
        n = thresholds[0]
        tier = {ours: per_million(spec[pattern.format(n=n) + suffix]) for pattern, ours in LONG_FIELDS.items()
                if spec.get(pattern.format(n=n) + suffix) is not None}
        entry["long_context"] = {"above_input_tokens": n * 1000, **tier}
    return entry


def _changed(old, new) -> bool:
    """A price changed: a field the old price had is different or gone (a field added is not a change)."""
    if isinstance(old, dict):
        return not isinstance(new, dict) or any(_changed(v, new.get(k)) for k, v in old.items())
    if old is None:
        return False
    return new is None or isinstance(new, dict) or float(old) != float(new)


def keep_history(models: dict[str, dict[str, dict]], current: dict, as_of: date) -> dict[str, dict[str, dict]]:
    """The new models with the current file's history carried over and extended (see the module doc)."""
    out = {p: dict(v) for p, v in models.items()}
    for provider, entries in (current or {}).items():
        for ident, old in (entries or {}).items():
            new = out.get(provider, {}).get(ident)
            if new is None:  # no longer listed (LiteLLM marks retired models deprecated rather than dropping them)
                continue
            old_price = {k: old[k] for k in PRICE_KEYS if k in old}
            new_price = {k: new[k] for k in PRICE_KEYS if k in new}
            history = list(old.get("history") or [])
            since = old.get("effective_from")
            if _changed(old_price, new_price) and (since is None or _as_date(since) < as_of):
                before = {**({"effective_from": since} if since else {}), **old_price, "effective_to": as_of}
                history = [before, *history]
                since = as_of
            if since is not None:
                new["effective_from"] = _as_date(since)
            if history:
                new["history"] = history
    return out


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


_BARE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _key(text: str) -> str:
    # JSON strings are valid YAML scalars; ids with ':' '@' '/' are quoted that way.
    return text if _BARE.match(text) and not re.fullmatch(r"[0-9.eE+-]+|true|false|null|yes|no|on|off", text, re.I) else json.dumps(text)


def _value(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if "e" not in f"{value:.6g}" else repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, date):
        return value.isoformat()
    return _key(str(value))


def render(header: dict, providers: dict, gpu_hour: dict, models: dict[str, dict[str, dict]]) -> str:
    lines = [
        "# llmaudit price catalog: token prices in USD per 1M tokens, GPU-hour prices in USD.",
        "# The models part is generated by llmaudit/pricing/refresh.py: edit by refreshing, or override",
        "# entries in your own file (same shape) with --prices FILE / prices = \"FILE\" in llmaudit.toml.",
        "# Fields: input (uncached input), cached_input (cache reads), cache_write (cache creation, 5-minute",
        "# TTL where the provider has several), cache_write_1h (1-hour TTL), output; long_context: prices for a",
        "# whole call whose input exceeds above_input_tokens; tiers: the batch, flex and priority service tiers'",
        "# rates; effective_from / history: the price in force from a date, and the earlier ones (a refresh",
        "# appends a changed price to history). A missing price is unknown, never $0.",
    ]
    top = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=100).rstrip("\n")
    lines.append(top)
    lines.append(yaml.safe_dump({"providers": providers}, sort_keys=False, width=200, default_flow_style=None).rstrip("\n"))
    lines.append(yaml.safe_dump({"gpu_hour": gpu_hour}, sort_keys=False, width=100, default_flow_style=None,
                                allow_unicode=True).rstrip("\n"))
    lines.append("models:")
    for provider in PROVIDER_ORDER:
        entries = models.get(provider) or {}
        if not entries:
            continue
        lines.append(f"  {provider}:")
        for ident in sorted(entries):
            lines.append(f"    {_key(ident)}: {_value(entries[ident])}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json_file", type=Path, help="LiteLLM model_prices_and_context_window.json")
    parser.add_argument("--source", required=True, help="where the JSON came from (URL or package and version)")
    parser.add_argument("--as-of", default=date.today().isoformat(), help="date the prices were retrieved (YYYY-MM-DD)")
    parser.add_argument("--out", type=Path, default=PRICES_FILE, help="catalog to rewrite (default: the bundled one)")
    args = parser.parse_args(argv)
    raw = args.json_file.read_bytes()
    try:
        litellm = json.loads(raw)
    except json.JSONDecodeError as exc:
        print(f"error: {args.json_file}: not valid JSON: {exc}", file=sys.stderr)
        return 2
    current = load_yaml(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    digest = hashlib.sha256(raw).hexdigest()
    header = {
        "as_of": date.fromisoformat(args.as_of),
        "source": f"{args.source} (model_prices_and_context_window.json, sha256 {digest[:16]})",
        "how_to_refresh": "python -m llmaudit.pricing.refresh <model_prices_and_context_window.json> "
                          "--source '<where it came from>' --as-of <YYYY-MM-DD>",
        "currency": "USD",
        "unit": "USD per 1M tokens",
    }
    models = keep_history(convert(litellm), current.get("models") or {}, date.fromisoformat(args.as_of))
    text = render(header, current.get("providers") or {}, current.get("gpu_hour") or {}, models)
    args.out.write_text(text, encoding="utf-8")
    total = sum(len(v) for v in models.values())
    print(f"wrote {args.out}: {total} models from {args.json_file.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
