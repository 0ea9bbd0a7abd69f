"""The one connection to Redis, and its up/down state.

redis-py has no trio client, so every Redis call is a blocking function run
in a worker thread (:func:`trio.to_thread.run_sync`). That costs a thread
hop per *call*, so callers batch: the rate-limit sync sends every counter
touched in one pipelined script call per interval, presence writes one key
per heartbeat. No tracker message ever waits for Redis.

Resource handling: :class:`RedisLink` owns a redis-py connection pool
(at most ``MAX_CONNECTIONS`` sockets) and a thread limiter of the same size;
:meth:`close` releases the sockets. Calls cancelled from trio are abandoned
(the thread finishes on its own, bounded by the socket timeouts).

Error handling: any connection or Redis error marks the link down
(``replaywire_redis_up`` 0, one ``redis_down`` warning), and raises
:class:`RedisUnavailable`. While down, calls fail at once without touching
the network until the backoff (exponential with full jitter, 100 ms up to
5 s) has passed; then one call tries again. The first success marks it up
(one ``redis_up`` line). Callers keep working locally meanwhile.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import structlog
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["RedisLink", "RedisUnavailable"]

log = structlog.get_logger("replaywire.redis")

T = TypeVar("T")

MAX_CONNECTIONS = 4
SOCKET_TIMEOUT = 1.0  # seconds; bounds how long a thread can hang on a dead Redis
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0


class RedisUnavailable(Exception):
    """Redis could not be reached or answered with an error; the caller
    carries on without it. ``code`` is ``redis_unavailable``."""

    code = "redis_unavailable"


class RedisLink:
    """A shared Redis client for one server instance.

    ``prefix`` starts every key this server writes (several deployments, or
    tests, can share one Redis); ``instance`` names this server in
    per-instance keys; ``on_state(up)`` is called on every change of state.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        instance: str,
        on_state: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.instance = instance
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            max_connections=MAX_CONNECTIONS,
            retry=Retry(NoBackoff(), 0),  # our own backoff, below
        )
        self.up = False
        self._known = False  # whether a call has been made yet
        self._on_state = on_state
        self._threads = trio.CapacityLimiter(MAX_CONNECTIONS)
        self._delay = 0.0
        self._retry_at = 0.0
        self._down_since = 0.0

    def key(self, *parts: str) -> str:
        """A key under this server's prefix: ``key("presence", id)``."""
        return self.prefix + ":".join(parts)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (blocking redis-py calls) in a worker thread.
        Raises :class:`RedisUnavailable` while down or when it fails."""
        if not self.up and time.monotonic() < self._retry_at:
            raise RedisUnavailable("redis is down; waiting before the next attempt")
        try:
            result = await trio.to_thread.run_sync(
                fn, *args, abandon_on_cancel=True, limiter=self._threads
            )
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            raise RedisUnavailable(str(exc) or type(exc).__name__) from None
        self._succeeded()
        return result

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._delay = min(BACKOFF_MAX, max(BACKOFF_MIN, self._delay * 2))
        self._retry_at = now + random.uniform(0, self._delay)
        if self.up or not self._known:
            self._down_since = now
            self.up, self._known = False, True
            log.warning("redis_down", error=str(exc) or type(exc).__name__, url=_safe(self.url))
            self._on_state(False)

    def _succeeded(self) -> None:
        if self.up:
            return
        down_for = round(time.monotonic() - self._down_since, 3) if self._known else None
        self.up, self._known, self._delay = True, True, 0.0
        log.info("redis_up", url=_safe(self.url), down_seconds=down_for)
        self._on_state(True)

    async def close(self) -> None:
        """Close the pool's sockets (idempotent)."""
        await trio.to_thread.run_sync(self.client.close, abandon_on_cancel=True)


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
