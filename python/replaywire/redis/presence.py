"""Presence: which sessions are live on which instance, and their viewers.

Each instance writes one key, ``{prefix}{presence}:i:{instance}``, every
``PRESENCE_INTERVAL`` seconds (2): its live sessions (the
``MAX_PUBLISHED`` most recently started, with exact totals) and the viewers
it has of sessions held elsewhere (``watching``: they watch through the
relay, redis/relay.py, and are counted with the session wherever it is
listed) as JSON, with a
TTL of ``PRESENCE_TTL`` (10 s), and its id into the
``{prefix}{presence}:instances`` sorted set (score: last heartbeat, ms).
The ``{presence}`` hash tag keeps them in one slot of a Redis Cluster, so
a heartbeat is one pipeline and a read one ``MGET`` on one node. A reader lists the set and reads
every instance's key: an instance that crashed stops renewing, so its
sessions disappear from every view at most ``PRESENCE_TTL`` seconds after
its last heartbeat (about ``PRESENCE_TTL`` after the crash, never more). A
server that stops gracefully deletes its key at once.

Without Redis (``link`` None) the same calls answer from this process
alone. With Redis down they do too, and say so (``complete`` false).

Resource handling: :meth:`Presence.run` is the heartbeat task; when it is
cancelled (server stop) it deletes this instance's key, shielded and
bounded to one second.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
import trio

from .link import RedisLink, RedisUnavailable

if TYPE_CHECKING:
    from ..sessions import Hub

__all__ = ["Presence"]

log = structlog.get_logger("replaywire.presence")

MAX_PUBLISHED = 5000  # sessions one instance lists in its heartbeat
GONE_AFTER = 3600 * 1000  # ms after which a silent instance leaves the instances set


class Presence:
    """The live-session view of one server, local or over all instances."""

    def __init__(
        self, hub: Hub, link: RedisLink | None, instance: str, *, interval: float, ttl: float
    ) -> None:
        self.hub = hub
        self.link = link
        self.instance = instance
        self.interval = interval
        self.ttl_ms = int(ttl * 1000)
        self.heartbeats = 0
        # This instance's viewers of sessions held elsewhere, by session
        # (set by the cross-instance fan-out, which watches them).
        self.watching: Callable[[], dict[str, int]] = dict

    # -- this instance ----------------------------------------------------

    def local_sessions(self, limit: int) -> list[dict[str, Any]]:
        """This process's live sessions, newest first, as the REST API shows them."""
        hub = self.hub
        live = sorted(hub.live.values(), key=lambda s: s.record.started_at, reverse=True)
        items = []
        for session in live[:limit]:
            item = session.record.to_json()
            item["viewers"] = session.viewers
            item["nextIndex"] = hub.ingest.next_index(session.id)
            item["instance"] = self.instance
            items.append(item)
        return items

    def _viewers(self) -> int:
        """Viewers connected here, of sessions held here or elsewhere."""
        return sum(s.viewers for s in self.hub.live.values()) + sum(self.watching().values())

    def _heartbeat(self) -> dict[str, Any]:
        watching = self.watching()
        return {
            "instance": self.instance,
            "at": int(time.time() * 1000),
            "count": len(self.hub.live),
            "viewers": self._viewers(),
            "sessions": self.local_sessions(MAX_PUBLISHED),
            "watching": dict(list(watching.items())[:MAX_PUBLISHED]),
        }

    # -- heartbeat --------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write the heartbeat every ``interval`` until cancelled, then
        delete it. Does nothing without Redis."""
        task_status.started()
        if self.link is None:
            return
        try:
            while True:
                beat = self._heartbeat()
                try:
                    await self.link.call(self._write, beat)
                    self.heartbeats += 1
                except RedisUnavailable:
                    pass  # the link logged it; the next beat tries again
                await trio.sleep(self.interval)
        finally:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(1.0),
                contextlib.suppress(RedisUnavailable),
            ):
                await self.link.call(self._remove)

    def _write(self, beat: dict[str, Any]) -> None:
        link = self.link
        assert link is not None
        pipe = link.client.pipeline(transaction=False)
        pipe.set(_key(link, self.instance), json.dumps(beat), px=self.ttl_ms)
        pipe.zadd(_instances(link), {self.instance: beat["at"]})
        pipe.zremrangebyscore(_instances(link), "-inf", beat["at"] - GONE_AFTER)
        pipe.execute()

    def _remove(self) -> None:
        link = self.link
        assert link is not None
        pipe = link.client.pipeline(transaction=False)
        pipe.delete(_key(link, self.instance))
        pipe.zrem(_instances(link), self.instance)
        pipe.execute()

    # -- reading ----------------------------------------------------------

    def _read(self) -> list[dict[str, Any]]:
        """In a worker thread: every live instance's last heartbeat."""
        link = self.link
        assert link is not None
        ids = link.client.zrange(_instances(link), 0, -1)
        if not ids:
            return []
        names = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
        values = link.client.mget([_key(link, name) for name in names])
        return [json.loads(v) for v in values if v is not None]

    async def _others(self) -> list[dict[str, Any]] | None:
        """The other instances' heartbeats; None without Redis or while it is down."""
        if self.link is None:
            return None
        try:
            beats = await self.link.call(self._read)
        except RedisUnavailable:
            return None
        return [b for b in beats if b.get("instance") != self.instance]

    async def holder(self, session_id: str) -> str | None:
        """The other instance holding ``session_id`` live, per the last
        heartbeats; None if none does (or Redis is unreachable)."""
        for beat in await self._others() or []:
            if any(s.get("sessionId") == session_id for s in beat.get("sessions", [])):
                return str(beat["instance"])
        return None

    async def active_sessions(self, limit: int) -> dict[str, Any]:
        """``GET /sessions/active``: live sessions newest first (at most
        ``limit``), the total count, the instances seen, and whether the
        view is complete (false while Redis is configured but unreachable)."""
        local = self.local_sessions(limit)
        others = await self._others()
        if others is None:
            return {
                "count": len(self.hub.live),
                "sessions": local,
                "instances": [self.instance],
                "complete": self.link is None,
            }
        merged: dict[str, dict[str, Any]] = {}
        for beat in others:
            for item in beat.get("sessions", []):
                _merge(merged, item)
        for item in local:  # this instance's fresh view wins over its own heartbeat
            _merge(merged, item)
        # Viewers watching through another instance than the holder's.
        for watching in [self.watching(), *(b.get("watching") or {} for b in others)]:
            for sid, viewers in watching.items():
                if sid in merged:
                    merged[sid]["viewers"] = int(merged[sid].get("viewers", 0)) + int(viewers)
        sessions = sorted(merged.values(), key=lambda s: s.get("startedAt") or "", reverse=True)
        count = len(self.hub.live) + sum(int(b.get("count", 0)) for b in others)
        return {
            "count": count,
            "sessions": sessions[:limit],
            "instances": sorted({self.instance, *(str(b["instance"]) for b in others)}),
            "complete": True,
        }

    async def cluster_stats(self) -> dict[str, Any] | None:
        """``/stats``' ``cluster`` part: totals over every instance; None
        without Redis."""
        if self.link is None:
            return None
        others = await self._others()
        live = self.hub.live
        mine = {"instance": self.instance, "sessions": len(live), "viewers": self._viewers()}
        rows = [mine] + [
            {
                "instance": b["instance"],
                "sessions": int(b.get("count", 0)),
                "viewers": int(b.get("viewers", 0)),
            }
            for b in others or []
        ]
        return {
            "redis": self.link.up,
            "complete": others is not None,
            "sessions": sum(r["sessions"] for r in rows),
            "viewers": sum(r["viewers"] for r in rows),
            "instances": rows,
        }


def _key(link: RedisLink, instance: str) -> str:
    """One instance's heartbeat key."""
    return link.tagged("presence", "i", instance)


def _instances(link: RedisLink) -> str:
    """The sorted set of instances seen (score: last heartbeat, ms)."""
    return link.tagged("presence", "instances")


def _merge(merged: dict[str, dict[str, Any]], item: dict[str, Any]) -> None:
    """One session seen on several instances (its tracker moved): keep the
    most recently active copy, with the viewers of all."""
    sid = item["sessionId"]
    seen = merged.get(sid)
    if seen is None:
        merged[sid] = item
        return
    viewers = int(seen.get("viewers", 0)) + int(item.get("viewers", 0))
    if (item.get("lastEventAt") or "") >= (seen.get("lastEventAt") or ""):
        merged[sid] = item = dict(item)
    else:
        item = seen
    item["viewers"] = viewers
