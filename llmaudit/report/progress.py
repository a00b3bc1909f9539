"""A progress bar for ingest: on a terminal only, for inputs worth waiting on."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.text import Text

SHOW_ABOVE_BYTES = 4 << 20


# What one record of each kind of file is.
UNITS = {"traces": "spans", "billing": "rows", "metrics": "samples"}


class RecordsPerSecond(ProgressColumn):
    """Spans (or billing rows, metric samples) read so far and per second, for the file being read."""

    def render(self, task) -> Text:
        records = task.fields.get("records", 0)
        unit = task.fields.get("unit", "records")
        elapsed = task.elapsed or 0
        rate = records / elapsed if elapsed > 0 else 0
        return Text(f"{records:,} {unit}  {rate:,.0f} {unit}/s", style="progress.data.speed")


@contextmanager
def ingest_progress(console: Console, total_bytes: int, *, enabled: bool = True):
    """Yields on_progress(bytes, records, kind). Silent when not a terminal, quiet, or the input is small."""
    if not enabled or not console.is_terminal or total_bytes < SHOW_ABOVE_BYTES:
        yield lambda nbytes, records, kind=None: None
        return
    columns = [
        TextColumn("ingesting"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        RecordsPerSecond(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("ingest", total=total_bytes, records=0, unit="records")
        counts: dict[str, int] = {}

        def on_progress(nbytes: int, records: int, kind: str | None = None) -> None:
            unit = UNITS.get(kind, "records")
            counts[unit] = counts.get(unit, 0) + records
            progress.update(task, advance=nbytes, records=counts[unit], unit=unit)

        yield on_progress
