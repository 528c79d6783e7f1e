"""Tokens: one Secret (generated or existing), read through secretKeyRef only.

The controller gets its token; each backend only the hex SHA-256 of its own
(``*_TOKEN_SHA256``): the user code a backend runs can read its container's
environment, which exec probes inherit under the same uid.
"""

import base64
import hashlib
from typing import Any

import helm_python
import pytest

from tests.unit.chart.render import (
    CHART_DIR,
    COMPONENTS,
    ci_values,
    container,
    env,
    find,
    one,
    render,
    render_files,
)

#: The controller's token variable and its default key.
CONTROLLER_TOKEN = ("BEEPHOST_CONTROLLER_TOKEN", "controller-token")
#: Backend -> (its digest variable, the digest's default key, its token's default key).
BACKEND_DIGESTS = {
    "http-backend": (
        "BEEPHOST_HTTP_BACKEND_TOKEN_SHA256",
        "http-backend-token-sha256",
        "http-backend-token",
    ),
    "pipe-backend": (
        "BEEPHOST_PIPE_BACKEND_TOKEN_SHA256",
        "pipe-backend-token-sha256",
        "pipe-backend-token",
    ),
    "rpc-backend": (
        "BEEPHOST_RPC_BACKEND_TOKEN_SHA256",
        "rpc-backend-token-sha256",
        "rpc-backend-token",
    ),
}
#: Every key the generated Secret holds.
#: The MCP server's token: generated whether or not mcp is enabled.
MCP_TOKEN = ("BEEPHOST_MCP_TOKEN", "mcp-token")
SECRET_KEYS = {CONTROLLER_TOKEN[1], MCP_TOKEN[1]} | {
    key for _, digest_key, token_key in BACKEND_DIGESTS.values()
    for key in (digest_key, token_key)
}  # fmt: skip


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {
        key: base64.b64decode(value).decode() for key, value in secret["data"].items()
    }


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_generated_secret_holds_five_random_tokens_and_three_digests() -> None:
    first = one(render(), "Secret")
    second = one(render(), "Secret")
    assert first["metadata"]["name"] == "beephost-tokens"
    assert set(first["data"]) == SECRET_KEYS
    values = _decoded(first)
    tokens = [values[CONTROLLER_TOKEN[1]], values[MCP_TOKEN[1]]]
    for _, digest_key, token_key in BACKEND_DIGESTS.values():
        tokens.append(values[token_key])
        assert values[digest_key] == _sha256(values[token_key]), digest_key
    assert all(len(t) == 32 and t.isalnum() for t in tokens)
    assert len(set(tokens)) == 5
    # Offline, lookup finds nothing: every render generates anew (in a cluster the
    # existing values are reused, see templates/controller-secret.yaml).
    assert first["data"] != second["data"]


def test_secret_template_reuses_existing_tokens_and_recomputes_digests() -> None:
    # lookup cannot run offline; the template must at least consult it and reuse hits.
    template = (CHART_DIR / "templates" / "controller-secret.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in template
    assert "get $data $key | default (randAlphaNum 32 | b64enc)" in template
    # The digests are never taken from the old Secret: always the tokens' own.
    assert "b64dec | sha256sum | b64enc" in template
    assert "get $data $digestKey" not in template


def test_controller_keeps_its_token() -> None:
    variable, key = CONTROLLER_TOKEN
    variables = env(container(one(render(), "Deployment", "controller")))
    assert "value" not in variables[variable]
    assert variables[variable]["valueFrom"]["secretKeyRef"] == {
        "name": "beephost-tokens",
        "key": key,
    }
    assert not [name for name in variables if name.endswith("_SHA256")]


@pytest.mark.parametrize("comp", sorted(BACKEND_DIGESTS))
def test_backends_get_only_their_token_digest(comp: str) -> None:
    variable, digest_key, _ = BACKEND_DIGESTS[comp]
    variables = env(container(one(render(), "Deployment", comp)))
    entry = variables[variable]
    assert "value" not in entry
    assert entry["valueFrom"]["secretKeyRef"] == {
        "name": "beephost-tokens",
        "key": digest_key,
    }
    plain = [name for name in variables if name.endswith("_TOKEN")]
    assert plain == []


def test_existing_secret_is_referenced_not_created() -> None:
    docs = render(ci_values("full-values.yaml"))
    assert not find(docs, "Secret")
    variable, key = CONTROLLER_TOKEN
    ref = env(container(one(docs, "Deployment", "controller")))[variable]
    assert ref["valueFrom"]["secretKeyRef"] == {
        "name": "beephost-tokens-external",
        "key": key,
    }
    for comp, (variable, digest_key, _) in BACKEND_DIGESTS.items():
        variables = env(container(one(docs, "Deployment", comp)))
        assert variables[variable]["valueFrom"]["secretKeyRef"] == {
            "name": "beephost-tokens-external",
            "key": digest_key,
        }
        assert variable.removesuffix("_SHA256") not in variables, comp


def test_custom_keys() -> None:
    docs = render(
        {
            "auth": {
                "existingSecret": "mine",
                "keys": {"rpcBackend": "grpc", "rpcBackendSha256": "grpc-digest"},
            }
        }
    )
    ref = env(container(one(docs, "Deployment", "rpc-backend")))[
        "BEEPHOST_RPC_BACKEND_TOKEN_SHA256"
    ]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "mine", "key": "grpc-digest"}


def test_custom_keys_in_the_generated_secret() -> None:
    docs = render({"auth": {"keys": {"rpcBackend": "grpc", "rpcBackendSha256": "gd"}}})
    values = _decoded(one(docs, "Secret"))
    assert values["gd"] == _sha256(values["grpc"])
    assert "rpc-backend-token" not in values
    assert "rpc-backend-token-sha256" not in values
    ref = env(container(one(docs, "Deployment", "rpc-backend")))[
        "BEEPHOST_RPC_BACKEND_TOKEN_SHA256"
    ]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "beephost-tokens", "key": "gd"}


def test_shared_keys_share_one_token_and_digest() -> None:
    shared = {"httpBackend": "backend", "rpcBackend": "backend"}
    shared |= {
        "httpBackendSha256": "backend-sha256",
        "rpcBackendSha256": "backend-sha256",
    }
    values = _decoded(one(render({"auth": {"keys": shared}}), "Secret"))
    assert values["backend-sha256"] == _sha256(values["backend"])


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"pipeBackendSha256": "controller-token"}, "names both a token and a digest"),
        (
            {"httpBackendSha256": "same", "rpcBackendSha256": "same"},
            "backends with different tokens",
        ),
    ],
)
def test_inconsistent_keys_fail(keys: dict[str, str], message: str) -> None:
    with pytest.raises(helm_python.HelmError, match=message):
        render_files({"auth": {"keys": keys}})


def test_pipe_token_is_optional() -> None:
    docs = render({"pipeBackend": {"auth": {"enabled": False}}})
    variables = env(container(one(docs, "Deployment", "pipe-backend")))
    assert not [name for name in variables if "_TOKEN" in name]
    assert variables["BEEPHOST_PIPE_BACKEND_SOCKET_PATH"]["value"] == (
        "/run/beephost/pipe.sock"
    )


@pytest.mark.parametrize("values_file", ["default-values.yaml", "full-values.yaml"])
def test_no_token_values_anywhere(values_file: str) -> None:
    values = ci_values(values_file)
    deployments = find(render(values), "Deployment")
    mcp = {"mcp"} if values.get("mcp", {}).get("enabled") else set()
    assert {
        d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments
    } == set(COMPONENTS) | mcp
    for doc in deployments:
        for entry in env(container(doc)).values():
            if entry["name"].endswith(("_TOKEN", "_TOKEN_SHA256")):
                assert "secretKeyRef" in entry["valueFrom"], entry["name"]


def test_notes_name_the_digest_keys() -> None:
    generated = render_files({})["beephost/templates/NOTES.txt"]
    assert "pipe-backend-token-sha256" in generated
    assert "recomputed from the tokens" in generated
    yours = render_files({"auth": {"existingSecret": "mine"}})[
        "beephost/templates/NOTES.txt"
    ]
    assert "your Secret must hold them" in yours
