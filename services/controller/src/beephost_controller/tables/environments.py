"""The environments table; an environment's status comes from its latest job."""

import json
import sqlite3
import time
from dataclasses import asdict
from typing import Any

from beephost_controller.rows import (
    EnvironmentRow,
    allow_list_json,
    allow_list_of,
    build_state,
)
from beephost_controller.tables.database import Database
from beephost_protocol.errors import NotFound

#: Environments with their latest job's status (build_state derives theirs from it).
_ENVIRONMENTS = (
    "SELECT e.*, j.status AS job_status FROM environments e "
    "LEFT JOIN jobs j ON j.id = e.job_id"
)


class EnvironmentTable(Database):
    def insert_environment(self, row: EnvironmentRow) -> bool:
        """Insert; False if the name exists (the caller decides what equal means)."""
        return self._insert(
            "environments", self._env_columns(row), on_conflict="IGNORE"
        )

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
        row = self._fetch_one(_ENVIRONMENTS + " WHERE e.name = ?", (name,))
        return self._env(row) if row else None

    def existing_environment(self, name: str) -> EnvironmentRow:
        """The environment ``name``, which a request names.

        Raises:
            NotFound: There is none by that name.
        """
        row = self.environment(name)
        if row is None:
            raise NotFound(f"no environment {name!r}", {"environment": name})
        return row

    def environments(self) -> list[EnvironmentRow]:
        rows = self._fetch_all(_ENVIRONMENTS + " ORDER BY e.name")
        return [self._env(r) for r in rows]

    def environment_images(self) -> set[str]:
        """The images the environments name (their tags)."""
        return {row.image for row in self.environments() if row.image is not None}

    def delete_environment(self, name: str) -> bool:
        return self._delete_one("DELETE FROM environments WHERE name = ?", (name,))

    @staticmethod
    def _env_columns(row: EnvironmentRow) -> dict[str, Any]:
        """The row's fields as columns; ``status`` is derived (rows.build_state),
        never written."""
        values = asdict(row)
        del values["status"]
        values["requirements"] = json.dumps(row.requirements)
        values["network"] = int(row.network)
        values["admin"] = int(row.admin)
        del values["egress_allow"]
        allow = allow_list_json(row.egress_allow)
        values["egress"] = None if allow is None else json.dumps(allow)
        return values

    @staticmethod
    def _env(row: sqlite3.Row) -> EnvironmentRow:
        values = dict(row)
        values["requirements"] = json.loads(values["requirements"])
        values["network"] = bool(values["network"])
        values["admin"] = bool(values["admin"])
        egress = values.pop("egress")
        values["egress_allow"] = allow_list_of(egress and json.loads(egress))
        values["status"] = build_state(
            values.pop("job_status"), values["image"], values["error"]
        )
        return EnvironmentRow(**values)
