"""The DuckDB store: one file (or a temporary one), its schema, and safe transactions.

Schema files in this folder (schema*.sql) are applied in name order; each is idempotent
(CREATE ... IF NOT EXISTS), so opening an older store upgrades it in place.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

SCHEMA_VERSION = "2"  # 2: resources stored once (spans.resource_id), not per span
_SCHEMA_DIR = Path(__file__).resolve().parent

# Untrusted SQL (rule files from a config a pull request can change, `llmaudit query`) runs on a
# connection that cannot reach anything but the store: no file, network or extension access, and
# settings locked so a query cannot turn that back on.
SANDBOX_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


class StoreError(Exception):
    pass


class SqlRefused(StoreError):
    """SQL that the sandbox does not run: not exactly one SELECT, or it reached outside the store."""


def check_select(sql: str, what: str) -> None:
    """Exactly one SELECT statement (WITH ... SELECT, FROM ..., DESCRIBE and SHOW parse as SELECT too),
    checked by DuckDB's own parser rather than by the first keyword."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlRefused(f"{what}: not valid SQL: {exc}") from None
    if len(statements) != 1:
        raise SqlRefused(f"{what}: exactly one SQL statement is allowed, found {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise SqlRefused(f"{what}: only a SELECT (or WITH ... SELECT) query is allowed, not {kind.name}")


class Store:
    """A DuckDB database holding everything llmaudit knows about one audit."""

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False, sandbox: bool = False):
        """sandbox: read-only, and nothing outside the store can be reached (see SANDBOX_CONFIG)."""
        self._tmpdir = None
        if path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="llmaudit-")
            path = Path(self._tmpdir.name) / "store.duckdb"
        self.path = Path(path)
        self.read_only = read_only or sandbox
        self.sandbox = sandbox
        self._connect(self.read_only, sandbox)
        if not self.read_only:
            self._apply_schema()

    def _connect(self, read_only: bool, sandbox: bool) -> None:
        config = {
            # Bounded memory: DuckDB spills to disk beyond this instead of growing with the input.
            "memory_limit": os.environ.get("LLMAUDIT_MEMORY_LIMIT", "1GB"),
            # Row order inside tables carries no meaning here (every reader sorts), and keeping it
            # costs memory on large inserts.
            "preserve_insertion_order": False,
            **(SANDBOX_CONFIG if sandbox else {}),
        }
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only, config=config)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc

    @contextmanager
    def sandboxed(self) -> Iterator["Store"]:
        """The store reopened as a sandbox (read-only, no access outside it) for untrusted SQL, then
        reopened as it was. DuckDB settings are per database, and a database opened for writing cannot
        be made read-only, hence the reopen."""
        if self.sandbox:
            yield self
            return
        self.con.close()
        self._connect(read_only=True, sandbox=True)
        self.sandbox = True
        try:
            yield self
        finally:
            self.con.close()
            self.sandbox = False
            self._connect(self.read_only, sandbox=False)

    def select(self, sql: str, params: dict | list | None = None, *, what: str = "query"):
        """Run one untrusted SELECT in the sandbox: (column names, rows). Anything else, or a query that
        reaches for a file, the network or an extension, raises SqlRefused; other SQL errors raise
        duckdb.Error."""
        check_select(sql, what)
        with self.sandboxed():
            try:
                cur = self.con.execute(sql, params or [])
                return [d[0] for d in cur.description or []], cur.fetchall()
            except duckdb.PermissionException as exc:
                raise SqlRefused(f"{what}: refused: {exc}") from None

    def _apply_schema(self) -> None:
        with self.transaction():
            for sql_file in sorted(_SCHEMA_DIR.glob("schema*.sql")):
                self.con.execute(sql_file.read_text())
            self._upgrade_resources()
            self.con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION]
            )

    def _upgrade_resources(self) -> None:
        """A version 1 store kept each span's resource attributes in the span: move them to resources."""
        old = self.scalar("""SELECT count(*) FROM information_schema.columns
                             WHERE table_name = 'spans' AND column_name = 'resource_attributes'""")
        if not old:
            return
        from llmaudit.ingest.traces.spans import resource_id

        texts = [r[0] for r in self.con.execute(
            "SELECT DISTINCT resource_attributes FROM spans WHERE resource_attributes IS NOT NULL").fetchall()]
        ids = [(resource_id(t), t) for t in texts]
        if ids:
            self.con.executemany("INSERT OR IGNORE INTO resources VALUES (?, ?)", ids)
        self.con.execute("ALTER TABLE spans ADD COLUMN resource_id VARCHAR")
        self.con.execute("""UPDATE spans SET resource_id = r.resource_id FROM resources r
                            WHERE r.attributes = spans.resource_attributes""")
        self.con.execute("ALTER TABLE spans DROP COLUMN resource_attributes")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: an exception (or Ctrl-C) inside rolls everything back."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    def execute(self, sql: str, params: list | None = None):
        return self.con.execute(sql, params or [])

    def scalar(self, sql: str, params: list | None = None):
        row = self.con.execute(sql, params or []).fetchone()
        return None if row is None else row[0]

    def table_exists(self, name: str) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
            )
        )

    def close(self) -> None:
        self.con.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
