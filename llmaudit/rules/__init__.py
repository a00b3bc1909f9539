"""Declarative audit rules: load YAML rule files, run their SQL, self-test them on fixtures."""
