"""Egress policies and stored secrets: their request and reply models.

The shapes only; what a policy may allow (no ``*.com``, no metadata address) is
``egress.check_policy``'s, which needs the public-suffix list and the operator's
internal ranges.
"""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from beephost_controller.schemas import NAME_RULE, NAME_SCHEMA, ApiModel, check_name

#: The ports an entry allows when it names none: HTTPS and HTTP.
DEFAULT_PORTS: tuple[int, ...] = (443, 80)
#: The one placeholder a header's value may hold: the secret's value.
SECRET_PLACEHOLDER = "{secret}"
#: The most entries one policy may hold (each is checked against every connection).
MAX_RULES = 256

Port = Annotated[int, Field(ge=1, le=65535)]
#: What a policy allows a sandbox: none, everything, or the listed destinations.
EgressMode = Literal["none", "full", "allow_list"]


class SecretHeader(ApiModel):
    """A stored secret the egress proxy puts into one header of the requests to its
    entry's destination (the sandbox never sees the value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str = Field(
        json_schema_extra=NAME_SCHEMA,
        description=f"The stored secret's name ({NAME_RULE}).",
    )
    header: str = Field(
        "Authorization",
        # RFC 9110's token: what a field name may be.
        pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$",
        description="The header added, or replaced, on the way out.",
    )
    value: str = Field(
        "Bearer {secret}",
        min_length=len(SECRET_PLACEHOLDER),
        max_length=1024,
        description="The header's value; `{secret}`, its only placeholder, is "
        "replaced by the secret's value.",
    )

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        return check_name(value)


class EgressRule(ApiModel):
    """One allowed destination: a host name or a CIDR, and its ports."""

    # The schema says what _one_destination checks (exactly one of host and cidr is a
    # string), so that a request the schema calls valid is never refused for it.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "oneOf": [
                {"required": [key], "properties": {key: {"type": "string"}}}
                for key in ("host", "cidr")
            ]
        },
    )

    host: str | None = Field(
        None,
        max_length=253,
        description="A host name, exact (`api.example.com`) or one wildcard label "
        "(`*.example.com`: its subdomains, not the name itself).",
    )
    cidr: str | None = Field(
        None,
        max_length=64,
        description="An address range (`10.1.2.0/24`), for a service without a name.",
    )
    ports: list[Port] = Field(
        default_factory=lambda: list(DEFAULT_PORTS),
        min_length=1,
        max_length=32,
        description="The ports allowed; default 443 and 80.",
    )
    secret: SecretHeader | None = Field(
        None, description="A stored secret to put into a header of its requests."
    )

    @model_validator(mode="after")
    def _one_destination(self) -> "EgressRule":
        if (self.host is None) == (self.cidr is None):
            raise ValueError("an entry names exactly one of host and cidr")
        return self

    @property
    def destination(self) -> str:
        """The host name or CIDR, as the entry names it."""
        return self.host if self.host is not None else str(self.cidr)


class EgressPolicy(ApiModel):
    """An allow-list: the sandbox reaches these destinations, through the egress
    proxy, and nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[EgressRule] = Field(
        min_length=1,
        max_length=MAX_RULES,
        description="The destinations allowed (anything else is refused).",
    )


class EgressPublic(ApiModel):
    """A policy in effect: ``none`` (no network), ``full`` (the whole network, unsafe
    for model code) or ``allow_list`` (only ``allow``)."""

    mode: EgressMode
    allow: list[EgressRule] = Field(default_factory=list)

    @classmethod
    def of(cls, network: bool, allow: tuple[EgressRule, ...] | None) -> "EgressPublic":
        """The policy of a row: its allow-list if it has one, else its ``network``."""
        if allow is not None:
            return cls(mode="allow_list", allow=list(allow))
        return cls(mode="full" if network else "none")


class EgressRefusalPublic(ApiModel):
    """One connection the egress proxy refused."""

    at: float | None = Field(
        description="When, in seconds since the epoch (null: not known)."
    )
    kind: str = Field(
        description="`connect` (an HTTPS tunnel), `http` (a plain HTTP request), "
        "`tls` (a TLS server name that differs from the tunnel's host) or `auth` "
        "(no valid proxy credential)."
    )
    destination: str = Field(description="`host:port` as the sandbox asked for it.")
    reason: str = Field(description="Why it was refused.")


class BackendEgress(ApiModel):
    """A backend's egress policy in effect and the last connections its proxy
    refused (oldest first); empty unless its policy is an allow-list."""

    backend_id: str
    mode: EgressMode
    refusals: list[EgressRefusalPublic] = Field(default_factory=list)


class SecretPut(ApiModel):
    value: str = Field(
        min_length=8,
        max_length=8192,
        # A header's value: visible ASCII and spaces; no CR, LF or NUL to split it.
        pattern=r"^[ -~]+$",
        description="The secret's value: 8 to 8192 printable ASCII characters. "
        "Never returned by any route, never logged.",
    )


class SecretPublic(ApiModel):
    name: str
    updated_at: float = Field(description="When its value was last set, Unix seconds.")
