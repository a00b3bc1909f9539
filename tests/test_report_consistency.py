"""One audit document, four renderings: the terminal, JSON, Markdown and HTML show the same figures, and a
redacted report keeps every chart while no tenant name survives in any of them."""

from __future__ import annotations

import html as html_lib
import json
import re
import subprocess
import sys

import pytest

from conftest import REPO
from llmaudit.report.numbers import usd

SAMPLE = REPO / "sample_traces"
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")  # the sample week's tenants (sample_traces/README.md)


def run(*args, env=None):
    res = subprocess.run([sys.executable, "-m", "llmaudit", *map(str, args)], capture_output=True, text=True, timeout=600,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", **(env or {})})
    assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    db = tmp_path_factory.mktemp("consistency") / "s.duckdb"
    run("analyze", SAMPLE, "--db", db, "-q")
    return db


def render_all(store, out, *extra, env=None) -> dict:
    res = run("report", "--db", store, "--json", out / "r.json", "--markdown", out / "r.md", "--html", out / "r.html",
              *extra, env=env)
    page = (out / "r.html").read_text()
    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", page))
    return {"doc": json.loads((out / "r.json").read_text()), "terminal": res.stdout, "md": (out / "r.md").read_text(),
            "html_text": " ".join(text.split()), "html": page}


def test_the_same_figures_in_every_output(store, tmp_path):
    out = render_all(store, tmp_path)
    doc = out["doc"]
    t = doc["totals"]
    for figure in (usd(t["spend_usd"]), usd(t["estimated_waste_usd"]), usd(t["estimated_waste_usd_per_month"]),
                   usd(t["unexplained_spend_usd"])):
        for name in ("terminal", "md", "html_text"):
            assert figure in out[name].replace("\\$", "$"), f"{figure} missing from the {name} output"
    for f in doc["findings"]:
        waste = usd(f["waste"]["usd_per_month"])
        for name in ("terminal", "md", "html_text"):
            assert waste in out[name].replace("\\$", "$"), f"{f['rule_id']} {waste} missing from the {name} output"
    # Each finding's chart: the same data in the JSON as drawn in the HTML (one figure per finding) and
    # summarised in the Markdown (its title and the range of its first series).
    assert set(doc["charts"]) == {f["fingerprint"] for f in doc["findings"]}
    assert len(re.findall(r'<figure class="chart" id="chart-f\d+-fig"', out["html"])) == len(doc["findings"])
    for f in doc["findings"]:
        chart = doc["charts"][f["fingerprint"]]
        assert chart["title"] in out["html_text"]
        plain_md = out["md"].replace("\\", "").replace("&#x27;", "'")  # Markdown escapes _ and quotes
        assert chart["title"] in plain_md


def test_a_redacted_report_keeps_its_charts_and_names_no_tenant(store, tmp_path):
    out = render_all(store, tmp_path, "--redact", env={"LLMAUDIT_REDACT_SALT": "a-secret"})
    doc, page = out["doc"], out["html"]
    assert len(re.findall(r'<figure class="chart" id="chart-f\d+-fig"', out["html"])) == len(doc["findings"]) == len(doc["charts"])
    assert "chart-tenant" in page  # the tenant ranking is still drawn, with pseudonyms
    lowered = {k: v.lower() for k, v in out.items() if isinstance(v, str)}
    for name in TENANTS:
        for where, text in lowered.items():
            assert re.search(rf"\b{name}\b", text) is None, f"tenant {name!r} appears in the redacted {where} output"
    # SVG text (chart labels) and the charts' accessible names are part of `html` above; say so explicitly:
    labels = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", page)) + " ".join(re.findall(r'aria-label="([^"]*)"', page))
    assert "anon-" in labels and not any(n in labels.lower() for n in TENANTS)
