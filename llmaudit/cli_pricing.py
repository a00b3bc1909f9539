"""`llmaudit pricing`: look at the price catalog (bundled, or overridden with --prices FILE), and at how
an audit priced a model.

Registered by the main CLI with `app.add_typer(pricing_app, name="pricing")`.
"""

from __future__ import annotations

from datetime import datetime
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
    provider: Optional[str] = typer.Option(None, "--provider", metavar="NAME", help="Only this provider (openai, anthropic, bedrock, aws.bedrock, ...)."),
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
    tier: Optional[str] = typer.Option(None, "--tier", metavar="TIER", help="A service tier (standard, batch, flex, priority): say which rates price a call at it."),
    on: Optional[datetime] = typer.Option(None, "--on", metavar="DATE", formats=["%Y-%m-%d"], help="A date (YYYY-MM-DD): mark the price in force on it."),
    prices: Optional[Path] = PricesOption,
    config: Optional[Path] = ConfigOption,
):
    """How a model is priced: its rates at each service tier and date range (the one that applies
    marked), the long-context tier, and the contract terms of your price file that apply (discount,
    committed rates, volume tiers); for a self-hosted model, the GPU time it is priced from.
    Exit 2 when the model is neither in the catalog nor priced by the audit given with --db."""
    on = on.date() if on is not None else None
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
    rows = p.rows()
    chosen = _in_force(rows, on)
    if chosen is None:
        out.print(f"  no price in force on {on}: calls then are unpriced")
    else:
        if on is not None or len(rows) > 1:
            out.print(f"  {_range(chosen)}" + (f" (applies on {on})" if on is not None else ""))
        for label, value in [("input", chosen.input), ("cached input", chosen.cached_input),
                             ("cache write", chosen.cache_write), ("cache write 1h", chosen.cache_write_1h),
                             ("output", chosen.output)]:
            out.print(f"  {label:<14}{_usd(value):>10}  USD per 1M tokens")
        _print_long(chosen, "  ")
        for name, rates in sorted(chosen.tiers.items()):
            _print_rates(f"{name} tier", rates, "  ")
        if tier is not None:
            if tier == "standard" or tier in chosen.tiers:
                out.print(f"  a {tier}-tier call is priced at the {tier} rates")
            else:
                out.print(f"  no {tier} rates: a {tier}-tier call is priced at the standard rates")
    for row in rows:
        if row is not chosen:
            out.print(f"  also {_range(row)}:")
            _print_rates("standard", row, "    ")
            for name, rates in sorted(row.tiers.items()):
                _print_rates(f"{name} tier", rates, "    ")
    terms = catalog.contracts_for(entry)
    if terms:
        # Of the contracts in force (on --on, else at any date), the model's own wins over its provider's,
        # the first listed over later ones.
        live = [t for t in terms if on is None or _contract_in_force(t[2], on)]
        winner = min(live, key=lambda t: (not t[1], t[0])) if live else None
        for index, per_model, contract in terms:
            if winner is not None and index == winner[0]:
                status = "applies" + (f" on {on}" if on is not None else "")
            elif on is not None and not _contract_in_force(contract, on):
                status = f"not in force on {on}"
            else:
                status = "overridden by the model's own contract"
            out.print(f"  contract      {contract.label()}: {contract.terms()} ({status})", soft_wrap=True)
            if contract.rates is not None:
                out.print("                committed rates replace the standard tier's; calls at other tiers keep "
                          "their tier's rates", soft_wrap=True)
    if p.mode:
        out.print(f"  mode          {p.mode}")
    if p.aliases:
        out.print(f"  aliases       {', '.join(p.aliases)}")
    if p.deprecated:
        out.print(f"  deprecated    {p.deprecated}")
    if p.note:
        out.print(f"  note          {p.note}")
    out.print(f"  source        {entry.source}", soft_wrap=True)


def _contract_in_force(contract, on) -> bool:
    return (contract.effective_from is None or contract.effective_from <= on) and (
        contract.effective_to is None or on < contract.effective_to)


def _range(row) -> str:
    if row.effective_from and row.effective_to:
        return f"in force from {row.effective_from} until (before) {row.effective_to}"
    if row.effective_from:
        return f"in force from {row.effective_from}"
    if row.effective_to:
        return f"in force before {row.effective_to}"
    return "in force on every date"


def _in_force(rows, on):
    """The row in force on a date (None: the current one, the first)."""
    if on is None:
        return rows[0]
    for row in rows:
        if (row.effective_from is None or row.effective_from <= on) and (row.effective_to is None or on < row.effective_to):
            return row
    return None


def _print_rates(label: str, r, indent: str) -> None:
    """One line of rates (USD per 1M tokens), and the long-context tier's below it."""
    fields = [("input", r.input), ("cached input", r.cached_input), ("cache write", r.cache_write),
              ("cache write 1h", r.cache_write_1h), ("output", r.output)]
    text = ", ".join(f"{k} {_usd(v)}" for k, v in fields if v is not None) or "no rates"
    out.print(f"{indent}{label + ':':<16}{text}  USD per 1M tokens", soft_wrap=True)
    _print_long(r, indent + "  ")


def _print_long(r, indent: str) -> None:
    lc = r.long_context
    if lc is not None:
        fields = [("input", lc.input), ("cached input", lc.cached_input), ("cache write", lc.cache_write),
                  ("cache write 1h", lc.cache_write_1h), ("output", lc.output)]
        out.print(f"{indent}above {lc.above_input_tokens:,} input tokens: "
                  + ", ".join(f"{k} {_usd(v)}" for k, v in fields if v is not None), soft_wrap=True)


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
