"""The llmaudit command line: a thin layer over the library (ingest, normalize, rules, reports)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from llmaudit import __version__
from llmaudit.cli_output import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, err, fail, out
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

DbOption = typer.Option(None, "--db", help="DuckDB store file (created if missing). Default: a temporary store.")
ConfigOption = typer.Option(None, "--config", help="Config file (default: ./llmaudit.toml or [tool.llmaudit] in ./pyproject.toml).")
PricesOption = typer.Option(None, "--prices", help="A price file overriding and extending the bundled catalog (see `llmaudit pricing`).")
AcceleratorOption = typer.Option(None, "--accelerator", help="Price self-hosted GPU time as this GPU (e.g. H100) instead of the one in the metrics.")


def _settings(config: Optional[Path], prices: Optional[Path] = None, accelerator: Optional[str] = None) -> Settings:
    """Config file settings, with --prices/--accelerator on top; the price catalog is checked here so
    that a bad price file fails before any work (exit 2, naming the file and entry)."""
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
        raise fail(f"--accelerator {settings.accelerator!r}: no GPU-hour price for it (see `llmaudit pricing list`)")
    return settings


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
    if not any(f.status in ("ingested", "already ingested") for f in report.files) and _store_is_empty(store):
        # Nothing to audit is an input error, not a clean bill of health.
        why = "; ".join(f"{f.path}: {f.first_reject or f.status}" for f in report.files[:5])
        more = f" (and {len(report.files) - 5} more)" if len(report.files) > 5 else ""
        raise fail(f"nothing readable in {', '.join(paths)}: no trace, billing or metrics file was recognized ({why}{more})")
    derive(store, settings)
    return report


def _store_is_empty(store: Store) -> bool:
    return not store.scalar("SELECT (SELECT count(*) FROM spans) + (SELECT count(*) FROM billing) "
                            "+ (SELECT count(*) FROM metric_samples)")


@app.command()
def ingest(
    paths: list[str] = typer.Argument(..., help="Files, directories (recursive), globs; .gz is read as is."),
    db: Optional[Path] = DbOption,
    fmt: Optional[str] = typer.Option(None, "--format", help="Force one input format (e.g. otlp-jsonl) instead of detecting it per file."),
    strict: bool = typer.Option(False, "--strict", help="Any rejected record fails its file (nothing stored from it) and exits 2."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
):
    """Read traces, billing exports and metrics into a DuckDB store."""
    from llmaudit.report.terminal import print_ingest

    settings = _settings(config, prices, accelerator)
    with open_store(db) as store:
        report = run_ingest(store, paths, fmt=fmt, strict=strict, quiet=quiet, settings=settings)
        if not quiet:
            print_ingest(out, report, store, db)
    if strict and report.failed_strict:
        for f in report.files:  # even with --quiet: an exit status alone does not say which file
            if f.status in ("rejected", "unrecognized"):
                err.print(f"{f.path}: {f.first_reject}", markup=False, highlight=False)
        raise typer.Exit(EXIT_INPUT)


def _audit_document(store: Store, settings: Settings, sets: list[str], rule_dirs: list[Path]):
    from llmaudit.audit import audit
    from llmaudit.report.document import build_document
    from llmaudit.rules.engine import all_rules, parse_overrides
    from llmaudit.rules.spec import RuleError

    try:
        rules = all_rules([*settings.rules, *rule_dirs])
        overrides = parse_overrides(sets, rules)
        result = audit(store, settings, overrides=overrides, extra_rule_dirs=rule_dirs)
    except RuleError as exc:
        raise fail(str(exc))
    return build_document(store, result)


def _exit_for(doc, fail_on: Optional[str]) -> int:
    from llmaudit.findings.model import severity_rank

    if fail_on and any(severity_rank(f.severity) >= severity_rank(fail_on) for f in doc.findings):
        return EXIT_FINDINGS
    return EXIT_OK


SEVERITY_CHOICES = ("info", "low", "medium", "high", "critical")


def _emit(doc, *, output_format: str, output: Optional[Path], json_path: Optional[Path], markdown_path: Optional[Path],
          html_path: Optional[Path], baseline: Optional[Path], fail_on: Optional[str], fail_on_new: bool, redact: bool,
          verbose: bool, header=None) -> int:
    """Write every requested output and return the exit code (0, or 1 for --fail-on / --fail-on-new)."""
    from llmaudit.report.outputs import ReportError, prepare_outputs, render_json, write_prepared
    from llmaudit.report.terminal import print_findings

    try:
        # Every output, the terminal and --format json included, shows the same (redacted) document.
        doc, comparison = prepare_outputs(doc, baseline_path=baseline, redact=redact)
        write_prepared(doc, json_path=json_path, markdown_path=markdown_path, html_path=html_path)
    except ReportError as exc:
        raise fail(str(exc))
    if output_format == "json":
        text = render_json(doc)
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    else:
        console = Console(file=open(output, "w", encoding="utf-8"), width=160) if output else out
        if header:
            header(console)
        print_findings(console, doc, verbose=verbose)
    if comparison is not None:
        err.print(comparison.summary_line(), markup=False, highlight=False)
    code = _exit_for(doc, fail_on)
    if fail_on_new and comparison is not None and comparison.new:
        code = EXIT_FINDINGS
    return code


def _check_output_flags(output_format: str, fail_on: Optional[str], fail_on_new: bool, baseline: Optional[Path]) -> None:
    if output_format not in ("table", "json"):
        raise fail(f"--format must be table or json, not {output_format!r}")
    if fail_on and fail_on not in SEVERITY_CHOICES:
        raise fail(f"--fail-on must be one of {', '.join(SEVERITY_CHOICES)}")
    if fail_on_new and baseline is None:
        raise fail("--fail-on-new needs --baseline FILE (last run's --json output)")


FormatOption = typer.Option("table", "--format", "-f", help="table (terminal) or json, on stdout (or -o FILE).")
OutputOption = typer.Option(None, "--output", "-o", help="Write the --format output to this file.")
JsonOption = typer.Option(None, "--json", help="Also write the JSON report (schema: report_templates/report.schema.json).")
MarkdownOption = typer.Option(None, "--markdown", help="Also write a Markdown summary (for a PR comment or CI job summary).")
HtmlOption = typer.Option(None, "--html", help="Also write a self-contained HTML report.")
BaselineOption = typer.Option(None, "--baseline", help="A previous --json report: show new, resolved and unchanged findings.")
FailOnOption = typer.Option(None, "--fail-on", help="Exit 1 when a finding has this severity or higher.")
FailOnNewOption = typer.Option(False, "--fail-on-new", help="Exit 1 when a finding is new since --baseline.")
RedactOption = typer.Option(False, "--redact", help="Hash tenant and user names in every output (salt: $LLMAUDIT_REDACT_SALT).")
SetOption = typer.Option([], "--set", help="Override a rule parameter: RULE.param=value (repeatable).")
RulesOption = typer.Option([], "--rules", help="An extra folder of rule files (repeatable).")
VerboseOption = typer.Option(False, "--verbose", "-v", help="Evidence, examples and the fix for each finding.")


@app.command()
def analyze(
    paths: list[str] = typer.Argument(..., help="Files, directories (recursive), globs."),
    db: Optional[Path] = DbOption,
    output_format: str = FormatOption,
    output: Optional[Path] = OutputOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    html_path: Optional[Path] = HtmlOption,
    baseline: Optional[Path] = BaselineOption,
    fail_on: Optional[str] = FailOnOption,
    fail_on_new: bool = FailOnNewOption,
    redact: bool = RedactOption,
    sets: list[str] = SetOption,
    rule_dirs: list[Path] = RulesOption,
    verbose: bool = VerboseOption,
    input_format: Optional[str] = typer.Option(None, "--input-format", help="Force one input format (e.g. otlp-jsonl)."),
    strict: bool = typer.Option(False, "--strict", help="Any rejected record is an input error (exit 2)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no ingest summary."),
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
):
    """Ingest PATHs, run the audit rules, and report findings by dollar impact."""
    from llmaudit.report.terminal import print_ingest

    _check_output_flags(output_format, fail_on, fail_on_new, baseline)
    settings = _settings(config, prices, accelerator)
    with open_store(db) as store:
        report = run_ingest(store, paths, fmt=input_format, strict=strict, quiet=quiet, settings=settings)
        if strict and report.failed_strict:
            for f in report.files:
                if f.status in ("rejected", "unrecognized"):
                    err.print(f"{f.path}: {f.first_reject}", markup=False, highlight=False)
            raise typer.Exit(EXIT_INPUT)
        doc = _audit_document(store, settings, sets, rule_dirs)
        header = None if quiet else (lambda console: print_ingest(console, report, store, db))
        code = _emit(doc, output_format=output_format, output=output, json_path=json_path, markdown_path=markdown_path,
                     html_path=html_path, baseline=baseline, fail_on=fail_on, fail_on_new=fail_on_new, redact=redact,
                     verbose=verbose, header=header)
    raise typer.Exit(code)


@app.command()
def report(
    db: Path = typer.Option(..., "--db", help="A store written by `llmaudit ingest` or `analyze --db`."),
    output_format: str = FormatOption,
    output: Optional[Path] = OutputOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    html_path: Optional[Path] = HtmlOption,
    baseline: Optional[Path] = BaselineOption,
    fail_on: Optional[str] = FailOnOption,
    fail_on_new: bool = FailOnNewOption,
    redact: bool = RedactOption,
    sets: list[str] = SetOption,
    rule_dirs: list[Path] = RulesOption,
    verbose: bool = VerboseOption,
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
):
    """Render the audit of a stored database (no ingest): terminal, JSON, Markdown, HTML."""
    from llmaudit.normalize.derive import derive

    _check_output_flags(output_format, fail_on, fail_on_new, baseline)
    if not db.exists():
        raise fail(f"{db}: no such store")
    settings = _settings(config, prices, accelerator)
    with open_store(db) as store:
        if prices is not None or accelerator is not None:
            derive(store, settings)  # price again with what was asked for
        doc = _audit_document(store, settings, sets, rule_dirs)
        code = _emit(doc, output_format=output_format, output=output, json_path=json_path, markdown_path=markdown_path,
                     html_path=html_path, baseline=baseline, fail_on=fail_on, fail_on_new=fail_on_new, redact=redact,
                     verbose=verbose)
    raise typer.Exit(code)


from llmaudit.cli_pricing import pricing_app  # noqa: E402  (sub-command groups register below the root)

app.add_typer(pricing_app, name="pricing")

from llmaudit.cli_replay import replay_app  # noqa: E402

app.add_typer(replay_app, name="replay")

rules_app = typer.Typer(help="List, document and self-test the audit rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


def _load_rules(rule_dirs: list[Path], config: Optional[Path]):
    from llmaudit.rules.engine import all_rules
    from llmaudit.rules.spec import RuleError

    settings = _settings(config)
    try:
        return all_rules([*settings.rules, *rule_dirs])
    except RuleError as exc:
        raise fail(str(exc))


@rules_app.command("list")
def rules_list(
    rule_dirs: list[Path] = typer.Option([], "--rules", help="An extra folder of rule files."),
    config: Optional[Path] = ConfigOption,
):
    """The rules, with category and severity (the default, and when a finding gets another)."""
    from rich.table import Table

    table = Table(show_edge=False)
    for col in ("id", "name", "category", "severity", "needs", "title"):
        table.add_column(col)
    for r in _load_rules(rule_dirs, config):
        table.add_row(r.id, r.name, r.category, r.severity_text(), ", ".join(r.requires), r.title)
    out.print(table)


@rules_app.command("show")
def rules_show(
    rule_id: str = typer.Argument(..., help="A rule id, e.g. LLMA003."),
    rule_dirs: list[Path] = typer.Option([], "--rules", help="An extra folder of rule files."),
    config: Optional[Path] = ConfigOption,
):
    """A rule's documentation: why, how the saving is computed, the fix, parameters, SQL."""
    from rich.markdown import Markdown

    rules = {r.id: r for r in _load_rules(rule_dirs, config)}
    rule = rules.get(rule_id.upper())
    if rule is None:
        raise fail(f"no rule {rule_id}; see `llmaudit rules list`")
    params = "\n".join(f"- `{k}` = `{p.default}`: {p.doc}" for k, p in rule.params.items()) or "none"
    refs = "\n".join(f"- {r}" for r in rule.references) or "none"
    text = (
        f"# {rule.id} {rule.name}\n\n**{rule.title}**  \ncategory `{rule.category}`, severity `{rule.severity}`"
        f"{'; ' + rule.severity_when if rule.severity_when else ''}, "
        f"needs {', '.join(rule.requires)}\n\n## Why\n{rule.summary}\n\n## Saving\n{rule.saving}\n\n"
        f"## Fix\n{rule.remediation}\n\n## Parameters\n{params}\n\n## References\n{refs}\n\n"
        f"## SQL\n```sql\n{rule.sql.strip()}\n```\n\nFile: {rule.path}"
    )
    out.print(Markdown(text))


@rules_app.command("test")
def rules_test(
    folder: Optional[Path] = typer.Argument(None, help="Test the rules in this folder (default: the built-in rules)."),
    only: list[str] = typer.Option([], "--only", help="Only these rule ids."),
):
    """Run each rule on its own positive and negative fixtures."""
    from rich.table import Table

    from llmaudit.rules.engine import builtin_rules_dir
    from llmaudit.rules.selftest import run_all
    from llmaudit.rules.spec import RuleError, load_rules

    try:
        rules = load_rules([folder or builtin_rules_dir()])
    except RuleError as exc:
        raise fail(str(exc))
    if only:
        rules = [r for r in rules if r.id in {o.upper() for o in only}]
    outcomes = run_all(rules)
    table = Table(show_edge=False)
    for col in ("rule", "test", "kind", "result", "detail"):
        table.add_column(col)
    for o in outcomes:
        table.add_row(o.rule_id, o.test, o.kind, Text("pass", style="green") if o.passed else Text("FAIL", style="bold red"), o.detail)
    out.print(table)
    failed = sum(not o.passed for o in outcomes)
    out.print(f"{len(outcomes) - failed} passed, {failed} failed")
    raise typer.Exit(EXIT_FINDINGS if failed else EXIT_OK)


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
