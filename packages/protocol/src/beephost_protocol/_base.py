"""The base classes of every wire model: commands and results alike."""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    # Unknown fields are ignored so that newer clients can talk to older servers.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Command(_Model):
    """Base of every command; ``COMMAND`` is its wire ``type``."""

    COMMAND: ClassVar[str] = ""
