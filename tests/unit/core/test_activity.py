"""The idle clock a backend reports for the controller's idle timeout."""

import time
from pathlib import Path

import pytest

from beephost_core.activity import Activity


def test_a_request_in_flight_is_no_idleness(tmp_path: Path) -> None:
    report = tmp_path / "activity"
    activity = Activity(str(report))
    with activity.request():
        time.sleep(0.05)
        assert activity.idle_seconds() == 0.0
        activity.report()
        assert report.read_text() == "0\n"
    time.sleep(0.05)
    assert 0.04 < activity.idle_seconds() < 5


def test_the_report_is_whole_seconds_replaced_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "activity"
    activity = Activity(str(report))
    monkeypatch.setattr(activity, "idle_seconds", lambda: 61.6)
    activity.report()
    assert report.read_text() == "62\n"
    assert [p.name for p in tmp_path.iterdir()] == ["activity"]
    Activity(None).report()  # no file configured: nothing to write
    Activity(str(tmp_path / "missing" / "activity")).report()  # unwritable: ignored
