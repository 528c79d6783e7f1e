"""``beep-host eval`` and ``beep-host exec``: run Python on a running backend."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from beephost_cli.commands._backend import (
    BackendOption,
    TimeoutOption,
    TokenFileOption,
    TokenOption,
    UrlOption,
    connect_backend,
)
from beephost_cli.commands._common import JsonOption
from beephost_cli.output import Output as Printer
from beephost_cli.state import state
from beephost_client import Output, OutputChunk


def eval_(
    ctx: typer.Context,
    expression: Annotated[str, typer.Argument(help="A Python expression.")],
    backend: BackendOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
    timeout: TimeoutOption = None,
    json: JsonOption = False,
) -> None:
    """Evaluate an expression on a backend and print its value (its repr).

    Example: beep-host eval --backend 3f2a9c 'sum(range(10))'
    """
    out = state(ctx).output(json)
    with connect_backend(ctx, backend, url, token, token_file) as client:
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
    token_file: TokenFileOption = None,
    timeout: TimeoutOption = None,
    outputs: Annotated[
        Path | None,
        typer.Option(
            "--outputs",
            metavar="DIR",
            file_okay=False,
            help="Write images the code displays (plots) to files in DIR "
            "(output-N.png, .jpg or .svg; created if missing).",
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Run statements on a backend, streaming their output.

    A trailing expression's value is printed, as in a notebook. Rich outputs
    (display(), plots) print as text; their images go to files with --outputs DIR.

    Example: beep-host exec --backend 3f2a9c -f script.py --outputs plots/
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
    show = _Shower(out, outputs)
    with connect_backend(ctx, backend, url, token, token_file) as client:
        if out.json_mode:
            result = client.execute(source, timeout=timeout)
            for output in result.outputs:
                show.save(output)
            out.json(result)
            return
        result = client.execute(source, timeout=timeout, on_output=show)
    if result.has_value and result.value is not None and not show.had_result:
        out.text(repr(result.value))  # as the REPL: no "None"
    for stream, dropped in (
        ("stdout", result.stdout_dropped),
        ("stderr", result.stderr_dropped),
        ("rich output", result.outputs_dropped),
    ):
        if dropped:
            out.note(
                f"{dropped} bytes of {stream} were cut by the backend's output limit"
            )


class _Shower:
    """Prints streamed output as it comes: text as is, rich outputs as their text,
    and their images written to files in ``directory`` (if given)."""

    def __init__(self, out: Printer, directory: Path | None) -> None:
        self._out = out
        self._directory = directory
        self._count = 0
        self.had_result = False  # an execute_result was printed: not the value again

    def __call__(self, item: OutputChunk | Output) -> None:
        if isinstance(item, OutputChunk):
            stream = sys.stdout if item.stream == "stdout" else sys.stderr
            stream.write(item.data)
            stream.flush()
            return
        self.had_result |= item.output_type == "execute_result"
        if item.text is not None:
            self._out.text(item.text)
        if not self.save(item) and item.is_image:
            self._out.note("(an image: pass --outputs DIR to save it)")

    def save(self, output: Output) -> bool:
        """Write the output's image to the next file in the directory; say where."""
        image = _image(output)
        if self._directory is None or image is None:
            return False
        extension, data = image
        self._count += 1
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self._directory / f"output-{self._count}.{extension}"
        path.write_bytes(data)
        self._out.note(f"image written to {path}")
        return True


def _image(output: Output) -> tuple[str, bytes] | None:
    """The output's image as (file extension, bytes): PNG first, as Jupyter prefers."""
    if output.png is not None:
        return "png", output.png
    if output.jpeg is not None:
        return "jpg", output.jpeg
    if output.svg is not None:
        return "svg", output.svg.encode()
    return None
