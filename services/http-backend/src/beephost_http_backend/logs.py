"""Logging of the service: JSON lines on stdout, written in batches by a thread.

One line per request is the service's access log, so its cost is per-request cost. The
event loop only appends the record to a buffer; a writer thread formats and writes the
buffer every ``interval`` seconds, or at once for warnings and errors. So the loop never
blocks on a slow log reader (a full pipe), never pays for JSON formatting, and never
wakes a thread per line (measured: a queue hand-off per record cost more than the
formatting it saved).
"""

import json
import logging
import sys
import threading
from typing import Any, NamedTuple, TextIO

from beephost_protocol import jsoncodec

ACCESS_LOGGER = "beephost_http_backend.access"
#: Encodes a line as ``json.dumps(entry, ensure_ascii=False, default=str)`` does,
#: without building an encoder per call (which dumps does when given options).
_encode_line = jsoncodec.encoder(ensure_ascii=False, default=str)


def _head(created: float, level: str, logger: str, msg: str) -> dict[str, Any]:
    """The fields every line starts with, in this order."""
    return {"ts": round(created, 3), "level": level, "logger": logger, "msg": msg}


class AccessEntry(NamedTuple):
    """One request's access line, as the request gate has it: a tuple, not a
    ``LogRecord`` (making, filtering and dispatching a record per request cost more
    than the request's own work in the server)."""

    created: float
    method: str
    path: str
    route: str
    status: int
    error: str | None
    ms: float
    bytes: int
    client: str | None

    def line(self) -> str:
        """The line JsonFormatter writes for the same request's record."""
        entry = _head(
            self.created,
            "info",
            ACCESS_LOGGER,
            f"{self.method} {self.path} {self.status}",
        )
        entry.update(
            method=self.method,
            path=self.path,
            route=self.route,
            status=self.status,
            error=self.error,
            ms=self.ms,
            bytes=self.bytes,
            client=self.client,
        )
        return _encode_line(entry)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; a record's ``http`` dict is merged in, flat."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _head(
            record.created, record.levelname.lower(), record.name, record.getMessage()
        )
        http = getattr(record, "http", None)
        if isinstance(http, dict):
            entry.update(http)
        if record.exc_info:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return _encode_line(entry)


class BatchingHandler(logging.Handler):
    """Buffers records in the caller; formats and writes them from a thread, in batches."""

    def __init__(
        self, stream: TextIO, interval: float = 0.05, max_buffered: int = 100_000
    ) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self.max_buffered = max_buffered
        self.dropped = 0
        self._lines: list[logging.LogRecord | AccessEntry] = []
        self._writing = threading.Lock()  # one batch at a time, in order
        self._wake = threading.Event()
        self._closed = False
        self._writer = threading.Thread(
            target=self._run, name="beephost-log-writer", daemon=True
        )
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        # Formatting waits for the writer thread; the message and the traceback are
        # fixed now, as they may refer to objects that change or go away.
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if len(self._lines) >= self.max_buffered:
            self.dropped += 1  # the writer is stuck (stdout not read): bound the memory
            return
        self._lines.append(record)
        if record.levelno >= logging.WARNING:
            self._wake.set()

    def access(self, entry: AccessEntry) -> None:
        """Buffer one access line: the request gate's path, past the logging module's
        (the access logger's level is still checked by the caller; its own handlers
        and filters, if anyone added some, are not consulted)."""
        assert self.lock is not None
        with self.lock:
            if len(self._lines) >= self.max_buffered:
                self.dropped += 1
                return
            self._lines.append(entry)

    def flush(self) -> None:
        self._flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        if not self._lines or self.lock is None:
            return
        with self._writing:
            with self.lock:  # emit() runs under it: no append lands in a written list
                records, self._lines = self._lines, []
                dropped, self.dropped = self.dropped, 0
            lines = []
            for record in records:
                if isinstance(record, AccessEntry):
                    lines.append(record.line() + "\n")
                    continue
                try:
                    lines.append(self.format(record) + "\n")
                except Exception:
                    self.handleError(record)
            if dropped:
                lines.append(
                    json.dumps(
                        {"level": "warning", "msg": f"{dropped} log lines dropped"}
                    )
                    + "\n"
                )
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stdout is gone; nothing sensible is left to do with logs

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join(timeout=2)
        self._flush()
        super().close()


#: The handler access lines go straight to (JSON on stdout: ``configure_logging``'s);
#: None where logging was set up otherwise, and the access logger is used.
_access_handler: BatchingHandler | None = None
access_log = logging.getLogger(ACCESS_LOGGER)


def configure_logging(stream: TextIO | None = None) -> BatchingHandler:
    """Route every logger to stdout (JSON unless it is a TTY); returns the handler.

    Close the handler at exit (``logging.shutdown()`` does) to write what is left.
    """
    stream = stream or sys.stdout
    # No caller lookup (a stack walk per record) and no thread or process fields: the
    # lines do not use them (logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchingHandler(stream)
    if not stream.isatty():
        handler.setFormatter(JsonFormatter())
        global _access_handler  # one per process, set once at start
        _access_handler = handler
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    return handler


def log_access(entry: AccessEntry) -> None:
    """Log one request's access line, if the access logger's level lets it through."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    if _access_handler is not None:
        _access_handler.access(entry)
        return
    http = entry._asdict()
    del http["created"]
    access_log.info(
        "%s %s %d", entry.method, entry.path, entry.status, extra={"http": http}
    )
