"""Generated protobuf and gRPC code of Beep Python Host (scripts/gen-proto)."""
