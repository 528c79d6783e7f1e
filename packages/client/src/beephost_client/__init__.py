"""beephost_client."""
