"""`llmaudit plan`: API or self-host, replicas at peak, scale-to-zero, and the autoscaler to run, from a store.

    llmaudit plan --db audit.duckdb --slo-ttft 0.5 --accelerator H100 --self-host-model llama-3.1-8b -f json
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from llmaudit.cli_options import (AcceleratorOption, ConfigOption, OutputOption, PricesOption, QuietOption, ReportFormat,
                                  command, db_option, format_option, hidden_option, list_written, settings_for)
from llmaudit.cli_output import fail, out


def plan(
    db: Path = db_option(required=True, detail=" that `llmaudit analyze --db` (and `replay capacity --db`) wrote"),
    slo_ttft: Optional[float] = typer.Option(None, "--slo-ttft", metavar="SECONDS", help="Latency target: time to first token, seconds (default: a capacity sweep's, else 2)."),
    slo_e2e: Optional[float] = typer.Option(None, "--slo-e2e", metavar="SECONDS", help="Latency target: end-to-end, seconds."),
    self_host_model: Optional[str] = typer.Option(None, "--self-host-model", metavar="CLASS", help="The open model class to weigh self-hosting with (llmaudit/plan/model_classes.yaml; default: the class of the self-hosted model in the store)."),
    headroom: Optional[float] = typer.Option(None, "--headroom", metavar="SHARE", help="Capacity kept above the peak, e.g. 0.2 (the default)."),
    ops_usd: Optional[float] = typer.Option(None, "--ops-usd", metavar="USD", help="Fixed cost of running self-hosted models (ops time), dollars per month (default 0)."),
    output_format: ReportFormat = format_option(ReportFormat.table, ": table or json (the plan document; schema report_templates/plan.schema.json)"),
    output: Optional[Path] = OutputOption,
    quiet: bool = QuietOption,
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
    gpu: Optional[str] = hidden_option("--gpu"),
):
    """Plan capacity and cost from a store: API or self-host, replicas at peak, scale-to-zero, autoscaling."""
    from llmaudit.normalize.derive import derive
    from llmaudit.plan.build import PlanOptions, build_plan
    from llmaudit.plan.classes import PlanError
    from llmaudit.plan.terminal import print_plan
    from llmaudit.report.outputs import ReportError, write_text
    from llmaudit.store import Store, StoreError

    accelerator = accelerator or gpu  # --gpu: the spelling of --accelerator
    if not db.exists():
        raise fail(f"{db}: no such store; run `llmaudit analyze FILES --db {db}` first")
    settings = settings_for(config, prices, accelerator)
    opts = PlanOptions(slo_ttft_s=slo_ttft, slo_e2e_s=slo_e2e, headroom=headroom, ops_usd_per_month=ops_usd,
                       accelerator=accelerator, self_host_model=self_host_model)
    # A plan only reads the store (opened read-only), unless --prices asks to price the calls again.
    try:
        store = Store(db, read_only=prices is None)
    except StoreError as exc:
        raise fail(str(exc))
    with store:
        if prices is not None:
            derive(store, settings)  # the user's prices (--accelerator is the plan's own GPU, not a repricing)
        try:
            doc = build_plan(store, opts, settings)
        except PlanError as exc:
            raise fail(str(exc))
    if output_format is ReportFormat.json:
        text = doc.model_dump_json(indent=2) + "\n"
    else:
        buffer = io.StringIO()
        console = Console(file=buffer, width=160, highlight=False, soft_wrap=False) if output else out
        print_plan(console, doc)
        text = buffer.getvalue()
    try:
        if output:
            write_text(output, text)
        elif output_format is ReportFormat.json:
            sys.stdout.write(text)
    except ReportError as exc:
        raise fail(str(exc))
    list_written([output], quiet=quiet)


def register(app: typer.Typer) -> None:
    command(app, "plan")(plan)
