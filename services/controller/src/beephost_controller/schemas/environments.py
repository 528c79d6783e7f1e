"""Runtimes and environments: their request and reply models."""

from pydantic import ConfigDict, Field, field_validator, model_validator

from beephost_controller.requirements import (
    PlainRequirements,
    normalize,
    parse_requirements_txt,
)
from beephost_controller.schemas import (
    NAME_RULE,
    NAME_SCHEMA,
    ApiModel,
    EnvironmentStatus,
    check_name,
)
from beephost_controller.schemas.egress import EgressPolicy, EgressPublic


class RuntimePublic(ApiModel):
    python: str = Field(description="CPython minor version, e.g. 3.13.")
    version: str | None = Field(description="Exact CPython version once initialised.")
    image: str | None = Field(description="Base image reference once initialised.")
    source: str | None = Field(description="debian or registry.")
    initialised: bool


class RuntimeInit(ApiModel):
    python: str | None = Field(
        None, description="Minor version; default: the default runtime."
    )


class EnvironmentCreate(ApiModel):
    # The schema says what _one_network checks: not network true with an allow-list.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "not": {
                "required": ["network", "egress"],
                "properties": {
                    "network": {"const": True},
                    "egress": {"type": "object"},
                },
            }
        },
    )

    name: str = Field(
        json_schema_extra=NAME_SCHEMA,
        description=f"Unique environment name: {NAME_RULE}.",
    )
    python: str | None = Field(
        None, description="CPython minor version (default runtime)."
    )
    requirements: PlainRequirements = Field(
        default_factory=list,
        description=(
            "PEP 508 requirement specifiers (`numpy>=2`, `attrs[tests]==25.*; "
            "python_version >= '3.11'`); no options, no `$`, and direct references "
            "(`name @ URL`) only with a URL scheme the operator allows."
        ),
    )
    requirements_txt: str | None = Field(
        None, description="requirements.txt text, merged with `requirements`."
    )
    network: bool = Field(
        False,
        description="Whether the environment's backends get the whole network "
        "(unsafe for model code: cloud metadata, the host's services, anything); "
        "default: none.",
    )
    egress: EgressPolicy | None = Field(
        None,
        description="An allow-list of destinations its backends may reach through "
        "the egress proxy (docs/operators/egress.md); not with `network`.",
    )

    @field_validator("name")
    @classmethod
    def _name_rule(cls, value: str) -> str:
        return check_name(value)

    @model_validator(mode="after")
    def _one_network(self) -> "EnvironmentCreate":
        if self.network and self.egress is not None:
            raise ValueError(
                "network (the whole network) and egress (an allow-list) contradict "
                "each other: give one"
            )
        return self

    @model_validator(mode="after")
    def _merge(self) -> "EnvironmentCreate":
        if self.requirements_txt:
            self.requirements = self.requirements + parse_requirements_txt(
                self.requirements_txt
            )
            self.requirements_txt = None
        self.requirements = normalize(self.requirements)
        return self


class EnvironmentPublic(ApiModel):
    name: str
    python: str
    requirements: list[str]
    network: bool
    egress: EgressPublic = Field(
        description="Its backends' egress policy: none, full or an allow-list."
    )
    admin: bool
    status: EnvironmentStatus
    image: str | None
    error: str | None
    job_id: str | None
    created_at: float
    updated_at: float
