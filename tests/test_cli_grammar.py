"""One CLI grammar: the same flag means the same thing in every command, help renders literally, every
command exits 0/1/2/130 as the README says and lists what it wrote, and the README's tables match --help.

Each test of "what a new user hit" is named after the problem it guards against.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest
import typer
from typer.testing import CliRunner

import otlp_factory as f
from conftest import REPO
from llmaudit.cli import app

LLMAUDIT = [sys.executable, "-m", "llmaudit"]
SAMPLE = REPO / "sample_traces"
FIXTURES = REPO / "rules" / "fixtures"


def run(*args, cwd=None, env=None, timeout=300):
    return subprocess.run([*LLMAUDIT, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "COLUMNS": "160", **(env or {})})


def leaf_commands():
    """{"analyze": click command, "replay all": ..., ...}: every command a user can run."""
    root = typer.main.get_command(app)
    out = {}

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            full = f"{prefix}{name}"
            if hasattr(cmd, "commands"):
                walk(cmd, full + " ")
            else:
                out[full] = cmd

    walk(root, "")
    return out


def help_of(command: str) -> str:
    res = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    return res.output


def readme_table(heading_line: str) -> list[list[str]]:
    """Rows of the Markdown table that follows the line starting with heading_line."""
    text = (REPO / "README.md").read_text()
    after = text.split(heading_line, 1)[1]
    rows = []
    for line in after.lstrip("\n").splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if set("".join(cells)) <= set("-: "):
            continue
        rows.append(cells)
    return rows[1:]  # without the header row


# ------------------------------------------------------------------ shared options

SHARED = {
    # option: (short form, how its help starts: the shared meaning)
    "--db": (None, r"^The DuckDB store file"),
    "--format": ("-f", r"^Output format on stdout"),
    "--output": ("-o", r"^Write "),
    "--input-format": (None, r"^Force one input format"),
    "--scrape-time": (None, r"^The time of a metrics scrape saved without timestamps"),
    "--quiet": ("-q", r"^Print only the requested output and errors"),
    "--verbose": ("-v", r"^Print more"),
    "--fail-on": (None, r"^Exit 1 when a finding has this severity or higher"),
    "--config": (None, r"^Config file \(default: \./llmaudit\.toml, else \[tool\.llmaudit\] in \./pyproject\.toml\)"),
    "--prices": (None, r"^A price file"),
    "--accelerator": (None, r"^Price GPU time as this catalog GPU"),
}


def shared_table() -> dict[str, set[str]]:
    """README: option -> the commands that take it."""
    out = {}
    for option, _meaning, where in readme_table("Every command spells a shared option the same way"):
        longs = re.findall(r"`(?:-\w, )?(--[\w-]+)", option) or re.findall(r"(--[\w-]+)", option)
        out[longs[0]] = {w.strip() for w in where.split(",")}
    return out


def test_every_command_spells_and_means_the_shared_options_alike():
    commands = leaf_commands()
    table = shared_table()
    assert set(table) == set(SHARED)
    for option, (short, meaning) in SHARED.items():
        for name, cmd in commands.items():
            params = [p for p in cmd.params if option in p.opts and not p.hidden]
            if name in table[option]:
                assert params, f"`llmaudit {name}` lacks {option} (README says it has it)"
            else:
                assert not params, f"`llmaudit {name}` has {option}, which the README's table does not list"
                continue
            p = params[0]
            assert re.search(meaning, p.help or ""), f"{name} {option}: {p.help!r} does not mean what {option} means"
            assert (short in p.opts) if short else all(o.startswith("--") for o in p.opts), f"{name} {option}: {p.opts}"
    # No other option borrows a shared short form for something else.
    shorts = {s for s, _ in SHARED.values() if s}
    for name, cmd in commands.items():
        for p in cmd.params:
            for o in p.opts:
                if o in shorts:
                    long = next(k for k, (s, _) in SHARED.items() if s == o)
                    assert long in p.opts, f"{name}: {o} means {p.opts}, not {long}"


def test_readme_command_table_matches_the_cli():
    commands = leaf_commands()
    documented = set()
    for usage, _what in readme_table("## Commands"):
        for part in usage.split(" / "):
            words = part.strip("` ").removeprefix("llmaudit ").split()
            # The command is its leading words that name commands (replay FINDING is `replay all`).
            name = " ".join(words[:2]) if " ".join(words[:2]) in commands else words[0]
            if name not in commands and name == "replay":
                name = "replay all"
            assert name in commands, f"README names `{part}`, which is not a command"
            documented.add(name)
            cmd = commands[name]
            opts = {o for p in cmd.params for o in p.opts}
            for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*|-[a-z]\b)", part):
                assert option in opts, f"README: `{part}` uses {option}, which `llmaudit {name} --help` lacks"
    assert documented == set(commands), f"commands missing from the README's table: {set(commands) - documented}"


def test_help_renders_literally_without_type_tags():
    for name in leaf_commands():
        text = help_of(name)
        assert "<bool>" not in text and "<str>" not in text and "<path>" not in text and "list[" not in text, name
        assert "{" not in text.splitlines()[0], f"{name}: usage line {text.splitlines()[0]!r}"
        if "--config" in text:
            assert "[tool.llmaudit]" in text, f"{name}: the config default lost its brackets"
    assert "Usage: llmaudit analyze [OPTIONS] PATH..." in help_of("analyze")
    assert "Usage: llmaudit replay all [OPTIONS] FINDING" in help_of("replay all")


# ------------------------------------------------------------------ what a new user hit

def test_forcing_the_input_format_is_input_format_everywhere(tmp_path):
    res = run("analyze", REPO / "README.md")
    assert res.returncode == 2 and "--input-format" in res.stderr and "use --format" not in res.stderr
    # --format in analyze is the output format: an input format name is a usage error that says so.
    res = run("analyze", REPO / "README.md", "--format", "otlp-jsonl")
    assert res.returncode == 2 and "table" in res.stderr and "json" in res.stderr
    # ingest's old spelling still works, with a deprecation note.
    src = tmp_path / "t.jsonl"
    f.write_jsonl(src, [f.request(f.simple_trace())])
    res = run("ingest", src, "--db", tmp_path / "s.duckdb", "--format", "otlp-jsonl", "-q")
    assert res.returncode == 0 and "--format (as the input format) is deprecated" in res.stderr
    res = run("ingest", src, "--db", tmp_path / "t.duckdb", "--input-format", "OTLP-JSONL", "-q")
    assert res.returncode == 0, res.stderr


def test_everything_rejected_is_an_input_error():
    res = run("analyze", REPO / "README.md", "--input-format", "otlp-jsonl")
    assert res.returncode == 2, res.stdout
    assert "nothing readable" in res.stderr and "README.md" in res.stderr and "No findings" not in res.stdout


def test_report_takes_quiet_and_any_case_of_fail_on(tmp_path):
    db = tmp_path / "s.duckdb"
    assert run("analyze", FIXTURES / "LLMA003" / "positive.jsonl", "--db", db, "-q").returncode == 0
    res = run("report", "--db", db, "-q", "--fail-on", "MEDIUM")
    assert res.returncode == 1, res.stderr
    res = run("report", "--db", db, "-q", "-f", "JSON")  # choices are case-insensitive everywhere
    assert res.returncode == 0 and json.loads(res.stdout)["findings"], res.stderr
    assert run("report", "--db", db, "-q", "--fail-on", "High").returncode == 0
    assert run("analyze", FIXTURES / "LLMA003" / "positive.jsonl", "-q", "--fail-on", "Medium").returncode == 1


def test_skipped_files_are_named_and_written_files_listed_with_the_umask(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("not telemetry\n")
    (data / "nothing.otlp.json").write_text('{"resourceSpans": []}\n')
    f.write_jsonl(data / "t.jsonl", [f.request(f.simple_trace())])
    res = run("ingest", data, "--db", tmp_path / "s.duckdb")
    assert res.returncode == 0, res.stderr
    assert f"{data / 'notes.txt'}: skipped" in res.stdout, res.stdout
    # A file of a known format that holds nothing is named too, never "0 stored, 0 rejects" in silence.
    assert f"{data / 'nothing.otlp.json'}: read as otlp-jsonl, but it holds no record" in res.stdout, res.stdout
    assert f"wrote {tmp_path / 's.duckdb'}" in res.stderr

    out = tmp_path / "out"
    out.mkdir()
    for mask, mode in ((0o022, 0o644), (0o077, 0o600)):
        paths = [out / f"r{mask:o}.json", out / f"r{mask:o}.md", out / f"r{mask:o}.html", out / f"t{mask:o}.txt"]
        res = subprocess.run(["/bin/sh", "-c", f"umask {mask:03o} && exec \"$@\"", "sh", *LLMAUDIT, "analyze",
                              str(FIXTURES / "LLMA003" / "positive.jsonl"), "--json", str(paths[0]), "--markdown",
                              str(paths[1]), "--html", str(paths[2]), "-o", str(paths[3])],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        for p in paths:
            assert stat.S_IMODE(p.stat().st_mode) == mode, (p, oct(p.stat().st_mode))
            assert re.search(rf"^wrote {re.escape(str(p))} \([\d,.]+ (bytes|KB|MB)\)$", res.stderr, re.M), res.stderr
    res = run("analyze", FIXTURES / "LLMA003" / "positive.jsonl", "--json", out / "q.json", "-q")
    assert res.returncode == 0 and "wrote" not in res.stderr


def test_findings_table_keeps_whole_sentences_at_160_columns(tmp_path):
    doc = json.loads(run("analyze", SAMPLE, "-f", "json", "-q").stdout)
    res = run("analyze", SAMPLE, "-q")
    assert res.returncode == 0
    # Join the wrapped "what" column back together and find each finding's whole message in it.
    what = " ".join(line.rsplit("│", 1)[-1].strip() for line in res.stdout.splitlines() if line.count("│") >= 5)
    what = " ".join(what.split())
    for finding in doc["findings"]:
        assert " ".join(finding["message"].split()) in what, finding["message"]


def test_pricing_show_says_how_a_self_hosted_model_is_priced(tmp_path):
    db = tmp_path / "s.duckdb"
    assert run("analyze", SAMPLE, "--db", db, "-q").returncode == 0
    res = run("pricing", "show", "meta-llama/Llama-3.1-8B-Instruct", "--db", db)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1,958 call(s)" in res.stdout and "self-hosted, priced from GPU time: $1,003.06" in res.stdout
    res = run("pricing", "show", "meta-llama/Llama-3.1-8B-Instruct")
    assert res.returncode == 2 and "priced from GPU time" in res.stdout


def test_redact_keeps_model_names_and_every_output_says_it_is_redacted(tmp_path):
    db = tmp_path / "s.duckdb"
    assert run("analyze", SAMPLE, "--db", db, "-q").returncode == 0
    js, md, html = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.html"
    env = {"LLMAUDIT_REDACT_SALT": ""}
    res = run("report", "--db", db, "--redact", "--json", js, "--markdown", md, "--html", html, env=env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(js.read_text())
    models = {fd["scope"]["model"] for fd in doc["findings"] if fd["scope"]["model"]}
    assert "gpt-4o" in models and not any(m.startswith("anon-") for m in models)
    recon = next(fd for fd in doc["findings"] if fd["rule_id"] == "LLMA015")
    assert "gpt-4o-2024-08-06" in json.dumps(recon["evidence"])  # a model inside an account's record stays
    assert "acme" not in js.read_text() and "acme" not in res.stdout
    for text in (res.stdout, md.read_text(), html.read_text()):
        assert "default salt" in text and ("Redacted" in text or "redacted" in text), text[:300]
    assert doc["extras"]["redaction"]["default_salt"] is True
    res = run("report", "--db", db, "--redact", "-f", "json", env={"LLMAUDIT_REDACT_SALT": "s3cret"})
    assert json.loads(res.stdout)["extras"]["redaction"]["default_salt"] is False


# ------------------------------------------------------------------ exit codes, per command

def test_exit_codes_of_every_command(tmp_path):
    src = FIXTURES / "LLMA003" / "positive.jsonl"
    db = tmp_path / "s.duckdb"
    missing = tmp_path / "missing.duckdb"
    # 0 ok, 2 usage or input error, for each command
    assert run("ingest", src, "--db", db, "-q").returncode == 0
    assert run("ingest", tmp_path / "nothing.jsonl", "--db", db).returncode == 2
    assert run("analyze", src, "-q").returncode == 0
    assert run("analyze", src, "--fail-on", "catastrophic").returncode == 2
    assert run("report", "--db", db, "-q").returncode == 0
    assert run("report", "--db", missing).returncode == 2
    assert run("query", "SELECT 1", "--db", db).returncode == 0
    assert run("query", "DROP TABLE spans", "--db", db).returncode == 2
    assert run("rules", "list").returncode == 0 and run("rules", "show", "NOPE999").returncode == 2
    assert run("rules", "test", "--only", "LLMA003", "-q").returncode == 0
    assert run("pricing", "list").returncode == 0 and run("pricing", "list", "--provider", "nobody").returncode == 2
    assert run("replay", "build", "LLMA003", "--db", db, "-o", tmp_path / "w.jsonl", "-q").returncode == 0
    assert run("replay", "build", "LLMA999", "--db", db).returncode == 2
    assert run("replay", "run", tmp_path / "w.jsonl", "--endpoint", "http://127.0.0.1:9", "--warmup", "0").returncode == 2
    assert run("no-such-command").returncode == 2
    # 1: a gate tripped
    assert run("analyze", src, "-q", "--fail-on", "medium").returncode == 1
    assert run("report", "--db", db, "-q", "--fail-on", "medium").returncode == 1
    bad_rules = tmp_path / "rules"
    bad_rules.mkdir()
    rule = (REPO / "rules" / "LLMA003_oversized_top_k.yaml").read_text().replace("id: LLMA003", "id: XTST001")
    rule = rule.replace("fixture: fixtures/", f"fixture: {REPO / 'rules' / 'fixtures'}/")
    rule = re.sub(r"min_findings: \d+|findings: \d+", "findings: 99", rule, count=1)
    (bad_rules / "x.yaml").write_text(rule)
    res = run("rules", "test", bad_rules, "-q")
    assert res.returncode == 1 and "failed" in res.stdout


@pytest.mark.parametrize("command", ["ingest", "analyze"])
def test_ctrl_c_exits_130(tmp_path, command):
    src = tmp_path / "big.jsonl"
    f.write_jsonl(src, [f.request([s for _ in range(40) for s in f.simple_trace(n_llm=4)]) for _ in range(300)])
    err = tmp_path / "err.txt"
    with err.open("w") as fh:
        proc = subprocess.Popen([*LLMAUDIT, command, str(src), "--db", str(tmp_path / "s.duckdb")], stdout=subprocess.DEVNULL,
                                stderr=fh, start_new_session=True)
        # Interrupt once the store exists: the command is past its imports and working.
        deadline = time.monotonic() + 120
        while not (tmp_path / "s.duckdb").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the ingest ended before it could be interrupted: make the file larger"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130, err.read_text()
    assert "interrupted" in err.read_text()
