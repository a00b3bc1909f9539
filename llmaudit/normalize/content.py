"""Captured prompt/completion content: token counts where usage is missing, and input hashes.

Content is read only to count and to hash; it is never copied into derived tables or reports.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

import orjson
import pyarrow as pa

# The tokenizer ships with the package (see cl100k_base.NOTICE beside it): cl100k_base's BPE ranks,
# loaded against the sha256 tiktoken itself expects for them. No other tokenizer, no download.
CL100K_PATH = Path(__file__).with_name("cl100k_base.tiktoken")
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# Pattern and special tokens as tiktoken_ext/openai_public.py defines cl100k_base.
_CL100K_PAT = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


class TokenizerFileError(RuntimeError):
    """The shipped tokenizer file is missing, unreadable or not the expected bytes."""


def load_bpe(path: Path, expected_sha256: str) -> dict[bytes, int]:
    """BPE ranks of a .tiktoken file (base64 token, space, rank per line), checked against its sha256.

    Read here rather than with tiktoken.load.load_tiktoken_bpe: that goes through tiktoken's download
    cache, so TIKTOKEN_CACHE_DIR / DATA_GYM_CACHE_DIR would decide where a copy is written (and a
    cached copy could stand in for a missing file)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TokenizerFileError(f"tokenizer file {path} cannot be read ({e}); reinstall llmaudit") from e
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise TokenizerFileError(
            f"tokenizer file {path} has sha256 {actual}, expected {expected_sha256}; reinstall llmaudit"
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def encoding():
    """The cl100k_base tiktoken encoding, built from the file shipped in the package."""
    import tiktoken

    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=_CL100K_PAT,
        mergeable_ranks=load_bpe(CL100K_PATH, CL100K_SHA256),
        special_tokens=_CL100K_SPECIAL,
    )


def count_tokens(text: str) -> int:
    """cl100k_base tokens of text; special-token markers in it are counted as plain text."""
    return len(encoding().encode_ordinary(text))


def _conv():
    from llmaudit.normalize.derive import conventions

    return conventions()


def _key_patterns(keys: list[str]) -> list[tuple[str, re.Pattern | None]]:
    out = []
    for key in keys:
        if "{i}" in key:
            out.append((key, re.compile("^" + re.escape(key).replace(r"\{i\}", r"(\d+)") + "$")))
        else:
            out.append((key, None))
    return out


def _message_texts(value: str) -> list[str]:
    """Texts inside a messages attribute: JSON messages (semconv parts or {role, content}) or plain text."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return [value]
    texts: list[str] = []

    def walk(node):
        if isinstance(node, str):
            texts.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for field in ("content", "text", "parts", "message", "messages"):
                if field in node:
                    walk(node[field])
            if "role" in node:
                texts.append(str(node["role"]))

    walk(doc)
    return texts


def extract(attrs: dict, keys: list[str], events: list | None, event_names: tuple[str, ...]) -> list[str]:
    texts: list[str] = []
    for key, pattern in _key_patterns(keys):
        if pattern is None:
            if key in attrs:
                texts.extend(_message_texts(attrs[key]))
            continue
        indexed = sorted((int(m.group(1)), k) for k in attrs if (m := pattern.match(k)))
        texts.extend(attrs[k] for _, k in indexed)
    for ev in events or ():
        if str(ev.get("name", "")).startswith(event_names):
            for field in ("content", "message", "gen_ai.event.content"):
                v = (ev.get("attributes") or {}).get(field)
                if v is not None:
                    texts.extend(_message_texts(v if isinstance(v, str) else orjson.dumps(v).decode()))
    return texts


def _content_filter(alias: str) -> str:
    conv = _conv()["content"]
    prefixes = sorted({k.split("{i}")[0] for k in conv["input"] + conv["output"]})
    likes = [f"{alias}.attributes LIKE '%\"{p}%'" for p in prefixes if "'" not in p]
    return "(" + " OR ".join(likes) + f" OR {alias}.events LIKE '%gen_ai.%')"


_NEEDS_COUNTS = """SELECT {select} FROM llm_calls
    WHERE input_tokens IS NULL OR (output_tokens IS NULL AND call_kind <> 'embedding')"""


def fill_from_content(con) -> None:
    """Count tokens with tiktoken for calls that captured content but reported no usage."""
    conv = _conv()["content"]
    # The calls lacking counts come first (usually few; embeddings have no output to count), then their
    # spans: a content test pushed down to every span would read every span's attributes.
    if not con.execute(_NEEDS_COUNTS.format(select="count(*)")).fetchone()[0]:
        return
    rows = con.execute(
        f"""WITH need AS MATERIALIZED ({_NEEDS_COUNTS.format(select="trace_id, span_id, input_tokens, output_tokens")}),
                 joined AS MATERIALIZED (
                     SELECT c.*, s.attributes, s.events FROM need c JOIN spans s USING (trace_id, span_id))
            SELECT * FROM joined s WHERE {_content_filter('s')}"""
    ).fetchall()
    if not rows:
        return
    out = {k: [] for k in ("trace_id", "span_id", "input_tokens", "output_tokens")}
    for trace_id, span_id, in_tok, out_tok, attrs_json, events_json in rows:
        attrs = orjson.loads(attrs_json) if attrs_json else {}
        events = orjson.loads(events_json) if events_json else None
        if in_tok is None:
            inputs = extract(attrs, conv["input"], events, _INPUT_EVENTS)
            in_tok = sum(count_tokens(t) for t in inputs) if inputs else None
        if out_tok is None:
            outputs = extract(attrs, conv["output"], events, _OUTPUT_EVENTS)
            out_tok = sum(count_tokens(t) for t in outputs) if outputs else None
        for k, v in zip(out, (trace_id, span_id, in_tok, out_tok)):
            out[k].append(v)
    upd = pa.table(  # noqa: F841 (read by DuckDB)
        {
            "trace_id": pa.array(out["trace_id"], pa.string()),
            "span_id": pa.array(out["span_id"], pa.string()),
            "input_tokens": pa.array(out["input_tokens"], pa.int64()),
            "output_tokens": pa.array(out["output_tokens"], pa.int64()),
        }
    )
    con.execute(
        """UPDATE llm_calls SET input_tokens = coalesce(llm_calls.input_tokens, u.input_tokens),
                  output_tokens = coalesce(llm_calls.output_tokens, u.output_tokens),
                  tokens_estimated = (llm_calls.input_tokens IS NULL AND u.input_tokens IS NOT NULL)
                                  OR (llm_calls.output_tokens IS NULL AND u.output_tokens IS NOT NULL)
           FROM upd u WHERE u.trace_id = llm_calls.trace_id AND u.span_id = llm_calls.span_id"""
    )


_INPUT_EVENTS = ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message")
_OUTPUT_EVENTS = ("gen_ai.choice",)


def _doc_index(key: str, prefix: str, suffix: str) -> int | None:
    """The document index of a key like <prefix>3<suffix>, else None."""
    if not (key.startswith(prefix) and key.endswith(suffix)):
        return None
    middle = key[len(prefix):len(key) - len(suffix)]
    return int(middle) if middle.isdigit() else None


def _doc_tokens(attrs: dict, spec: dict, metadata_fields: list[str]) -> int | None:
    """Tokens of a retrieval's documents: captured content counted, else metadata token counts."""
    prefix, content, metadata = spec["prefix"], spec["content"], spec["metadata"]
    per_doc: dict[int, int] = {}
    meta_docs: list[tuple[int, str]] = []
    for key, value in attrs.items():
        # A cheap test first: most keys of a retrieval span are ids and scores.
        if key.endswith(content):
            i = _doc_index(key, prefix, content)
            if i is not None:
                per_doc[i] = count_tokens(value)
        elif key.endswith(metadata):
            i = _doc_index(key, prefix, metadata)
            if i is not None:
                meta_docs.append((i, value))
    for i, value in meta_docs:
        if i in per_doc:
            continue
        try:
            meta = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(meta, dict):
            n = next((meta[f] for f in metadata_fields if isinstance(meta.get(f), (int, float))), None)
            if n is not None:
                per_doc[i] = int(n)
    return sum(per_doc.values()) if per_doc else None


def fill_retrieval_tokens(con) -> None:
    """Tokens of retrieved documents whose content was captured (counted with tiktoken; a document
    without content counts its metadata's token count). Runs after derive.documents_sql, which marks
    the spans with content; the others keep the metadata counts SQL found."""
    conv = _conv()["retrievals"]
    docs, fields = conv["documents"], conv["metadata_token_fields"]
    rows = con.execute(
        """SELECT r.trace_id, r.span_id, r.kind, s.attributes FROM _documents d
           JOIN retrievals r USING (trace_id, span_id) JOIN spans s USING (trace_id, span_id)
           WHERE d.has_content"""
    ).fetchall()
    if not rows:
        return
    ids, spans, tokens = [], [], []
    for trace_id, span_id, kind, attrs_json in rows:
        spec = docs["reranker_in"] if kind == "reranker" else docs["retriever"]
        total = _doc_tokens(orjson.loads(attrs_json), spec, fields)
        if total is not None:
            ids.append(trace_id)
            spans.append(span_id)
            tokens.append(total)
    upd = pa.table({"trace_id": pa.array(ids, pa.string()), "span_id": pa.array(spans, pa.string()),  # noqa: F841
                    "tokens": pa.array(tokens, pa.int64())})
    con.execute(
        """UPDATE retrievals SET context_tokens = u.tokens FROM upd u
           WHERE u.trace_id = retrievals.trace_id AND u.span_id = retrievals.span_id"""
    )
