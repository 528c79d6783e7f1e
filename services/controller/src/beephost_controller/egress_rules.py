"""What the egress proxy decides for one request or tunnel: the enforcement of a
policy that ``egress.check_policy`` accepted.

Sans-I/O: the proxy (``services/egress-proxy/addon.py``) parses, resolves and
connects; these functions only decide, so every case is a row of a unit test. The
order the proxy follows: ``match`` the name and port (before any lookup, so a refused
name is never resolved), ``check_sni`` when the tunnel's TLS ClientHello is seen,
``check_addresses`` on every address the name resolves to (the proxy then connects to
the first of them, the address it checked: no second lookup to rebind), and
``secret_header`` for the header a matching rule puts on the request.
"""

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from beephost_controller.egress import FORBIDDEN_NETWORKS, Network
from beephost_controller.schemas.egress import SECRET_PLACEHOLDER, EgressRule

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Decision = Literal["allowed", "refused"]


@dataclass(frozen=True)
class Verdict:
    """A decision, why, and the rule that allowed it (None when refused)."""

    decision: Decision
    reason: str
    rule: EgressRule | None = None

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


def _refused(reason: str) -> Verdict:
    return Verdict("refused", reason)


def normalize_host(host: str) -> str:
    """A host as a request names it, as rules name it: lowercase, no brackets around
    an IPv6 address, no trailing dot (``API.example.com.`` is ``api.example.com``)."""
    return host.strip().strip("[]").rstrip(".").lower()


def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _host_matches(rule_host: str, host: str) -> bool:
    if rule_host.startswith("*."):
        # `*.example.com`: its subdomains at any depth, not example.com itself.
        return host.endswith(rule_host[1:])
    return host == rule_host


def _rule_matches(rule: EgressRule, host: str, address: Address | None) -> bool:
    if rule.host is not None:
        return address is None and _host_matches(rule.host, host)
    return address is not None and address in ipaddress.ip_network(str(rule.cidr))


def match(allow: Sequence[EgressRule], host: str, port: int) -> Verdict:
    """The first rule that allows ``host`` (a name, or an address for a CIDR rule)
    on ``port``, or a refusal saying whether the host or only the port is not
    allowed."""
    name = normalize_host(host)
    address = _address(name)
    rules = [rule for rule in allow if _rule_matches(rule, name, address)]
    if not rules:
        kind = "address" if address is not None else "host"
        return _refused(f"the {kind} {name!r} is not on the allow-list")
    for rule in rules:
        if port in rule.ports:
            return Verdict("allowed", f"allowed by {rule.destination!r}", rule)
    ports = sorted({p for rule in rules for p in rule.ports})
    return _refused(
        f"port {port} is not allowed for {name!r} (allowed: "
        f"{', '.join(map(str, ports))})"
    )


def check_sni(connect_host: str, sni: str | None) -> Verdict:
    """A tunnel's TLS server name must be its ``CONNECT`` name: a different one is
    domain fronting (an allowed name's address, another site's name). A ClientHello
    without a name is refused too, unless the tunnel names an address."""
    expected = normalize_host(connect_host)
    if sni is None:
        if _address(expected) is not None:
            return Verdict("allowed", "no server name for an address")
        return _refused(f"the TLS ClientHello names no server for {expected!r}")
    if normalize_host(sni) != expected:
        return _refused(
            f"the TLS server name {normalize_host(sni)!r} is not the CONNECT name "
            f"{expected!r}"
        )
    return Verdict("allowed", "the TLS server name is the CONNECT name")


def address_refusal(
    address: Address,
    blocked: Sequence[Network],
    internal_ranges: Mapping[str, Network],
) -> str | None:
    """Why the proxy must not connect to ``address``, or None.

    ``blocked`` (the controller's own addresses and its host's, or the proxy's node
    on Kubernetes) is refused always; an address in an
    operator's internal range is allowed; else private, loopback, link-local,
    metadata and the other ranges no policy may name are refused.
    """
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network in blocked:
        if address in network:
            return f"{address} is the controller's or its host's"
    for network in internal_ranges.values():
        if address in network:
            return None
    for network, why in FORBIDDEN_NETWORKS:
        if address in network:
            return f"{address} is {why}"
    return None


def check_addresses(
    host: str,
    addresses: Sequence[str],
    blocked: Sequence[Network] = (),
    internal_ranges: Mapping[str, Network] | None = None,
) -> Verdict:
    """Every address ``host`` resolved to must be allowed: one refused answer refuses
    the name (a name that resolves to a public and a private address is a rebinding
    attempt, whichever the proxy would pick)."""
    if not addresses:
        return _refused(f"{normalize_host(host)!r} resolves to no address")
    for text in addresses:
        why = address_refusal(
            ipaddress.ip_address(text), blocked, internal_ranges or {}
        )
        if why is not None:
            return _refused(f"{normalize_host(host)!r} resolves to {why}")
    return Verdict("allowed", f"{normalize_host(host)!r} resolves to allowed addresses")


def intercepted(rule: EgressRule | None) -> bool:
    """Whether the proxy intercepts TLS to this rule's destinations: only those that
    carry a secret; every other tunnel stays end-to-end TLS."""
    return rule is not None and rule.secret is not None


def secret_header(
    rule: EgressRule | None, secrets: Mapping[str, str]
) -> tuple[str, str] | None:
    """The header (name, value) to add or replace on a request the rule allowed, or
    None when the rule carries no secret.

    Raises:
        KeyError: The rule names a secret the proxy was not given (the controller
            refuses such a start, so this is a configuration error).
    """
    if rule is None or rule.secret is None:
        return None
    value = rule.secret.value.replace(SECRET_PLACEHOLDER, secrets[rule.secret.secret])
    return rule.secret.header, value
