"""How far a tracker's clock is off the server's, measured from its batches.

A tracker stamps every event with its own clock (rrweb: ``Date.now()`` in
the browser); the server stamps every accepted batch with its own. For a
batch whose newest event was stamped ``max_timestamp`` (tracker ms) and that
the server received at ``received_at`` (server seconds)::

    max_timestamp - received_at * 1000 = skew - delay

where ``skew`` is how far the tracker's clock is ahead of the server's and
``delay`` is the time from that event to the server accepting the batch:
batching (up to the tracker's flush interval), the network, a reconnect, a
resend. The delay is never negative, so every batch gives a *lower bound*
of the skew, and the batch with the shortest delay gives the best one: the
estimate is the largest sample, not the mean (which the delay would bias by
its own mean, and a burst of resent batches by far more). A batch resent
minutes late after an outage gives a low sample and changes nothing.

One bad sample must not move the estimate for good, though: an event
stamped far in the future (a bug in a tracker plugin, a clock that jumped
and was corrected) would make the running maximum wrong forever. So the
estimate is the *second* largest sample once there are two, which ignores
any single outlier and costs one comparison more than the maximum. O(1)
per batch, two floats per session.

What it cannot see: a tracker clock that changes during the session (an
NTP correction) keeps the larger of the two offsets. Sessions are short
compared with how rarely that happens, and a late viewer is then at worst
as far behind as the correction.
"""

from __future__ import annotations

import math

__all__ = ["ClockSkew"]


class ClockSkew:
    """A session's running skew estimate, in ms (positive: tracker ahead).

    ``estimate`` seeds it (a resumed session's stored value), counting as
    two samples: the stored value already was a second-largest sample."""

    __slots__ = ("_best", "_second")

    def __init__(self, estimate: float | None = None) -> None:
        self._best = self._second = estimate

    def add(self, max_timestamp: float | None, received_at: float) -> float | None:
        """Add one accepted batch (its newest event's timestamp in tracker
        ms, None for a batch without events; the server's epoch seconds) and
        return the estimate. Non-finite timestamps are ignored."""
        if max_timestamp is None or not math.isfinite(max_timestamp):
            return self.estimate
        sample = max_timestamp - received_at * 1000.0
        if self._best is None:
            self._best = sample
        elif sample > self._best:
            self._best, self._second = sample, self._best
        elif self._second is None or sample > self._second:
            self._second = sample
        return self.estimate

    @property
    def estimate(self) -> float | None:
        """The second largest sample, or the only one; None before any."""
        return self._second if self._second is not None else self._best
