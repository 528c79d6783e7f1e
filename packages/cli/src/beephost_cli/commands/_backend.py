"""Reaching a backend: by its id through the controller, or by its URL and token."""

from typing import Annotated
from urllib.parse import urlsplit

import typer

from beephost_cli.state import state
from beephost_client import SCHEMES, Client

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
        help="The backend's token (with --backend, the controller supplies it).",
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0.001, help="Deadline in seconds (default: the client's 30)."
    ),
]


def connect_backend(
    ctx: typer.Context, backend: str | None, url: str | None, token: str | None
) -> Client:
    if (backend is None) == (url is None):
        raise typer.BadParameter(
            "give either --backend ID or --url URL", param_hint="'--backend' / '--url'"
        )
    st = state(ctx)
    if backend is not None:
        with st.controller() as controller:
            connection = controller.backend_connection(backend)
        url, token = connection.url, token or connection.token
    st.target = "backend"  # errors from here on are the backend's
    assert url is not None
    if urlsplit(url).scheme.lower() not in SCHEMES:
        known = ", ".join(f"{scheme}://" for scheme in SCHEMES)
        raise typer.BadParameter(f"{url!r} is not one of {known}", param_hint="'--url'")
    return st.make_client(url, token)
