"""The controller reads a backend's idleness from its last health check's output."""

from beephost_controller.runtime.docker_containers import reported_idle


def test_the_last_check_counts() -> None:
    log = [{"Output": "ready idle=5\n"}, {"Output": "ready idle=12\n"}]
    assert reported_idle(log) == 12.0
    assert reported_idle([{"Output": "ready\n"}]) is None
    assert reported_idle([{"Output": "ready idle=x"}]) is None
    assert reported_idle([]) is None
    assert reported_idle([{"Output": None}]) is None
