"""Blocking transports, generated from ``_transports/_async`` by scripts/unasync.py."""
