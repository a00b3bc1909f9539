"""Ingest files into the store: one transaction per file, rejects recorded, nothing stored twice."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from llmaudit.gc_pause import disable_gc_for_worker, paused_gc
from llmaudit.ingest import registry
from llmaudit.ingest.core import Format, ReadContext
from llmaudit.ingest.sources import Source
from llmaudit.ingest.traces import otlp_jsonl
from llmaudit.store import Store


class StrictRejects(Exception):
    pass


@dataclass
class FileResult:
    path: str
    status: str            # ingested | already ingested | empty | skipped | unrecognized | rejected (strict)
    format: str | None = None
    kind: str | None = None
    records: int = 0
    stored: int = 0
    duplicates: int = 0
    rejects: int = 0
    first_reject: str | None = None
    notes: list[str] = field(default_factory=list)  # the reader's words about the file (Batch.notes)


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)

    @property
    def rejects(self) -> int:
        return sum(f.rejects for f in self.files)

    @property
    def failed_strict(self) -> bool:
        return any(f.status in ("rejected", "unrecognized") for f in self.files)

    @property
    def read_anything(self) -> bool:
        """Whether some record of the inputs was read: stored now, already stored (a duplicate), or in a
        file ingested before. False when every file was unrecognized, empty or had every record rejected."""
        return any(f.status == "already ingested" or f.stored or f.duplicates for f in self.files)


def _start_forkserver_safely() -> None:
    """Start the forkserver without the working directory on its sys.path. It runs `python -c`, which
    puts the current directory first: a folder named llmaudit (a checkout) or a file shadowing a
    library there would be what the workers import. PYTHONSAFEPATH (Python 3.11+) keeps it out."""
    from multiprocessing import forkserver

    before = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        forkserver.ensure_running()
    finally:
        if before is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = before


class Ingestor:
    """Reads sources into a store. Worker processes are started only for large files."""

    def __init__(self, store: Store, *, force_format: str | None = None, strict: bool = False,
                 workers: int | None = None, on_progress: Callable[..., None] | None = None,
                 options: dict | None = None):
        self.store = store
        self.options = dict(options or {})  # per-run reader options (ReadContext.options), e.g. scrape_time_us
        self.force = registry.by_name(force_format) if force_format else None
        self.strict = strict
        self.workers = workers or max(1, min(os.cpu_count() or 1, 8))
        # on_progress(on-disk bytes done, records read, kind of file: traces | billing | metrics)
        self.on_progress = on_progress or (lambda nbytes, records, kind=None: None)
        self._pool: ProcessPoolExecutor | None = None
        self._warmed = False

    def _get_pool(self):
        if self.workers < 2:
            return None
        if self._pool is None:
            # forkserver: workers never inherit the DuckDB connection or its threads.
            ctx = multiprocessing.get_context("forkserver")
            # Preloaded: the module of the worker entry points, which the pool pickles by module path
            # (named by the module object, since a preload name that does not import is skipped silently).
            ctx.set_forkserver_preload([otlp_jsonl.__name__])
            _start_forkserver_safely()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=disable_gc_for_worker)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
            self._warmed = False

    def run(self, sources: list[Source]) -> IngestReport:
        report = IngestReport()
        try:
            for source in sources:
                report.files.append(self.ingest_file(source))
        finally:
            self.close()
        return report

    def _warm_pool(self) -> None:
        """Start the workers now, so that they start while the file is hashed (half a second on a
        large file), not after."""
        pool = self._get_pool()
        if pool is not None and not self._warmed:
            for _ in range(self.workers):
                pool.submit(int)
            self._warmed = True

    def ingest_file(self, source: Source) -> FileResult:
        path = str(source.path)
        head = source.head()
        fmt = (self.force or registry.detect(head, source.path.name)) if head.strip() else None
        if fmt is not None and fmt.parallel_from is not None and source.estimated_size() >= fmt.parallel_from:
            self._warm_pool()
        digest = source.sha256()
        if self.store.scalar("SELECT count(*) FROM ingest_log WHERE content_sha256 = ?", [digest]):
            self.on_progress(source.size, 0)
            return FileResult(path, "already ingested")
        if not head.strip():
            fmt_name = "empty"
            with self.store.transaction() as con:
                self._log(con, path, digest, 0, fmt_name, "none", 0, 0, 0)
            self.on_progress(source.size, 0)
            return FileResult(path, "empty")
        if fmt is None:
            self.on_progress(source.size, 0)
            if not source.explicit:
                return FileResult(path, "skipped")
            reason = "not a recognized trace, billing or metrics format (use --input-format to force one)"
            with self.store.transaction() as con:
                con.execute("INSERT INTO rejects VALUES (NULL, ?, NULL, 0, NULL, ?)", [path, reason])
            return FileResult(path, "unrecognized", rejects=1, first_reject=reason)
        try:
            with self.store.transaction() as con, paused_gc():
                return self._ingest(con, source, digest, fmt)
        except StrictRejects as exc:
            result: FileResult = exc.args[0]
            result.status = "rejected"
            result.stored = 0
            return result

    def _ingest(self, con, source: Source, digest: str, fmt: Format) -> FileResult:
        path = str(source.path)
        file_id = con.execute("SELECT nextval('file_id_seq')").fetchone()[0]
        ctx = ReadContext(file_id=file_id, workers=self.workers, pool=self._get_pool, options=self.options)
        result = FileResult(path, "ingested", fmt.name, fmt.kind)
        total_bytes = 0
        # Progress is counted in on-disk bytes. A gzip file advances in proportion to its decompressed
        # size when the trailer gives it, else when it is done.
        reported = 0
        on_disk = source.size
        gzipped = source.is_gzip()
        inflated = source.decompressed_size_hint() if gzipped else None
        for batch in fmt.read(source, ctx):
            result.records += batch.records
            result.notes.extend(batch.notes)
            for table, related in batch.related.items():  # noqa: B007 (related is read by DuckDB)
                if related is not None and related.num_rows:
                    con.execute(f"INSERT OR IGNORE INTO {table} BY NAME SELECT * FROM related")
            if batch.rows is not None and batch.rows.num_rows:
                rows = batch.rows  # noqa: F841 (read by DuckDB's replacement scan)
                con.execute(f"INSERT INTO {fmt.table} BY NAME SELECT * FROM rows")
                result.stored += batch.rows.num_rows
            if batch.rejects:
                self._record_rejects(con, file_id, path, batch.rejects, result)
            total_bytes = batch.bytes_done
            if not gzipped:
                done = min(on_disk, total_bytes)
            elif inflated:
                done = min(on_disk - 1, on_disk * total_bytes // inflated)
            else:
                done = reported
            self.on_progress(max(0, done - reported), batch.records, fmt.kind)
            reported = max(reported, done)
        if self.strict and result.rejects:
            raise StrictRejects(result)
        self.on_progress(on_disk - reported, 0, fmt.kind)
        result.duplicates = self._drop_duplicates(con, fmt, file_id)
        result.stored -= result.duplicates
        self._log(con, path, digest, total_bytes, fmt.name, fmt.kind, result.records, result.stored, result.rejects, file_id)
        return result

    @staticmethod
    def _record_rejects(con, file_id, path, rejects, result: FileResult) -> None:
        con.executemany(
            "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?)",
            [(file_id, path, *r.as_tuple()) for r in rejects],
        )
        if result.first_reject is None:
            r = rejects[0]
            where = f"line {r.line}" if r.line else (r.record or f"byte {r.byte_offset}")
            result.first_reject = f"{where}: {r.reason}"
        result.rejects += len(rejects)

    @staticmethod
    def _drop_duplicates(con, fmt: Format, file_id: int) -> int:
        """Delete this file's rows whose key is already stored (earlier file, or earlier in this file)."""
        key = ", ".join(fmt.key)
        # The common case, nothing repeated, is settled with one aggregate and one semi-join.
        inside = con.execute(
            f"SELECT count(*) - count(DISTINCT ({key})) FROM {fmt.table} WHERE file_id = ?", [file_id]
        ).fetchone()[0]
        earlier = con.execute(
            f"""SELECT count(*) FROM {fmt.table} n
                WHERE n.file_id = ? AND EXISTS (SELECT 1 FROM {fmt.table} o
                    WHERE o.file_id <> n.file_id AND {' AND '.join(f'o.{k} IS NOT DISTINCT FROM n.{k}' for k in fmt.key)})""",
            [file_id],
        ).fetchone()[0] if con.execute(f"SELECT count(*) FROM {fmt.table} WHERE file_id <> ? LIMIT 1", [file_id]).fetchone()[0] else 0
        if not inside and not earlier:
            return 0
        dupes = con.execute(
            f"""
            SELECT rowid FROM (
                SELECT rowid, file_id,
                       row_number() OVER (PARTITION BY {key} ORDER BY file_id, rowid) AS copy
                FROM {fmt.table}
                WHERE ({key}) IN (SELECT ({key}) FROM {fmt.table} WHERE file_id = ?)
            ) WHERE copy > 1 AND file_id = ?
            """,
            [file_id, file_id],
        ).fetchall()
        if dupes:
            con.execute(
                f"DELETE FROM {fmt.table} WHERE rowid IN (SELECT unnest(?::BIGINT[]))", [[r[0] for r in dupes]]
            )
        return len(dupes)

    @staticmethod
    def _log(con, path, digest, size, fmt_name, kind, records, stored, rejects, file_id=None):
        if file_id is None:
            file_id = con.execute("SELECT nextval('file_id_seq')").fetchone()[0]
        con.execute(
            "INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)",
            [file_id, path, digest, size, fmt_name, kind, records, stored, rejects],
        )
