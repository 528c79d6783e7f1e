"""The batching log handler: lines reach the stream from its writer thread, in order."""

import io
import json
import logging
import time

from beephost_http_backend.logs import BatchingHandler, JsonFormatter


def test_lines_are_written_in_batches_and_on_close() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=0.05)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.http.batching")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(500):
            logger.info("line %d", i)
        deadline = time.monotonic() + 5
        while stream.getvalue().count("\n") < 500 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [json.loads(line)["msg"] for line in stream.getvalue().splitlines()] == [
            f"line {i}" for i in range(500)
        ]
        logger.info("last")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert stream.getvalue().splitlines()[-1].endswith('"msg": "last"}')


def test_warnings_are_written_at_once() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60)  # only a warning wakes the writer
    try:
        handler.handle(
            logging.makeLogRecord({"msg": "careful", "levelno": logging.WARNING})
        )
        deadline = time.monotonic() + 5
        while "careful" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "careful" in stream.getvalue()
    finally:
        handler.close()


def test_a_stuck_writer_drops_lines_instead_of_growing() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60, max_buffered=10)
    try:
        for i in range(25):
            handler.handle(
                logging.makeLogRecord({"msg": f"m{i}", "levelno": logging.INFO})
            )
        assert handler.dropped == 15
        handler.flush()
        lines = stream.getvalue().splitlines()
        assert len(lines) == 11
        assert json.loads(lines[-1]) == {
            "level": "warning",
            "msg": "15 log lines dropped",
        }
    finally:
        handler.close()
