"""Asyncio transports: the sources of ``_transports/_sync`` (scripts/unasync.py)."""
