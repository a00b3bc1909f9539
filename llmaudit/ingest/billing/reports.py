"""JSON report pages (OpenAI organization usage and costs, Anthropic Admin API usage and cost reports):
time buckets of results, one JSON document or JSON lines of them. A result that cannot be read
becomes a reject naming its record path, and the rest of the file is read. A file whose last page says
`has_more: true` is an incomplete export, and a file with nothing to store says why (Batch.notes)."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import orjson

from llmaudit.ingest.billing.rows import BILLING_KEY, RowBuilder, canonical
from llmaudit.ingest.billing.values import BadRow, as_number, as_time
from llmaudit.ingest.core import Batch, Format, ReadContext, Reject
from llmaudit.ingest.sources import Source, read_all

# The columns of every charge these reports hold: usage of a hosted model.
LLM_SERVICE = {"service_category": "AI and Machine Learning", "service_subcategory": "Generative AI",
               "charge_category": "Usage", "charge_frequency": "Usage-Based"}


def number_at(result: dict, field: str) -> float | None:
    """The number at a dotted path of a result ("cache_creation.ephemeral_5m_input_tokens")."""
    return as_number(_dig(result, field), field)


def _dig(obj: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def json_like(head: bytes) -> bytes | None:
    """The head without leading white space if it opens a JSON object or list, else None."""
    h = head.lstrip()
    return h if h[:1] in (b"{", b"[") else None


def _documents(data: bytes) -> Iterator[tuple[int | None, Any, str | None]]:
    """(line, document, error): one JSON document, or JSON lines of them (one page per line)."""
    try:
        yield None, orjson.loads(data), None
        return
    except orjson.JSONDecodeError as whole_error:
        lines = data.split(b"\n")
        first = next((line for line in lines if line.strip()), b"")
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            # Not JSON lines either: one broken document (say, cut short), reported once at the
            # line where parsing stopped.
            yield whole_error.lineno, None, f"not valid JSON: {whole_error}"
            return
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield number, orjson.loads(line), None
            except orjson.JSONDecodeError as exc:
                yield number, None, f"not valid JSON: {exc}"


def _buckets(doc) -> Iterator[tuple[str, Any]]:
    """(path, bucket) of a page {"data": [bucket...]}, a list of pages, or a bare list of buckets."""
    pages = doc if isinstance(doc, list) else [doc]
    for p, page in enumerate(pages):
        prefix = f"[{p}]." if isinstance(doc, list) else ""
        if isinstance(page, dict) and "data" in page:
            data = page["data"]
            if not isinstance(data, list):
                yield f"{prefix}data", None
                continue
            for b, bucket in enumerate(data):
                yield f"{prefix}data[{b}]", bucket
        elif isinstance(page, dict) and "results" in page:
            yield prefix.rstrip(".") or "bucket", page
        else:
            yield prefix.rstrip(".") or "document", None


def _last_page(doc, last: tuple | None) -> tuple | None:
    """(has_more, next_page) of the document's last page that says, else `last` (what earlier documents said)."""
    for page in doc if isinstance(doc, list) else [doc]:
        if isinstance(page, dict) and "has_more" in page:
            last = (page.get("has_more"), page.get("next_page"))
    return last


def incomplete_note(next_page) -> str:
    cursor = f"page={next_page}" if isinstance(next_page, str) and next_page else "the page cursor in next_page"
    return (f"incomplete export: its last page says has_more: true, so the API holds more results. Repeat the "
            f"request with {cursor} (and again while has_more is true) and pass all the pages "
            f"(ignore this if the next page is among the inputs)")


def _nothing_note(buckets: int, results: int) -> str:
    if not buckets:
        return "no time buckets (the data list is empty): nothing to store"
    if not results:
        return f"{buckets:,} time bucket{'s' if buckets != 1 else ''}, all with an empty results list: no usage in that period"
    return f"{results:,} result{'s' if results != 1 else ''}, each with zero or no usage: nothing to store"


def report_format(fmt_name: str, sniff: Callable[[bytes, str], bool], parse_result: Callable,
                  bucket_times: tuple[str, str]) -> Format:
    """A format of report pages: parse_result(result, start, end) -> list of (row, content-extra);
    bucket_times names the bucket's start and end fields."""

    def read(source: Source, ctx: ReadContext) -> Iterator[Batch]:
        data, error = read_all(source)
        builder = RowBuilder(ctx.file_id, fmt_name)
        rejects: list[Reject] = []
        records = buckets = 0
        last_page = None
        for line, doc, doc_error in _documents(data):
            if doc_error:
                rejects.append(Reject(line, None, None, doc_error))
                continue
            last_page = _last_page(doc, last_page)
            for path, bucket in _buckets(doc):
                buckets += 1
                if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
                    records += 1
                    rejects.append(Reject(line, None, path, "not a time bucket with a results list"))
                    continue
                try:
                    start = as_time(bucket.get(bucket_times[0]), bucket_times[0])
                    end = as_time(bucket.get(bucket_times[1]), bucket_times[1])
                except BadRow as exc:
                    records += len(bucket["results"]) or 1
                    rejects.append(Reject(line, None, path, str(exc)))
                    continue
                for r, result in enumerate(bucket["results"]):
                    records += 1
                    where = f"{path}.results[{r}]"
                    try:
                        if not isinstance(result, dict):
                            raise BadRow("a result must be a JSON object")
                        rows = parse_result(result, start, end)
                    except BadRow as exc:
                        rejects.append(Reject(line, None, where, str(exc)))
                        continue
                    base = canonical([bucket.get(bucket_times[0]), bucket.get(bucket_times[1]), result])
                    for row, part in rows:
                        row.setdefault("charge_period_start", start)
                        row.setdefault("charge_period_end", end)
                        builder.add(base + part.encode(), row)
        if error:
            rejects.append(Reject(None, len(data), None, error))
        notes = [] if len(builder) or rejects else [_nothing_note(buckets, records)]
        if last_page is not None and last_page[0] is True:
            notes.append(incomplete_note(last_page[1]))
        yield Batch(builder.take(), rejects, records, len(data), notes=notes)

    return Format(fmt_name, "billing", "billing", BILLING_KEY, sniff, read)
