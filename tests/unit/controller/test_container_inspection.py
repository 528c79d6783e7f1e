"""What the controller reads of a container's inspection: its server's idleness, from
its last health check's output, and a network it has not joined yet."""

from beephost_controller.engine.docker_containers import (
    reported_idle,
    unjoined_network,
)


def test_the_last_check_counts() -> None:
    log = [{"Output": "ready idle=5\n"}, {"Output": "ready idle=12\n"}]
    assert reported_idle(log) == 12.0
    assert reported_idle([{"Output": "ready\n"}]) is None
    assert reported_idle([{"Output": "ready idle=x"}]) is None
    assert reported_idle([]) is None
    assert reported_idle([{"Output": None}]) is None


def _attrs(mode: str, *joined: str) -> dict[str, object]:
    networks: dict[str, object] = {name: {} for name in joined}
    return {
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": networks},
    }


def test_a_network_created_for_and_not_joined_is_unjoined() -> None:
    assert unjoined_network(_attrs("beephost-x-offline")) == "beephost-x-offline"
    assert unjoined_network(_attrs("beephost-x-offline", "beephost-x-offline")) is None
    # The engine spells the default bridge "default" in the mode, "bridge" when joined.
    assert unjoined_network(_attrs("default")) == "bridge"
    assert unjoined_network(_attrs("default", "bridge")) is None
    assert unjoined_network(_attrs("bridge")) == "bridge"
    for mode in ("none", "host", "container:abc", ""):
        assert unjoined_network(_attrs(mode)) is None
    assert unjoined_network({}) is None
