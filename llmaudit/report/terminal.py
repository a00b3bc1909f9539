"""Terminal output: tables for people, never telemetry content beyond names and numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmaudit.cli_output import out
from llmaudit.ingest.pipeline import IngestReport
from llmaudit.report.numbers import signed_usd, usd
from llmaudit.store import Store
from llmaudit.summary import summarize

MAX_CELL = 80  # attribute values are untrusted and can be huge: cut them in tables


def safe(value, limit: int = MAX_CELL) -> Text:
    """Telemetry text as plain text (no markup), control characters made visible, length capped."""
    text = "" if value is None else str(value)
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return Text(text)


def _window(s) -> str:
    if s.window_start is None:
        return "no span has a time" if s.spans else "no spans"
    return f"{s.window_start:%Y-%m-%d %H:%M} → {s.window_end:%Y-%m-%d %H:%M} UTC"


def _period(start, end) -> str:
    if start is None:
        return "no time"
    return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC" if end else f"from {start:%Y-%m-%d %H:%M} UTC"


# Why a file stored nothing, as the summary says it (the file is always named).
_NOT_READ = {
    "skipped": "skipped: not a recognized trace, billing or metrics format",
    "empty": "empty",
    "unrecognized": "not a recognized format",
    "rejected": "rejected (--strict)",
}


def print_ingest(console: Console, report: IngestReport, store: Store, db: Path | None, *, verbose: bool = False) -> None:
    s = summarize(store)
    files = Table(title="Files", title_justify="left", show_edge=False)
    for col in ("status", "files", "records", "stored", "duplicates", "rejects"):
        files.add_column(col, justify="right" if col != "status" else "left")
    by_status: dict = {}
    for f in report.files:
        key = f"{f.status} ({f.format})" if f.format else f.status
        row = by_status.setdefault(key, [0, 0, 0, 0, 0])
        for i, v in enumerate((1, f.records, f.stored, f.duplicates, f.rejects)):
            row[i] += v
    for key in sorted(by_status):
        files.add_row(key, *(f"{v:,}" for v in by_status[key]))
    console.print(files)
    console.print()
    console.print(f"Store        {db if db else 'temporary (use --db FILE to keep it)'}")
    if s.spans or not (s.billing or s.metrics):
        console.print(f"Window       {_window(s)}")
        console.print(f"Spans        {s.spans:,} in {s.traces:,} traces ({s.orphan_spans:,} orphan spans)")
        console.print(f"LLM calls    {s.llm_calls:,}    retrievals {s.retrievals:,}")
    else:
        console.print("Spans        none (no trace files)")
    console.print(f"Rejects      {s.rejects:,}" + ("  (see: llmaudit query --db FILE \"SELECT * FROM rejects\")" if s.rejects and db else ""))
    if s.spans:
        console.print(Text("Services     " + (", ".join(s.services) or "none")))
    for b in s.billing:
        if b.currency is None and not b.billed_cost:  # usage reports: quantities, no money
            console.print(Text(f"Usage        {b.rows:,} usage records without a cost, {_period(b.period_start, b.period_end)}"
                               f" ({', '.join(b.providers) or 'no provider'})"))
            continue
        money = f"{b.billed_cost:,.2f} {b.currency or '(no currency)'}"
        effective = f", effective {b.effective_cost:,.2f}" if b.effective_cost is not None and b.effective_cost != b.billed_cost else ""
        console.print(Text(f"Billed       {money}{effective} in {b.rows:,} charges, {_period(b.period_start, b.period_end)}"
                           f" ({', '.join(b.providers) or 'no provider'})"))
    for m in s.metrics:
        hosts = ", ".join(m.hosts[:5]) + (f" and {len(m.hosts) - 5} more" if len(m.hosts) > 5 else "")
        devices = f", {m.devices:,} GPU{'s' if m.devices != 1 else ''}" if m.devices else ""
        console.print(Text(f"Metrics      {m.source}: {m.samples:,} samples of {m.series:,} series, {_period(m.start, m.end)}"
                           f" ({hosts or 'no host'}{devices})"))
    _print_metrics_detail(console, s, verbose=verbose)
    for f in report.files:
        if f.status in _NOT_READ and not f.first_reject:
            console.print(Text(f"  {f.path}: {_NOT_READ[f.status]}", style="yellow"))
        elif f.first_reject:
            console.print(Text(f"  {f.path}: {f.rejects:,} rejected; first: {f.first_reject}", style="yellow"))
        elif f.status == "ingested" and not (f.stored or f.duplicates) and not f.notes:
            console.print(Text(f"  {f.path}: read as {f.format}, but it holds no record of that format", style="yellow"))
        elif verbose:
            console.print(Text(f"  {f.path}: {f.status}" + (f" ({f.format}), {f.records:,} records, {f.stored:,} stored, "
                                                          f"{f.duplicates:,} duplicates" if f.format else "")))
        for note in f.notes:  # on one line: it may hold a cursor to copy
            console.print(Text(f"  {f.path}: {note}", style="yellow"), soft_wrap=True)
    if s.models:
        console.print()
        t = Table(title="Tokens by model", title_justify="left", show_edge=False)
        for col in ("provider", "model", "calls", "input tokens", "cached input", "output tokens", "estimated"):
            t.add_column(col, justify="left" if col in ("provider", "model") else "right")
        for m in s.models:
            t.add_row(safe(m.provider), safe(m.model), f"{m.calls:,}", f"{m.input_tokens:,}", f"{m.cached_input_tokens:,}",
                      f"{m.output_tokens:,}", f"{m.estimated_calls:,}" if m.estimated_calls else "")
        console.print(t)


MAX_LISTED = 10  # metrics files, hosts and servers listed one by one (all of them with -v)


def _time_of(t) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} UTC"


def _metric_file_line(m) -> str:
    """Where one metrics file's sample times came from (a scrape saved by curl has none of its own)."""
    text = (f"{m.path}: {m.samples:,} sample{'s' if m.samples != 1 else ''} in {m.scrapes:,} "
            f"scrape{'s' if m.scrapes != 1 else ''}, time from {m.time_source}")
    if m.scrape_time is not None:
        text += f" ({_time_of(m.scrape_time)})"
    if m.blank_values:
        text += f"; {m.blank_values:,} DCGM blank value{'s' if m.blank_values != 1 else ''} stored as NULL"
    return text


def _since_start(counters: dict) -> str:
    parts = [f"{counters[k]:,.0f} {label}" for k, label in (
        ("prompt_tokens", "prompt tokens"), ("generation_tokens", "generated tokens"),
        ("requests_succeeded", "requests")) if counters.get(k) is not None]
    return f"; since start: {', '.join(parts)}" if parts else ""


def _print_metrics_detail(console: Console, s, *, verbose: bool) -> None:
    """Per metrics file, the time source; what one scrape shows (GPUs, models served, counters since
    start); and, where every GPU and server was scraped once, that the store holds a snapshot."""
    label = "Times"
    files = s.metric_files if verbose else s.metric_files[:MAX_LISTED]
    for m in files:
        console.print(Text(f"{label:<13}{_metric_file_line(m)}"))
        label = ""
    if len(files) < len(s.metric_files):
        rest = s.metric_files[len(files):]
        kinds: dict[str, int] = {}
        for m in rest:
            kinds[m.time_source] = kinds.get(m.time_source, 0) + 1
        console.print(Text(f"{'':<13}... and {len(rest):,} more files (time from "
                           + ", ".join(f"{k}: {n:,}" for k, n in sorted(kinds.items())) + "; -v lists them)"))
    inv = s.inventory
    hosts: dict = {}
    for g in inv.gpus:
        hosts.setdefault(g.host, []).append(g.gpu_model or "unknown model")
    shown = list(hosts.items()) if verbose else list(hosts.items())[:MAX_LISTED]
    if hosts:
        text = "; ".join(
            f"{host or 'no host label'}: " + ", ".join(f"{models.count(m)} x {m}" for m in sorted(set(models)))
            for host, models in shown)
        if len(shown) < len(hosts):
            text += f"; and {len(hosts) - len(shown):,} more hosts"
        console.print(Text(f"{'GPUs':<13}{text}"))
    servers = inv.servers if verbose else inv.servers[:MAX_LISTED]
    label = "Served"
    for srv in servers:
        console.print(Text(f"{label:<13}{srv.model_name} on {srv.host or 'a server with no host label'}, "
                           f"{srv.scrapes:,} scrape{'s' if srv.scrapes != 1 else ''}{_since_start(srv.since_start)}"))
        label = ""
    if len(servers) < len(inv.servers):
        console.print(Text(f"{'':<13}... and {len(inv.servers) - len(servers):,} more model servers"))
    if inv.snapshot:
        first, last = inv.snapshot_times
        when = f"at {_time_of(first)}" if first == last else f"{_time_of(first)} to {_time_of(last)}"
        console.print(Text(f"{'Time series':<13}none: each GPU and model server was scraped once (a snapshot, {when}); "
                           "the inventory and counters since start are read, idle GPU-hours and replicas over time "
                           "need more than one scrape", style="yellow"))
    else:
        once_gpus = sum(g.scrapes < 2 for g in inv.gpus)
        once_servers = sum(x.scrapes < 2 for x in inv.servers)
        if once_gpus or once_servers:
            what = " and ".join(t for t in (f"{once_gpus} GPU(s)" if once_gpus else "",
                                              f"{once_servers} model server(s)" if once_servers else "") if t)
            console.print(Text(f"{'Time series':<13}{what} seen in one scrape only: no hours are measured for them",
                               style="yellow"))


def render_query(columns: list[str], rows: list[tuple], fmt: str, *, footer: bool = True) -> str:
    """A query result as json, csv or a table (with a row count unless footer is off)."""
    if fmt == "json":
        data = [dict(zip(columns, row)) for row in rows]
        return orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode() + "\n"
    buf = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return buf.getvalue()
    table = Table(show_edge=False)
    for c in columns:
        table.add_column(safe(c))
    for row in rows:
        table.add_row(*(safe(v) for v in row))
    console = Console(file=buf, width=out.width, highlight=False, soft_wrap=False)
    console.print(table)
    if footer:
        console.print(f"{len(rows):,} rows")
    return buf.getvalue()




def redaction_line(info: dict) -> str:
    """What --redact did, in one line (every redacted output says it)."""
    text = (f"names of tenants, users and accounts pseudonymised ({info.get('names_redacted', 0)} names; "
            f"salt id {info.get('salt_id')})")
    if info.get("default_salt"):
        text += ("; the public default salt was used, so a guessed name can be confirmed: set LLMAUDIT_REDACT_SALT "
                 "to a secret")
    return text


def price_line(p) -> str:
    """The prices an audit used, in one line (every output says it)."""
    text = f"bundled catalog as of {p.as_of} (sha256 {p.sha256[:12]}; source in the JSON and HTML reports)"
    if p.prices_file:
        text += f"; price file {p.prices_file} (sha256 {p.prices_file_sha256[:12]})"
    if p.accelerator:
        text += f"; GPU time priced as {p.accelerator}"
    tiers = getattr(p, "service_tiers", None) or {}
    if set(tiers) - {"standard"}:
        text += "; calls per service tier: " + ", ".join(f"{k} {v:,}" for k, v in tiers.items())
    for contract in getattr(p, "contracts", None) or []:
        text += f"; {contract}"
    return text


SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def print_findings(console: Console, doc, *, verbose: bool = False) -> None:
    """The analyze header (window, requests, spend, waste) and the findings by dollar impact."""
    t = doc.totals
    window = ("no span has a time" if t.requests else "no spans") if doc.window.start is None else (
        f"{doc.window.start:%Y-%m-%d %H:%M} → {doc.window.end:%Y-%m-%d %H:%M} UTC ({doc.window.days or 0:.1f} days)"
    )
    console.print()
    console.rule("llmaudit", style="dim")
    console.print(f"Window        {window}")
    console.print(f"Requests      {t.requests:,}    LLM calls {t.llm_calls:,}    tokens in {t.input_tokens:,} / out {t.output_tokens:,}")
    parts = t.spend_parts
    spend = usd(t.spend_usd) + (" in the window" if t.spend_usd is not None else "")
    if parts is not None:
        spend += (f" = model APIs {usd(parts.model_apis_usd)} + self-hosted GPU time {usd(parts.self_hosted_gpu_time_usd)}"
                  f" + provisioned GPU idle {usd(parts.provisioned_idle_usd)}")
    if t.unpriced_calls:
        spend += f"  ({t.unpriced_calls:,} calls unpriced, not counted)"
    console.print(f"Spend         {spend}")
    share = f" ({t.estimated_waste_usd / t.spend_usd:.1%} of spend)" if t.spend_usd else ""
    console.print(
        f"Est. waste    ${t.estimated_waste_usd:,.2f} in the window{share}, ${t.estimated_waste_usd_per_month:,.2f} per month "
        f"({len(t.counted_findings)} of {t.findings} findings counted: one per mechanism and feature, never above its spend)"
    )
    if t.unexplained_spend_usd:
        console.print(f"Unexplained   ${t.unexplained_spend_usd:,.2f} billed that no trace explains (to investigate, not counted as waste)")
    if doc.prices is not None:
        console.print(Text(f"Prices        {price_line(doc.prices)}"))
    if doc.extras.get("redaction"):
        console.print(Text(f"Redacted      {redaction_line(doc.extras['redaction'])}"))
    for key, value in doc.extras.get("headline", {}).items():
        console.print(Text(f"{key:<14}{value}"))
    console.print()
    if not doc.findings:
        console.print("No findings.", style="green")
    else:
        table = Table(show_edge=False, title="Findings by dollar impact", title_justify="left")
        for col, justify in (("severity", "left"), ("rule", "left"), ("scope", "left"), ("waste (window)", "right"),
                             ("per month", "right")):
            table.add_column(col, justify=justify, no_wrap=col != "scope")
        table.add_column("what", ratio=1, overflow="fold", min_width=40)
        counted = set(t.counted_findings)
        uncounted = 0
        for f in doc.findings:
            scope = " · ".join(str(v) for v in (f.scope.service, f.scope.feature, f.scope.model, f.scope.tenant) if v)
            mark = "" if f.fingerprint in counted or f.waste.usd is None else "*"
            uncounted += bool(mark)
            table.add_row(
                Text(f.severity, style=SEVERITY_STYLE[f.severity]),
                f.rule_id,
                safe(scope, 48),
                usd(f.waste.usd) + mark,
                usd(f.waste.usd_per_month) + mark,
                # Whole sentences: the table wraps them rather than cutting them (telemetry names in them are capped).
                safe(f.message, 600),
            )
        console.print(table)
        if uncounted:
            console.print(Text("* not counted in the waste total: spend to investigate, a budget overrun, or the same "
                               "calls as a larger finding of the same mechanism", style="dim"))
    if verbose:
        for f in doc.findings:
            console.print()
            console.print(Text(f"{f.fingerprint}  {f.title}", style="bold"))
            console.print(safe(f.message, 400))
            console.print(Text("evidence: ", style="dim") + safe(", ".join(f"{k}={v}" for k, v in f.evidence.items()), 600))
            if f.example_trace_ids:
                console.print(Text("examples: " + ", ".join(f.example_trace_ids), style="dim"))
            console.print(Text(f"waste: {f.waste.tokens or 0:,} tokens, {usd(f.waste.usd)}; {f.waste.extrapolation}", style="dim"))
            console.print(Text("fix: " + f.remediation))
    _print_spend_change(console, doc)
    for rule_id, why in doc.skipped_rules.items():
        if verbose:
            console.print(Text(f"skipped {rule_id}: {why}", style="dim"))
    for rule_id, why in doc.rule_errors.items():
        console.print(Text(f"rule {rule_id} failed: {why}", style="red"))


def _print_spend_change(console: Console, doc) -> None:
    """With a baseline: each feature's change in spend, split into parts that add up to it."""
    from llmaudit.report.baseline import comparison_of
    from llmaudit.report.spend_change import PART_LABELS, PARTS, TITLE, cents, creep_text, shown

    cmp = comparison_of(doc)
    if cmp is None or cmp.spend_change is None:
        return
    console.print()
    if cmp.spend_change.note:
        console.print(Text(f"{TITLE}: {cmp.spend_change.note}", style="dim"))
        return
    rows = shown(cmp.spend_change)
    if not rows:
        console.print(Text(f"{TITLE}: no feature's spend changed since the baseline", style="dim"))
        return
    table = Table(show_edge=False, title=f"{TITLE} since the baseline, by feature", title_justify="left")
    table.add_column("feature")
    for col in ("baseline", "now", "change", *(PART_LABELS[p] for p in PARTS)):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("input tokens/request")
    for r in rows:
        table.add_row(safe(r.feature if r.feature is not None else "untagged", 40), usd(r.baseline_usd), usd(r.current_usd),
                      signed_usd(r.change_usd), *(signed_usd(v) for v in cents(r).values()), creep_text(r))
    console.print(table)
    console.print(Text(f"The parts add up to the change: {cmp.spend_change.method}.", style="dim"))
