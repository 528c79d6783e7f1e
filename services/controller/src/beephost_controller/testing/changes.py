"""The ``docker import``/``commit`` changes, as the fakes read them: labels only."""

import re
from collections.abc import Callable, Sequence

from beephost_controller.ports import ContainerEngineError

#: A ``LABEL key="value"`` change of ``docker import``/``commit``, as the fakes read it.
_LABEL_RE = re.compile(r'^LABEL ([A-Za-z0-9._/-]+)=(".*")$')


def unquote_word(quoted: str) -> str:
    """A double-quoted Dockerfile word as the engine reads it in a ``LABEL``: inside
    the quotes a backslash escapes ``"``, ``\\`` and ``$``, and stays otherwise."""
    body, out, i = quoted[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '"\\$':
            out.append(body[i + 1])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def change_labels(
    changes: Sequence[str],
    *,
    operation: str,
    accepted: tuple[str, ...],
    unquote: Callable[[str], str],
) -> dict[str, str]:
    """The labels the ``LABEL`` changes set; any other change must start with one of
    ``accepted`` (what the engine's ``operation`` takes).

    Raises:
        ContainerEngineError: A change is malformed, or not one ``operation`` accepts.
    """
    labels: dict[str, str] = {}
    for change in changes:
        if change.startswith("LABEL "):
            match = _LABEL_RE.match(change)
            if match is None:
                raise ContainerEngineError(f"{operation}: malformed change {change!r}")
            labels[match.group(1)] = unquote(match.group(2))
        elif not change.startswith(accepted):
            raise ContainerEngineError(f"{operation}: unsupported change {change!r}")
    return labels
