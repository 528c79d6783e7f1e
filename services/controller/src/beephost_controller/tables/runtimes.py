"""The runtimes table: the CPython base images initialised."""

import time
from dataclasses import asdict

from beephost_controller.rows import RuntimeRow
from beephost_controller.tables.database import Database


class RuntimeTable(Database):
    def put_runtime(self, row: RuntimeRow) -> None:
        # Its fields are the columns; updated_at is the write's time.
        columns = {**asdict(row), "updated_at": time.time()}
        self._insert("runtimes", columns, on_conflict="REPLACE")

    def runtimes(self) -> list[RuntimeRow]:
        rows = self._fetch_all("SELECT * FROM runtimes ORDER BY python")
        return [RuntimeRow(**dict(r)) for r in rows]
