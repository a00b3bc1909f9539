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

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table
from typer.core import TyperGroup

from llmaudit.cli_output import err, fail, out

EXIT_NOTHING_MEASURED, EXIT_INTERRUPTED = 1, 130
# All-in-one: a recorded workload longer than this is compressed to it unless a rescale is given
# (a day of traffic replayed in real time would take a day).
DEFAULT_MAX_SPAN_S = 60.0


class _ReplayGroup(TyperGroup):
    """A group whose unknown first word is the all-in-one command's FINDING_ID."""

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["all", *args]
        return super().parse_args(ctx, args)


replay_app = typer.Typer(
    cls=_ReplayGroup,
    help="Replay a finding's traffic against a model server, before and after the fix, and measure the saving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# ---------------------------------------------------------------- shared options

EndpointOpt = typer.Option(None, "--endpoint", help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000.")
LaunchOpt = typer.Option(None, "--launch", help='Start this server command, wait for /health, stop it at the end, e.g. "python -m vllm.entrypoints.openai.api_server --model M --port 8011".')
LaunchTimeoutOpt = typer.Option(600.0, "--launch-timeout", help="Seconds to wait for a launched server's /health.")
ModelOpt = typer.Option(None, "--model", help="Served model name (default: the first in /v1/models).")
SpeedupOpt = typer.Option(None, "--speedup", help="Send k times faster than recorded.")
RateOpt = typer.Option(None, "--rate", help="Rescale arrivals to this mean rate (requests/s), keeping bursts.")
DurationOpt = typer.Option(None, "--duration", help="Rescale arrivals so the last is sent at this many seconds.")
RepeatsOpt = typer.Option(1, "--repeats", "-n", min=1, help="Runs of each variant (alternated ABBA).")
SloTtftOpt = typer.Option(None, "--slo-ttft", help="SLO on time to first token, seconds (for goodput).")
SloE2eOpt = typer.Option(None, "--slo-e2e", help="SLO on end-to-end latency, seconds (for goodput).")
WarmupOpt = typer.Option(8, "--warmup", min=0, help="Requests sent (not measured) before the first run.")
TimeoutOpt = typer.Option(300.0, "--timeout", help="Seconds one request may take before it counts as timed out.")
SeedOpt = typer.Option(None, "--seed", help="Token-id seed (default: random per replay, printed; reuse it to send identical prompts).")
GpusOpt = typer.Option(1.0, "--gpus-per-server", help="GPUs behind the server (tensor parallel): GPU-seconds = busy seconds x this.")
GpuOpt = typer.Option(None, "--gpu", help="GPU whose catalog hour price is used (default H100).")
GpuUsdOpt = typer.Option(None, "--gpu-hour-usd", help="GPU-hour price in USD, instead of the catalog's.")
PricesOpt = typer.Option(None, "--prices", help="A price file overriding the bundled catalog.")
JsonOpt = typer.Option(None, "--json", help="Write the full result (runs, measured saving) as JSON to this file.")
TokenRangeOpt = typer.Option("10:2000", "--token-range", help="Token ids prompts are drawn from, LOW:HIGH (inside the model's vocabulary).")
ConfigOption = typer.Option(None, "--config", help="Config file (default: ./llmaudit.toml or [tool.llmaudit] in ./pyproject.toml).")


def _token_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split(":"))
    except ValueError:
        raise fail(f"--token-range {text!r}: expected LOW:HIGH, e.g. 10:2000")
    if lo < 0 or hi - lo < 16:
        raise fail("--token-range must hold at least 16 ids, from 0 up")
    return lo, hi


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
    err.print(f"starting server: {launch}\nwaiting for {_base(url)}/health (up to {launch_timeout:g} s)")
    try:
        with launched(launch, _base(url), timeout_s=launch_timeout) as srv:
            err.print(f"server healthy after {srv.started_s:.0f} s (log: {srv.log_path})")
            yield url
        err.print("server stopped")
    except ServerError as exc:
        raise fail(str(exc))


def _open_store(db: Optional[Path]):
    from llmaudit.store import Store, StoreError

    if db is None:
        raise fail("give --db FILE: the store that `llmaudit analyze FILES --db FILE` wrote")
    if not db.exists():
        raise fail(f"{db}: no such store")
    try:
        return Store(db)
    except StoreError as exc:
        raise fail(str(exc))


def _settings(config: Optional[Path]):
    from llmaudit.config import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc))


def _finding(store, finding_id: str, settings):
    from llmaudit.replay.build import BuildError, find_finding

    try:
        return find_finding(store, finding_id, settings)
    except BuildError as exc:
        raise fail(str(exc))


def _build(store, finding, name: str, max_requests: int):
    from llmaudit.replay.build import BuildError, build

    try:
        return build(store, finding, name=name, max_requests=max_requests)
    except BuildError as exc:
        raise fail(str(exc))


def _price(gpu, gpu_hour_usd, prices, settings=None):
    from llmaudit.pricing import PriceError
    from llmaudit.replay.savings import PriceChoiceError, gpu_hour_price

    try:
        return gpu_hour_price(gpu, gpu_hour_usd, prices if prices is not None else getattr(settings, "prices", None))
    except (PriceChoiceError, PriceError) as exc:
        raise fail(str(exc))


def _fmt(x: Any, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _usd(x: float | None) -> str:
    if x is None:
        return "-"
    # Small replayed samples give small sums: show them, rather than $0.00.
    return f"${x:,.2f}" if abs(x) >= 1 else f"${x:.4f}"


def _print_workloads(built) -> None:
    t = Table(show_edge=False, title="workloads")
    for col in ("variant", "requests", "input tokens", "output tokens", "prefix groups", "span s"):
        t.add_column(col, justify="right" if col != "variant" else "left")
    for wl in (built.baseline, built.remediated):
        groups = len({r.prefix_group for r in wl.requests if r.prefix_group})
        t.add_row(wl.header.variant, _fmt(len(wl.requests)), _fmt(wl.input_tokens), _fmt(wl.output_tokens),
                  _fmt(groups), _fmt(wl.span_s, 1))
    out.print(t)
    out.print(f"remediation: {built.remediated.header.transformation}")
    h = built.baseline.header
    out.print(f"production: {h.production_requests} requests in the finding's window; replayed: {h.sampled_requests}")
    for a in built.remediated.header.assumptions:
        out.print(f"  - {a}")


# ---------------------------------------------------------------- build

@replay_app.command("build")
def build_cmd(
    finding_id: str = typer.Argument(..., help="Finding fingerprint (or a unique prefix, or a rule id with one finding)."),
    db: Optional[Path] = typer.Option(None, "--db", help="The store the audit wrote."),
    output: Path = typer.Option(Path("workload.jsonl"), "--output", "-o", help="Baseline workload file; the twin goes beside it as NAME.remediated.jsonl."),
    max_requests: int = typer.Option(2000, "--max-requests", min=1, help="Replay at most this many calls (whole requests, from the window's start)."),
    config: Optional[Path] = ConfigOption,
):
    """Write a finding's baseline workload and its remediated twin."""
    from llmaudit.replay.workload import twin_path, write

    settings = _settings(config)
    store = _open_store(db)
    try:
        finding = _finding(store, finding_id, settings)
        name = output.name.removesuffix(".jsonl")
        built = _build(store, finding, name, max_requests)
    finally:
        store.close()
    twin = twin_path(output)
    built.baseline.header.twin = twin.name
    built.remediated.header.twin = output.name
    write(built.baseline, output)
    write(built.remediated, twin)
    out.print(f"{finding.fingerprint}  {finding.category}: {finding.message}")
    _print_workloads(built)
    out.print(f"wrote {output} and {twin}")


# ---------------------------------------------------------------- run

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


def _print_runs(result) -> None:
    t = Table(show_edge=False, title=f"runs ({result.replay_id}, seed {result.config.seed})")
    cols = ("#", "variant", "ok/sent", "prompt tok", "busy s", "GPU-s/req", "req/s", "goodput/s", "TTFT p50",
            "TTFT p99", "ITL p50", "e2e p50", "e2e p99")
    for c in cols:
        t.add_column(c, justify="left" if c == "variant" else "right", no_wrap=True)
    for r in result.runs:
        s = r.summary
        t.add_row(str(r.run_index), r.variant + (" (cut short)" if r.interrupted else ""), f"{s['ok']}/{s['sent']}",
                  _fmt(s["prompt_tokens"]), _fmt(r.busy_s, 2), _fmt(r.gpu_seconds_per_request, 4),
                  _fmt(s["throughput_rps"], 2), _fmt(s["goodput_rps"], 2), _fmt(s["ttft_p50_s"]), _fmt(s["ttft_p99_s"]),
                  _fmt(s["itl_p50_s"], 4), _fmt(s["e2e_p50_s"]), _fmt(s["e2e_p99_s"]))
    out.print(t)
    for r in result.runs:
        if r.summary["errors"]:
            out.print(f"run {r.run_index} ({r.variant}): {r.summary['by_status']}; first errors: "
                      f"{'; '.join(r.summary['first_errors'][:3])}")
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
    est = finding.waste.usd_per_month if finding else None
    spread = f" ± {_usd(measured.usd_per_month_spread)}" if measured.usd_per_month_spread is not None else ""
    out.print(f"saved GPU-seconds per request: {_fmt(measured.gpu_seconds_saved_per_request, 4)} "
              f"(each pair: {', '.join(_fmt(x, 4) for x in d['gpu_seconds_saved_per_request_each'])}); "
              f"busy time {_fmt((d['busy_time_reduction'] or 0) * 100, 1)}% lower")
    measured_txt = (f"{_usd(measured.usd_per_month)}{spread} per month (GPU time)" if measured.usd_per_month is not None
                    else "no monthly figure")
    est_txt = f"{_usd(est)} per month ({finding.rule_id}'s estimate)" if est is not None else "none (unpriced)"
    out.print(f"[bold]measured saving:[/] {measured_txt}   [bold]estimated waste:[/] {est_txt}", markup=True)
    out.print("assumptions:")
    for a in d["assumptions"]:
        out.print(f"  - {a}", markup=False)


def _progress(kind: str, data: dict) -> None:
    if kind == "warmup":
        err.print(f"warm-up: {data['requests']} requests")
    elif kind == "run_start":
        err.print(f"run {data['index']}: {data['variant']} (repeat {data['repeat'] + 1}), {data['requests']} requests ...")
    elif kind == "run_end":
        r = data["record"]
        s = r.summary
        err.print(f"run {r.run_index}: {s['ok']}/{s['sent']} ok, busy {r.busy_s:.2f} s, prompt tokens {s['prompt_tokens']:,}"
                  + (" (interrupted)" if r.interrupted else ""))


def _replay(workloads, endpoint, *, model, speedup, rate, duration, repeats, slo_ttft, slo_e2e, warmup, timeout, seed,
            gpus, token_range):
    from llmaudit.replay.client import ScheduleError
    from llmaudit.replay.run import ReplayConfig, replay_runs

    lo, hi = _token_range(token_range)
    cfg = ReplayConfig(endpoint=endpoint, model=model, speedup=speedup, rate=rate, duration=duration, repeats=repeats,
                       slo_ttft_s=slo_ttft, slo_e2e_s=slo_e2e, warmup=warmup, timeout_s=timeout, seed=seed,
                       gpus_per_server=gpus, token_low=lo, token_high=hi)
    try:
        return replay_runs(workloads, cfg, on_event=_progress)
    except ScheduleError as exc:
        raise fail(str(exc))


def _result_json(result, measured=None, finding=None) -> str:
    doc = {
        "replay_id": result.replay_id,
        "config": result.config.model_dump(exclude={"api_key"}),
        "interrupted": result.interrupted,
        "warmup": result.warmup,
        "runs": [r.model_dump(mode="json") | {"requests": r.requests} for r in result.runs],
        "measured": measured.model_dump(mode="json") if measured else None,
        "finding": finding.model_dump(mode="json") if finding else None,
    }
    return json.dumps(doc, indent=2, default=str) + "\n"


def _finish(result) -> None:
    ok = sum(r.summary["ok"] for r in result.runs)
    if result.interrupted:
        err.print("[yellow]interrupted: the runs above are what was measured before Ctrl-C[/]", markup=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.runs and ok == 0:
        err.print("[bold red]no request succeeded: nothing was measured[/] (is the server up? see the errors above)",
                  markup=True)
        raise typer.Exit(EXIT_NOTHING_MEASURED)


@replay_app.command("run")
def run_cmd(
    workloads: list[Path] = typer.Argument(..., help="Workload files (JSON lines); a baseline and its remediated twin are compared."),
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
    gpu: Optional[str] = GpuOpt,
    gpu_hour_usd: Optional[float] = GpuUsdOpt,
    prices: Optional[Path] = PricesOpt,
    db: Optional[Path] = typer.Option(None, "--db", help="Store the runs (and the measured saving) in this store."),
    json_out: Optional[Path] = JsonOpt,
    token_range: str = TokenRangeOpt,
):
    """Replay workload files against a server (open loop, streaming) and measure each run."""
    from llmaudit.replay.savings import measure, save

    labeled = _label_workloads(workloads)
    price = _price(gpu, gpu_hour_usd, prices)
    with _server(endpoint, launch, launch_timeout) as url:
        result = _replay(labeled, url, model=model, speedup=speedup, rate=rate, duration=duration, repeats=repeats,
                         slo_ttft=slo_ttft, slo_e2e=slo_e2e, warmup=warmup, timeout=timeout, seed=seed, gpus=gpus,
                         token_range=token_range)
    _print_runs(result)
    wl = dict(labeled)
    measured = finding = None
    store = None
    if db is not None:
        from llmaudit.store import Store, StoreError

        try:
            store = Store(db)
        except StoreError as exc:
            raise fail(str(exc))
    try:
        if "baseline" in wl and "remediated" in wl and result.runs:
            fingerprint = wl["baseline"].header.finding
            if store is not None and fingerprint:
                # Workloads built from a finding: price and report the saving against that finding.
                from llmaudit.replay.build import BuildError, find_finding

                try:
                    finding = find_finding(store, fingerprint)
                except BuildError:
                    err.print(f"note: finding {fingerprint} is not in {db}; runs are stored without it")
            measured = measure(result, wl["baseline"], wl["remediated"], price, finding=finding, gpus_per_server=gpus)
            _print_measured(finding, measured)
        if store is not None:
            keep = measured if measured and measured.gpu_seconds_saved_per_request is not None else None
            save(store, result, finding=finding, measured=keep)
            out.print(f"stored {len(result.runs)} run(s) in {db} (replay_runs, replay_requests"
                      + (", replay_savings)" if keep is not None else ")"))
    finally:
        if store is not None:
            store.close()
    if json_out:
        json_out.write_text(_result_json(result, measured, finding), encoding="utf-8")
    _finish(result)


# ---------------------------------------------------------------- all in one

@replay_app.command("all")
def all_cmd(
    finding_id: str = typer.Argument(..., help="Finding fingerprint (or a unique prefix, or a rule id with one finding)."),
    db: Optional[Path] = typer.Option(None, "--db", help="The store the audit wrote; the replay is stored in it too."),
    endpoint: Optional[str] = EndpointOpt,
    launch: Optional[str] = LaunchOpt,
    launch_timeout: float = LaunchTimeoutOpt,
    model: Optional[str] = ModelOpt,
    speedup: Optional[float] = SpeedupOpt,
    rate: Optional[float] = RateOpt,
    duration: Optional[float] = DurationOpt,
    max_span: float = typer.Option(DEFAULT_MAX_SPAN_S, "--max-span", help="Without --speedup/--rate/--duration, compress a longer recorded span to this many seconds."),
    repeats: int = RepeatsOpt,
    slo_ttft: Optional[float] = SloTtftOpt,
    slo_e2e: Optional[float] = SloE2eOpt,
    warmup: int = WarmupOpt,
    timeout: float = TimeoutOpt,
    seed: Optional[str] = SeedOpt,
    gpus: float = GpusOpt,
    gpu: Optional[str] = GpuOpt,
    gpu_hour_usd: Optional[float] = GpuUsdOpt,
    prices: Optional[Path] = PricesOpt,
    max_requests: int = typer.Option(2000, "--max-requests", min=1, help="Replay at most this many calls."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also keep the workload files: baseline here, twin beside it."),
    json_out: Optional[Path] = JsonOpt,
    token_range: str = TokenRangeOpt,
    config: Optional[Path] = ConfigOption,
):
    """Build a finding's workloads, replay both alternately, and store the measured saving."""
    from llmaudit.replay.savings import measure, save
    from llmaudit.replay.workload import twin_path, write

    settings = _settings(config)
    store = _open_store(db)
    try:
        finding = _finding(store, finding_id, settings)
        built = _build(store, finding, (output.name.removesuffix(".jsonl") if output else "workload"), max_requests)
        out.print(f"{finding.fingerprint}  {finding.category}: {finding.message}")
        _print_workloads(built)
        if output:
            write(built.baseline, output)
            write(built.remediated, twin_path(output))
            out.print(f"wrote {output} and {twin_path(output)}")
        if speedup is None and rate is None and duration is None and built.baseline.span_s > max_span:
            duration = max_span
            out.print(f"recorded span {built.baseline.span_s:,.0f} s compressed to {max_span:g} s (--max-span); "
                      "pass --speedup/--rate/--duration to choose")
        price = _price(gpu, gpu_hour_usd, prices, settings)
        with _server(endpoint, launch, launch_timeout) as url:
            result = _replay([("baseline", built.baseline), ("remediated", built.remediated)], url, model=model,
                             speedup=speedup, rate=rate, duration=duration, repeats=repeats, slo_ttft=slo_ttft,
                             slo_e2e=slo_e2e, warmup=warmup, timeout=timeout, seed=seed, gpus=gpus,
                             token_range=token_range)
        _print_runs(result)
        measured = None
        if result.runs:
            measured = measure(result, built.baseline, built.remediated, price, finding=finding, gpus_per_server=gpus)
            finding.measured = measured
            _print_measured(finding, measured)
        # Stored even when interrupted: what was measured is kept.
        save(store, result, finding=finding, measured=measured if measured and measured.gpu_seconds_saved_per_request is not None else None)
        out.print(f"stored in {db}: replay {result.replay_id} ({len(result.runs)} runs)")
    finally:
        store.close()
    if json_out:
        json_out.write_text(_result_json(result, measured, finding), encoding="utf-8")
    _finish(result)


# ---------------------------------------------------------------- capacity

@replay_app.command("capacity")
def capacity_cmd(
    target: str = typer.Argument(..., help="A finding (with --db) or a workload file whose request shapes are swept."),
    db: Optional[Path] = typer.Option(None, "--db", help="The store the audit wrote (for a finding)."),
    endpoint: Optional[str] = EndpointOpt,
    launch: Optional[str] = LaunchOpt,
    launch_timeout: float = LaunchTimeoutOpt,
    model: Optional[str] = ModelOpt,
    slo_ttft: Optional[float] = SloTtftOpt,
    slo_e2e: Optional[float] = SloE2eOpt,
    slo_target: float = typer.Option(0.95, "--slo-target", help="Share of requests that must meet the SLO at a rate."),
    step_s: float = typer.Option(20.0, "--step-seconds", help="Seconds of traffic per rate step."),
    start_rps: float = typer.Option(1.0, "--start-rps", help="First rate tried; it doubles while the SLO holds."),
    max_rps: float = typer.Option(512.0, "--max-rps", help="Highest rate tried."),
    refine: int = typer.Option(3, "--refine", min=0, help="Bisection steps between the last good and first bad rate."),
    peak_rps: Optional[float] = typer.Option(None, "--peak-rps", help="Peak request rate to serve (default: the busiest minute of the finding's traffic)."),
    provisioned: Optional[float] = typer.Option(None, "--provisioned", help="Replicas provisioned today (default: from the finding's evidence)."),
    headroom: float = typer.Option(0.0, "--headroom", help="Extra share of capacity to keep above the peak, e.g. 0.2."),
    gpus: float = GpusOpt,
    gpu: Optional[str] = GpuOpt,
    gpu_hour_usd: Optional[float] = GpuUsdOpt,
    prices: Optional[Path] = PricesOpt,
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds one request may take."),
    json_out: Optional[Path] = JsonOpt,
    token_range: str = TokenRangeOpt,
    config: Optional[Path] = ConfigOption,
):
    """Sweep request rates against one server: the highest rate within the SLO, and replicas needed vs provisioned."""
    from llmaudit.replay.build import peak_rate
    from llmaudit.replay.capacity import CapacityConfig, provisioned_from, replicas, sweep
    from llmaudit.replay.workload import WorkloadError, read

    if slo_ttft is None and slo_e2e is None:
        raise fail("capacity needs an SLO: --slo-ttft and/or --slo-e2e")
    finding = None
    if Path(target).is_file():
        try:
            shapes = read(target)
        except WorkloadError as exc:
            raise fail(str(exc))
    else:
        settings = _settings(config)
        store = _open_store(db)
        try:
            finding = _finding(store, target, settings)
            built = _build(store, finding, "capacity", 2000)
            shapes = built.baseline
            if peak_rps is None:
                peak_rps = peak_rate(store, finding)["peak_rps"]
        finally:
            store.close()
        if provisioned is None:
            provisioned = provisioned_from(finding.evidence)
    price = _price(gpu, gpu_hour_usd, prices)
    lo, hi = _token_range(token_range)
    cfg = CapacityConfig(endpoint="", model=model, slo_ttft_s=slo_ttft, slo_e2e_s=slo_e2e, slo_target=slo_target,
                         step_s=step_s, start_rps=start_rps, max_rps=max_rps, refine=refine, timeout_s=timeout,
                         token_low=lo, token_high=hi)

    def on_step(st):
        s = st.summary
        err.print(f"{st.rate:8.3f} req/s: {'meets' if st.passed else 'misses'} the SLO "
                  f"({_fmt(s['slo_attainment'], 3)} of {s['sent']}), TTFT p99 {_fmt(s['ttft_p99_s'])} s, "
                  f"e2e p99 {_fmt(s['e2e_p99_s'])} s, errors {s['errors']}")

    with _server(endpoint, launch, launch_timeout) as url:
        cfg.endpoint = url
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
              + (f" (${plan['idle_usd_per_month']:,.2f} per month at ${price.usd_per_hour:g}/GPU-hour)"
                 if plan["idle_usd_per_month"] is not None else ""))
    if json_out:
        json_out.write_text(json.dumps({"config": cfg.model_dump(exclude={"api_key"}), "capacity_rps": res.capacity_rps,
                                        "steps": [{"rate": s.rate, "passed": s.passed, "summary": s.summary} for s in res.steps],
                                        "replicas": plan, "finding": finding.fingerprint if finding else None,
                                        "interrupted": res.interrupted}, indent=2, default=str) + "\n")
    if res.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
