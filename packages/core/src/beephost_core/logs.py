"""The pipe and gRPC backends' logging: JSON lines on stdout, plain text on a terminal."""

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging() -> None:
    """Log INFO and above to stdout: JSON lines, unless a person reads a terminal."""
    handler = logging.StreamHandler(sys.stdout)
    if not sys.stdout.isatty():
        handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def log_ready(logger: logging.Logger, started: float, environment: str) -> None:
    """The backends' one "ready" line: time since ``started`` (perf_counter)."""
    logger.info(
        "ready in %.3fs (environment %s)", time.perf_counter() - started, environment
    )
