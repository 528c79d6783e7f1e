"""The pools table: each environment's own pool settings."""

from beephost_controller.rows import PoolRow
from beephost_controller.schemas import BackendType
from beephost_controller.tables.database import Database


class PoolTable(Database):
    def put_pool(self, row: PoolRow) -> None:
        columns = {
            "environment": row.environment,
            "type": row.type,
            "size": row.size,
            "config": row.config_json(),
            "updated_at": row.updated_at,
        }
        self._insert("pools", columns, on_conflict="REPLACE")

    def pools(self, environment: str | None = None) -> list[PoolRow]:
        query = "SELECT * FROM pools"
        args: tuple[str, ...] = ()
        if environment is not None:
            query, args = query + " WHERE environment = ?", (environment,)
        found = self._fetch_all(query + " ORDER BY environment, type", args)
        return [
            PoolRow.from_columns(
                r["environment"], r["type"], r["size"], r["config"], r["updated_at"]
            )
            for r in found
        ]

    def delete_pool(self, environment: str, kind: BackendType) -> bool:
        return self._delete_one(
            "DELETE FROM pools WHERE environment = ? AND type = ?", (environment, kind)
        )
