"""The runtimes table: the CPython base images initialised."""

import time

from beephost_controller.rows import RuntimeRow
from beephost_controller.tables.database import Database


class RuntimeTable(Database):
    def put_runtime(self, row: RuntimeRow) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO runtimes VALUES (?, ?, ?, ?, ?, ?)",
                (
                    row.python,
                    row.image,
                    row.image_id,
                    row.version,
                    row.source,
                    time.time(),
                ),
            )

    def runtimes(self) -> list[RuntimeRow]:
        rows = self._fetch_all("SELECT * FROM runtimes ORDER BY python")
        return [RuntimeRow(**dict(r)) for r in rows]
