"""Write the audit document as JSON, Markdown and HTML files; compare with a baseline.

CLI wiring (cli.py is the lead's; this is what these functions expect):

    llmaudit analyze PATH... [--json FILE] [--markdown FILE] [--html FILE]
                             [--baseline FILE] [--fail-on-new] [--redact] [--fail-on SEV] ...
    llmaudit report --db FILE [--json FILE] [--markdown FILE] [--html FILE]
                              [--baseline FILE] [--fail-on-new] [--redact]
        (report: build the document from an existing store with `_audit_document`, no ingest)

    comparison = write_outputs(doc, json_path=..., markdown_path=..., html_path=...,
                               baseline_path=..., redact=...)

  --json/--markdown/--html FILE   write that format to FILE (any combination, alongside the terminal
                                  table or --format json on stdout; `--format json` on stdout should
                                  print render_json(doc) so stdout and --json are the same bytes)
  --baseline FILE                 a previous run's --json output; adds "what changed" to every output
                                  (doc.extras["baseline"]) and returns the Comparison. FILE may be the
                                  same path as --json: it is read before anything is written.
  --fail-on-new                   exit 1 exactly when the comparison has at least one new finding
                                  (len(comparison.new) > 0); requires --baseline (without it: usage
                                  error, exit 2). Combines with --fail-on SEV by OR: exit 1 if either says so.
  --redact                        pseudonymise tenant/user names in every output, the terminal included;
                                  salt from $LLMAUDIT_REDACT_SALT (set it as a CI secret so week-over-week
                                  baselines match and nobody can test guesses; without it a public default
                                  salt is used and the report says so)

  Exit codes: 0 ok; 1 --fail-on-new saw a new finding, or --fail-on matched; 2 ReportError (a bad or
  other-version baseline file, a baseline made with a different --redact setting/salt, an output path
  that cannot be written: the message names the file), or --fail-on-new without --baseline.
  Print `comparison.summary_line()` to stderr so a CI log shows the diff even without the Markdown.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from llmaudit.report.baseline import BaselineError, Comparison, compare, load_baseline
from llmaudit.report.document import AuditDocument
from llmaudit.report.redact import redact as redact_document
from llmaudit.report.redact import scrub_content


class ReportError(Exception):
    """An output that cannot be produced; the message names the file. The CLI exits 2."""


def render_json(doc: AuditDocument) -> str:
    return scrub_content(doc).model_dump_json(indent=2) + "\n"


def prepare(doc: AuditDocument, *, redact: bool = False, redact_salt: str | None = None) -> AuditDocument:
    """The document as it leaves the machine: content scrubbed, names pseudonymised if asked."""
    out = scrub_content(doc)
    return redact_document(out, redact_salt) if redact else out


def user_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write next to the target and rename: a crash or a full disk never leaves half a report. The file
    gets the mode any other program would give it (0666 less the user's umask), not mkstemp's 0600."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ReportError(f"{path}: cannot write: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ReportError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, 0o666 & ~user_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ReportError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def with_baseline_creep(doc: AuditDocument, base: AuditDocument) -> AuditDocument:
    """The document with token creep since the baseline as LLMA018 findings (sorted in with the others)."""
    from llmaudit.report.spend_change import baseline_creep_findings, spend_changes
    from llmaudit.rules.engine import sort_findings

    added = baseline_creep_findings(doc, spend_changes(doc, base, doc.token_creep_threshold))
    if not added:
        return doc
    totals = doc.totals.model_copy(update={"findings": doc.totals.findings + len(added)})
    return doc.model_copy(update={"findings": sort_findings([*doc.findings, *added]), "totals": totals})


def prepare_outputs(doc: AuditDocument, *, baseline_path: str | Path | None = None, redact: bool = False,
                    redact_salt: str | None = None) -> tuple[AuditDocument, Comparison | None]:
    """The document every output renders (content scrubbed, names pseudonymised if asked, the baseline
    comparison in extras["baseline"]) and the comparison, if a baseline was given. The caller's
    document is not modified."""
    out = prepare(doc, redact=redact, redact_salt=redact_salt)
    comparison = None
    if baseline_path is not None:
        try:
            # Compared after redaction: a redacted baseline carries redacted fingerprints and names.
            base, sha = load_baseline(baseline_path)
            out = with_baseline_creep(out, base)
            comparison = compare(out, base, baseline_path, sha)
        except BaselineError as exc:
            raise ReportError(str(exc)) from exc
        extras = dict(out.extras)
        extras["baseline"] = comparison.model_dump(mode="json")
        out = out.model_copy(update={"extras": extras})
    return out, comparison


def write_prepared(doc: AuditDocument, *, json_path: str | Path | None = None, markdown_path: str | Path | None = None,
                   html_path: str | Path | None = None) -> None:
    """Render every requested format of a prepared document (prepare_outputs), then write them.

    Everything is rendered before anything is written, so a failure writes no file at all.
    """
    from llmaudit.report.html import render_html
    from llmaudit.report.markdown import render_markdown

    rendered: list[tuple[str | Path, str]] = []
    if json_path is not None:
        rendered.append((json_path, render_json(doc)))
    if markdown_path is not None:
        rendered.append((markdown_path, render_markdown(doc)))
    if html_path is not None:
        rendered.append((html_path, render_html(doc)))
    for path, text in rendered:
        write_text(Path(path), text)


def write_outputs(doc: AuditDocument, *, json_path: str | Path | None = None, markdown_path: str | Path | None = None,
                  html_path: str | Path | None = None, baseline_path: str | Path | None = None, redact: bool = False,
                  redact_salt: str | None = None) -> Comparison | None:
    """prepare_outputs, then write_prepared: the files, and the baseline comparison if one was asked for."""
    out, comparison = prepare_outputs(doc, baseline_path=baseline_path, redact=redact, redact_salt=redact_salt)
    write_prepared(out, json_path=json_path, markdown_path=markdown_path, html_path=html_path)
    return comparison
