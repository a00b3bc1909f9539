"""Prices: the dated token and GPU-hour catalog, pricing of model calls, and reconciliation with bills."""

from llmaudit.pricing.catalog import Catalog, PriceEntry, PriceError, load_catalog

__all__ = ["Catalog", "PriceEntry", "PriceError", "load_catalog"]
