"""The per-session clock skew estimate (the Rust engines' ClockSkew)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from replaywire._core import ClockSkew

T0 = 1_714_564_800.0  # server clock, epoch seconds
AHEAD = 600_000.0  # a tracker 10 minutes fast, ms


def test_no_batch_with_events_means_no_estimate() -> None:
    skew = ClockSkew()
    assert skew.estimate is None
    assert skew.add(None, T0) is None  # an empty batch
    assert skew.add(math.nan, T0) is None
    assert skew.add(math.inf, T0) is None


def test_one_batch_gives_its_sample() -> None:
    skew = ClockSkew()
    # The newest event was stamped 10 min ahead, 120 ms before the server got it.
    assert skew.add(T0 * 1000 + AHEAD - 120, T0) == AHEAD - 120


def test_the_shortest_delay_wins_and_late_batches_change_nothing() -> None:
    skew = ClockSkew()
    delays = [250, 40, 180, 35, 90_000, 300]  # ms; one batch resent 90 s late
    for i, delay in enumerate(delays):
        received = T0 + i
        skew.add(received * 1000 + AHEAD - delay, received)
    # The second shortest delay: one sample is never trusted alone.
    assert skew.estimate == AHEAD - 40


def test_one_outlier_is_ignored() -> None:
    skew = ClockSkew()
    for i in range(10):
        skew.add((T0 + i) * 1000 + AHEAD - 50, T0 + i)
    skew.add((T0 + 10) * 1000 + 10 * AHEAD, T0 + 10)  # one event stamped far in the future
    assert skew.estimate == AHEAD - 50


def test_a_resumed_session_starts_from_its_stored_estimate() -> None:
    skew = ClockSkew(AHEAD - 30)
    assert skew.estimate == AHEAD - 30
    skew.add((T0 * 1000) + AHEAD - 500, T0)  # a slower batch does not lower it
    assert skew.estimate == AHEAD - 30
    skew.add((T0 * 1000) + AHEAD - 10, T0)  # a single better one is not trusted alone
    assert skew.estimate == AHEAD - 30
    skew.add((T0 * 1000) + AHEAD - 12, T0)
    assert skew.estimate == AHEAD - 12


@given(
    st.floats(-1e10, 1e10),
    st.lists(st.floats(0, 1e7), min_size=2, max_size=50),
)
def test_the_estimate_is_the_true_skew_minus_the_second_shortest_delay(
    true_skew: float, delays: list[float]
) -> None:
    skew = ClockSkew()
    for i, delay in enumerate(delays):
        received = T0 + i
        skew.add(received * 1000 + true_skew - delay, received)
    expected = true_skew - sorted(delays)[1]
    assert skew.estimate is not None
    assert math.isclose(skew.estimate, expected, rel_tol=0, abs_tol=1e-3)
    assert skew.estimate <= true_skew + 1e-3  # never more ahead than the tracker is
