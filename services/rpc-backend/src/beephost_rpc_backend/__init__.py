"""beephost_rpc_backend."""
