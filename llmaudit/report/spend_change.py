"""Why spend changed: each feature's change in spend between a baseline and this run, split into parts
that add up to the change exactly.

Each report carries, per feature, what this needs (AuditDocument.spend_detail): requests, and per model
and call kind the calls, input and output tokens and the spend on each. For one feature:

    spend S = waste W + useful spend E            W: the window dollars of the feature's counted findings
    E = sum over cells c (model, call kind) and token kinds k (input, output) of
        R  x  Q x sigma_c  x  tau_ck  x  p_ck
        R requests; Q calls per request; sigma_c the cell's share of calls; tau_ck useful tokens of kind k per
        call (tokens x (1 - W/S): waste is taken out as a uniform share of the feature's tokens);
        p_ck dollars per token of that cell and kind (input: cost_usd - output tokens x output price)

The change S_now - S_base is: waste = W_now - W_base, then chained substitution over E in a fixed order,
each step replacing one factor's baseline value with this run's (so the steps telescope from E_base to
E_now, exact by construction):

    volume            R                       (requests)
    mix               sigma                   (shares of calls by model and call kind)
    tokens_per_request  Q and tau             (calls per request, tokens per call)
    price             p                       (this run's tokens at this run's minus the baseline's prices)

A cell seen in one window only takes the other window's tokens per call and prices (its spend is mix); a
feature seen in one window only is all volume. A kind with spend but no tokens (self-hosted calls without
token counts) is counted per call instead of per token. Every level is rounded to 1e-6 dollars before the
differences are taken, so the parts sum to the rounded change exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from llmaudit.findings.model import NOT_WASTE

PARTS = ("waste", "volume", "mix", "tokens_per_request", "price")
KINDS = ("input", "output")
DIGITS = 6
METHOD = ("spend = waste (window dollars of the counted findings of the feature) + useful spend; the useful spend "
          "is split by chained substitution in the order volume (requests), mix (shares of calls by model and "
          "call kind), tokens per request (calls per request x useful tokens per call), price (dollars per input "
          "and output token of each model and call kind), so the parts add up to the change exactly")


class CellSpend(BaseModel):
    """One model and call kind of a feature in the window."""

    provider: str | None = None
    model: str | None = None
    call_kind: str | None = None
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    input_usd: float = Field(description="the calls' cost less their output tokens at the output price")
    output_usd: float = Field(description="output tokens at the output price")


class FeatureSpend(BaseModel):
    """What a later run needs to explain this feature's change in spend (report.spend_detail)."""

    feature: str | None
    requests: int
    calls: int
    input_tokens: int
    output_tokens: int
    spend_usd: float
    cells: list[CellSpend]


class SpendChange(BaseModel):
    feature: str | None
    baseline_usd: float
    current_usd: float
    change_usd: float
    parts: dict[str, float] = Field(description="waste, volume, mix, tokens_per_request, price: they sum to change_usd")
    requests: tuple[int, int] = Field(description="baseline, this run")
    input_tokens_per_request: tuple[float | None, float | None] = Field(description="baseline, this run")
    input_tokens_per_request_growth: float | None = Field(None, description="this run / baseline - 1")
    token_creep: bool = Field(False, description="input tokens per request grew more than the token-creep threshold")


class SpendChanges(BaseModel):
    method: str = METHOD
    token_creep_threshold: float
    features: list[SpendChange]
    note: str | None = Field(None, description="why there is no decomposition (a baseline written before 1.1)")


# ---------------------------------------------------------------- the arithmetic

@dataclass
class _Period:
    requests: float
    calls: dict[tuple, float]                 # cell -> calls
    qty: dict[tuple, float]                   # (cell, kind) -> tokens (or calls), useful share
    price: dict[tuple, float]                 # (cell, kind) -> dollars per unit
    spend: float
    waste: float


def _cell_key(c: CellSpend) -> tuple:
    return (c.provider, c.model, c.call_kind)


def _per_call_kinds(*features: FeatureSpend | None) -> set[tuple]:
    """(cell, kind) pairs with spend but no tokens in some window: counted per call in both."""
    out = set()
    for f in features:
        for c in (f.cells if f else []):
            for kind, tokens, usd in (("input", c.input_tokens, c.input_usd), ("output", c.output_tokens, c.output_usd)):
                if tokens <= 0 and abs(usd) > 0:
                    out.add((_cell_key(c), kind))
    return out


def _period(f: FeatureSpend | None, waste: float, per_call: set[tuple]) -> _Period:
    if f is None:
        return _Period(0.0, {}, {}, {}, 0.0, 0.0)
    spend = sum(c.input_usd + c.output_usd for c in f.cells)
    waste = min(max(waste, 0.0), max(spend, 0.0))
    useful = 1.0 - waste / spend if spend > 0 else 1.0
    calls, qty, price = {}, {}, {}
    for c in f.cells:
        key = _cell_key(c)
        calls[key] = calls.get(key, 0.0) + c.calls
        for kind, tokens, usd in (("input", c.input_tokens, c.input_usd), ("output", c.output_tokens, c.output_usd)):
            units = float(c.calls if (key, kind) in per_call else tokens)
            q = qty.get((key, kind), 0.0) + units
            qty[(key, kind)] = q
            price[(key, kind)] = price.get((key, kind), 0.0) + usd  # dollars for now; divided below
    for k in list(price):
        price[k] = price[k] / qty[k] if qty[k] > 0 else None
        qty[k] *= useful
    return _Period(float(f.requests), calls, qty, price, spend, waste)


def _structure(p: _Period, other: _Period):
    """sigma, Q x tau per cell and kind, price: what F needs, with the other window's values where this one
    has none (a cell or kind not seen here, a feature not seen here)."""
    total_calls = sum(p.calls.values())
    sigma, per_request, price = {}, {}, {}
    cells = set(p.calls) | set(other.calls)
    for cell in cells:
        sigma[cell] = p.calls.get(cell, 0.0) / total_calls if total_calls else _share(other, cell)
    for key in set(p.qty) | set(other.qty):
        cell = key[0]
        here = p.calls.get(cell, 0.0)
        if here > 0 and p.requests > 0:
            # Q x tau = (calls / requests) x (units / calls) = units per request; per call of the cell:
            per_request[key] = p.qty.get(key, 0.0) / here
        else:
            there = other.calls.get(cell, 0.0)
            per_request[key] = other.qty.get(key, 0.0) / there if there > 0 else 0.0
        mine = p.price.get(key)
        price[key] = mine if mine is not None else (other.price.get(key) or 0.0)
    calls_per_request = total_calls / p.requests if p.requests > 0 else (
        sum(other.calls.values()) / other.requests if other.requests > 0 else 0.0)
    return sigma, calls_per_request, per_request, price


def _share(p: _Period, cell) -> float:
    total = sum(p.calls.values())
    return p.calls.get(cell, 0.0) / total if total else 0.0


def _value(requests, sigma, calls_per_request, units_per_call, price) -> float:
    return sum(requests * calls_per_request * sigma.get(key[0], 0.0) * units * price.get(key, 0.0)
               for key, units in units_per_call.items())


def decompose(base: FeatureSpend | None, now: FeatureSpend | None, waste_base: float, waste_now: float) -> dict[str, float]:
    per_call = _per_call_kinds(base, now)
    b, n = _period(base, waste_base, per_call), _period(now, waste_now, per_call)
    sb, qb, ub, pb = _structure(b, n)
    sn, qn, un, pn = _structure(n, b)
    levels = [
        b.waste + _value(b.requests, sb, qb, ub, pb),
        n.waste + _value(b.requests, sb, qb, ub, pb),
        n.waste + _value(n.requests, sb, qb, ub, pb),
        n.waste + _value(n.requests, sn, qb, ub, pb),
        n.waste + _value(n.requests, sn, qn, un, pb),
        n.waste + _value(n.requests, sn, qn, un, pn),
    ]
    # The first and last levels are the spends themselves (the identity E = R Q sigma tau p holds exactly
    # up to float error): pin them so the parts sum to the change in spend, not to a re-computation of it.
    levels[0], levels[-1] = b.spend, n.spend
    levels = [round(v, DIGITS) for v in levels]
    return {part: round(levels[i + 1] - levels[i], DIGITS) for i, part in enumerate(PARTS)}


# ---------------------------------------------------------------- documents

def waste_by_feature(doc) -> dict[str | None, float]:
    """Window dollars of the findings the waste total counts, per feature; GPU idle capacity is provisioned
    time, not the calls' spend, and budgets and reconciliation gaps are not waste."""
    counted = set(doc.totals.counted_findings)
    out: dict[str | None, float] = {}
    for f in doc.findings:
        if f.fingerprint in counted and f.scope.feature is not None and f.category not in NOT_WASTE \
                and f.category != "idle_capacity" and f.waste.usd:
            out[f.scope.feature] = out.get(f.scope.feature, 0.0) + f.waste.usd
    return out


def _input_per_request(f: FeatureSpend | None) -> float | None:
    return round(f.input_tokens / f.requests, 2) if f and f.requests else None


def spend_changes(doc, base, creep_threshold: float) -> SpendChanges:
    if not base.spend_detail and base.totals.llm_calls:
        return SpendChanges(token_creep_threshold=creep_threshold, features=[],
                            note=f"the baseline (report schema {base.schema_version}) carries no spend detail per "
                                 "feature; regenerate it with this version to see why spend changed")
    now = {f.feature: f for f in doc.spend_detail}
    before = {f.feature: f for f in base.spend_detail}
    waste_now, waste_before = waste_by_feature(doc), waste_by_feature(base)
    rows = []
    for key in sorted({*now, *before}, key=lambda k: (k is None, k or "")):
        n, b = now.get(key), before.get(key)
        parts = decompose(b, n, waste_before.get(key, 0.0), waste_now.get(key, 0.0))
        # The spends the parts explain: the sums of the cells (as the levels of decompose are pinned to).
        cur = sum(c.input_usd + c.output_usd for c in n.cells) if n else 0.0
        was = sum(c.input_usd + c.output_usd for c in b.cells) if b else 0.0
        ipr = (_input_per_request(b), _input_per_request(n))
        growth = round(ipr[1] / ipr[0] - 1, 4) if ipr[0] and ipr[1] is not None else None
        rows.append(SpendChange(
            feature=key, baseline_usd=round(was, DIGITS), current_usd=round(cur, DIGITS),
            change_usd=round(round(cur, DIGITS) - round(was, DIGITS), DIGITS), parts=parts,
            requests=(b.requests if b else 0, n.requests if n else 0), input_tokens_per_request=ipr,
            input_tokens_per_request_growth=growth, token_creep=growth is not None and growth > creep_threshold))
    rows.sort(key=lambda r: (-abs(r.change_usd), r.feature is None, r.feature or ""))
    return SpendChanges(token_creep_threshold=creep_threshold, features=rows)


# ---------------------------------------------------------------- what every output shows

PART_LABELS = {"waste": "waste", "volume": "volume", "mix": "mix", "tokens_per_request": "tokens/request",
               "price": "price"}
TITLE = "Why spend changed"


def creep_text(row: SpendChange) -> str:
    """Input tokens per request, baseline -> now, with the growth; 'token creep' past the threshold."""
    was, now = row.input_tokens_per_request
    if was is None or now is None:
        return "n/a"
    growth = row.input_tokens_per_request_growth
    text = f"{was:,.0f} → {now:,.0f}" + (f" ({growth:+.0%})" if growth is not None else "")
    return text + (" token creep" if row.token_creep else "")


def shown(changes: SpendChanges | None, limit: int = 30) -> list[SpendChange]:
    """The features whose spend moved, biggest change first (at most `limit`)."""
    if changes is None:
        return []
    return [r for r in changes.features if r.change_usd or any(r.parts.values())][:limit]


def cents(row: SpendChange) -> dict[str, float]:
    """The parts in whole cents, adding up to the change in whole cents (largest remainder): what every output
    prints, so a reader's sum of the shown parts is the shown change."""
    target = round(row.change_usd * 100)
    raw = {p: row.parts[p] * 100 for p in PARTS}
    shown_ = {p: round(v) for p, v in raw.items()}
    gap = target - sum(shown_.values())
    step = 1 if gap > 0 else -1
    # The parts whose rounding moved them furthest from their value, in the direction of the gap, move a cent.
    order = sorted(PARTS, key=lambda p: (-(raw[p] - shown_[p]) * step, PARTS.index(p)))
    for p in order[:abs(gap)]:
        shown_[p] += step
    return {p: v / 100 for p, v in shown_.items()}


# ---------------------------------------------------------------- token creep against the baseline

def baseline_creep_findings(doc, changes: SpendChanges) -> list:
    """LLMA018 findings for the features whose input tokens per request grew past the threshold since the
    baseline, where the window itself (under two weeks) gave none. Same fingerprint as the rule's own finding
    for the feature, so next week's run matches it. Not added to the waste total (which the rules' findings
    make): the growth is priced, and shown as not counted."""
    from llmaudit.findings.model import Finding, Scope, Waste
    from llmaudit.rules.engine import DAYS_PER_MONTH, fingerprint

    have = {f.scope.feature for f in doc.findings if f.rule_id == CREEP_RULE}
    detail = {f.feature: f for f in doc.spend_detail}
    out = []
    for row in changes.features:
        if not row.token_creep or row.feature in have or row.feature not in detail:
            continue
        was, now = row.input_tokens_per_request
        spend = detail[row.feature]
        price = sum(c.input_usd for c in spend.cells) / spend.input_tokens if spend.input_tokens else 0.0
        extra = (now - was) * spend.requests
        usd = extra * price
        days = doc.window.days
        scope = Scope(feature=row.feature, window_start=doc.window.start, window_end=doc.window.end)
        growth = row.input_tokens_per_request_growth
        out.append(Finding(
            fingerprint=fingerprint(CREEP_RULE, scope.model_copy(update={"window_start": None, "window_end": None}),
                                    "token-creep"),
            rule_id=CREEP_RULE, rule_name="token-creep", title="Input tokens per request keep growing week over week",
            category="prompt_bloat", severity="high" if growth >= 0.5 else "medium", confidence="low",
            message=(f"{row.feature}: {was:,.0f} → {now:,.0f} input tokens per request since the baseline "
                     f"({growth:+.0%}); the growth costs ${usd:,.2f} in this window"),
            scope=scope,
            evidence={"compared_with": "baseline", "input_per_request_before": was, "input_per_request": now,
                      "growth": growth, "growth_percent": round(100 * growth, 1), "threshold": changes.token_creep_threshold,
                      "requests": spend.requests, "requests_before": row.requests[0],
                      "tokens_per_request_part_usd": row.parts["tokens_per_request"]},
            waste=Waste(tokens=int(round(extra)), usd=round(usd, 2),
                        usd_per_month=round(usd * DAYS_PER_MONTH / days, 2) if days else None,
                        extrapolation=(f"linear: {days:.1f} days observed, scaled to {DAYS_PER_MONTH:.0f} days" if days
                                       else "not extrapolated: no time window")),
            remediation=("Diff the feature's prompt against the baseline week's: trim instructions and examples that do not "
                         "change answers, cap retrieved chunks (LLMA003) and history (LLMA010), move static parts to a "
                         "cached prefix (LLMA008), and put a token budget on the prompt in review."),
        ))
    return out


CREEP_RULE = "LLMA018"
