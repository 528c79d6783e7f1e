"""Build jobs and their logs: reply models."""

from pydantic import Field

from beephost_controller.schemas import ApiModel, JobStatus


class JobPublic(ApiModel):
    id: str
    kind: str
    target: str
    status: JobStatus
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


class LogLine(ApiModel):
    seq: int
    line: str


class JobLogPage(ApiModel):
    job: JobPublic
    lines: list[LogLine]
    next: int = Field(description="Pass as `after` to get the following lines.")
