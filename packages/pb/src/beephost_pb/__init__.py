"""beephost_pb."""
