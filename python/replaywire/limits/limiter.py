"""The rate limits a server applies, and the two checks on its hot paths.

- :meth:`Limiter.hold_connection`, when a TCP connection is accepted:
  concurrent connections per IP, counting connections still sending their
  request (slowloris ones) and REST ones, until each closes.
- :meth:`Limiter.admit_connection`, before a WebSocket upgrade: new
  WebSocket connections per IP per window.

  Over a limit, both raise :class:`~replaywire.errors.HttpError` 429 with
  ``Retry-After``, so the client is refused before the 101 (at accept, the
  listener answers it without reading the request: ``http.listener``).
- :meth:`Limiter.check_batch`, per tracker message: messages and events per
  tracker, events per session. Over a limit it raises
  :class:`~replaywire.errors.ProtocolError` ``rate_limited`` with
  ``retryAfterMs`` and the batch's ``seq``; nothing was counted, stored or
  acked, so the tracker resends the same seq later.

Both are dictionary lookups and integer arithmetic on
:class:`~replaywire.limits.windows.Window` objects, with no I/O: with Redis
the counts are synced in the background by :class:`~replaywire.limits.sync.CounterSync`.

The tracker limit is keyed by a *tracker key* (:func:`tracker_key`): the
connection for now; a tenant's write key can take its place without
changing anything else. Per-connection counters are kept local (a
connection lives on one instance; syncing them would only cost Redis work);
the IP and session counters are shared.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import HttpError, ProtocolError
from .concurrency import Concurrency
from .windows import Window, WindowTable

if TYPE_CHECKING:
    from ..config import Config
    from ..observability.metrics import Metrics

__all__ = ["LIMIT_NAMES", "ConnectionLease", "Limiter", "TrackerQuota", "client_ip", "tracker_key"]

# The `limit` label of replaywire_rate_limited_total.
LIMIT_NAMES = ("connections", "concurrent", "messages", "events", "session_events", "keys_full")
CONCURRENT_RETRY_MS = 1000  # a connection refused for concurrency: no window says when


def client_ip(client: str) -> str:
    """The IP of a ``host:port`` peer string (IPv6 included)."""
    host, sep, _ = client.rpartition(":")
    return host if sep else client


_connections = itertools.count(1)


def tracker_key(write_key: str | None = None) -> str:
    """The subject of the per-tracker limits. Today each connection is its
    own (``c:N``, unique in this process); with write keys, ``k:KEY``."""
    return f"k:{write_key}" if write_key is not None else f"c:{next(_connections)}"


def _now_ms() -> int:
    # Wall clock: with Redis every instance must agree where windows start.
    return int(time.time() * 1000)


class ConnectionLease:
    """An admitted connection's place in the concurrency count; released
    exactly once (a context manager, also safe to release twice)."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None] | None) -> None:
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> ConnectionLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class TrackerQuota:
    """One tracker connection's windows, resolved once per connection so a
    batch costs no lookup for them (None: that limit is off)."""

    __slots__ = ("events", "key", "messages")

    def __init__(self, key: str, messages: Window | None, events: Window | None) -> None:
        self.key = key
        self.messages = messages
        self.events = events


class Limiter:
    """Every limit of one server. ``shared``: counts are synced through
    Redis (set when ``REDIS_URL`` is). Not thread-safe: trio loop only."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        *,
        shared: bool,
        warn: Callable[..., None] = lambda event, **fields: None,
    ) -> None:
        window_ms = max(1, int(config.rate_limit_window * 1000))
        keys = config.limit_max_keys
        self.window_ms = window_ms
        self.shared = shared

        def table(name: str, limit: int, shared_table: bool) -> WindowTable | None:
            if limit <= 0:
                return None
            return WindowTable(name, limit, window_ms, max_keys=keys, shared=shared_table)

        self.connections = table("connections", config.limit_connections_per_ip, shared)
        self.messages = table("messages", config.limit_messages_per_tracker, False)
        self.events = table("events", config.limit_events_per_tracker, False)
        self.session_events = table("session_events", config.limit_events_per_session, shared)
        self.concurrent = (
            Concurrency(config.limit_concurrent_per_ip, max_keys=keys, shared=shared)
            if config.limit_concurrent_per_ip > 0
            else None
        )
        self._warn = warn  # the server's sampled client-fault log (warn_client)
        counter = metrics.rate_limited_total
        self._refused = {name: counter.labels(name).inc for name in LIMIT_NAMES}

    @property
    def tables(self) -> list[WindowTable]:
        return [
            t
            for t in (self.connections, self.messages, self.events, self.session_events)
            if t is not None
        ]

    # -- connections ------------------------------------------------------

    def admit_connection(self, client: str) -> None:
        """Count a new WebSocket connection from ``client`` (``ip:port``)
        in its window, or raise HttpError 429 (``rate_limited``,
        ``Retry-After`` in seconds)."""
        if self.connections is None:
            return
        ip = client_ip(client)
        now = _now_ms()
        window = self.connections.get(ip, now)
        if window is None:
            self._refuse_connection("keys_full", CONCURRENT_RETRY_MS)
        else:
            retry = window.retry_after(1, now)
            if retry:
                self._refuse_connection("connections", retry)
            window.take(1)

    def hold_connection(self, client: str) -> ConnectionLease:
        """Count an open TCP connection from ``client`` (``ip:port``) until
        the lease is released, or raise HttpError 429 (``rate_limited``,
        ``Retry-After: 1``) when its IP holds ``LIMIT_CONCURRENT_PER_IP``."""
        if self.concurrent is None:
            return ConnectionLease(None)
        ip = client_ip(client)
        if not self.concurrent.acquire(ip):
            self._refuse_connection("concurrent", CONCURRENT_RETRY_MS)
        concurrent = self.concurrent
        return ConnectionLease(lambda: concurrent.release(ip))

    def _refuse_connection(self, limit: str, retry_ms: int) -> None:
        self._refused[limit]()
        self._warn("connection_rate_limited", limit=limit, retry_after_ms=retry_ms)
        seconds = str(max(1, -(-retry_ms // 1000))).encode()
        raise HttpError(
            429,
            "rate_limited",
            f"too many connections from this address ({limit}); retry in {retry_ms} ms",
            [(b"retry-after", seconds)],
        )

    # -- trackers ---------------------------------------------------------

    def tracker(self, key: str | None = None) -> TrackerQuota:
        """The per-tracker windows of a new tracker connection (``key``: see
        :func:`tracker_key`); give them back with :meth:`forget_tracker`
        when it closes. With the tables full, the connection's windows are
        its own, outside them: a connection is never left unlimited."""
        key = key or tracker_key()
        now = _now_ms()
        return TrackerQuota(key, _own(self.messages, key, now), _own(self.events, key, now))

    def forget_tracker(self, quota: TrackerQuota) -> None:
        for table in (self.messages, self.events):
            if table is not None:
                table.drop(quota.key)

    def check_batch(
        self, quota: TrackerQuota, session_id: str | None, events: int, seq: int | None
    ) -> None:
        """Admit one tracker message carrying ``events`` events (0 for
        messages other than ``events_batch``) for ``session_id``, or raise
        ProtocolError ``rate_limited``. All or nothing: a refused message
        counts against no limit."""
        now = _now_ms()
        messages = quota.messages
        if messages is not None and (retry := messages.retry_after(1, now)):
            self._refuse_batch("messages", retry, seq)
        window = quota.events
        if events and window is not None and (retry := window.retry_after(events, now)):
            self._refuse_batch("events", retry, seq)
        session: Window | None = None
        if events and session_id is not None and self.session_events is not None:
            session = self.session_events.get(session_id, now)
            if session is None:
                self._refuse_batch("keys_full", CONCURRENT_RETRY_MS, seq)
            elif retry := session.retry_after(events, now):
                self._refuse_batch("session_events", retry, seq)
        if messages is not None:
            messages.take(1)
        if events:
            if window is not None:
                window.take(events)
            if session is not None:
                session.take(events)

    def _refuse_batch(self, limit: str, retry_ms: int, seq: int | None) -> None:
        self._refused[limit]()
        raise ProtocolError(
            "rate_limited",
            f"over the {limit} rate limit; resend after retryAfterMs",
            seq,
            retry_after_ms=retry_ms,
        )

    # -- upkeep -----------------------------------------------------------

    def evict(self) -> None:
        """Drop ended windows (called by the sync task, a few times a second)."""
        now = _now_ms()
        for table in self.tables:
            table.evict(now)


def _own(table: WindowTable | None, key: str, now_ms: int) -> Window | None:
    """A connection's window in ``table``, or outside it when it is full."""
    if table is None:
        return None
    return table.get(key, now_ms) or Window(table, key, now_ms - now_ms % table.window_ms)
