"""The llmaudit command line: a thin layer over the library (ingest, normalize, rules, reports).

Shared options (--db, --format, --config, --prices, -q, ...) come from llmaudit.cli_options, so every
command spells and means them alike.
"""

from __future__ import annotations

import io
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from llmaudit import __version__
from llmaudit.cli_options import (AcceleratorOption, ConfigOption, FailOnBudgetOption, FailOnOption, FocusOutOption,
                                  InputFormatOption, MinChangePctOption, MinChangeUsdOption, OutputOption,
                                  PricesOption, QueryFormat, QuietOption, ReportFormat, ScrapeTimeOption, Severity,
                                  VerboseOption,
                                  command, db_option, deprecated, format_option, hidden_option, list_written, new_app,
                                  settings_for)
from llmaudit.cli_output import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, err, fail, out
from llmaudit.config import Settings
from llmaudit.ingest.pipeline import IngestReport
from llmaudit.ingest.sources import InputError
from llmaudit.store import SqlRefused, Store, StoreError

app = new_app("Find and price the waste in LLM systems: traces, bills and GPU metrics in, findings in dollars out.",
              name="llmaudit")


@contextmanager
def open_store(db: Optional[Path], *, sandbox: bool = False):
    try:
        store = Store(db, sandbox=sandbox)
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


def _scrape_time_option(text: Optional[str]) -> dict:
    """--scrape-time as the readers' option (microseconds since 1970, UTC)."""
    if text is None:
        return {}
    from llmaudit.ingest.metrics.prom_text import scrape_time_to_us
    from llmaudit.ingest.metrics.samples import BadLine

    try:
        return {"scrape_time_us": scrape_time_to_us(text)}
    except BadLine as exc:
        raise fail(f"--scrape-time: {exc}")


def run_ingest(store: Store, paths: list[str], *, fmt: Optional[str], strict: bool, quiet: bool, settings: Settings,
               show=None, scrape_time: Optional[str] = None) -> IngestReport:
    """Ingest files with progress on stderr, then rebuild the derived tables. `show(report)` prints the
    summary: before the exit when --strict fails, so the summary still says what was stored."""
    from llmaudit.ingest.pipeline import Ingestor
    from llmaudit.ingest.registry import by_name
    from llmaudit.ingest.sources import expand_paths
    from llmaudit.normalize.derive import derive
    from llmaudit.report.progress import ingest_progress

    options = _scrape_time_option(scrape_time)
    try:
        sources = expand_paths(paths)
        if fmt:
            fmt = by_name(fmt.lower()).name
    except (InputError, KeyError) as exc:
        raise fail(str(exc).strip("'\""))
    if not sources:
        raise fail(f"no input files found in {', '.join(paths)}")
    total = sum(s.size for s in sources)
    with ingest_progress(err, total, enabled=not quiet) as on_progress:
        ingestor = Ingestor(store, force_format=fmt, strict=strict, on_progress=on_progress, options=options)
        report = ingestor.run(sources)
    if strict and report.failed_strict:
        if show is not None and not quiet:
            show(report)
        for f in report.files:  # even with --quiet: an exit status alone does not say which file
            if f.status in ("rejected", "unrecognized"):
                err.print(f"{f.path}: {f.first_reject}", markup=False, highlight=False)
        raise typer.Exit(EXIT_INPUT)
    if not report.read_anything:
        # Nothing to audit is an input error, not a clean bill of health: every file unrecognized,
        # empty, or with every record rejected.
        why = "; ".join(f"{f.path}: {f.first_reject or next(iter(f.notes), f.status)}" for f in report.files[:5])
        more = f" (and {len(report.files) - 5} more)" if len(report.files) > 5 else ""
        raise fail(f"nothing readable in {', '.join(paths)}: no trace, billing or metrics record could be read "
                   f"({why}{more})")
    derive(store, settings)
    return report


@command(app)
def ingest(
    paths: list[str] = typer.Argument(..., metavar="PATH", help="Files, directories (recursive), globs; .gz is read as is."),
    db: Optional[Path] = db_option(detail=" to write (created if missing; default: a temporary store, deleted at exit)"),
    input_format: Optional[str] = InputFormatOption,
    scrape_time: Optional[str] = ScrapeTimeOption,
    strict: bool = typer.Option(False, "--strict", help="Any rejected record fails its file (nothing stored from it) and exits 2."),
    quiet: bool = QuietOption,
    verbose: bool = VerboseOption,
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
    old_format: Optional[str] = hidden_option("--format"),
):
    """Read traces, billing exports and metrics into a DuckDB store."""
    from llmaudit.report.terminal import print_ingest

    input_format = deprecated("--format (as the input format)", "--input-format", old_format, input_format)
    settings = settings_for(config, prices, accelerator)
    with open_store(db) as store:
        def show(report):
            print_ingest(out, report, store, db, verbose=verbose)

        report = run_ingest(store, paths, fmt=input_format, strict=strict, quiet=quiet, settings=settings, show=show,
                            scrape_time=scrape_time)
        if not quiet:
            show(report)
    list_written([db], quiet=quiet)


def _audit_document(store: Store, settings: Settings, sets: list[str], rule_dirs: list[Path], plan: bool = False):
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
    doc = build_document(store, result, settings)
    creep = overrides.get("LLMA018", {}).get("min_growth")
    if creep is not None:  # --set LLMA018.min_growth: the decomposition's token-creep flag follows the rule
        doc.token_creep_threshold = float(creep)
    if plan:
        from llmaudit.plan.build import build_plan
        from llmaudit.plan.classes import PlanError

        try:
            doc.extras["plan"] = build_plan(store, settings=settings).model_dump(mode="json")
        except PlanError as exc:  # the audit stands without it
            err.print(f"note: --plan: {exc}", markup=False, highlight=False)
    return doc


def _exit_for(doc, fail_on: Optional[Severity]) -> int:
    from llmaudit.findings.model import severity_rank

    if fail_on and any(severity_rank(f.severity) >= severity_rank(fail_on.value) for f in doc.findings):
        return EXIT_FINDINGS
    return EXIT_OK


def _emit(doc, *, output_format: ReportFormat, output: Optional[Path], json_path: Optional[Path],
          markdown_path: Optional[Path], html_path: Optional[Path], baseline: Optional[Path], fail_on: Optional[Severity],
          fail_on_new: bool, redact: bool, verbose: bool, quiet: bool, written: list, header=None,
          gates: Optional[dict] = None, focus_out: Optional[Path] = None) -> int:
    """Write every requested output and return the exit code (0, or 1 for --fail-on / --fail-on-new /
    --fail-on-budget, under --min-change-* thresholds when given)."""
    from llmaudit.report.outputs import ReportError, prepare_outputs, render_json, write_prepared, write_text
    from llmaudit.report.terminal import print_findings

    gates = gates or {}
    try:
        # Every output, the terminal and --format json included, shows the same (redacted) document.
        doc, comparison = prepare_outputs(doc, baseline_path=baseline, redact=redact)
        write_prepared(doc, json_path=json_path, markdown_path=markdown_path, html_path=html_path)
        if focus_out is not None:
            from llmaudit.report.focus_out import render_focus

            write_text(focus_out, render_focus(doc))
        if output_format is ReportFormat.json:
            text = render_json(doc)
        else:
            buffer = io.StringIO()
            # A file gets a fixed width so that it reads the same on every machine.
            console = Console(file=buffer, width=160, highlight=False, soft_wrap=False) if output else out
            if header:
                header(console)
            print_findings(console, doc, verbose=verbose)
            if "plan" in doc.extras:
                from llmaudit.plan.document import PlanDocument
                from llmaudit.plan.terminal import print_plan

                print_plan(console, PlanDocument.model_validate(doc.extras["plan"]))
            text = buffer.getvalue()
        if output:
            write_text(output, text)
        elif output_format is ReportFormat.json:
            sys.stdout.write(text)
    except ReportError as exc:
        raise fail(str(exc))
    written.extend([json_path, markdown_path, html_path, output, focus_out])
    if comparison is not None and not quiet:
        err.print(comparison.summary_line(), markup=False, highlight=False)
    return _gate_code(doc, comparison, fail_on, fail_on_new, gates)


def _gate_code(doc, comparison, fail_on: Optional[Severity], fail_on_new: bool, gates: dict) -> int:
    from llmaudit.report.gates import Thresholds, budget_gate, change_gate

    thresholds = Thresholds(gates.get("min_change_usd"), gates.get("min_change_pct"))
    reasons = budget_gate(doc) if gates.get("fail_on_budget") else []
    if thresholds.given and comparison is not None:
        # Under thresholds only growth past them trips the severity and new-finding gates.
        reasons += change_gate(comparison, thresholds, fail_on=fail_on.value if fail_on else None,
                               fail_on_new=fail_on_new)
        code = EXIT_FINDINGS if reasons else EXIT_OK
    else:
        code = _exit_for(doc, fail_on)
        if fail_on_new and comparison is not None and comparison.new:
            code = EXIT_FINDINGS
        if reasons:
            code = EXIT_FINDINGS
    for why in reasons:  # even with --quiet: an exit status alone does not say which gate tripped
        err.print(f"gate: {why}", markup=False, highlight=False)
    return code


JsonOption = typer.Option(None, "--json", metavar="FILE", help="Also write the JSON report (schema: report_templates/report.schema.json).")
MarkdownOption = typer.Option(None, "--markdown", metavar="FILE", help="Also write a Markdown summary (for a PR comment or CI job summary).")
HtmlOption = typer.Option(None, "--html", metavar="FILE", help="Also write a self-contained HTML report.")
BaselineOption = typer.Option(None, "--baseline", metavar="FILE", help="A previous --json report: show new, resolved and unchanged findings.")
FailOnNewOption = typer.Option(False, "--fail-on-new", help="Exit 1 when a finding is new since --baseline.")
RedactOption = typer.Option(False, "--redact", help="Hash the names of tenants, users and accounts in every output (salt: $LLMAUDIT_REDACT_SALT).")
SetOption = typer.Option([], "--set", metavar="RULE.PARAM=VALUE", help="Override a rule parameter, e.g. LLMA003.max_k=6 (repeatable).")
RulesOption = typer.Option([], "--rules", metavar="DIR", help="An extra folder of rule files (repeatable).")
StrictOption = typer.Option(False, "--strict", help="Any rejected record is an input error (exit 2).")
PlanOption = typer.Option(False, "--plan", help="Add the capacity and cost plan (`llmaudit plan` with its defaults) to every output; JSON: extras.plan.")


def _check_report_flags(fail_on_new: bool, baseline: Optional[Path], min_change_usd: Optional[float] = None,
                        min_change_pct: Optional[float] = None) -> dict:
    if fail_on_new and baseline is None:
        raise fail("--fail-on-new needs --baseline FILE (last run's --json output)")
    for name, value in (("--min-change-usd", min_change_usd), ("--min-change-pct", min_change_pct)):
        if value is not None and baseline is None:
            raise fail(f"{name} needs --baseline FILE (last run's --json output): growth is measured against it")
    return {"min_change_usd": min_change_usd, "min_change_pct": min_change_pct}


@command(app)
def analyze(
    paths: list[str] = typer.Argument(..., metavar="PATH", help="Files, directories (recursive), globs; .gz is read as is."),
    db: Optional[Path] = db_option(detail=" to keep (created if missing; default: a temporary store, deleted at exit)"),
    output_format: ReportFormat = format_option(ReportFormat.table, ": table (the terminal summary) or json (the audit document)"),
    output: Optional[Path] = OutputOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    html_path: Optional[Path] = HtmlOption,
    baseline: Optional[Path] = BaselineOption,
    fail_on: Optional[Severity] = FailOnOption,
    fail_on_new: bool = FailOnNewOption,
    fail_on_budget: bool = FailOnBudgetOption,
    min_change_usd: Optional[float] = MinChangeUsdOption,
    min_change_pct: Optional[float] = MinChangePctOption,
    focus_out: Optional[Path] = FocusOutOption,
    redact: bool = RedactOption,
    sets: list[str] = SetOption,
    rule_dirs: list[Path] = RulesOption,
    input_format: Optional[str] = InputFormatOption,
    scrape_time: Optional[str] = ScrapeTimeOption,
    strict: bool = StrictOption,
    with_plan: bool = PlanOption,
    quiet: bool = QuietOption,
    verbose: bool = VerboseOption,
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
):
    """Ingest PATHs, run the audit rules, and report findings by dollar impact."""
    from llmaudit.report.terminal import print_ingest

    gates = {**_check_report_flags(fail_on_new, baseline, min_change_usd, min_change_pct), "fail_on_budget": fail_on_budget}
    settings = settings_for(config, prices, accelerator)
    written: list = []
    with open_store(db) as store:
        report = run_ingest(store, paths, fmt=input_format, strict=strict, quiet=quiet, settings=settings,
                            scrape_time=scrape_time)
        doc = _audit_document(store, settings, sets, rule_dirs, plan=with_plan)
        header = None if quiet else (lambda console: print_ingest(console, report, store, db))
        code = _emit(doc, output_format=output_format, output=output, json_path=json_path, markdown_path=markdown_path,
                     html_path=html_path, baseline=baseline, fail_on=fail_on, fail_on_new=fail_on_new, redact=redact,
                     verbose=verbose, quiet=quiet, written=written, header=header, gates=gates,
                     focus_out=focus_out)
    list_written([db, *written], quiet=quiet)
    raise typer.Exit(code)


@command(app)
def report(
    db: Path = db_option(required=True, detail=" that `llmaudit ingest` or `analyze --db` wrote"),
    output_format: ReportFormat = format_option(ReportFormat.table, ": table (the terminal summary) or json (the audit document)"),
    output: Optional[Path] = OutputOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    html_path: Optional[Path] = HtmlOption,
    baseline: Optional[Path] = BaselineOption,
    fail_on: Optional[Severity] = FailOnOption,
    fail_on_new: bool = FailOnNewOption,
    fail_on_budget: bool = FailOnBudgetOption,
    min_change_usd: Optional[float] = MinChangeUsdOption,
    min_change_pct: Optional[float] = MinChangePctOption,
    focus_out: Optional[Path] = FocusOutOption,
    redact: bool = RedactOption,
    sets: list[str] = SetOption,
    rule_dirs: list[Path] = RulesOption,
    with_plan: bool = PlanOption,
    quiet: bool = QuietOption,
    verbose: bool = VerboseOption,
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
):
    """Render the audit of a stored database (no ingest): terminal, JSON, Markdown, HTML."""
    from llmaudit.normalize.derive import derive

    gates = {**_check_report_flags(fail_on_new, baseline, min_change_usd, min_change_pct), "fail_on_budget": fail_on_budget}
    if not db.exists():
        raise fail(f"{db}: no such store")
    settings = settings_for(config, prices, accelerator)
    written: list = []
    with open_store(db) as store:
        if prices is not None or accelerator is not None:
            derive(store, settings)  # price again with what was asked for
        doc = _audit_document(store, settings, sets, rule_dirs, plan=with_plan)
        code = _emit(doc, output_format=output_format, output=output, json_path=json_path, markdown_path=markdown_path,
                     html_path=html_path, baseline=baseline, fail_on=fail_on, fail_on_new=fail_on_new, redact=redact,
                     verbose=verbose, quiet=quiet, written=written, gates=gates, focus_out=focus_out)
    list_written(written, quiet=quiet)
    raise typer.Exit(code)


from llmaudit.cli_pricing import pricing_app  # noqa: E402  (sub-command groups register below the root)

app.add_typer(pricing_app, name="pricing")

from llmaudit.cli_replay import replay_app  # noqa: E402

app.add_typer(replay_app, name="replay")

from llmaudit.cli_plan import register as _register_plan  # noqa: E402

_register_plan(app)

rules_app = new_app("List, document and self-test the audit rules.")
app.add_typer(rules_app, name="rules")


def _load_rules(rule_dirs: list[Path], config: Optional[Path]):
    from llmaudit.rules.engine import all_rules
    from llmaudit.rules.spec import RuleError

    settings = settings_for(config)
    try:
        return all_rules([*settings.rules, *rule_dirs])
    except RuleError as exc:
        raise fail(str(exc))


@command(rules_app, "list")
def rules_list(
    rule_dirs: list[Path] = RulesOption,
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


@command(rules_app, "show")
def rules_show(
    rule_id: str = typer.Argument(..., metavar="RULE", help="A rule id, e.g. LLMA003."),
    rule_dirs: list[Path] = RulesOption,
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
        f"## SQL\n```sql\n{rule.sql.strip()}\n```\n\n"
        + (f"## Skipped when this says why (not NULL)\n```sql\n{rule.skip_when.strip()}\n```\n\n" if rule.skip_when else "")
        + f"File: {rule.path}"
    )
    out.print(Markdown(text))


@command(rules_app, "test")
def rules_test(
    folder: Optional[Path] = typer.Argument(None, metavar="DIR", help="Test the rules in this folder (default: the built-in rules)."),
    only: list[str] = typer.Option([], "--only", metavar="RULE", help="Only these rule ids (repeatable)."),
    quiet: bool = QuietOption,
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
    failed = sum(not o.passed for o in outcomes)
    if not quiet:
        table = Table(show_edge=False)
        for col in ("rule", "test", "kind", "result", "detail"):
            table.add_column(col)
        for o in outcomes:
            table.add_row(o.rule_id, o.test, o.kind, Text("pass", style="green") if o.passed else Text("FAIL", style="bold red"), o.detail)
        out.print(table)
    out.print(f"{len(outcomes) - failed} passed, {failed} failed")
    raise typer.Exit(EXIT_FINDINGS if failed else EXIT_OK)


@command(app)
def query(
    sql: str = typer.Argument(..., metavar="SQL", help="One SELECT query over the store (tables: spans, llm_calls, retrievals, requests, ...)."),
    db: Path = db_option(required=True, detail=" to read (never written)"),
    output_format: QueryFormat = format_option(QueryFormat.table, ": table, csv or json"),
    output: Optional[Path] = OutputOption,
    quiet: bool = QuietOption,
    old_config: Optional[Path] = hidden_option("--config"),
):
    """Run one read-only SELECT against a store: nothing outside the store is reachable, nothing is written."""
    import duckdb

    from llmaudit.report.outputs import ReportError, write_text
    from llmaudit.report.terminal import render_query

    deprecated("--config (query reads no config)", "nothing: query reads the store as it is", old_config)
    if not db.exists():
        raise fail(f"{db}: no such store")
    try:
        with open_store(db, sandbox=True) as store:
            stale = _derived_is_stale(store)
            columns, rows = store.select(sql, what="llmaudit query is read-only")
    except SqlRefused as exc:
        raise fail(str(exc))
    except duckdb.Error as exc:
        raise fail(f"query failed: {exc}")
    if stale and not quiet:
        err.print("note: files were ingested after the derived tables (llm_calls, requests, ...) were last built; "
                  "`llmaudit report --db FILE` rebuilds them", markup=False, highlight=False)
    text = render_query(columns, rows, output_format.value, footer=not quiet)
    try:
        if output:
            write_text(output, text)
        else:
            sys.stdout.write(text)
    except ReportError as exc:
        raise fail(str(exc))
    list_written([output], quiet=quiet)


def _derived_is_stale(store: Store) -> bool:
    current = store.scalar("SELECT coalesce(max(file_id), 0) FROM ingest_log")
    done = store.scalar("SELECT value FROM meta WHERE key = 'derived_from_file_id'")
    return done is not None and int(done) != current


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(app())
