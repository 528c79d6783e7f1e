"""The wire models build their validators on first use, except in the client SDK.

Fresh interpreters: this test's own process has long used (and so built) the models.
"""

import subprocess
import sys

COUNT = (
    "from beephost_protocol._base import _Model\n"
    "def count(complete):\n"
    "    found, pending = 0, list(_Model.__subclasses__())\n"
    "    while pending:\n"
    "        model = pending.pop()\n"
    "        pending.extend(model.__subclasses__())\n"
    "        found += model.__pydantic_complete__ is complete\n"
    "    return found\n"
)


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", COUNT + code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_server_builds_only_the_models_it_uses() -> None:
    out = run(
        "import beephost_protocol\n"
        "from beephost_protocol.models import Evaluate\n"
        "deferred = count(False)\n"
        "assert Evaluate.model_validate({'expression': '1+1'}).expression == '1+1'\n"
        "print(deferred, count(True))\n"
    )
    deferred, built = map(int, out.split())
    assert deferred > 40  # every command, result and file model, at import
    assert built == 1  # Evaluate alone, by its first validation


def test_the_client_builds_every_model_on_import() -> None:
    out = run("import beephost_client\nprint(count(False), count(True))\n")
    deferred, built = map(int, out.split())
    assert (deferred, built > 40) == (0, True)


def test_build_models_builds_what_is_left_and_says_how_many() -> None:
    out = run(
        "from beephost_protocol import build_models\n"
        "from beephost_protocol.models import Evaluate\n"
        "Evaluate.model_validate({'expression': '1'})\n"
        "first = build_models()\n"
        "print(first, build_models(), count(False))\n"
    )
    first, again, deferred = map(int, out.split())
    assert first > 40
    assert (again, deferred) == (0, 0)
