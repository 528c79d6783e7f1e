"""The web console at ``/console``: pages over the controller's own use cases, signed
in with the controller's token (or an admin backend's scoped one)."""
