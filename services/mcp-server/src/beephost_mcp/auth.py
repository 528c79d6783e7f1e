"""The bearer token HTTP clients must send, checked by the MCP SDK's auth middleware."""

import hmac

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings

#: Every holder of the server's token is one client: the SDK ties each MCP session to
#: the principal that opened it, and this one has no finer identity.
CLIENT_ID = "beephost-mcp"


class StaticTokenVerifier(TokenVerifier):
    """Accepts exactly one token, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._expected):
            return None
        # The AccessToken carries no secret: the SDK keeps it on the request's user.
        return AccessToken(token="", client_id=CLIENT_ID, scopes=[])


def auth_settings(base_url: str) -> AuthSettings:
    """The SDK's auth settings for a resource server that issues no tokens itself."""
    return AuthSettings(issuer_url=base_url, resource_server_url=None)  # type: ignore[arg-type]
