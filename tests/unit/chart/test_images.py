"""Image references: repository, explicit tags, optional registry, digest pinning."""

from tests.unit.chart.render import COMPONENTS, ci_values, container, one, render

DIGEST = "sha256:" + "ab" * 32


def _images(values: dict[str, object] | None = None) -> dict[str, str]:
    docs = render(values)
    return {
        comp: container(one(docs, "Deployment", comp))["image"] for comp in COMPONENTS
    }


def test_default_images_and_tags() -> None:
    assert _images() == {
        "controller": "beephost/controller:0.1.0",
        "http-backend": "beephost/http-backend:3.11",
        "pipe-backend": "beephost/pipe-backend:3.11",
        "rpc-backend": "beephost/rpc-backend:3.11",
    }


def test_registry_prefix() -> None:
    images = _images({"global": {"imageRegistry": "registry.example.com:5000/team/"}})
    assert (
        images["rpc-backend"]
        == "registry.example.com:5000/team/beephost/rpc-backend:3.11"
    )


def test_digest_wins_over_tag() -> None:
    images = _images({"pipeBackend": {"image": {"tag": "3.13", "digest": DIGEST}}})
    assert images["pipe-backend"] == f"beephost/pipe-backend@{DIGEST}"
    assert images["http-backend"] == "beephost/http-backend:3.11"


def test_pull_secrets_and_policy() -> None:
    docs = render(ci_values("full-values.yaml"))
    deployment = one(docs, "Deployment", "controller")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert container(deployment)["imagePullPolicy"] == "IfNotPresent"
    assert container(deployment)["image"].startswith(
        "registry.example.com/beephost/controller@sha256:"
    )


def test_command_override_for_environment_images() -> None:
    command = ["/opt/beephost-http/bin/python", "-m", "beephost_http_backend"]
    docs = render(
        {"httpBackend": {"image": {"repository": "beephost/env"}, "command": command}}
    )
    main = container(one(docs, "Deployment", "http-backend"))
    assert main["command"] == command
    assert "args" not in main
    assert "command" not in container(one(docs, "Deployment", "rpc-backend"))
