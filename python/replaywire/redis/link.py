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

Redis Cluster (``REDIS_URL=redis+cluster://...``, or ``REDIS_CLUSTER``):
the client is redis-py's :class:`~redis.cluster.RedisCluster`, which routes
each command to the node owning its key's slot. Every key and channel is
named with :meth:`RedisLink.tagged`, whose hash tag decides the slot, so
that whatever one call touches together (one session's channel, one
tenant's or one IP's limit counters, the presence keys) lives in one slot;
callers group multi-key calls by :meth:`RedisLink.slot`. A single Redis
gets the same key names.

Error handling: any connection or Redis error marks the link down
(``replaywire_redis_up`` 0, one ``redis_down`` warning), and raises
:class:`RedisUnavailable`. While down, calls fail at once without touching
the network until the backoff (exponential with full jitter, 100 ms up to
5 s) has passed; then one call tries again. The first success marks it up
(one ``redis_up`` line). Callers keep working locally meanwhile.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import structlog
import trio
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from ..errors import RedisUnavailable as RedisUnavailable

__all__ = ["ERRORS", "RedisLink", "RedisUnavailable", "client_url", "connect"]

log = structlog.get_logger("replaywire.redis")

T = TypeVar("T")

MAX_CONNECTIONS = 4
SOCKET_TIMEOUT = 1.0  # seconds; bounds how long a thread can hang on a dead Redis
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

Client = redis.Redis | RedisCluster
# What a failed call raises: redis-py's errors, the cluster client's own
# (not a RedisError: no node reachable, a slot not covered) and the socket's.
ERRORS = (redis.RedisError, RedisClusterException, OSError)


def client_url(url: str, cluster: bool) -> tuple[str, bool]:
    """The URL redis-py understands, and whether it names a cluster:
    ``redis+cluster://`` (``rediss+cluster://`` with TLS) is ``redis://``
    (``rediss://``) to any node of a cluster; ``cluster`` (``REDIS_CLUSTER``)
    says the same of a plain URL."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    if sep and plain is not None:
        return f"{plain}://{rest}", True
    return url, cluster


def connect(url: str, *, cluster: bool, **options: Any) -> Client:
    """A client of the single Redis or the cluster ``url`` names (see
    :func:`client_url`), with our socket timeouts and no retries of its own
    (the link and the subscriber back off themselves). Connecting to a
    cluster asks a node for the slot map, so it can raise."""
    url, cluster = client_url(url, cluster)
    options.update(
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    if cluster:
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


class RedisLink:
    """A shared Redis client for one server instance.

    ``prefix`` starts every key this server writes (several deployments, or
    tests, can share one Redis); ``instance`` names this server in
    per-instance keys; ``cluster``: the URL is a plain one to a node of a
    Redis Cluster (``REDIS_CLUSTER``); ``on_state(up)`` is called on every
    change of state.

    With a cluster, the client is made by the first call (in its worker
    thread: it asks a node for the slot map), and again after a failure
    until one succeeds.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        instance: str,
        cluster: bool = False,
        on_state: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.instance = instance
        self.cluster = client_url(url, cluster)[1]
        self._client: Client | None = None
        self._client_lock = threading.Lock()  # worker threads may race to make it
        if not self.cluster:
            self._client = connect(url, cluster=False, max_connections=MAX_CONNECTIONS)
        self.up = False
        self._known = False  # whether a call has been made yet
        self._on_state = on_state
        self._threads = trio.CapacityLimiter(MAX_CONNECTIONS)
        self._delay = 0.0
        self._retry_at = 0.0
        self._down_since = 0.0

    @property
    def client(self) -> Client:
        """The redis-py client; only in a worker thread (:meth:`call`),
        where it is made on first use with a cluster."""
        with self._client_lock:
            if self._client is None:
                self._client = connect(self.url, cluster=True, max_connections=MAX_CONNECTIONS)
            return self._client

    def tagged(self, tag: str, *parts: str) -> str:
        """A key or channel under this server's prefix, in the slot of
        ``tag``: ``tagged("presence", "i", id)`` is
        ``{prefix}{presence}:i:{id}``. Keys used together share a tag."""
        return self.prefix + "{" + tag + "}" + "".join(":" + part for part in parts)

    @staticmethod
    def slot(key: str) -> int:
        """The cluster slot of ``key`` (its hash tag's, if it has one)."""
        return int(key_slot(key.encode()))

    def publish(self, pipe: Any, channel: str, data: bytes) -> None:
        """Queue one message on ``pipe``: sharded (``SPUBLISH``, Redis 7)
        on a cluster, where a plain ``PUBLISH`` would cross every node."""
        if self.cluster:
            pipe.spublish(channel, data)
        else:
            pipe.publish(channel, data)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (blocking redis-py calls) in a worker thread.
        Raises :class:`RedisUnavailable` while down or when it fails."""
        if not self.up and time.monotonic() < self._retry_at:
            raise RedisUnavailable("redis is down; waiting before the next attempt")
        try:
            result = await trio.to_thread.run_sync(
                fn, *args, abandon_on_cancel=True, limiter=self._threads
            )
        except ERRORS as exc:
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
        if self._client is not None:
            await trio.to_thread.run_sync(self._client.close, abandon_on_cancel=True)


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
