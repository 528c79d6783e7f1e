"""``beep-host eval`` and ``beep-host exec``: run Python on a running backend."""

import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from beephost_cli.commands._common import JsonOption
from beephost_cli.state import state
from beephost_client import SCHEMES, Client, OutputChunk

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


def _connect(
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


def eval_(
    ctx: typer.Context,
    expression: Annotated[str, typer.Argument(help="A Python expression.")],
    backend: BackendOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    timeout: TimeoutOption = None,
    json: JsonOption = False,
) -> None:
    """Evaluate an expression on a backend and print its value (its repr).

    Example: beep-host eval --backend 3f2a9c 'sum(range(10))'
    """
    out = state(ctx).output(json)
    with _connect(ctx, backend, url, token) as client:
        value = client.evaluate(expression, timeout=timeout)
        if out.json_mode:
            out.json({"value": value})
        else:
            out.text(repr(value))


def exec_(
    ctx: typer.Context,
    code: Annotated[
        str | None,
        typer.Argument(
            help="Python statements ('-' reads them from stdin).", show_default=False
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            exists=True,
            dir_okay=False,
            help="Run the code in this file.",
        ),
    ] = None,
    backend: BackendOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    timeout: TimeoutOption = None,
    json: JsonOption = False,
) -> None:
    """Run statements on a backend, streaming their output.

    A trailing expression's value is printed, as in a notebook.

    Example: beep-host exec --backend 3f2a9c -f script.py
    """
    if (code is None) == (file is None):
        raise typer.BadParameter(
            "give CODE, '-' or --file FILE", param_hint="CODE / '--file'"
        )
    source = (
        file.read_text(encoding="utf-8")
        if file is not None
        else sys.stdin.read()
        if code == "-"
        else code
    )
    assert source is not None
    out = state(ctx).output(json)
    with _connect(ctx, backend, url, token) as client:
        if out.json_mode:
            result = client.execute(source, timeout=timeout)
            out.json(result)
            return
        result = client.execute(source, timeout=timeout, on_output=_echo)
    if result.has_value and result.value is not None:  # as the REPL: no "None"
        out.text(repr(result.value))
    for stream, dropped in (
        ("stdout", result.stdout_dropped),
        ("stderr", result.stderr_dropped),
    ):
        if dropped:
            out.note(
                f"{dropped} bytes of {stream} were cut by the backend's output limit"
            )


def _echo(chunk: OutputChunk) -> None:
    stream = sys.stdout if chunk.stream == "stdout" else sys.stderr
    stream.write(chunk.data)
    stream.flush()
