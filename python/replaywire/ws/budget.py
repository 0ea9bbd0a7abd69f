"""The in-flight budget: bytes of incomplete WebSocket messages held across
all connections (``MAX_INFLIGHT_BYTES``).

A single message may be as large as ``MAX_MESSAGE_BYTES`` (64 MiB by
default: rrweb full snapshots with inlined CSS and images are that big), so
a few hundred connections uploading at once could each hold that much while
their messages arrive. The budget bounds the sum. A connection whose
incomplete message would take it past the limit is not read until others
finish theirs: TCP backpressure, not refusal; only a message over
``MAX_MESSAGE_BYTES`` by itself is refused (``payload_too_large``).

What a connection holds is what its frame decoder buffers plus what the
frame in progress still announces (known from the frame header, before
any of its payload is buffered), so a 48 MiB single-frame message reserves
its 48 MiB before reading it. Connections holding at most ``FREE_BYTES``
(every ordinary batch) never touch the budget: the hot path pays one
comparison.

No deadlock: a fragmented message grows step by step, so every connection
could end up holding part of the budget and waiting for more. The
connection that has held bytes longest is therefore always let through;
it completes its message and frees its share. The bound is so
``MAX_INFLIGHT_BYTES`` plus one message, plus ``FREE_BYTES`` per connection.
"""

from __future__ import annotations

import trio

__all__ = ["FREE_BYTES", "InflightBudget"]

FREE_BYTES = 1 << 20


class InflightBudget:
    """Bytes held by incomplete messages, shared by every connection."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.waits = 0  # times a connection had to wait (a counter for metrics)
        # Owner -> bytes held; insertion order is the order they started
        # holding, so the first key is the oldest holder.
        self._held: dict[object, int] = {}
        self._freed = trio.Event()

    def held(self, owner: object) -> int:
        return self._held.get(owner, 0)

    async def hold(self, owner: object, nbytes: int) -> None:
        """Make ``owner`` hold ``nbytes`` (0 releases), first waiting while
        growing would pass the limit and ``owner`` is not the oldest holder."""
        if nbytes > self._held.get(owner, 0):
            counted = False
            while self.used + nbytes - self._held.get(owner, 0) > self.limit and not self._oldest(
                owner
            ):
                if not counted:
                    self.waits += 1
                    counted = True
                await self._freed.wait()
        self._set(owner, nbytes)

    def release(self, owner: object) -> None:
        self._set(owner, 0)

    def _oldest(self, owner: object) -> bool:
        return next(iter(self._held), owner) is owner

    def _set(self, owner: object, nbytes: int) -> None:
        before = self._held.get(owner, 0)
        if nbytes == before:
            return
        self.used += nbytes - before
        if nbytes:
            self._held[owner] = nbytes
        else:
            del self._held[owner]
        if nbytes < before or not nbytes:
            # Less is held (or the oldest holder changed): let waiters look.
            self._freed.set()
            self._freed = trio.Event()
