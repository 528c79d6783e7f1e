"""The console's pure parts: sessions and their expiry on a clock, where a sign-in may
send the browser next, and the filters the pages format with."""

import pytest

from beephost_controller.console.pages import safe_next
from beephost_controller.console.render import duration, size
from beephost_controller.console.sessions import MAX_SESSIONS, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lives_its_lifetime_and_no_longer() -> None:
    clock = Clock()
    store = SessionStore(60, clock)
    session = store.create(None, None)
    assert store.get(session.id) == session
    assert session.csrf != session.id
    assert len(session.id) >= 40
    clock.now += 59.9
    assert store.get(session.id) == session
    clock.now += 0.1
    assert store.get(session.id) is None
    assert store.get("made-up") is None


def test_sign_out_drops_and_the_oldest_go_first() -> None:
    store = SessionStore(60, Clock())
    first = store.create(None, None)
    second = store.create("b-1", "digest")
    store.drop(second.id)
    assert store.get(second.id) is None
    assert store.get(first.id) == first
    for _ in range(MAX_SESSIONS):
        store.create(None, None)
    assert store.get(first.id) is None, "the oldest made room"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, "/console"),
        ("/console/backends/b-1", "/console/backends/b-1"),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/console//evil.example", "/console"),
        ("/api/v1/config", "/console"),
    ],
)
def test_a_sign_in_goes_next_to_a_console_page_only(
    target: str | None, expected: str
) -> None:
    assert safe_next(target) == expected


def test_the_filters() -> None:
    assert duration(None) == "—"
    assert duration(42.7) == "42 s"
    assert duration(300) == "5 min"
    assert duration(2 * 3600 + 5 * 60) == "2 h 05 min"
    assert duration(3 * 86400 + 4 * 3600) == "3 d 4 h"
    assert duration(-3) == "0 s"
    assert size(None) == "—"
    assert size(999) == "999 B"
    assert size(135_500_000) == "135.5 MB"
    assert size(2_000_000_000_000) == "2.0 TB"
