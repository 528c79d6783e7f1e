"""BackendSettings.executor_config: every setting the core uses reaches it."""

from dataclasses import fields
from typing import Any

import pytest

from beephost_core.config import ExecutorConfig
from beephost_core.settings import BackendSettings

#: Each setting the core uses, the config field it becomes, and a value that is not
#: its default.
SETTINGS: list[tuple[str, str, Any]] = [
    ("python", "python", "/opt/env/bin/python3"),
    ("environment", "environment", "e1"),
    ("default_timeout", "default_timeout", 5.0),
    ("max_timeout", "max_timeout", 50.0),
    ("kill_grace", "kill_grace", 0.5),
    ("max_sessions", "max_sessions", 3),
    ("session_ttl", "session_ttl", 7.0),
    ("max_session_ttl", "max_session_ttl", 70.0),
    ("max_handles", "max_handles", 9),
    ("lease_ttl", "lease_ttl", 4.0),
    ("max_output_bytes", "max_output_bytes", 11),
    ("max_result_bytes", "max_result_bytes", 2048),
    ("max_display_bytes", "max_display_bytes", 13),
    ("max_display_total_bytes", "max_display_total_bytes", 14),
    ("prewarm", "prewarm", 0),
    ("activity_file", "activity_file", "/tmp/activity"),
    # Named for the operator here, for the core there.
    ("worker_cwd", "cwd", "/srv/cwd"),
    ("workspace_dir", "workspace", "/srv/workspace"),
    ("workspace_quota_bytes", "workspace_quota", 15),
    ("packages_dir", "packages", "/srv/packages"),
    ("worker_env", "extra_env", {"X": "1"}),
    ("egress_socket", "egress_socket", "/run/beephost-egress/proxy.sock"),
    ("egress_port", "egress_port", 3129),
]
#: Config fields no setting has: the core's own defaults.
CORE_ONLY = {"spawn_timeout", "env"}


def test_every_config_field_but_the_core_s_own_is_a_setting() -> None:
    named = {field for _, field, _ in SETTINGS}
    assert named == {field.name for field in fields(ExecutorConfig)} - CORE_ONLY


@pytest.mark.parametrize(("setting", "field", "value"), SETTINGS)
def test_a_setting_reaches_its_config_field(
    setting: str, field: str, value: Any
) -> None:
    config = BackendSettings(**{setting: value}).executor_config()
    assert getattr(config, field) == value != getattr(ExecutorConfig(), field)
