"""A host group reaches pipe backends' sockets (BEEPHOST_CONTROLLER_PIPE_SOCKET_GROUP).

This module's controller runs as root (as on these machines) with a socket group and
a socket root every host user may traverse; a process of an unprivileged uid connects
to a pipe backend's socket with that group, and is refused without it.
"""

import os
import shutil
import socket
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from beephost_client.controller import ControllerClient
from tests.e2e.controller_process import (
    ControllerProcess,
    module_controller,
    stopped_after,
)

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.geteuid() != 0, reason="switches to another uid: needs root"),
]

GROUP = 4242
#: A host user without a name, and without the group unless it is given.
OUTSIDER = 23456


@dataclass
class GroupController(ControllerProcess):
    """A controller whose socket root every host user may traverse (its sockets'
    group is a setting: ``GROUP``, below)."""

    shared_root: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    )

    @property
    def socket_root(self) -> Path:
        return self.shared_root / "sockets"

    def __post_init__(self) -> None:
        self.shared_root.chmod(0o755)  # every host user may traverse it

    def remove_owned(self) -> None:
        super().remove_owned()
        shutil.rmtree(self.shared_root, ignore_errors=True)


controller = module_controller(
    "grouped", {"PIPE_SOCKET_GROUP": str(GROUP)}, kind=GroupController
)


def _pings_as(uid: int, groups: list[int], path: str) -> int:
    """Exit status of a child that becomes ``uid`` with ``groups`` and pings ``path``:
    0 answered, 1 no pong, 2 refused (PermissionError), 3 another error."""
    pid = os.fork()
    if pid == 0:  # the child: only syscalls, then _exit
        code = 3
        try:
            os.setgroups(groups)
            os.setgid(groups[0] if groups else uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(path)
                sock.sendall(b'{"id": 1, "type": "ping"}\n')
                code = 0 if b'"pong"' in sock.recv(4096) else 1
        except PermissionError:
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_members_of_the_socket_group_reach_a_pipe_backend(
    api: ControllerClient,
) -> None:
    env = api.create_environment("grouped")
    assert env.job_id is not None
    assert api.wait_job(env.job_id, timeout=600).succeeded
    backend = api.wait_backend(api.start_backend("grouped", "pipe").id, timeout=60)
    with stopped_after(api, backend):
        assert backend.endpoint is not None
        path = backend.endpoint.removeprefix("unix://")
        directory = os.stat(os.path.dirname(path))
        assert (directory.st_uid, directory.st_gid) == (10001, GROUP)
        assert stat.S_IMODE(directory.st_mode) == 0o2770
        sock = os.stat(path)
        assert sock.st_gid == GROUP, "the setgid directory gave the socket its group"
        assert stat.S_IMODE(sock.st_mode) == 0o660
        assert _pings_as(OUTSIDER, [GROUP], path) == 0
        assert _pings_as(OUTSIDER, [], path) == 2
    api.delete_environment("grouped")
