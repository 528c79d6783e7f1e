"""A backend pod's own firewall: the nftables ruleset its init container installs.

A NetworkPolicy is only as good as the cluster's CNI: the ``bridge`` plugin (and
others) accept one and enforce nothing, and then a backend "without network" reaches
the whole cluster. So a pod without network also gets rules in its own network
namespace, installed before the backend's container starts by an init container
that runs the pod's image (the base images carry ``nft``) as root with
``NET_ADMIN`` alone, and exits. The backend's container has no capability to change
them, and its user code runs in it.

The rules, IPv4 and IPv6 (``inet``): out, loopback and the replies of connections
made to the pod, plus the ``allowed`` destinations; in, loopback and the backend's
port. Anything else is refused at once (a TCP reset, an ICMP "administratively
prohibited"), never dropped into a timeout, so code learns it has no network as fast
as on Docker, where such a backend has no interface at all.
"""

from collections.abc import Sequence
from dataclasses import dataclass

#: The init container's name (``kubectl logs POD -c firewall``).
FIREWALL_CONTAINER = "firewall"
#: Where the base images have it (Debian's ``nftables`` package).
NFT = "/usr/sbin/nft"
#: The table of ours in the pod's network namespace.
TABLE = "beephost"


@dataclass(frozen=True)
class Destination:
    """An address and TCP port a pod may connect to (an egress proxy's)."""

    address: str
    port: int

    @property
    def family(self) -> str:
        return "ip6" if ":" in self.address else "ip"


def ruleset(port: int, allowed: Sequence[Destination] = ()) -> str:
    """The nftables ruleset of a pod whose server listens on ``port``.

    The table is made, emptied and written again in one transaction: an init
    container that runs twice in one namespace leaves one copy of the rules.
    """
    out = [f"{d.family} daddr {d.address} tcp dport {d.port} accept" for d in allowed]
    lines = [
        f"table inet {TABLE} {{}}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "  chain output {",
        "    type filter hook output priority 0; policy drop;",
        '    oif "lo" accept',
        "    ct state established,related accept",
        *(f"    {rule}" for rule in out),
        "    meta l4proto tcp reject with tcp reset",
        "    reject with icmpx type admin-prohibited",
        "  }",
        "  chain input {",
        "    type filter hook input priority 0; policy drop;",
        '    iif "lo" accept',
        "    ct state established,related accept",
        f"    tcp dport {port} accept",
        "    meta l4proto tcp reject with tcp reset",
        "    reject with icmpx type admin-prohibited",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def init_container(image: str, rules: str) -> dict[str, object]:
    """The init container that installs ``rules`` with the pod's ``image``.

    Root with ``NET_ADMIN`` only (``nft`` needs both), no privilege escalation, a
    read-only root; the ruleset is its argument (it holds no secret).
    """
    return {
        "name": FIREWALL_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [NFT, rules],
        "resources": {
            "limits": {"cpu": "100m", "memory": "32Mi"},
            "requests": {"cpu": "10m", "memory": "32Mi"},
        },
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
