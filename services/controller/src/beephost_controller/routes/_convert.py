"""Storage rows to public models."""

from beephost_controller.schemas import (
    BackendLimits,
    BackendOptions,
    BackendPublic,
    EnvironmentPublic,
    JobPublic,
)
from beephost_controller.store import BackendRow, EnvironmentRow, JobRow


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


def backend_public(row: BackendRow, *, token: str | None = None) -> BackendPublic:
    options = row.options
    return BackendPublic(
        id=row.id,
        environment=row.environment,
        type=row.type,  # type: ignore[arg-type]  # the store only writes valid types
        status=row.status,  # type: ignore[arg-type]
        reason=row.reason,
        endpoint=row.endpoint,
        token=token,
        container_id=row.container_id,
        created_at=row.created_at,
        ready_at=row.ready_at,
        restarts=row.restarts,
        exit_code=row.exit_code,
        last_exit=row.last_exit,
        limits=BackendLimits(**options.get("limits", {})),
        options=BackendOptions(
            **{k: options[k] for k in BackendOptions.model_fields if k in options}
        ),
        admin=row.controller_token_sha256 is not None,
    )
