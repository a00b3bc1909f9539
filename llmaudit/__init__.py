"""llmaudit: find and price the waste in LLM systems from traces, bills and GPU metrics."""

__version__ = "0.1.0"
