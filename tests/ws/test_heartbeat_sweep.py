"""The heartbeat's sweep on its own (the end-to-end behaviour is in
``e2e/test_heartbeat.py``): the timing the docs state holds for any moment
of a peer's last frame."""

from __future__ import annotations

from replaywire.ws.heartbeat import Heartbeat


class Silent:
    """What the sweep reads of a connection that waits for a silent peer."""

    def __init__(self, since: float) -> None:
        self.idle_since: float | None = since
        self.pinged_at: float | None = None
        self.pings = 0

    def ping_now(self) -> None:
        self.pings += 1

    def flush_now(self) -> None:
        pass


def test_the_sweep_drops_within_the_stated_bound() -> None:
    """Sweeping every ``step``: a silent peer is pinged once, and dropped
    no sooner than interval + timeout after its last frame and no later
    than 1.25 x that."""
    for interval, timeout in ((20.0, 20.0), (0.2, 0.3), (30.0, 5.0)):
        beat = Heartbeat(interval, timeout)
        bound = interval + timeout
        for k in range(10):
            peer = Silent(since=k * beat.step / 10)
            now = 0.0
            while not beat.sweep([peer], now):  # type: ignore[list-item]
                now += beat.step
            assert bound <= now - peer.idle_since <= 1.25 * bound + 1e-9  # type: ignore[operator]
            assert peer.pings == 1


def test_a_connection_being_read_or_held_back_is_not_judged() -> None:
    """Only waiting for the peer counts: a connection whose bytes are being
    processed, or that is not read on purpose (backpressure), has no
    ``idle_since`` and is neither pinged nor dropped."""
    beat = Heartbeat(1.0, 1.0)
    busy = Silent(since=0.0)
    busy.idle_since = None
    assert beat.sweep([busy], 100.0) == [] and busy.pings == 0  # type: ignore[list-item]


def test_an_answer_resets_the_clock() -> None:
    beat = Heartbeat(1.0, 1.0)
    peer = Silent(since=0.0)
    assert beat.sweep([peer], 1.0) == [] and peer.pings == 1  # type: ignore[list-item]
    # The pong arrived (WebSocket._read clears both), then silence again.
    peer.idle_since, peer.pinged_at = 1.1, None
    assert beat.sweep([peer], 2.05) == [] and peer.pings == 1  # type: ignore[list-item]
    assert beat.sweep([peer], 2.1) == [] and peer.pings == 2  # type: ignore[list-item]
    assert beat.sweep([peer], 3.1) == [peer]  # type: ignore[list-item]
