"""``beep-host config``: the controller's effective settings."""

import typer

from beephost_cli.commands._common import JsonOption
from beephost_cli.state import state


def config(ctx: typer.Context, json: JsonOption = False) -> None:
    """Show the controller's effective settings (secrets left out).

    Example: beep-host config
    """
    st = state(ctx)
    out = st.output(json)
    with st.controller() as controller:
        settings = controller.config()
    if not out.json_mode:
        out.note(f"controller {st.controller_url}")
    out.result(settings, sorted(settings.items()))
