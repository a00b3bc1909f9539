"""Billing formats, all read into the FOCUS-shaped `billing` table."""

from llmaudit.ingest.billing import anthropic, cur, focus, openai

# Most specific first, as detection tries them: a costs page before a usage page of the same API.
FORMATS = [focus.CSV, focus.PARQUET, cur.FORMAT, openai.COSTS, openai.USAGE, anthropic.COST, anthropic.USAGE]
