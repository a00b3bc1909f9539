"""The llmaudit command line: a thin layer over the library (ingest, normalize, rules, reports)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from llmaudit import __version__
from llmaudit.config import ConfigError, Settings, load_settings
from llmaudit.ingest.pipeline import IngestReport
from llmaudit.ingest.sources import InputError
from llmaudit.store import Store, StoreError

app = typer.Typer(
    name="llmaudit",
    help="Find and price the waste in LLM systems: traces, bills and GPU metrics in, findings in dollars out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2
# Not on a terminal (pipes, CI logs): a fixed width, so tables are neither cut nor different per machine.
out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)

DbOption = typer.Option(None, "--db", help="DuckDB store file (created if missing). Default: a temporary store.")
ConfigOption = typer.Option(None, "--config", help="Config file (default: ./llmaudit.toml or [tool.llmaudit] in ./pyproject.toml).")


def fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _settings(config: Optional[Path]) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc))


@contextmanager
def open_store(db: Optional[Path], *, read_only: bool = False):
    try:
        store = Store(db, read_only=read_only)
    except StoreError as exc:
        raise fail(str(exc))
    try:
        yield store
    finally:
        store.close()


def version_callback(value: bool):
    if value:
        out.print(f"llmaudit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True, help="Show the version."),
):
    """llmaudit: a FinOps audit for LLM systems."""


def run_ingest(store: Store, paths: list[str], *, fmt: Optional[str], strict: bool, quiet: bool, settings: Settings) -> IngestReport:
    """Ingest files with progress on stderr, then rebuild the derived tables."""
    from llmaudit.ingest.formats import by_name
    from llmaudit.ingest.pipeline import Ingestor
    from llmaudit.ingest.sources import expand_paths
    from llmaudit.normalize.derive import derive
    from llmaudit.report.progress import ingest_progress

    try:
        sources = expand_paths(paths)
        if fmt:
            by_name(fmt)
    except (InputError, KeyError) as exc:
        raise fail(str(exc).strip("'\""))
    if not sources:
        raise fail(f"no input files found in {', '.join(paths)}")
    total = sum(s.size for s in sources)
    with ingest_progress(err, total, enabled=not quiet) as on_progress:
        ingestor = Ingestor(store, force_format=fmt, strict=strict, on_progress=on_progress)
        report = ingestor.run(sources)
    derive(store, settings)
    return report


@app.command()
def ingest(
    paths: list[str] = typer.Argument(..., help="Files, directories (recursive), globs; .gz is read as is."),
    db: Optional[Path] = DbOption,
    fmt: Optional[str] = typer.Option(None, "--format", help="Force one input format (e.g. otlp-jsonl) instead of detecting it per file."),
    strict: bool = typer.Option(False, "--strict", help="Any rejected record fails its file (nothing stored from it) and exits 2."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    config: Optional[Path] = ConfigOption,
):
    """Read traces, billing exports and metrics into a DuckDB store."""
    from llmaudit.report.terminal import print_ingest

    settings = _settings(config)
    with open_store(db) as store:
        report = run_ingest(store, paths, fmt=fmt, strict=strict, quiet=quiet, settings=settings)
        if not quiet:
            print_ingest(out, report, store, db)
    if strict and report.failed_strict:
        raise typer.Exit(EXIT_INPUT)


@app.command()
def analyze(
    paths: list[str] = typer.Argument(..., help="Files, directories (recursive), globs."),
    db: Optional[Path] = DbOption,
    fmt: Optional[str] = typer.Option(None, "--input-format", help="Force one input format."),
    strict: bool = typer.Option(False, "--strict", help="Any rejected record is an input error (exit 2)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    config: Optional[Path] = ConfigOption,
):
    """Ingest PATHs and report what the system spends and where."""
    from llmaudit.report.terminal import print_ingest

    settings = _settings(config)
    with open_store(db) as store:
        report = run_ingest(store, paths, fmt=fmt, strict=strict, quiet=quiet, settings=settings)
        print_ingest(out, report, store, db)
    if strict and report.failed_strict:
        raise typer.Exit(EXIT_INPUT)


@app.command()
def query(
    sql: str = typer.Argument(..., help="A read-only SQL query over the store (tables: spans, llm_calls, retrievals, requests, ...)."),
    db: Path = typer.Option(..., "--db", help="The DuckDB store file."),
    output: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
    config: Optional[Path] = ConfigOption,
):
    """Run read-only SQL against a store."""
    from llmaudit.normalize.derive import ensure_derived
    from llmaudit.report.terminal import print_query

    if output not in ("table", "csv", "json"):
        raise fail(f"--format must be table, csv or json, not {output!r}")
    if not db.exists():
        raise fail(f"{db}: no such store")
    settings = _settings(config)
    with open_store(db) as store:  # bring derived tables up to date, then reopen read-only
        ensure_derived(store, settings)
    import duckdb

    with open_store(db, read_only=True) as store:
        try:
            result = store.con.execute(sql)
            columns = [d[0] for d in result.description or []]
            rows = result.fetchall()
        except duckdb.Error as exc:
            raise fail(f"query failed: {exc}")
    print_query(out, columns, rows, output)


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(app())
