"""The transport contract suite's fixtures, for the contract modules in this folder.

Bound here once rather than in every module: pytest finds a conftest's fixtures by
name, and a subfolder's conftest overrides any of them for its own tests.
"""

from tests.integration.contract.fixtures import (
    backend_urls,
    client,
    combo,
    connect,
    mode,
    server_set,
    transport,
)

__all__ = [
    "backend_urls",
    "client",
    "combo",
    "connect",
    "mode",
    "server_set",
    "transport",
]
