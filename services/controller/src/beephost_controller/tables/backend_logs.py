"""The backend_logs table: the tail of a backend's logs, kept when it was stopped."""

from beephost_controller.tables.database import Database


class BackendLogTable(Database):
    def keep_logs(self, backend_id: str, text: str, kept_at: float) -> None:
        """Keep ``text`` (redacted already) as the logs of the backend's last
        container; replaces what an earlier stop kept. Gone with the backend's row."""
        columns = {"backend_id": backend_id, "text": text, "kept_at": kept_at}
        self._insert("backend_logs", columns, on_conflict="REPLACE")

    def kept_logs(self, backend_id: str) -> tuple[str, float] | None:
        """The logs kept at the backend's stop, and when; None if none were."""
        row = self._fetch_one(
            "SELECT text, kept_at FROM backend_logs WHERE backend_id = ?", (backend_id,)
        )
        return None if row is None else (str(row["text"]), float(row["kept_at"]))
