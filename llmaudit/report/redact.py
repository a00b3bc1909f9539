"""Make a report safe to leave the company.

Two separate guards:

* ``scrub_content`` runs on every output. Prompts, completions and retrieved documents never belong in
  a report (DESIGN: content is hashed, never shown). Rules only put numbers and names in evidence, but
  user rule folders can return anything, so evidence values under keys that name content (prompt,
  completion, messages, content, document text, ...) and unusually long evidence strings are replaced
  by a hash before any renderer sees them.
* ``redact`` (``--redact``) pseudonymises the names of people, tenants, users and accounts: scope.tenant,
  the tenant breakdown, evidence values under keys that name them, and any other place those names
  appear in the document's text. Models, providers and services are not people: a value under such a
  key stays, even inside an account's record. The hash is an HMAC with a salt (``LLMAUDIT_REDACT_SALT``), so the same name maps
  to the same token in every report made with that salt (week-over-week baselines still match) while
  someone without the salt cannot test guesses. Fingerprints of tenant-scoped findings are re-hashed
  too: the plain fingerprint is an unsalted hash of the tenant name and would let a reader confirm a
  guessed tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Any

from pydantic import BaseModel, Field

from llmaudit.report.document import AuditDocument

SALT_ENV = "LLMAUDIT_REDACT_SALT"
# Used only when no salt is configured: hashes stay stable but anyone with llmaudit can test guesses
# against them, which the report says (RedactionInfo.default_salt) instead of pretending otherwise.
DEFAULT_SALT = "llmaudit-default-redaction-salt-v1"

# Key words (split on . _ - and camelCase) that mark a value as a tenant or user name.
_PERSON_WORDS = {
    "tenant", "tenants", "user", "users", "username", "usernames", "userid", "enduser", "customer", "customers",
    "org", "orgs", "organization", "organizations", "organisation", "organisations", "account", "accounts",
    "email", "emails", "owner", "principal",
}
# Key words that mark a value as something other than a person, even inside a tenant's or an account's
# record (a sub-account's model, a tenant's provider): never pseudonymised.
_THING_WORDS = {
    "model", "models", "provider", "providers", "service", "services", "feature", "features", "route", "operation",
    "currency", "region", "sku", "gpu", "host", "instance", "rule", "category", "kind", "type", "status",
}
# Key words that mark a value as telemetry content (prompts, completions, documents, queries).
_CONTENT_WORDS = {
    "prompt", "prompts", "completion", "completions", "content", "contents", "message", "messages", "text",
    "texts", "document", "documents", "chunk", "chunks", "query", "queries", "question", "answer", "response",
    "body", "instructions", "input_value", "output_value", "transcript",
}
MAX_EVIDENCE_STRING = 512  # longer free text in evidence is far more likely content than a name or number
# Fields of the document that are codes or hashes, never names: left alone by text replacement.
_CODE_KEYS = {
    "schema_version", "fingerprint", "rule_id", "rule_name", "category", "severity", "baseline_severity",
    "confidence", "sha256", "format", "kind", "status", "presence", "window_start", "window_end", "start", "end",
}


class RedactionInfo(BaseModel):
    """Recorded in doc.extras["redaction"] so readers (and baselines) know what was done."""

    method: str = "HMAC-SHA256 of each tenant/user name, first 12 hex digits, prefixed 'anon-'"
    salt_id: str = Field(description="first 8 hex digits of a hash of the salt: equal ids, comparable reports")
    default_salt: bool = Field(description="no LLMAUDIT_REDACT_SALT was set: names can be tested by guessing")
    names_redacted: int


def _words(key: str) -> list[str]:
    key = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key))
    return [w for w in re.split(r"[^A-Za-z0-9]+", key.lower()) if w]


def names_person(key: str) -> bool:
    words = _words(key)
    return any(w in _PERSON_WORDS for w in words) or "".join(words) in _PERSON_WORDS


def names_thing(key: str) -> bool:
    """A key that names a model, provider, service... (and no person): its values are never names."""
    words = _words(key)
    return any(w in _THING_WORDS for w in words) and not names_person(key)


def names_content(key: str) -> bool:
    words = _words(key)
    joined = "_".join(words)
    return any(w in _CONTENT_WORDS for w in words) or joined in _CONTENT_WORDS


def content_hash(text: str) -> str:
    return "[content removed: sha256 " + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12] + "]"


def _scrub_value(value: Any, under_content_key: bool) -> tuple[Any, int]:
    if isinstance(value, str):
        if under_content_key or len(value) > MAX_EVIDENCE_STRING:
            return content_hash(value), 1
        return value, 0
    if isinstance(value, list):
        out, n = [], 0
        for v in value:
            v2, k = _scrub_value(v, under_content_key)
            out.append(v2)
            n += k
        return out, n
    if isinstance(value, dict):
        out, n = {}, 0
        for k, v in value.items():
            v2, c = _scrub_value(v, under_content_key or names_content(k))
            out[k] = v2
            n += c
        return out, n
    return value, 0


def scrub_content(doc: AuditDocument) -> AuditDocument:
    """A copy of doc whose evidence carries no telemetry content (idempotent)."""
    total = 0
    findings = []
    for f in doc.findings:
        evidence, n = _scrub_value(f.evidence, False)
        total += n
        findings.append(f.model_copy(update={"evidence": evidence}) if n else f)
    if not total:
        return doc
    extras = dict(doc.extras)
    # Say so in the report: a rule that emits content should be fixed, not silently papered over.
    extras["content_scrubbed"] = int(extras.get("content_scrubbed", 0)) + total
    return doc.model_copy(update={"findings": findings, "extras": extras})


def resolve_salt(salt: str | None = None) -> tuple[str, bool]:
    """(salt, is_default): an explicit salt, else $LLMAUDIT_REDACT_SALT, else the public default."""
    if salt:
        return salt, False
    env = os.environ.get(SALT_ENV)
    if env:
        return env, False
    return DEFAULT_SALT, True


def salt_id(salt: str) -> str:
    return hashlib.sha256(b"llmaudit-salt-id\x00" + salt.encode("utf-8")).hexdigest()[:8]


def pseudonym(name: str, salt: str) -> str:
    digest = hmac.new(salt.encode("utf-8"), str(name).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return "anon-" + digest[:12]


def _collect_person_values(value: Any, under_person_key: bool, out: set[str]) -> None:
    if isinstance(value, str):
        if under_person_key and value:
            out.add(value)
    elif isinstance(value, list):
        for v in value:
            _collect_person_values(v, under_person_key, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            _collect_person_values(v, names_person(k) or (under_person_key and not names_thing(k)), out)


class _Replacer:
    """Replace every known name: whole values exactly, and inside free text on word boundaries."""

    MIN_IN_TEXT = 3  # a 1-2 character name replaced inside sentences would mangle unrelated words

    def __init__(self, names: set[str], salt: str):
        self.map = {n: pseudonym(n, salt) for n in names}
        long = sorted((n for n in names if len(n) >= self.MIN_IN_TEXT), key=lambda n: (-len(n), n))
        self.pattern = (
            re.compile("|".join(rf"(?<![\w]){re.escape(n)}(?![\w])" for n in long)) if long else None
        )

    def text(self, s: str) -> str:
        if s in self.map:
            return self.map[s]
        if self.pattern is None or s.startswith("anon-"):
            return s
        return self.pattern.sub(lambda m: self.map[m.group(0)], s)

    def walk(self, value: Any, key: str | None = None, free_keys: bool = False) -> Any:
        """Replace names in strings; dict keys too where they are data (evidence, extras), not field names."""
        if isinstance(value, str):
            return value if key in _CODE_KEYS else self.text(value)
        if isinstance(value, list):
            return [self.walk(v, key, free_keys) for v in value]
        if isinstance(value, dict):
            return {
                (self.text(k) if free_keys and k not in _CODE_KEYS else k): self.walk(v, k, free_keys)
                for k, v in value.items()
            }
        return value


def redact(doc: AuditDocument, salt: str | None = None) -> AuditDocument:
    """A copy of doc with tenant and user names replaced by salted, stable pseudonyms."""
    salt, is_default = resolve_salt(salt)
    names: set[str] = set()
    for f in doc.findings:
        if f.scope.tenant:
            names.add(f.scope.tenant)
        _collect_person_values(f.evidence, False, names)
    for row in doc.breakdowns.get("tenant", []):
        if row.key:
            names.add(row.key)
    _collect_person_values({k: v for k, v in doc.extras.items() if k != "redaction"}, False, names)
    names = {n for n in names if not n.startswith("anon-")}  # already redacted (idempotent)

    replacer = _Replacer(names, salt)
    raw = doc.model_dump(mode="json")
    renamed: dict[str, str] = {}
    for f in raw["findings"]:
        if f["scope"].get("tenant") and not f["fingerprint"].startswith(f["rule_id"] + "-r"):
            # Re-hash with the salt; the "-r" marks a redacted fingerprint so a second pass leaves it alone.
            tag = hmac.new(salt.encode("utf-8"), f["fingerprint"].encode("utf-8"), hashlib.sha256).hexdigest()[:11]
            renamed[f["fingerprint"]] = f"{f['rule_id']}-r{tag}"
            f["fingerprint"] = renamed[f["fingerprint"]]
        for field in ("title", "message", "remediation", "scope", "example_trace_ids", "waste"):
            f[field] = replacer.walk(f[field], field)
        f["evidence"] = replacer.walk(f["evidence"], "evidence", free_keys=True)
        if f.get("measured"):
            f["measured"] = replacer.walk(f["measured"], "measured", free_keys=True)
    # Charts follow their findings' fingerprints; their labels (x values, series) are text like any other.
    raw["charts"] = {renamed.get(fp, fp): replacer.walk(chart, "chart", free_keys=False)
                     for fp, chart in raw.get("charts", {}).items()}
    for rows in raw["breakdowns"].values():
        for row in rows:
            row["key"] = replacer.walk(row["key"], "key")
    for item in raw["inputs"]:
        item["path"] = replacer.walk(item["path"], "path")
    for section in ("skipped_rules", "rule_errors"):
        raw[section] = {k: replacer.walk(v, "why") for k, v in raw[section].items()}
    previous = raw["extras"].pop("redaction", None)
    raw["extras"] = replacer.walk(raw["extras"], "extras", free_keys=True)
    count = len(names) + (int(previous.get("names_redacted", 0)) if isinstance(previous, dict) else 0)
    raw["extras"]["redaction"] = RedactionInfo(salt_id=salt_id(salt), default_salt=is_default, names_redacted=count).model_dump()
    return AuditDocument.model_validate(raw)
