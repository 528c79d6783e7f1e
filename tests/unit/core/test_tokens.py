"""TokenCheck and the TOKEN / TOKEN_SHA256 settings every backend shares."""

import hashlib
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from beephost_core.settings import BackendSettings
from beephost_core.tokens import TokenCheck, is_token_sha256, token_sha256
from beephost_http_backend.settings import Settings as HTTPSettings
from beephost_pipe_backend.settings import Settings as PipeSettings
from beephost_rpc_backend.settings import Settings as RPCSettings

TOKEN = "s3cret-token-0123456789"
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()


def test_the_digest_is_sha256_hex() -> None:
    assert token_sha256(TOKEN) == DIGEST
    assert is_token_sha256(DIGEST)
    assert is_token_sha256(DIGEST.upper())
    assert not is_token_sha256(DIGEST[:-1])
    assert not is_token_sha256(DIGEST[:-1] + "g")


@pytest.mark.parametrize(
    "check",
    [TokenCheck.of_token(TOKEN), TokenCheck.of_sha256(DIGEST)],
    ids=["token", "digest"],
)
@pytest.mark.parametrize(
    ("presented", "ok"),
    [
        (TOKEN, True),
        (TOKEN.encode(), True),
        (TOKEN[:-1], False),
        (TOKEN + "0", False),
        (TOKEN.upper(), False),
        (DIGEST, False),  # the digest is not a password
        ("", False),
        ("\ud800", False),  # a lone surrogate (JSON can carry one)
        (None, False),
        (123, False),
    ],
)
def test_matches_only_the_token(check: TokenCheck, presented: object, ok: bool) -> None:
    assert check.matches(presented) is ok


@pytest.mark.parametrize("bad", ["", "abc", DIGEST + "0", "z" * 64])
def test_a_malformed_digest_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        TokenCheck.of_sha256(bad)


@pytest.mark.parametrize(
    ("settings_class", "prefix"),
    [
        (PipeSettings, "BEEPHOST_PIPE_BACKEND_"),
        (HTTPSettings, "BEEPHOST_HTTP_BACKEND_"),
        (RPCSettings, "BEEPHOST_RPC_BACKEND_"),
    ],
)
def test_every_backend_reads_the_digest(
    settings_class: type[BackendSettings],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(f"{prefix}TOKEN_SHA256", DIGEST)
    settings = settings_class()
    assert settings.requires_token
    check = settings.token_check()
    assert check is not None
    assert check.matches(TOKEN)
    assert not check.matches(DIGEST)
    assert DIGEST not in repr(settings)


def test_no_token_means_no_check() -> None:
    settings = BackendSettings()
    assert settings.token_check() is None
    assert not settings.requires_token


def test_token_and_digest_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="one of TOKEN"):
        BackendSettings(token=SecretStr(TOKEN), token_sha256=SecretStr(DIGEST))


def test_a_malformed_digest_setting_is_refused() -> None:
    with pytest.raises(ValidationError, match="SHA-256"):
        BackendSettings(token_sha256=SecretStr("not-a-digest"))


@pytest.mark.parametrize("settings_class", [HTTPSettings, RPCSettings])
def test_a_digest_alone_opens_a_network_port(
    settings_class: type[BackendSettings],
) -> None:
    # The fail-closed rule counts a digest as a token.
    with pytest.raises(ValidationError, match="without a token"):
        settings_class(host="0.0.0.0")  # type: ignore[call-arg]
    settings = settings_class(host="0.0.0.0", token_sha256=SecretStr(DIGEST))  # type: ignore[call-arg]
    assert settings.requires_token


@pytest.mark.parametrize(
    ("settings_class", "prefix"),
    [
        (PipeSettings, "BEEPHOST_PIPE_BACKEND_"),
        (HTTPSettings, "BEEPHOST_HTTP_BACKEND_"),
        (RPCSettings, "BEEPHOST_RPC_BACKEND_"),
    ],
)
def test_every_backend_reads_the_digest_from_a_file(
    settings_class: type[BackendSettings],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # A Kubernetes Secret mounted as a file: no newline handling of its own.
    secret = tmp_path / "token-sha256"
    secret.write_text(DIGEST + "\n")
    monkeypatch.setenv(f"{prefix}TOKEN_SHA256_FILE", str(secret))
    settings = settings_class()
    check = settings.token_check()
    assert check is not None
    assert check.matches(TOKEN)
    assert not check.matches(DIGEST)
    assert DIGEST not in repr(settings)


@pytest.mark.parametrize(
    ("content", "message"),
    [("not a digest", "64 hexadecimal"), (None, "cannot be read")],
    ids=["malformed", "missing"],
)
def test_a_bad_digest_file_is_refused(
    tmp_path: Path, content: str | None, message: str
) -> None:
    secret = tmp_path / "token-sha256"
    if content is not None:
        secret.write_text(content)
    with pytest.raises(ValidationError, match=message):
        BackendSettings(token_sha256_file=secret)


def test_a_digest_file_beside_another_token_form_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "token-sha256"
    secret.write_text(DIGEST)
    with pytest.raises(ValidationError, match="one of TOKEN"):
        BackendSettings(token_sha256_file=secret, token=SecretStr(TOKEN))
