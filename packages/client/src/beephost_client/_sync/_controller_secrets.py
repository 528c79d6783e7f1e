"""The blocking controller client's stored-secret calls.

GENERATED from ``_async/_controller_secrets.py`` by ``packages/client/scripts/unasync.py``:
do not edit (part of ControllerClient; the docstrings there describe both).
"""

from beephost_client import _controller
from beephost_client._controller_types import Secret
from beephost_client._transports.controller import Request

from ._controller_base import _ControllerBase


class _SecretCalls(_ControllerBase):
    """Stored secrets: values an egress policy puts into a header on the way out."""

    # -- secrets ----------------------------------------------------------------------------

    def set_secret(self, name: str, value: str) -> Secret:
        """Store a secret, or replace its value; no call ever returns the value.

        Args:
            name: The secret's name: lowercase letters, digits, ``.``, ``_`` and
                ``-``.
            value: Its value: 8 to 8192 printable ASCII characters.

        Returns:
            The :class:`Secret`: its name and when it was set.

        Raises:
            InvalidRequest: A bad name or value (the error never repeats the value).
            Unauthorized: Not the controller's token.

        Example::

            controller.set_secret("weather-key", os.environ["WEATHER_KEY"])
            print([s.name for s in controller.secrets()])
        """
        raw = self._json("PUT", _controller.secret_path(name), body={"value": value})
        return _controller.secret(raw)

    def secrets(self) -> list[Secret]:
        """Every stored secret's name and when it was set (never a value).

        Returns:
            The :class:`Secret` list, by name.

        Raises:
            Unauthorized: Not the controller's token.

        Example::

            for secret in controller.secrets():
                print(secret.name, secret.updated_at)
        """
        raw = self._json("GET", "/api/v1/secrets")
        return _controller.many(_controller.secret, raw, "secrets")

    def delete_secret(self, name: str) -> None:
        """Forget a secret: a start whose egress policy names it is refused then.

        Args:
            name: The secret's name.

        Raises:
            NotFound: No secret has that name.

        Example::

            controller.delete_secret("weather-key")
        """
        self._send(Request("DELETE", _controller.secret_path(name)))
