"""Long-running jobs (image builds) on worker threads, with state and logs in the store.

No request ever waits for a job: routes submit one and return its id; clients poll the
job or stream its log. A controller that dies mid-job leaves rows in ``queued`` or
``running``; :meth:`JobRunner.recover` resumes them (builds are content-addressed, so
running one again is safe) or marks them failed when no resumer is registered.
"""

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from beephost_controller.rows import JobKind, JobRow
from beephost_controller.schemas import JobStatus
from beephost_controller.store import SqliteStore

logger = logging.getLogger(__name__)

_MAX_LOG_LINE = 4000


def _unchanged(text: str) -> str:
    return text


def _nothing() -> None:
    pass


class JobChanges:
    """A counter of job changes (lines logged, jobs finished) that log streams wait on,
    so a line or an end reaches them at once instead of at their next poll."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    @property
    def count(self) -> int:
        """Read before looking at the store; wait() returns once it moved past."""
        return self._count

    def wait(self, seen: int, timeout: float) -> None:
        """Block until a change after ``seen`` (or ``timeout``: the store is the
        truth, and another process's changes are only seen by polling it)."""
        with self._changed:
            self._changed.wait_for(lambda: self._count != seen, timeout)

    def notify(self) -> None:
        with self._changed:
            self._count += 1
            self._changed.notify_all()


class JobLog:
    """What a job prints: appended to the store line by line, so it streams live.

    Every line passes ``redact`` first (redact.Redactor.redact): a job log is readable
    by admin backends' code, so no secret may reach it.
    """

    def __init__(
        self,
        store: SqliteStore,
        job_id: str,
        redact: Callable[[str], str] = _unchanged,
        on_append: Callable[[], None] = _nothing,
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._redact = redact
        self._on_append = on_append

    def __call__(self, text: str) -> None:
        text = self._redact(text)
        lines = [line[:_MAX_LOG_LINE] for line in text.splitlines() if line.strip()]
        if lines:
            self._store.append_log(self._job_id, lines)
            self._on_append()


JobFunction = Callable[[JobLog], None]
Resumer = Callable[[JobRow], JobFunction | None]


class JobRunner:
    """Runs job functions on a small thread pool and records their outcome.

    Args:
        store: Where job rows and log lines live.
        workers: Concurrent jobs (image builds are CPU- and disk-heavy).
        on_finish: Called with the finished row (metrics).
        redact: Applied to every log line and error a job records.
    """

    def __init__(
        self,
        store: SqliteStore,
        workers: int = 2,
        on_finish: Callable[[JobRow], None] | None = None,
        redact: Callable[[str], str] = _unchanged,
    ) -> None:
        self._store = store
        self._redact = redact
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="beephost-job"
        )
        self._on_finish = on_finish
        self.changes = JobChanges()
        self._idle = threading.Condition()
        self._active = 0
        self._stopping = False
        # Each busy queue's waiting jobs; a queue is here while one of its jobs runs.
        self._queues: dict[str, deque[tuple[str, JobFunction]]] = {}

    def submit(
        self,
        kind: JobKind,
        target: str,
        function: JobFunction,
        link: Callable[[JobRow], None] | None = None,
        *,
        queue: str | None = None,
    ) -> JobRow:
        """Queue ``function`` as a new job and return its row (status ``queued``).

        ``link`` is called with the row before the job can run (an environment points
        at its build job: its status is the job's from then on). Jobs of one ``queue``
        run one at a time, in the order submitted, and one waiting for its turn holds
        no worker (installs into one backend: others' jobs are not held up).
        """
        row = JobRow(
            id="job-" + secrets.token_hex(6), kind=kind, target=target, status="queued"
        )
        self._store.insert_job(row)
        if link is not None:
            link(row)
        self._start(row, function, queue)
        return row

    def recover(self, resumer: Resumer) -> list[JobRow]:
        """Resume or fail the jobs a previous controller process left unfinished."""
        recovered = []
        for row in self._store.jobs(status=("queued", "running")):
            function = resumer(row)
            if function is None:
                self._finish(
                    row.id, "failed", "the controller restarted during the job"
                )
            else:
                self.log(row.id)("controller restarted: resuming the job")
                self._store.requeue_job(row.id)
                self._start(row, function)
            recovered.append(row)
        return recovered

    def log(self, job_id: str) -> JobLog:
        """The (redacting) log of a job."""
        return JobLog(self._store, job_id, self._redact, self.changes.notify)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job runs (tests and graceful shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def shutdown(self) -> None:
        # Running builds are abandoned, not awaited: recover() resumes them next start.
        self._stopping = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start(
        self, row: JobRow, function: JobFunction, queue: str | None = None
    ) -> None:
        with self._idle:
            self._active += 1
            if queue is not None:
                waiting = self._queues.get(queue)
                if waiting is not None:  # its turn comes when the one before ends
                    waiting.append((row.id, function))
                    return
                self._queues[queue] = deque()
        self._submit(row.id, function, queue)

    def _submit(self, job_id: str, function: JobFunction, queue: str | None) -> None:
        try:
            self._pool.submit(self._run, job_id, function, queue)
        except RuntimeError:
            # The pool is shut down: the row stays queued, for recover() next start.
            self._ended()

    def _next_of(self, queue: str) -> None:
        with self._idle:
            waiting = self._queues[queue]
            if not waiting:
                del self._queues[queue]
                return
            job_id, function = waiting.popleft()
        self._submit(job_id, function, queue)

    def _ended(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def _run(self, job_id: str, function: JobFunction, queue: str | None) -> None:
        log = self.log(job_id)
        self._store.job_running(job_id, time.time())
        try:
            function(log)
        except Exception as exc:
            if self._stopping:
                # The store is closing under us: the row stays "running" and the next
                # controller process resumes the job (recover()).
                logger.info(
                    "job %s abandoned at shutdown; it resumes on the next start", job_id
                )
                return
            logger.warning("job %s failed: %s", job_id, exc)
            log(f"failed: {exc}")
            self._finish(job_id, "failed", str(exc))
        else:
            self._finish(job_id, "succeeded", None)
        finally:
            if queue is not None and not self._stopping:
                self._next_of(queue)
            self._ended()

    def _finish(self, job_id: str, status: JobStatus, error: str | None) -> None:
        if error is not None:
            error = self._redact(error)
        self._store.finish_job(job_id, status, error, time.time())
        self.changes.notify()
        row = self._store.job(job_id)
        if row is not None and self._on_finish is not None:
            self._on_finish(row)
