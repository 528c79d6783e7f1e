"""HTTP requests to protocol commands: the decoding both request paths share (sans-I/O).

The FastAPI routes and the fast lane (``fastlane.py``) build the commands of the hot
routes with these functions, so the two paths cannot disagree.
"""

import math

from beephost_http_backend.schemas import ExecRequest
from beephost_protocol.models import Evaluate, Execute


def eval_command(body: Evaluate, deadline: float | None) -> Evaluate:
    """The body is the command; the header's deadline applies when the body has none."""
    if body.timeout is None and deadline is not None:
        return body.model_copy(update={"timeout": deadline})
    return body


def exec_command(
    body: ExecRequest, deadline: float | None, *, stream: bool = False
) -> Execute:
    return Execute(
        code=body.code,
        session=body.session,
        timeout=body.timeout or deadline,
        stream=stream,
    )


def parse_deadline(raw: bytes) -> float | None:
    """The X-Beephost-Timeout value if it is a positive finite number, else None."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None
