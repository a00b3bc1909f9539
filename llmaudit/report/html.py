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

from llmaudit.findings.model import BASIS_LABEL, SEVERITIES, Finding
from llmaudit.report.baseline import comparison_of
from llmaudit.report.document import AuditDocument, BreakdownRow
from llmaudit.report.numbers import num, pct, short_num, short_usd, signed_int, signed_usd, usd
from llmaudit.report.redact import scrub_content
from llmaudit.resources import data_dir

TEMPLATE = "report.html.j2"
TOP_ROWS = 15            # rows per breakdown table before "N more"
CHART_BARS = 12          # bars per ranking chart; the rest become "other"
FINDING_CHARTS = 30      # per-finding charts for the costliest findings; a huge report stays light
LABEL = 34               # characters of a telemetry label on a chart axis
# Shown in extras but rendered by their own sections (or meaningless to a reader).
_OWN_EXTRAS = {"baseline", "redaction", "headline", "content_scrubbed", "prices", "pricing"}

SEVERITY_COLOR = {"critical": "#7f1d1d", "high": "#c2410c", "medium": "#b7791f", "low": "#2b6cb0", "info": "#718096"}
INK, ACCENT, MUTED, GOOD = "#1a202c", "#2c5282", "#a0aec0", "#2f855a"


# ------------------------------------------------------------------------------------------ charts
def _label(value: Any, limit: int = LABEL) -> str:
    text = "(none)" if value is None else str(value)
    text = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", text).strip() or "(empty)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rc(chart_id: str) -> dict:
    return {
        "svg.hashsalt": f"llmaudit-{chart_id}",  # fixed salt: clip-path ids (and so bytes) never change
        "svg.fonttype": "none",                  # text stays text: small, selectable, crisp in print
        "svg.id": chart_id,
        "text.parse_math": False,                # a "$" in a feature name must not become mathtext
        # Matplotlib ships DejaVu Sans, so text is measured the same on every machine (same bytes).
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans"],
        "font.size": 9,
        "axes.edgecolor": MUTED,
        "axes.labelcolor": INK,
        "xtick.color": INK,
        "ytick.color": INK,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }


_SVG_FORBIDDEN = re.compile(
    r"<\s*(script|foreignObject|iframe|object|embed|image)\b|\son[a-z]+\s*=|javascript:|href\s*=\s*[\"'](?!#)", re.I
)


def _clean_svg(svg: str, chart_id: str) -> str:
    """Inline-ready SVG: no XML prolog/DOCTYPE/metadata, ids unique per chart, nothing active."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    # SVG inside HTML needs no namespace declarations; without them the page holds no URL at all.
    head, rest = svg.split(">", 1)
    svg = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", head) + ">" + rest
    # matplotlib escapes < > & in text but leaves quotes; escape them too so no telemetry quote is ever raw
    # (and so nothing below can mistake text for an attribute).
    svg = re.sub(r">([^<]+)<", lambda m: ">" + m.group(1).replace('"', "&#34;").replace("'", "&#39;") + "<", svg)
    referenced: set[str] = set()
    for tag in re.findall(r"<[^>]*>", svg):
        for url_ref, href_ref in re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', tag):
            referenced.add(url_ref or href_ref)

    def fix_tag(m: re.Match) -> str:
        """Keep only ids that something references, prefixed with the chart id: unique across the page."""
        tag = m.group(0)

        def fix_id(i: re.Match) -> str:
            value = i.group(1)
            if value == chart_id:
                return i.group(0)
            return f' id="{chart_id}-{value}"' if value in referenced else ""

        tag = re.sub(r' id="([^"]+)"', fix_id, tag)
        tag = re.sub(r"url\(#([^)]+)\)", lambda r: f"url(#{chart_id}-{r.group(1)})", tag)
        return re.sub(r'href="#([^"]+)"', lambda r: f'href="#{chart_id}-{r.group(1)}"', tag)

    svg = re.sub(r"<[^>]*>", fix_tag, svg)
    for tag in re.findall(r"<[^>]*>", svg):  # check tags only: escaped text content may say anything
        if _SVG_FORBIDDEN.search(tag):
            raise RuntimeError(f"chart {chart_id}: refusing SVG with active content: {tag[:80]}")
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="{chart_id}-cap" ', 1)
    return svg.strip() + "\n"


def _render(fig, chart_id: str) -> Markup:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight", pad_inches=0.05)
    return Markup(_clean_svg(buf.getvalue(), chart_id))  # noqa: S704 - checked by _clean_svg above


def _figure(width: float, height: float):
    # No pyplot (no global figure registry, nothing shared between renders); an explicit Agg canvas,
    # so no GUI backend is ever looked for. savefig(format="svg") hands the figure to the SVG writer.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()




def bar_chart(chart_id: str, labels: list, values: list[float], *, money: bool, color: str = ACCENT,
              colors: list[str] | None = None, xlabel: str = "", width: float = 7.0) -> Markup:
    """A horizontal ranking: biggest on top, the tail folded into one "other" bar."""
    import matplotlib

    pairs = list(zip(labels, values, colors or [color] * len(values)))
    if len(pairs) > CHART_BARS:
        rest = pairs[CHART_BARS - 1:]
        pairs = pairs[: CHART_BARS - 1] + [(f"other ({len(rest)})", sum(v for _, v, _ in rest), MUTED)]
    with matplotlib.rc_context(_rc(chart_id)):
        fig, ax = _figure(width, 0.34 * len(pairs) + 0.7)
        names = [_label(n) for n, _, _ in pairs][::-1]
        vals = [v for _, v, _ in pairs][::-1]
        bars = ax.barh(range(len(vals)), vals, color=[c for _, _, c in pairs][::-1], height=0.65)
        ax.set_yticks(range(len(vals)), names)
        ax.tick_params(axis="y", length=0)
        fmt = short_usd if money else short_num
        top = max(vals) if vals else 0
        for bar, v in zip(bars, vals):
            ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, fmt(v), va="center", fontsize=8, color=INK)
        ax.set_xlim(0, top * 1.18 if top > 0 else 1)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: fmt(x)))
        if xlabel:
            ax.set_xlabel(xlabel)
        return _render(fig, chart_id)


def column_chart(chart_id: str, labels: list[str], values: list[float], *, money: bool, ylabel: str = "") -> Markup:
    """Values over time (one column per day)."""
    import matplotlib

    with matplotlib.rc_context(_rc(chart_id)):
        fig, ax = _figure(7.0, 2.4)
        ax.bar(range(len(values)), values, color=ACCENT, width=0.7)
        step = max(1, len(labels) // 14)
        ax.set_xticks(range(0, len(labels), step), [_label(labels[i], 12) for i in range(0, len(labels), step)],
                      rotation=45 if len(labels) > 8 else 0, ha="right" if len(labels) > 8 else "center")
        fmt = short_usd if money else short_num
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: fmt(y)))
        if ylabel:
            ax.set_ylabel(ylabel)
        return _render(fig, chart_id)


def grouped_chart(chart_id: str, labels: list, series: dict[str, list[float | None]], *, money: bool,
                  colors: list[str] | None = None) -> Markup:
    """Two (or more) numbers per item side by side: baseline vs now, estimated vs measured, now vs recommended."""
    import matplotlib

    colors = colors or [MUTED, ACCENT, GOOD]
    n = len(series)
    with matplotlib.rc_context(_rc(chart_id)):
        fig, ax = _figure(7.0, max(1.0, 0.3 * n * len(labels) + 0.8))
        height = 0.8 / n
        fmt = short_usd if money else short_num
        top = max((v or 0) for vals in series.values() for v in vals) if labels else 0
        for i, (name, vals) in enumerate(series.items()):
            ys = [len(labels) - 1 - j + (n - 1 - i - (n - 1) / 2) * height for j in range(len(labels))]
            clean = [v or 0 for v in vals]
            bars = ax.barh(ys, clean, height=height * 0.92, color=colors[i % len(colors)], label=name)
            for bar, v in zip(bars, vals):
                text = "n/a" if v is None else fmt(v)
                ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8, color=INK)
        ax.set_yticks(range(len(labels)), [_label(x) for x in labels][::-1])
        ax.tick_params(axis="y", length=0)
        ax.set_xlim(0, top * 1.2 if top > 0 else 1)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: fmt(x)))
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=n, frameon=False, fontsize=8)  # above: never on a bar
        return _render(fig, chart_id)


# ------------------------------------------------------------------------------------------ data for charts
def _has_spend(rows: list[BreakdownRow]) -> bool:
    return any(r.spend_usd for r in rows)


def _metric(rows: list[BreakdownRow]) -> tuple[list[float], bool, str]:
    """Spend when it is known, else tokens (unpriced models are never shown as $0)."""
    if _has_spend(rows):
        return [r.spend_usd or 0.0 for r in rows], True, "spend (USD)"
    return [float(r.input_tokens + r.output_tokens) for r in rows], False, "tokens (input + output): spend unknown"


# Evidence keys that name "what it is now" for a given recommended_<x> key, in order of preference.
_NOW_PREFIXES = ("typical_", "current_", "median_", "p50_", "mean_", "")


def recommendation_pair(f: Finding) -> tuple[str, float, float] | None:
    """(what, now, recommended) when the evidence states both, e.g. typical_k 20 vs recommended_k 4."""
    for key, rec in f.evidence.items():
        if not key.startswith("recommended_") or isinstance(rec, bool) or not isinstance(rec, (int, float)):
            continue
        what = key[len("recommended_"):]
        for prefix in _NOW_PREFIXES:
            now = f.evidence.get(prefix + what)
            if isinstance(now, (int, float)) and not isinstance(now, bool) and (prefix or what != key):
                return what.replace("_", " "), float(now), float(rec)
    return None


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


@lru_cache(maxsize=1)
def _nolink(text) -> str:
    """A web address as plain text (scheme dropped): the report links to nothing, not even its sources."""
    return re.sub(r"\bhttps?://", "", "" if text is None else str(text))


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
                       evidence=_evidence, scope=_scope, dt=_dt, label=_label, wbr=_wbr, nolink=_nolink)
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
    view = {"name": name, "title": title, "rows": rows[:TOP_ROWS], "more": max(0, len(rows) - TOP_ROWS),
            "priced": money, "unit": unit, "chart": None, "chart_id": f"chart-{name}"}
    if chart:
        if name == "day":
            view["chart"] = column_chart(view["chart_id"], [_day_label(r.key) for r in rows], values, money=money,
                                         ylabel="spend (USD)" if money else "tokens")
        else:
            view["chart"] = bar_chart(view["chart_id"], [r.key for r in rows], values, money=money, xlabel=unit)
    return view


def _finding_views(doc: AuditDocument) -> list[dict]:
    views = []
    for i, f in enumerate(doc.findings):
        pair = recommendation_pair(f)
        chart = None
        if pair and i < FINDING_CHARTS:
            what, now, rec = pair
            chart = bar_chart(f"chart-f{i + 1}", [f"now (typical {what})", f"recommended {what}"], [now, rec], money=False,
                              colors=[SEVERITY_COLOR[f.severity], GOOD], width=5.0)
        views.append({"f": f, "n": i + 1, "anchor": f"finding-{i + 1}", "pair": pair, "chart": chart,
                      "chart_id": f"chart-f{i + 1}"})
    return views


def _waste_chart(doc: AuditDocument) -> Markup | None:
    priced = [f for f in doc.findings if (_money_of(f) or 0) > 0]
    if not priced:
        return None
    per_month = all(f.waste.usd_per_month is not None for f in priced)
    priced.sort(key=lambda f: -(_money_of(f) or 0))
    return bar_chart("chart-waste", [f"{f.rule_id} {_scope(f.scope)}" for f in priced], [_money_of(f) for f in priced],
                     money=True, colors=[SEVERITY_COLOR[f.severity] for f in priced],
                     xlabel="estimated waste per month (USD)" if per_month else "estimated waste (USD)")


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
        return bool(f.waste.tokens) and f.category != "cost_reconciliation"

    return sorted([v for v in views if is_saving(v["f"])], key=key)[:n]


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
        "severity_counts": severity_counts,
        "top_savings": _top_savings(doc, finding_views),
        "basis_label": BASIS_LABEL,
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
