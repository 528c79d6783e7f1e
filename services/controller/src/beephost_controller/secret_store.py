"""``SecretStore``: the operator's stored secrets, one file each, mode 0600.

An egress policy names a secret; the egress proxy puts its value into a header of the
requests to that destination, and nothing else ever reads it: no route returns a value,
only names and when each was set. Files, not the database: a copy of the database
(a backup, a bug report) carries no secret, and the permissions are the file
system's, checked by ``ls -l``. The directory is 0700 and each file 0600, written
whole to a temporary file and renamed, so a reader never sees half a value.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from beephost_controller.schemas import check_name
from beephost_protocol.errors import InvalidRequest, NotFound


@dataclass(frozen=True)
class StoredSecret:
    name: str
    updated_at: float


class SecretStore:
    """Secrets by name in ``directory`` (made 0700 on the first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, name: str, value: str) -> tuple[StoredSecret, bool]:
        """Set a secret's value.

        Returns:
            It, and whether it is new (False: its value was replaced).

        Raises:
            InvalidRequest: The name breaks the grammar (the value is never named).
        """
        path = self._path(name)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # an existing one too: never wider
        created = not path.exists()
        # mkstemp makes it 0600 before a byte is written.
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".put-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(value)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return StoredSecret(name, path.stat().st_mtime), created

    def listing(self) -> list[StoredSecret]:
        """Every secret's name and when it was set, by name; never a value."""
        if not self.directory.is_dir():
            return []
        found = [
            StoredSecret(path.name, path.stat().st_mtime)
            for path in self.directory.iterdir()
            if path.is_file() and not path.name.startswith(".")
        ]
        return sorted(found, key=lambda secret: secret.name)

    def exists(self, name: str) -> bool:
        try:
            return self._path(name).is_file()
        except InvalidRequest:
            return False

    def value(self, name: str) -> str:
        """A secret's value: for the egress proxy's configuration and the log
        redactor only, never for a reply.

        Raises:
            NotFound: No secret by that name.
        """
        try:
            return self._path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(f"no secret {name!r}", {"secret": name}) from None

    def values(self) -> list[str]:
        """Every stored value (the redactor learns them at start-up)."""
        return [self.value(secret.name) for secret in self.listing()]

    def delete(self, name: str) -> None:
        """Forget a secret.

        Raises:
            NotFound: No secret by that name.
        """
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise NotFound(f"no secret {name!r}", {"secret": name}) from None

    def _path(self, name: str) -> Path:
        try:
            check_name(name)
        except ValueError as exc:
            raise InvalidRequest(str(exc), {"secret": name}) from None
        return self.directory / name
