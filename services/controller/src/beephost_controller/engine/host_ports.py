"""The host port of a new http or rpc backend: probed on the host, or drawn.

A controller on the host probes a free port; one in a container (where a free port
says nothing about the host) draws one from HOST_PORTS. Either way the engine has the
last word: a port taken meanwhile is retried with another (docker_launch.py).
"""

import random
import socket

from beephost_protocol.errors import Unavailable

#: Host ports a controller that cannot probe the host draws from: below Linux's
#: ephemeral range (32768-60999), where the engine's and the kernel's own picks fall.
HOST_PORTS = range(20000, 32768)


def free_port(host: str) -> int | None:
    """A free TCP port on ``host``; None if ``host`` is not an address of this machine
    (a controller in a container publishing on its host's address): Docker picks then.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
            return port
    except OSError:
        return None


def pick_port(host: str, taken: set[int], *, probe: bool) -> int:
    """A host port for a new backend, none of ``taken`` (other backends' ports: an
    exited one is not listening, yet its restart needs its port back).

    Args:
        probe: Whether ``host`` can be probed (settings.choose_host_ports).
    """
    for _ in range(100):
        probed = free_port(host) if probe else None
        port = probed or random.choice(HOST_PORTS)
        if port not in taken:
            return port
    raise Unavailable(f"no free host port on {host}")
