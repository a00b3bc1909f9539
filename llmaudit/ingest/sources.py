"""Find input files and open them: paths, directories (recursive), globs, gzip by magic bytes."""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
# Files a directory walk passes over without comment: code, docs, and the like.
_NOT_DATA_SUFFIXES = {".py", ".pyc", ".md", ".rst", ".txt", ".toml", ".yaml", ".yml", ".html", ".sh", ".lock"}


class InputError(Exception):
    """A path the user named does not exist or matches nothing."""


@dataclass(frozen=True)
class Source:
    path: Path
    explicit: bool  # named directly (not found by walking a directory or glob)

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def is_gzip(self) -> bool:
        with open(self.path, "rb") as fh:
            return fh.read(2) == GZIP_MAGIC

    def open(self) -> BinaryIO:
        """The decompressed byte stream."""
        if self.is_gzip():
            return gzip.open(self.path, "rb")  # type: ignore[return-value]
        return open(self.path, "rb")

    def head(self, n: int = 65536) -> bytes:
        """The first n decompressed bytes (fewer if the stream is short or broken)."""
        with self.open() as fh:
            try:
                return fh.read(n)
            except (EOFError, OSError, gzip.BadGzipFile):
                return b""

    def sha256(self) -> str:
        h = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        return h.hexdigest()


def expand_paths(paths: list[str]) -> list[Source]:
    """Files named, files under directories named, files matching globs; sorted, no repeats."""
    found: dict[Path, Source] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            found.setdefault(p.resolve(), Source(p, explicit=True))
        elif p.is_dir():
            for sub in sorted(_walk(p)):
                found.setdefault(sub.resolve(), Source(sub, explicit=False))
        elif glob.has_magic(raw):
            matches = sorted(Path(m) for m in glob.glob(raw, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise InputError(f"{raw}: the pattern matches no file")
            for m in files:
                found.setdefault(m.resolve(), Source(m, explicit=False))
        else:
            raise InputError(f"{raw}: no such file or directory")
    return sorted(found.values(), key=lambda s: str(s.path))


def _walk(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() in _NOT_DATA_SUFFIXES:
                continue
            yield path


def read_all(source: Source) -> tuple[bytes, str | None]:
    """Whole decompressed content; a truncated gzip gives what was readable plus an error text."""
    with source.open() as fh:
        chunks = []
        try:
            for block in iter(lambda: fh.read(1 << 22), b""):
                chunks.append(block)
        except (EOFError, OSError, gzip.BadGzipFile) as exc:
            return b"".join(chunks), f"truncated or corrupt gzip stream: {exc}"
    return b"".join(chunks), None


def iter_line_blocks(source: Source, block_size: int = 8 << 20):
    """Yield (parts, byte_offset, error): parts is a list of bytes whose concatenation ends on a line
    boundary (or at the end of the stream). Joining and counting lines is left to the consumer so
    that the reading process does as little as possible per byte.

    On a broken gzip stream the readable part is yielded, then a final item carries the error text.
    """
    offset = 0
    with source.open() as fh:
        while True:
            parts = []
            try:
                data = fh.read(block_size)
                if data:
                    parts.append(data)
                    if not data.endswith(b"\n"):
                        rest = fh.readline()
                        if rest:
                            parts.append(rest)
            except (EOFError, OSError, gzip.BadGzipFile) as exc:
                if parts:
                    yield parts, offset, None
                    offset += sum(map(len, parts))
                yield [], offset, f"truncated or corrupt gzip stream: {exc}"
                return
            if not parts:
                return
            yield parts, offset, None
            offset += sum(map(len, parts))
