"""Markdown for CI: a pull-request comment or a GitHub Actions job summary.

Order: headline numbers, what changed since the baseline, the top findings, then every finding's
details folded in <details>. GitHub rejects comments over 65,536 characters, so the whole text is
built against a budget (MAX_CHARS) and whatever does not fit is left out with a note that says how
much; the headline and the baseline deltas always fit because tables are capped in rows and every
telemetry string is capped in length.

Telemetry strings (feature, tenant, model names, evidence) are attacker-controlled as far as a report
is concerned: `md()` escapes them so a `|` cannot split a table cell, `<script>` or `<img onerror>`
cannot become HTML, backticks/asterisks cannot start formatting, and `@name` cannot ping anyone.
"""

from __future__ import annotations

import html
import re
from typing import Iterable

from llmaudit.findings.model import BASIS_LABEL, Finding
from llmaudit.report.baseline import Comparison, Delta, FindingChange, comparison_of
from llmaudit.report.document import AuditDocument
from llmaudit.report.evidence import evidence_items, format_value
from llmaudit.report.numbers import num, signed_int, signed_usd, usd
from llmaudit.report.redact import scrub_content
from llmaudit.report.terminal import price_line, redaction_line

MAX_CHARS = 65_000
CELL = 80          # characters of one telemetry string in a table cell
DETAIL_VALUE = 200 # characters of one evidence value in the details
TOP_FINDINGS = 25
DELTA_ROWS = 25
FEATURE_ROWS = 15
_NOTE_RESERVE = 400  # room kept for the closing "left out" note

# Inline Markdown that can change meaning mid-line (code, emphasis, links, table cells, strike, math).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
# At the start of a line these make headings, lists, block quotes or rules.
_LINE_START = re.compile(r"^(?:([#+\-=])|(\d+)([.)]))")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def md(value, limit: int = CELL, *, line_start: bool = False) -> str:
    """Telemetry text as inert inline Markdown: one line, capped, HTML-escaped, Markdown-escaped."""
    text = "" if value is None else str(value)
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    # HTML first (so our own backslashes are not touched), then Markdown punctuation.
    text = html.escape(text, quote=True)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    if line_start:  # only where the text begins a line; mid-line "1." or "-" mean nothing
        text = _LINE_START.sub(lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), text)
    # A zero-width space stops GitHub from turning telemetry into @mentions and autolinks.
    text = text.replace("@", "@\u200b").replace(":/", ":\u200b/").replace("www.", "www\u200b.")
    return text or " "


def scope_text(scope) -> str:
    parts = [scope.service, scope.feature, scope.model, f"tenant {scope.tenant}" if scope.tenant else None]
    return " · ".join(str(p) for p in parts if p) or "all traffic"


def table(headers: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] * len(headers)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


class _Budget:
    """Append blocks while they fit; whatever does not fit is left out and counted.

    Every append is checked, so no input (however many findings, however long their escaped text)
    can push the text over the limit. Ordinary blocks must leave _NOTE_RESERVE characters free;
    closing blocks (a "left out" note, a closing tag) may use that reserve.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def fits(self, text: str, reserve: int = _NOTE_RESERVE) -> bool:
        return self.size + len(text) + reserve <= self.limit

    def add(self, text: str, *, closing: bool = False) -> bool:
        if not self.fits(text, 0 if closing else _NOTE_RESERVE):
            self.dropped += 1
            return False
        self.parts.append(text)
        self.size += len(text)
        return True

    def text(self) -> str:
        if self.dropped:
            self.add(f"\n_Parts of this summary were left out to stay under the {self.limit:,}-character limit; "
                     "see the JSON or HTML report._\n", closing=True)
        return "".join(self.parts)


def _capped_table(budget: _Budget, headers, rows: list[list[str]], align, max_rows: int, what: str) -> int:
    """Add as many rows as fit (at most max_rows); returns how many were shown."""
    shown = rows[:max_rows]
    while shown and not budget.fits(table(headers, shown, align)):
        shown = shown[: len(shown) // 2] if len(shown) > 8 else shown[:-1]
    if shown:
        budget.add(table(headers, shown, align))
    left = len(rows) - len(shown)
    if left:
        budget.add(f"\n_{left:,} more {what} not shown here; see the JSON or HTML report._\n", closing=True)
    return len(shown)


def _severity(s: str) -> str:
    return f"**{s}**" if s in ("high", "critical") else s


def _waste_cell(f: Finding) -> str:
    if f.waste.usd_per_month is not None:
        return f"{usd(f.waste.usd_per_month)}/mo"
    if f.waste.usd is not None:
        return usd(f.waste.usd)
    if f.waste.tokens is not None:
        return f"{f.waste.tokens:,} tokens"
    return "n/a"


def _measured_cell(f: Finding) -> str:
    m = f.measured
    if m is None or m.usd_per_month is None:
        return "not replayed"
    spread = f" ± {usd(m.usd_per_month_spread)}" if m.usd_per_month_spread is not None else ""
    return f"{usd(m.usd_per_month)}/mo{spread} ({m.runs} runs, {BASIS_LABEL[m.basis]})"


def _headline(doc: AuditDocument, cmp: Comparison | None) -> str:
    t = doc.totals
    spend = usd(t.spend_usd)
    count = f"{t.findings:,} finding{'' if t.findings == 1 else 's'}"
    waste = f"{usd(t.estimated_waste_usd_per_month)}/month estimated waste"
    title = f"{spend} spend, {waste}, {count}" if t.spend_usd is not None else f"{count}, {waste} (spend unpriced)"
    lines = [f"## llmaudit: {title}\n\n"]
    if doc.window.start is not None:
        lines.append(
            f"Window {doc.window.start:%Y-%m-%d %H:%M} → {doc.window.end:%Y-%m-%d %H:%M} UTC "
            f"({doc.window.days or 0:.1f} days), {len(doc.inputs):,} input file{'' if len(doc.inputs) == 1 else 's'}, "
            f"llmaudit {md(doc.tool.get('version'))}.\n\n"
        )
    else:
        lines.append("No spans in the input.\n\n")
    parts = t.spend_parts
    rows = [
        ["Spend (window)", spend],
        *([["… model APIs", usd(parts.model_apis_usd)], ["… self-hosted GPU time", usd(parts.self_hosted_gpu_time_usd)],
           ["… provisioned GPU idle", usd(parts.provisioned_idle_usd)]] if parts is not None else []),
        ["Estimated waste (window)", usd(t.estimated_waste_usd)
         + (f" ({t.estimated_waste_usd / t.spend_usd:.1%} of spend)" if t.spend_usd else "")],
        ["Estimated waste per month", usd(t.estimated_waste_usd_per_month)],
        *([["Billed spend no trace explains", usd(t.unexplained_spend_usd)]] if t.unexplained_spend_usd else []),
        ["Findings", f"{t.findings:,}"],
        ["Requests", f"{t.requests:,}"],
        ["LLM calls", f"{t.llm_calls:,}"],
        ["Tokens in / out", f"{t.input_tokens:,} / {t.output_tokens:,}"],
    ]
    if t.unpriced_calls:
        rows.append(["Unpriced calls (not counted as $0)", f"{t.unpriced_calls:,}"])
    if cmp:
        base = cmp.totals
        keys = {"Spend (window)": "spend_usd", "Estimated waste (window)": "estimated_waste_usd",
                "Estimated waste per month": "estimated_waste_usd_per_month", "Findings": "findings",
                "Requests": "requests", "LLM calls": "llm_calls"}
        for row in rows:
            d: Delta | None = base.get(keys.get(row[0], ""))
            if row[0] == "Tokens in / out":
                i, o = base["input_tokens"], base["output_tokens"]
                row += [f"{num(i.baseline)} / {num(o.baseline)}", f"{signed_int(i.change)} / {signed_int(o.change)}"]
            elif d is None:
                row += ["", ""]
            elif keys[row[0]] in ("findings", "requests", "llm_calls"):
                row += [num(d.baseline), signed_int(d.change)]
            else:
                row += [usd(d.baseline), signed_usd(d.change)]
        lines.append(table(["", "this run", "baseline", "change"], rows, ["l", "r", "r", "r"]))
    else:
        lines.append(table(["", "this run"], rows, ["l", "r"]))
    headline = list(doc.extras.get("headline", {}).items())[:20]  # other modules' one-liners (billing, GPU)
    if headline:
        lines.append("\n" + "  \n".join(f"{md(k, line_start=True)}: {md(v, 200)}" for k, v in headline) + "\n")
    if doc.prices is not None:
        lines.append(f"\nPrices: {md(price_line(doc.prices), 400)}.\n")
    if doc.extras.get("redaction"):
        lines.append(f"\n_Redacted (--redact): {md(redaction_line(doc.extras['redaction']), 400)}._\n")
    return "".join(lines) + "\n"


def _change_rows(changes: Iterable[FindingChange], resolved: bool = False) -> list[list[str]]:
    rows = []
    for c in changes:
        d = c.waste_usd_per_month
        money = usd(d.baseline if resolved else d.current, "unpriced")
        rows.append([_severity(c.severity), md(f"{c.rule_id} {c.rule_name}"), md(scope_text(c.scope)), money, md(c.message, 120)])
    return rows


def _baseline_section(budget: _Budget, cmp: Comparison) -> None:
    c = cmp.counts
    head = (
        f"### Since the baseline: {c.new} new, {c.resolved} resolved, {c.unchanged} unchanged\n\n"
        f"Baseline `{md(cmp.baseline.path, 120)}`"
    )
    if cmp.baseline.window.start is not None:
        head += f" (window {cmp.baseline.window.start:%Y-%m-%d} → {cmp.baseline.window.end:%Y-%m-%d})"
    head += ".\n"
    if cmp.baseline.same_inputs:
        head += "\n_The baseline was computed from the same input files as this run._\n"
    budget.add(head)
    cols = ["severity", "rule", "scope", "waste/month", "what"]
    align = ["l", "l", "l", "r", "l"]
    if cmp.new:
        budget.add("\n#### New findings\n\n")
        _capped_table(budget, cols, _change_rows(cmp.new), align, DELTA_ROWS, "new findings")
    if cmp.resolved:
        budget.add("\n#### Resolved findings\n\n")
        _capped_table(budget, cols[:3] + ["waste/month (was)", "what"], _change_rows(cmp.resolved, True), align, DELTA_ROWS,
                      "resolved findings")
    moved = [u for u in cmp.unchanged if u.waste_usd_per_month.change]
    if moved:
        budget.add("\n#### Still open, waste changed\n\n")
        rows = [[_severity(u.severity), md(f"{u.rule_id} {u.rule_name}"), md(scope_text(u.scope)),
                 usd(u.waste_usd_per_month.current), signed_usd(u.waste_usd_per_month.change)] for u in moved]
        _capped_table(budget, ["severity", "rule", "scope", "waste/month", "change"], rows, ["l", "l", "l", "r", "r"], DELTA_ROWS,
                      "changed findings")
    features = [f for f in cmp.by_feature if f.spend_usd.change or f.waste_usd_per_month.change or f.tokens.change
                or f.presence != "both"]
    if features:
        budget.add("\n#### Spend and waste by feature\n\n")
        rows = [
            [md(f.key if f.key is not None else "untagged"), f.presence, usd(f.spend_usd.current), signed_usd(f.spend_usd.change),
             signed_int(f.tokens.change), usd(f.waste_usd_per_month.current), signed_usd(f.waste_usd_per_month.change)]
            for f in features
        ]
        _capped_table(budget, ["feature", "seen", "spend", "change", "tokens change", "waste/month", "change"], rows,
                      ["l", "l", "r", "r", "r", "r", "r"], FEATURE_ROWS, "features")
    _spend_change_section(budget, cmp)


def _spend_change_section(budget: _Budget, cmp: Comparison) -> None:
    from llmaudit.report.spend_change import PART_LABELS, PARTS, TITLE, cents, creep_text, shown

    sc = cmp.spend_change
    if sc is None:
        return
    if sc.note:
        budget.add(f"\n_{TITLE}: {md(sc.note, 300)}._\n")
        return
    rows = [[md(r.feature if r.feature is not None else "untagged"), usd(r.baseline_usd), usd(r.current_usd),
             signed_usd(r.change_usd), *(signed_usd(v) for v in cents(r).values()), md(creep_text(r), 60)] for r in shown(sc)]
    if not rows:
        return
    budget.add(f"\n#### {TITLE}\n\n")
    _capped_table(budget, ["feature", "baseline", "now", "change", *(PART_LABELS[p] for p in PARTS), "input tokens/request"],
                  rows, ["l", "r", "r", "r", "r", "r", "r", "r", "r", "l"], FEATURE_ROWS, "features")
    budget.add(f"\n_The parts add up to the change: {md(sc.method, 400)}._\n")


SPARK = "▁▂▃▄▅▆▇█"
EVIDENCE_ROWS = 8  # rows of a list of records in the Markdown details (the HTML shows more, the JSON all)


def sparkline(values: list[float | None]) -> str:
    """A series as one line of block characters, lowest to highest (a gap for a missing value)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    return "".join(" " if v is None else SPARK[0 if hi == lo else round((v - lo) / (hi - lo) * (len(SPARK) - 1))]
                   for v in values)


def _chart_text(chart) -> str:
    """A finding's chart in Markdown: its title, each series as a sparkline with its range, and the caption."""
    first, last = (md(num(x) if isinstance(x, float) else x, 40) for x in (chart.x[0], chart.x[-1]))
    lines = [f"**{md(chart.title, 200)}** ({md(chart.x_label, 80)}: {first} → {last})  "]
    for series in chart.series[:3]:
        known = [v for v in series.values if v is not None]
        if known:
            unit = "usd" if chart.unit == "usd" else "number"
            lines.append(f"`{sparkline(series.values[:80])}` {md(series.label, 60)}: {format_value(min(known), unit)} to "
                         f"{format_value(max(known), unit)}  ")
    for ref in chart.references:
        lines.append(f"{md(ref.label, 60)}: {num(ref.value)}  ")
    lines.append(f"_{md(chart.caption, 300)} The chart is in the HTML report._")
    return "\n".join(lines) + "\n\n"


def _evidence_text(evidence: dict) -> str:
    items = evidence_items(evidence, max_rows=EVIDENCE_ROWS)
    scalars = [[md(it.label, 80), md(it.text, DETAIL_VALUE)] for it in items if it.text is not None]
    out = table(["evidence", "value"], scalars, ["l", "r"]) if scalars else ""
    for it in items:
        if it.text is None:
            out += f"\n{md(it.label, 120)}:\n\n" + table([md(h, 60) for h in it.headers] if any(it.headers) else ["", ""],
                                                          [[md(c, 80) for c in row] for row in it.rows])
            if it.more:
                out += f"\nand {it.more:,} more rows (all in the JSON report)\n"
    return out


def _detail(f: Finding, index: int, chart=None) -> str:
    summary = html.escape(
        f"{index}. [{f.severity}] {f.rule_id} {f.rule_name}: {_plain(scope_text(f.scope), CELL)} ({_waste_cell(f)})", quote=False
    )
    parts = [
        f"<details><summary>{summary}</summary>\n\n",
        f"**{md(f.title, 200)}**\n\n{md(f.message, 500)}\n\n",
        "Where: " + " · ".join(f"{name} {md(value, 200)}" for name, value in
                               (("service", f.scope.service), ("feature", f.scope.feature), ("model", f.scope.model),
                                ("tenant", f.scope.tenant)) if value is not None) + "\n\n",
        _evidence_text(f.evidence),
        "\n" + _chart_text(chart) if chart is not None else "",
        f"\nFingerprint `{f.fingerprint}` · confidence {f.confidence}",
    ]
    if f.example_trace_ids:
        parts.append(" · example traces " + ", ".join(md(t, 40) for t in f.example_trace_ids[:5]))
    w = f.waste
    parts.append(
        f"\n\nEstimated waste: {w.tokens or 0:,} tokens, {usd(w.usd)} in the window, {usd(w.usd_per_month)}/month"
        + (f", {w.gpu_hours:,.3f} GPU-hours" if w.gpu_hours is not None else "")
        + f" ({md(w.extrapolation, 200)}). Measured: {_measured_cell(f)}.\n\n"
    )
    parts.append(f"**Fix:** {md(f.remediation, 1200)}\n\n</details>\n\n")
    return "".join(parts)


def _plain(value, limit: int) -> str:
    text = _CONTROL.sub(" ", "" if value is None else str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"



def _plan_section(budget: "_Budget", plan: dict) -> None:
    """The plan (analyze --plan) in short: each feature's side of the API/self-host break-even, what can
    scale to zero, the recommended autoscaling policy; the HTML and JSON reports hold the rest."""
    budget.add("\n### Plan\n\n")
    side = {"api": "API", "self_host": "self-host", "unknown": "unknown"}
    rows = [[md(b["feature"] if b["feature"] is not None else "untagged"), md(b["model"]),
             usd(b["today_usd_per_month"], "n/a"), usd((b.get("api") or {}).get("usd_per_month"), "n/a"),
             usd((b.get("self_host") or {}).get("usd_per_month"), "n/a"), side[b["side"]],
             f"{num(b['breakeven_multiple'])}× today" if b["breakeven_multiple"] is not None else "never"]
            for b in plan.get("breakeven", [])]
    if rows:
        _capped_table(budget, ["feature", "model", "today/month", "API/month", "self-host/month", "side", "break-even"], rows,
                      ["l", "l", "r", "r", "r", "l", "r"], 20, "features")
    for w in plan.get("scale_to_zero", []):
        if w.get("scale_to_zero"):
            budget.add(f"\nScale to zero: {md(w['feature'] or 'untagged')} ({md(w['workload_class'].replace('_', ' '))}) saves "
                       f"{usd(w.get('usd_saved_per_month'), 'n/a')}/month.\n")
    for s in plan.get("backtest", []):
        budget.add(f"\nAutoscaling {md(s['model'])}: {md(s['recommendation'], 400)}\n")
    assumed = plan.get("assumptions", [])
    if assumed:
        budget.add("\nAssumed figures (the HTML and JSON reports give each one's source):\n\n")
        for a in assumed:
            value = num(a["value"]) if isinstance(a["value"], (int, float)) else md(a["value"], 80)
            budget.add(f"- {md(a['name'], 160)}: {value}{' ' + md(a['unit'], 40) if a.get('unit') else ''} ({a['kind']})\n")


def render_markdown(doc: AuditDocument, *, limit: int = MAX_CHARS) -> str:
    """The CI Markdown for a document (a comparison in doc.extras['baseline'] adds the deltas)."""
    doc = scrub_content(doc)
    cmp = comparison_of(doc)
    budget = _Budget(limit)
    budget.add(_headline(doc, cmp))
    if cmp:
        _baseline_section(budget, cmp)
        budget.add("\n")

    findings = doc.findings
    budget.add(f"### Top findings ({len(findings):,})\n\n" if findings else "### Findings\n\nNo findings.\n")
    if findings:
        rows = [[_severity(f.severity), md(f"{f.rule_id} {f.rule_name}"), md(scope_text(f.scope)), _waste_cell(f),
                 _measured_cell(f), md(f.message, 120)] for f in findings]
        _capped_table(budget, ["severity", "rule", "scope", "est. waste", "measured", "what"], rows,
                      ["l", "l", "l", "r", "r", "l"], TOP_FINDINGS, "findings")

    plan = doc.extras.get("plan")
    if plan:
        _plan_section(budget, plan)

    problems = [(rid, f"skipped: {why}") for rid, why in doc.skipped_rules.items()] + \
               [(rid, f"failed: {why}") for rid, why in doc.rule_errors.items()]
    if problems:
        budget.add("\n<details><summary>Rules skipped or failed ({:,})</summary>\n\n".format(len(problems)))
        _capped_table(budget, ["rule", "why"], [[md(r), md(w, 200)] for r, w in problems], ["l", "l"], 30, "rules")
        budget.add("\n</details>\n", closing=True)

    if findings:
        budget.add("\n### Details\n\n")
        shown = 0
        for i, f in enumerate(findings, 1):
            block = _detail(f, i, doc.charts.get(f.fingerprint))
            if not budget.fits(block):
                break
            budget.add(block)
            shown += 1
        left = len(findings) - shown
        if left:
            budget.add(
                f"\n_Details of {left:,} of {len(findings):,} findings left out to stay under GitHub's "
                f"{limit:,}-character limit; see the JSON or HTML report for all of them._\n", closing=True
            )
    return budget.text()
