"""What an upload needs of its workspace: the quota it counts its bytes against."""

from typing import Protocol


class QuotaLedger(Protocol):
    """A workspace's quota, as an ``Upload`` sees it (``Workspace`` is one).

    Its own module, so that ``transfers`` need not import ``workspace``, which builds
    the uploads: the two modules would import each other.
    """

    #: The most bytes the workspace's regular files may hold together; 0: no limit.
    quota: int

    def _reserve(self, used_before: int, adding: int) -> None:
        """Count ``adding`` more bytes, or raise ``QuotaExceeded``."""

    def _release(self, amount: int) -> None:
        """Give back ``amount`` bytes counted by ``_reserve``."""
