"""The egress proxy's objects on Kubernetes: hardened, its configuration never in a
spec, its CA in a Secret mounted into the proxy alone."""

import base64
import json

from beephost_controller import egress_ca
from beephost_controller.engine import kube_egress_manifests as kem
from beephost_controller.images.egress_proxy import PROXY_COMMAND

PLAN = kem.ProxyPlan(
    name="beephost-ctl-egress",
    namespace="sandboxes",
    labels={"io.beephost.managed": "true", "io.beephost.egress.proxy": "ctl"},
    image="r.example:5000/ctl/egress-proxy@sha256:" + "a" * 64,
    version="v1",
)


def test_the_deployment_runs_the_proxy_hardened_on_the_pods_address() -> None:
    manifest = kem.deployment(PLAN)
    assert manifest["metadata"]["annotations"] == {kem.ANNOTATION_VERSION: "v1"}
    spec = manifest["spec"]
    assert spec["selector"] == {"matchLabels": PLAN.labels}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:2] == list(PROXY_COMMAND)
    argv = container["command"]
    assert argv[argv.index("--socket") + 1] == ""  # no relay socket
    assert argv[argv.index("--listen-host") + 1] == "0.0.0.0"
    assert argv[argv.index("--config") + 1] == kem.CONFIG_PATH
    assert "ssl_verify_upstream_trusted_ca" not in " ".join(argv)
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    # It asks for little (a node's room is the sandboxes'), and may use up to 1 CPU.
    assert container["resources"] == {
        "limits": {"cpu": "1000m", "memory": "512Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    }
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsUser"] == kem.PROXY_UID
    assert pod["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["ca"]["secret"] == {
        "secretName": "beephost-ctl-egress-ca",
        "defaultMode": 0o440,
    }
    assert pod["securityContext"]["fsGroup"] == kem.PROXY_UID  # reads the CA
    assert volumes["tmp"]["emptyDir"]["medium"] == "Memory"  # the configuration
    # No setting but its node's address: the configuration is written in later.
    assert container["env"] == [
        {
            "name": "EGRESS_BLOCKED",
            "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}},
        }
    ]


def test_an_upstream_bundle_is_trusted_from_the_trust_config_map() -> None:
    argv = kem.deployment(kem.ProxyPlan(**{**PLAN.__dict__, "upstream_ca": True}))[
        "spec"
    ]["template"]["spec"]["containers"][0]["command"]
    assert argv[-3:] == [
        "--",
        "--set",
        f"ssl_verify_upstream_trusted_ca={kem.TRUST_DIR}/{kem.UPSTREAM_KEY}",
    ]


def test_the_service_and_the_policy_open_the_proxy_port_to_sandboxes() -> None:
    service = kem.service(PLAN)
    assert service["spec"]["selector"] == PLAN.labels
    assert [p["port"] for p in service["spec"]["ports"]] == [3128]
    clients = {"io.beephost.managed": "true", "io.beephost.controller": "ctl"}
    policy = kem.network_policy(PLAN, clients)
    assert policy["spec"]["podSelector"] == {"matchLabels": PLAN.labels}
    first, counters = policy["spec"]["ingress"]
    assert first["from"] == [{"podSelector": {"matchLabels": clients}}]
    assert first["ports"] == [{"protocol": "TCP", "port": 3128}]
    assert counters == {"ports": [{"protocol": "TCP", "port": kem.METRICS_PORT}]}


def test_the_ca_is_a_secret_and_the_trust_bundle_a_config_map() -> None:
    key, cert = egress_ca.make_ca("ctl")
    secret = kem.ca_secret(PLAN, egress_ca.confdir_files(key, cert))
    assert secret["metadata"]["name"] == "beephost-ctl-egress-ca"
    held = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert held[egress_ca.CA_FILE] == key + cert
    assert held[egress_ca.CA_CERT_FILE] == cert
    config_map = kem.trust_config_map(PLAN, b"bundle", None)
    assert config_map["metadata"]["name"] == kem.trust_config_map_name(PLAN.name)
    assert config_map["data"] == {kem.BUNDLE_KEY: "bundle"}
    assert key.decode() not in json.dumps(config_map)
    with_upstream = kem.trust_config_map(PLAN, b"bundle", b"upstream")
    assert with_upstream["data"][kem.UPSTREAM_KEY] == "upstream"
