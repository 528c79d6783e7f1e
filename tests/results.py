"""The wire form of an exec result, for every test tier."""

from typing import Any

#: The keys a rich result adds (``models.ExecResult``: only when something was shown).
_RICH = frozenset({"outputs", "outputs_dropped"})


def exec_result(**fields: Any) -> dict[str, Any]:
    """An exec result as every transport sends it (docs/protocol/http.md, pipe.md,
    rpc.md): no output, no value, nothing dropped, then ``fields`` over that.

    Written out key by key, so a test comparing a whole reply with it still notices
    a key added or gone; ``fields`` may only set these keys or the rich ones.
    """
    plain: dict[str, Any] = {
        "stdout": "",
        "stderr": "",
        "value": None,
        "has_value": False,
        "stdout_dropped": 0,
        "stderr_dropped": 0,
    }
    unknown = set(fields) - set(plain) - _RICH
    assert not unknown, f"no key of an exec result: {sorted(unknown)}"
    return {**plain, **fields}
