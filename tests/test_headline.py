"""The sample week's headline adds up in every output: spend is the sum of its parts, the waste total is
the counted findings and never above the spend, top savings are exactly what the total counts, and every
output names the prices it used."""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import re
import subprocess
import sys

import pytest

from conftest import REPO

SAMPLE = REPO / "sample_traces"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text())


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("headline")
    res = subprocess.run([sys.executable, "-m", "llmaudit", "analyze", str(SAMPLE), "--json", str(d / "r.json"),
                          "--markdown", str(d / "r.md"), "--html", str(d / "r.html")],
                         capture_output=True, text=True, timeout=600, env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    return {"terminal": res.stdout, "doc": json.loads((d / "r.json").read_text()), "md": (d / "r.md").read_text(),
            "html": (d / "r.html").read_text()}


def test_spend_is_the_sum_of_its_parts_and_waste_is_never_above_it(outputs):
    t = outputs["doc"]["totals"]
    p = t["spend_parts"]
    assert t["spend_usd"] == pytest.approx(p["model_apis_usd"] + p["self_hosted_gpu_time_usd"] + p["provisioned_idle_usd"], abs=0.011)
    # The GPU part is the node's provisioned week: 168 GPU-hours at the catalog's H100 price.
    gpu = EXPECTED["gpu"]
    assert p["gpu_provisioned_usd"] == pytest.approx(gpu["provisioned_gpu_hours"] * gpu["usd_per_gpu_hour"], rel=1e-3)
    assert p["self_hosted_gpu_time_usd"] + p["provisioned_idle_usd"] == pytest.approx(p["gpu_provisioned_usd"], abs=0.011)
    assert 0 < t["estimated_waste_usd"] <= t["spend_usd"]
    # The total is the counted findings, each counted once.
    counted = [f for f in outputs["doc"]["findings"] if f["fingerprint"] in t["counted_findings"]]
    assert len(counted) == len(t["counted_findings"])
    assert t["estimated_waste_usd"] == pytest.approx(sum(f["waste"]["usd"] for f in counted), abs=0.011)
    assert not any(f["category"] == "cost_reconciliation" for f in counted)
    assert t["unexplained_spend_usd"] == pytest.approx(EXPECTED["billing"]["unexplained"]["usd"], abs=0.5)


def test_top_savings_are_what_the_total_counts(outputs):
    doc, page = outputs["doc"], outputs["html"]
    top = re.search(r'<ol class="top">(.*?)</ol>', page, re.S).group(1)
    anchors = [int(n) for n in re.findall(r'href="#finding-(\d+)"', top)]
    shown = [doc["findings"][n - 1]["fingerprint"] for n in anchors]
    counted = sorted((f for f in doc["findings"] if f["fingerprint"] in doc["totals"]["counted_findings"]),
                     key=lambda f: -(f["waste"]["usd_per_month"] or 0))
    assert shown == [f["fingerprint"] for f in counted][:5]
    assert "LLMA015" not in html_lib.unescape(top)
    assert "Spend to investigate" in page
    for text in (outputs["terminal"], outputs["md"]):
        assert "89.7% of spend" in text or f"{doc['totals']['estimated_waste_usd'] / doc['totals']['spend_usd']:.1%} of spend" in text


def test_every_output_names_the_prices_it_used(outputs):
    catalog = REPO / "llmaudit" / "pricing" / "prices.yaml"
    digest = hashlib.sha256(catalog.read_bytes()).hexdigest()
    prices = outputs["doc"]["prices"]
    assert prices["sha256"] == digest and prices["as_of"] and prices["source"] and prices["prices_file"] is None
    assert f"sha256 {digest[:12]}" in outputs["terminal"]
    assert f"sha256 {digest[:12]}" in outputs["md"]
    method = outputs["html"].split('id="method"', 1)[1]
    assert digest in method and prices["as_of"] in method


def test_a_price_file_is_named_with_its_hash(tmp_path):
    own = tmp_path / "ours.yaml"
    own.write_text("models:\n  openai:\n    gpt-4o: {input: 2.0, output: 8.0}\n")
    res = subprocess.run([sys.executable, "-m", "llmaudit", "analyze", str(REPO / "rules" / "fixtures" / "LLMA003" / "positive.jsonl"),
                          "--prices", str(own), "-f", "json", "-q"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    prices = json.loads(res.stdout)["prices"]
    assert prices["prices_file"] == str(own) and prices["prices_file_sha256"] == hashlib.sha256(own.read_bytes()).hexdigest()
