"""SQL that cannot touch the machine: `llmaudit query` and every rule (a user's rule folder too, which a
pull request can add through the config) run exactly one SELECT, on a read-only store, with no file,
network or extension access and settings locked. Everything else is refused with exit 2, and nothing is
written: not the target file, not the store."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

LLMAUDIT = [sys.executable, "-m", "llmaudit"]
SOURCE = REPO / "rules" / "fixtures" / "LLMA003" / "positive.jsonl"


def run(*args, cwd=None):
    return subprocess.run([*LLMAUDIT, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Each attack: (name, SQL with {out} for a file it would write and {db} for another database)
ATTACKS = [
    ("copy-to", "COPY (SELECT 42 AS x) TO '{out}'"),
    ("copy-after-select", "SELECT 1 AS x; COPY (SELECT 42 AS x) TO '{out}'"),
    ("read-text", "SELECT content FROM read_text('/etc/passwd')"),
    ("read-csv", "SELECT * FROM read_csv('/etc/passwd')"),
    ("glob", "SELECT * FROM glob('/etc/*')"),
    ("attach", "ATTACH '{db}' AS other"),
    ("install", "INSTALL httpfs"),
    ("load", "LOAD httpfs"),
    ("set", "SET enable_external_access = true"),
    ("pragma", "PRAGMA enable_profiling"),
    ("two-selects", "SELECT 1 AS x; SELECT 2 AS y"),
    ("delete", "DELETE FROM spans"),
    ("export", "EXPORT DATABASE '{out}'"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("sandbox")
    db = d / "s.duckdb"
    assert run("ingest", SOURCE, "--db", db, "-q").returncode == 0
    return db


@pytest.mark.parametrize("name, sql", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_query_refuses_and_writes_nothing(store, tmp_path, name, sql):
    out, other = tmp_path / "stolen.csv", tmp_path / "other.duckdb"
    before = sha(store)
    res = run("query", sql.format(out=out, db=other), "--db", store)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "error:" in res.stderr and ("read-only" in res.stderr or "refused" in res.stderr), res.stderr
    assert "root:" not in res.stdout  # /etc/passwd was not read
    assert not out.exists() and not other.exists()
    assert sha(store) == before


def test_query_is_byte_for_byte_read_only(store):
    before = sha(store)
    res = run("query", "SELECT count(*) AS n FROM llm_calls", "--db", store, "-f", "csv")
    assert res.returncode == 0 and res.stdout == "n\n40\n", res.stdout + res.stderr
    assert sha(store) == before
    # WITH ... SELECT, FROM-first and DESCRIBE are one SELECT too.
    assert run("query", "WITH a AS (SELECT 1 AS x) SELECT x FROM a", "--db", store).returncode == 0
    assert run("query", "DESCRIBE llm_calls", "--db", store).returncode == 0
    assert sha(store) == before


def _rule_folder(tmp_path, sql: str):
    """A valid rule file (LLMA003 renamed) whose SQL is replaced, in a folder the config lists."""
    folder = tmp_path / "our_rules"
    folder.mkdir()
    text = (REPO / "rules" / "LLMA003_oversized_top_k.yaml").read_text().replace("id: LLMA003", "id: EVIL001")
    text = text.replace("fixture: fixtures/", f"fixture: {REPO / 'rules' / 'fixtures'}/")
    head, _, rest = text.partition("sql: |\n")
    tail = rest[rest.index("\ntests:"):]
    (folder / "EVIL001.yaml").write_text(head + "sql: |\n" + textwrap.indent(sql, "  ") + tail)
    (tmp_path / "llmaudit.toml").write_text('[llmaudit]\nrules = ["our_rules"]\n')
    return folder


@pytest.mark.parametrize("name, sql", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_a_rule_from_the_config_cannot_escape(tmp_path, name, sql):
    out, other = tmp_path / "stolen.csv", tmp_path / "other.duckdb"
    _rule_folder(tmp_path, sql.format(out=out, db=other))
    db = tmp_path / "s.duckdb"
    res = run("analyze", SOURCE, "--db", db, "--json", tmp_path / "r.json", cwd=tmp_path)
    assert res.returncode == 2, (res.stdout[-2000:], res.stderr)
    assert "EVIL001" in res.stderr, res.stderr
    assert not out.exists() and not other.exists() and not (tmp_path / "r.json").exists()
    # The same through `report` on a store analysed without the rule.
    clean = tmp_path / "clean"
    clean.mkdir()
    assert run("analyze", SOURCE, "--db", clean / "s.duckdb", "-q", cwd=clean).returncode == 0
    res = run("report", "--db", clean / "s.duckdb", "--html", tmp_path / "r.html", cwd=tmp_path)
    assert res.returncode == 2 and "EVIL001" in res.stderr
    assert not out.exists() and not other.exists() and not (tmp_path / "r.html").exists()
    with __import__("duckdb").connect(str(clean / "s.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM spans").fetchone()[0] > 0  # nothing deleted


def test_rule_statement_is_checked_by_parsing_not_by_its_first_word(tmp_path):
    from llmaudit.rules.spec import RuleError, load_rule_file

    _rule_folder(tmp_path, "WITH x AS (SELECT 1) INSERT INTO spans SELECT * FROM spans")
    with pytest.raises(RuleError, match=r"EVIL001.yaml: sql: .*only a SELECT .* not INSERT"):
        load_rule_file(tmp_path / "our_rules" / "EVIL001.yaml")
