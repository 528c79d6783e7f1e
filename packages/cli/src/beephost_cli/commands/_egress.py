"""``--allow`` and ``--secret``: an egress allow-list from the command line, and its
one-line summary in ``status`` and ``venv status``.

Sans-I/O: the options' text becomes the policy the controller takes
(``{"allow": [...]}``); the controller decides what a policy may name.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import typer

from beephost_client.controller import Egress

AllowOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow",
        metavar="DEST",
        help="Allow a destination (repeat it): HOST, *.DOMAIN or CIDR, each with an "
        "optional :PORT[,PORT...] (default 443 and 80), e.g. api.example.com:443, "
        "10.1.2.0/24:5432, [2001:db8::/32]:443. Nothing else is reachable.",
    ),
]
SecretOption = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        metavar="DEST=NAME[;HEADER: VALUE]",
        help="Put the stored secret NAME into a header of the requests to an --allow "
        "destination; default 'Authorization: Bearer {secret}'. The sandbox never "
        "sees it.",
    ),
]


def egress_policy(
    allow: Sequence[str] | None, secrets: Sequence[str] | None
) -> dict[str, Any] | None:
    """The policy of ``--allow`` and ``--secret`` options (None: neither given).

    Raises:
        typer.BadParameter: A destination, port list or secret is malformed, or a
            secret names no ``--allow`` destination.
    """
    if not allow:
        if secrets:
            raise typer.BadParameter("--secret attaches to an --allow destination")
        return None
    entries = [_entry(text) for text in allow]
    by_destination = {str(e.get("host") or e.get("cidr")): e for e in entries}
    for text in secrets or ():
        destination, header = _secret(text)
        entry = by_destination.get(destination)
        if entry is None:
            raise typer.BadParameter(
                f"--secret {destination}: no --allow {destination} to attach it to"
            )
        entry["secret"] = header
    return {"allow": entries}


def _entry(text: str) -> dict[str, Any]:
    if text.startswith("["):  # [IPv6 CIDR] or [IPv6 CIDR]:PORTS
        cidr, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise typer.BadParameter(f"--allow {text}: expected [CIDR] or [CIDR]:PORTS")
        return _with_ports({"cidr": cidr}, rest[1:] if rest else None, text)
    if "/" in text and text.count(":") > 1:  # an IPv6 CIDR without ports
        return {"cidr": text}
    destination, colon, ports = text.rpartition(":")
    if not colon:
        destination, ports = text, ""
    key = "cidr" if "/" in destination else "host"
    return _with_ports({key: destination}, ports or None, text)


def _with_ports(entry: dict[str, Any], ports: str | None, text: str) -> dict[str, Any]:
    if ports is None:
        return entry
    try:
        entry["ports"] = [int(port) for port in ports.split(",")]
    except ValueError:
        raise typer.BadParameter(
            f"--allow {text}: ports are numbers separated by commas"
        ) from None
    return entry


def _secret(text: str) -> tuple[str, dict[str, str]]:
    destination, equals, rest = text.partition("=")
    name, semicolon, line = rest.partition(";")
    if not equals or not destination or not name:
        raise typer.BadParameter(f"--secret {text}: expected DEST=NAME[;HEADER: VALUE]")
    header = {"secret": name}
    if semicolon:
        field, colon, value = line.partition(":")
        if not colon or not field.strip():
            raise typer.BadParameter(
                f"--secret {destination}={name}: the header is 'NAME: VALUE'"
            )
        header |= {"header": field.strip(), "value": value.strip()}
    return destination, header


def egress_summary(egress: Egress) -> str:
    """``none``, ``full (unsafe for model code)`` or the allow-list in one line."""
    if egress.mode == "full":
        return "full network (unsafe for model code)"
    if egress.mode != "allow_list":
        return egress.mode
    return "allow " + ", ".join(_describe(entry) for entry in egress.allow)


def _describe(entry: Mapping[str, Any]) -> str:
    destination = str(entry.get("host") or entry.get("cidr"))
    if ":" in destination:
        destination = f"[{destination}]"
    ports: Iterable[object] = entry.get("ports") or ()
    text = f"{destination}:{','.join(map(str, ports))}"
    secret = entry.get("secret")
    if isinstance(secret, Mapping):
        text += f" (+{secret.get('header')} from secret {secret.get('secret')})"
    return text
