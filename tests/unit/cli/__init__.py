"""Unit tests of the beep-host CLI: CliRunner over fake controllers, no sockets."""
