"""The asyncio client: the source the sync client is generated from (scripts/unasync.py)."""
