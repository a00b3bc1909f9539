"""What each billing row pays for: the view `billing_spend`, which reconciliation, the report and rule
LLMA015 read instead of deciding it each on its own.

* charge_kind: FOCUS ChargeCategory as the audit uses it. `usage`; `purchase` (commitments bought up
  front or by the month, and other one-time buys: not usage, never compared with traces);
  `unused_commitment` (the share of a commitment nothing used: FOCUS writes it as Usage with
  CommitmentDiscountStatus Unused); `tax`, `credit`, `adjustment`. Sources without a category are usage.
* model_api: the charge pays for model calls. It names a model or token type, is metered in tokens,
  comes from a model provider's own report, or is in FOCUS's "AI and Machine Learning" service category
  without being infrastructure (the VMs, disks, load balancers and traffic of an ML workspace are
  billed in that category too).
* committed: the charge is covered by (or buys) a commitment discount.
* amortized_cost: EffectiveCost, else BilledCost where a source gives no EffectiveCost. Usage covered
  by a prepayment is billed 0 and carries its share of the prepayment in EffectiveCost, while the
  purchase is billed in full with EffectiveCost 0: summing amortized_cost counts the prepaid money
  once, spread over the usage that drew it down, which is what traced calls can be compared with.
  (On-demand charges cost the same either way; AWS CUR rows carry AWS's amortized cost, so a Savings
  Plan's covered usage and its negation net to the plan's rate, not to 0.)
"""

from __future__ import annotations

import duckdb

# Model providers' own reports: every row pays for model calls.
LLM_BILLING_FORMATS = ("openai-costs-json", "openai-usage-json", "anthropic-cost-json", "anthropic-usage-json")

# Words that mark a charge as infrastructure, searched in its description, meter and resource type
# (whole words, lower case).
INFRASTRUCTURE_WORDS = (
    "virtual machine", "virtual machines", "vm", "vms", "disk", "disks", "load balancer", "load balancing",
    "ip address", "ip addresses", "bandwidth", "data transfer", "data processed", "storage", "snapshot",
    "snapshots", "instance", "instances", "node", "nodes", "cluster", "network", "networking",
)
# A unit of tokens ("Tokens", "1000000 Tokens", "1K tokens"), not token-hours of cache storage.
TOKEN_UNIT = r"(^|[^a-z])tokens?($|[^a-z-])"

# FOCUS charge categories that are their own kind; every other charge (Usage, none) is usage.
NON_USAGE_CATEGORIES = ("purchase", "tax", "credit", "adjustment")

_VIEW = """
CREATE OR REPLACE VIEW billing_spend AS
SELECT b.*,
       CASE WHEN lower(b.charge_category) IN ({kinds}) THEN lower(b.charge_category)
            WHEN lower(b.commitment_discount_status) = 'unused' THEN 'unused_commitment'
            ELSE 'usage' END AS charge_kind,
       coalesce(b.model IS NOT NULL OR b.token_type IS NOT NULL OR b.source_format IN ({formats})
        OR regexp_matches(lower(coalesce(b.consumed_unit, '') || ' | ' || coalesce(b.pricing_unit, '')), '{token_unit}')
        OR (b.service_category = 'AI and Machine Learning'
            AND NOT regexp_matches(lower(concat_ws(' | ', b.charge_description, b.sku_meter, b.resource_type)),
                                   '{infrastructure}')), FALSE) AS model_api,
       coalesce(b.commitment_discount_id IS NOT NULL OR lower(b.pricing_category) = 'committed', FALSE) AS committed,
       coalesce(b.effective_cost, b.billed_cost) AS amortized_cost,
       -- tokens the charge counts (NULL when it is not metered in tokens)
       CASE WHEN b.token_type IS NOT NULL OR regexp_matches(lower(coalesce(b.consumed_unit, '')), '{token_unit}')
            THEN b.consumed_quantity END AS billed_tokens
FROM billing b
"""


def _quoted(values) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def create_billing_spend(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the view `billing_spend`: every billing row with charge_kind, model_api, committed,
    amortized_cost and billed_tokens."""
    words = "|".join(w.replace(" ", r"\s+") for w in INFRASTRUCTURE_WORDS)
    con.execute(_VIEW.format(kinds=_quoted(NON_USAGE_CATEGORIES), formats=_quoted(LLM_BILLING_FORMATS), token_unit=TOKEN_UNIT,
                             infrastructure=f"(^|[^a-z])({words})($|[^a-z])"))
