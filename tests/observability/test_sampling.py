"""LogSampler: the first occurrence, then one line per interval with the
number suppressed, whatever the rate."""

from __future__ import annotations

from typing import Any

from replaywire.observability.sampling import OVERFLOW_KEY, LogSampler


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_then_one_per_interval_with_a_count() -> None:
    log, clock, suppressed = Recorder(), Clock(), []
    sampler = LogSampler(log, 10.0, clock=clock, on_suppressed=suppressed.append)
    for i in range(1000):  # a hostile burst within one second
        clock.now = i / 1000
        sampler.log("tracker_message_rejected", code="invalid_message")
    assert log.lines == [("tracker_message_rejected", {"code": "invalid_message", "suppressed": 0})]
    assert len(suppressed) == 999

    clock.now = 10.5
    sampler.log("tracker_message_rejected", code="unknown_session")
    assert log.lines[-1] == (
        "tracker_message_rejected",
        {"code": "unknown_session", "suppressed": 999},
    )


def test_flush_reports_a_burst_that_stopped_and_forgets_quiet_keys() -> None:
    log, clock = Recorder(), Clock()
    sampler = LogSampler(log, 10.0, clock=clock)
    for _ in range(5):
        sampler.log("viewer_resync", session="s")
    assert sampler.flush() == 0  # interval not over
    clock.now = 11
    assert sampler.flush() == 1
    assert log.lines[-1] == ("viewer_resync", {"session": "s", "suppressed": 4, "final": True})
    clock.now = 30
    assert sampler.flush() == 0  # nothing since: the key is forgotten
    sampler.log("viewer_resync", session="t")
    assert log.lines[-1] == ("viewer_resync", {"session": "t", "suppressed": 0})


def test_events_are_sampled_separately_and_keys_are_bounded() -> None:
    log, clock = Recorder(), Clock()
    sampler = LogSampler(log, 10.0, clock=clock, max_keys=2)
    for event in ("a", "b", "c", "d", "a", "b", "c", "d"):
        sampler.log(event)
    assert [event for event, _ in log.lines] == ["a", "b", OVERFLOW_KEY]


def test_zero_interval_logs_everything() -> None:
    log = Recorder()
    sampler = LogSampler(log, 0.0, clock=Clock())
    for _ in range(3):
        sampler.log("x")
    assert len(log.lines) == 3
