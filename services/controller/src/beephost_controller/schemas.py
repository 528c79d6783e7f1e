"""Request and response models of the controller's REST API (apart from storage rows)."""

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
BackendType = Literal["http", "pipe", "rpc"]
_OPTION_LINE = re.compile(r"^\s*-")


def parse_requirements_txt(text: str) -> list[str]:
    """Requirement lines of a requirements.txt; options (``-r``, ``--index-url``) are refused.

    Raises:
        ValueError: A line is an option: indexes and includes are the controller's settings.
    """
    requirements = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if _OPTION_LINE.match(line):
            raise ValueError(f"options are not allowed in requirements: {line!r}")
        requirements.append(line)
    return requirements


def normalize(requirements: list[str]) -> list[str]:
    """One canonical order and spelling, so equal environments compare equal."""
    return sorted(
        {" ".join(r.split()) for r in requirements if r.strip()}, key=str.lower
    )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuntimePublic(_Model):
    python: str = Field(description="CPython minor version, e.g. 3.13.")
    version: str | None = Field(description="Exact CPython version once initialised.")
    image: str | None = Field(description="Base image reference once initialised.")
    source: str | None = Field(description="debian or registry.")
    initialised: bool


class RuntimeInit(_Model):
    python: str | None = Field(
        None, description="Minor version; default: the default runtime."
    )


class EnvironmentCreate(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="Unique environment name.")
    python: str | None = Field(
        None, description="CPython minor version (default runtime)."
    )
    requirements: list[str] = Field(
        default_factory=list, description="Requirement specifiers."
    )
    requirements_txt: str | None = Field(
        None, description="requirements.txt text, merged with `requirements`."
    )
    network: bool = Field(
        False, description="Whether the environment's backends get network."
    )

    @field_validator("requirements")
    @classmethod
    def _no_options(cls, value: list[str]) -> list[str]:
        for line in value:
            if _OPTION_LINE.match(line) or "\n" in line:
                raise ValueError(f"not a requirement specifier: {line!r}")
        return value

    @model_validator(mode="after")
    def _merge(self) -> "EnvironmentCreate":
        if self.requirements_txt:
            self.requirements = self.requirements + parse_requirements_txt(
                self.requirements_txt
            )
            self.requirements_txt = None
        self.requirements = normalize(self.requirements)
        return self


class EnvironmentPublic(_Model):
    name: str
    python: str
    requirements: list[str]
    network: bool
    admin: bool
    status: Literal["pending", "building", "ready", "failed"]
    image: str | None
    error: str | None
    job_id: str | None
    created_at: float
    updated_at: float


class JobPublic(_Model):
    id: str
    kind: str
    target: str
    status: Literal["queued", "running", "succeeded", "failed"]
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


class LogLine(_Model):
    seq: int
    line: str


class JobLogPage(_Model):
    job: JobPublic
    lines: list[LogLine]
    next: int = Field(description="Pass as `after` to get the following lines.")


class ErrorDetail(_Model):
    code: str
    message: str
    data: dict[str, object] = Field(default_factory=dict)


class ErrorResponse(_Model):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "invalid_request"},
    401: {"model": ErrorResponse, "description": "unauthorized"},
    404: {"model": ErrorResponse, "description": "not_found"},
    409: {"model": ErrorResponse, "description": "conflict"},
    500: {"model": ErrorResponse, "description": "internal"},
    503: {"model": ErrorResponse, "description": "unavailable"},
}
