"""When the Kubernetes engine reads a backend's idleness (an exec each time)."""

from beephost_controller.engine.idle_reads import IdleReads
from beephost_controller.testing import SetClock

TIMEOUT = 300.0


class Sandbox:
    """A server's activity file: idle since ``last_request``; counts its reads."""

    def __init__(self, clock: SetClock) -> None:
        self.clock = clock
        self.last_request = clock.now
        self.reads = 0

    def read(self) -> float:
        self.reads += 1
        return self.clock.now - self.last_request


def test_between_reads_the_estimate_never_stops_a_backend_a_request_reset() -> None:
    clock = SetClock(1000.0)
    sandbox = Sandbox(clock)
    reads = IdleReads(clock, min_interval=5.0)
    clock.now += 290
    assert reads.seconds("b", TIMEOUT, sandbox.read) == 290
    clock.now += 2
    sandbox.last_request = clock.now  # a request just after the read
    clock.now += 9
    # The estimate (301) would stop it: a stop is decided on a fresh read only.
    assert reads.seconds("b", TIMEOUT, sandbox.read) == 9
    assert sandbox.reads == 2


def test_a_busy_backend_is_read_about_every_tenth_of_its_timeout() -> None:
    clock = SetClock(0.0)
    sandbox = Sandbox(clock)
    reads = IdleReads(clock, min_interval=5.0)
    for _ in range(600):  # ten minutes of one look per second, a request every 20 s
        clock.now += 1
        if clock.now % 20 == 0:
            sandbox.last_request = clock.now
        idle = reads.seconds("b", TIMEOUT, sandbox.read)
        assert idle is not None
        assert idle < TIMEOUT
        assert idle >= clock.now - sandbox.last_request  # an upper bound, never less
    assert sandbox.reads == 20  # every 30 s, where one per 5 s made 120


def test_an_idle_backend_is_read_when_its_timeout_comes_and_then_stopped() -> None:
    clock = SetClock(0.0)
    sandbox = Sandbox(clock)
    reads = IdleReads(clock, min_interval=5.0)
    seen = []
    for _ in range(310):
        clock.now += 1
        seen.append(reads.seconds("b", TIMEOUT, sandbox.read))
    assert seen.index(TIMEOUT) == 299  # on time, from a read of that moment
    # Left past its timeout (not stopped, say not ready): read every 5 s, and
    # between those reads not known rather than estimated.
    assert seen[300:] == [None, None, None, None, 305.0, None, None, None, None, 310.0]
    assert sandbox.reads == 10 + 3


def test_short_timeouts_read_at_most_every_min_interval() -> None:
    clock = SetClock(0.0)
    sandbox = Sandbox(clock)
    reads = IdleReads(clock, min_interval=5.0)
    for _ in range(20):
        clock.now += 1
        sandbox.last_request = clock.now - 0.5
        reads.seconds("b", 10.0, sandbox.read)
    assert sandbox.reads == 4


def test_a_failed_read_is_tried_again_after_min_interval_and_forget_resets() -> None:
    clock = SetClock(0.0)
    reads = IdleReads(clock, min_interval=5.0)
    tried: list[float] = []

    def unknown() -> None:
        tried.append(clock.now)

    for _ in range(12):
        assert reads.seconds("b", TIMEOUT, unknown) is None
        clock.now += 1
    assert tried == [0.0, 5.0, 10.0]
    reads.forget("b")
    assert reads.seconds("b", TIMEOUT, lambda: 7.0) == 7.0
