"""The JSON log formatter: one flat object per record."""

import io
import json
import logging
import sys

import pytest

from beephost_http_backend import logs
from beephost_http_backend.logs import (
    ACCESS_LOGGER,
    AccessEntry,
    BatchingHandler,
    JsonFormatter,
    log_access,
)


def _record(**extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {
            "name": "beephost_http_backend.access",
            "levelno": 20,
            "levelname": "INFO",
            "msg": "%s %s %d",
            "args": ("GET", "/x", 200),
            **extra,
        }
    )
    return record


def test_access_line_is_flat_json() -> None:
    http = {"method": "GET", "path": "/x", "status": 200, "error": None, "ms": 1.5}
    line = json.loads(JsonFormatter().format(_record(http=http)))
    assert line["msg"] == "GET /x 200"
    assert line["level"] == "info"
    assert line["logger"] == "beephost_http_backend.access"
    assert {k: line[k] for k in http} == http


def test_tracebacks_go_to_exc() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        info = sys.exc_info()
    line = json.loads(
        JsonFormatter().format(_record(exc_info=info, msg="failed", args=()))
    )
    assert line["msg"] == "failed"
    assert "ValueError: bad" in line["exc"]


def test_unicode_and_odd_values() -> None:
    line = JsonFormatter().format(_record(msg="ü %s", args=(object,)))
    assert json.loads(line)["msg"].startswith("ü <class")
    assert "ü" in line  # not escaped: logs stay readable


ENTRIES = [
    AccessEntry(
        1795745000.12345,
        "POST",
        "/api/eval",
        "/api/eval",
        200,
        None,
        0.5,
        38,
        "127.0.0.1",
    ),
    AccessEntry(
        1.0,
        "GET",
        '/api/files/caf\u00e9 "q"',
        "/api/files/{path:path}",
        404,
        "not_found",
        12.25,
        0,
        None,
    ),
]


@pytest.mark.parametrize("entry", ENTRIES)
def test_an_access_entry_is_the_line_its_record_made(entry: AccessEntry) -> None:
    http = entry._asdict()
    created = http.pop("created")
    record = _record(args=(entry.method, entry.path, entry.status), http=http)
    record.created = created
    assert entry.line() == JsonFormatter().format(record)


def test_access_lines_keep_their_place_among_records() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval=60)
    handler.setFormatter(JsonFormatter())
    handler.handle(_record(msg="before", args=()))
    handler.access(ENTRIES[0])
    handler.handle(_record(msg="after", args=()))
    handler.close()
    messages = [json.loads(line)["msg"] for line in stream.getvalue().splitlines()]
    assert messages == ["before", "POST /api/eval 200", "after"]


def test_without_the_json_handler_access_lines_go_through_the_access_logger(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "_access_handler", None)  # logging set up otherwise
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        log_access(ENTRIES[1])
    (record,) = caplog.records
    assert record.getMessage() == 'GET /api/files/caf\u00e9 "q" 404'
    assert record.http["error"] == "not_found"  # type: ignore[attr-defined]
