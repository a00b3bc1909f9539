"""`llmaudit pricing`: look at the price catalog (bundled, or overridden with --prices FILE), and at how
an audit priced a model.

Registered by the main CLI with `app.add_typer(pricing_app, name="pricing")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from llmaudit.cli_options import ConfigOption, PricesOption, command, db_option, new_app, settings_for
from llmaudit.cli_output import EXIT_INPUT, fail, out
from llmaudit.pricing.catalog import Catalog, load_catalog

pricing_app = new_app("The price catalog: token prices per model and GPU-hour prices, bundled and dated.")


def catalog_for(prices: Optional[Path], config: Optional[Path]) -> Catalog:
    """The catalog for a command: --prices FILE, else the config's `prices`, else the bundled one.
    A price file that cannot be used exits with status 2 and a message naming the file and entry."""
    return load_catalog(settings=settings_for(config, prices))


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _source(catalog: Catalog) -> str:
    text = f"source: {catalog.source}"
    if catalog.override_path is not None:
        text += f"; overridden by {catalog.override_path}"
    return text


@command(pricing_app, "list")
def list_prices(
    provider: Optional[str] = typer.Option(None, "--provider", help="Only this provider (openai, anthropic, bedrock, aws.bedrock, ...)."),
    gpus: bool = typer.Option(False, "--gpus", help="List GPU-hour prices instead of token prices."),
    prices: Optional[Path] = PricesOption,
    config: Optional[Path] = ConfigOption,
):
    """Table of the catalog's token prices (or, with --gpus, GPU-hour prices)."""
    catalog = catalog_for(prices, config)
    if gpus:
        table = Table(title=f"GPU-hour prices as of {catalog.gpu_as_of}", title_justify="left")
        for name in ("accelerator", "USD/hour", "basis", "matches"):
            table.add_column(name, justify="right" if name == "USD/hour" else "left")
        for gpu in catalog.gpus():
            table.add_row(gpu.name, _usd(gpu.price.usd_per_hour), gpu.price.basis or "", ", ".join(gpu.price.match))
        out.print(table)
        out.print(f"source: {catalog.gpu_source}", soft_wrap=True)
        return
    entries = catalog.entries(provider)
    if provider and not entries:
        known = ", ".join(catalog.providers)
        raise fail(f"no prices for provider {provider!r}; providers in the catalog: {known}")
    table = Table(title=f"Token prices as of {catalog.as_of}, USD per 1M tokens", title_justify="left")
    for name in ("provider", "model", "input", "cached input", "cache write", "output", "mode"):
        table.add_column(name, justify="right" if name in ("input", "cached input", "cache write", "output") else "left")
    for e in entries:
        p = e.price
        table.add_row(e.provider, e.model, _usd(p.input), _usd(p.cached_input), _usd(p.cache_write), _usd(p.output), p.mode or "")
    out.print(table)
    out.print(f"{len(entries)} models; {_source(catalog)}", soft_wrap=True)


@command(pricing_app, "show")
def show_price(
    model: str = typer.Argument(..., metavar="MODEL", help="A model name as traces or bills write it (gpt-4o-2024-08-06, us.anthropic.claude-...)."),
    provider: Optional[str] = typer.Option(None, "--provider", metavar="NAME", help="The provider the call went to (prefers its prices)."),
    db: Optional[Path] = db_option(detail=" of an audit: also say how that audit priced this model's calls"),
    prices: Optional[Path] = PricesOption,
    config: Optional[Path] = ConfigOption,
):
    """How a model is priced: its catalog entry, or for a self-hosted model the GPU time it is priced from.
    Exit 2 when the model is neither in the catalog nor priced by the audit given with --db."""
    catalog = catalog_for(prices, config)
    entry = catalog.resolve(model, provider)
    audited = _audit_pricing(db, model) if db is not None else []
    for line in audited:
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if entry is None:
        if audited:
            return
        gpus = ", ".join(f"{g.name} ${g.price.usd_per_hour:g}/h" for g in catalog.gpus()[:3])
        out.print(f"unknown model {model!r}{f' (provider {provider})' if provider else ''}: no token price in the catalog "
                  f"(as of {catalog.as_of}).\n"
                  f"  - Served by a self-hosted server (the provider is vllm, tgi, sglang, ollama, ... in the traces) and "
                  f"with GPU metrics given, its calls are priced from GPU time: the GPU-hours the metrics show while "
                  f"they ran, at the catalog's GPU-hour price ({gpus}, ...; `llmaudit pricing list --gpus`), shared by "
                  f"call duration.\n"
                  f"  - Otherwise its calls stay unpriced (never $0): add it to a price file and pass --prices FILE.\n"
                  f"  - `llmaudit pricing show MODEL --db FILE` says how an audit priced it.",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INPUT)
    p = entry.price
    out.print(f"{model} -> {entry.provider}/{entry.model}")
    rows = [
        ("input", _usd(p.input)), ("cached input", _usd(p.cached_input)), ("cache write", _usd(p.cache_write)),
        ("output", _usd(p.output)),
    ]
    for label, value in rows:
        out.print(f"  {label:<13} {value:>10}  USD per 1M tokens")
    if p.long_context is not None:
        lc = p.long_context
        out.print(f"  above {lc.above_input_tokens:,} input tokens: input {_usd(lc.input)}, cached input "
                  f"{_usd(lc.cached_input)}, cache write {_usd(lc.cache_write)}, output {_usd(lc.output)}")
    if p.mode:
        out.print(f"  mode          {p.mode}")
    if p.aliases:
        out.print(f"  aliases       {', '.join(p.aliases)}")
    if p.deprecated:
        out.print(f"  deprecated    {p.deprecated}")
    if p.note:
        out.print(f"  note          {p.note}")
    out.print(f"  source        {entry.source}", soft_wrap=True)


def _audit_pricing(db: Path, model: str) -> list[str]:
    """How the audit in a store priced the calls to this model (by price source), as lines to print."""
    import duckdb

    from llmaudit.store import Store, StoreError

    if not db.exists():
        raise fail(f"{db}: no such store")
    try:
        with Store(db, sandbox=True) as store:
            if not store.table_exists("llm_calls"):
                return []
            rows = store.con.execute("""
                SELECT coalesce(self_hosted, FALSE), provider, count(*), count(cost_usd), sum(cost_usd),
                       any_value(price_source ORDER BY price_source)
                FROM llm_calls WHERE model = $m OR response_model = $m
                GROUP BY ALL ORDER BY 1 DESC, provider NULLS LAST""", {"m": model}).fetchall()
    except (StoreError, duckdb.Error) as exc:
        raise fail(f"{db}: {exc}")
    lines = []
    for self_hosted, prov, calls, priced, cost, source in rows:
        how = "self-hosted, priced from GPU time" if self_hosted else "priced per token"
        money = f"${cost:,.2f}" if cost is not None else "unpriced"
        lines.append(f"in {db}: {calls:,} call(s) to {model} via {prov or 'an unknown provider'}, {how}: {money}"
                     f" ({priced:,} priced; {source or 'no price source'})")
    if not rows:
        lines.append(f"in {db}: no call to {model}")
    return lines
