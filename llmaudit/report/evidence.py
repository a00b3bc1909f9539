"""A finding's evidence as a reader sees it: human labels with units, numbers formatted, lists whole.

The labels and units are data (report_templates/evidence.yaml); this module applies them. Renderers (HTML,
Markdown) get `evidence_items(evidence)`: one item per key, either a formatted value or a small table
(a list of records: the first MAX_ROWS rows and how many more).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from llmaudit.report.numbers import num, pct, usd
from llmaudit.resources import data_dir
from llmaudit.yamlfile import load_yaml

MAX_ROWS = 12  # rows of a list of records shown before "and N more"


@dataclass
class EvidenceItem:
    key: str
    label: str
    text: str | None = None                               # a scalar or a list of scalars, formatted
    headers: list[str] = field(default_factory=list)     # a list of records: its columns (labelled) ...
    rows: list[list[str]] = field(default_factory=list)  # ... its first MAX_ROWS rows, formatted
    more: int = 0                                        # ... and how many rows are not shown


@lru_cache(maxsize=1)
def _table() -> tuple[list[tuple[re.Pattern, str]], dict[str, str], dict[str, str]]:
    doc = load_yaml((data_dir("report_templates") / "evidence.yaml").read_text(encoding="utf-8"))
    units = [(re.compile(pattern), unit) for pattern, unit in doc.get("units", [])]
    return units, dict(doc.get("words", {})), dict(doc.get("labels", {}))


def unit_of(key: str) -> str:
    units, _, _ = _table()
    for pattern, unit in units:
        if pattern.fullmatch(key):
            return unit
    return "number"


def label_of(key: str) -> str:
    _, words, labels = _table()
    if key in labels:
        return labels[key]
    return " ".join(words.get(w, w) for w in str(key).split("_") if w)


def format_value(value, unit: str = "number") -> str:
    """One value in its unit: $1,234.56, 91.7%, 1,234 tokens, 154 GPU-hours, 545.6 s."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    if unit == "usd":
        return usd(value)
    if unit == "usd_per_mtok":
        return f"{usd(value)} per 1M tokens"
    if unit == "share":
        return pct(value)
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "ratio":
        return f"{num(value)}×"
    suffix = {"tokens": " tokens", "gpu_hours": " GPU-hours", "hours": " h", "seconds": " s", "minutes": " min",
              "gpus": " GPUs" if value != 1 else " GPU"}.get(unit, "")
    return num(value) + suffix


def evidence_items(evidence: dict, max_rows: int = MAX_ROWS) -> list[EvidenceItem]:
    items = []
    for key, value in evidence.items():
        label = label_of(key)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for row in value for k in row))
            rows = [[format_value(row.get(c), unit_of(c)) for c in columns] for row in value[:max_rows]]
            items.append(EvidenceItem(key, label, headers=[label_of(c) for c in columns], rows=rows,
                                      more=max(len(value) - max_rows, 0)))
        elif isinstance(value, dict):
            rows = [[label_of(k), format_value(v, unit_of(k))] for k, v in list(value.items())[:max_rows]]
            items.append(EvidenceItem(key, label, headers=["", ""], rows=rows, more=max(len(value) - max_rows, 0)))
        elif isinstance(value, list):
            unit = unit_of(key)
            items.append(EvidenceItem(key, label, text=", ".join(format_value(v, unit if unit != "tokens" else "number")
                                                                 for v in value)))
        else:
            items.append(EvidenceItem(key, label, text=format_value(value, unit_of(key))))
    return items
