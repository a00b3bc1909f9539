"""Charts as inline SVG, drawn by matplotlib (Agg, no pyplot state): the rankings and time series of the
report, and each finding's own chart (llmaudit.report.finding_charts) from the data the document holds.

Safety: matplotlib writes text XML-escaped; `_clean_svg` also refuses any SVG that carries a script, an
event handler, a foreignObject or an external reference, and drops namespace URLs. Determinism: a fixed
hash salt, no dates in metadata, ids derived from the chart's name: the same data gives the same bytes.
"""

from __future__ import annotations

import io
import re
from typing import Any

from markupsafe import Markup

from llmaudit.report.finding_charts import FindingChart
from llmaudit.report.numbers import pct, short_num, short_usd

CHART_BARS = 12          # bars per ranking chart; the rest become "other"
LABEL = 34               # characters of a telemetry label on a chart axis


SEVERITY_COLOR = {"critical": "#7f1d1d", "high": "#c2410c", "medium": "#b7791f", "low": "#2b6cb0", "info": "#718096"}
INK, ACCENT, MUTED, GOOD = "#1a202c", "#2c5282", "#a0aec0", "#2f855a"


# ------------------------------------------------------------------------------------------ charts
def short_label(value: Any, limit: int = LABEL) -> str:
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




LOG_SPREAD = 50  # a ranking whose largest bar is this many times its smallest is drawn on a log scale


def bar_chart(chart_id: str, labels: list, values: list[float], *, money: bool, color: str = ACCENT,
              colors: list[str] | None = None, xlabel: str = "", width: float = 7.0, label_chars: int = LABEL) -> Markup:
    """A horizontal ranking: biggest on top, the tail folded into one "other" bar. When the values span more
    than LOG_SPREAD times, the axis is logarithmic so the small bars stay visible (the axis label says so)."""
    import matplotlib

    pairs = list(zip(labels, values, colors or [color] * len(values)))
    if len(pairs) > CHART_BARS:
        rest = pairs[CHART_BARS - 1:]
        pairs = pairs[: CHART_BARS - 1] + [(f"other ({len(rest)})", sum(v for _, v, _ in rest), MUTED)]
    with matplotlib.rc_context(_rc(chart_id)):
        fig, ax = _figure(width, 0.34 * len(pairs) + 0.7)
        names = [short_label(n, label_chars) for n, _, _ in pairs][::-1]
        vals = [v for _, v, _ in pairs][::-1]
        positive = [v for v in vals if v > 0]
        log = len(positive) > 1 and max(positive) / min(positive) > LOG_SPREAD
        floor = min(positive) / 2 if log else 0.0
        bars = ax.barh(range(len(vals)), [max(v, floor) - floor for v in vals], left=floor,
                       color=[c for _, _, c in pairs][::-1], height=0.65)
        ax.set_yticks(range(len(vals)), names)
        ax.tick_params(axis="y", length=0)
        fmt = short_usd if money else short_num
        top = max(vals) if vals else 0
        for bar, v in zip(bars, vals):
            end = bar.get_x() + bar.get_width()
            ax.text(end * 1.08 if log else end + top * 0.01, bar.get_y() + bar.get_height() / 2, fmt(v), va="center",
                    fontsize=8, color=INK)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(floor, top * 4)
        else:
            ax.set_xlim(0, top * 1.18 if top > 0 else 1)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: fmt(x)))
        if xlabel:
            ax.set_xlabel(xlabel + (" (log scale)" if log else ""))
        return _render(fig, chart_id)


def column_chart(chart_id: str, labels: list[str], values: list[float], *, money: bool, ylabel: str = "") -> Markup:
    """Values over time (one column per day)."""
    import matplotlib

    with matplotlib.rc_context(_rc(chart_id)):
        fig, ax = _figure(7.0, 2.4)
        ax.bar(range(len(values)), values, color=ACCENT, width=0.7)
        step = max(1, len(labels) // 14)
        ax.set_xticks(range(0, len(labels), step), [short_label(labels[i], 12) for i in range(0, len(labels), step)],
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
        ax.set_yticks(range(len(labels)), [short_label(x) for x in labels][::-1])
        ax.tick_params(axis="y", length=0)
        ax.set_xlim(0, top * 1.2 if top > 0 else 1)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: fmt(x)))
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=n, frameon=False, fontsize=8)  # above: never on a bar
        return _render(fig, chart_id)


# ------------------------------------------------------------------------------------------ a finding's chart
PALETTE = [ACCENT, "#dd6b20", GOOD, "#805ad5", "#d53f8c", MUTED]


def _unit_format(unit: str):
    if unit == "usd":
        return short_usd
    if unit == "share":
        return lambda v: pct(v) or "0%"
    if unit == "score":
        return lambda v: f"{v:.2f}"
    return short_num


def finding_chart(chart_id: str, chart: FindingChart, width: float = 6.4) -> Markup:
    """Columns (grouped, one group per x), lines, or a histogram, with its reference lines, axes with units,
    and a legend above the plot when there is more than one series."""
    import matplotlib

    numeric = all(isinstance(x, (int, float)) for x in chart.x)
    xs = [float(x) for x in chart.x] if numeric else list(range(len(chart.x)))
    fmt = _unit_format(chart.unit)
    with matplotlib.rc_context(_rc(chart_id)):
        fig, ax = _figure(width, 2.6)
        n = len(chart.series)
        step = min((b - a for a, b in zip(xs, xs[1:]) if b > a), default=1.0)
        if chart.kind == "lines":
            for i, s in enumerate(chart.series):
                ax.plot(xs, [v if v is not None else float("nan") for v in s.values], color=PALETTE[i % len(PALETTE)],
                        linewidth=1.6, marker="o" if len(xs) <= 40 else None, markersize=3, label=s.label)
        elif chart.kind == "histogram":
            for i, s in enumerate(chart.series):
                ax.bar(xs, [v or 0 for v in s.values], width=step * 0.9, align="edge", color=PALETTE[i % len(PALETTE)],
                       label=s.label)
        else:  # columns: a group of bars per x
            width_each = step * 0.8 / max(n, 1)
            for i, s in enumerate(chart.series):
                offset = (i - (n - 1) / 2) * width_each
                ax.bar([x + offset for x in xs], [v or 0 for v in s.values], width=width_each * 0.95,
                       color=PALETTE[i % len(PALETTE)], label=s.label)
        for ref in chart.references:
            style = dict(color="#c53030", linestyle="--", linewidth=1.2)
            if ref.axis == "x":
                pos = ref.value if numeric else _category_position(chart.x, ref.value)
                if pos is None:
                    continue
                ax.axvline(pos, **style)
                ax.annotate(f"{ref.label} {short_num(ref.value)}", xy=(pos, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(3, -10), textcoords="offset points", fontsize=8, color="#c53030")
            else:
                ax.axhline(ref.value, **style)
                ax.annotate(f"{ref.label} {fmt(ref.value)}", xy=(0.0, ref.value), xycoords=("axes fraction", "data"),
                            xytext=(3, 3), textcoords="offset points", fontsize=8, color="#c53030")
        if numeric and chart.references:  # keep every reference line inside the plot
            lo = min([*xs, *(r.value for r in chart.references if r.axis == "x")])
            hi = max([x + (step if chart.kind == "histogram" else 0) for x in xs]
                     + [r.value for r in chart.references if r.axis == "x"])
            pad = (hi - lo) * 0.04 or 1
            ax.set_xlim(lo - pad, hi + pad)
        if not numeric:
            shown = max(1, len(xs) // 16)
            labels = [short_label(chart.x[i], 14) for i in range(0, len(xs), shown)]
            tilt = len(labels) * max(len(t) for t in labels) > 60  # would they run into each other?
            ax.set_xticks(xs[::shown], labels, rotation=40 if tilt else 0, ha="right" if tilt else "center")
        elif all(float(x).is_integer() for x in xs):  # whole x values (ranks, turns, hours): whole ticks
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if chart.unit in ("count", "gpus", "tokens"):  # whole things: no 0.5 GPU ticks
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: fmt(y)))
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
        if n > 1:
            ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=min(n, 4), frameon=False, fontsize=8)
        return _render(fig, chart_id)


def _category_position(xs: list, value: float) -> float | None:
    """Where a numeric reference falls on a categorical axis: the index of the matching category, if any."""
    for i, x in enumerate(xs):
        try:
            if float(x) == value:
                return float(i)
        except (TypeError, ValueError):
            continue
    return None
