"""What an egress allow-list may name: the refusals, decided before a policy is stored.

Pure: no I/O but the public-suffix list read once from the ``publicsuffixlist`` wheel
(offline: never fetched at run time). ``check_policy`` raises ``InvalidRequest``
naming the entry and the reason; the egress proxy enforces what passes.
"""

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence

from publicsuffixlist import PublicSuffixList

from beephost_controller.schemas.egress import (
    SECRET_PLACEHOLDER,
    EgressPolicy,
    EgressRule,
)
from beephost_protocol.errors import InvalidRequest, Unauthorized

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: One DNS label (RFC 1123), lowercase: letters, digits and inner hyphens.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

#: Addresses a sandbox must never reach unless the operator names the range: cloud
#: metadata services first (each is inside a wider range below too, named for the
#: message), then private, shared, loopback, link-local, multicast and unspecified.
_FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("169.254.169.254/32", "a cloud metadata address"),
    ("fd00:ec2::254/128", "a cloud metadata address (AWS, IPv6)"),
    ("100.100.100.200/32", "a cloud metadata address (Alibaba)"),
    ("168.63.129.16/32", "a cloud platform address (Azure)"),
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private address (RFC 1918)"),
    ("172.16.0.0/12", "a private address (RFC 1918)"),
    ("192.168.0.0/16", "a private address (RFC 1918)"),
    ("100.64.0.0/10", "a shared address (RFC 6598)"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("::ffff:0:0/96", "an IPv4-mapped address"),
    ("fc00::/7", "a unique local address (ULA)"),
    ("fe80::/10", "a link-local address"),
    ("ff00::/8", "a multicast address"),
)
#: The same, as networks (the egress proxy checks each resolved address against them).
FORBIDDEN_NETWORKS: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why) for cidr, why in _FORBIDDEN
)
#: Names that are the sandbox's own host or the controller's (RFC 6761, RFC 6762).
_LOCAL_SUFFIXES = ("localhost", "local", "internal")


@functools.cache
def _suffixes() -> PublicSuffixList:
    # The list bundled in the wheel; unknown top-level labels count as public
    # suffixes (so `*.test` is refused, `*.api.test` is not).
    return PublicSuffixList(accept_unknown=True)


def check_policy(
    policy: EgressPolicy, internal_ranges: Mapping[str, Network] | None = None
) -> None:
    """Refuse an allow-list that names what no policy may.

    Args:
        internal_ranges: The operator's named internal ranges (the controller setting
            ``EGRESS_INTERNAL_RANGES``): a CIDR inside one may be private.

    Raises:
        InvalidRequest: An entry is refused; the message names it and says why.
    """
    for index, rule in enumerate(policy.allow):
        why = refusal(rule, internal_ranges or {})
        if why is not None:
            raise InvalidRequest(
                f"egress.allow[{index}] ({rule.destination!r}): {why}",
                {"entry": index, "destination": rule.destination},
            )


def refusal(rule: EgressRule, internal_ranges: Mapping[str, Network]) -> str | None:
    """Why ``rule`` is refused, or None if a policy may hold it."""
    if rule.host is not None:
        why = _host_refusal(rule.host)
    else:
        why = _cidr_refusal(str(rule.cidr), internal_ranges)
    if why is None and len(set(rule.ports)) != len(rule.ports):
        why = "a port is listed twice"
    if why is None and rule.secret is not None:
        why = _header_refusal(rule.secret.value)
    return why


def _host_refusal(host: str) -> str | None:
    if host == "*":
        return "'*' alone would allow every destination; name the hosts"
    if _is_address(host.strip("[]")):
        return "an address is not a host name; allow it as a cidr (e.g. '/32')"
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels) or len(name) > 253:
        return (
            "not a host name: lowercase labels of letters, digits and inner hyphens, "
            "separated by dots, with at most one leading '*.' wildcard"
        )
    if labels[-1] in _LOCAL_SUFFIXES:
        return f"a '.{labels[-1]}' name is the host's own, never a service's"
    if labels[-1].isdigit():
        return "a top-level label is never all digits"
    if wildcard and _suffixes().is_public(name):
        return (
            f"'*.{name}' would allow every site under the public suffix {name!r}; "
            "a wildcard may cover one registrable domain (e.g. '*.example.com')"
        )
    return None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _cidr_refusal(cidr: str, internal_ranges: Mapping[str, Network]) -> str | None:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        return f"not a CIDR: {exc}"
    inside = next(
        (name for name, r in internal_ranges.items() if _within(network, r)), None
    )
    if inside is not None:
        return None
    if network.prefixlen == 0:
        return "the whole address space would allow every destination"
    hits = [
        (forbidden, why)
        for forbidden, why in FORBIDDEN_NETWORKS
        if network.version == forbidden.version and network.overlaps(forbidden)
    ]
    if not hits:
        return None
    # The range that holds it says most (100.64.0.0/10 is shared space, though it
    # holds a metadata address); else the first it overlaps.
    forbidden, why = next(((f, w) for f, w in hits if _within(network, f)), hits[0])
    return (
        f"{why} ({forbidden}); an operator allows an internal range by naming it "
        "in the controller setting EGRESS_INTERNAL_RANGES"
    )


def _within(network: Network, outer: Network) -> bool:
    return network.version == outer.version and network.subnet_of(outer)  # type: ignore[arg-type]  # same version


def _header_refusal(value: str) -> str | None:
    if value.count(SECRET_PLACEHOLDER) != 1:
        return f"a secret's header value holds {SECRET_PLACEHOLDER} exactly once"
    rest = value.replace(SECRET_PLACEHOLDER, "")
    if "{" in rest or "}" in rest:
        return f"{SECRET_PLACEHOLDER} is the only placeholder a header value may hold"
    if not all(" " <= c <= "~" for c in rest):
        return "a header value is printable ASCII (no CR, LF or NUL)"
    return None


def check_start(
    allow: Sequence[EgressRule] | None,
    internal_ranges: Mapping[str, str],
    secret_exists: Callable[[str], bool],
) -> None:
    """A start's allow-list, checked again when it starts (the operator's ranges may
    have changed since its environment was made), and the secrets it names, which
    must be stored by then (they are looked up at each start, never copied).

    Raises:
        InvalidRequest: An entry is refused, or names a secret that is not stored.
    """
    if allow is None:
        return
    check_policy(
        EgressPolicy(allow=list(allow)), parse_internal_ranges(internal_ranges)
    )
    missing = [name for name in secret_names(allow) if not secret_exists(name)]
    if missing:
        raise InvalidRequest(
            f"the egress policy names secrets that are not stored: "
            f"{', '.join(missing)} (an operator stores one with `beep-host secret "
            "set NAME`)",
            {"secrets": missing},
        )


def refuse_scoped_secrets(caller: str | None, policy: EgressPolicy | None) -> None:
    """Only the controller's token attaches a stored secret to a destination: an
    admin backend's token (``caller``) runs model code, which could send a secret to
    a server of its own choosing.

    Raises:
        Unauthorized: A scoped token's policy names a secret.
    """
    names = secret_names(policy)
    if caller is not None and names:
        raise Unauthorized(
            "only the controller's token may name stored secrets in an egress "
            "policy; an admin backend's token may not",
            {"secrets": names},
        )


def parse_internal_ranges(ranges: Mapping[str, str]) -> dict[str, Network]:
    """The settings' named ranges as networks.

    Raises:
        ValueError: A range is not a CIDR.
    """
    return {name: ipaddress.ip_network(cidr) for name, cidr in ranges.items()}


def secret_names(policy: EgressPolicy | Sequence[EgressRule] | None) -> list[str]:
    """The stored secrets a policy names, each once, in order."""
    rules = policy.allow if isinstance(policy, EgressPolicy) else policy or ()
    names = (rule.secret.secret for rule in rules if rule.secret is not None)
    return list(dict.fromkeys(names))
