"""The backends table, and a pool member's claim (one compare-and-set)."""

import json
import sqlite3
import time
from dataclasses import fields

from beephost_controller.rows import BackendConfig, BackendRow, BackendUpdate
from beephost_controller.tables.database import Database


class BackendTable(Database):
    def insert_backend(self, row: BackendRow) -> None:
        # Its fields are the columns, but config: the options column, as JSON (the
        # reader, _backend, undoes this).
        columns: dict[str, object] = {
            item.name: getattr(row, item.name)
            for item in fields(row)
            if item.name != "config"
        }
        columns["options"] = json.dumps(row.config.to_json())
        self._insert("backends", columns)

    def update_backend(self, backend_id: str, update: BackendUpdate) -> None:
        changes = {**update.columns(), "updated_at": time.time()}
        # Column names come from BackendUpdate's fields, never from a caller.
        columns = ", ".join(f"{key} = ?" for key in changes)
        with self._tx() as db:
            db.execute(
                f"UPDATE backends SET {columns} WHERE id = ?",
                (*changes.values(), backend_id),
            )

    def backend(self, backend_id: str) -> BackendRow | None:
        row = self._fetch_one("SELECT * FROM backends WHERE id = ?", (backend_id,))
        return self._backend(row) if row else None

    def backends(self, environment: str | None = None) -> list[BackendRow]:
        if environment is None:
            rows = self._fetch_all("SELECT * FROM backends ORDER BY created_at")
        else:
            rows = self._fetch_all(
                "SELECT * FROM backends WHERE environment = ? ORDER BY created_at",
                (environment,),
            )
        return [self._backend(r) for r in rows]

    def backend_by_controller_token(self, sha256: str) -> BackendRow | None:
        """The admin backend holding the controller token with this digest."""
        row = self._fetch_one(
            "SELECT * FROM backends WHERE controller_token_sha256 = ?", (sha256,)
        )
        return self._backend(row) if row else None

    def claim_backend(self, backend_id: str, config: BackendConfig) -> bool:
        """Hand a pooled backend out: write its new config if it is still pooled.

        Returns:
            Whether this call claimed it (one compare-and-set in SQL: of concurrent
            claims of one backend, exactly one wins, whatever thread or process).
        """
        with self._tx() as db:
            claimed = db.execute(
                "UPDATE backends SET options = ?, updated_at = ? "
                "WHERE id = ? AND json_extract(options, '$.pooled') = 1",
                (json.dumps(config.to_json()), time.time(), backend_id),
            ).rowcount
        return claimed == 1

    def delete_backend(self, backend_id: str) -> bool:
        return self._delete_one("DELETE FROM backends WHERE id = ?", (backend_id,))

    @staticmethod
    def _backend(row: sqlite3.Row) -> BackendRow:
        values = dict(row)
        values["config"] = BackendConfig.from_json(json.loads(values.pop("options")))
        return BackendRow(**values)
