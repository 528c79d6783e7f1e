"""``beep-host prune``: give back the disk of environment images nothing uses."""

from typing import Annotated

import typer

from beephost_cli.commands._common import JsonOption
from beephost_cli.output import jsonable, size_text
from beephost_cli.state import controlled


def prune(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be removed.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Remove every environment image no environment uses, and say what it freed.

    Example: beep-host prune
    """
    with controlled(ctx, json) as (out, controller):
        if dry_run:
            removed = [i for i in controller.images() if not i.environments]
        else:
            removed = controller.prune_images()
    freed = sum(image.disk_bytes for image in removed)
    if out.json_mode:
        out.json({"removed": jsonable(removed), "freed_bytes": freed})
        return
    verb = "would remove" if dry_run else "removed"
    for image in removed:
        out.done(
            f"{verb} {', '.join(image.tags) or image.id} "
            f"({size_text(image.disk_bytes)})"
        )
    if removed:
        out.note(f"{'would free' if dry_run else 'freed'} {size_text(freed)}")
    else:
        out.note("no unused images")
