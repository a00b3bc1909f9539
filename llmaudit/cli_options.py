"""The command line's grammar, defined once: shared options, their choices, help rendering, written files.

Every command takes its shared options from here, so `--format` means the output format, `--db` the
store, `-q` quiet and `--fail-on` a severity in every command that has them. `tests/test_cli_grammar.py`
walks every command's --help to keep it that way.
"""

from __future__ import annotations

import signal
import sys
import threading
from enum import Enum
from pathlib import Path

import typer
from typer.core import TyperCommand, TyperGroup

from llmaudit.cli_output import EXIT_INTERRUPTED, err


# ---------------------------------------------------------------- help rendered literally

class Command(TyperCommand):
    """Plain help: text as written (no markup, so `[tool.llmaudit]` survives), options with their
    metavar and no type tags, arguments named plainly in the usage line (`PATH...`)."""

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_argument_label(param))
        return pieces

    def format_options(self, ctx, formatter) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                if not param.hidden:
                    args.append((_argument_label(param), (param.help or "") + ("" if param.required else " (optional)")))
            else:
                record = param.get_help_record(ctx)
                if record is not None:
                    opts.append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


class Group(TyperGroup):
    """A command group whose help is plain text too, and whose commands exit 130 on Ctrl-C (Click's own
    handling prints "Aborted!" and exits 1, which a CI job cannot tell from a tripped gate)."""

    def invoke(self, ctx):
        interrupted = []

        def on_sigint(signum, frame):
            interrupted.append(signum)
            signal.default_int_handler(signum, frame)

        previous = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, Exception):
            # DuckDB turns Ctrl-C inside a query into its own error: whatever surfaces after one is an interrupt.
            if not interrupted and not isinstance(sys.exc_info()[1], KeyboardInterrupt):
                raise
            err.print("interrupted", markup=False, highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _argument_label(param) -> str:
    label = param.metavar or param.name.upper()
    if param.nargs != 1:
        label += "..."
    return label if param.required else f"[{label}]"


def new_app(help: str, **kwargs) -> typer.Typer:
    """A Typer app (or sub-command group) with llmaudit's help rendering."""
    kwargs.setdefault("cls", Group)
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                       rich_markup_mode=None, context_settings={"max_content_width": 100}, **kwargs)


def command(app: typer.Typer, name: str | None = None, **kwargs):
    return app.command(name, cls=Command, **kwargs)


# ---------------------------------------------------------------- choices (case-insensitive everywhere)

class Severity(str, Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class ReportFormat(str, Enum):
    table = "table"
    json = "json"


class QueryFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


# ---------------------------------------------------------------- the shared options

CONFIG_HELP = "Config file (default: ./llmaudit.toml, else [tool.llmaudit] in ./pyproject.toml)."
DB_HELP = "The DuckDB store file"
PRICES_HELP = ("A price file (the shape of the bundled catalog) overriding and extending it (default: `prices` in the "
               "config, else the bundled catalog; see `llmaudit pricing list`).")
ACCELERATOR_HELP = ("Price GPU time as this catalog GPU (e.g. H100) instead of the GPU the metrics name "
                    "(default: `accelerator` in the config).")
INPUT_FORMAT_HELP = ("Force one input format (e.g. otlp-jsonl, focus-csv, prom-text) instead of detecting it per "
                     "file; an unknown name lists the known ones.")
FORMAT_HELP = "Output format on stdout (or in --output FILE)"
OUTPUT_HELP = "Write the --format output to this file instead of stdout."
QUIET_HELP = "Print only the requested output and errors: no progress, summaries, notes or list of written files."
VERBOSE_HELP = "Print more: evidence, examples and fixes of findings, per-file details."
FAIL_ON_HELP = "Exit 1 when a finding has this severity or higher (case-insensitive)."
SCRAPE_TIME_HELP = ("The time of a metrics scrape saved without timestamps or '# scrape' lines (what curl /metrics "
                    "saves): ISO 8601 (no zone: UTC) or unix seconds (default: the file's modification time).")

ConfigOption = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP)
PricesOption = typer.Option(None, "--prices", metavar="FILE", help=PRICES_HELP)
AcceleratorOption = typer.Option(None, "--accelerator", metavar="GPU", help=ACCELERATOR_HELP)
InputFormatOption = typer.Option(None, "--input-format", metavar="FORMAT", help=INPUT_FORMAT_HELP)
ScrapeTimeOption = typer.Option(None, "--scrape-time", metavar="TIME", help=SCRAPE_TIME_HELP)
OutputOption = typer.Option(None, "--output", "-o", metavar="FILE", help=OUTPUT_HELP)
QuietOption = typer.Option(False, "--quiet", "-q", help=QUIET_HELP)
VerboseOption = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP)
FailOnOption = typer.Option(None, "--fail-on", case_sensitive=False, help=FAIL_ON_HELP)


def db_option(required: bool = False, detail: str = "") -> typer.models.OptionInfo:
    return typer.Option(... if required else None, "--db", metavar="FILE", help=f"{DB_HELP}{detail}.")


def format_option(default: Enum, detail: str = "") -> typer.models.OptionInfo:
    return typer.Option(default, "--format", "-f", case_sensitive=False, help=f"{FORMAT_HELP}{detail}.")


# ---------------------------------------------------------------- old spellings, kept for one release

def deprecated(old: str, new: str, value, current=None):
    """The value of a deprecated option spelling, with a note on stderr; the new spelling wins."""
    if value is None or value is False:
        return current
    err.print(f"note: {old} is deprecated and will be removed in the next release; use {new}", markup=False,
              highlight=False)
    return current if current not in (None, False) else value


def hidden_option(name: str, default=None, **kwargs) -> typer.models.OptionInfo:
    return typer.Option(default, name, hidden=True, **kwargs)


# ---------------------------------------------------------------- files a command wrote

def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def list_written(paths: list[Path | str | None], *, quiet: bool) -> None:
    """`wrote PATH (SIZE)` for each file a command wrote, on stderr (stdout may carry --format json)."""
    if quiet:
        return
    for p in dict.fromkeys(Path(p) for p in paths if p is not None):
        if p.exists():
            err.print(f"wrote {p} ({_size(p.stat().st_size)})", markup=False, highlight=False)


# ---------------------------------------------------------------- settings: config file, then the command line

def settings_for(config: Path | None, prices: Path | None = None, accelerator: str | None = None):
    """Config file settings with --prices/--accelerator on top. The price catalog is loaded here so that
    a bad price file or an unknown accelerator fails before any work (exit 2, naming the file and entry)."""
    from llmaudit.cli_output import fail
    from llmaudit.config import ConfigError, load_settings
    from llmaudit.pricing.catalog import PriceError, load_catalog

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc))
    if prices is not None:
        if not prices.is_file():
            raise fail(f"{prices}: no such price file")
        settings.prices = prices
    if accelerator is not None:
        settings.accelerator = accelerator
    try:
        catalog = load_catalog(settings=settings)
    except PriceError as exc:
        raise fail(str(exc))
    if settings.accelerator and catalog.gpu(settings.accelerator) is None:
        raise fail(f"--accelerator {settings.accelerator!r}: no GPU-hour price for it (see `llmaudit pricing list --gpus`)")
    return settings


# ---------------------------------------------------------------- budgets and change gates (analyze, report)

FAIL_ON_BUDGET_HELP = ("Exit 1 when a budget in [llmaudit.budgets] is projected to be passed by the end of the month "
                       "(rule LLMA017).")
MIN_CHANGE_USD_HELP = ("With --baseline: --fail-on / --fail-on-new trip only on a finding whose monthly waste, or a "
                       "feature whose spend, grew by more than this many dollars.")
MIN_CHANGE_PCT_HELP = ("With --baseline: --fail-on / --fail-on-new trip only on growth of more than this percentage "
                       "over the baseline (with --min-change-usd, both must be passed).")
FOCUS_OUT_HELP = ("Also write the findings as FOCUS rows (CSV; ChargePeriodStart/End, ProviderName, ServiceName, "
                  "x_ columns for the rule, fingerprint, waste and confidence): waste beside spend in FinOps tools.")

FailOnBudgetOption = typer.Option(False, "--fail-on-budget", help=FAIL_ON_BUDGET_HELP)
MinChangeUsdOption = typer.Option(None, "--min-change-usd", metavar="USD", min=0.0, help=MIN_CHANGE_USD_HELP)
MinChangePctOption = typer.Option(None, "--min-change-pct", metavar="PCT", min=0.0, help=MIN_CHANGE_PCT_HELP)
FocusOutOption = typer.Option(None, "--focus-out", metavar="FILE", help=FOCUS_OUT_HELP)
