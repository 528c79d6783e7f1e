"""Who looks at the console: the signed-in session behind the cookie, checked on every
request as the API checks its bearer token (deps.token_caller)."""

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response

from beephost_controller.backends import token_digest
from beephost_controller.console.sessions import (
    COOKIE,
    TLS_COOKIE,
    ConsoleSession,
    SessionStore,
)
from beephost_controller.deps import in_admin_scope, token_caller
from beephost_controller.settings import Settings
from beephost_controller.store import SqliteStore
from beephost_protocol.errors import Unauthorized


class SignInRequired(Unauthorized):
    """No session, an expired one, or one whose scoped token is gone: pages send the
    browser to the sign-in form, scripts get the 401."""


@dataclass(frozen=True)
class Viewer:
    session: ConsoleSession

    @property
    def caller(self) -> str | None:
        """As the API's ``Caller``: an admin backend's id, None for the controller's
        token."""
        return self.session.caller

    @property
    def scoped(self) -> bool:
        return self.session.caller is not None

    def may(self, method: str, api_path: str) -> bool:
        """Whether this sign-in's token may make that API call (the console shows a
        section only to a token the API would show it to)."""
        return self.session.caller is None or in_admin_scope(method, api_path)

    def require(self, method: str, api_path: str) -> None:
        if not self.may(method, api_path):
            raise Unauthorized("this sign-in's token may not do that (a scoped token)")


def sessions_of(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.console_sessions
    return store


def _via_unix_socket(request: Request) -> bool:
    server = request.scope.get("server") or (None, None)
    return not isinstance(server[1], int)


def over_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def cookie_name(request: Request) -> str:
    return TLS_COOKIE if over_tls(request) else COOKIE


def sign_in(request: Request, token: str) -> ConsoleSession:
    """A new session for ``token``, checked by the API's own rule.

    Raises:
        Unauthorized: Not a token of this controller (or of a live admin backend).
    """
    settings: Settings = request.app.state.settings
    store: SqliteStore = request.app.state.store
    caller = token_caller(
        settings,
        store,
        token,
        scoped=True,
        open_api=not _via_unix_socket(request),
    )
    digest = token_digest(token) if caller is not None else None
    return sessions_of(request).create(caller, digest)


def set_cookie(request: Request, response: Response, session: ConsoleSession) -> None:
    settings: Settings = request.app.state.settings
    response.set_cookie(
        cookie_name(request),
        session.id,
        # Whole seconds, at least one (0 would delete it); the server's expiry is exact.
        max_age=max(1, math.ceil(settings.console_session_ttl)),
        path="/",
        httponly=True,
        secure=over_tls(request),
        samesite="strict",
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        cookie_name(request),
        path="/",
        httponly=True,
        secure=over_tls(request),
        samesite="strict",
    )


def current_session(request: Request) -> ConsoleSession | None:
    """The request's live session, if any: expired ones and those whose scoped token
    no longer opens the API (its admin backend stopped) are dropped."""
    session_id = request.cookies.get(cookie_name(request))
    if not session_id:
        return None
    sessions = sessions_of(request)
    session = sessions.get(session_id)
    if session is None or session.token_sha256 is None:
        return session
    store: SqliteStore = request.app.state.store
    row = store.backend_by_controller_token(session.token_sha256)
    if row is None or row.id != session.caller:
        sessions.drop(session_id)
        return None
    return session


def viewer(request: Request) -> Viewer:
    session = current_session(request)
    if session is None:
        raise SignInRequired("sign in to the console first")
    return Viewer(session)


ViewerDep = Annotated[Viewer, Depends(viewer)]
