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


class StoreError(Exception):
    pass


class Store:
    """A DuckDB database holding everything llmaudit knows about one audit."""

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False):
        self._tmpdir = None
        if path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="llmaudit-")
            path = Path(self._tmpdir.name) / "store.duckdb"
        self.path = Path(path)
        config = {
            # Bounded memory: DuckDB spills to disk beyond this instead of growing with the input.
            "memory_limit": os.environ.get("LLMAUDIT_MEMORY_LIMIT", "1GB"),
            # Row order inside tables carries no meaning here (every reader sorts), and keeping it
            # costs memory on large inserts.
            "preserve_insertion_order": False,
        }
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only, config=config)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        if not read_only:
            self._apply_schema()

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
        from llmaudit.ingest.spans import resource_id

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
