"""Readers: turn files of traces, bills and metrics into rows of the store."""
