"""Terminal output: tables for people, never telemetry content beyond names and numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmaudit.ingest.pipeline import IngestReport
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
        return "no spans"
    return f"{s.window_start:%Y-%m-%d %H:%M} → {s.window_end:%Y-%m-%d %H:%M} UTC"


def print_ingest(console: Console, report: IngestReport, store: Store, db: Path | None) -> None:
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
    console.print(f"Window       {_window(s)}")
    console.print(f"Spans        {s.spans:,} in {s.traces:,} traces ({s.orphan_spans:,} orphan spans)")
    console.print(f"LLM calls    {s.llm_calls:,}    retrievals {s.retrievals:,}")
    console.print(f"Rejects      {s.rejects:,}" + ("  (see: llmaudit query --db FILE \"SELECT * FROM rejects\")" if s.rejects and db else ""))
    console.print(Text("Services     " + (", ".join(s.services) or "none")))
    for f in report.files:
        if f.first_reject:
            console.print(Text(f"  {f.path}: {f.rejects:,} rejected; first: {f.first_reject}", style="yellow"))
    if s.models:
        console.print()
        t = Table(title="Tokens by model", title_justify="left", show_edge=False)
        for col in ("provider", "model", "calls", "input tokens", "cached input", "output tokens", "estimated"):
            t.add_column(col, justify="left" if col in ("provider", "model") else "right")
        for m in s.models:
            t.add_row(safe(m.provider), safe(m.model), f"{m.calls:,}", f"{m.input_tokens:,}", f"{m.cached_input_tokens:,}",
                      f"{m.output_tokens:,}", f"{m.estimated_calls:,}" if m.estimated_calls else "")
        console.print(t)


def print_query(console: Console, columns: list[str], rows: list[tuple], fmt: str) -> None:
    if fmt == "json":
        data = [dict(zip(columns, row)) for row in rows]
        console.file.write(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        console.file.write(buf.getvalue())
        return
    table = Table(show_edge=False)
    for c in columns:
        table.add_column(safe(c))
    for row in rows:
        table.add_row(*(safe(v) for v in row))
    console.print(table)
    console.print(f"{len(rows):,} rows", style="dim")
