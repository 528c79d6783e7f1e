"""Warm pools: their request and reply models."""

from pydantic import Field

from beephost_controller.schemas import (
    MAX_POOL_SIZE,
    ApiModel,
    BackendLimits,
    BackendOptions,
    BackendType,
    PoolSource,
)


class PoolSet(ApiModel):
    size: int = Field(
        ge=0,
        le=MAX_POOL_SIZE,
        description="Ready, unclaimed backends to keep (0: none).",
    )
    limits: BackendLimits | None = Field(
        None,
        description="Their limits; only a start asking for exactly these claims one.",
    )
    options: BackendOptions | None = Field(
        None,
        description="Their hardening; only a start asking for exactly these claims "
        "one.",
    )


class PoolPublic(ApiModel):
    environment: str
    type: BackendType
    size: int = Field(description="Ready, unclaimed backends it keeps.")
    limits: BackendLimits
    options: BackendOptions
    source: PoolSource = Field(
        description="`environment`: the environment's own setting; `default`: the "
        "controller's POOL_SIZE."
    )
    ready: int = Field(description="Members ready to be claimed now.")
    starting: int = Field(description="Members starting (a refill under way).")
