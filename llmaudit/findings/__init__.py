from llmaudit.findings.model import Finding, Scope, Waste, SEVERITIES, severity_rank

__all__ = ["Finding", "Scope", "Waste", "SEVERITIES", "severity_rank"]
