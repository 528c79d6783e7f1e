"""Jobs: builds and inits, with their logs (poll with `after`, or stream NDJSON)."""

import json
import time
from collections.abc import Iterator

from fastapi import Query
from fastapi.responses import StreamingResponse

from beephost_controller.deps import ServiceDep, StoreDep
from beephost_controller.routes import resource_router
from beephost_controller.schemas.jobs import JobLogPage, JobPublic, LogLine
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import NotFound

router = resource_router("/api/v1/jobs", "jobs")

_POLL = 0.2
_MAX_SEQ = (1 << 63) - 1
_STREAM_LIMIT = 3600.0  # a log stream ends after an hour even if the job does not


def _job(store: SqliteStore, job_id: str) -> JobPublic:
    row = store.job(job_id)
    if row is None:
        raise NotFound(f"no job {job_id!r}", {"job": job_id})
    return JobPublic.model_validate(row, from_attributes=True)


@router.get("")
def list_jobs(store: StoreDep) -> list[JobPublic]:
    return [JobPublic.model_validate(row, from_attributes=True) for row in store.jobs()]


@router.get("/{job_id}")
def get_job(job_id: str, store: StoreDep) -> JobPublic:
    return _job(store, job_id)


@router.get("/{job_id}/log")
def get_job_log(
    job_id: str,
    store: StoreDep,
    # SQLite's integers are 64-bit: a larger `after` is refused, not a crash.
    after: int = Query(-1, ge=-1, le=_MAX_SEQ),
    limit: int = Query(1000, ge=1, le=10000),
) -> JobLogPage:
    """Log lines after `after`, oldest first."""
    job = _job(store, job_id)
    lines = [
        LogLine(seq=seq, line=line)
        for seq, line in store.log_lines(job_id, after, limit)
    ]
    return JobLogPage(job=job, lines=lines, next=lines[-1].seq if lines else after)


@router.get(
    "/{job_id}/log/stream", responses={200: {"content": {"application/x-ndjson": {}}}}
)
def stream_job_log(
    job_id: str, store: StoreDep, service: ServiceDep
) -> StreamingResponse:
    """NDJSON: `{"seq", "line"}` as the job prints, then `{"job": ...}` when it ends."""
    _job(store, job_id)
    changes = service.jobs.changes

    def lines() -> Iterator[bytes]:
        started = time.monotonic()
        after, deadline = -1, started + _STREAM_LIMIT
        while time.monotonic() < deadline:
            seen = changes.count  # before reading: a change after it ends the wait
            for seq, line in store.log_lines(job_id, after):
                after = seq
                yield json.dumps({"seq": seq, "line": line}).encode() + b"\n"
            job = _job(store, job_id)
            if job.status in ("succeeded", "failed") and not store.log_lines(
                job_id, after, 1
            ):
                yield json.dumps({"job": job.model_dump()}).encode() + b"\n"
                return
            changes.wait(seen, _POLL)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
