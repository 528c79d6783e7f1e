"""The blocking client, generated from ``_async`` by scripts/unasync.py (sugar excepted)."""
