"""beephost_http_backend."""
