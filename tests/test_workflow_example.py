"""The example weekly GitHub Actions workflow: its audit step, run as written, on two weeks of data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

WORKFLOW = REPO / "examples" / "github-actions" / "weekly-audit.yml"
SAMPLE = REPO / "sample_traces"


def _step(name: str) -> dict:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    steps = [s for job in jobs.values() for s in job["steps"]]
    return next(s for s in steps if s.get("name") == name)


def _run_audit(workdir: Path, baseline_args: str) -> dict:
    out = workdir / "github_output"
    out.write_text("")
    env = {**os.environ, "BASELINE_ARGS": baseline_args, "GITHUB_OUTPUT": str(out),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    proc = subprocess.run(["bash", "-e", "-c", _step("Audit")["run"]], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the step itself never fails: it records rc
    return dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)


def test_workflow_is_valid_and_installs_a_pinned_source_not_the_pypi_name():
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc["permissions"] == {"contents": "read", "actions": "read"}
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"][0]["cron"].endswith("* * 1")  # Mondays
    install = _step("Install llmaudit")["run"]
    assert 'pip install "$LLMAUDIT_PIP_SPEC"' in install
    assert "pip install llmaudit" not in install.replace('"$LLMAUDIT_PIP_SPEC"', "")
    assert _step("Job summary")["run"] == 'cat report.md >> "$GITHUB_STEP_SUMMARY"'


def test_audit_step_records_a_baseline_then_fails_on_a_new_finding(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(SAMPLE / "email-drafter.otlp.json", export)          # week 1: a healthy feature only
    first = _run_audit(tmp_path, "")
    assert first["rc"] == "0"
    for name in ("report.json", "report.md", "report.html"):
        assert (tmp_path / name).stat().st_size > 0
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    shutil.move(tmp_path / "report.json", baseline / "report.json")  # what the restore step does
    args = "--baseline baseline/report.json --fail-on-new"
    assert _run_audit(tmp_path, args)["rc"] == "0"                   # same week again: nothing new
    shutil.copy(SAMPLE / "ops-agent.jaeger.json.gz", export)         # week 2: the agent's loops appear
    assert _run_audit(tmp_path, args)["rc"] == "1"
    summary = (tmp_path / "report.md").read_text()
    assert "LLMA002" in summary and "new" in summary.lower()
