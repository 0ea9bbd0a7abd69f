"""One pub/sub subscriber thread per instance, feeding the trio loop.

redis-py has no trio client and a pub/sub connection blocks while it waits,
so the instance keeps one thread (not one per session) holding one pub/sub
connection of its own (outside the link's pool, which it would otherwise
starve). The thread subscribes and unsubscribes channels as the loop asks
(a command queue it reads between waits of ``POLL`` seconds), reads every
message that has arrived, and hands them to the loop **in one batch** with
``TrioToken.run_sync_soon``: one loop wake-up per burst, not per message.

Bounds: messages handed to the loop and not yet taken hold at most
``max_pending`` bytes; beyond, the thread drops them (and counts them).
Nothing is lost silently: every relayed message says the index it starts
at, so a receiver sees the hole and resynchronises its viewers. Redis
itself disconnects a subscriber that lets its output buffer grow
(``client-output-buffer-limit pubsub``), which ends the same way.

With a Redis Cluster the channels are shard channels (``SSUBSCRIBE``,
Redis 7): redis-py's cluster pub/sub keeps one connection per node owning
a subscribed channel's slot and reads them in turn, so a message travels
only within its shard instead of to every node.

Error handling: a lost connection is reported (``on_state(False)``), the
thread waits with exponential backoff and full jitter (100 ms to 5 s, as
the link), reconnects, subscribes every channel again and reports
``on_state(True)``; the loop then asks every holder again (its viewers may
have missed ticks meanwhile: they are resynchronised by the ``head``
answers).

Resource handling: :meth:`start` starts the thread; :meth:`stop` asks it
to end and closes its connection within about ``POLL`` seconds (the
thread is a daemon, so a hung socket cannot keep the process alive).
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable
from typing import Any

import structlog
import trio

from .link import BACKOFF_MAX, BACKOFF_MIN, ERRORS, connect

__all__ = ["Subscriber"]

log = structlog.get_logger("replaywire.redis")

POLL = 0.02  # seconds the thread waits for a message before looking at its commands
MAX_BATCH = 256  # messages handed over in one loop callback


class Subscriber:
    """``deliver(batch)`` runs in the trio loop with ``[(channel, data), ...]``;
    ``on_subscribed(channel)`` once Redis confirmed a subscription (a
    holder's answer can then not be missed); ``on_state(up)`` on every
    change of the connection's state; ``cluster``: ``url`` is a node of a
    Redis Cluster (see :func:`~replaywire.redis.link.client_url`)."""

    def __init__(
        self,
        url: str,
        *,
        deliver: Callable[[list[tuple[str, bytes]]], None],
        on_subscribed: Callable[[str], None],
        on_state: Callable[[bool], None],
        max_pending: int,
        cluster: bool = False,
    ) -> None:
        self.url = url
        self.cluster = cluster
        self._deliver = deliver
        self._on_subscribed = on_subscribed
        self._on_state = on_state
        self.max_pending = max_pending
        self.pending = 0  # bytes handed to the loop, not yet delivered
        self.dropped = 0  # messages dropped because the loop was behind
        self._lock = threading.Lock()
        self._commands: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._channels: set[str] = set()  # the thread's own view
        self._stop = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None

    # -- loop side ----------------------------------------------------------

    def start(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._run, name="redis-subscriber", daemon=True)
        self._thread.start()

    def subscribe(self, channel: str) -> None:
        self._commands.put(("subscribe", channel))

    def unsubscribe(self, channel: str) -> None:
        self._commands.put(("unsubscribe", channel))

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await trio.to_thread.run_sync(self._thread.join, 2.0, abandon_on_cancel=True)

    def _taken(self, batch: list[tuple[str, bytes]]) -> None:
        with self._lock:
            self.pending -= sum(len(data) for _, data in batch)
        self._deliver(batch)

    # -- thread side --------------------------------------------------------

    def _call(self, fn: Callable[..., object], *args: object) -> bool:
        assert self._token is not None
        try:
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            self._stop.set()
            return False
        return True

    def _run(self) -> None:
        delay = 0.0
        up = False
        while not self._stop.is_set():
            client: Any = None
            pubsub: Any = None
            try:
                client = connect(self.url, cluster=self.cluster)  # a cluster's: asks for slots
                pubsub = client.pubsub()
                self._take_commands(pubsub, connected=False)
                if not self.cluster:
                    pubsub.ping()  # connect now, so that an outage shows at once
                if self._channels:
                    self._subscribe(pubsub, *self._channels)
                if not up:
                    up, delay = True, 0.0
                    self._call(self._on_state, True)
                self._listen(pubsub)
            except ERRORS as exc:
                if up:
                    up = False
                    log.warning("redis_subscriber_down", error=str(exc) or type(exc).__name__)
                    self._call(self._on_state, False)
                delay = min(BACKOFF_MAX, max(BACKOFF_MIN, delay * 2))
                self._stop.wait(random.uniform(0, delay))
            finally:
                for resource in (pubsub, client):
                    try:
                        if resource is not None:
                            resource.close()
                    except ERRORS:
                        pass

    def _subscribe(self, pubsub: Any, *channels: str) -> None:
        if self.cluster:
            pubsub.ssubscribe(*channels)
        else:
            pubsub.subscribe(*channels)

    def _unsubscribe(self, pubsub: Any, channel: str) -> None:
        if self.cluster:
            pubsub.sunsubscribe(channel)
        else:
            pubsub.unsubscribe(channel)

    def _get(self, pubsub: Any, timeout: float) -> dict[str, Any] | None:
        if self.cluster:
            message: dict[str, Any] | None = pubsub.get_sharded_message(timeout=timeout)
        else:
            message = pubsub.get_message(timeout=timeout)
        return message

    def _take_commands(self, pubsub: Any, *, connected: bool) -> None:
        while True:
            try:
                op, channel = self._commands.get_nowait()
            except queue.Empty:
                return
            if op == "subscribe":
                self._channels.add(channel)
                if connected:
                    self._subscribe(pubsub, channel)
            else:
                self._channels.discard(channel)
                if connected:
                    self._unsubscribe(pubsub, channel)

    def _listen(self, pubsub: Any) -> None:
        while not self._stop.is_set():
            self._take_commands(pubsub, connected=True)
            batch: list[tuple[str, bytes]] = []
            nbytes = 0
            msg = self._get(pubsub, POLL)
            while msg is not None and len(batch) < MAX_BATCH:
                channel = msg["channel"]
                name = channel.decode() if isinstance(channel, bytes) else str(channel)
                if msg["type"] in ("subscribe", "ssubscribe"):
                    self._call(self._on_subscribed, name)
                elif msg["type"] in ("message", "smessage"):
                    data = msg["data"]
                    with self._lock:
                        room = self.pending + nbytes + len(data) <= self.max_pending
                    if room:
                        batch.append((name, data))
                        nbytes += len(data)
                    else:
                        self.dropped += 1
                msg = self._get(pubsub, 0)
            if batch:
                with self._lock:
                    self.pending += nbytes
                self._call(self._taken, batch)
