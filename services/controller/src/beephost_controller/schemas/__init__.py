"""The REST API's shared vocabulary: names, statuses, backend limits and hardening.

Every resource's request and reply models (``schemas/<resource>.py``) and the stored
rows (``rows.py``) are written in these terms, so a status or a limit has one type from
the request to the database and back.
"""

import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
#: NAME_PATTERN in words, for the error a person reads.
NAME_RULE = (
    "1 to 63 characters: lowercase letters, digits, '.', '_' and '-', starting with "
    "a lowercase letter or a digit"
)
_NAME_RE = re.compile(NAME_PATTERN)
#: The name's pattern stays in the document (clients and fuzzers read it); the check
#: is check_name's, whose error says it in words.
NAME_SCHEMA: JsonDict = {"pattern": NAME_PATTERN, "maxLength": 63}

#: A backend's transport, which is also the server its image runs. The order is the
#: images' (a servers image lays its servers out in it, so it is part of their keys).
BackendType = Literal["pipe", "http", "rpc"]
BACKEND_TYPES: tuple[BackendType, ...] = get_args(BackendType)
EnvironmentStatus = Literal["pending", "building", "ready", "failed"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
BackendStatus = Literal["starting", "ready", "unhealthy", "exited", "stopped"]
#: Why a backend's container last exited.
ExitReason = Literal["crashed", "oom_killed", "stopped"]
#: Where a pool's size comes from: the environment's own setting, or POOL_SIZE.
PoolSource = Literal["environment", "default"]

#: The longest lifetime a backend may be given: 30 days.
MAX_BACKEND_TTL = 30 * 86400.0

#: The most ready, unclaimed backends one pool may keep.
MAX_POOL_SIZE = 64


def check_name(value: str) -> str:
    """An environment name, or ValueError saying in words what a name may contain."""
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name: a name is {NAME_RULE}")
    return value


class ApiModel(BaseModel):
    """A model of the API: unknown fields are refused, never ignored."""

    model_config = ConfigDict(extra="forbid")


class BackendLimits(ApiModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_mb: int = Field(512, ge=16, le=1 << 20, description="Memory limit, MiB.")
    cpus: float = Field(1.0, gt=0, le=256, description="CPU limit, in CPUs.")
    pids: int = Field(256, ge=8, le=1 << 16, description="Process limit.")
    workspace_quota_bytes: int | None = Field(
        None,
        ge=0,
        strict=True,
        description="Bytes the workspace may hold (0: no limit); default: the "
        "controller's WORKSPACE_QUOTA_BYTES.",
    )

    @field_validator("workspace_quota_bytes", mode="before")
    @classmethod
    def _integral(cls, value: object) -> object:
        # Strict (no "5", no true), but JSON's 45814.0 is the integer its schema says.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


#: Capabilities a backend may get back explicitly (Docker's default set, minus the
#: ones that touch the host: MKNOD, AUDIT_WRITE, SYS_CHROOT).
Capability = Literal[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
]


class BackendOptions(ApiModel):
    """Hardening, each default changeable only by naming it here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read_only: bool = Field(True, description="Read-only root filesystem.")
    network: bool | None = Field(
        None,
        description="The whole network (true: unsafe for model code) or none "
        "(false), replacing the environment's egress policy; default: the "
        "environment's.",
    )
    tmpfs_mb: int = Field(64, ge=1, le=1 << 16, description="Size of the /tmp tmpfs.")
    user: str = Field(
        "10001:10001",
        pattern=r"^[0-9]{1,10}:[0-9]{1,10}$",
        description="uid:gid the servers and user code run as (0:0 is root).",
    )
    cap_add: list[Capability] = Field(
        default_factory=list,
        description="Capabilities given back (every other one stays dropped).",
    )
    no_new_privileges: bool = Field(True, description="The no-new-privileges flag.")
