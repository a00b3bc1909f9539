"""Normalization: from stored spans to the tables rules read (llm_calls, retrievals, requests)."""
