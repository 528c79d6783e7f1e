"""Secrets out of every line the controller writes: its log and its jobs' logs.

The last line of defence, not the first: requirements are validated at the API and
subprocesses run without secrets in their environment (engine/tool_env.py). Whatever
still reaches a log line or a job log passes :meth:`Redactor.redact`, which replaces the
secrets it knows (the controller's token, every ``*TOKEN*``/``*SECRET*``/``*PASSWORD*``
setting, the backend tokens it handed out) and anything shaped like a credential (a
bearer header, a ``?token=`` query, a ``..._TOKEN=value`` pair, a URL's password) with
``[redacted]``.
"""

import logging
import re
import threading
from collections.abc import Callable, Iterable

from pydantic import BaseModel, SecretStr

REDACTED = "[redacted]"

#: Settings whose values are secrets, by name.
_SECRET_NAME = re.compile(r"token|secret|password", re.IGNORECASE)
#: Shorter values are too likely to occur by chance to replace everywhere.
_MIN_SECRET = 6
#: Credential-shaped text, whatever the value: the part before the value is kept.
_SHAPES = (
    re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+"),
    re.compile(r"(?i)([?&](?:token|access_token|api_key|key|password)=)[^&\s\"']+"),
    # The password of a URL's user information (an index URL with credentials).
    re.compile(r"(://[^/\s:@]+:)[^@\s/]+(?=@)"),
    re.compile(
        r"(?i)([A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD)[A-Z0-9_]*[\"']?\s*[:=]\s*[\"']?)"
        r"(?!\[redacted\])[^\s\"',}]+"
    ),
)


class Redactor:
    """A set of known secrets, growing while the controller runs; thread-safe."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self.add(*secrets)

    @classmethod
    def from_settings(cls, settings: BaseModel) -> "Redactor":
        """Every secret-named field's value (``token``, ``*_password``, ...)."""
        values = []
        for name in type(settings).model_fields:
            if not _SECRET_NAME.search(name):
                continue
            value = getattr(settings, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, str):
                values.append(value)
        return cls(values)

    def add(self, *secrets: str | None) -> None:
        """Remember more secrets (a backend's token when it starts)."""
        new = {s for s in secrets if s and len(s) >= _MIN_SECRET}
        if new - self._secrets:
            with self._lock:
                self._secrets = self._secrets | new

    def redact(self, text: str) -> str:
        # Longest first: a secret containing another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        for shape in _SHAPES:
            text = shape.sub(lambda m: m.group(1) + REDACTED, text)
        return text


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message (and traceback) with secrets redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        # Arguments are redacted one by one, not merged into the message: uvicorn's
        # access formatter reads them as a tuple.
        redact = self.redactor.redact
        # A message may be any object (logger.error(exc)): it is text once formatted.
        record.msg = redact(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(redact, a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(redact, v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _redact_arg(redact: Callable[[str], str], value: object) -> object:
    # Numbers stay numbers (%d); anything else (an exception) is text once formatted.
    if isinstance(value, (int, float)) or value is None:
        return value
    return redact(str(value))


def install(redactor: Redactor, logger_names: Iterable[str] = ("",)) -> None:
    """Put a :class:`RedactingFilter` on every handler of these loggers (root: "")."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter(redactor))
