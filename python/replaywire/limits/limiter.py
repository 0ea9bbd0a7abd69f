"""The rate limits a server applies, and the two checks on its hot paths.

- :meth:`Limiter.hold_connection`, when a TCP connection is accepted:
  concurrent connections per IP, counting connections still sending their
  request (slowloris ones) and REST ones, until each closes.
- :meth:`Limiter.admit_connection`, before a WebSocket upgrade: new
  WebSocket connections per IP per window.

  Over a limit, both raise :class:`~replaywire.errors.HttpError` 429 with
  ``Retry-After``, so the client is refused before the 101 (at accept, the
  listener answers it without reading the request: ``http.listener``).
- Per tracker message, in the tracker engines (Rust, ``rust/src/ingest``):
  messages and events per tracker connection, events per session. Over a
  limit the message is answered ``rate_limited`` with ``retryAfterMs`` and
  its ``seq``; nothing was counted, stored or acked, so the tracker resends
  the same seq later. The per-session counters are the
  :class:`replaywire._core.RateTable` :attr:`Limiter.session_events`, which
  the engines count in and :class:`~replaywire.limits.sync.CounterSync`
  syncs like the Python tables.

All are dictionary lookups and integer arithmetic, with no I/O: with Redis
the counts are synced in the background by :class:`~replaywire.limits.sync.CounterSync`.

Per-connection counters are kept local (a connection lives on one
instance; syncing them would only cost Redis work); the IP and session
counters are shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import _core
from ..errors import HttpError
from .concurrency import Concurrency
from .windows import WindowTable

RateTables = WindowTable | _core.RateTable
"""A table of windows: the Python one, or the Rust one the engines count in."""

if TYPE_CHECKING:
    from ..config import Config
    from ..observability.metrics import Metrics

__all__ = ["LIMIT_NAMES", "ConnectionLease", "Limiter", "RateTables", "client_ip"]

# The `limit` label of replaywire_rate_limited_total.
LIMIT_NAMES = ("connections", "concurrent", "messages", "events", "session_events", "keys_full")
CONCURRENT_RETRY_MS = 1000  # a connection refused for concurrency: no window says when


def client_ip(client: str) -> str:
    """The IP of a ``host:port`` peer string (IPv6 included)."""
    host, sep, _ = client.rpartition(":")
    return host if sep else client


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
        self.session_events = (
            _core.RateTable(
                "session_events",
                config.limit_events_per_session,
                window_ms,
                max_keys=keys,
                shared=shared,
            )
            if config.limit_events_per_session > 0
            else None
        )
        self.concurrent = (
            Concurrency(config.limit_concurrent_per_ip, max_keys=keys, shared=shared)
            if config.limit_concurrent_per_ip > 0
            else None
        )
        self._warn = warn  # the server's sampled client-fault log (warn_client)
        counter = metrics.rate_limited_total
        self._refused = {name: counter.labels(name).inc for name in LIMIT_NAMES}

    @property
    def tables(self) -> list[RateTables]:
        """Every table CounterSync syncs (and :meth:`evict` evicts)."""
        return [t for t in (self.connections, self.session_events) if t is not None]

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

    # -- upkeep -----------------------------------------------------------

    def evict(self) -> None:
        """Drop ended windows (called by the sync task, a few times a second)."""
        now = _now_ms()
        for table in self.tables:
            table.evict(now)
