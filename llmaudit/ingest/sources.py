"""Find input files and open them: paths, directories (recursive), globs, gzip by magic bytes."""

from __future__ import annotations

import glob
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
# Files a directory walk passes over without comment: code, docs, and the like.
_NOT_DATA_SUFFIXES = {".py", ".pyc", ".md", ".rst", ".toml", ".yaml", ".yml", ".html", ".sh", ".lock"}


class InputError(Exception):
    """A path the user named does not exist or matches nothing."""


class BrokenStream(Exception):
    """A compressed stream that ends early or is corrupt; what came before it was delivered."""


def _gzip_chunks(path: Path, raw_size: int = 1 << 20):
    """Decompressed chunks of a gzip file (all members), raising BrokenStream at a bad or cut end.

    zlib directly rather than the gzip module: GzipFile.read() drops the data it had inflated in
    the call that hits a truncated end, and we promise to keep every complete record.
    """
    with open(path, "rb") as fh:
        inflater = zlib.decompressobj(wbits=31)
        fed = False
        while raw := fh.read(raw_size):
            while raw:
                fed = True
                try:
                    out = inflater.decompress(raw)
                except zlib.error as exc:
                    raise BrokenStream(f"corrupt gzip stream: {exc}") from exc
                if out:
                    yield out
                if inflater.eof:  # a member ended; another may follow
                    raw = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                    fed = False
                    if not raw.strip(b"\x00"):
                        raw = b""
                else:
                    raw = b""
        if fed and not inflater.eof:
            raise BrokenStream("truncated gzip stream: the file ends inside its compressed data")


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

    def chunks(self, size: int = 1 << 20):
        """Decompressed content in chunks; a broken gzip stream raises BrokenStream after its data."""
        if self.is_gzip():
            yield from _gzip_chunks(self.path, size)
            return
        with open(self.path, "rb") as fh:
            while block := fh.read(size):
                yield block

    def decompressed_size_hint(self) -> int | None:
        """A gzip file's decompressed size from its trailer (ISIZE: the size mod 2**32 of the last
        member), for progress only; None when it cannot be right (not gzip, or smaller than the file)."""
        if not self.is_gzip():
            return None
        with open(self.path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            isize = int.from_bytes(fh.read(4), "little")
        return isize if isize >= self.size else None

    def estimated_size(self) -> int:
        """Decompressed size where a gzip trailer gives it, else the size on disk."""
        return self.decompressed_size_hint() or self.size

    def head(self, n: int = 65536) -> bytes:
        """The first n decompressed bytes (fewer if the stream is short or broken)."""
        got = bytearray()
        try:
            for chunk in self.chunks(min(n, 1 << 20)):
                got += chunk
                if len(got) >= n:
                    break
        except BrokenStream:
            pass
        return bytes(got[:n])

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
    """Whole decompressed content; a broken gzip stream gives what was readable plus an error text."""
    chunks = []
    try:
        for chunk in source.chunks(4 << 20):
            chunks.append(chunk)
    except BrokenStream as exc:
        return b"".join(chunks), str(exc)
    return b"".join(chunks), None


def iter_line_blocks(source: Source, block_size: int = 8 << 20):
    """Yield (parts, byte_offset, error): parts is a list of bytes whose concatenation ends on a line
    boundary (or at the end of the stream). Joining and counting lines is left to the consumer (a
    worker process) so that the reading process does as little as possible per byte.

    On a broken gzip stream the readable part is yielded, then a final item carries the error text.
    """
    if source.is_gzip():
        yield from _gzip_line_blocks(source, block_size)
        return
    offset = 0
    with open(source.path, "rb") as fh:
        while data := fh.read(block_size):
            parts = [data]
            if not data.endswith(b"\n"):
                rest = fh.readline()
                if rest:
                    parts.append(rest)
            yield parts, offset, None
            offset += sum(map(len, parts))


def iter_line_ranges(source: Source, block_size: int = 8 << 20):
    """Yield (byte_offset, length) of blocks of an uncompressed file that end on a line boundary (or at
    the end of the file). Only the tail of each block's last line is read here: the consumer (a worker
    process) reads the block itself, so the bytes never pass through this process."""
    size = source.size
    offset = 0
    with open(source.path, "rb") as fh:
        while offset < size:
            end = offset + block_size
            if end < size:
                fh.seek(end)
                end += len(fh.readline())
            end = min(end, size)
            yield offset, end - offset
            offset = end


def read_range(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def _gzip_line_blocks(source: Source, block_size: int):
    offset = 0
    pending: list[bytes] = []
    pending_size = 0
    try:
        for chunk in source.chunks(1 << 20):
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size < block_size:
                continue
            cut = chunk.rfind(b"\n")
            if cut < 0:
                continue  # a long line: keep collecting until it ends
            head, tail = chunk[: cut + 1], chunk[cut + 1 :]
            parts = pending[:-1] + [head]
            yield parts, offset, None
            offset += pending_size - len(tail)
            pending, pending_size = ([tail], len(tail)) if tail else ([], 0)
    except BrokenStream as exc:
        if pending:
            yield pending, offset, None
            offset += pending_size
        yield [], offset, str(exc)
        return
    if pending:
        yield pending, offset, None
