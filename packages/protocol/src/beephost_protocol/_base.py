"""The base classes of every wire model: commands and results alike."""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    # Unknown fields are ignored so that newer clients can talk to older servers.
    # Validators are built on first use: a server imports ~50 models and a request
    # uses a few (built once each, ~0.7 ms for the first eval); at import they cost
    # every cold start about a quarter of its own imports (issue 33).
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class Command(_Model):
    """Base of every command; ``COMMAND`` is its wire ``type``."""

    COMMAND: ClassVar[str] = ""


def build_models() -> int:
    """Build every wire model's validator now, not on first use; how many were built.

    For a process that may validate from several threads at once with any pydantic
    the package allows: deferred builds are thread-safe only from pydantic 2.14
    (pydantic#13438). The client SDK calls it on import; the servers, locked to a
    pydantic that has it, build on first use.
    """
    built, pending = 0, list(_Model.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        # TypeAdapters of a model (FastAPI's, for a route's body) take its config:
        # deferred too, theirs would be rebuilt late, as references OpenAPI cannot
        # annotate. Undeferred, they are built at once, as before deferral.
        model.model_config["defer_build"] = False
        if not model.__pydantic_complete__:
            model.model_rebuild()
            built += 1
    return built
