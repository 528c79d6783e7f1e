"""The console's sign-ins: server-side sessions, referenced by an opaque cookie.

The cookie carries a random id only; what it stands for (who signed in, the CSRF token,
the expiry) stays in this process. A restart signs everyone out, which is the safe
direction. An admin backend's scoped token is kept as its digest, so that each request
can check the backend (hence the token) still exists, as the API's bearer check does.
"""

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The cookie's name; ``__Host-`` needs Secure, so it is used only over TLS.
COOKIE = "beephost_console"
TLS_COOKIE = "__Host-beephost_console"

#: Sessions kept at most: the oldest go first (a flood of sign-ins cannot grow memory).
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class ConsoleSession:
    id: str
    #: The admin backend whose token signed in; None: the controller's token.
    caller: str | None
    #: sha256 of that scoped token (None for the controller's own).
    token_sha256: str | None
    #: Checked on every state-changing request (csrf.py).
    csrf: str
    expires_at: float


class SessionStore:
    """The live sessions of this process, each ``lifetime`` seconds from its sign-in."""

    def __init__(self, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def create(self, caller: str | None, token_sha256: str | None) -> ConsoleSession:
        session = ConsoleSession(
            id=secrets.token_urlsafe(32),
            caller=caller,
            token_sha256=token_sha256,
            csrf=secrets.token_urlsafe(32),
            expires_at=self.clock() + self.lifetime,
        )
        with self._lock:
            self._drop_expired()
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> ConsoleSession | None:
        """The session, or None when there is none or it has expired (then it is
        dropped)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= self.clock():
                del self._sessions[session_id]
                return None
            return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]
