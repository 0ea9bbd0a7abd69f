"""Which batch seqs of a session have been accepted.

Trackers number their batches 0, 1, 2, ... per session and resend unacked
ones after a reconnect, so a seq may arrive twice or out of order. A
duplicate must be acked again but not stored twice. The window keeps the
contiguous watermark (every seq below ``next_seq`` is accepted) plus the few
accepted seqs above it; it never grows past ``max_ahead`` entries.
"""

from __future__ import annotations

from collections.abc import Iterable


class SeqWindow:
    __slots__ = ("_above", "max_ahead", "next_seq")

    def __init__(
        self, next_seq: int = 0, above: Iterable[int] = (), *, max_ahead: int = 4096
    ) -> None:
        self.next_seq = next_seq
        self._above = {s for s in above if s > next_seq}
        self.max_ahead = max_ahead
        self._advance()

    def seen(self, seq: int) -> bool:
        return seq < self.next_seq or seq in self._above

    def fits(self, seq: int) -> bool:
        """False when ``seq`` is too far ahead of the watermark to track."""
        return seq < self.next_seq + self.max_ahead

    def add(self, seq: int) -> None:
        if seq == self.next_seq:
            self.next_seq += 1
            self._advance()
        elif seq > self.next_seq:
            self._above.add(seq)

    def assign(self) -> int:
        """A seq for a batch sent without one: the lowest free one."""
        return self.next_seq

    def _advance(self) -> None:
        above = self._above
        while self.next_seq in above:
            above.remove(self.next_seq)
            self.next_seq += 1
