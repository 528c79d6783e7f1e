"""Whether a presented token is the server's: one check shared by the three transports.

A server may be given its token or only the token's SHA-256 (``TOKEN_SHA256``). The
digest is what a controller passes to the containers it starts: a container's
environment is inherited by every ``docker exec``'d process, the health check included,
and those run under the uid user code runs as, so anything in it is readable by user
code through ``/proc/<pid>/environ``. A digest there lets nobody in.
"""

import hashlib
import hmac
import re

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def token_sha256(token: str) -> str:
    """The hex SHA-256 of ``token``'s UTF-8 bytes: what ``TOKEN_SHA256`` settings hold."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_token_sha256(value: str) -> bool:
    return bool(_HEX_DIGEST.fullmatch(value))


class TokenCheck:
    """Compares the SHA-256 of a presented token with the expected one in constant time.

    Hashing first makes the comparison's time independent of the token's length too.
    """

    def __init__(self, digest: bytes) -> None:
        if len(digest) != hashlib.sha256().digest_size:
            raise ValueError("a token digest is 32 bytes (SHA-256)")
        self._digest = digest

    @classmethod
    def of_token(cls, token: str) -> "TokenCheck":
        return cls(hashlib.sha256(token.encode()).digest())

    @classmethod
    def of_sha256(cls, hex_digest: str) -> "TokenCheck":
        if not is_token_sha256(hex_digest):
            raise ValueError("a token digest is 64 hexadecimal characters (SHA-256)")
        return cls(bytes.fromhex(hex_digest))

    def matches(self, presented: object) -> bool:
        """Whether ``presented`` (str or bytes) is the token; anything else fails."""
        if isinstance(presented, str):
            # JSON can carry lone surrogates, which strict UTF-8 cannot encode;
            # "surrogatepass" keeps them as bytes that no valid token has.
            presented = presented.encode("utf-8", "surrogatepass")
        if not isinstance(presented, bytes):
            return False
        return hmac.compare_digest(hashlib.sha256(presented).digest(), self._digest)
