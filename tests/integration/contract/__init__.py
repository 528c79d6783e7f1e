"""Fixtures and helpers of the transport contract suite (tests/integration/test_transport_contract.py)."""
