"""The JSON log formatter: one flat object per record."""

import json
import logging
import sys

from beephost_http_backend.logs import JsonFormatter


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
