"""What one instance shares with the others: rate limits and presence,
through Redis (a single server or a Redis Cluster) when ``REDIS_URL`` is
set, within this process otherwise.

The server holds one :class:`Cluster` and runs :meth:`Cluster.run` in its
services nursery. Cross-instance live fan-out (:mod:`.redis.relay`) hangs
off the same object and the same :class:`~replaywire.redis.RedisLink`.

Resource handling: :meth:`run` owns the background tasks (counter sync,
presence heartbeat); cancelling it stops them, and the presence task
deletes this instance's key on the way out. :meth:`close` closes the Redis
connections; the server calls it after ``run`` has ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from .limits import CounterSync, Limiter
from .observability.logging import instance_name
from .redis import RedisLink
from .redis.presence import Presence
from .redis.relay import Relay

if TYPE_CHECKING:
    from .config import Config
    from .observability.metrics import Metrics
    from .protocol.broadcast import Broadcasts
    from .sessions import Hub

__all__ = ["Cluster"]


class Cluster:
    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        hub: Hub,
        broadcasts: Broadcasts,
        *,
        warn: Callable[..., None] = lambda event, **fields: None,
    ) -> None:
        self.instance = instance_name(config)
        self.link: RedisLink | None = None
        if config.redis_url:
            self.link = RedisLink(
                config.redis_url,
                prefix=config.redis_prefix,
                instance=self.instance,
                cluster=config.redis_cluster,
                on_state=lambda up: metrics.redis_up.set(int(up)),
            )
        metrics.redis_up.set(0)
        self.limiter = Limiter(config, metrics, shared=self.link is not None, warn=warn)
        self.sync: CounterSync | None = None
        if self.link is not None:
            self.sync = CounterSync(
                self.limiter,
                self.link,
                interval=config.redis_sync_interval / 1000,
                lease=config.presence_ttl,
                renew=config.presence_interval,
            )
        self.presence = Presence(
            hub,
            self.link,
            self.instance,
            interval=config.presence_interval,
            ttl=config.presence_ttl,
        )
        self.relay = Relay(config, metrics, hub, broadcasts, self.link, self.presence)
        self.presence.watching = self.relay.watching
        self._evict_interval = min(1.0, config.rate_limit_window)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            if self.sync is not None:
                await nursery.start(self.sync.run)
            else:
                nursery.start_soon(self._evict_locally)
            await nursery.start(self.presence.run)
            await nursery.start(self.relay.run)
            task_status.started()

    async def _evict_locally(self) -> None:
        """Without Redis nothing syncs, but ended windows still go."""
        while True:
            await trio.sleep(self._evict_interval)
            self.limiter.evict()

    @property
    def redis_unreachable(self) -> bool:
        """Redis is configured but does not answer (ingest goes on locally)."""
        return self.link is not None and not self.link.up

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
