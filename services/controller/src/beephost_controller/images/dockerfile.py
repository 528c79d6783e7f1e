"""Backend Dockerfiles as text: split into instructions, and checked for offline builds."""

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from beephost_controller.images.errors import BackendImageError
from beephost_controller.images.layout import INSTALL_SCRIPT_NAME, WHEELHOUSE

_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: upper-case name, raw arguments, stage index."""

    name: str
    args: str
    stage: int


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Dockerfile variable expansion of ``$VAR`` and ``${VAR}`` (unknown: empty)."""
    return _VAR_RE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions: comments dropped, continuations joined.

    Instructions before the first ``FROM`` (global ``ARG``s) have stage ``-1``.
    """
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = (pending + stripped).strip()
        pending = ""
        if not line:
            continue
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        instructions.append(Instruction(name=name, args=args.strip(), stage=stage))
    if pending.strip():
        name, _, args = pending.strip().partition(" ")
        instructions.append(Instruction(name=name.upper(), args=args, stage=stage))
    return instructions


def parse_label_args(args: str, variables: Mapping[str, str]) -> dict[str, str]:
    """``LABEL k=v k2="v 2"`` arguments as a dict, after variable expansion."""
    labels: dict[str, str] = {}
    for word in shlex.split(substitute(args, variables)):
        key, sep, value = word.partition("=")
        if not sep:
            raise BackendImageError(f"LABEL without '=': {word!r}")
        labels[key] = value
    return labels


def check_dockerfile(text: str) -> list[str]:
    """What a backend Dockerfile must respect to build offline with the legacy builder.

    Returns:
        The problems found; empty when the Dockerfile is fine.
    """
    problems: list[str] = []
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if re.match(r"#\s*syntax\s*=", first, re.IGNORECASE):
        problems.append("a '# syntax=' line makes BuildKit pull a frontend image")
    instructions = dockerfile_instructions(text)
    stages = max((instruction.stage for instruction in instructions), default=-1) + 1
    if stages < 2:
        problems.append("needs a build stage and a final stage")
    for instruction in instructions:
        flags = instruction.args.split()[:3]
        if instruction.name == "RUN" and any(f.startswith("--mount") for f in flags):
            problems.append("RUN --mount needs BuildKit")
    final = [i for i in instructions if i.stage == stages - 1]
    # The install steps live in one script (layout.INSTALL_SCRIPT), not in each file.
    install = f"{WHEELHOUSE}/{INSTALL_SCRIPT_NAME}"
    if not any(
        i.name == "RUN" and install in i.args and i.stage == 0 for i in instructions
    ):
        problems.append(f"the build stage must run {install}")
    users = [i.args for i in final if i.name == "USER"]
    if not users or not re.match(r"^[1-9][0-9]*(:[0-9]+)?$", users[-1]):
        problems.append("the final stage must end as a numeric non-root USER")
    if not any(i.name == "HEALTHCHECK" for i in final):
        problems.append("the final stage needs a HEALTHCHECK")
    if any(i.name == "COPY" and "/wheels" in i.args for i in final):
        problems.append("the wheelhouse must stay in the build stage")
    return problems
