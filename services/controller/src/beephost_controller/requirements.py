"""Requirements as the API takes them: plain PEP 508 specifiers, nothing else.

A requirement goes to uv as one line of a requirements file, where uv would honour
options (``--index-url``), line continuations and ``${VAR}`` expansion: a requirement
naming ``${BEEPHOST_CONTROLLER_TOKEN}`` in a URL would send the token anywhere. So
every requirement is parsed here with ``packaging`` and refused, with a reason a person
can read, unless it is a plain ``name[extras] specifier ; marker``. Direct references
(``name @ https://...``, VCS, ``file:``) are refused unless the operator allows their
URL scheme (``Settings.requirement_url_schemes``).
"""

from collections.abc import Collection, Iterable, Sized
from typing import Annotated

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import AfterValidator

from beephost_protocol.errors import InvalidRequest


class RequirementRefused(ValueError):
    """Not a requirement the controller resolves; ``str()`` says why, in words."""


def check_syntax(line: str) -> Requirement:
    """Parse one requirement, refusing what uv would read as more than a requirement.

    Raises:
        RequirementRefused: An option, a continuation, a variable, or no PEP 508 text.
    """
    text = line.strip()
    if not text:
        raise RequirementRefused("an empty requirement")
    if "\n" in text or "\r" in text:
        raise RequirementRefused(f"{line!r}: one requirement per entry, no line breaks")
    if text.startswith("-"):
        raise RequirementRefused(
            f"{line!r}: options are not allowed; the package index is the "
            "controller's setting"
        )
    if text.endswith("\\"):
        raise RequirementRefused(f"{line!r}: a trailing backslash (line continuation)")
    if "$" in text:
        raise RequirementRefused(
            f"{line!r}: '$' is not allowed: environment variables are never expanded"
        )
    if " --" in text or "\t--" in text:
        raise RequirementRefused(
            f"{line!r}: options are not allowed after a requirement"
        )
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        raise RequirementRefused(
            f"{line!r} is not a PEP 508 requirement ({reason})"
        ) from None


def check_policy(requirement: Requirement, url_schemes: Collection[str]) -> None:
    """Refuse a direct reference whose URL scheme the operator did not allow.

    Raises:
        RequirementRefused: ``name @ <url>`` with a scheme not in ``url_schemes``.
    """
    if requirement.url is None:
        return
    scheme = requirement.url.partition(":")[0].lower()
    if scheme not in url_schemes:
        allowed = ", ".join(sorted(url_schemes)) or "none"
        raise RequirementRefused(
            f"{requirement.name} @ {requirement.url}: direct references "
            f"({scheme}: URLs) are not allowed here (allowed URL schemes: {allowed}; "
            "setting BEEPHOST_CONTROLLER_REQUIREMENT_URL_SCHEMES)"
        )


def check_requirements(lines: Iterable[str], url_schemes: Collection[str]) -> None:
    """``check_syntax`` and ``check_policy`` of every line, as the API reports them.

    Raises:
        InvalidRequest: The first line refused, with why (``data.requirement``: it).
    """
    for line in lines:
        try:
            check_policy(check_syntax(line), url_schemes)
        except RequirementRefused as exc:
            raise InvalidRequest(str(exc), {"requirement": line}) from None


def check_count(requirements: Sized, limit: int) -> None:
    """Refuse more requirements than one resolution may take
    (``Settings.max_requirements``): uv holds them all, and all they pull in, in
    memory, and 10,000 outgrow a controller with 1 GiB.

    Raises:
        InvalidRequest: More than ``limit`` (``data``: the count and the limit).
    """
    count = len(requirements)
    if count > limit:
        raise InvalidRequest(
            f"{count} requirements: at most {limit} are resolved at once; name fewer "
            "(the limit is the controller's setting "
            "BEEPHOST_CONTROLLER_MAX_REQUIREMENTS)",
            {"requirements": count, "limit": limit},
        )


def parse_requirements_txt(text: str) -> list[str]:
    """Requirement lines of a requirements.txt; anything but a plain PEP 508 line
    (options such as ``-r`` or ``--index-url``, continuations, variables) is refused.

    Raises:
        ValueError: A line is no plain requirement (RequirementRefused).
    """
    requirements = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        check_syntax(line)
        requirements.append(line)
    return requirements


def normalize(requirements: list[str]) -> list[str]:
    """One canonical order and spelling, so equal environments compare equal."""
    return sorted(
        {" ".join(r.split()) for r in requirements if r.strip()}, key=str.lower
    )


def _plain(lines: list[str]) -> list[str]:
    for line in lines:
        check_syntax(line)
    return lines


#: PEP 508 requirements, each refused unless plain (no options, no ``$``), as a
#: field of a request model.
PlainRequirements = Annotated[list[str], AfterValidator(_plain)]
