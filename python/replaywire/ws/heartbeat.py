"""The heartbeat: ping WebSockets that went silent, drop those that stay so.

A peer that vanished without closing (a laptop lid shut, a NAT entry gone,
a crashed browser tab) leaves a socket that never reads EOF; without a
heartbeat its connection, its sessions' place and its viewer slot would be
held until TCP gives up, many minutes later. So every WebSocket that has
sent nothing for ``WS_PING_INTERVAL`` seconds while the server was waiting
for it is sent a ping, and one that then sends nothing at all (the pong, or
any other frame) for ``WS_PING_TIMEOUT`` seconds is dropped: a close frame
1011 if its socket takes one at once, then the TCP connection is closed
without waiting for an answer (RFC 6455 section 7.1.7, "Fail the WebSocket
Connection"; 1011 as the ``websockets`` library uses for a keepalive
timeout: 1001 would claim the server is going away, 1006 may not be sent).

Only time spent *waiting for the peer* counts as silence: while the server
does not read a connection on purpose (storage backpressure, the in-flight
budget), the peer's frames queue in the kernel and it is not judged.

One sweeper for all connections (:meth:`Heartbeat.sweep`, every ``step``
seconds), not a timer per connection: 10,000 idle connections cost one pass
over a set every few seconds, and a ping is one non-blocking write
(:meth:`~.connection.WebSocket.ping_now`), no task. The price is the step's
granularity: a ping leaves up to ``step`` after the interval, a drop up to
``step`` after the timeout; ``step`` is a quarter of the shorter of the two,
so a dead peer is dropped within 1.25 x (interval + timeout) of its last
frame (50 s with the defaults), and never before interval + timeout.
"""

from __future__ import annotations

from collections.abc import Iterable

from .connection import WebSocket

__all__ = ["Heartbeat"]


class Heartbeat:
    """Pings and timeouts for a set of WebSockets. trio loop only."""

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.step = min(interval, timeout) / 4
        """Seconds between two sweeps."""

    def sweep(self, websockets: Iterable[WebSocket], now: float) -> list[WebSocket]:
        """Ping every connection silent for ``interval`` (once per silence);
        return those whose ping has gone unanswered for ``timeout``, for the
        caller to drop (:meth:`~.connection.WebSocket.abort`)."""
        dead: list[WebSocket] = []
        for ws in websockets:
            since = ws.idle_since
            if since is None:
                continue  # reading, or not read on purpose: not silent
            pinged = ws.pinged_at
            if pinged is None:
                if now - since >= self.interval:
                    ws.pinged_at = now
                    # The clock starts even when the socket takes nothing
                    # now: a peer that neither reads nor writes is as dead.
                    ws.ping_now()
            elif now - pinged >= self.timeout:
                dead.append(ws)
            else:
                ws.flush_now()  # a ping the socket had no room for
        return dead
