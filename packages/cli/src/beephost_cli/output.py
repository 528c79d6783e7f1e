"""What the CLI prints: results on stdout (rich tables, or JSON), the rest on stderr.

Results go to stdout: a table or key/value list for people, JSON with ``--json`` for
scripts. Progress, notes and errors go to a stderr console, so ``beep-host ... --json |
jq`` sees only the result. rich is imported on first use, never at import time (R21).
"""

import base64
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any, Self

from beephost_client import RemoteObject

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.progress import Progress, TaskID
    from rich.status import Status

#: Piped stdout's width without COLUMNS: wide enough that no row ever wraps.
PIPED_WIDTH = 100_000


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of a result: dataclasses as objects, remote objects as handles.

    Values JSON has no form for use the wire's ``$``-tags (``$bytes``, ``$float``,
    ``$handle``), so nothing is lost silently.
    """
    if isinstance(value, RemoteObject):
        handle = value.handle
        ref: dict[str, Any] = {
            "id": handle.id,
            "type": handle.type,
            "repr": handle.repr,
        }
        if handle.bundle is not None:
            ref["bundle"] = handle.bundle
        return {"$handle": ref}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, float) and not math.isfinite(value):
        return {
            "$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        }
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: jsonable(item) for key, item in value.items()}
        return {"$map": [[jsonable(k), jsonable(v)] for k, v in value.items()]}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    return _tagged(value)


def _tagged(value: Any) -> Any:
    # The value table's other types (docs/protocol/pipe.md, section 8), in their wire
    # form: json.dumps knows none of them. Imported here: most commands print none.
    import datetime
    import decimal
    import uuid
    from pathlib import PurePath

    if isinstance(value, complex):
        return {"$complex": [jsonable(value.real), jsonable(value.imag)]}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$date": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"$time": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, PurePath):
        return {"$path": str(value)}
    return value


def cell(value: Any) -> str:
    """A table cell: empty for ``None``, compact JSON for lists and objects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | dict):
        return json.dumps(jsonable(value), separators=(", ", ": "))
    return str(value)


def age(timestamp: float | None, now: float | None = None) -> str:
    """``12s``, ``5m``, ``3h`` or ``2d`` since a Unix time; empty without one."""
    if not timestamp:
        return ""
    return duration((now or time.time()) - timestamp)


def size_text(count: int) -> str:
    """``512 B``, ``3.2 KiB``, ``1.5 GiB``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    """``12s``, ``5m``, ``3h`` or ``2d``: a span, rounded down to its largest unit."""
    whole = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


class Output:
    """The printer of one invocation.

    Args:
        json_mode: Results as JSON instead of tables.
    """

    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        self._out: Console | None = None
        self._err: Console | None = None

    @property
    def out(self) -> "Console":
        """The stdout console (results)."""
        if self._out is None:
            from rich.console import Console

            self._out = Console(highlight=False, soft_wrap=False)
            if not self._out.is_terminal and "COLUMNS" not in os.environ:
                # Piped: rich would wrap at 80 columns and split a row over lines a
                # script reads one by one. Tables take their natural width instead.
                self._out.width = PIPED_WIDTH
        return self._out

    @property
    def err(self) -> "Console":
        """The stderr console (progress, notes, errors)."""
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._err

    # -- results ---------------------------------------------------------------------------

    def json(self, value: Any) -> None:
        """Print ``value`` as indented JSON on stdout."""
        sys.stdout.write(json.dumps(jsonable(value), indent=2) + "\n")
        sys.stdout.flush()

    def result(self, value: Any, pairs: Sequence[tuple[str, Any]]) -> None:
        """One object: JSON (``value``) or aligned ``name  value`` lines (``pairs``)."""
        if self.json_mode:
            self.json(value)
            return
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for name, item in pairs:
            table.add_row(Text(name), Text(cell(item)))
        self._print(table)

    def table(
        self,
        value: Any,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        empty: str | None = None,
    ) -> None:
        """Many objects: JSON (``value``) or a table; ``empty`` goes to stderr if none."""
        if self.json_mode:
            self.json(value)
            return
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, header_style="bold")
        for name in columns:
            table.add_column(name.upper(), overflow="fold")
        count = 0
        for row in rows:
            table.add_row(*(Text(cell(item)) for item in row))
            count += 1
        if count:
            self._print(table)
        elif empty:
            self.note(empty)

    def _print(self, renderable: "RenderableType") -> None:
        if self.out.is_terminal:
            self.out.print(renderable)
            return
        # Piped: plain lines without the padding rich gives the last column.
        with self.out.capture() as captured:
            self.out.print(renderable)
        lines = captured.get().splitlines()
        sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
        sys.stdout.flush()

    def text(self, text: str) -> None:
        """Raw text on stdout (logs), as it is."""
        sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    # -- diagnostics -------------------------------------------------------------------------

    def note(self, message: str) -> None:
        """A line for people on stderr (never part of a result)."""
        from rich.text import Text

        self.err.print(Text(message, style="dim"))

    def done(self, message: str) -> None:
        """A success line on stderr."""
        from rich.text import Text

        self.err.print(Text.assemble(("✓ ", "green"), message))

    def error(self, message: str, hint: str | None = None) -> None:
        """The error line (red) and its hint on stderr."""
        from rich.text import Text

        first_line = " ".join(message.split("\n", 1)[0].split()) or "failed"
        self.err.print(Text.assemble(("error: ", "bold red"), (first_line, "red")))
        if hint:
            self.err.print(Text.assemble(("hint: ", "bold"), hint))

    def raw_err(self, text: str) -> None:
        """Text on stderr as it is (a remote traceback)."""
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()

    # -- progress --------------------------------------------------------------------------

    def job_progress(self, title: str, tail: int = 10) -> "JobProgress":
        """A live view of a job: spinner, title, elapsed time and its last log lines."""
        return JobProgress(self.err, title, tail)

    def transfer(self, title: str, total: int) -> "TransferProgress":
        """A progress bar of ``total`` bytes (on a terminal, for big transfers)."""
        return TransferProgress(self.err, title, total)

    @contextmanager
    def status(self, title: str) -> Iterator["StatusLine"]:
        """A spinner with a status text that the caller updates."""
        line = StatusLine(self.err, title)
        with line:
            yield line


class _LiveView:
    """A view drawn while its block runs (``_live``: a Rich Live, Status or Progress,
    started on entering on a terminal); leaving the block stops it."""

    _live: "Live | Status | Progress | None" = None

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


class JobProgress(_LiveView):
    """The live build view; on a terminal it redraws, elsewhere it prints log lines.

    Args:
        console: The stderr console.
        title: What is running, e.g. ``building environment data``.
        tail: How many recent log lines the live view shows.
    """

    def __init__(self, console: "Console", title: str, tail: int = 10) -> None:
        self.console = console
        self.title = title
        self.tail = tail
        self.lines: list[str] = []
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds since the view started."""
        return time.monotonic() - self.started

    def _render(self) -> "RenderableType":
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        header = Spinner(
            "dots", Text.assemble(self.title, (f"  {self.elapsed:.0f}s", "dim"))
        )
        recent = [
            Text("  " + line, style="dim", overflow="ellipsis", no_wrap=True)
            for line in self.lines[-self.tail :]
        ]
        return Group(header, *recent)

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(
                get_renderable=self._render,
                console=self.console,
                transient=True,
                refresh_per_second=8,
            )
            self._live.start()
        else:
            from rich.text import Text

            self.console.print(Text(f"{self.title} ...", style="bold"))
        return self

    def log(self, line: str) -> None:
        """Add a line of the job's log."""
        self.lines.append(line)
        if self._live is None:
            from rich.text import Text

            self.console.print(Text("  │ " + line, style="dim"), soft_wrap=True)

    def replay(self, count: int = 30) -> None:
        """Print the last ``count`` log lines (after a failure, once the view is gone)."""
        from rich.text import Text

        if self.console.is_terminal:  # the lines were only on the erased live view
            for line in self.lines[-count:]:
                self.console.print(Text("  │ " + line, style="dim"), soft_wrap=True)


class StatusLine(_LiveView):
    """A spinner whose text is updated; elsewhere than a terminal, one line per update."""

    _status: "Status | None" = None

    def __init__(self, console: "Console", title: str) -> None:
        self.console = console
        self.title = title
        self._shown = ""

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self._live = self._status = self.console.status(self.title, spinner="dots")
            self._status.start()
        else:
            self._print(self.title)
        return self

    def update(self, text: str) -> None:
        """Show ``text`` instead of the previous status."""
        if self._live is not None and self._status is not None:
            self._status.update(text)
        elif text != self._shown:
            self._print(text)

    def _print(self, text: str) -> None:
        from rich.text import Text

        self._shown = text
        self.console.print(Text(text, style="dim"))


class TransferProgress(_LiveView):
    """Bytes moved of a total, with speed and time left: a bar on a terminal when the
    transfer is big enough to wait for, nothing elsewhere (the command says what it
    did when it ends)."""

    #: Smaller transfers end before a bar would be worth drawing.
    SHOWN_FROM = 8 << 20

    def __init__(self, console: "Console", title: str, total: int) -> None:
        self.console = console
        self.title = title
        self.total = total
        self._bar: tuple[Progress, TaskID] | None = None

    def __enter__(self) -> Self:
        if self.console.is_terminal and self.total >= self.SHOWN_FROM:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            progress = Progress(
                "{task.description}",
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar = progress, progress.add_task(self.title, total=self.total)
            progress.start()
            self._live = progress
        return self

    def advance(self, count: int, name: str | None = None) -> None:
        """``count`` more bytes moved (of the file ``name``, shown beside the bar)."""
        if self._bar is not None and self._live is not None:
            progress, task = self._bar
            description = f"{self.title} {name}" if name else self.title
            progress.update(task, advance=count, description=description)
