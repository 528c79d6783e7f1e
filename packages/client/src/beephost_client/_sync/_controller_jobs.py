"""The blocking controller client's job calls.

GENERATED from ``_async/_controller_jobs.py`` by ``packages/client/scripts/unasync.py``:
do not edit (part of ControllerClient; the docstrings there describe both).
"""

import logging
import time
from collections.abc import Callable, Iterator

from beephost_client import _controller
from beephost_client._controller_types import Job, JobLogPage, LogLine
from beephost_client._exceptions import ConnectionLost
from beephost_client._transports.controller import Request
from beephost_protocol import LineDecoder, LineTooLong
from beephost_protocol.errors import ExecutionTimeout, InternalError

from ._controller_base import _ControllerBase

logger = logging.getLogger("beephost_client.controller")

_MAX_LOG_LINE = 1 << 20  # the controller cuts log lines at 4000 characters
_STREAM_RETRIES = 5  # a broken log stream is followed again this often


class _JobCalls(_ControllerBase):
    """The controller's jobs (image builds), and following one's log."""

    def _log_stream(self, job_id: str, timeout: float) -> Iterator[LogLine | Job]:
        request = Request("GET", _controller.job_path(job_id) + "/log/stream")
        response = self._transport.handle(request, timeout=timeout)
        try:
            if not 200 <= response.status < 300:
                body = response.read()
                raise _controller.error_of(request, response.status, body)
            decoder = LineDecoder(_MAX_LOG_LINE)
            for piece in response.iter_bytes():
                for line in decoder.feed(piece):
                    if isinstance(line, LineTooLong):
                        raise InternalError("a job log line is longer than 1 MiB")
                    item = _controller.stream_item(line)
                    if item is not None:
                        yield item
        finally:
            response.close()

    # -- jobs -------------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        """Every job the controller remembers.

        Returns:
            The :class:`Job` list.

        Example::

            running = [job for job in controller.jobs() if not job.finished]
        """
        return _controller.many(
            _controller.job, self._json("GET", "/api/v1/jobs"), "jobs"
        )

    def job(self, job_id: str) -> Job:
        """One job.

        Args:
            job_id: The job's id.

        Returns:
            The :class:`Job`.

        Raises:
            NotFound: No job has that id.

        Example::

            job = controller.job(job_id)
            if job.status == "failed":
                print(job.error)
        """
        return _controller.job(self._json("GET", _controller.job_path(job_id)))

    def job_log(self, job_id: str, *, after: int = -1, limit: int = 1000) -> JobLogPage:
        """A page of a job's log.

        Args:
            job_id: The job's id.
            after: Return lines after this position (``next`` of the previous page).
            limit: At most this many lines (the controller allows up to 10000).

        Returns:
            A :class:`JobLogPage` with the job and its lines.

        Raises:
            NotFound: No job has that id.

        Example::

            page = controller.job_log(job_id)
            print("\\n".join(line.line for line in page.lines))
        """
        raw = self._json(
            "GET",
            _controller.job_path(job_id) + "/log",
            query={"after": after, "limit": limit},
        )
        return _controller.job_log_page(raw)

    def wait_job(
        self,
        job_id: str,
        *,
        on_log: Callable[[LogLine], object] | None = None,
        timeout: float = 3600.0,
    ) -> Job:
        """Follow a job's log stream until the job ends.

        A broken stream is followed again, without repeating lines.

        Args:
            job_id: The job's id.
            on_log: Called with each :class:`LogLine` as the job prints it.
            timeout: Seconds to wait for the end.

        Returns:
            The finished :class:`Job`; check ``succeeded`` (a failed job does not
            raise: its ``error`` says why).

        Raises:
            NotFound: No job has that id.
            ExecutionTimeout: The job did not end within ``timeout``.

        Example::

            job = controller.wait_job(env.job_id, on_log=lambda l: print(l.line))
            if not job.succeeded:
                raise SystemExit(job.error)
        """
        deadline = time.monotonic() + timeout
        last, lost = -1, 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ExecutionTimeout(
                    f"job {job_id} did not finish within {timeout:g}s",
                    {"job": job_id, "client_side": True},
                )
            finished: Job | None = None
            try:
                for item in self._log_stream(job_id, remaining):
                    if isinstance(item, Job):
                        finished = item  # the last line: read on to the body's end
                    elif item.seq > last:
                        last = item.seq
                        if on_log is not None:
                            on_log(item)
            except ExecutionTimeout as exc:
                if not exc.data.get("client_side"):
                    raise
                raise ExecutionTimeout(
                    f"job {job_id} did not finish within {timeout:g}s",
                    {"job": job_id, "client_side": True},
                ) from exc
            except ConnectionLost as exc:
                lost += 1
                if lost > _STREAM_RETRIES:
                    raise
                logger.debug(
                    "job %s: log stream broke (%s); following again", job_id, exc
                )
            if finished is not None:
                return finished
            # The stream ended early (the controller caps its length) or broke.
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))
