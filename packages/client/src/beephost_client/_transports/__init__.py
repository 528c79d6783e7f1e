"""Transports: one small interface, one module per wire (pipe, HTTP, gRPC) and a mock."""
