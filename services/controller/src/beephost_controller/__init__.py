"""Beep Python Host controller: runtimes, environments, images and backends on Docker."""
