"""Replay: rebuild a finding's traffic as a workload and measure it against a real server."""
