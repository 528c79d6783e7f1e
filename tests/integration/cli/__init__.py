"""The beep-host CLI and ControllerClient against a real controller and real backends."""
