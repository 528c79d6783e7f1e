"""What every command needs: the controller's address and token, output mode, factories.

The root callback puts a :class:`State` on ``ctx.obj``. Tests pass their own with
``CliRunner().invoke(app, args, obj=State(make_controller=...))``: its factories are
kept, the options of the command line fill in the rest.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import typer

from beephost_cli.output import Output
from beephost_client import Client, ControllerClient, connect
from beephost_client.controller import DEFAULT_CONTROLLER_URL

ControllerFactory = Callable[[str, str | None], ControllerClient]
ClientFactory = Callable[[str, str | None], Client]


def _controller(url: str, token: str | None) -> ControllerClient:
    return ControllerClient(url, token=token)


def _client(url: str, token: str | None) -> Client:
    return connect(url, token=token)


@dataclass
class State:
    """Settings of one invocation.

    Attributes:
        controller_url: The controller's URL (``--controller``).
        token: The controller's token (``--token``).
        json: Whether ``--json`` was given before the command.
        target: What the command talks to now, ``controller`` or ``backend``
            (errors get hints for it).
        make_controller: Builds the controller client from URL and token.
        make_client: Builds a backend client from URL and token.
    """

    controller_url: str = DEFAULT_CONTROLLER_URL
    token: str | None = None
    json: bool = False
    target: str = "controller"
    make_controller: ControllerFactory = field(default=_controller)
    make_client: ClientFactory = field(default=_client)

    def controller(self) -> ControllerClient:
        """A controller client; use it in ``with``."""
        return self.make_controller(self.controller_url, self.token)

    def output(self, json_mode: bool = False) -> Output:
        """The printer, in JSON mode if ``--json`` came before or after the command."""
        return Output(json_mode or self.json)


def state(ctx: typer.Context) -> State:
    """The invocation's :class:`State` (the root callback made it)."""
    found = ctx.find_object(State)
    if found is None:  # a command invoked without the root callback
        found = ctx.ensure_object(State)
    return found


@contextlib.contextmanager
def controlled(
    ctx: typer.Context, json_mode: bool = False
) -> Iterator[tuple[Output, ControllerClient]]:
    """The printer and an open controller client: how most commands begin."""
    st = state(ctx)
    out = st.output(json_mode)
    with st.controller() as controller:
        yield out, controller
