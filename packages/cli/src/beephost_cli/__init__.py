"""beep-host: the Beep Python Host console."""
