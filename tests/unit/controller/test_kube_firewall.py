"""A backend pod's own firewall: its ruleset, its init container, when a start gets
one, and what a failed install says (the rules' effect is tested on a real cluster,
tests/cluster/test_kube_engine.py)."""

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from beephost_controller.engine import kube_manifests as km
from beephost_controller.engine.kube_firewall import (
    FIREWALL_CONTAINER,
    NFT,
    Destination,
    ruleset,
)
from beephost_controller.engine.kube_plan import plan
from beephost_controller.engine.kube_status import pod_state
from beephost_controller.kube_settings import KubernetesSettings
from beephost_controller.schemas import BackendOptions
from beephost_controller.settings import Settings
from beephost_controller.starts import BackendRequest, Minted
from beephost_protocol.errors import InvalidRequest
from tests.unit.controller.support import ready_environment
from tests.unit.controller.test_kube_manifests import PLAN, VERSIONS

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = Settings(name="ctl")
KUBE = KubernetesSettings(namespace="sandboxes", registry="r.example:5000/x")
MINTED = Minted("b-0123456789ab", "tok-" + "x" * 28, "ctl", 1000, 1000, "egress")


def _pod_plan(
    options: BackendOptions | None = None, kube: KubernetesSettings = KUBE
) -> km.PodPlan:
    request = BackendRequest("data", "http", options=options or BackendOptions())
    environment = ready_environment("data", image="local/env:1")
    _, layout = plan(request, environment, SETTINGS, kube, minted=MINTED, probe="exec")
    return layout.pod


def test_the_rules_refuse_everything_but_loopback_replies_and_the_port() -> None:
    rules = ruleset(8000)
    assert "policy drop;" in rules
    assert 'oif "lo" accept' in rules
    assert "tcp dport 8000 accept" in rules
    assert rules.count("ct state established,related accept") == 2
    # Refused at once, never into a timeout; no other accept than the above.
    assert rules.count("reject with tcp reset") == 2
    assert len(re.findall(r"\baccept\b", rules)) == 5
    # One transaction that replaces the table: running twice leaves one copy.
    assert rules.splitlines()[:2] == [
        "table inet beephost {}",
        "delete table inet beephost",
    ]


def test_an_allowed_destination_is_the_only_way_out() -> None:
    rules = ruleset(
        8000, [Destination("10.96.0.7", 3128), Destination("fd00::7", 3128)]
    )
    output = rules[rules.index("chain output") : rules.index("chain input")]
    assert "ip daddr 10.96.0.7 tcp dport 3128 accept" in output
    assert "ip6 daddr fd00::7 tcp dport 3128 accept" in output
    assert output.index("3128 accept") < output.index("reject")


def test_the_operator_guide_shows_the_rules_of_a_backend_on_port_5678() -> None:
    guide = (ROOT / "docs/operators/kubernetes.md").read_text()
    shown = guide[guide.index("table inet beephost {\n") :]
    shown = shown[: shown.index("```")]
    assert ruleset(5678).endswith(shown)


def test_a_start_without_network_gets_the_firewall_before_its_server() -> None:
    pod_plan = _pod_plan()
    assert pod_plan.firewall == ruleset(pod_plan.port)
    manifest = km.pod(pod_plan)
    (init,) = manifest["spec"]["initContainers"]
    assert init["name"] == FIREWALL_CONTAINER
    assert init["image"] == pod_plan.image  # its own image: nothing more to pull
    assert init["command"] == [NFT, pod_plan.firewall]
    context = init["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    assert (context["runAsUser"], context["allowPrivilegeEscalation"]) == (0, False)
    # The backend's own container cannot change the rules.
    (backend,) = manifest["spec"]["containers"]
    assert backend["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_a_start_with_network_or_with_the_firewall_off_gets_none() -> None:
    assert _pod_plan(BackendOptions(network=True)).firewall is None
    off = KUBE.model_copy(update={"pod_firewall": False})
    assert _pod_plan(kube=off).firewall is None
    assert "initContainers" not in km.pod(_pod_plan(kube=off))


def test_net_raw_behind_a_firewall_is_refused() -> None:
    """Root with NET_RAW sends packet-socket frames past nftables' IP hooks (seen
    on Docker with the same rules: a crafted UDP datagram reached a peer)."""
    raw = BackendOptions(cap_add=["NET_RAW"], user="0:0")
    with pytest.raises(InvalidRequest, match="NET_RAW lets code send packets past"):
        _pod_plan(raw)
    # With network there is no firewall to pass; with it off, the operator chose
    # the NetworkPolicy alone.
    online = _pod_plan(BackendOptions(cap_add=["NET_RAW"], network=True))
    assert list(online.cap_add) == ["NET_RAW"]
    off = KUBE.model_copy(update={"pod_firewall": False})
    assert _pod_plan(raw, kube=off).firewall is None


@pytest.mark.parametrize("version", VERSIONS)
def test_a_pod_with_its_firewall_validates_strictly(version: str) -> None:
    pod_plan = replace(PLAN, firewall=ruleset(PLAN.port))
    kubernetes_validate.validate(km.pod(pod_plan), version, strict=True)


def _status(init: dict[str, Any]) -> dict[str, Any]:
    waiting = {"waiting": {"reason": "PodInitializing"}}
    return {
        "metadata": {"uid": "u-1", "name": "p"},
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [{"name": FIREWALL_CONTAINER, **init}],
            "containerStatuses": [{"name": "backend", "state": waiting}],
        },
    }


def test_a_firewall_that_failed_ends_the_start_with_the_reason() -> None:
    failed = {
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {
            "terminated": {
                "exitCode": 127,
                "message": 'exec: "/usr/sbin/nft": no such file or directory',
            }
        },
    }
    state = pod_state(_status(failed), restart_limit=3)
    assert (state.status, state.exit_code) == ("exited", 127)
    assert state.detail is not None
    assert "the pod's firewall could not be installed (exit 127)" in state.detail
    assert "no such file or directory" in state.detail
    assert "POD_FIREWALL=false" in state.detail


def test_a_firewall_being_installed_or_installed_is_no_failure() -> None:
    running = pod_state(_status({"state": {"running": {}}}), restart_limit=3)
    done = {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    assert running.status == "created"
    assert pod_state(_status(done), restart_limit=3).status == "created"
