"""Storage rows to public models."""

from beephost_controller.schemas import EnvironmentPublic, JobPublic
from beephost_controller.store import EnvironmentRow, JobRow


def environment_public(row: EnvironmentRow) -> EnvironmentPublic:
    return EnvironmentPublic(
        name=row.name,
        python=row.python,
        requirements=row.requirements,
        network=row.network,
        admin=row.admin,
        status=row.status,  # type: ignore[arg-type]  # the store only writes valid states
        image=row.image,
        error=row.error,
        job_id=row.job_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def job_public(row: JobRow) -> JobPublic:
    return JobPublic(
        id=row.id,
        kind=row.kind,
        target=row.target,
        status=row.status,  # type: ignore[arg-type]  # the store only writes valid states
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
