"""Privacy, end to end: captured prompts, completions and documents never reach any output, and with
--redact no tenant name does either, whichever output a user asks for (files, stdout, the terminal)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO
from llmaudit.store import Store

LLMAUDIT = [sys.executable, "-m", "llmaudit"]
SAMPLE = REPO / "sample_traces"


def run(*args):
    res = subprocess.run([*LLMAUDIT, *map(str, args)], capture_output=True, text=True, timeout=600,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "LLMAUDIT_REDACT_SALT": "test-salt"})
    assert res.returncode in (0, 1), res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """A store of the sample support bot (tenants, captured content on some calls, documents'
    metadata) and email drafter (OpenLLMetry prompt and completion content on every call)."""
    d = tmp_path_factory.mktemp("privacy")
    db = d / "s.duckdb"
    res = subprocess.run([*LLMAUDIT, "ingest", SAMPLE / "support-bot.otlp.jsonl.gz", SAMPLE / "email-drafter.otlp.json",
                          "--db", db, "-q"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    with Store(db, read_only=True) as store:
        tenants = sorted(t for (t,) in store.con.execute("SELECT DISTINCT tenant FROM requests WHERE tenant IS NOT NULL").fetchall())
        # Every captured text of the inputs: message contents, prompts, completions, documents.
        content = [v for (v,) in store.con.execute("""
            SELECT DISTINCT e.value ->> '$' FROM spans, json_each(attributes) e
            WHERE (e.key LIKE '%content%' OR e.key LIKE '%prompt%' OR e.key LIKE '%completion%'
                   OR e.key LIKE '%messages%' OR e.key IN ('input.value', 'output.value'))
              AND length(e.value ->> '$') >= 60""").fetchall()]
    assert len(tenants) >= 3 and len(content) >= 100
    return d, db, tenants, content


def _outputs(d, db, *flags) -> dict[str, str]:
    tag = "-".join(f.strip("-") for f in flags) or "plain"
    files = {k: d / f"{tag}.{k}" for k in ("json", "md", "html", "o.json", "o.txt")}
    out = {"terminal -v": run("report", "--db", db, "-v", *flags),
           "stdout json": run("report", "--db", db, "--format", "json", *flags)}
    run("report", "--db", db, "--json", files["json"], "--markdown", files["md"], "--html", files["html"],
        "--format", "json", "-o", files["o.json"], *flags)
    run("report", "--db", db, "-v", "-o", files["o.txt"], *flags)
    out.update({name: path.read_text(encoding="utf-8") for name, path in files.items()})
    return out


def test_content_never_appears_and_redact_removes_every_tenant_name(audited):
    d, db, tenants, content = audited
    plain = _outputs(d, db)
    redacted = _outputs(d, db, "--redact")
    names = re.compile("|".join(rf"\b{re.escape(t)}\b" for t in tenants))
    # Without --redact the tenants are in the reports (so the check below can fail)...
    assert names.search(plain["json"]) and names.search(plain["stdout json"])
    for name, text in redacted.items():
        assert not names.search(text), f"{name}: a tenant name survived --redact: {names.search(text).group(0)}"
    for name in ("json", "stdout json", "html"):  # the tenant breakdowns are there, under hashed names
        assert "anon-" in redacted[name], name
    for outputs in (plain, redacted):
        for name, text in outputs.items():
            leaked = [c[:60] for c in content if c[:60] in text]
            assert not leaked, f"{name}: captured content in the output: {leaked[:2]}"
    # Machine outputs agree: stdout, -o and --json are the same bytes.
    assert redacted["stdout json"] == redacted["o.json"] == redacted["json"]
