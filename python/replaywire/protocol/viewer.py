"""The viewer side: ``viewer_join_session``, ``viewer_leave_session``,
``get_session_events``.

Each joined session is watched by its own task. For a live session it
subscribes to the session's broadcaster (:mod:`.broadcast`): it first sends a
*snapshot* of the events before the broadcaster's position, encoded for
this viewer, then the broadcaster's shared *delta* frames from its bounded
feed; when the feed overflows it sends a fresh snapshot (``resync``). A
session that is no longer live is read from history at the viewer's pace.
The viewer's codec (``?codec=none|deflate|zstd`` on the URL) picks text
frames or compressed binary frames (docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, assert_never

import trio

from .. import _core, codecs
from ..auth.principals import DEV_PRINCIPAL, Principal
from ..auth.tenants import client_id
from ..errors import ProtocolError
from ..sessions import LiveSession
from ..ws import ConnectionClosed, WebSocket
from ..ws.messages import TOO_LARGE, DataMessage
from . import frames
from .broadcast import Broadcaster, Broadcasts, Encoder, Feed, feed_key

if TYPE_CHECKING:
    from ..config import Config
    from ..observability.metrics import Metrics
    from ..redis.relay import Relay, RemoteSession
    from ..sessions import Hub
    from ..sessions.history import EventsPage
    from .dictionary import Dictionary


@dataclass(frozen=True, slots=True)
class ViewerDeps:
    """What a viewer connection uses of the server, and nothing else: built
    once by the server (replaywire.app) and shared by every connection."""

    config: Config
    hub: Hub  # live sessions, their rings, and history
    metrics: Metrics
    protocol: _core.ProtocolDecoder  # the server's, compiled once from its limits
    broadcasts: Broadcasts  # this instance's broadcasters
    relay: Relay  # sessions held by another instance (Redis)
    dictionary: Dictionary | None  # codec=zstd-dict's, when configured
    warn: Callable[..., None]  # the server's sampled client-fault log


async def serve_viewer(
    ws: WebSocket, deps: ViewerDeps, codec: str = "none", principal: Principal = DEV_PRINCIPAL
) -> None:
    """Serve one viewer connection of ``principal``'s tenant until it
    closes (raises ConnectionClosed). It sees that tenant's sessions only:
    another tenant's session answers ``unknown_session``, exactly like one
    that does not exist."""
    closed: ConnectionClosed | None = None
    deflate = ws.deflate
    codec = feed_key(
        codec, deflate.server_max_window_bits if deflate and deflate.server_compresses else None
    )
    async with trio.open_nursery() as nursery:
        connection = _Connection(ws, deps, nursery, codec, principal)
        try:
            while True:
                for msg in await ws.receive():
                    reply = await connection.handle(msg)
                    if reply:
                        await ws.send(reply)
        except ConnectionClosed as exc:
            closed = exc
            nursery.cancel_scope.cancel()
    if closed is not None:
        raise closed


class _Connection:
    """One viewer connection's messages: each decoded, then handled by the
    ``_on_<type>`` method of its type. The watches it starts run in
    ``nursery``, one per joined session, and end with it."""

    def __init__(
        self,
        ws: WebSocket,
        deps: ViewerDeps,
        nursery: trio.Nursery,
        codec: str,
        principal: Principal,
    ) -> None:
        self.ws = ws
        self.deps = deps
        self.nursery = nursery
        self.codec = codec
        self.principal = principal
        self.watches: dict[str, trio.CancelScope] = {}  # by session id

    async def handle(self, msg: DataMessage) -> bytes:
        """The reply to one message (b"" for none); an error frame when it
        is refused."""
        deps = self.deps
        try:
            if isinstance(msg, TOO_LARGE):
                raise ProtocolError(
                    "payload_too_large",
                    f"message of {msg.size} bytes is over the limit of"
                    f" {deps.config.max_message_bytes} bytes",
                )
            if not msg.is_text:
                raise ProtocolError("invalid_message", "viewer messages are JSON text frames")
            decoded = deps.protocol.decode_viewer(msg.data)
            match decoded:
                case _core.ViewerJoin():
                    return await self._on_viewer_join_session(decoded)
                case _core.ViewerLeave():
                    return self._on_viewer_leave_session(decoded)
                case _core.GetSessionEvents():
                    return await self._on_get_session_events(decoded)
                case _:
                    assert_never(decoded)
        except (_core.MessageError, ProtocolError) as exc:
            deps.metrics.protocol_errors_total.labels(exc.code).inc()
            deps.warn("viewer_message_rejected", code=exc.code, message=exc.message)
            return frames.error(exc.code, exc.message, exc.seq)

    async def _on_viewer_join_session(self, join: _core.ViewerJoin) -> bytes:
        self.deps.metrics.messages_total.labels("viewer", "viewer_join_session").inc()
        sid = join.session_id
        if sid in self.watches:
            self.watches.pop(sid).cancel()
        self.watches[sid] = await self.nursery.start(
            _watch, self.ws, self.deps, self.principal.key(sid), join.from_index, self.codec
        )
        return b""

    def _on_viewer_leave_session(self, leave: _core.ViewerLeave) -> bytes:
        self.deps.metrics.messages_total.labels("viewer", "viewer_leave_session").inc()
        scope = self.watches.pop(leave.session_id, None)
        if scope is not None:
            scope.cancel()
        return frames.message("viewer_left", {"sessionId": leave.session_id})

    async def _on_get_session_events(self, get: _core.GetSessionEvents) -> bytes:
        deps = self.deps
        deps.metrics.messages_total.labels("viewer", "get_session_events").inc()
        limit = min(get.limit or deps.config.max_history_limit, deps.config.max_history_limit)
        key = self.principal.key(get.session_id)
        if await deps.hub.get_record(key) is None:
            raise ProtocolError("unknown_session", f"no session {get.session_id!r}")
        page = await deps.hub.history(key, get.from_index, limit)
        return await Encoder(deps.config, deps.hub.clock).frame(
            self.codec,
            b"session_events",
            frames.json_string(get.session_id),
            page.first_index,
            page.count,
            page.events,
        )


async def _watch(
    ws: WebSocket,
    deps: ViewerDeps,
    session_id: str,
    from_index: int | None,
    codec: str,
    *,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Send a session's events to one viewer from ``from_index`` (default:
    the latest full snapshot in memory) until it ends or the viewer leaves.
    ``session_id`` is the session's key (tenant and id)."""
    with trio.CancelScope() as scope:
        task_status.started(scope)
        hub = deps.hub
        here = hub.live.get(session_id)
        live: LiveSession | RemoteSession | None = here
        if here is None or (here.held_elsewhere and not here.trackers):
            # Held by another instance (redis/relay.py); one that left
            # this one is followed here from storage when Redis cannot relay it.
            live = await deps.relay.watch(session_id) or here
        if live is None and await hub.get_record(session_id) is None:
            unknown = f"no session {client_id(session_id)!r}"
            deps.metrics.protocol_errors_total.labels("unknown_session").inc()
            deps.warn("viewer_message_rejected", code="unknown_session", message=unknown)
            await _send(ws, frames.error("unknown_session", unknown))
            return
        viewer = _Viewer(ws, deps, session_id, codec)
        if live is None or live.ended:
            await viewer.replay(0 if from_index is None else from_index)
            return
        limit = deps.config.max_viewers_per_session
        if live.viewers >= limit:
            deps.metrics.protocol_errors_total.labels("viewer_limit").inc()
            deps.warn("viewer_message_rejected", code="viewer_limit", limit=limit)
            refused = f"session {client_id(session_id)!r} has {limit} viewers, the most allowed"
            await _send(ws, frames.error("viewer_limit", refused))
            return
        await viewer.follow(live, from_index)


class _Viewer:
    """One viewer watching one session."""

    def __init__(self, ws: WebSocket, deps: ViewerDeps, session_id: str, codec: str) -> None:
        self.ws = ws
        self.deps = deps
        self.session_id = session_id  # the key, for the hub and buffers
        self.client_id = client_id(session_id)  # the id, for the viewer's frames
        self.id_json = frames.json_string(self.client_id)
        self.codec = codec
        self.encoder = Encoder(deps.config, deps.hub.clock)
        self.read: Callable[[int, int], Awaitable[EventsPage]] = partial(
            deps.hub.history, session_id
        )
        self.broadcaster: Broadcaster | RemoteSession | None = None  # while following

    async def follow(self, live: LiveSession | RemoteSession, from_index: int | None) -> None:
        """A live session: snapshot up to the broadcaster's position, then
        its shared deltas; a fresh snapshot whenever the feed overflowed.
        A session held by another instance has its :class:`RemoteSession`
        as broadcaster, whose snapshots wait for the shared storage. When
        the session moves between instances, the feed ends with a hand-over
        to the broadcaster that goes on from the same index (no snapshot)."""
        broadcaster: Broadcaster | RemoteSession
        if isinstance(live, LiveSession):
            broadcaster, feed = self.deps.broadcasts.subscribe(live, self.codec, self.ws)
        else:
            broadcaster, feed = self.deps.relay.subscribe(live, self.codec, self.ws)
        self._following(broadcaster, +1)
        try:
            await self._stream(broadcaster, feed, from_index)
        finally:
            assert self.broadcaster is not None
            self._following(self.broadcaster, -1)

    def _following(self, broadcaster: Broadcaster | RemoteSession, step: int) -> None:
        """Count this viewer in (``+1``) or out (``-1``) of ``broadcaster``'s
        session. Counting in also points :attr:`read` at where that
        broadcaster's snapshots come from."""
        live = _session_of(broadcaster)
        live.viewers += step
        self.deps.metrics.viewers_active.inc(step)
        if step > 0:
            self.broadcaster = broadcaster
            self.read = (
                partial(self.deps.hub.history, self.session_id)
                if isinstance(broadcaster, Broadcaster)
                else broadcaster.read
            )

    def _unsubscribe(self, broadcaster: Broadcaster | RemoteSession, feed: Feed) -> None:
        if isinstance(broadcaster, Broadcaster):
            self.deps.broadcasts.unsubscribe(broadcaster, feed)
        else:
            self.deps.relay.unsubscribe(broadcaster, feed)

    async def _stream(
        self, broadcaster: Broadcaster | RemoteSession, feed: Feed, from_index: int | None
    ) -> None:
        live = _session_of(broadcaster)
        try:
            position = broadcaster.position
            start = self._keyframe(live) if from_index is None else from_index
            skew = live.record.clock_skew_ms
            joined = {
                "sessionId": self.client_id,
                "fromIndex": start,
                "nextIndex": position,
                "clockSkewMs": None if skew is None else round(skew),
            }
            self._name_dictionary(joined)
            if not await _send(self.ws, frames.message("viewer_joined", joined)):
                return
            if not await self.snapshot(broadcaster, start, position, resync=False):
                return
            while True:
                tick = await feed.get()
                if tick is None:  # fell behind: drop the backlog, start afresh
                    feed.overflowed = False
                    position = broadcaster.position
                    start = self._keyframe(live)
                    if not await self.snapshot(broadcaster, start, position, resync=True):
                        return
                    continue
                if tick.moved is not None:  # the same stream, from another broadcaster
                    self._unsubscribe(broadcaster, feed)
                    self._following(broadcaster, -1)
                    broadcaster, feed = tick.moved
                    self._following(broadcaster, +1)
                    live = _session_of(broadcaster)
                    continue
                if tick.end:
                    ended = {"sessionId": self.client_id, "nextIndex": tick.first_index}
                    await _send(self.ws, frames.message("session_ended", ended))
                    return
                frame = tick.frames[self.codec]
                if not await _send(self.ws, frame):  # b"": the rest of a direct write
                    return
                if frame:
                    self.deps.metrics.viewer_messages_total.inc()
                    self.deps.metrics.viewer_bytes_total.inc(len(frame))
        finally:
            self._unsubscribe(broadcaster, feed)

    def _name_dictionary(self, joined: dict[str, object]) -> None:
        """``dictionaryId`` for a ``codec=zstd-dict`` viewer: the bytes are
        at ``GET /dictionaries/{id}``."""
        codec = codecs.BY_NAME.get(self.codec)  # None: a pmd feed key (protocol/broadcast.py)
        if codec is not None and codec.dictionary:
            assert self.deps.dictionary is not None  # refused at the upgrade without one
            joined["dictionaryId"] = self.deps.dictionary.id

    async def snapshot(
        self, broadcaster: Broadcaster | RemoteSession, start: int, end: int, *, resync: bool
    ) -> bool:
        """The snapshot ``start .. end``, shared with other viewers that need
        the same one before the next tick."""
        key = (start, end, self.codec, resync)
        built = broadcaster.cached_snapshot(key)
        if built is None:
            built = await self.span(start, end, b"snapshot", resync=resync)
            if built is None:
                return False
            broadcaster.cache_snapshot(key, built)
            return True
        for frame in built:
            if not await _send(self.ws, frame):
                return False
            self.deps.metrics.viewer_messages_total.inc()
            self.deps.metrics.viewer_bytes_total.inc(len(frame))
        return True

    async def replay(self, index: int) -> None:
        """A session that is no longer live: everything from ``index`` on,
        read from history at this viewer's pace, then ``session_ended``."""
        joined = {"sessionId": self.client_id, "fromIndex": index, "nextIndex": None}
        self._name_dictionary(joined)
        if not await _send(self.ws, frames.message("viewer_joined", joined)):
            return
        kind = b"snapshot"
        while True:
            page = await self.deps.hub.history(
                self.session_id, index, self.deps.config.viewer_batch_events
            )
            if not page.count:
                break
            if await self._events(kind, page.first_index, page.count, page.events) is None:
                return
            index, kind = page.next_index, b"delta"
        ended = {"sessionId": self.client_id, "nextIndex": index}
        await _send(self.ws, frames.message("session_ended", ended))

    async def span(
        self, start: int, end: int, kind: bytes, *, resync: bool = False
    ) -> list[bytes] | None:
        """Send events ``start .. end`` (a snapshot): the first message is
        ``kind``, the rest are deltas. The frames sent, or None once the
        viewer is gone."""
        hub, config = self.deps.hub, self.deps.config
        sent: list[bytes] = []
        index = start
        while index < end:
            buffers = hub.ingest
            sid = self.session_id
            # The ring, where it holds ``index`` (a session that moved to
            # another instance goes on past this instance's ring).
            if sid in buffers and buffers.first_index(sid) <= index < buffers.next_index(sid):
                part = buffers.read(
                    self.session_id,
                    index,
                    min(config.viewer_batch_events, end - index),
                    config.viewer_batch_bytes,
                )
                first, count, events = part.first_index, part.count, part.json()
            else:
                page = await self.read(index, min(config.viewer_batch_events, end - index))
                first, count, events = page.first_index, page.count, page.events
            if not count:
                break
            frame = await self._events(kind, first, count, events, resync=resync)
            if frame is None:
                return None
            sent.append(frame)
            index, kind, resync = first + count, b"delta", False
        if kind == b"snapshot":  # nothing to send still says where the stream starts
            frame = await self._events(kind, start, 0, b"[]", resync=resync)
            if frame is None:
                return None
            sent.append(frame)
        return sent

    async def _events(
        self, kind: bytes, first: int, count: int, events: bytes, *, resync: bool = False
    ) -> bytes | None:
        """Encode and send one events message; the frame, or None once the
        viewer is gone."""
        frame = await self.encoder.frame(
            self.codec, kind, self.id_json, first, count, events, resync=resync
        )
        if not await _send(self.ws, frame):
            return None
        self.deps.metrics.viewer_messages_total.inc()
        self.deps.metrics.viewer_bytes_total.inc(len(frame))
        return frame

    def _keyframe(self, live: LiveSession | RemoteSession) -> int:
        """Where a late joiner (or a resync) starts: the meta event and full
        snapshot the session last sent, so that the replay can render at
        once. When memory has trimmed them, the span up to the live edge
        is read back from storage (trackers bound it by taking a full
        snapshot every few minutes: rrweb's ``checkoutEveryNms``). A
        session that sent no full snapshot yet starts where memory does."""
        buffers = self.deps.hub.ingest
        keyframe = buffers.keyframe_index(self.session_id) if self.session_id in buffers else None
        if keyframe is None:
            keyframe = live.record.keyframe_index
        if keyframe is not None:
            return keyframe
        return buffers.first_index(self.session_id) if self.session_id in buffers else 0


def _session_of(broadcaster: Broadcaster | RemoteSession) -> LiveSession | RemoteSession:
    """The session a broadcaster broadcasts (a remote one is its own)."""
    return broadcaster.session if isinstance(broadcaster, Broadcaster) else broadcaster


async def _send(ws: WebSocket, frame: bytes) -> bool:
    try:
        await ws.send(frame)
    except ConnectionClosed:
        return False
    return True
