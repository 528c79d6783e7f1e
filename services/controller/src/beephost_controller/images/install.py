"""An environment image's install step: the container's script and the commit's changes.

The container runs as root, without network, on the servers image, with the wheelhouse
at ``/wheels``: it installs the lock (and an admin image's SDK) into ``/opt/env`` with
uv when the host's uv runs there, else with the base's bundled pip, then removes
``/wheels``; the commit sets the servers' user and the image's labels.
"""

from collections.abc import Mapping

from beephost_controller.images.labels import quote_label_value
from beephost_controller.images.layout import (
    ENV_PYTHON,
    SDK_REQUIREMENTS_FILE,
    SERVER_USER,
    WHEELHOUSE,
)


def _install_command(requirements_file: str, *, no_deps: bool) -> str:
    """Install one hash-pinned requirements file of /wheels into /opt/env, offline."""
    deps = " --no-deps" if no_deps else ""
    return (
        f"if [ -x {WHEELHOUSE}/uv ]; then \\\n"
        "        UV_CACHE_DIR=/tmp/uv-cache UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never \\\n"
        f"        {WHEELHOUSE}/uv pip install --quiet --python {ENV_PYTHON} \\\n"
        f"            --offline --no-index --find-links {WHEELHOUSE} --require-hashes --no-build \\\n"
        f"            --compile-bytecode --link-mode=copy{deps} -r {WHEELHOUSE}/{requirements_file}; \\\n"
        "        rm -rf /tmp/uv-cache; \\\n"
        "    else \\\n"
        "        set -- /usr/share/python-wheels/pip-*.whl; \\\n"
        f'        {ENV_PYTHON} "$1/pip" install --quiet --no-cache-dir \\\n'
        f"            --disable-pip-version-check --no-index --find-links {WHEELHOUSE} \\\n"
        f"            --require-hashes --only-binary=:all:{deps} -r {WHEELHOUSE}/{requirements_file}; \\\n"
        "    fi"
    )


def install_script(*, install: bool, sdk: bool) -> str:
    """The install container's ``sh -c`` script: the lock, then the SDK, into /opt/env.

    ``install``: the wheelhouse has a ``requirements.txt`` (a non-empty lock). ``sdk``:
    it has ``sdk.txt`` (the SDK's wheels, installed after the lock without
    dependencies). Files are created with umask 022: readable by the servers' user.
    The wheelhouse is removed at the end, so the committed layer holds /opt/env only.
    """
    steps = ["set -eu", "umask 022"]
    if install:
        steps.append(_install_command("requirements.txt", no_deps=False))
    if sdk:
        steps.append(_install_command(SDK_REQUIREMENTS_FILE, no_deps=True))
    steps.append(f"rm -rf {WHEELHOUSE}")
    return "\n".join(steps) + "\n"


def commit_changes(labels: Mapping[str, str]) -> list[str]:
    """The commit's Dockerfile instructions: the servers' user, then one LABEL each.

    Keys are plain (``check_label_keys``); values are double-quoted, with the three
    characters the engine's LABEL parser interprets there (``\\``, ``"``, ``$``)
    escaped: a ``$HOME`` in a label stays ``$HOME``.
    """
    return [f"USER {SERVER_USER}"] + [
        f"LABEL {key}={quote_label_value(value)}" for key, value in labels.items()
    ]
