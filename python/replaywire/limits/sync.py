"""Sharing the rate-limit counters through Redis, in batches.

Every ``REDIS_SYNC_INTERVAL`` (75 ms) :class:`CounterSync` takes the windows
counted in since the last sync, and those checked within the last second
(``HOT_MS``: so an instance that is refusing or about to refuse a subject
sees the other instances' counts within one interval even when it adds
nothing itself), and the IPs whose connections changed, and sends them all
in one pipelined call
of :data:`SYNC_SCRIPT` (split into calls of at most ``CHUNK`` keys, in the
same pipeline): ``INCRBY`` each window's unsynced increments and read back
its total over all instances; renew this instance's concurrency lease per IP
and read the other instances' counts. The answers replace each window's
``remote`` view; increments made while the call was in flight stay in
``unsynced`` for the next one. No tracker message waits for this.

Worst-case overshoot (stated in docs/configuration.md): between two syncs each
instance decides on its own, from a total at most one sync interval plus
one round trip old (for a subject it had not checked for a second, from an
older one, until the next sync). A shared limit L can so be exceeded by at
most what the instances admit for that subject during one sync interval
plus one round trip, and never by more than (N-1) x L in one window with N
instances (each admits at most L on its own view).

Keys are hash-tagged by what they count: an IP's counters (its
connections window, its concurrency leases) share ``{ip:ADDRESS}``, a
tenant's session counters ``{t:TENANT}``, so each lives in one slot of a
Redis Cluster. There the script calls are grouped by slot (one call
touches keys of one slot; the cluster pipeline sends each node its calls
in one round trip).

Redis down: the call fails, the windows stay dirty with their increments,
every instance limits on what it knows (its own counts plus the last totals
seen), and the increments reach Redis after it comes back if their window
has not ended. Nothing on the ingest path notices.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import redis
import trio
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from ..auth.tenants import SEPARATOR
from ..redis import RedisLink, RedisUnavailable

if TYPE_CHECKING:
    from .limiter import Limiter, RateTables

__all__ = ["SYNC_SCRIPT", "CounterSync"]

CHUNK = 1000  # keys per script call; one pipeline holds them all
HOT_MS = 1000  # windows checked this recently are refreshed by every sync

# KEYS: window counters (n of them), then concurrency hashes.
# ARGV: n, this instance, lease ms, then (delta, ttl ms) per window, then
# this instance's open count per concurrency hash.
# Returns: each window's total, then each hash's count on the other instances.
SYNC_SCRIPT = """
local n = tonumber(ARGV[1])
local me = ARGV[2]
local lease = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local a = 4
for i = 1, n do
  local delta = tonumber(ARGV[a])
  local v = redis.call('INCRBY', KEYS[i], delta)
  if v == delta then redis.call('PEXPIRE', KEYS[i], ARGV[a + 1]) end
  out[i] = v
  a = a + 2
end
for i = n + 1, #KEYS do
  local key = KEYS[i]
  local mine = tonumber(ARGV[a])
  a = a + 1
  if mine > 0 then
    redis.call('HSET', key, me, mine .. ':' .. (now + lease))
  else
    redis.call('HDEL', key, me)
  end
  local others = 0
  local fields = redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    if fields[j] ~= me then
      local count, expires = string.match(fields[j + 1], '^(%d+):(%d+)$')
      if count and tonumber(expires) > now then
        others = others + tonumber(count)
      else
        redis.call('HDEL', key, fields[j])
      end
    end
  end
  if mine > 0 or others > 0 then redis.call('PEXPIRE', key, lease) end
  out[i] = others
end
return out
"""


class CounterSync:
    """The background task that syncs a :class:`Limiter` with Redis."""

    def __init__(
        self, limiter: Limiter, link: RedisLink, *, interval: float, lease: float, renew: float
    ) -> None:
        self.limiter = limiter
        self.link = link
        self.interval = interval
        self.lease_ms = int(lease * 1000)
        self.renew = renew
        self.script: Script | None = None  # registered in a worker thread (see link.client)
        self.syncs = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sync every ``interval`` until cancelled; evict ended windows as it goes."""
        task_status.started()
        renew_at = trio.current_time()
        while True:
            await trio.sleep(self.interval)
            if trio.current_time() >= renew_at and self.limiter.concurrent is not None:
                self.limiter.concurrent.touch_all()
                renew_at = trio.current_time() + self.renew
            self.limiter.evict()
            await self.sync_once()

    async def sync_once(self) -> bool:
        """One sync; False if Redis could not be reached (all kept for the next)."""
        sent: list[tuple[RateTables, list[tuple[str, int, int]]]] = []  # per table
        keys: list[str] = []
        window_args: list[int] = []
        link = self.link
        hot_since = int(time.time() * 1000) - HOT_MS
        for table in self.limiter.tables:
            rows = table.collect(hot_since)
            if not rows:
                continue
            ttl = 2 * table.window_ms
            for key, start, delta in rows:
                keys.append(window_key(link, table.name, start, key))
                window_args += (delta, ttl)
            sent.append((table, rows))
        ips: list[tuple[str, int]] = []
        concurrent = self.limiter.concurrent
        if concurrent is not None and concurrent.dirty:
            dirty_ips, concurrent.dirty = concurrent.dirty, set()
            ips = [(ip, concurrent.local.get(ip, 0)) for ip in dirty_ips]
        if not sent and not ips:
            return True
        try:
            totals = await link.call(self._send, keys, window_args, ips)
        except RedisUnavailable:
            for table, rows in sent:
                table.restore([key for key, _, _ in rows])
            if concurrent is not None:
                concurrent.dirty.update(ip for ip, _ in ips)
            return False
        at = 0
        for table, rows in sent:
            answers = totals[at : at + len(rows)]
            at += len(rows)
            table.apply([(k, s, d, int(t)) for (k, s, d), t in zip(rows, answers, strict=False)])
        if concurrent is not None:
            for (ip, _), others in zip(ips, totals[at:], strict=False):
                concurrent.synced(ip, int(others))
        self.syncs += 1
        return True

    def _send(
        self, keys: list[str], window_args: list[int], ips: list[tuple[str, int]]
    ) -> list[Any]:
        """In a worker thread: one pipeline of script calls, at most CHUNK
        keys each, each within one slot on a cluster."""
        link = self.link
        if self.script is None:
            self.script = link.client.register_script(SYNC_SCRIPT)
        conc_keys = [concurrency_key(link, ip) for ip, _ in ips]
        pipe = link.client.pipeline(transaction=False)
        calls: list[tuple[list[int], list[int], list[str], list[int | str]]] = []
        for windows, conc in _groups(link, keys, conc_keys):
            w, c = 0, 0
            while w < len(windows) or c < len(conc):
                nw = min(CHUNK, len(windows) - w)
                nc = min(CHUNK - nw, len(conc) - c)
                win, ipi = windows[w : w + nw], conc[c : c + nc]
                call_keys = [keys[i] for i in win] + [conc_keys[i] for i in ipi]
                args: list[int | str] = [nw, link.instance, self.lease_ms]
                for i in win:
                    args += window_args[2 * i : 2 * i + 2]
                args += [ips[i][1] for i in ipi]
                self.script(keys=call_keys, args=args, client=pipe)
                calls.append((win, ipi, call_keys, args))
                w, c = w + nw, c + nc
        replies = pipe.execute(raise_on_error=False)
        totals: list[Any] = [0] * (len(keys) + len(ips))
        for (win, ipi, call_keys, args), reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError):
                # A cluster pipeline does not load scripts: a node that has
                # not seen it yet (new, restarted, failed over) gets it now.
                reply = self.script(keys=call_keys, args=args)
            if isinstance(reply, redis.ResponseError):
                raise reply
            for at, value in zip([*win, *(len(keys) + i for i in ipi)], reply, strict=True):
                totals[at] = value
        return totals


def window_key(link: RedisLink, table: str, start: int, subject: str) -> str:
    """A window counter's key, in its subject's slot: a session's in its
    tenant's (``subject`` is the session's key, ``tenant:sessionId``), any
    other subject's (an IP) in the IP's, beside its concurrency leases."""
    by_tenant = table == "session_events"
    tag = "t:" + subject.partition(SEPARATOR)[0] if by_tenant else "ip:" + subject
    return link.tagged(tag, "rl", table, str(start), subject)


def concurrency_key(link: RedisLink, ip: str) -> str:
    """The hash of every instance's concurrency lease for ``ip``."""
    return link.tagged("ip:" + ip, "conc")


def _groups(
    link: RedisLink, windows: list[str], conc: list[str]
) -> list[tuple[list[int], list[int]]]:
    """The indices of ``windows`` and ``conc`` keys grouped by cluster slot
    (one group with a single Redis, where any call may touch any key)."""
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for kind, keys in enumerate((windows, conc)):
        for i, key in enumerate(keys):
            slot = link.slot(key) if link.cluster else 0
            groups.setdefault(slot, ([], []))[kind].append(i)
    return list(groups.values())
