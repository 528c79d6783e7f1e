"""The jobs table and the job logs."""

from collections.abc import Sequence
from dataclasses import asdict

from beephost_controller.rows import JobRow
from beephost_controller.schemas import JobStatus
from beephost_controller.tables.database import Database


class JobTable(Database):
    def insert_job(self, row: JobRow) -> None:
        self._insert("jobs", asdict(row))  # its fields are the columns

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
        row = self._fetch_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return JobRow(**dict(row)) if row else None

    def jobs(self, status: Sequence[JobStatus] = ()) -> list[JobRow]:
        query = "SELECT * FROM jobs"
        if status:
            query += f" WHERE status IN ({', '.join('?' * len(status))})"
        rows = self._fetch_all(query + " ORDER BY created_at", tuple(status))
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
        rows = self._fetch_all(
            "SELECT seq, line FROM job_logs WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after, limit),
        )
        return [(r["seq"], r["line"]) for r in rows]
