"""The consultant's report: ONE self-contained HTML file (works offline, prints well).

Everything is inline: CSS from report_templates/report.css, charts as SVG drawn by matplotlib (Agg,
no pyplot state) and embedded in the page. There is no JavaScript and a Content-Security-Policy that
forbids scripts and every network fetch, so even a browser that would try to load something cannot.

Safety: the jinja2 environment autoescapes everything. The only markup not produced by the template
is the charts' SVG, which matplotlib writes with its text XML-escaped; `_clean_svg` additionally
refuses any SVG that carries a script, an event handler, a foreignObject or an external reference.

Determinism: charts use a fixed hash salt, no dates in metadata and ids derived from the chart's
name, so the same document renders to the same bytes.
"""

from __future__ import annotations

import io
import re
from datetime import date
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from llmaudit.findings.model import BASIS_LABEL, NOT_WASTE, SEVERITIES, Finding
from llmaudit.report.baseline import comparison_of
from llmaudit.report.document import AuditDocument, BreakdownRow
from llmaudit.report.evidence import evidence_items, label_of
from llmaudit.report.numbers import num, pct, short_num, short_usd, signed_int, signed_usd, usd
from llmaudit.report.redact import scrub_content
from llmaudit.report.svg_charts import (ACCENT, CHART_BARS, GOOD, MUTED, SEVERITY_COLOR, bar_chart, column_chart,
                                        finding_chart, grouped_chart, short_label)
from llmaudit.resources import data_dir

TEMPLATE = "report.html.j2"
TOP_ROWS = 15            # rows per breakdown table before "N more"
FINDING_CHARTS = 30      # per-finding charts for the costliest findings; a huge report stays light
# Shown in extras but rendered by their own sections (or meaningless to a reader).
_OWN_EXTRAS = {"baseline", "redaction", "headline", "content_scrubbed", "prices", "pricing", "plan"}  # plan: its own section (to come)

# ------------------------------------------------------------------------------------------ data for charts
def _has_spend(rows: list[BreakdownRow]) -> bool:
    return any(r.spend_usd for r in rows)


def _metric(rows: list[BreakdownRow]) -> tuple[list[float], bool, str]:
    """Spend when it is known, else tokens (unpriced models are never shown as $0)."""
    if _has_spend(rows):
        return [r.spend_usd or 0.0 for r in rows], True, "spend (USD)"
    return [float(r.input_tokens + r.output_tokens) for r in rows], False, "tokens (input + output): spend unknown"


def _money_of(f: Finding) -> float | None:
    return f.waste.usd_per_month if f.waste.usd_per_month is not None else f.waste.usd


# ------------------------------------------------------------------------------------------ template





def _evidence(value, limit: int = 300) -> str:
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_evidence(v, 80)}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(_evidence(v, 80) for v in value)
    else:
        text = num(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scope(scope) -> str:
    parts = [scope.service, scope.feature, scope.model, f"tenant {scope.tenant}" if scope.tenant else None]
    return " · ".join(str(p) for p in parts if p) or "all traffic"


def _wbr(value) -> Markup:
    """Escaped text with line-break opportunities after _ . / - so long snake_case keys wrap between words."""
    return Markup("<wbr>").join(escape(part) for part in re.split(r"(?<=[_./-])", str(value)))


def _dt(value, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "n/a" if value is None else value.strftime(fmt)


NOWRAP_CHARS = 24  # a cell that is one token up to this long (a host, a model, a number) never wraps


def _cell(value) -> Markup:
    """A table cell's text: one short token (vllm-node-1, gpt-4o-2024-08-06, $1,155.84) kept on one line, so a
    narrow column never breaks it at a hyphen; anything longer wraps between words."""
    text = "" if value is None else str(value)
    if text and len(text) <= NOWRAP_CHARS and not any(c.isspace() for c in text):
        return Markup('<span class="nw">') + escape(text) + Markup("</span>")
    return escape(text)


def _markdown(text) -> Markup:
    """Rule text (a fix, a summary) written in Markdown: `code`, **bold**, lists. Raw HTML in it stays text,
    and links become plain text (the report links to nothing)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).disable(["link", "image", "autolink"])
    html = md.render(str(text or "")).strip()
    return Markup(html[3:-4] if html.startswith("<p>") and html.endswith("</p>") and html.count("<p>") == 1 else html)  # noqa: S704 - html disabled


def _nolink(text) -> str:
    """A web address as plain text (scheme dropped): the report links to nothing, not even its sources."""
    return re.sub(r"\bhttps?://", "", "" if text is None else str(text))


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(data_dir("report_templates"))),
        autoescape=True,            # everything, whatever the template's name: telemetry is hostile input
        undefined=StrictUndefined,  # a typo in the template fails the render instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(usd=usd, signed_usd=signed_usd, signed_int=signed_int, num=num, pct=pct,
                       evidence=_evidence, scope=_scope, dt=_dt, label=short_label, wbr=_wbr, nolink=_nolink,
                       evidence_items=evidence_items, markdown=_markdown, section_label=label_of, cell=_cell)
    env.globals.update(severity_color=SEVERITY_COLOR)
    return env


def _day_label(key: str | None) -> str:
    """2026-11-09 -> "Mon 11-09": short enough for a column axis, and the weekday explains weekend dips."""
    try:
        return date.fromisoformat(key).strftime("%a %m-%d")
    except (TypeError, ValueError):
        return str(key)


def _breakdown_view(doc: AuditDocument, name: str, title: str, chart: bool) -> dict | None:
    rows = list(doc.breakdowns.get(name) or [])
    if not rows:
        return None
    values, money, unit = _metric(rows)
    if name == "day":  # time runs left to right, whatever order the document ranks days in
        order = sorted(range(len(rows)), key=lambda i: rows[i].key or "")
    else:  # biggest first by the number actually charted (tokens when spend is unknown)
        order = sorted(range(len(rows)), key=lambda i: (-values[i], rows[i].key is None, rows[i].key or ""))
    rows, values = [rows[i] for i in order], [values[i] for i in order]
    untagged = next((r for r in rows if r.key is None), None)
    keys = doc.tag_keys.get(name) or []
    view = {"name": name, "title": title, "rows": rows[:TOP_ROWS], "more": max(0, len(rows) - TOP_ROWS),
            "priced": money, "unit": unit, "chart": None, "chart_id": f"chart-{name}",
            # A request with none of the tag keys is untagged: say so, and which setting would tag it.
            "untagged": untagged, "untagged_note": (
                f"Untagged: requests that carry none of the {name} keys ({', '.join(keys[:6])}"
                f"{', …' if len(keys) > 6 else ''}). Set `{name}_keys` in llmaudit.toml to the attribute your services write."
                if untagged is not None and keys else None)}
    if chart:
        if name == "day":
            view["chart"] = column_chart(view["chart_id"], [_day_label(r.key) for r in rows], values, money=money,
                                         ylabel="spend (USD)" if money else "tokens")
        else:
            view["chart"] = bar_chart(view["chart_id"], [r.key if r.key is not None else "untagged" for r in rows], values,
                                      money=money, xlabel=unit)
    return view


def _finding_views(doc: AuditDocument) -> list[dict]:
    """Each finding with its anchor and its own chart (the costliest FINDING_CHARTS of them: a huge report stays light)."""
    views = []
    for i, f in enumerate(doc.findings):
        data = doc.charts.get(f.fingerprint)
        chart_id = f"chart-f{i + 1}"
        chart = finding_chart(chart_id, data) if data is not None and i < FINDING_CHARTS else None
        views.append({"f": f, "n": i + 1, "anchor": f"finding-{i + 1}", "chart": chart, "chart_data": data,
                      "chart_id": chart_id})
    return views


def _waste_chart(doc: AuditDocument) -> Markup | None:
    priced = [f for f in doc.findings if (_money_of(f) or 0) > 0]
    if not priced:
        return None
    per_month = all(f.waste.usd_per_month is not None for f in priced)
    priced.sort(key=lambda f: -(_money_of(f) or 0))
    return bar_chart("chart-waste", finding_labels(priced), [_money_of(f) for f in priced],
                     money=True, colors=[SEVERITY_COLOR[f.severity] for f in priced], label_chars=48,
                     xlabel="estimated waste per month (USD)" if per_month else "estimated waste (USD)")


def finding_labels(findings: list[Finding]) -> list[str]:
    """A short label per finding that tells it from the others: the rule's name, plus the part of the scope
    (feature, model, service, tenant) that differs between findings of the same rule."""
    labels = []
    for f in findings:
        same = [g for g in findings if g.rule_name == f.rule_name]
        label = f.rule_name
        if len(same) > 1:
            for part in ("feature", "model", "service", "tenant"):
                values = {getattr(g.scope, part) for g in same}
                if len(values) > 1:
                    label += f" · {getattr(f.scope, part) or 'all'}"
                    break
            else:
                label += f" · {f.fingerprint[-6:]}"
        labels.append(label)
    return labels


def _measured_chart(doc: AuditDocument) -> Markup | None:
    replayed = [f for f in doc.findings if f.measured is not None and f.measured.usd_per_month is not None][:CHART_BARS]
    if not replayed:
        return None
    return grouped_chart("chart-measured", [f"{f.rule_id} {_scope(f.scope)}" for f in replayed],
                         {"estimated": [f.waste.usd_per_month for f in replayed],
                          "measured": [f.measured.usd_per_month for f in replayed]}, money=True, colors=[MUTED, GOOD])


def _baseline_chart(cmp) -> Markup | None:
    rows = [r for r in cmp.by_feature if r.spend_usd.current or r.spend_usd.baseline][:CHART_BARS]
    if rows:
        return grouped_chart("chart-baseline", [r.key for r in rows],
                             {"baseline": [r.spend_usd.baseline for r in rows], "this run": [r.spend_usd.current for r in rows]},
                             money=True)
    rows = [r for r in cmp.by_feature if r.tokens.current or r.tokens.baseline][:CHART_BARS]
    if rows:
        return grouped_chart("chart-baseline", [r.key for r in rows],
                             {"baseline": [r.tokens.baseline for r in rows], "this run": [r.tokens.current for r in rows]},
                             money=False)
    return None


def _inputs_view(doc: AuditDocument) -> dict:
    """Input files named relative to the folder they share, so a long path does not widen the table."""
    import posixpath

    paths = [i.path for i in doc.inputs]
    folder = posixpath.commonpath(paths) if len(paths) > 1 else (posixpath.dirname(paths[0]) if paths else "")
    if folder in paths:  # one file, or one path a prefix of another: name it by its folder
        folder = posixpath.dirname(folder)
    files = [(posixpath.relpath(i.path, folder) if folder else i.path, i) for i in doc.inputs]
    return {"folder": folder, "files": files}


def _top_savings(doc: AuditDocument, views: list[dict], n: int = 5) -> list[dict]:
    """The findings the waste total counts, dollars first (reconciliation gaps and findings on the same calls
    as a larger one are not savings); unpriced findings with a token figure after them."""
    counted = set(doc.totals.counted_findings)

    def key(v: dict):
        f = v["f"]
        return (-(_money_of(f) if _money_of(f) is not None else -1.0), -(f.waste.tokens or 0), f.fingerprint)

    def is_saving(f) -> bool:
        if _money_of(f):
            return f.fingerprint in counted
        return bool(f.waste.tokens) and f.category not in NOT_WASTE

    return sorted([v for v in views if is_saving(v["f"])], key=key)[:n]


def _spend_change_view(cmp) -> dict | None:
    """The decomposition table: the same rows and signed figures as the terminal and Markdown."""
    from llmaudit.report.numbers import signed_usd
    from llmaudit.report.spend_change import PART_LABELS, PARTS, TITLE, cents, creep_text, shown

    if cmp is None or cmp.spend_change is None:
        return None
    sc = cmp.spend_change
    rows = [{"feature": r.feature, "baseline_usd": r.baseline_usd, "current_usd": r.current_usd,
             "change": signed_usd(r.change_usd), "parts": [signed_usd(v) for v in cents(r).values()], "creep": creep_text(r)}
            for r in shown(sc)]
    if not rows and not sc.note:
        return None
    return {"title": TITLE, "note": sc.note, "method": sc.method, "labels": [PART_LABELS[p] for p in PARTS], "rows": rows}


def render_html(doc: AuditDocument) -> str:
    doc = scrub_content(doc)
    cmp = comparison_of(doc)
    severity_counts = {s: sum(1 for f in doc.findings if f.severity == s) for s in reversed(SEVERITIES)}
    extrapolations: dict[str, int] = {}
    for f in doc.findings:
        extrapolations[f.waste.extrapolation] = extrapolations.get(f.waste.extrapolation, 0) + 1
    breakdowns = [
        _breakdown_view(doc, "feature", "By feature", True),
        _breakdown_view(doc, "model", "By model", True),
        _breakdown_view(doc, "tenant", "By tenant", True),
        _breakdown_view(doc, "day", "Over time (by day)", True),
        _breakdown_view(doc, "provider", "By provider", False),
        _breakdown_view(doc, "service", "By service", False),
    ]
    finding_views = _finding_views(doc)
    context = {
        "doc": doc,
        "t": doc.totals,
        "cmp": cmp,
        "baseline_chart": _baseline_chart(cmp) if cmp else None,
        "spend_change": _spend_change_view(cmp),
        "severity_counts": severity_counts,
        "top_savings": _top_savings(doc, finding_views),
        "basis_label": BASIS_LABEL,
        "inputs": _inputs_view(doc),
        "plan": doc.extras.get("plan"),
        "breakdowns": [b for b in breakdowns if b],
        "findings": finding_views,
        "waste_chart": _waste_chart(doc),
        "measured_chart": _measured_chart(doc),
        "replayed": sum(1 for f in doc.findings if f.measured is not None),
        "extrapolations": sorted(extrapolations.items(), key=lambda kv: (-kv[1], kv[0])),
        "other_extras": {k: v for k, v in doc.extras.items() if k not in _OWN_EXTRAS},
        "headline": doc.extras.get("headline") or {},
        "redaction": doc.extras.get("redaction"),
        "content_scrubbed": doc.extras.get("content_scrubbed"),
    }
    html = environment().get_template(TEMPLATE).render(**context)
    _assert_offline(html)
    return html


_REMOTE = re.compile(
    r"""(?:\s(?:src|href|action|poster|data|srcset)\s*=\s*["']?\s*(?!#|data:)[a-z]+:)|@import|url\(\s*["']?(?!#|data:)""", re.I
)


def _assert_offline(html: str) -> None:
    """The report must never fetch anything: fail loudly if a template change ever adds a remote reference."""
    for tag in re.findall(r"<[a-zA-Z][^>]*>", html):
        if _REMOTE.search(tag):
            raise RuntimeError(f"HTML report would reference an external resource: {tag[:120]}")
    style = "".join(re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S))
    if re.search(r"@import|url\(\s*[\"']?(?!#|data:)", style):
        raise RuntimeError("HTML report CSS would reference an external resource")
