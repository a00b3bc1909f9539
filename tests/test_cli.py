"""The command line as a user runs it: real processes, real files, exit codes and output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import otlp_factory as f

from conftest import REPO

LLMAUDIT = [sys.executable, "-m", "llmaudit"]


def run(*args, cwd=None, timeout=300):
    return subprocess.run([*LLMAUDIT, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def write_traces(path, n=10, **kw):
    f.write_jsonl(path, [f.request(f.simple_trace(**kw)) for _ in range(n)])


def test_ingest_prints_a_summary_and_query_reads_it(tmp_path):
    src = tmp_path / "t.jsonl"
    write_traces(src, n=10, n_llm=2, tokens=(300, 40))
    db = tmp_path / "s.duckdb"

    res = run("ingest", src, "--db", db)
    assert res.returncode == 0, res.stderr
    assert "ingested (otlp-jsonl)" in res.stdout
    assert "30 in 10 traces" in res.stdout  # spans in traces
    assert "LLM calls    20" in res.stdout

    res = run("query", "--db", db, "SELECT model, count(*) AS n, sum(input_tokens) AS t FROM llm_calls GROUP BY 1", "-f", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [{"model": "gpt-4o", "n": 20, "t": 6000}]

    res = run("query", "--db", db, "SELECT count(*) AS n FROM spans", "-f", "csv")
    assert res.stdout == "n\n30\n"


def test_query_is_read_only(tmp_path):
    src = tmp_path / "t.jsonl"
    write_traces(src, n=2)
    db = tmp_path / "s.duckdb"
    assert run("ingest", src, "--db", db, "-q").returncode == 0
    res = run("query", "--db", db, "DELETE FROM spans")
    assert res.returncode == 2
    assert "read-only" in res.stderr
    assert duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM spans").fetchone()[0] == 6


def test_strict_exit_code_and_nothing_stored_from_a_bad_file(tmp_path):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    write_traces(good, n=3)
    bad.write_text(json.dumps(f.request(f.simple_trace())) + "\n{broken\n")
    db = tmp_path / "s.duckdb"

    res = run("ingest", good, bad, "--db", db, "--strict")

    assert res.returncode == 2
    assert "line 2: invalid JSON" in res.stdout
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM spans").fetchone()[0] == 9
    # Without --strict the same input is accepted, with the bad line recorded.
    con.close()
    res = run("ingest", bad, "--db", db)
    assert res.returncode == 0
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT line, reason LIKE 'invalid JSON%' FROM rejects").fetchall() == [(2, True)]
    assert con.execute("SELECT count(*) FROM spans").fetchone()[0] == 12


def test_usage_errors_exit_2(tmp_path):
    assert run("ingest", tmp_path / "missing.jsonl").returncode == 2
    assert run("analyze", tmp_path, "--set", "LLMA003.nope=1").returncode == 2
    assert run("analyze", tmp_path, "--fail-on", "catastrophic").returncode == 2
    res = run("ingest", tmp_path / "x", "--format", "no-such-format")
    assert res.returncode == 2


def _bytes_read(pid: int) -> int:
    """Bytes the process has read so far (Linux /proc/PID/io: rchar)."""
    try:
        for line in open(f"/proc/{pid}/io"):
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_interrupted_ingest_leaves_a_valid_store_and_a_rerun_completes(tmp_path):
    src = tmp_path / "big.jsonl"
    docs = [f.request([s for _ in range(40) for s in f.simple_trace(n_llm=4)]) for _ in range(600)]
    f.write_jsonl(src, docs)
    expected = 600 * 40 * 5
    db = tmp_path / "s.duckdb"
    proc = subprocess.Popen([*LLMAUDIT, "ingest", str(src), "--db", str(db), "-q"], start_new_session=True)
    # Kill it once it has read the whole file once (the content hash), so parsing and storing are under
    # way: an event, not a guess at how long that takes on this machine.
    size = src.stat().st_size
    deadline = time.monotonic() + 120
    while proc.poll() is None and _bytes_read(proc.pid) < size and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the ingest ended before it could be interrupted: make the file larger"
    os.killpg(proc.pid, signal.SIGKILL)  # no clean-up of any kind
    proc.wait()
    con = duckdb.connect(str(db))
    stored = con.execute("SELECT count(*) FROM spans").fetchone()[0]
    logged = con.execute("SELECT count(*) FROM ingest_log").fetchone()[0]
    con.close()
    assert (stored, logged) in ((0, 0), (expected, 1))  # all of the file or none of it

    res = run("ingest", src, "--db", db, "-q")
    assert res.returncode == 0, res.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").fetchone() == (expected, expected)


def test_analyze_runs_from_any_directory_with_bundled_rules(tmp_path):
    src = REPO / "rules" / "fixtures" / "LLMA003" / "positive.jsonl"
    res = run("analyze", src, "--format", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert "LLMA003" in [x["rule_id"] for x in doc["findings"]]
    assert run("analyze", src, "--fail-on", "medium", "-q", cwd=tmp_path).returncode == 1
    assert run("analyze", src, "--fail-on", "high", "-q", cwd=tmp_path).returncode == 0


def test_rules_list_show_and_test():
    res = run("rules", "list")
    assert res.returncode == 0 and "LLMA003" in res.stdout
    res = run("rules", "show", "LLMA003")
    assert res.returncode == 0 and "min_relative_score" in res.stdout
    assert run("rules", "show", "NOPE999").returncode == 2
    res = run("rules", "test", "--only", "LLMA003")
    assert res.returncode == 0, res.stdout
    assert "2 passed, 0 failed" in res.stdout


def test_baseline_new_resolved_and_fail_on_new(tmp_path):
    fixtures = REPO / "rules" / "fixtures"
    week1 = [fixtures / "LLMA003" / "positive.jsonl"]
    week2 = [fixtures / "LLMA003" / "positive.jsonl", fixtures / "LLMA002" / "positive.jsonl"]
    last = tmp_path / "last.json"
    res = run("analyze", *week1, "--json", last, "-q")
    assert res.returncode == 0, res.stderr
    first = {f["fingerprint"] for f in json.loads(last.read_text())["findings"]}

    # Same input again: nothing new, --fail-on-new passes.
    res = run("analyze", *week1, "--baseline", last, "--fail-on-new", "-q", "--json", tmp_path / "same.json")
    assert res.returncode == 0, res.stderr
    # A changed input: the loop findings are new, so --fail-on-new fails; the Markdown says what changed.
    md = tmp_path / "r.md"
    res = run("analyze", *week2, "--baseline", last, "--fail-on-new", "-q", "--json", tmp_path / "now.json", "--markdown", md)
    assert res.returncode == 1, res.stderr
    now = {f["fingerprint"] for f in json.loads((tmp_path / "now.json").read_text())["findings"]}
    new = now - first
    assert new and first <= now
    comparison = json.loads((tmp_path / "now.json").read_text())["extras"]["baseline"]
    assert {c["fingerprint"] for c in comparison["new"]} == new
    assert comparison["resolved"] == []
    assert "new" in md.read_text().lower()
    # And the other way round: those findings are resolved, nothing is new.
    res = run("analyze", *week1, "--baseline", tmp_path / "now.json", "--fail-on-new", "-q", "--json", tmp_path / "back.json")
    assert res.returncode == 0, res.stderr
    back = json.loads((tmp_path / "back.json").read_text())["extras"]["baseline"]
    assert {c["fingerprint"] for c in back["resolved"]} == new and back["new"] == []
    assert run("analyze", *week1, "--fail-on-new", "-q").returncode == 2  # needs --baseline


def test_nothing_readable_is_an_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("meeting notes, not telemetry\n")
    (tmp_path / "data.json").write_text('{"hello": "world"}\n')
    res = run("analyze", tmp_path)
    assert res.returncode == 2
    assert "nothing readable" in res.stderr and "data.json" in res.stderr


def test_strict_failure_names_the_file_even_when_quiet(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(f.request(f.simple_trace())) + "\n{broken\n")
    res = run("ingest", bad, "--db", tmp_path / "s.duckdb", "--strict", "-q")
    assert res.returncode == 2
    assert f"{bad}: line 2: invalid JSON" in res.stderr


def test_config_file_sets_feature_and_tenant_keys_and_checks_rule_params(tmp_path):
    src = tmp_path / "t.jsonl"
    tid, root = f.new_trace_id(), f.new_span_id()
    spans = [f.span(tid, root, None, "POST /x", 2, attrs={"http.route": "/x", "team.product": "search-box",
                                                           "team.customer": "initech"}),
             f.llm_span(tid, root)]
    f.write_jsonl(src, [f.request(spans)])
    query = "SELECT feature, tenant FROM requests"
    db = tmp_path / "default.duckdb"
    assert run("ingest", src, "--db", db, "-q", cwd=tmp_path).returncode == 0
    assert json.loads(run("query", "--db", db, query, "-f", "json").stdout) == [{"feature": "/x", "tenant": None}]

    # llmaudit.toml in the working directory...
    (tmp_path / "llmaudit.toml").write_text('[llmaudit]\nfeature_keys = ["team.product"]\ntenant_keys = ["team.customer"]\n')
    db = tmp_path / "toml.duckdb"
    assert run("ingest", src, "--db", db, "-q", cwd=tmp_path).returncode == 0
    assert json.loads(run("query", "--db", db, query, "-f", "json", cwd=tmp_path).stdout) == [
        {"feature": "search-box", "tenant": "initech"}]
    # ...or [tool.llmaudit] in pyproject.toml
    (tmp_path / "llmaudit.toml").unlink()
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.llmaudit]\nfeature_keys = ["team.customer"]\n')
    db = tmp_path / "pyproject.duckdb"
    assert run("ingest", src, "--db", db, "-q", cwd=proj).returncode == 0
    assert json.loads(run("query", "--db", db, "SELECT feature FROM requests", "-f", "json", cwd=proj).stdout) == [
        {"feature": "initech"}]

    # A parameter override for a rule that does not exist is an error that names the file, not a no-op.
    (proj / "pyproject.toml").write_text('[tool.llmaudit.params.LLMA999]\nmax_k = 6\n')
    res = run("analyze", src, "-q", cwd=proj)
    assert res.returncode == 2 and "pyproject.toml" in res.stderr and "no rule LLMA999" in res.stderr
    (proj / "pyproject.toml").write_text('[tool.llmaudit.params.LLMA003]\nmax_k = "six"\n')
    res = run("analyze", src, "-q", cwd=proj)
    assert res.returncode == 2 and "LLMA003" in res.stderr


def test_unknown_model_is_unpriced_in_the_summary_not_zero(tmp_path):
    src = tmp_path / "t.jsonl"
    f.write_jsonl(src, [f.request(f.simple_trace(n_llm=3, model="acme-llm-9000")), f.request(f.simple_trace(n_llm=2))])
    res = run("analyze", src, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "(3 calls unpriced, not counted)" in res.stdout
    doc = json.loads(run("analyze", src, "--format", "json", "-q", cwd=tmp_path).stdout)
    assert doc["totals"]["unpriced_calls"] == 3
    # the two gpt-4o calls (100 in, 20 out at $2.50/$10.00 per 1M) are the whole spend
    assert doc["totals"]["spend_usd"] == round(2 * (100 * 2.5 + 20 * 10.0) / 1e6, 2)


def test_progress_counts_spans_and_moves_through_a_gzip_file(tmp_path):
    """The bar advances while a .gz file is read (from its decompressed size), in on-disk bytes, and
    says spans for traces; on a terminal it renders as a rich progress bar."""
    import gzip
    import io

    from rich.console import Console

    from llmaudit.ingest.pipeline import Ingestor
    from llmaudit.ingest.sources import expand_paths
    from llmaudit.report.progress import ingest_progress
    from llmaudit.store import Store

    src = tmp_path / "t.jsonl.gz"
    docs = [f.request([s for _ in range(20) for s in f.simple_trace(n_llm=4)]) for _ in range(1300)]  # ~12 MB inflated
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    calls = []
    with Store(tmp_path / "s.duckdb") as store:
        Ingestor(store, workers=1, on_progress=lambda b, r, k=None: calls.append((b, r, k))).run(expand_paths([str(src)]))
    moving = [c for c in calls[:-1] if c[0] > 0]
    assert len(moving) >= 2 and moving[0][0] < src.stat().st_size, calls  # not all at the end
    assert sum(b for b, _, _ in calls) == src.stat().st_size
    assert sum(r for _, r, _ in calls) == 1300 * 20 * 5 and {k for _, _, k in calls} == {"traces"}

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    with ingest_progress(console, 64 << 20) as on_progress:
        on_progress(32 << 20, 123_456, "traces")
    assert "123,456 spans" in screen.getvalue() and "spans/s" in screen.getvalue()


def test_parallel_ingest_ignores_python_files_in_the_working_directory(tmp_path):
    """Worker processes import llmaudit from where the command's own llmaudit is, never from the
    working directory (a checkout, or a file that shadows a library, must not be picked up)."""
    from pathlib import Path

    work = tmp_path / "work"
    (work / "llmaudit").mkdir(parents=True)
    (work / "llmaudit" / "__init__.py").write_text("raise RuntimeError('the llmaudit in the working directory')\n")
    (work / "orjson.py").write_text("raise RuntimeError('a shadowing orjson')\n")
    src = tmp_path / "big.jsonl"  # over the size at which worker processes parse
    f.write_jsonl(src, [f.request([s for _ in range(40) for s in f.simple_trace(n_llm=4)]) for _ in range(400)])
    assert src.stat().st_size > 16 << 20
    script = Path(sys.executable).with_name("llmaudit")
    res = subprocess.run([str(script), "ingest", str(src), "--db", str(tmp_path / "s.duckdb"), "-q"], cwd=work,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM spans").fetchone()[0] == 400 * 40 * 5
