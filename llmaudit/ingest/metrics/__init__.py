"""Metric formats, all read into `metric_samples` (one row per sample)."""

from llmaudit.ingest.metrics import nvidia_smi, prom_api, prom_text

# Most specific first, as detection tries them: prom-text's sniffer is the loosest.
FORMATS = [nvidia_smi.FORMAT, prom_api.FORMAT, prom_text.FORMAT]
