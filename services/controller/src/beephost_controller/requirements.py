"""Requirements as the API takes them: plain PEP 508 specifiers, nothing else.

A requirement goes to uv as one line of a requirements file, where uv would honour
options (``--index-url``), line continuations and ``${VAR}`` expansion: a requirement
naming ``${BEEPHOST_CONTROLLER_TOKEN}`` in a URL would send the token anywhere. So
every requirement is parsed here with ``packaging`` and refused, with a reason a person
can read, unless it is a plain ``name[extras] specifier ; marker``. Direct references
(``name @ https://...``, VCS, ``file:``) are refused unless the operator allows their
URL scheme (``Settings.requirement_url_schemes``).
"""

from collections.abc import Collection, Iterable

from packaging.requirements import InvalidRequirement, Requirement

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
