"""Beep Python Host pipe backend."""
