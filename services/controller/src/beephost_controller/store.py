"""SqliteStore: every SQL statement of the controller, and its schema migrations.

The database is one file on a volume. Migrations are numbered scripts applied in order,
tracked by ``PRAGMA user_version``; each runs in one transaction. Writes from several
threads (API, job runner, reconciler) serialise on one connection guarded by a lock:
SQLite serialises writers anyway and the controller's write rate is tiny.
"""

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from beephost_controller.migrations import MIGRATIONS
from beephost_controller.rows import (
    BackendConfig,
    BackendRow,
    BackendUpdate,
    EnvironmentRow,
    JobRow,
    PoolRow,
    RuntimeRow,
    build_state,
)
from beephost_controller.schemas import BackendType, JobStatus

__all__ = [
    "MIGRATIONS",
    "BackendRow",
    "BackendUpdate",
    "EnvironmentRow",
    "JobRow",
    "PoolRow",
    "RuntimeRow",
    "SqliteStore",
]

#: Environment columns written on insert (``status`` is derived: see rows.build_state).
ENV_FIELDS = (
    "name",
    "python",
    "requirements",
    "network",
    "admin",
    "lock",
    "image",
    "error",
    "job_id",
    "created_at",
    "updated_at",
)


class SqliteStore:
    """All persistent state of the controller.

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

    # -- runtimes -----------------------------------------------------------------------

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
        with self._lock:
            rows = self._db.execute("SELECT * FROM runtimes ORDER BY python").fetchall()
        return [RuntimeRow(**dict(r)) for r in rows]

    # -- environments -------------------------------------------------------------------

    def insert_environment(self, row: EnvironmentRow) -> bool:
        """Insert; False if the name exists (the caller decides what equal means)."""
        with self._tx() as db:
            cursor = db.execute(
                f"INSERT OR IGNORE INTO environments ({', '.join(ENV_FIELDS)}) "
                f"VALUES ({', '.join('?' * len(ENV_FIELDS))})",
                self._env_values(row),
            )
            return cursor.rowcount == 1

    def set_environment_job(self, name: str, job_id: str) -> None:
        """A new build job: the environment's status is now that job's."""
        self._update_environment(name, job_id=job_id, error=None)

    def environment_failed(self, name: str, error: str) -> None:
        self._update_environment(name, error=error)

    def environment_ready(self, name: str, *, lock: str, image: str) -> None:
        self._update_environment(name, lock=lock, image=image, error=None)

    def _update_environment(
        self,
        name: str,
        *,
        job_id: str | None = None,
        lock: str | None = None,
        image: str | None = None,
        error: str | None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE environments SET job_id = COALESCE(?, job_id), "
                "lock = COALESCE(?, lock), image = COALESCE(?, image), error = ?, "
                "updated_at = ? WHERE name = ?",
                (job_id, lock, image, error, time.time(), name),
            )

    def environment(self, name: str) -> EnvironmentRow | None:
        with self._lock:
            row = self._db.execute(
                _ENVIRONMENTS + " WHERE e.name = ?", (name,)
            ).fetchone()
        return self._env(row) if row else None

    def environments(self) -> list[EnvironmentRow]:
        with self._lock:
            rows = self._db.execute(_ENVIRONMENTS + " ORDER BY e.name").fetchall()
        return [self._env(r) for r in rows]

    def delete_environment(self, name: str) -> bool:
        with self._tx() as db:
            return (
                db.execute("DELETE FROM environments WHERE name = ?", (name,)).rowcount
                == 1
            )

    @staticmethod
    def _env_values(row: EnvironmentRow) -> tuple[Any, ...]:
        values = dict(row.__dict__)
        del values["status"]
        values["requirements"] = json.dumps(row.requirements)
        values["network"] = int(row.network)
        values["admin"] = int(row.admin)
        return tuple(values[name] for name in ENV_FIELDS)

    @staticmethod
    def _env(row: sqlite3.Row) -> EnvironmentRow:
        values = dict(row)
        values["requirements"] = json.loads(values["requirements"])
        values["network"] = bool(values["network"])
        values["admin"] = bool(values["admin"])
        values["status"] = build_state(
            values.pop("job_status"), values["image"], values["error"]
        )
        return EnvironmentRow(**values)

    # -- jobs ---------------------------------------------------------------------------

    def insert_job(self, row: JobRow) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.id,
                    row.kind,
                    row.target,
                    row.status,
                    row.error,
                    row.created_at,
                    row.started_at,
                    row.finished_at,
                ),
            )

    def requeue_job(self, job_id: str) -> None:
        """A job a previous controller process left unfinished, queued again."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET status = 'queued' WHERE id = ?", (job_id,))

    def job_running(self, job_id: str, started_at: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'running', started_at = ? WHERE id = ?",
                (started_at, job_id),
            )

    def finish_job(
        self, job_id: str, status: JobStatus, error: str | None, finished_at: float
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                (status, error, finished_at, job_id),
            )

    def job(self, job_id: str) -> JobRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return JobRow(**dict(row)) if row else None

    def jobs(self, status: Sequence[JobStatus] = ()) -> list[JobRow]:
        query = "SELECT * FROM jobs"
        if status:
            query += f" WHERE status IN ({', '.join('?' * len(status))})"
        with self._lock:
            rows = self._db.execute(
                query + " ORDER BY created_at", tuple(status)
            ).fetchall()
        return [JobRow(**dict(r)) for r in rows]

    def append_log(self, job_id: str, lines: Sequence[str]) -> None:
        with self._tx() as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(seq), -1) FROM job_logs WHERE job_id = ?",
                (job_id,),
            ).fetchone()
            db.executemany(
                "INSERT INTO job_logs VALUES (?, ?, ?)",
                [(job_id, last + 1 + i, line) for i, line in enumerate(lines)],
            )

    def log_lines(
        self, job_id: str, after: int = -1, limit: int = 1000
    ) -> list[tuple[int, str]]:
        """Log lines with ``seq > after``, oldest first, at most ``limit``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, line FROM job_logs WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (job_id, after, limit),
            ).fetchall()
        return [(r["seq"], r["line"]) for r in rows]

    # -- backends -----------------------------------------------------------------------

    def insert_backend(self, row: BackendRow) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO backends (id, environment, type, status, reason, container_id, "
                "container_name, token, endpoint, options, restarts, created_at, ready_at, "
                "updated_at, controller_token_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.id,
                    row.environment,
                    row.type,
                    row.status,
                    row.reason,
                    row.container_id,
                    row.container_name,
                    row.token,
                    row.endpoint,
                    json.dumps(row.config.to_json()),
                    row.restarts,
                    row.created_at,
                    row.ready_at,
                    row.updated_at,
                    row.controller_token_sha256,
                ),
            )

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
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM backends WHERE id = ?", (backend_id,)
            ).fetchone()
        return self._backend(row) if row else None

    def backends(self, environment: str | None = None) -> list[BackendRow]:
        with self._lock:
            if environment is None:
                rows = self._db.execute(
                    "SELECT * FROM backends ORDER BY created_at"
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM backends WHERE environment = ? ORDER BY created_at",
                    (environment,),
                ).fetchall()
        return [self._backend(r) for r in rows]

    def backend_by_controller_token(self, sha256: str) -> BackendRow | None:
        """The admin backend holding the controller token with this digest."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM backends WHERE controller_token_sha256 = ?", (sha256,)
            ).fetchone()
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
        with self._tx() as db:
            return (
                db.execute("DELETE FROM backends WHERE id = ?", (backend_id,)).rowcount
                == 1
            )

    # -- pools --------------------------------------------------------------------------

    def put_pool(self, row: PoolRow) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO pools (environment, type, size, config, "
                "updated_at) VALUES (?, ?, ?, ?, ?)",
                (
                    row.environment,
                    row.type,
                    row.size,
                    row.config_json(),
                    row.updated_at,
                ),
            )

    def pools(self, environment: str | None = None) -> list[PoolRow]:
        query = "SELECT * FROM pools"
        args: tuple[str, ...] = ()
        if environment is not None:
            query, args = query + " WHERE environment = ?", (environment,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY environment, type", args)
            found = rows.fetchall()
        return [
            PoolRow.from_columns(
                r["environment"], r["type"], r["size"], r["config"], r["updated_at"]
            )
            for r in found
        ]

    def delete_pool(self, environment: str, kind: BackendType) -> bool:
        with self._tx() as db:
            deleted = db.execute(
                "DELETE FROM pools WHERE environment = ? AND type = ?",
                (environment, kind),
            ).rowcount
        return deleted == 1

    @staticmethod
    def _backend(row: sqlite3.Row) -> BackendRow:
        values = dict(row)
        values["config"] = BackendConfig.from_json(json.loads(values.pop("options")))
        return BackendRow(**values)


#: Environments with their latest job's status (build_state derives theirs from it).
_ENVIRONMENTS = (
    "SELECT e.*, j.status AS job_status FROM environments e "
    "LEFT JOIN jobs j ON j.id = e.job_id"
)
