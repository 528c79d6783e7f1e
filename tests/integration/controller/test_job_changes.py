"""Job log streams wake on a change instead of their next poll (jobs.JobChanges)."""

import threading
from pathlib import Path

from beephost_controller.jobs import JobChanges, JobLog, JobRunner
from beephost_controller.store import SqliteStore

_LONG = 60.0  # a wait that only a change ends within the test's join


def _waiting(changes: JobChanges, seen: int) -> threading.Thread:
    thread = threading.Thread(target=changes.wait, args=(seen, _LONG), daemon=True)
    thread.start()
    return thread


def test_a_change_wakes_a_waiter() -> None:
    changes = JobChanges()
    waiter = _waiting(changes, changes.count)
    waiter.join(0.2)
    assert waiter.is_alive()  # nothing changed: still waiting
    changes.notify()
    waiter.join(10)
    assert not waiter.is_alive()


def test_a_change_before_the_wait_is_not_lost() -> None:
    changes = JobChanges()
    seen = changes.count  # read, then the store is looked at, then a change lands
    changes.notify()
    waiter = _waiting(changes, seen)
    waiter.join(10)
    assert not waiter.is_alive()


def test_logging_and_finishing_are_changes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "controller.db")
    runner = JobRunner(store, workers=1)
    try:
        release = threading.Event()
        started = runner.changes.count

        def job(log: JobLog) -> None:
            log("one line")
            release.wait(_LONG)

        row = runner.submit("build", "env", job)
        waiter = _waiting(runner.changes, started)
        waiter.join(10)
        assert not waiter.is_alive()  # the line woke it
        assert [line for _, line in store.log_lines(row.id, -1)] == ["one line"]

        logged = runner.changes.count
        waiter = _waiting(runner.changes, logged)
        release.set()
        waiter.join(10)
        assert not waiter.is_alive()  # the end woke it
        assert runner.wait_idle(10)
        finished = store.job(row.id)
        assert finished is not None
        assert finished.status == "succeeded"
    finally:
        runner.shutdown()
        store.close()
