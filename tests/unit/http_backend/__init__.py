"""Unit tests of the HTTP backend: sans-I/O parts, no sockets, threads or processes."""
