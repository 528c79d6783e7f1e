"""Beep Python Host MCP server."""
