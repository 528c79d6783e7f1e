"""redact.py: known secrets and credential shapes out of log records and text."""

import io
import logging

from pydantic import SecretStr

from beephost_controller.redact import REDACTED, RedactingFilter, Redactor, install
from beephost_controller.settings import Settings

TOKEN = "controller-token-0123456789"


def test_settings_secrets_and_shapes_are_redacted() -> None:
    redactor = Redactor.from_settings(Settings(token=SecretStr(TOKEN)))
    redactor.add("backend-token-abcdef", None, "abc")  # too short: never replaced
    text = redactor.redact(
        f"url http://h/{TOKEN}/x; backend-token-abcdef; Authorization: Bearer xyz123; "
        "GET /x?token=qwerty&b=1; BEEPHOST_CONTROLLER_TOKEN=zzz999; "
        '{"MY_SECRET": "s3"}; https://user:hunter2@index.test/simple; abc'
    )
    for secret in (TOKEN, "backend-token-abcdef", "xyz123", "qwerty", "zzz999", 's3"'):
        assert secret not in text, text
    assert "hunter2" not in text
    assert "https://user:[redacted]@index.test/simple" in text
    assert text.endswith("abc")
    assert text.count(REDACTED) == 7


def test_the_filter_redacts_messages_arguments_and_tracebacks() -> None:
    redactor = Redactor([TOKEN])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        install(redactor, ["test_redact"])
        install(redactor, ["test_redact"])  # once per handler, however often
        assert len(handler.filters) == 1
        logger.warning("job %s failed: %s", "job-1", RuntimeError(f"GET /{TOKEN}"))
        logger.warning("%s - %s %d", "127.0.0.1", f"/api?token={TOKEN}", 200)
        logger.warning(RuntimeError(f"object message {TOKEN}"))
        try:
            raise ValueError(TOKEN)
        except ValueError:
            logger.exception("crashed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert TOKEN not in out
    assert "job job-1 failed: GET /[redacted]" in out
    assert "127.0.0.1 - /api?token=[redacted] 200" in out
    assert "ValueError: [redacted]" in out
    assert "object message [redacted]" in out
    assert isinstance(handler.filters[0], RedactingFilter)
