"""`llmaudit replay`: measure the saving of a fix against a real model server.

    llmaudit replay build FINDING_ID --db audit.duckdb -o workload.jsonl
    llmaudit replay run workload.jsonl workload.remediated.jsonl --endpoint http://127.0.0.1:8000 --repeats 3
    llmaudit replay FINDING_ID --db audit.duckdb --endpoint http://127.0.0.1:8000 --repeats 3
    llmaudit replay capacity FINDING_ID --db audit.duckdb --endpoint URL --slo-ttft 0.5

`replay FINDING_ID` is the all-in-one command (build, run both variants alternately, price, store);
it is the `all` subcommand, and a first argument that is not a subcommand name is taken as its
FINDING_ID, so `llmaudit replay all FINDING_ID` and `llmaudit replay FINDING_ID` are the same.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from llmaudit.cli_options import (AcceleratorOption, ConfigOption, Group, PricesOption, QuietOption, command,
                                  db_option, deprecated, hidden_option, list_written, new_app, settings_for)
from llmaudit.cli_output import EXIT_FINDINGS, EXIT_INTERRUPTED, err, fail, out
from llmaudit.report.numbers import usd

# All-in-one: a recorded workload longer than this is compressed to it unless a rescale is given
# (a day of traffic replayed in real time would take a day).
DEFAULT_MAX_SPAN_S = 60.0


class _ReplayGroup(Group):
    """A group whose unknown first word is the all-in-one command's FINDING_ID."""

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["all", *args]
        return super().parse_args(ctx, args)


replay_app = new_app("Replay a finding's traffic against a model server, before and after the fix, and measure the saving.",
                     cls=_ReplayGroup)


# ---------------------------------------------------------------- shared options

EndpointOpt = typer.Option(None, "--endpoint", metavar="URL", help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000.")
LaunchOpt = typer.Option(None, "--launch", metavar="COMMAND", help='Start this server command, wait for /health, stop it at the end, e.g. "python -m vllm.entrypoints.openai.api_server --model M --port 8011".')
LaunchTimeoutOpt = typer.Option(600.0, "--launch-timeout", metavar="SECONDS", help="Seconds to wait for a launched server's /health.")
ModelOpt = typer.Option(None, "--model", metavar="NAME", help="Served model name (default: the first in /v1/models).")
SpeedupOpt = typer.Option(None, "--speedup", metavar="K", help="Send k times faster than recorded.")
RateOpt = typer.Option(None, "--rate", metavar="RPS", help="Rescale arrivals to this mean rate (requests/s), keeping bursts.")
DurationOpt = typer.Option(None, "--duration", metavar="SECONDS", help="Rescale arrivals so the last is sent at this many seconds.")
RepeatsOpt = typer.Option(1, "--repeats", "-n", min=1, metavar="N", help="Runs of each variant (alternated ABBA).")
SloTtftOpt = typer.Option(None, "--slo-ttft", metavar="SECONDS", help="SLO on time to first token, seconds (for goodput).")
SloE2eOpt = typer.Option(None, "--slo-e2e", metavar="SECONDS", help="SLO on end-to-end latency, seconds (for goodput).")
WarmupOpt = typer.Option(8, "--warmup", min=0, metavar="N", help="Requests sent (not measured) before the first run.")
TimeoutOpt = typer.Option(300.0, "--timeout", metavar="SECONDS", help="Seconds one request may take before it counts as timed out.")
SeedOpt = typer.Option(None, "--seed", metavar="TEXT", help="Token-id seed (default: random per replay, printed; reuse it to send identical prompts).")
GpusOpt = typer.Option(1.0, "--gpus-per-server", metavar="N", help="GPUs behind the server (tensor parallel): GPU-seconds = busy seconds x this.")
GpuUsdOpt = typer.Option(None, "--gpu-hour-usd", metavar="USD", help="GPU-hour price in USD, instead of the catalog's.")
JsonOpt = typer.Option(None, "--json", metavar="FILE", help="Write the whole outcome (runs, measured saving or why not) as JSON (schema: report_templates/replay.schema.json).")
TokenRangeOpt = typer.Option("10:2000", "--token-range", metavar="LOW:HIGH", help="Token ids prompts are drawn from (inside the model's vocabulary).")
MinSuccessOpt = typer.Option(0.95, "--min-success", min=0.01, max=1.0, metavar="SHARE", help="Share of each run's requests that must succeed for the replay to count as a measurement.")
FitContextOpt = typer.Option(None, "--fit-context", metavar="drop|scale", help="Requests longer than the server's context: drop them from every variant, or scale every request down to fit (default: stop and say so).")
OldGpuOpt = hidden_option("--gpu")


def _token_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split(":"))
    except ValueError:
        raise fail(f"--token-range {text!r}: expected LOW:HIGH, e.g. 10:2000")
    if lo < 0 or hi - lo < 16:
        raise fail("--token-range must hold at least 16 ids, from 0 up")
    return lo, hi


def _fit_mode(text: Optional[str]):
    if text is None:
        return None
    mode = text.lower()
    if mode not in ("drop", "scale"):
        raise fail(f"--fit-context must be drop or scale, not {text!r}")
    return mode


@contextmanager
def _server(endpoint: Optional[str], launch: Optional[str], launch_timeout: float):
    """The endpoint to use, starting (and finally stopping) a server when --launch is given."""
    from llmaudit.replay.server import ServerError, endpoint_from_command, launched

    if not endpoint and not launch:
        raise fail("give --endpoint URL (a running server) or --launch \"COMMAND\" (start one)")
    if not launch:
        yield endpoint
        return
    from llmaudit.replay.client import _base

    url = endpoint or endpoint_from_command(launch)
    err.print(f"starting server: {launch}\nwaiting for {_base(url)}/health (up to {launch_timeout:g} s)", markup=False)
    try:
        with launched(launch, _base(url), timeout_s=launch_timeout) as srv:
            err.print(f"server healthy after {srv.started_s:.0f} s (log: {srv.log_path})", markup=False)
            yield url
        err.print("server stopped")
    except ServerError as exc:
        raise fail(str(exc))


def _options(endpoint: str, *, model, speedup, rate, duration, repeats, slo_ttft, slo_e2e, warmup, timeout, seed, gpus,
             accelerator, gpu_hour_usd, token_range, min_success, fit_context, max_requests=2000, max_span=None):
    from llmaudit.replay.workflow import ReplayOptions

    lo, hi = _token_range(token_range)
    return ReplayOptions(endpoint=endpoint, model=model, speedup=speedup, rate=rate, duration=duration,
                         max_span_s=max_span, repeats=repeats, slo_ttft_s=slo_ttft, slo_e2e_s=slo_e2e, warmup=warmup,
                         timeout_s=timeout, seed=seed, gpus_per_server=gpus, accelerator=accelerator,
                         gpu_hour_usd=gpu_hour_usd, token_low=lo, token_high=hi, min_success=min_success,
                         fit_context=_fit_mode(fit_context), max_requests=max_requests)


def _fmt(x: Any, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _usd(x: float | None) -> str:
    # Small replayed samples give small sums: show them, rather than $0.00.
    return usd(x, "-", precise=True)


def _print_workloads(workloads, transformation: str | None, notes: list[str], production: int | None,
                     sampled: int | None) -> None:
    t = Table(show_edge=False, title="workloads")
    for col in ("variant", "requests", "input tokens", "output tokens", "prefix groups", "span s"):
        t.add_column(col, justify="right" if col != "variant" else "left")
    for label, wl in workloads:
        groups = len({r.prefix_group for r in wl.requests if r.prefix_group})
        t.add_row(label, _fmt(len(wl.requests)), _fmt(wl.input_tokens), _fmt(wl.output_tokens), _fmt(groups),
                  _fmt(wl.span_s, 1))
    out.print(t)
    if transformation:
        out.print(f"remediation: {transformation}", markup=False)
    if production is not None:
        out.print(f"production: {production} requests in the finding's window; replayed: {sampled}")
    for a in notes:
        out.print(f"  - {a}", markup=False)


# ---------------------------------------------------------------- build

@command(replay_app, "build")
def build_cmd(
    finding_id: str = typer.Argument(..., metavar="FINDING", help="Finding fingerprint (or a unique prefix, or a rule id with one finding)."),
    db: Optional[Path] = db_option(required=True, detail=" that the audit wrote"),
    output: Path = typer.Option(Path("workload.jsonl"), "--output", "-o", metavar="FILE", help="Write the baseline workload to this file; the twin goes beside it as NAME.remediated.jsonl."),
    max_requests: int = typer.Option(2000, "--max-requests", min=1, metavar="N", help="Replay at most this many calls (whole requests, from the window's start)."),
    quiet: bool = QuietOption,
    config: Optional[Path] = ConfigOption,
):
    """Write a finding's baseline workload and its remediated twin."""
    from llmaudit.replay.build import BuildError, build, find_finding
    from llmaudit.replay.workflow import ReplayError, _store
    from llmaudit.replay.workload import twin_path, write

    settings = settings_for(config)
    try:
        with _store(db) as store:
            finding = find_finding(store, finding_id, settings)
            built = build(store, finding, name=output.name.removesuffix(".jsonl"), max_requests=max_requests)
    except (BuildError, ReplayError) as exc:
        raise fail(str(exc))
    twin = twin_path(output)
    built.baseline.header.twin = twin.name
    built.remediated.header.twin = output.name
    write(built.baseline, output)
    write(built.remediated, twin)
    if not quiet:
        out.print(f"{finding.fingerprint}  {finding.category}: {finding.message}", markup=False)
        h = built.baseline.header
        _print_workloads([("baseline", built.baseline), ("remediated", built.remediated)],
                         built.remediated.header.transformation, built.remediated.header.assumptions,
                         h.production_requests, h.sampled_requests)
    list_written([output, twin], quiet=quiet)


# ---------------------------------------------------------------- run and all: printing an outcome

def _print_runs(outcome) -> None:
    t = Table(show_edge=False, title=f"runs ({outcome.replay_id}, seed {outcome.config.get('seed')})")
    cols = ("#", "variant", "ok/sent", "prompt tok", "busy s", "GPU-s/req", "req/s", "goodput/s", "TTFT p50",
            "TTFT p99", "ITL p50", "e2e p50", "e2e p99")
    for c in cols:
        t.add_column(c, justify="left" if c == "variant" else "right", no_wrap=True)
    for r in outcome.runs:
        s = r.summary
        t.add_row(str(r.run_index), r.variant + (" (cut short)" if r.interrupted else ""), f"{s['ok']}/{s['sent']}",
                  _fmt(s["prompt_tokens"]), _fmt(r.busy_s, 2), _fmt(r.gpu_seconds_per_request, 4),
                  _fmt(s["throughput_rps"], 2), _fmt(s["goodput_rps"], 2), _fmt(s["ttft_p50_s"]), _fmt(s["ttft_p99_s"]),
                  _fmt(s["itl_p50_s"], 4), _fmt(s["e2e_p50_s"]), _fmt(s["e2e_p99_s"]))
    out.print(t)
    for r in outcome.runs:
        if r.summary["errors"]:
            out.print(f"run {r.run_index} ({r.variant}): {r.summary['by_status']}; first errors: "
                      f"{'; '.join(r.summary['first_errors'][:3])}", markup=False)
        if r.summary.get("length_mismatches"):
            out.print(f"run {r.run_index}: {r.summary['length_mismatches']} request(s) got other token counts than "
                      "asked (does the server honour ignore_eos and token-id prompts?)")


def _print_measured(finding, measured) -> None:
    d = measured.detail
    b, r = d["baseline"], d["remediated"]
    t = Table(show_edge=False, title="baseline vs remediated (mean over complete pairs)")
    for c in ("", "baseline", "remediated", "change"):
        t.add_column(c, justify="left" if c == "" else "right")

    def row(label, key, nd=3):
        x, y = b.get(key), r.get(key)
        ch = f"{(y - x) / x:+.1%}" if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x else "-"
        t.add_row(label, _fmt(x, nd), _fmt(y, nd), ch)

    row("prompt tokens (usage)", "prompt_tokens", 0)
    row("prompt tokens (/metrics)", "server_prompt_tokens", 0)
    row("generation tokens (/metrics)", "server_generation_tokens", 0)
    row("busy seconds", "busy_s", 2)
    row("GPU-seconds per request", "gpu_seconds_per_request", 4)
    row("throughput req/s", "throughput_rps", 2)
    row("goodput req/s", "goodput_rps", 2)
    row("TTFT p50 s", "ttft_p50_s")
    row("TTFT p99 s", "ttft_p99_s")
    row("e2e p99 s", "e2e_p99_s")
    row("prefix cache hit rate", "prefix_cache_hit_rate")
    out.print(t)
    out.print(f"saved GPU-seconds per request: {_fmt(measured.gpu_seconds_saved_per_request, 4)} "
              f"(each pair: {', '.join(_fmt(x, 4) for x in d['gpu_seconds_saved_per_request_each'])}); "
              f"busy time {_fmt((d['busy_time_reduction'] or 0) * 100, 1)}% lower")
    spread = f" ± {_usd(measured.usd_per_month_spread)}" if measured.usd_per_month_spread is not None else ""
    est = finding.waste.usd_per_month if finding else None
    if measured.basis == "api_tokens":
        tok = measured.tokens_saved_per_request
        out.print(f"saved tokens per request (server-measured): prompt {_fmt(tok.get('prompt'), 1)} "
                  f"(cached {_fmt(tok.get('cached_prompt'), 1)}), completion {_fmt(tok.get('completion'), 1)}")
        measured_txt = f"{_usd(measured.usd_per_month)}{spread} per month (API tokens at the model's prices)"
    else:
        measured_txt = f"{_usd(measured.usd_per_month)}{spread} per month (GPU time on {measured.gpu})"
    est_txt = f"{_usd(est)} per month ({finding.rule_id}'s estimate)" if est is not None else "none (unpriced)"
    out.print(f"measured saving: {measured_txt}   estimated waste: {est_txt}", markup=False)
    if measured.basis == "api_tokens":
        out.print(f"if self-hosted on {measured.gpu}: {_usd(measured.gpu_usd_per_month)} per month of GPU time "
                  "(another cost basis: not comparable with the estimate)", markup=False)
    out.print("assumptions:")
    for a in d["assumptions"]:
        out.print(f"  - {a}", markup=False)


def _progress(quiet: bool):
    def on_event(kind: str, data: dict) -> None:
        if kind == "note":
            err.print(f"note: {data['text']}", markup=False)
        if quiet:
            return
        if kind == "server":
            s = data["server"]
            limit = f", max context {s.max_model_len:,} tokens" if s.max_model_len else ", max context not reported"
            err.print(f"server: {s.endpoint} serves {s.model}{limit}", markup=False)
            for n in data["notes"]:
                err.print(f"  - {n}", markup=False)
        elif kind == "compressed":
            err.print(f"recorded span {data['span_s']:,.0f} s compressed to {data['duration']:g} s (--max-span); "
                      "pass --speedup/--rate/--duration to choose")
        elif kind == "warmup":
            err.print(f"warm-up: {data['requests']} requests")
        elif kind == "run_start":
            err.print(f"run {data['index']}: {data['variant']} (repeat {data['repeat'] + 1}), {data['requests']} requests ...")
        elif kind == "run_end":
            r = data["record"]
            s = r.summary
            err.print(f"run {r.run_index}: {s['ok']}/{s['sent']} ok, busy {r.busy_s:.2f} s, prompt tokens {s['prompt_tokens']:,}"
                      + (" (interrupted)" if r.interrupted else ""))
        elif kind == "built":
            f, built = data["finding"], data["built"]
            out.print(f"{f.fingerprint}  {f.category}: {f.message}", markup=False)
            h = built.baseline.header
            _print_workloads([("baseline", built.baseline), ("remediated", built.remediated)],
                             built.remediated.header.transformation, built.remediated.header.assumptions,
                             h.production_requests, h.sampled_requests)
    return on_event


def _finish(outcome, *, json_out: Optional[Path], quiet: bool, written: list) -> None:
    """Print the outcome, write --json, and exit: 0 measured, 1 not measured, 130 interrupted."""
    from llmaudit.report.outputs import ReportError, write_text

    if not quiet:
        _print_runs(outcome)
    if outcome.measured is not None:
        _print_measured(outcome.finding, outcome.measured)
    elif outcome.status == "runs_only":
        if not quiet:
            out.print("no baseline and remediated twin among the workloads: each run is measured, no saving")
        for why in outcome.not_measured:
            err.print(f"failed: {why}", markup=False)
    else:
        err.print("not measured: " + ("; ".join(outcome.not_measured) or "no run completed"), markup=False)
        if outcome.stored_in and outcome.runs:
            err.print("the runs are stored as failed and no report shows them as a measurement", markup=False)
    if outcome.stored_in and not quiet:
        out.print(f"stored in {outcome.stored_in}: replay {outcome.replay_id} ({len(outcome.runs)} runs, "
                  + ("measured)" if outcome.measured is not None else "not a measurement)"), markup=False)
    if json_out:
        try:
            write_text(json_out, outcome.model_dump_json(indent=2) + "\n")
        except ReportError as exc:
            raise fail(str(exc))
        written.append(json_out)
    list_written(written, quiet=quiet)
    if outcome.status == "interrupted":
        err.print("interrupted: the runs above are what was measured before Ctrl-C", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    if outcome.status == "not_measured" or (outcome.status == "runs_only" and outcome.not_measured):
        raise typer.Exit(EXIT_FINDINGS)


def _label_workloads(paths: list[Path]):
    from llmaudit.replay.workload import WorkloadError, read

    loaded = []
    for p in paths:
        try:
            loaded.append(read(p))
        except WorkloadError as exc:
            raise fail(str(exc))
    variants = [w.header.variant for w in loaded]
    labels = []
    for p, w in zip(paths, loaded):
        if w.header.variant != "custom" and variants.count(w.header.variant) == 1:
            labels.append(w.header.variant)
        else:
            labels.append(p.name.removesuffix(".jsonl"))
    if len(set(labels)) != len(labels):
        raise fail("two workloads have the same name; rename one file")
    return list(zip(labels, loaded))


@command(replay_app, "run")
def run_cmd(
    workloads: list[Path] = typer.Argument(..., metavar="WORKLOAD", help="Workload files (JSON lines); a baseline and its remediated twin are compared."),
    endpoint: Optional[str] = EndpointOpt,
    launch: Optional[str] = LaunchOpt,
    launch_timeout: float = LaunchTimeoutOpt,
    model: Optional[str] = ModelOpt,
    speedup: Optional[float] = SpeedupOpt,
    rate: Optional[float] = RateOpt,
    duration: Optional[float] = DurationOpt,
    repeats: int = RepeatsOpt,
    slo_ttft: Optional[float] = SloTtftOpt,
    slo_e2e: Optional[float] = SloE2eOpt,
    warmup: int = WarmupOpt,
    timeout: float = TimeoutOpt,
    seed: Optional[str] = SeedOpt,
    gpus: float = GpusOpt,
    gpu_hour_usd: Optional[float] = GpuUsdOpt,
    min_success: float = MinSuccessOpt,
    fit_context: Optional[str] = FitContextOpt,
    db: Optional[Path] = db_option(detail=" to store the runs (and the measured saving) in"),
    json_out: Optional[Path] = JsonOpt,
    token_range: str = TokenRangeOpt,
    quiet: bool = QuietOption,
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
    old_gpu: Optional[str] = OldGpuOpt,
):
    """Replay workload files against a server (open loop, streaming) and measure each run."""
    from llmaudit.replay.workflow import ReplayError, replay_workloads

    accelerator = deprecated("--gpu", "--accelerator", old_gpu, accelerator)
    settings = settings_for(config, prices, accelerator)
    labeled = _label_workloads(workloads)
    with _server(endpoint, launch, launch_timeout) as url:
        opts = _options(url, model=model, speedup=speedup, rate=rate, duration=duration, repeats=repeats,
                        slo_ttft=slo_ttft, slo_e2e=slo_e2e, warmup=warmup, timeout=timeout, seed=seed, gpus=gpus,
                        accelerator=accelerator, gpu_hour_usd=gpu_hour_usd, token_range=token_range,
                        min_success=min_success, fit_context=fit_context)
        try:
            outcome = replay_workloads(labeled, opts, settings, db=db, on_event=_progress(quiet))
        except ReplayError as exc:
            raise fail(str(exc))
    _finish(outcome, json_out=json_out, quiet=quiet, written=[])


# ---------------------------------------------------------------- all in one

@command(replay_app, "all")
def all_cmd(
    finding_id: str = typer.Argument(..., metavar="FINDING", help="Finding fingerprint (or a unique prefix, or a rule id with one finding)."),
    db: Optional[Path] = db_option(detail=" that the audit wrote; the replay is stored in it too"),
    endpoint: Optional[str] = EndpointOpt,
    launch: Optional[str] = LaunchOpt,
    launch_timeout: float = LaunchTimeoutOpt,
    model: Optional[str] = ModelOpt,
    speedup: Optional[float] = SpeedupOpt,
    rate: Optional[float] = RateOpt,
    duration: Optional[float] = DurationOpt,
    max_span: float = typer.Option(DEFAULT_MAX_SPAN_S, "--max-span", metavar="SECONDS", help="Without --speedup/--rate/--duration, compress a longer recorded span to this many seconds."),
    repeats: int = RepeatsOpt,
    slo_ttft: Optional[float] = SloTtftOpt,
    slo_e2e: Optional[float] = SloE2eOpt,
    warmup: int = WarmupOpt,
    timeout: float = TimeoutOpt,
    seed: Optional[str] = SeedOpt,
    gpus: float = GpusOpt,
    gpu_hour_usd: Optional[float] = GpuUsdOpt,
    min_success: float = MinSuccessOpt,
    fit_context: Optional[str] = FitContextOpt,
    max_requests: int = typer.Option(2000, "--max-requests", min=1, metavar="N", help="Replay at most this many calls."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the workload files too: the baseline to this file, the twin beside it."),
    json_out: Optional[Path] = JsonOpt,
    token_range: str = TokenRangeOpt,
    quiet: bool = QuietOption,
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
    old_gpu: Optional[str] = OldGpuOpt,
):
    """Build a finding's workloads, replay both alternately, and store the measured saving."""
    from llmaudit.replay.workflow import ReplayError, replay_finding
    from llmaudit.replay.workload import twin_path

    accelerator = deprecated("--gpu", "--accelerator", old_gpu, accelerator)
    if db is None:
        raise fail("give --db FILE: the store that `llmaudit analyze FILES --db FILE` wrote")
    settings = settings_for(config, prices, accelerator)
    with _server(endpoint, launch, launch_timeout) as url:
        opts = _options(url, model=model, speedup=speedup, rate=rate, duration=duration, repeats=repeats,
                        slo_ttft=slo_ttft, slo_e2e=slo_e2e, warmup=warmup, timeout=timeout, seed=seed, gpus=gpus,
                        accelerator=accelerator, gpu_hour_usd=gpu_hour_usd, token_range=token_range,
                        min_success=min_success, fit_context=fit_context, max_requests=max_requests, max_span=max_span)
        try:
            outcome = replay_finding(db, finding_id, opts, settings, workload_path=output, on_event=_progress(quiet))
        except ReplayError as exc:
            raise fail(str(exc))
    _finish(outcome, json_out=json_out, quiet=quiet, written=[output, twin_path(output)] if output else [])


# ---------------------------------------------------------------- capacity

@command(replay_app, "capacity")
def capacity_cmd(
    target: str = typer.Argument(..., metavar="FINDING|WORKLOAD", help="A finding (with --db) or a workload file whose request shapes are swept."),
    db: Optional[Path] = db_option(detail=" that the audit wrote (for a finding)"),
    endpoint: Optional[str] = EndpointOpt,
    launch: Optional[str] = LaunchOpt,
    launch_timeout: float = LaunchTimeoutOpt,
    model: Optional[str] = ModelOpt,
    slo_ttft: Optional[float] = SloTtftOpt,
    slo_e2e: Optional[float] = SloE2eOpt,
    slo_target: float = typer.Option(0.95, "--slo-target", metavar="SHARE", help="Share of requests that must meet the SLO at a rate."),
    step_s: float = typer.Option(20.0, "--step-seconds", metavar="SECONDS", help="Seconds of traffic per rate step."),
    start_rps: float = typer.Option(1.0, "--start-rps", metavar="RPS", help="First rate tried; it doubles while the SLO holds."),
    max_rps: float = typer.Option(512.0, "--max-rps", metavar="RPS", help="Highest rate tried."),
    refine: int = typer.Option(3, "--refine", min=0, metavar="N", help="Bisection steps between the last good and first bad rate."),
    peak_rps: Optional[float] = typer.Option(None, "--peak-rps", metavar="RPS", help="Peak request rate to serve (default: the busiest minute of the finding's traffic)."),
    provisioned: Optional[float] = typer.Option(None, "--provisioned", metavar="N", help="Replicas provisioned today (default: from the finding's evidence)."),
    headroom: float = typer.Option(0.0, "--headroom", metavar="SHARE", help="Extra share of capacity to keep above the peak, e.g. 0.2."),
    gpus: float = GpusOpt,
    gpu_hour_usd: Optional[float] = GpuUsdOpt,
    timeout: float = typer.Option(120.0, "--timeout", metavar="SECONDS", help="Seconds one request may take."),
    fit_context: Optional[str] = FitContextOpt,
    json_out: Optional[Path] = JsonOpt,
    token_range: str = TokenRangeOpt,
    quiet: bool = QuietOption,
    prices: Optional[Path] = PricesOption,
    accelerator: Optional[str] = AcceleratorOption,
    config: Optional[Path] = ConfigOption,
    old_gpu: Optional[str] = OldGpuOpt,
):
    """Sweep request rates against one server: the highest rate within the SLO, and replicas needed vs provisioned."""
    import json

    from llmaudit.replay.build import BuildError, build, find_finding, peak_rate
    from llmaudit.replay.capacity import CapacityConfig, provisioned_from, replicas, sweep
    from llmaudit.replay.preflight import PreflightError, check_server, fit_context as fit
    from llmaudit.replay.workflow import ReplayError, ReplayOptions, _store, gpu_price_for
    from llmaudit.replay.workload import WorkloadError, read
    from llmaudit.report.outputs import ReportError, write_text

    accelerator = deprecated("--gpu", "--accelerator", old_gpu, accelerator)
    if slo_ttft is None and slo_e2e is None:
        raise fail("capacity needs an SLO: --slo-ttft and/or --slo-e2e")
    settings = settings_for(config, prices, accelerator)
    finding = None
    try:
        if Path(target).is_file():
            shapes = read(target)
        else:
            if db is None:
                raise fail(f"{target}: no such workload file; for a finding, give --db FILE")
            with _store(db) as store:
                finding = find_finding(store, target, settings)
                shapes = build(store, finding, name="capacity").baseline
                if peak_rps is None:
                    peak_rps = peak_rate(store, finding)["peak_rps"]
            if provisioned is None:
                provisioned = provisioned_from(finding.evidence)
        price = gpu_price_for(ReplayOptions(endpoint="", accelerator=accelerator, gpu_hour_usd=gpu_hour_usd), settings)
    except (WorkloadError, BuildError, ReplayError) as exc:
        raise fail(str(exc))
    lo, hi = _token_range(token_range)

    def on_step(st):
        if quiet:
            return
        s = st.summary
        err.print(f"{st.rate:8.3f} req/s: {'meets' if st.passed else 'misses'} the SLO "
                  f"({_fmt(s['slo_attainment'], 3)} of {s['sent']}), TTFT p99 {_fmt(s['ttft_p99_s'])} s, "
                  f"e2e p99 {_fmt(s['e2e_p99_s'])} s, errors {s['errors']}")

    with _server(endpoint, launch, launch_timeout) as url:
        try:
            server = check_server(url, model)
            fitted, _notes, _scale = fit([("capacity", shapes)], server.max_model_len, _fit_mode(fit_context))
            shapes = fitted[0][1]
        except PreflightError as exc:
            raise fail(str(exc))
        cfg = CapacityConfig(endpoint=url, model=server.model, slo_ttft_s=slo_ttft, slo_e2e_s=slo_e2e,
                             slo_target=slo_target, step_s=step_s, start_rps=start_rps, max_rps=max_rps, refine=refine,
                             timeout_s=timeout, token_low=lo, token_high=hi)
        res = sweep(shapes, cfg, on_step=on_step)
    plan = replicas(peak_rps, res.capacity_rps, provisioned, headroom=headroom, gpus_per_replica=gpus,
                    gpu_hour_usd=price.usd_per_hour)
    t = Table(show_edge=False, title="capacity sweep")
    for c in ("rate req/s", "SLO", "attainment", "goodput/s", "TTFT p99", "e2e p99", "errors"):
        t.add_column(c, justify="right")
    for st in res.steps:
        s = st.summary
        t.add_row(_fmt(st.rate, 3), "meets" if st.passed else "misses", _fmt(s["slo_attainment"]),
                  _fmt(s["goodput_rps"], 2), _fmt(s["ttft_p99_s"]), _fmt(s["e2e_p99_s"]), _fmt(s["errors"]))
    out.print(t)
    out.print(f"highest rate meeting the SLO on one server: {_fmt(res.capacity_rps, 3)} req/s")
    out.print(f"peak: {_fmt(peak_rps, 3)} req/s -> replicas needed: {_fmt(plan['needed'])}; provisioned: "
              f"{_fmt(plan['provisioned'])}; idle: {_fmt(plan['idle'])}"
              + (f" (${plan['idle_usd_per_month']:,.2f} per month at ${price.usd_per_hour:g}/GPU-hour, {price.gpu})"
                 if plan["idle_usd_per_month"] is not None else ""), markup=False)
    if json_out:
        doc = {"config": cfg.model_dump(exclude={"api_key"}), "server": server.model_dump(), "capacity_rps": res.capacity_rps,
               "steps": [{"rate": s.rate, "passed": s.passed, "summary": s.summary} for s in res.steps],
               "replicas": plan, "gpu": price.gpu, "gpu_hour_usd": price.usd_per_hour,
               "finding": finding.fingerprint if finding else None, "interrupted": res.interrupted}
        try:
            write_text(json_out, json.dumps(doc, indent=2, default=str) + "\n")
        except ReportError as exc:
            raise fail(str(exc))
    list_written([json_out], quiet=quiet)
    if res.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
