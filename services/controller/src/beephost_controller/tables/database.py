"""The database file: its one connection, transactions and numbered migrations.

The database is one file on a volume. Migrations are numbered scripts applied in order,
tracked by ``PRAGMA user_version``; each runs in one transaction. Writes from several
threads (API, job runner, reconciler) serialise on one connection guarded by a lock:
SQLite serialises writers anyway and the controller's write rate is tiny.
"""

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from beephost_controller.migrations import MIGRATIONS


class Database:
    """The connection every table's statements run on.

    Args:
        path: The database file (created with its directory); ``:memory:`` for tests.
    """

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA foreign_keys = ON")
        if str(path) != ":memory:":
            self._db.execute(
                "PRAGMA journal_mode = WAL"
            )  # readers never block the writer
        self._db.execute("PRAGMA synchronous = NORMAL")
        self.migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # What every table's inserts, reads and deletes share: a read holds the lock
    # (threads share the one connection); an insert or a delete runs in a transaction
    # and says if a row was written or went.

    def _insert(
        self,
        table: str,
        columns: Mapping[str, object],
        *,
        on_conflict: Literal["ABORT", "REPLACE", "IGNORE"] = "ABORT",
    ) -> bool:
        """Insert one row, its values by column name; whether a row was written
        (``IGNORE`` writes none when the key exists). The table and column names come
        from the tables' code, never from a caller."""
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        with self._tx() as db:
            cursor = db.execute(
                f"INSERT OR {on_conflict} INTO {table} ({names}) VALUES ({marks})",
                tuple(columns.values()),
            )
            return cursor.rowcount == 1

    def _fetch_one(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
        return row

    def _fetch_all(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _delete_one(self, sql: str, params: Sequence[object]) -> bool:
        """Run a DELETE of one row; whether there was that row."""
        with self._tx() as db:
            return db.execute(sql, params).rowcount == 1

    @property
    def schema_version(self) -> int:
        with self._lock:
            version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
            return version

    def migrate(self) -> None:
        """Apply the migrations the file has not seen, each in its own transaction."""
        while (current := self.schema_version) < len(MIGRATIONS):
            with self._tx() as db:
                for statement in MIGRATIONS[current].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {current + 1}")
