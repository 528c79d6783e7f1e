"""The egress proxy's configuration: the one file the controller hands it.

One JSON file holds every backend's allow-list, keyed by backend id, each with the
SHA-256 of that backend's proxy credential. A sandbox names itself in the proxy URL it
is given (``http://BACKEND_ID:TOKEN@proxy:3128``, sent as ``Proxy-Authorization:
Basic``); the proxy applies the policy of the backend whose token matches. A sandbox
knows only its own token, so it cannot borrow another's policy; its source address is
not trusted (an address on a shared network says nothing a sandbox cannot change).

The file also holds the values of the secrets the policies name, so it is read by the
proxy alone: ``load`` refuses a file that others may read (mode 0600, like the
controller's secrets store).
"""

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from beephost_controller.egress import Network, parse_internal_ranges
from beephost_controller.schemas.egress import EgressRule


class ProxyBackend(BaseModel):
    """One backend's allow-list and the digest of its proxy credential."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    allow: list[EgressRule]


class ProxyConfig(BaseModel):
    """Everything the proxy enforces, written by the controller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backends: dict[str, ProxyBackend] = Field(default_factory=dict)
    #: The values of the secrets the backends' policies name, by name.
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)
    #: Addresses never reached whatever a policy says: the controller's own.
    blocked: list[str] = Field(default_factory=list)
    #: The operator's named internal ranges (EGRESS_INTERNAL_RANGES).
    internal_ranges: dict[str, str] = Field(default_factory=dict)
    #: Names the proxy resolves from this map instead of DNS (a test's fake internet,
    #: or services without DNS); each answer is still checked.
    hosts: dict[str, list[str]] = Field(default_factory=dict)

    def blocked_networks(self) -> list[Network]:
        return [ipaddress.ip_network(cidr) for cidr in self.blocked]

    def internal_networks(self) -> dict[str, Network]:
        return parse_internal_ranges(self.internal_ranges)


class ConfigError(Exception):
    """The configuration file cannot be used (unreadable, readable by others, invalid)."""


def load(path: Path) -> ProxyConfig:
    """Read and check the file.

    Raises:
        ConfigError: It is missing, readable or writable by others, or not a valid
            configuration (the message never quotes a secret).
    """
    try:
        mode = os.stat(path).st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} holds secrets and is mode {stat.S_IMODE(mode):o}: make it 0600"
        )
    try:
        return ProxyConfig.model_validate_json(text)
    except ValidationError as exc:
        # Pydantic's message would quote the input, secrets included: give the places.
        places = [
            ".".join(map(str, error["loc"])) or error["type"]
            for error in exc.errors(include_input=False)
        ]
        raise ConfigError(
            f"{path} is not a valid egress proxy configuration: {places}"
        ) from None


def token_digest(token: str) -> str:
    """The digest the configuration keeps of a backend's proxy credential."""
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(
    config: ProxyConfig, proxy_authorization: str | None
) -> tuple[str, ProxyBackend] | None:
    """The backend a ``Proxy-Authorization: Basic`` header names, if its token is
    that backend's; None for a missing, malformed or wrong credential."""
    if proxy_authorization is None:
        return None
    scheme, _, encoded = proxy_authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    backend_id, separator, token = decoded.partition(":")
    backend = config.backends.get(backend_id)
    if not separator or backend is None:
        return None
    if not hmac.compare_digest(token_digest(token), backend.token_sha256):
        return None
    return backend_id, backend
