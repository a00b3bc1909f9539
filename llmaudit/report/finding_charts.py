"""One picture per finding: the data of its chart, computed from the store when the audit document is built.

Which chart a finding gets, and the SQL that fills it, is data: one YAML file per chart in rules/charts/,
applying to rule ids or to categories (a rule's own chart wins over its category's). Each chart is one
SELECT run in the store's sandbox, bound to the finding:

    $service $feature $model $tenant $window_start $window_end    the finding's scope (NULL = any)
    $ev_<key>                                                      a number or text of its evidence
    {scope:c}        expands to the scope conditions on alias c (service, feature, model, tenant)
    {scope:c:service,feature}                                      ... on those columns only
    {window:c}       c.start_time inside the finding's window (TRUE when it has none)

or it reads a list of rows the finding's evidence already holds (`evidence: hours_of_day`). The chart is
stored in the document (AuditDocument.charts, by fingerprint) so JSON, HTML and Markdown show the same
figures; renderers only draw it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmaudit.findings.model import Finding
from llmaudit.resources import data_dir
from llmaudit.store import SqlRefused, Store
from llmaudit.yamlfile import load_yaml

ChartKind = Literal["columns", "lines", "histogram", "bars"]
Unit = Literal["usd", "count", "tokens", "gpus", "share", "score"]
MAX_POINTS = 400  # a chart with more x values than this is cut to its first ones (and says so)


class ChartError(Exception):
    pass


# ---------------------------------------------------------------- what a document carries

class Series(BaseModel):
    label: str
    values: list[float | None]


class Reference(BaseModel):
    """A line across the chart at a value: the budget, the recommended k, the provisioned replicas."""

    label: str
    value: float
    axis: Literal["x", "y"] = "y"


class FindingChart(BaseModel):
    kind: ChartKind
    title: str
    caption: str = Field(description="one sentence: what to look at")
    x_label: str
    y_label: str
    unit: Unit = "count"
    x: list[str | float] = Field(description="the x values (categories, times as text, or numbers)")
    series: list[Series]
    references: list[Reference] = Field(default_factory=list)
    note: str | None = Field(None, description="e.g. that the chart was cut to its first points")


# ---------------------------------------------------------------- the chart files

class _Axis(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str
    label: str


class _YAxis(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    unit: Unit = "count"


class _SeriesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str
    label: str


class _Pivot(BaseModel):
    """Rows of (x, series name, value) turned into one series per name (the first `top` names by total)."""

    model_config = ConfigDict(extra="forbid")
    series: str
    value: str
    top: int = 5


class _ReferenceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    value: str = Field(description="$ev_<evidence key>, or an expression of them joined by +")
    axis: Literal["x", "y"] = "y"


class ChartSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    rules: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    kind: ChartKind
    title: str
    caption: str
    x: _Axis
    y: _YAxis
    series: list[_SeriesSpec] = Field(default_factory=list)
    pivot: _Pivot | None = None
    references: list[_ReferenceSpec] = Field(default_factory=list)
    sql: str | None = None
    evidence: str | None = Field(None, description="draw from this list of rows in the finding's evidence")
    path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.sql is None) == (self.evidence is None):
            raise ValueError("give exactly one of sql and evidence")
        if not self.rules and not self.categories:
            raise ValueError("say which rules or categories the chart is for")
        if not self.series and self.pivot is None:
            raise ValueError("give series, or a pivot")
        return self


def charts_dir() -> Path:
    return data_dir("rules") / "charts"


def load_specs(folder: Path | None = None) -> list[ChartSpec]:
    specs = []
    for path in sorted((folder or charts_dir()).glob("*.y*ml")):
        try:
            spec = ChartSpec.model_validate(load_yaml(path.read_text(encoding="utf-8")))
        except ValidationError as exc:
            raise ChartError(f"{path}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
        spec.path = path
        specs.append(spec)
    return specs


def spec_for(finding: Finding, specs: list[ChartSpec]) -> ChartSpec | None:
    """The rule's own chart, else its category's."""
    for spec in specs:
        if finding.rule_id in spec.rules:
            return spec
    for spec in specs:
        if finding.category in spec.categories:
            return spec
    return None


# ---------------------------------------------------------------- filling a chart

_SCOPE = ("service", "feature", "model", "tenant")


def _expand(sql: str) -> str:
    def scope(m: re.Match) -> str:
        alias, cols = m.group(1), (m.group(2) or ",".join(_SCOPE)).split(",")
        return "(" + " AND ".join(f"(${c} IS NULL OR {alias}.{c} = ${c})" for c in cols) + ")"

    sql = re.sub(r"\{scope:(\w+)(?::([\w,]+))?\}", scope, sql)
    return re.sub(r"\{window:(\w+)\}",
                  lambda m: f"($window_start IS NULL OR {m.group(1)}.start_time BETWEEN $window_start AND $window_end)", sql)


def _params(finding: Finding) -> dict[str, Any]:
    s = finding.scope
    params: dict[str, Any] = {"service": s.service, "feature": s.feature, "model": s.model, "tenant": s.tenant,
                              "window_start": _naive(s.window_start), "window_end": _naive(s.window_end)}
    for key, value in finding.evidence.items():
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            params[f"ev_{key}"] = value
    return params


def _naive(value):
    """Store times are UTC without a zone."""
    return value.replace(tzinfo=None) if value is not None and value.tzinfo is not None else value


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else round(f, 6)


def _x(value) -> str | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value)
    return "(none)" if value is None else str(value)


def _reference(ref: _ReferenceSpec, params: dict) -> Reference | None:
    total = 0.0
    for term in ref.value.split("+"):
        term = term.strip()
        value = params.get(term[1:]) if term.startswith("$") else _number(term)
        value = _number(value)
        if value is None:
            return None
        total += value
    return Reference(label=ref.label, value=round(total, 6), axis=ref.axis)


def _rows(spec: ChartSpec, finding: Finding, store: Store) -> tuple[list[str], list[tuple]]:
    if spec.evidence is not None:
        rows = finding.evidence.get(spec.evidence)
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            return [], []
        columns = list(rows[0])
        return columns, [tuple(r.get(c) for c in columns) for r in rows]
    sql = _expand(spec.sql)
    params = {k: v for k, v in _params(finding).items() if f"${k}" in sql}
    try:
        return store.select(sql, params, what=f"chart {spec.id} ({spec.path})")
    except SqlRefused as exc:
        raise ChartError(str(exc)) from None


def build_chart(spec: ChartSpec, finding: Finding, store: Store) -> FindingChart | None:
    """The chart of one finding, or None when the store holds nothing to draw."""
    columns, rows = _rows(spec, finding, store)
    if not rows:
        return None
    col = {name: i for i, name in enumerate(columns)}
    missing = [c for c in [spec.x.column, *(s.column for s in spec.series),
                           *((spec.pivot.series, spec.pivot.value) if spec.pivot else ())] if c not in col]
    if missing:
        raise ChartError(f"chart {spec.id} ({spec.path}): no column {', '.join(missing)} in its rows ({', '.join(columns)})")
    note = None
    if spec.pivot is None:
        xs = [_x(r[col[spec.x.column]]) for r in rows]
        series = [Series(label=s.label, values=[_number(r[col[s.column]]) for r in rows]) for s in spec.series]
    else:
        xs = list(dict.fromkeys(_x(r[col[spec.x.column]]) for r in rows))
        totals: dict[str, float] = {}
        cells: dict[tuple, float] = {}
        for r in rows:
            name = str(r[col[spec.pivot.series]]) if r[col[spec.pivot.series]] is not None else "(none)"
            v = _number(r[col[spec.pivot.value]]) or 0.0
            totals[name] = totals.get(name, 0.0) + v
            cells[(_x(r[col[spec.x.column]]), name)] = cells.get((_x(r[col[spec.x.column]]), name), 0.0) + v
        names = sorted(totals, key=lambda n: (-totals[n], n))
        if len(names) > spec.pivot.top:
            note = f"the {spec.pivot.top} largest of {len(names)} {spec.pivot.series} values"
            names = names[: spec.pivot.top]
        series = [Series(label=n, values=[cells.get((x, n)) for x in xs]) for n in names]
    if len(xs) > MAX_POINTS:
        note = f"the first {MAX_POINTS} of {len(xs)} points"
        xs = xs[:MAX_POINTS]
        series = [s.model_copy(update={"values": s.values[:MAX_POINTS]}) for s in series]
    params = _params(finding)
    refs = [r for r in (_reference(ref, params) for ref in spec.references) if r is not None]
    return FindingChart(kind=spec.kind, title=spec.title, caption=spec.caption, x_label=spec.x.label,
                        y_label=spec.y.label, unit=spec.y.unit, x=xs, series=series, references=refs, note=note)


def finding_charts(store: Store, findings: list[Finding], specs: list[ChartSpec] | None = None) -> dict[str, FindingChart]:
    """{fingerprint: chart} for every finding whose category (or rule) has a chart and whose data exists."""
    specs = load_specs() if specs is None else specs
    out: dict[str, FindingChart] = {}
    with store.sandboxed():
        for f in findings:
            spec = spec_for(f, specs)
            if spec is not None:
                chart = build_chart(spec, f, store)
                if chart is not None:
                    out[f.fingerprint] = chart
    return out
