"""`llmaudit pricing`: look at the price catalog (bundled, or overridden with --prices FILE).

Registered by the main CLI with `app.add_typer(pricing_app, name="pricing")`. Commands that price
calls take the same option: declare `prices: Optional[Path] = PricesOption` and call
`catalog_for(prices, settings)`, which exits with status 2 and the file's error on a bad price file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from llmaudit.cli_output import fail, out
from llmaudit.config import ConfigError, Settings, load_settings
from llmaudit.pricing.catalog import Catalog, PriceError, load_catalog

pricing_app = typer.Typer(
    help="The price catalog: token prices per model and GPU-hour prices, bundled and dated.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PricesOption = typer.Option(
    None, "--prices",
    help="Price file (YAML or JSON, the shape of the bundled catalog) overriding and extending it. "
         "Default: `prices` in llmaudit.toml, else the bundled catalog.",
)
ConfigOption = typer.Option(None, "--config", help="Config file (default: ./llmaudit.toml or [tool.llmaudit] in ./pyproject.toml).")


def catalog_for(prices: Optional[Path], settings: Settings | None = None) -> Catalog:
    """The catalog for a command: --prices FILE, else the config's `prices`, else the bundled one.
    A price file that cannot be used exits with status 2 and a message naming the file and entry."""
    if prices is not None and not Path(prices).is_file():
        raise fail(f"{prices}: no such price file")
    try:
        return load_catalog(prices, settings)
    except PriceError as exc:
        raise fail(str(exc))


def _settings(config: Optional[Path]) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc))


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _source(catalog: Catalog) -> str:
    text = f"source: {catalog.source}"
    if catalog.override_path is not None:
        text += f"; overridden by {catalog.override_path}"
    return text


@pricing_app.command("list")
def list_prices(
    provider: Optional[str] = typer.Option(None, "--provider", help="Only this provider (openai, anthropic, bedrock, aws.bedrock, ...)."),
    gpus: bool = typer.Option(False, "--gpus", help="List GPU-hour prices instead of token prices."),
    prices: Optional[Path] = PricesOption,
    config: Optional[Path] = ConfigOption,
):
    """Table of the catalog's token prices (or, with --gpus, GPU-hour prices)."""
    catalog = catalog_for(prices, _settings(config))
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


@pricing_app.command("show")
def show_price(
    model: str = typer.Argument(..., help="A model name as traces or bills write it (gpt-4o-2024-08-06, us.anthropic.claude-...)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="The provider the call went to (prefers its prices)."),
    prices: Optional[Path] = PricesOption,
    config: Optional[Path] = ConfigOption,
):
    """The catalog entry a model name resolves to, or exit 2 for a model the catalog does not know."""
    catalog = catalog_for(prices, _settings(config))
    entry = catalog.resolve(model, provider)
    if entry is None:
        raise fail(f"unknown model {model!r}{f' (provider {provider})' if provider else ''}: not in the price catalog "
                    f"(as of {catalog.as_of}); its calls stay unpriced. Add it to a price file and pass --prices FILE.")
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
