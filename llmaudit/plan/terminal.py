"""The plan as terminal tables (`llmaudit plan`, the default format): every section, then the assumptions."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmaudit.plan.document import Figure, PlanDocument
from llmaudit.report.numbers import num, pct, usd


def _t(title: str, *cols: str, left: int = 2) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False)
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i < left else "right", overflow="fold")
    return t


def _fig(f: Figure | None, digits: str = ".3g") -> str:
    if f is None or f.value is None:
        return "n/a"
    return f"{f.value:{digits}} ({f.source})"


def _rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _int(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _line(console: Console, text: str) -> None:
    console.print(Text(text))


def print_plan(console: Console, doc: PlanDocument) -> None:
    s, w = doc.settings, doc.window
    slo = " and ".join(x for x in ((f"TTFT <= {s.slo_ttft_s:g} s" if s.slo_ttft_s else ""),
                                   (f"end-to-end <= {s.slo_e2e_s:g} s" if s.slo_e2e_s else "")) if x)
    _line(console, f"Plan over {w.start:%Y-%m-%d %H:%M} to {w.end:%Y-%m-%d %H:%M} UTC ({w.hours:,.1f} hours; per month x "
                   f"{w.month_factor:.3f})")
    _line(console, f"Latency target {slo or 'none'} ({s.slo_source}); headroom {s.headroom:g}; self-host {s.self_host_class} "
                   f"on {s.gpu} at {usd(s.gpu_hour_usd)}/GPU-hour ({s.gpu_source}); ops {usd(s.ops_usd_per_month)}/month")

    if doc.anatomy:
        t = _t("1. Cost anatomy (per month)", "feature", "requests", "total", "per request", "main model", "extra calls",
               "retrieval context", "idle headroom", "calls/request")
        for a in doc.anatomy:
            parts = {p.part: p for p in a.parts}
            cell = lambda k: f"{usd(parts[k].usd_per_month)} {pct(parts[k].share)}".strip()  # noqa: E731
            t.add_row(a.feature or "(untagged)", num(a.requests), usd(a.usd_per_month), usd(a.usd_per_request, "n/a"),
                      cell("main_model"), cell("extra_calls"), cell("retrieval_context"), cell("idle_headroom"),
                      num(a.calls_per_request))
        console.print(t)
    for b in doc.batching:
        _line(console, f"Batching efficiency E: {b.model} on {', '.join(b.hosts)} ({b.gpus} GPU)")
        t = _t("", "hour UTC", "serving s", "tokens/s/GPU", "E", left=1)
        for h in b.by_hour:
            t.add_row(f"{h.hour_utc:02d}", num(h.serving_seconds), num(h.tokens_per_s_per_gpu), pct(h.efficiency))
        console.print(t)
        _line(console, f"  achieved {num(b.tokens_per_s_per_gpu)} generated tokens/s per GPU while serving; E = "
                       f"{pct(b.efficiency)} of {_fig(b.reference)}: {b.reference.detail}")
        if b.class_rate:
            _line(console, f"  against the class's {_fig(b.class_rate, ',.0f')}: E = {pct(b.efficiency_vs_class)}")

    if doc.capacity:
        t = _t("2. Capacity at peak", "model", "hosts", "busy hour req/s", "tokens/s", "peak minute req/s",
               "p95 in flight", "per replica req/s", "needed", "provisioned", "needed $/month", "provisioned $/month")
        for c in doc.capacity:
            p = c.peak
            t.add_row(c.model, ", ".join(c.hosts), _rate(p.busy_hour_requests_per_s), _rate(p.busy_hour_tokens_per_s),
                      _rate(p.peak_minute_requests_per_s), num(p.p95_concurrency), _fig(c.per_replica_rps),
                      num(c.replicas_needed), num(c.replicas_provisioned), usd(c.usd_per_month_needed, "n/a"),
                      usd(c.usd_per_month_provisioned, "n/a"))
        console.print(t)
        for c in doc.capacity:
            _line(console, f"  {c.model}: per replica {c.per_replica_rps.detail}")
            for n in c.notes:
                _line(console, f"  note: {n}")

    if doc.breakeven:
        t = _t("3. API vs self-host (per month)", "feature", "model", "workload", "today", "API", "self-host", "side",
               "break-even", "requests/day", "tokens/day", left=3)
        for b in doc.breakeven:
            t.add_row(b.feature or "(untagged)", b.model, b.workload_class, usd(b.today_usd_per_month, "n/a"),
                      usd(b.api.usd_per_month, "n/a") if b.api else "n/a",
                      usd(b.self_host.usd_per_month) if b.self_host else "n/a", b.side.replace("_", "-"),
                      f"{b.breakeven_multiple:,.2f}x" if b.breakeven_multiple is not None else "never",
                      _int(b.breakeven_requests_per_day), _int(b.breakeven_tokens_per_day))
        console.print(t)
        for b in doc.breakeven:
            _line(console, f"  {b.feature} / {b.model}: {b.why}")

    if doc.scale_to_zero:
        t = _t("4. Scale-to-zero fit", "feature", "model", "workload", "min replicas", "cold start s", "runs",
               "GPU-h saved/month", "$ saved/month", left=3)
        for f in doc.scale_to_zero:
            t.add_row(f.feature or "(untagged)", f.model or "", f.workload_class, num(f.min_replicas),
                      _fig(f.cold_start, ".0f"), num(f.runs), num(f.gpu_hours_saved_per_month),
                      usd(f.usd_saved_per_month, "n/a"))
        console.print(t)
        for f in doc.scale_to_zero:
            _line(console, f"  {f.feature} / {f.model}: {f.evidence}" + (f"; {f.note}" if f.note else ""))

    for bt in doc.backtest:
        t = _t(f"5. Autoscaler backtest: {bt.model} ({bt.minutes:,} minutes, {bt.requests:,} requests)", "policy",
               "target (per replica)", "GPU-hours", "$ in window", "$/month", "minutes past target", "max replicas", "recommended")
        for p in [bt.today, *bt.policies]:
            t.add_row(p.policy, f"{num(p.target)} {p.target_unit}" if p.target is not None else "", num(p.gpu_hours),
                      usd(p.usd), usd(p.usd_per_month), num(p.slo_minutes), num(p.max_replicas), "yes" if p.recommended else "")
        console.print(t)
        _line(console, f"  {bt.slo_rule}; per replica {_fig(bt.per_replica_rps)}, service time {_fig(bt.service_s)} s; "
                       f"arrivals from {bt.arrivals}")
        _line(console, f"  recommended: {bt.recommendation}")
        _line(console, f"  current scaling: {bt.current_scaling}")

    for lc in doc.latency_curves:
        t = _t(f"6. Cost vs {lc.metric.upper()} p{lc.quantile * 100:.0f} target: {lc.model} (sweep {lc.capacity_id} "
               f"against {lc.served_model}; peak {_rate(lc.peak_requests_per_s)} req/s)", "target s", "per replica req/s",
               "replicas", "$/month", "100 ms less adds")
        for p in lc.points:
            t.add_row(f"{p.target_s:.1f}", _rate(p.per_replica_rps), num(p.replicas), usd(p.usd_per_month, "not reached"),
                      usd(p.usd_per_month_for_100ms_less, ""))
        console.print(t)

    t = _t("Assumptions (figures not measured or observed in this store)", "kind", "name", "value", "source", left=4)
    for a in doc.assumptions:
        value = a.value if isinstance(a.value, str) else num(a.value)
        t.add_row(a.kind, a.name, f"{value} {a.unit or ''}".strip(), a.source)
    console.print(t)
    for n in doc.notes:
        _line(console, f"note: {n}")
