"""`llmaudit plan`: API or self-host, how many replicas at peak, what can scale to zero, and what the
autoscaler should watch, from the traffic, metrics, prices and replay measurements in the store.

One module per part: traffic (the load, by SQL), anatomy (cost anatomy and batching efficiency), capacity
(replicas at peak), breakeven (API vs self-host), scale_to_zero (workload classes and cold starts), backtest
(the autoscaler simulator), latency_curve (cost vs latency target), classes (model_classes.yaml), document
(the typed output), build (all of it from a store), terminal (the tables `llmaudit plan` prints).
"""
