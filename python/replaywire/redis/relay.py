"""Live fan-out across instances, over Redis pub/sub.

A viewer on instance B of a session whose tracker is connected to instance
A (presence says where a session lives):

1. B subscribes to the session's channel (``{id}:fanout``, hash-tagged
   with the session's key, once per session however many viewers B has),
   and once Redis confirmed it, publishes the id on ``{fanout}:want``.
2. A answers with a ``head`` (its broadcaster's position: where its next
   delta starts) and adds a :class:`RelayFeed` to the session's local
   broadcaster. The relay is one more "codec" of that broadcaster: each
   tick's events are encoded for it **once** (zstd from 512 bytes on,
   :mod:`.wire`; the same compression A's own ``codec=zstd`` viewers get,
   see ``Encoder.sharing_zstd``) and published once, whatever the number
   of instances and viewers behind it.
3. B's :class:`RemoteSession` plays the local broadcaster's part for B's
   viewers: each viewer gets a snapshot up to the head's position (read
   from the shared database; what A has accepted but not yet committed is
   waited for, see :meth:`RemoteSession.read`), then every relayed delta,
   re-framed for its codec (a ``codec=zstd`` viewer gets the relayed zstd
   bytes as they are; others cost B one decompression per tick and codec).
   A delta starts exactly where the previous one ended, so there is no gap
   and no duplicate; a message whose index shows a hole (lost during a
   Redis outage, dropped because B was behind, or relayed by an instance
   the session has left) makes B send the missing events from storage
   first (:meth:`RemoteSession._fill`); only if storage cannot cover them
   within ``SNAPSHOT_WAIT`` are B's viewers resynchronised with a fresh
   snapshot, as a slow local viewer is. The instance holding the
   session's tracker connection answers wants (between page loads, the
   one that held it last), so after a move the new holder's head and
   deltas take over where the old holder's stopped. A want carries the
   index B's viewers reached: the holder first relays what it holds in
   memory from there (:meth:`Relay._relay_from_ring`), which
   storage may not have yet.
4. B asks again every ``PRESENCE_INTERVAL`` while it has viewers (A answers
   each with a ``head``, which is also how B notices what it missed); A
   drops a relay nobody asked for within ``PRESENCE_TTL``. A B that hears
   nothing for ``PRESENCE_TTL`` (A is gone) ends its viewers' stream with
   ``session_ended``; they may join again.

Why relay the events once instead of every codec's frame: the holder does
not know which codecs other instances need, frames per codec would
multiply what Redis carries, and the compressed events are the
``codec=zstd`` frame's payload already (the browser viewer's codec), so the
common case costs the receiver no compression at all. See
``benches/cluster_fanout.py`` for the measured cost.

Ownership: the instance holding a session's tracker connection owns it.
Before a tracker starts (or resumes) a session, its instance claims it
(:meth:`Relay.take`): it takes the next epoch of the session (``INCR`` of
the session's ``epoch`` key, and the instance that took the previous one
from its ``holder`` key) and announces ``epoch instance previous
session`` on ``{fanout}:owner``. An instance that holds the session with
an older epoch of its own closes its tracker connection of it (4409, as
for two connections on one instance), stores what it accepted and
answers ``released epoch instance session``, which the claimer waits
for (at most ``RELEASE_WAIT``) before it reads the resume point from
storage: so the resume covers batches acked on receipt that were not
stored yet. The session is then *detached* there, reading storage rather than its ring (see
:mod:`replaywire.sessions.hub`); its viewers are handed over to a
:class:`RemoteSession` that follows the new holder, from the index they
reached (:meth:`Relay._hand_over`), and back to the local
broadcaster when a tracker brings the session back
(:meth:`Relay._hand_back`). An announcement older than the
instance's own claim is stale and ignored.

On a Redis Cluster the channels are shard channels (``SPUBLISH`` /
``SSUBSCRIBE``): a session's messages go through the node owning its slot
only, and the want channel's node carries the (small, periodic) wants.

Publishing: relayed messages (and wants) collect in a bounded outbox; one
task sends everything collected in one pipelined call in a worker thread
(:meth:`RedisLink.call`): one thread hop per burst, never per viewer or
per message. Receiving: :mod:`.subscriber`.

Bounds: the outbox holds at most ``OUTBOX_BYTES``, a remote session's
inbound queue ``VIEWER_BACKLOG_BYTES``, the subscriber's hand-over
``SUBSCRIBER_BYTES``; beyond, messages are dropped and the gap they leave
resynchronises the viewers concerned.

Resource handling: :meth:`Relay.run` owns the subscriber thread,
the publisher and the renewal task; cancelling it stops them all.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

import structlog
import trio

from .. import _core
from ..protocol import frames
from ..protocol.broadcast import RELAY, Broadcasts, Encoder, Feed, Tick
from ..storage import SessionRecord
from . import wire
from .link import RedisLink, RedisUnavailable
from .subscriber import Subscriber

if TYPE_CHECKING:
    from ..config import Config
    from ..observability.metrics import Metrics
    from ..sessions import Hub, LiveSession
    from ..sessions.history import EventsPage
    from ..sessions.live import TrackerHandle
    from ..ws import WebSocket
    from .presence import Presence

__all__ = ["Relay", "RelayFeed", "RemoteSession"]

log = structlog.get_logger("replaywire.relay")

OUTBOX_BYTES = 64 * 1024 * 1024
SUBSCRIBER_BYTES = 64 * 1024 * 1024
JOIN_TIMEOUT = 2.0  # seconds a joining viewer waits for the holder's head
SNAPSHOT_WAIT = 5.0  # seconds a snapshot waits for the holder's storage to catch up
SNAPSHOT_POLL = 0.02
CATCH_UP_BYTES = 8 * 1024 * 1024  # most a holder relays from its ring for one want
RELEASE_WAIT = 2.0  # seconds a start waits for the instance it takes a session from
RELEASED = "released "  # an owner message's prefix: the answer to a claim
EPOCH_TTL_MIN = 86_400  # seconds a session's ownership epoch is kept at least


class RelayFeed(Feed):
    """On the holder: the other instances' subscription to one session's
    broadcaster. Never queues: each tick is handed to the outbox."""

    def __init__(self, relay: Relay, session: LiveSession) -> None:
        super().__init__(RELAY, 0)
        self.relay = relay
        self.session = session
        self.wanted_at = trio.current_time()

    def push(self, tick: Tick) -> None:
        keyframe = self.session.record.keyframe_index
        if tick.end:
            self.relay.publish_session(
                self.session.id, wire.message(wire.END, tick.first_index, 0, keyframe)
            )
            if self.relay.relays.get(self.session.id) is self:
                del self.relay.relays[self.session.id]
            return
        msg = wire.message(wire.DELTA, tick.first_index, tick.count, keyframe, tick.frames[RELAY])
        self.relay.publish_session(self.session.id, msg)


class RemoteSession:
    """On a viewer's instance: a session held by another instance. Stands in
    for both the :class:`~replaywire.sessions.LiveSession` and its
    :class:`~replaywire.protocol.broadcast.Broadcaster` in the viewer code."""

    def __init__(self, relay: Relay, session_id: str) -> None:
        self.relay = relay
        self.id = session_id
        self.id_json = frames.json_string(session_id)
        self.record = SessionRecord(session_id=session_id, started_at=0.0)  # keyframe_index
        self.viewers = 0
        self.ended = False
        self.closed = False
        self.position = 0  # the index the next relayed delta starts at, once synced
        self.synced = trio.Event()
        self.feeds: set[Feed] = set()
        self.encoder = Encoder(relay.config)
        self.inbound: deque[wire.Relayed] = deque()
        self.inbound_bytes = 0
        self.last_used = trio.current_time()
        self.heard_at = trio.current_time()
        self.ticks = 0
        self.settling = False  # see settle()
        self._wake = trio.Event()
        self._snapshots: dict[tuple[int, int, str, bool], list[bytes]] = {}

    # -- what the viewer code uses (as for a local broadcaster) -------------

    def cached_snapshot(self, key: tuple[int, int, str, bool]) -> list[bytes] | None:
        return self._snapshots.get(key)

    def cache_snapshot(self, key: tuple[int, int, str, bool], frames_: list[bytes]) -> None:
        if key[1] == self.position:
            self._snapshots[key] = frames_

    async def read(self, index: int, limit: int) -> EventsPage:
        """History from ``index`` for a snapshot. Everything before the
        head's position was accepted by the holder, but may not be
        committed yet (one flush, ``BATCH_INTERVAL``): an empty page is
        read again until it is there, for at most ``SNAPSHOT_WAIT``."""
        hub = self.relay.hub
        deadline = trio.current_time() + SNAPSHOT_WAIT
        while True:
            page = await hub.history(self.id, index, limit)
            if page.count or index >= self.position or trio.current_time() >= deadline:
                return page
            await trio.sleep(SNAPSHOT_POLL)

    # -- messages from the holder -------------------------------------------

    def receive(self, msg: wire.Relayed) -> None:
        self.heard_at = trio.current_time()
        size = len(msg.data)
        if self.inbound and self.inbound_bytes + size > self.relay.config.viewer_backlog_bytes:
            self.relay.metrics.relay_messages_total.labels("dropped").inc()
            return  # the hole it leaves resynchronises the viewers
        self.inbound.append(msg)
        self.inbound_bytes += size
        self._wake.set()

    async def run(self) -> None:
        try:
            while not self.closed:
                if not self.inbound:
                    if self.settling:
                        await self._settle()
                        continue
                    self._wake = trio.Event()
                    await self._wake.wait()
                    continue
                msg = self.inbound.popleft()
                self.inbound_bytes -= len(msg.data)
                await self._apply(msg)
        finally:
            self.relay.forget(self)

    async def _apply(self, msg: wire.Relayed) -> None:
        self.heard_at = trio.current_time()
        if msg.keyframe is not None:
            self.record.keyframe_index = msg.keyframe
        if msg.kind == wire.HEAD:
            if not self.synced.is_set():
                self.position = msg.first
                self.synced.set()
            elif msg.first > self.position:
                await self._fill(msg.first)  # we missed deltas (an outage, a drop, a move)
            return
        if not self.synced.is_set():
            return  # deltas for another instance's viewers, before our head
        if msg.kind == wire.END:
            if msg.first < self.position:
                return  # a stale holder's end: the session went on elsewhere
            if msg.first > self.position:
                await self._fill(msg.first)
            end = Tick(msg.first, 0, end=True)
            for feed in list(self.feeds):
                feed.push(end)
            self.ended = True
            self.relay.close(self)
            return
        if msg.next_index <= self.position:
            return  # already had it
        if msg.first < self.position:
            return  # partly had it (two holders, as the session moved): the next shows a gap
        if msg.first > self.position:
            await self._fill(msg.first)
        if msg.first == self.position:
            await self._tick(msg)

    async def _fill(self, index: int) -> None:
        """Events ``position .. index`` were not relayed to us (lost in an
        outage, dropped while we were behind, or relayed by the holder the
        session left): send them from storage, as deltas, where the
        holders commit them (waiting up to SNAPSHOT_WAIT). Only if storage
        cannot cover them do the viewers resynchronise."""
        limit = self.relay.config.viewer_batch_events
        deadline = trio.current_time() + SNAPSHOT_WAIT
        while self.position < index:
            page = await self.relay.hub.history(
                self.id, self.position, min(limit, index - self.position)
            )
            if not page.count:
                # Accepted by the holder, not committed yet (one flush).
                if trio.current_time() >= deadline:
                    self._resync(index)
                    return
                await trio.sleep(SNAPSHOT_POLL)
                continue
            await self._tick_events(page.first_index, page.count, page.events)
        log.info("relay_gap_filled", session_id=self.id, next_index=index)

    async def _tick_events(self, first: int, count: int, events: bytes) -> None:
        """One delta of events read here (a JSON array), for every feed."""
        built: dict[str, bytes] = {}
        while missing := sorted({feed.codec for feed in self.feeds} - built.keys()):
            for codec in missing:
                built[codec] = await self.encoder.frame(
                    codec, b"delta", self.id_json, first, count, events
                )
        self._push(Tick(first, count, built))

    async def _tick(self, msg: wire.Relayed) -> None:
        events: bytes | None = msg.data if msg.codec == wire.CODEC_NONE else None
        built: dict[str, bytes] = {}
        while missing := sorted({feed.codec for feed in self.feeds} - built.keys()):
            for codec in missing:
                if codec == "zstd" and msg.codec == wire.CODEC_ZSTD:
                    built[codec] = frames.events_binary(
                        b"delta", self.id_json, msg.first, msg.count, "zstd", msg.data,
                        msg.raw_length, server_time_ms=round(time.time() * 1000),
                    )  # fmt: skip
                    continue
                if events is None:
                    events = _core.decompress("zstd", msg.data, msg.raw_length)
                built[codec] = await self.encoder.frame(
                    codec, b"delta", self.id_json, msg.first, msg.count, events
                )
        self._push(Tick(msg.first, msg.count, built))

    def _push(self, tick: Tick) -> None:
        """Hand ``tick`` to every feed; the stream continues after it."""
        self.position = tick.first_index + tick.count
        self._snapshots.clear()
        self.ticks += 1
        metrics = self.relay.metrics
        metrics.viewer_ticks_total.inc()
        for feed in list(self.feeds):
            before, written = feed.resyncs, feed.written_directly
            feed.push(tick)
            if feed.written_directly != written:
                metrics.viewer_messages_total.inc()
                metrics.viewer_bytes_total.inc(len(tick.frames[feed.codec]))
            if feed.resyncs != before:
                metrics.viewer_resyncs_total.inc()

    def _resync(self, position: int) -> None:
        """A hole in the stream: every viewer gets a fresh snapshot up to
        ``position``, where the stream continues."""
        log.info("relay_resync", session_id=self.id, expected=self.position, got=position)
        self.position = position
        self._snapshots.clear()
        for feed in list(self.feeds):
            feed.drop()
            self.relay.metrics.viewer_resyncs_total.inc()

    def settle(self) -> None:
        """No instance answers for the session: settle it once the
        messages that did come are sent (see :meth:`_settle`)."""
        self.settling = True
        self._wake.set()

    async def _settle(self) -> None:
        """If storage says the session ended, send the rest of it from
        storage and end the stream; otherwise its holder is gone and the
        stream ends where it is (the viewers may join again)."""
        self.settling = False
        hub = self.relay.hub
        record = await hub.writer.read(hub.storage.get_session, self.id)
        if self.closed:
            return
        end = self.position
        if record is not None and record.status == "ended" and record.event_count > end:
            await self._fill(record.event_count)
            end = self.position
        tick = Tick(end, 0, end=True)
        for feed in list(self.feeds):
            feed.push(tick)
        self.ended = True
        self.relay.close(self)

    def wake(self) -> None:
        self._wake.set()


class Relay:
    """Both sides of cross-instance fan-out for one server; inert without
    Redis (then a viewer sees only sessions held by its own instance)."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        hub: Hub,
        broadcasts: Broadcasts,
        link: RedisLink | None,
        presence: Presence,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.hub = hub
        self.local = broadcasts
        self.link = link
        self.presence = presence
        # How long a session's epoch outlives its last claim (_take_epoch).
        self._epoch_ttl = int(max(EPOCH_TTL_MIN, 4 * config.session_idle_timeout))
        self.relays: dict[str, RelayFeed] = {}  # sessions held here that others watch
        # A session watched through the relay from here is checked against
        # storage too, so that it ends here when it ended elsewhere.
        hub.watched = lambda session: (
            session.viewers > 0 or session.id in self.relays or session.id in self.remotes
        )
        self.remotes: dict[str, RemoteSession] = {}  # sessions held elsewhere watched here
        # Starts here waiting for the instance they take a session from (take).
        self._releases: dict[tuple[str, int], trio.Event] = {}
        self._compress = _core.Compressor("zstd", config.viewer_zstd_level).compress
        self.outbox: list[tuple[str, bytes]] = []
        self.outbox_bytes = 0
        self.subscribed = False  # whether the subscriber's connection is up
        self._outbox_ready = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.subscriber: Subscriber | None = None
        if link is not None:
            self.want_channel = link.tagged("fanout", "want")
            self.owner_channel = link.tagged("fanout", "owner")
            self.subscriber = Subscriber(
                link.url,
                deliver=self._deliver,
                on_subscribed=self._on_subscribed,
                on_state=self._on_state,
                max_pending=SUBSCRIBER_BYTES,
                cluster=link.cluster,
            )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.subscriber is None:
            task_status.started()
            return
        subscriber = self.subscriber
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                subscriber.subscribe(self.want_channel)
                subscriber.subscribe(self.owner_channel)
                subscriber.start()
                nursery.start_soon(self._publish_loop)
                nursery.start_soon(self._renew_loop)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await subscriber.stop()

    # -- ownership ------------------------------------------------------------

    async def take(self, session_id: str) -> int | None:
        """Before a tracker connection starts ``session_id`` here: take the
        next epoch of it and tell the other instances (the claim). When
        another instance held it last, wait until that one
        has closed its connection of it and stored what it accepted (its
        ``released`` answer, at most ``RELEASE_WAIT``): the resume point
        this instance then reads from storage is the true one, with acks
        on receipt too. Which instance had it is kept beside the epoch
        (the ``holder`` key), so a start waits only when another one did.
        Returns the epoch, for :meth:`claim`; None without Redis (or while
        it is down), when storage checks still keep instances from serving
        a stale tail, or when this instance holds the session already."""
        link = self.link
        session = self.hub.live.get(session_id)
        if link is None or (session is not None and session.trackers):
            return None
        me = self.presence.instance
        try:
            keys = (link.tagged(session_id, "epoch"), link.tagged(session_id, "holder"))
            epoch, previous = await link.call(_take_epoch, link, *keys, me, self._epoch_ttl)
        except RedisUnavailable:
            return None
        released = self._releases[session_id, epoch] = trio.Event()
        try:
            message = f"{epoch} {me} {previous or '-'} {session_id}"
            self._publish(self.owner_channel, message.encode())
            if previous not in (None, me) and self.subscribed:
                with trio.move_on_after(RELEASE_WAIT):
                    await released.wait()
        finally:
            del self._releases[session_id, epoch]
        return epoch

    async def claim(self, session: LiveSession, epoch: int | None) -> None:
        """A tracker connection here started ``session``, after
        :meth:`take` gave it ``epoch``: viewers here that followed it
        through the relay come back to the local broadcaster."""
        self._hand_back(session)
        if epoch is not None:
            session.epoch = max(session.epoch, epoch)

    def _claimed(self, data: bytes) -> None:
        """Another instance claimed a session: if this one holds it with
        an older epoch, its tracker connection goes (the newer takes over)."""
        try:
            text = data.decode()
            if text.startswith(RELEASED):
                epoch_text, _, session_id = text.removeprefix(RELEASED).split(" ", 2)
                if (waiter := self._releases.get((session_id, int(epoch_text)))) is not None:
                    waiter.set()
                return
            epoch_text, instance, previous, session_id = text.split(" ", 3)
            epoch = int(epoch_text)
        except ValueError:
            log.warning("owner_message_invalid", data=data[:200])
            return
        me = self.presence.instance
        if instance == me:
            return
        if session_id in self.remotes:
            self._want(session_id)  # the new holder relays it from now on
        session = self.hub.live.get(session_id)
        if session is None or epoch <= session.epoch:
            if previous == me:  # it is not live here: nothing to store first
                self._publish(self.owner_channel, f"{RELEASED}{epoch} {me} {session_id}".encode())
            return
        session.epoch = epoch
        session.held_elsewhere = True
        if self._nursery is None:
            return
        if session.trackers:
            log.info("session_claimed_elsewhere", session_id=session_id, instance=instance)
        self._nursery.start_soon(self._release, session, epoch, self.hub.release(session))
        self._hand_over(session)

    async def _release(
        self, session: LiveSession, epoch: int, trackers: list[TrackerHandle]
    ) -> None:
        """Another instance claimed ``session`` with ``epoch``: close this
        instance's connections of it, store what they had sent, then say
        so (``released``), so that the claimer's resume point covers it."""
        for tracker in trackers:
            with trio.move_on_after(RELEASE_WAIT / 2):
                await tracker.take_over()
        with trio.move_on_after(RELEASE_WAIT / 2):
            await self.hub.writer.flush()
        message = f"{RELEASED}{epoch} {self.presence.instance} {session.id}"
        self._publish(self.owner_channel, message.encode())

    def _hand_over(self, session: LiveSession) -> None:
        """``session`` went on elsewhere: its viewers here continue through
        the relay from its new holder, from the index their broadcaster
        had reached, with no snapshot. What the relay does not carry
        (events the new holder accepted before this instance subscribed)
        is read from storage by :meth:`RemoteSession._fill`."""
        broadcaster = self.local.broadcasters.get(session.id)
        if broadcaster is None or broadcaster.session is not session:
            return
        relay = self.relays.pop(session.id, None)
        if relay is not None:  # the new holder answers the other instances now
            self.local.unsubscribe(broadcaster, relay)
        if not broadcaster.feeds:
            return
        remote = self.remotes.get(session.id)
        if remote is not None and remote.feeds:
            return  # cannot be: viewers of a session live here follow it here
        if remote is not None:
            self.close(remote)
        remote = self._remote(session.id)
        remote.position = broadcaster.position
        remote.synced.set()  # a head further on is filled from storage
        remote.record.keyframe_index = session.record.keyframe_index
        end = broadcaster.position
        for feed in list(broadcaster.feeds):
            _, follower = self.subscribe(remote, feed.codec, feed.ws)
            self.local.unsubscribe(broadcaster, feed)
            feed.push(Tick(end, 0, end=True, moved=(remote, follower)))
        log.info("viewers_handed_over", session_id=session.id, next_index=end, to="relay")

    def _hand_back(self, session: LiveSession) -> None:
        """A tracker here took ``session`` back: viewers here that followed
        it through the relay continue from this instance's broadcaster,
        at the index the relay had reached. The broadcaster reads from
        storage what it has not in its ring; a viewer the relay took
        further than this instance has come is resynchronised."""
        remote = self.remotes.get(session.id)
        if remote is None:
            return
        self.close(remote)
        if not remote.feeds or not remote.synced.is_set():
            return
        existing = self.local.broadcasters.get(session.id)
        fresh = existing is None or not existing.feeds
        position = remote.position
        for feed in list(remote.feeds):
            broadcaster, follower = self.local.subscribe(session, feed.codec, feed.ws)
            if fresh:  # nobody else follows it: it goes on from there
                broadcaster.position = position
            if broadcaster.position != position:
                follower.drop()  # viewers saw what this instance has not (yet)
            fresh = False
            self.unsubscribe(remote, feed)
            feed.push(Tick(position, 0, end=True, moved=(broadcaster, follower)))
        log.info("viewers_handed_over", session_id=session.id, next_index=position, to="local")

    # -- the holder's side ----------------------------------------------------

    def _wanted(self, session_id: str, from_index: int | None = None) -> None:
        """Another instance has viewers of ``session_id``: relay it, and say
        where the relayed deltas start. The instance holding the session's
        tracker connection answers, or the one it was last held by while no
        other instance claimed it since (its ring is the tail until then):
        one that another instance claimed it from would only slow the
        followers down."""
        session = self.hub.live.get(session_id)
        if session is None or session.ended or (session.held_elsewhere and not session.trackers):
            return
        relay = self.relays.get(session_id)
        broadcaster = self.local.broadcasters.get(session_id)
        if relay is None or broadcaster is None or relay not in broadcaster.feeds:
            relay = RelayFeed(self, session)
            broadcaster, _ = self.local.subscribe(session, RELAY, feed=relay)
            self.relays[session_id] = relay
            log.info("relay_started", session_id=session_id)
        relay.wanted_at = trio.current_time()
        keyframe = session.record.keyframe_index
        if from_index is not None and from_index < broadcaster.position:
            self._relay_from_ring(session, from_index, broadcaster.position, keyframe)
        head = wire.message(wire.HEAD, broadcaster.position, 0, keyframe)
        self.publish_session(session_id, head)

    def _relay_from_ring(
        self, session: LiveSession, first: int, end: int, keyframe: int | None
    ) -> None:
        """Relay events ``first .. end`` from the ring, before the head (in
        order: this runs before the broadcaster's next tick). At most
        ``CATCH_UP_BYTES`` are sent; past that, or once the ring has
        trimmed them, the follower reads them from storage."""
        ingest, config = self.hub.ingest, self.config
        if session.id not in ingest or first < ingest.first_index(session.id):
            return
        sent = 0
        while first < end and sent < CATCH_UP_BYTES:
            part = ingest.read(session.id, first, end - first, config.viewer_batch_bytes)
            if not part.count:
                return
            payload = wire.delta_payload(self._compress, part.json())
            msg = wire.message(wire.DELTA, part.first_index, part.count, keyframe, payload)
            self.publish_session(session.id, msg)
            sent += len(msg)
            first = part.first_index + part.count

    def session_channel(self, session_id: str) -> str:
        """The channel of one session's relayed messages, in its slot."""
        assert self.link is not None
        return self.link.tagged(session_id, "fanout")

    def _session_of(self, channel: str) -> str:
        """The session id of a :meth:`session_channel` (or junk, which no
        remote session matches)."""
        assert self.link is not None
        return channel.removeprefix(self.link.prefix + "{").removesuffix("}:fanout")

    def publish_session(self, session_id: str, msg: bytes) -> None:
        self._publish(self.session_channel(session_id), msg)

    def _publish(self, channel: str, msg: bytes) -> None:
        if self.outbox_bytes + len(msg) > OUTBOX_BYTES:
            self.metrics.relay_messages_total.labels("dropped").inc()
            return  # the receivers see the hole and resynchronise
        self.outbox.append((channel, msg))
        self.outbox_bytes += len(msg)
        self._outbox_ready.set()

    async def _publish_loop(self) -> None:
        link = self.link
        assert link is not None
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready = trio.Event()
            batch, self.outbox, self.outbox_bytes = self.outbox, [], 0
            try:
                await link.call(_publish_all, link, batch)
                self.metrics.relay_messages_total.labels("published").inc(len(batch))
            except RedisUnavailable:
                self.metrics.relay_messages_total.labels("dropped").inc(len(batch))

    # -- the viewer's side ----------------------------------------------------

    async def watch(self, session_id: str) -> RemoteSession | None:
        """The session as held by another instance, synced (its head
        arrived), or None when no other instance holds it (or Redis is
        unreachable: then only local sessions can be watched live)."""
        link = self.link
        if link is None or not link.up or not self.subscribed or self._nursery is None:
            return None
        remote = self.remotes.get(session_id)
        if remote is None:
            if not await self._held_elsewhere(session_id):
                return None
            remote = self.remotes.get(session_id)  # another viewer may have been quicker
        if remote is None:
            remote = self._remote(session_id)
        remote.last_used = trio.current_time()
        with trio.move_on_after(JOIN_TIMEOUT):
            await remote.synced.wait()
        if not remote.synced.is_set() or remote.closed:
            if not remote.feeds:
                self.close(remote)
            return None
        return remote

    async def head(self, session_id: str) -> int | None:
        """How far the instance holding ``session_id`` has broadcast it, when
        that is another instance: a history read here covers what it has
        accepted but not yet committed by waiting for storage to reach this
        index. None when the session's tail is here or in storage (and
        without Redis)."""
        hub = self.hub
        session = hub.live.get(session_id)
        if self.link is None or (
            session is not None and (session.ended or not session.held_elsewhere)
        ):
            return None
        remote = self.remotes.get(session_id)
        if remote is not None and remote.synced.is_set() and not remote.closed:
            return remote.position
        if session is None and await self.presence.holder(session_id) is None:
            return None
        stored = await hub.writer.read(hub.storage.get_session, session_id)
        if stored is None or stored.status == "ended":
            return None  # all of it is stored
        remote = await self.watch(session_id)
        return None if remote is None else remote.position

    def _remote(self, session_id: str) -> RemoteSession:
        """Start watching ``session_id`` held elsewhere: subscribe to its
        channel (the subscription's confirmation sends a want)."""
        assert self.subscriber is not None and self._nursery is not None
        remote = RemoteSession(self, session_id)
        self.remotes[session_id] = remote
        self._nursery.start_soon(remote.run)
        self.subscriber.subscribe(self.session_channel(session_id))
        return remote

    async def _held_elsewhere(self, session_id: str) -> bool:
        """Presence lists it on another instance, or storage says it has
        not ended (it started after the holder's last heartbeat)."""
        if await self.presence.holder(session_id) is not None:
            return True
        record = await self.hub.get_record(session_id)
        return record is not None and record.status != "ended"

    def watching(self) -> dict[str, int]:
        """Viewers here of each session held elsewhere (for presence)."""
        return {sid: r.viewers for sid, r in self.remotes.items() if r.viewers}

    def subscribe(
        self, remote: RemoteSession, codec: str, ws: WebSocket | None = None
    ) -> tuple[RemoteSession, Feed]:
        """A feed of ``remote``'s relayed deltas from its ``position`` on."""
        feed = Feed(codec, self.config.viewer_backlog_bytes, ws)
        remote.feeds.add(feed)
        remote.last_used = trio.current_time()
        return remote, feed

    def unsubscribe(self, remote: RemoteSession, feed: Feed) -> None:
        remote.feeds.discard(feed)
        remote.last_used = trio.current_time()  # kept a renewal interval for a quick re-join

    def close(self, remote: RemoteSession) -> None:
        """Stop watching ``remote`` (its run task leaves and forgets it)."""
        if remote.closed:
            return
        remote.closed = True
        remote.wake()
        if self.remotes.get(remote.id) is remote:
            del self.remotes[remote.id]
            if self.subscriber is not None:
                self.subscriber.unsubscribe(self.session_channel(remote.id))

    def forget(self, remote: RemoteSession) -> None:
        self.close(remote)

    def _want(self, session_id: str) -> None:
        remote = self.remotes.get(session_id)
        synced = remote is not None and remote.synced.is_set()
        from_index = remote.position if synced and remote is not None else None
        self._publish(self.want_channel, wire.want(session_id, from_index))

    # -- callbacks from the subscriber thread (run in the loop) ---------------

    def _deliver(self, batch: list[tuple[str, bytes]]) -> None:
        self.metrics.relay_messages_total.labels("received").inc(len(batch))
        for channel, data in batch:
            if channel == self.want_channel:
                try:
                    self._wanted(*wire.decode_want(data))
                except wire.WireError as exc:
                    log.warning("relay_message_invalid", channel=channel, error=str(exc))
                continue
            if channel == self.owner_channel:
                self._claimed(data)
                continue
            remote = self.remotes.get(self._session_of(channel))
            if remote is None:
                continue
            try:
                remote.receive(wire.decode(data))
            except wire.WireError as exc:
                log.warning("relay_message_invalid", channel=channel, error=str(exc))

    def _on_subscribed(self, channel: str) -> None:
        if channel in (self.want_channel, self.owner_channel):
            return
        session_id = self._session_of(channel)
        if session_id in self.remotes:
            self._want(session_id)  # first subscription, or again after an outage

    def _on_state(self, up: bool) -> None:
        self.subscribed = up

    # -- upkeep ---------------------------------------------------------------

    async def _renew_loop(self) -> None:
        interval, ttl = self.config.presence_interval, self.config.presence_ttl
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            for session_id, relay in list(self.relays.items()):
                if now - relay.wanted_at > ttl:  # nobody asked lately
                    del self.relays[session_id]
                    broadcaster = self.local.broadcasters.get(session_id)
                    if broadcaster is not None:
                        self.local.unsubscribe(broadcaster, relay)
                    log.info("relay_stopped", session_id=session_id)
            for remote in list(self.remotes.values()):
                if not remote.feeds and now - remote.last_used > interval:
                    self.close(remote)
                elif remote.synced.is_set() and now - remote.heard_at > ttl and self.subscribed:
                    # The holder is gone (its heartbeat's TTL passed too),
                    # or it ended the session before it relayed the end.
                    log.info("relay_holder_silent", session_id=remote.id)
                    remote.heard_at = now  # one settling at a time
                    remote.settle()
                else:
                    self._want(remote.id)


def _take_epoch(
    link: RedisLink, epoch_key: str, holder_key: str, instance: str, ttl: int
) -> tuple[int, str | None]:
    """In a worker thread: the session's next ownership epoch, and the
    instance that took the previous one (None: none did within ``ttl``),
    in one round trip (both keys are in the session's slot). The keys
    live ``ttl`` seconds past the last claim, far longer than any instance
    keeps an idle session live, so an epoch that starts over at 1 has no
    holder left to compare with."""
    pipe = link.client.pipeline(transaction=False)
    pipe.incr(epoch_key)
    pipe.expire(epoch_key, ttl)
    pipe.set(holder_key, instance, ex=ttl, get=True)
    epoch, _, previous = pipe.execute()
    return int(epoch), None if previous is None else bytes(previous).decode()


def _publish_all(link: RedisLink, batch: list[tuple[str, bytes]]) -> None:
    """In a worker thread: every collected message in one round trip (one
    per node owning one of their channels, on a cluster)."""
    pipe = link.client.pipeline(transaction=False)
    for channel, data in batch:
        link.publish(pipe, channel, data)
    pipe.execute()
