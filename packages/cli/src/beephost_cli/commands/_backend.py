"""Reaching a backend: by its id through the controller, or by its URL and token."""

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from beephost_cli.commands._down import not_running
from beephost_cli.state import state
from beephost_client import SCHEMES, Client

#: Where a backend's token may come from instead of argv.
BACKEND_TOKEN_ENV = "BEEPHOST_BACKEND_TOKEN"

BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        "-b",
        metavar="ID",
        help="A backend the controller runs (by its id).",
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="A backend's URL instead: unix:///…/pipe.sock, http://host:port or "
        "grpc://host:port.",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=BACKEND_TOKEN_ENV,
        show_envvar=True,
        help="The backend's token (with --backend, the controller supplies it). "
        "Better from the environment or --token-file: argv is visible to every "
        "process.",
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        metavar="PATH",
        help="Read the backend's token from this file (its first line).",
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0.001, help="Deadline in seconds (default: the client's 30)."
    ),
]


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """The token given, or the first line of ``token_file``.

    Raises:
        typer.BadParameter: Both given, or the file is unreadable or empty.
    """
    if token_file is None:
        return token
    if token is not None:
        raise typer.BadParameter(
            f"give --token-file or --token (or {BACKEND_TOKEN_ENV}), not both",
            param_hint="'--token-file'",
        )
    try:
        text = token_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(
            f"cannot read {token_file}: {exc}", param_hint="'--token-file'"
        ) from exc
    first = text.splitlines()[0].strip() if text.strip() else ""
    if not first:
        raise typer.BadParameter(f"{token_file} is empty", param_hint="'--token-file'")
    return first


def _from_environment(ctx: typer.Context, name: str) -> bool:
    # By name: typer carries its own copy of click, whose enum is not click's.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "ENVIRONMENT"


def connect_backend(
    ctx: typer.Context,
    backend: str | None,
    url: str | None,
    token: str | None,
    token_file: Path | None = None,
) -> Client:
    if backend is not None and _from_environment(ctx, "token"):
        token = None  # exported for some --url: the controller knows this one's
    token = read_token(token, token_file)
    if (backend is None) == (url is None):
        raise typer.BadParameter(
            "give either --backend ID or --url URL", param_hint="'--backend' / '--url'"
        )
    st = state(ctx)
    if backend is not None:
        with st.controller() as controller:
            down = not_running(controller.backend(backend))
            if down is not None:  # the controller knows why: no connection to refuse
                raise down
            connection = controller.backend_connection(backend)
        url, token = connection.url, token or connection.token
    st.target = "backend"  # errors from here on are the backend's
    assert url is not None
    if urlsplit(url).scheme.lower() not in SCHEMES:
        known = ", ".join(f"{scheme}://" for scheme in SCHEMES)
        raise typer.BadParameter(f"{url!r} is not one of {known}", param_hint="'--url'")
    return st.make_client(url, token)
